"""What a CPU run produced, simulated or measured: one type for both, and a comparison.

Shares are fractions of the scenario's wall-clock duration: a vCPU with
``run_share`` 0.25 ran a quarter of the time; ``wait_share`` is the time it was
runnable but not running (what the guest sees as *steal* time, what VMware calls
*CPU ready*, see :mod:`kvmlab.cpu.ready`).

:func:`compare` puts a simulated result next to a measured one (or any two results
of the same scenario): its :class:`Comparison` has the error of every vCPU's run and
wait share, the largest of them (:attr:`Comparison.max_error`) and whether that is
within the tolerance for the host that measured (:attr:`Comparison.agrees`).

Examples
--------
>>> v = VcpuStats("vm1", 0, run_s=5.0, wait_s=1.0, slices=100, duration_s=10.0)
>>> v.run_share, v.wait_share, v.ready_pct, v.ready_verdict
(0.5, 0.1, 10.0, 'problem')
>>> measured = recorded_result("cpu-seed-example")
>>> measured.source, measured.provenance["accelerator"]
('measured', 'tcg')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvmlab.cpu.plot import plot_comparison
from kvmlab.cpu.ready import ready_verdict
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.data import load_recorded
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SOURCES, check_pair
from kvmlab.lab import Comparison as LabComparison

__all__ = ["TOLERANCE_EMULATED", "TOLERANCE_KVM", "Comparison", "CpuResult", "ReadyRow",
           "ShareError", "Slice", "VcpuStats", "by_vm", "compare", "mean_shares",
           "ready_rows", "recorded_result", "tolerance_for"]

TOLERANCE_KVM = 0.05
"""Largest share error at which the model agrees with a host that ran its guests on KVM."""
TOLERANCE_EMULATED = 0.10
"""The same for a host that emulated its guests (TCG), or where no accelerator is known:
an emulated vCPU leans on QEMU's own threads and locks, so it is not a pure busy loop."""


@dataclass(frozen=True)
class VcpuStats:
    """Run, wait and sleep time and time slices of one vCPU over a run.

    ``sleep_s`` is the time the vCPU's thread was not runnable. Left out (a simulation,
    or a recording older than the field), it is what remains of the duration:
    ``duration_s - run_s - wait_s``, never negative.

    Examples
    --------
    >>> VcpuStats("vm1", 0, run_s=2.0, wait_s=1.0, slices=9, duration_s=4.0).sleep_share
    0.25
    """

    vm: str
    vcpu: int
    run_s: float
    wait_s: float
    slices: int
    duration_s: float
    sleep_s: float = None       # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.sleep_s is None:
            object.__setattr__(self, "sleep_s",
                               max(0.0, self.duration_s - self.run_s - self.wait_s))

    @property
    def run_share(self) -> float:
        """The fraction of the run's duration the vCPU ran."""
        return round(self.run_s / self.duration_s, 6)

    @property
    def wait_share(self) -> float:
        """The fraction of the run's duration the vCPU was runnable but waited."""
        return round(self.wait_s / self.duration_s, 6)

    @property
    def sleep_share(self) -> float:
        """The fraction of the run's duration the vCPU's thread was not runnable."""
        return round(self.sleep_s / self.duration_s, 6)

    @property
    def ready_pct(self) -> float:
        """CPU ready %: waiting time as a percentage of the run's duration."""
        return round(100 * self.wait_s / self.duration_s, 4)

    @property
    def ready_verdict(self) -> str:
        """``'fine'``, ``'watch'`` or ``'problem'`` (see :func:`kvmlab.cpu.ready.ready_verdict`)."""
        return ready_verdict(self.ready_pct)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (shares, seconds, slices, CPU ready % and its verdict)."""
        return {"vm": self.vm, "vcpu": self.vcpu, "run_share": self.run_share,
                "wait_share": self.wait_share, "sleep_share": self.sleep_share,
                "run_s": round(self.run_s, 6), "wait_s": round(self.wait_s, 6),
                "sleep_s": round(self.sleep_s, 6), "slices": self.slices,
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
        :data:`kvmlab.lab.SIMULATED` (``'simulated'``) or :data:`kvmlab.lab.MEASURED`
        (``'measured'``, also for a recorded host run).
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
    def from_dict(cls, data: Mapping[str, Any]) -> CpuResult:
        """Rebuild a result from :meth:`to_dict` output (for example a recorded run)."""
        if data.get("source") not in SOURCES:
            raise ScenarioError(f"a result's source is one of {', '.join(SOURCES)}, not "
                                f"{data.get('source')!r}")
        duration = float(data["duration_s"])
        vcpus = tuple(VcpuStats(v["vm"], int(v["vcpu"]), float(v["run_s"]), float(v["wait_s"]),
                                int(v["slices"]), duration,
                                float(v["sleep_s"]) if "sleep_s" in v else None)
                      for v in data["vcpus"])
        return cls(scenario=CpuScenario.from_dict(data["scenario"]), source=data["source"],
                   vcpus=vcpus, duration_s=duration, provenance=dict(data.get("provenance", {})))


def recorded_result(name: str) -> CpuResult:
    """A real-host run recorded in ``data/recorded/NAME.json``, with its provenance.

    Examples
    --------
    >>> r = recorded_result("cpu-overcommit-2x")
    >>> r.source, r.scenario.overcommit
    ('measured', 2.0)
    """
    result = CpuResult.from_dict(load_recorded(name))
    if result.source != MEASURED:
        raise ScenarioError(f"recording {name!r} says its source is {result.source!r}; a "
                            f"recorded host run is {MEASURED!r}")
    return result


# -- summaries of one result -------------------------------------------------------------
def mean_shares(result: CpuResult) -> dict[str, float]:
    """The mean run share, wait share and CPU ready % of the vCPUs of a result.

    Examples
    --------
    >>> from kvmlab.cpu import busy_scenario, simulate
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> mean_shares(r)
    {'run_share': 0.5, 'wait_share': 0.5, 'ready_pct': 50.0}
    """
    n = len(result.vcpus)
    run = sum(v.run_share for v in result.vcpus) / n
    wait = sum(v.wait_share for v in result.vcpus) / n
    return {"run_share": round(run, 6), "wait_share": round(wait, 6),
            "ready_pct": round(100 * wait, 4)}


@dataclass(frozen=True)
class ReadyRow:
    """Per VM: mean run share and CPU ready % of its vCPUs, and the rule-of-thumb verdict."""

    vm: str
    vcpus: int
    run_share: float
    ready_pct: float
    verdict: str


def ready_rows(result: CpuResult) -> list[ReadyRow]:
    """Per VM, the mean CPU ready % of its vCPUs judged by the 5 % / 10 % rules of thumb.

    Examples
    --------
    >>> from kvmlab.cpu import busy_scenario, simulate
    >>> r = simulate(busy_scenario(2, 6, 3), record_timeline=False)
    >>> [(row.vm, row.ready_pct, row.verdict) for row in ready_rows(r)]
    [('vm1', 66.6667, 'problem'), ('vm2', 66.6667, 'problem')]
    """
    rows = []
    for spec in result.scenario.vms:
        stats = [v for v in result.vcpus if v.vm == spec.name]
        run = sum(v.run_share for v in stats) / len(stats)
        ready = round(sum(v.ready_pct for v in stats) / len(stats), 4)
        rows.append(ReadyRow(spec.name, len(stats), round(run, 4), ready, ready_verdict(ready)))
    return rows


def by_vm(vcpus: Sequence[VcpuStats]) -> dict[str, list[VcpuStats]]:
    """Group vCPU statistics by VM, keeping their order."""
    out: dict[str, list[VcpuStats]] = {}
    for v in vcpus:
        out.setdefault(v.vm, []).append(v)
    return out


# -- two results side by side --------------------------------------------------------------
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
        """Simulated minus measured run share."""
        return round(self.simulated_run - self.measured_run, 6)

    @property
    def wait_error(self) -> float:
        """Simulated minus measured wait share."""
        return round(self.simulated_wait - self.measured_wait, 6)


def tolerance_for(measured: CpuResult) -> float:
    """The largest share error at which a model agrees with ``measured``.

    :data:`TOLERANCE_KVM` when the measuring host ran its guests on KVM (its provenance
    says accelerator ``'kvm'``), else :data:`TOLERANCE_EMULATED`.

    Examples
    --------
    >>> tolerance_for(recorded_result("cpu-seed-example"))      # measured under TCG
    0.1
    """
    return TOLERANCE_KVM if measured.provenance.get("accelerator") == "kvm" \
        else TOLERANCE_EMULATED


@dataclass(frozen=True)
class Comparison(LabComparison):
    """Per-vCPU differences between a simulated and a measured result.

    Attributes
    ----------
    simulated, measured : CpuResult
    rows : tuple of ShareError
        One per vCPU, in the simulated result's order.
    tolerance : float
        The largest error at which the two agree (see :func:`tolerance_for`): 0.05 of
        the time for a host that measured under KVM, 0.10 under emulation (TCG).
    """

    simulated: CpuResult
    measured: CpuResult
    rows: tuple[ShareError, ...]
    tolerance: float = TOLERANCE_EMULATED

    @property
    def max_error(self) -> float:
        """The largest absolute error of any vCPU's run or wait share.

        Its unit is a share of the wall-clock time (0.05 is 5 % of the run); 0.0 when
        the two results have the same shares.
        """
        return float(max(max(abs(r.run_error), abs(r.wait_error)) for r in self.rows))

    @property
    def agrees(self) -> bool:
        """Is :attr:`max_error` within :attr:`tolerance`?"""
        return self.max_error <= self.tolerance

    def table(self) -> str:
        """A text table: per vCPU, simulated and measured run and wait shares, and errors."""
        head = (f"{'vm':<10}{'vcpu':>5}{'sim run':>9}{'real run':>9}{'err':>8}"
                f"{'sim wait':>10}{'real wait':>10}{'err':>8}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.vm:<10}{r.vcpu:>5}{r.simulated_run:>9.3f}{r.measured_run:>9.3f}"
                         f"{r.run_error:>+8.3f}{r.simulated_wait:>10.3f}"
                         f"{r.measured_wait:>10.3f}{r.wait_error:>+8.3f}")
        accel = self.measured.provenance.get("accelerator")
        verdict = "agrees" if self.agrees else "does not agree"
        lines.append(f"largest error: {self.max_error:.3f} of the time; tolerance "
                     f"{self.tolerance:.2f}{f' (measured under {accel})' if accel else ''}: "
                     f"{verdict}")
        return "\n".join(lines)

    def details(self) -> dict[str, Any]:
        """The tolerance, and per vCPU both sides' shares and their errors."""
        return {"tolerance": self.tolerance,
                "vcpus": [{"vm": r.vm, "vcpu": r.vcpu,
                           "simulated": {"run_share": r.simulated_run,
                                         "wait_share": r.simulated_wait},
                           "measured": {"run_share": r.measured_run,
                                        "wait_share": r.measured_wait},
                           "run_error": r.run_error, "wait_error": r.wait_error}
                          for r in self.rows]}

    def plot(self, ax: Any = None) -> Any:
        """Bar chart of simulated and measured shares per vCPU; returns the Axes.

        See :func:`kvmlab.cpu.plot.plot_comparison`.
        """
        return plot_comparison(self, ax=ax)


def compare(simulated: CpuResult, measured: CpuResult) -> Comparison:
    """Pair up the vCPUs of two results of the same scenario and compute the errors.

    Parameters
    ----------
    simulated, measured : CpuResult
        Usually a simulation and a host run (or recording); two simulations work too.

    Returns
    -------
    Comparison
        With ``max_error`` in shares of the time and ``agrees`` within
        :func:`tolerance_for` ``(measured)``.

    Raises
    ------
    ScenarioError
        If the two are not CPU results, or not of the same VMs and vCPUs.

    Examples
    --------
    >>> from kvmlab.cpu import simulate
    >>> measured = recorded_result("cpu-pinned-unequal")
    >>> c = compare(simulate(measured.scenario.with_duration(2)), measured)
    >>> c.agrees, c.tolerance, c.max_error < 0.05
    (True, 0.1, True)
    >>> list(c.to_dict())
    ['agrees', 'max_error', 'tolerance', 'vcpus']
    """
    check_pair(simulated, measured, CpuResult)
    keys = _keys(simulated.vcpus)
    if keys != _keys(measured.vcpus):
        raise ScenarioError("cannot compare results of different scenarios: the VMs and "
                            f"vCPUs differ ({sorted(keys)} vs {sorted(_keys(measured.vcpus))})")
    rows = tuple(
        ShareError(s.vm, s.vcpu, s.run_share, m.run_share, s.wait_share, m.wait_share)
        for s in simulated.vcpus for m in [measured.vcpu(s.vm, s.vcpu)])
    return Comparison(simulated, measured, rows, tolerance_for(measured))


def _keys(vcpus: Iterable[VcpuStats]) -> set[tuple[str, int]]:
    return {(v.vm, v.vcpu) for v in vcpus}
