"""What a CPU run produced, simulated or measured: one type for both, and a comparison.

Shares are fractions of the scenario's wall-clock duration: a vCPU with
``run_share`` 0.25 ran a quarter of the time; ``wait_share`` is the time it was
runnable but not running (what the guest sees as *steal* time, what VMware calls
*CPU ready*).

Examples
--------
>>> v = VcpuStats("vm1", 0, run_s=5.0, wait_s=1.0, slices=100, duration_s=10.0)
>>> v.run_share, v.wait_share, v.ready_pct, v.ready_verdict
(0.5, 0.1, 10.0, 'problem')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvmlab.cpu.scenario import CpuScenario

READY_WATCH_PCT = 5.0
READY_PROBLEM_PCT = 10.0


def ready_verdict(ready_pct: float) -> str:
    """Judge CPU ready % by the common rules of thumb (below 5 % fine, above 10 % a problem).

    Examples
    --------
    >>> [ready_verdict(p) for p in (1, 7, 25)]
    ['fine', 'watch', 'problem']
    """
    if ready_pct >= READY_PROBLEM_PCT:
        return "problem"
    if ready_pct >= READY_WATCH_PCT:
        return "watch"
    return "fine"


@dataclass(frozen=True)
class VcpuStats:
    """Run time, wait time and time slices of one vCPU over a run."""

    vm: str
    vcpu: int
    run_s: float
    wait_s: float
    slices: int
    duration_s: float

    @property
    def run_share(self) -> float:
        return round(self.run_s / self.duration_s, 6)

    @property
    def wait_share(self) -> float:
        return round(self.wait_s / self.duration_s, 6)

    @property
    def ready_pct(self) -> float:
        """CPU ready %: waiting time as a percentage of the run's duration."""
        return round(100 * self.wait_s / self.duration_s, 4)

    @property
    def ready_verdict(self) -> str:
        return ready_verdict(self.ready_pct)

    def to_dict(self) -> dict[str, Any]:
        return {"vm": self.vm, "vcpu": self.vcpu, "run_share": self.run_share,
                "wait_share": self.wait_share, "run_s": round(self.run_s, 6),
                "wait_s": round(self.wait_s, 6), "slices": self.slices,
                "ready_pct": self.ready_pct, "ready_verdict": self.ready_verdict}


@dataclass(frozen=True)
class Slice:
    """One stretch of a vCPU running on a pCPU (for Gantt charts)."""

    pcpu: int
    vm: str
    vcpu: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class CpuResult:
    """The outcome of a CPU scenario, from the model or from a real host.

    Attributes
    ----------
    scenario : CpuScenario
    source : str
        ``'simulated'`` or ``'measured'``.
    vcpus : tuple of VcpuStats
    duration_s : float
        Wall-clock length of the run the shares are fractions of.
    provenance : dict
        How the result was made: seed and scheduler, or host, versions, accelerator, date.
    timeline : tuple of Slice
        Who ran where and when (simulations only; empty for measurements).
    """

    scenario: CpuScenario
    source: str
    vcpus: tuple[VcpuStats, ...]
    duration_s: float
    provenance: dict[str, Any] = field(default_factory=dict)
    timeline: tuple[Slice, ...] = field(default=(), repr=False)

    def vcpu(self, vm: str, index: int) -> VcpuStats:
        """The statistics of vCPU ``index`` of VM ``vm``."""
        for v in self.vcpus:
            if (v.vm, v.vcpu) == (vm, index):
                return v
        from kvmlab.errors import ScenarioError

        raise ScenarioError(f"this result has no vCPU {index} of VM {vm!r}")

    def vm_utilisation(self) -> dict[str, float]:
        """Per VM: the fraction of its vCPUs' time that they ran (0..1)."""
        out = {}
        for spec in self.scenario.vms:
            runs = [v.run_s for v in self.vcpus if v.vm == spec.name]
            out[spec.name] = round(sum(runs) / (len(runs) * self.duration_s), 6)
        return out

    def host_utilisation(self) -> float:
        """The fraction of all physical CPU time spent running vCPUs (0..1)."""
        total = sum(v.run_s for v in self.vcpus)
        return round(total / (self.scenario.pcpus * self.duration_s), 6)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"vcpus": [{"vm", "vcpu", "run_share", "wait_share", ...}], ...}``."""
        return {
            "source": self.source,
            "duration_s": round(self.duration_s, 6),
            "vcpus": [v.to_dict() for v in self.vcpus],
            "vms": self.vm_utilisation(),
            "host": {"pcpus": self.scenario.pcpus, "utilisation": self.host_utilisation()},
            "scenario": self.scenario.to_dict(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CpuResult:
        """Rebuild a result from :meth:`to_dict` output (for example a recorded run)."""
        duration = float(data["duration_s"])
        vcpus = tuple(VcpuStats(v["vm"], int(v["vcpu"]), float(v["run_s"]), float(v["wait_s"]),
                                int(v["slices"]), duration) for v in data["vcpus"])
        return cls(scenario=CpuScenario.from_dict(data["scenario"]), source=data["source"],
                   vcpus=vcpus, duration_s=duration, provenance=dict(data.get("provenance", {})))


@dataclass(frozen=True)
class ShareError:
    """Simulated against measured shares of one vCPU."""

    vm: str
    vcpu: int
    simulated_run: float
    measured_run: float
    simulated_wait: float
    measured_wait: float

    @property
    def run_error(self) -> float:
        return round(self.simulated_run - self.measured_run, 6)

    @property
    def wait_error(self) -> float:
        return round(self.simulated_wait - self.measured_wait, 6)


@dataclass(frozen=True)
class Comparison:
    """Per-vCPU differences between a simulated and a measured result."""

    simulated: CpuResult
    measured: CpuResult
    rows: tuple[ShareError, ...]

    @property
    def max_abs_error(self) -> float:
        """The largest absolute error in any vCPU's run or wait share."""
        return max(max(abs(r.run_error), abs(r.wait_error)) for r in self.rows)

    def table(self) -> str:
        """A text table: per vCPU, simulated and measured run and wait shares, and errors."""
        head = (f"{'vm':<10}{'vcpu':>5}{'sim run':>9}{'real run':>9}{'err':>8}"
                f"{'sim wait':>10}{'real wait':>10}{'err':>8}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.vm:<10}{r.vcpu:>5}{r.simulated_run:>9.3f}{r.measured_run:>9.3f}"
                         f"{r.run_error:>+8.3f}{r.simulated_wait:>10.3f}"
                         f"{r.measured_wait:>10.3f}{r.wait_error:>+8.3f}")
        lines.append(f"largest error: {self.max_abs_error:.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"max_abs_error": self.max_abs_error,
                "vcpus": [{"vm": r.vm, "vcpu": r.vcpu,
                           "simulated": {"run_share": r.simulated_run,
                                         "wait_share": r.simulated_wait},
                           "measured": {"run_share": r.measured_run,
                                        "wait_share": r.measured_wait},
                           "run_error": r.run_error, "wait_error": r.wait_error}
                          for r in self.rows]}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.table())

    def plot(self, ax: Any = None) -> Any:
        """Bar chart of simulated and measured shares per vCPU; returns the Axes."""
        from kvmlab.cpu.plot import plot_comparison

        return plot_comparison(self, ax=ax)


def compare(simulated: CpuResult, measured: CpuResult) -> Comparison:
    """Pair up the vCPUs of two results of the same scenario and compute the errors.

    Raises
    ------
    ScenarioError
        If the two results are not of the same VMs and vCPUs.
    """
    from kvmlab.errors import ScenarioError

    keys = _keys(simulated.vcpus)
    if keys != _keys(measured.vcpus):
        raise ScenarioError("cannot compare results of different scenarios: the VMs and "
                            f"vCPUs differ ({sorted(keys)} vs {sorted(_keys(measured.vcpus))})")
    rows = tuple(
        ShareError(s.vm, s.vcpu, s.run_share, m.run_share, s.wait_share, m.wait_share)
        for s in simulated.vcpus for m in [measured.vcpu(s.vm, s.vcpu)])
    return Comparison(simulated, measured, rows)


def _keys(vcpus: Iterable[VcpuStats]) -> set[tuple[str, int]]:
    return {(v.vm, v.vcpu) for v in vcpus}


def by_vm(vcpus: Sequence[VcpuStats]) -> dict[str, list[VcpuStats]]:
    """Group vCPU statistics by VM, keeping their order."""
    out: dict[str, list[VcpuStats]] = {}
    for v in vcpus:
        out.setdefault(v.vm, []).append(v)
    return out
