"""The ideal answer, by hand: how a fair host divides its CPUs among busy vCPUs.

For busy vCPUs (load 1.0) the fair share has a closed form, which is what the
exercises ask a student to work out: the host's pCPUs are divided among the VMs
in proportion to their shares, but no VM can use more pCPUs than it has vCPUs;
what a VM cannot use goes to the others ("water-filling"). Each VM's part is then
split equally among its vCPUs.

Examples
--------
>>> from kvmlab.cpu.scenario import CpuScenario
>>> s = CpuScenario.from_dict({"pcpus": 2, "duration_s": 1,
...     "vms": [{"name": "vm1", "vcpus": 2}, {"name": "vm2", "vcpus": 4}]})
>>> fair_shares(s)
{'vm1': 0.5, 'vm2': 0.25}
>>> flat_shares(s)
{'vm1': 0.333333, 'vm2': 0.333333}
"""

from __future__ import annotations

from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError


def _check(scenario: CpuScenario) -> None:
    if any(vm.busy_fraction < 1 or vm.pin is not None for vm in scenario.vms):
        raise ScenarioError("the closed form covers busy (load 1.0), unpinned vCPUs only; "
                            "simulate() handles the rest")


def fair_shares(scenario: CpuScenario) -> dict[str, float]:
    """Per VM, the run share of each of its vCPUs under fair sharing between VMs."""
    _check(scenario)
    left = {vm.name: vm for vm in scenario.vms}
    cpus = min(scenario.pcpus, scenario.total_vcpus)
    part: dict[str, float] = {}
    while left:
        weight = sum(vm.shares for vm in left.values())
        capped = {n: vm for n, vm in left.items() if cpus * vm.shares / weight >= vm.vcpus}
        if not capped:                      # everyone left gets its weighted part
            part |= {n: cpus * vm.shares / weight for n, vm in left.items()}
            break
        for n, vm in capped.items():        # these VMs are limited by their vCPU count
            part[n] = vm.vcpus
            cpus -= vm.vcpus
            del left[n]
    return {vm.name: round(part[vm.name] / vm.vcpus, 6) for vm in scenario.vms}


def flat_shares(scenario: CpuScenario) -> dict[str, float]:
    """Per VM, the run share of each vCPU when every thread is treated alike."""
    _check(scenario)
    share = min(1.0, scenario.pcpus / scenario.total_vcpus)
    return {vm.name: round(share, 6) for vm in scenario.vms}
