"""The CPU lab: vCPUs are threads, the host schedules them, overcommit makes them wait.

Examples
--------
>>> from kvmlab import cpu
>>> result = cpu.simulate(cpu.load_scenario("cpu-seed-example").with_duration(1))
>>> round(result.vcpu("vm2", 3).run_share, 2)
0.25
"""

from pathlib import Path

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.result import Comparison, CpuResult, VcpuStats, compare, ready_verdict
from kvmlab.cpu.scenario import CpuScenario, VmSpec
from kvmlab.cpu.theory import fair_shares, flat_shares
from kvmlab.cpu.twin import run_on_host
from kvmlab.data import load_recorded, scenario_dict


def load_scenario(name_or_path: str | Path) -> CpuScenario:
    """A shipped scenario by name (``cpu-seed-example``), or a scenario JSON file."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return CpuScenario.load(path)
    return CpuScenario.from_dict(scenario_dict(str(name_or_path)))


def recorded_result(name: str) -> CpuResult:
    """A real-host run recorded in ``data/recorded/`` (with its provenance)."""
    return CpuResult.from_dict(load_recorded(name))


__all__ = [
    "SCHEDULERS",
    "Comparison",
    "CpuResult",
    "CpuScenario",
    "VcpuStats",
    "VmSpec",
    "compare",
    "fair_shares",
    "flat_shares",
    "load_scenario",
    "ready_verdict",
    "recorded_result",
    "run_on_host",
    "simulate",
]
