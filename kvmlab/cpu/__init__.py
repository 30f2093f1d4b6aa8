"""The CPU lab: vCPUs are threads, the host schedules them, overcommit makes them wait.

The lab's verbs follow the contract of :mod:`kvmlab.lab`: :func:`load_scenario`,
:func:`simulate` (a simpy model of the host's scheduler), :func:`run_on_host` (the same
scenario as real guests, measured), :func:`compare` and :func:`recorded_result` (a real
host run shipped in ``data/recorded/``). Sweeps over overcommit ratios run through
:func:`kvmlab.sweep` with the ``cpu-overcommit`` scenario.

Examples
--------
>>> from kvmlab import cpu
>>> result = cpu.simulate(cpu.load_scenario("cpu-seed-example").with_duration(1))
>>> round(result.vcpu("vm2", 3).run_share, 2)
0.25
>>> pinned = cpu.recorded_result("cpu-pinned-unequal")          # a real TCG host
>>> c = cpu.compare(cpu.simulate(pinned.scenario.with_duration(1)), pinned)
>>> c.agrees, c.tolerance
(True, 0.1)
"""

from kvmlab.cpu import native

STATE = native.choose()      # the compiled model if it is current, else its source

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.ready import ready_verdict
from kvmlab.cpu.result import Comparison, CpuResult, VcpuStats, compare, recorded_result
from kvmlab.cpu.scenario import (
    CpuScenario,
    VmSpec,
    busy_scenario,
    load_scenario,
    overcommit_scenario,
)
from kvmlab.cpu.theory import fair_shares, flat_shares
from kvmlab.cpu.twin import run_on_host

__all__ = [
    "SCHEDULERS",
    "Comparison",
    "CpuResult",
    "CpuScenario",
    "VcpuStats",
    "VmSpec",
    "busy_scenario",
    "compare",
    "fair_shares",
    "flat_shares",
    "load_scenario",
    "overcommit_scenario",
    "ready_verdict",
    "recorded_result",
    "run_on_host",
    "simulate",
]
