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

from dataclasses import dataclass

from kvmlab.cpu.scenario import CpuScenario
from kvmlab.errors import ScenarioError


def _check(scenario: CpuScenario) -> None:
    if any(vm.busy_fraction < 1 or vm.pin is not None for vm in scenario.vms):
        raise ScenarioError("the closed form covers busy (load 1.0), unpinned vCPUs only; "
                            "simulate() handles the rest")


@dataclass(frozen=True)
class FillRound:
    """One round of water-filling.

    ``cpus`` pCPUs are divided between the VMs still in play by weight (``parts``);
    the VMs in ``capped`` cannot use their part (it exceeds their vCPU count), keep
    one pCPU per vCPU, and leave the rest to the next round.
    """

    cpus: float
    weight: int
    parts: dict[str, float]
    capped: tuple[str, ...]


def water_fill(scenario: CpuScenario) -> list[FillRound]:
    """The rounds in which fair sharing divides the pCPUs between busy VMs.

    Examples
    --------
    >>> from kvmlab.cpu.scenario import CpuScenario
    >>> s = CpuScenario.from_dict({"pcpus": 4, "duration_s": 1,
    ...     "vms": [{"name": "a", "vcpus": 1}, {"name": "b", "vcpus": 8}]})
    >>> [(r.cpus, r.capped) for r in water_fill(s)]
    [(4, ('a',)), (3, ())]
    """
    _check(scenario)
    left = {vm.name: vm for vm in scenario.vms}
    cpus: float = min(scenario.pcpus, scenario.total_vcpus)
    rounds = []
    while left:
        weight = sum(vm.shares for vm in left.values())
        parts = {n: cpus * vm.shares / weight for n, vm in left.items()}
        capped = tuple(n for n, vm in left.items() if parts[n] >= vm.vcpus)
        rounds.append(FillRound(cpus, weight, parts, capped))
        if not capped:
            break
        for n in capped:
            cpus -= left.pop(n).vcpus
    return rounds


def fair_shares(scenario: CpuScenario) -> dict[str, float]:
    """Per VM, the run share of each of its vCPUs under fair sharing between VMs."""
    part: dict[str, float] = {}
    for r in water_fill(scenario):
        part |= {n: scenario.vm(n).vcpus for n in r.capped} if r.capped else r.parts
    return {vm.name: round(part[vm.name] / vm.vcpus, 6) for vm in scenario.vms}


def flat_shares(scenario: CpuScenario) -> dict[str, float]:
    """Per VM, the run share of each vCPU when every thread is treated alike."""
    _check(scenario)
    share = min(1.0, scenario.pcpus / scenario.total_vcpus)
    return {vm.name: round(share, 6) for vm in scenario.vms}
