"""The real balloon's results and their comparison (no host here: see
:mod:`kvmlab.memory.balloontwin` for the measurement), and what the model says.

What the model says, step by step, for a guest of ``M`` MiB told to hold ``T`` MiB (its
balloon holds ``B = M - T``), measured against a guest that started with an empty balloon:

``actual``
    libvirt's view of the guest's memory: exactly ``T`` once the guest has inflated or
    deflated its balloon.
``MemTotal`` (``/proc/meminfo``; libvirt's ``available`` statistic is the same number)
    falls by ``B``: the driver takes the balloon's pages off the kernel's managed pages.
    With ``deflate_on_oom`` it does not (``VIRTIO_BALLOON_F_DEFLATE_ON_OOM``: the pages
    may come back when the guest runs short, so the kernel keeps counting them), and
    ``MemTotal`` stays where it was.
``MemAvailable`` (libvirt's ``usable``)
    falls by ``B`` in both cases: the balloon's pages are allocated, not free.
the host's RSS of the QEMU process
    never rises (pages the balloon gives back are backed again only when the guest
    touches them) and falls by at most what the balloon has grown by: QEMU lets go
    (``MADV_DONTNEED``) of each page the balloon takes, but only the pages the host had
    backed free anything. (A guest that had filled and freed most of its memory first:
    64 MiB into the balloon, RSS 63.9 MiB lower; a guest just booted: about 30 MiB lower.)
    With ``free_page_reporting`` the guest also hands free pages
    back on its own, so there is no lower bound.

The model itself is :func:`kvmlab.memory.model.predict_balloon_run`.

Examples
--------
>>> from kvmlab.memory.model import predict_balloon_run
>>> from kvmlab.memory.balloonscenario import BalloonRunScenario
>>> r = predict_balloon_run(BalloonRunScenario(memory_mib=256, targets_mib=(192, 256)))
>>> [(s.target_mib, s.actual_mib, s.memtotal_mib) for s in r.steps]
[(192, 192.0, 154.4), (256, 256.0, 218.4)]
>>> c = compare_balloon_runs(r, r)
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.lab import SOURCES, Comparison
from kvmlab.memory.balloonscenario import BalloonRunScenario
from kvmlab.memory.result import BalloonResult, MemoryResult

TOLERANCE_MIB = 2.0
"""How far (MiB) a change measured may be from the model's. In four runs of the shipped
scenarios (16 steps) ``actual`` and ``MemTotal`` came out exact; ``MemAvailable`` ended
0.9-1.1 MiB above the model at every step (the just-booted guest's first reading is that
much lower; in earlier trial runs up to 1.5 MiB either way), and QEMU's own allocations moved
its RSS up by at most 0.3 MiB after the balloon emptied."""
FIELDS = ("actual_mib", "memtotal_mib", "memavailable_mib", "available_mib", "usable_mib")
"""The numbers the model predicts exactly (each within :data:`TOLERANCE_MIB`)."""


@dataclass(frozen=True)
class BalloonStep:
    """The guest at one step, in MiB: what libvirt, the guest and the host say.

    ``available_mib``/``usable_mib`` are the balloon's own statistics
    (``virDomain.memoryStats()``); ``memtotal_mib``/``memavailable_mib`` what the guest
    printed from ``/proc/meminfo``; ``rss_mib`` the QEMU process's ``VmRSS`` (a range
    ``rss_low_mib``-``rss_high_mib`` in a prediction; ``rss_low_mib`` None: unbounded).
    """

    target_mib: int
    actual_mib: float
    memtotal_mib: float
    memavailable_mib: float
    available_mib: float
    usable_mib: float
    rss_mib: float | None = None
    rss_low_mib: float | None = None
    rss_high_mib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BalloonStep:
        return cls(**{f: d.get(f) for f in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass
class BalloonRunResult(MemoryResult):
    """A balloon run: the guest at the start (balloon empty) and after each target."""

    scenario: BalloonRunScenario
    source: str
    start: BalloonStep
    steps: tuple[BalloonStep, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ScenarioError(f"a result's source is one of {SOURCES}, not {self.source!r}")
        self.steps = tuple(self.steps)
        if len(self.steps) != len(self.scenario.targets_mib):
            raise ScenarioError(f"a balloon run has one step per target "
                                f"({len(self.scenario.targets_mib)}), not {len(self.steps)}")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "scenario": self.scenario.to_dict(),
                "start": self.start.to_dict(), "steps": [s.to_dict() for s in self.steps],
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BalloonRunResult:
        return cls(BalloonRunScenario.from_dict(d["scenario"]), d["source"],
                   BalloonStep.from_dict(d["start"]),
                   tuple(BalloonStep.from_dict(s) for s in d["steps"]),
                   dict(d.get("provenance", {})))

    def table(self) -> str:
        """The run as text, one line per step (MiB)."""
        lines = [f"{'target':>7}{'actual':>8}{'MemTotal':>10}{'MemAvail':>10}{'QEMU RSS':>18}"]
        for s in (self.start, *self.steps):
            if s.rss_mib is not None:
                rss = f"{s.rss_mib:.1f}"
            else:
                low = "-" if s.rss_low_mib is None else f"{s.rss_low_mib:.1f}"
                rss = f"{low}..{s.rss_high_mib:.1f}"
            lines.append(f"{s.target_mib:>7}{s.actual_mib:>8.1f}{s.memtotal_mib:>10.1f}"
                         f"{s.memavailable_mib:>10.1f}{rss:>18}")
        return "\n".join(lines)


def _rss_error(model: BalloonRunResult, measured: BalloonRunResult, i: int) -> float:
    """How far the measured RSS change is outside the model's range (0 inside), MiB."""
    real, real0 = measured.steps[i].rss_mib, measured.start.rss_mib
    if real is None or real0 is None:
        return 0.0
    step, base = model.steps[i], _rss_base(model.start)
    high = (step.rss_high_mib if step.rss_mib is None else step.rss_mib)
    low = (step.rss_low_mib if step.rss_mib is None else step.rss_mib)
    change = real - real0
    above = change - (high - base) if high is not None else 0.0
    below = (low - base) - change if low is not None else 0.0
    return max(0.0, above, below)


def _rss_base(start: BalloonStep) -> float:
    base = start.rss_mib if start.rss_mib is not None else start.rss_high_mib
    if base is None:
        raise ScenarioError("a balloon run's start needs its RSS (rss_mib or rss_high_mib)")
    return base


@dataclass(frozen=True)
class BalloonRunComparison(Comparison):
    """The model's balloon run next to a real one, step by step.

    Both are judged by how each number *changed* from the run's start (the balloon
    empty): the model knows what the balloon does, not how much the guest's kernel keeps
    for itself. ``max_error`` (MiB) is the largest difference of those changes over
    :data:`FIELDS` and the steps, or how far the RSS's change is outside the model's
    range; they agree within :data:`TOLERANCE_MIB`.
    """

    simulated: BalloonRunResult
    measured: BalloonRunResult

    def errors(self) -> list[dict[str, float]]:
        """Per step, each field's difference of change (MiB)."""
        out = []
        s0, m0 = self.simulated.start, self.measured.start
        for i, (s, m) in enumerate(zip(self.simulated.steps, self.measured.steps,
                                       strict=True)):
            row = {f: round(abs((getattr(s, f) - getattr(s0, f))
                                - (getattr(m, f) - getattr(m0, f))), 3) for f in FIELDS}
            row["rss_mib"] = round(_rss_error(self.simulated, self.measured, i), 3)
            out.append(row)
        return out

    @property
    def max_error(self) -> float:
        return float(max((max(r.values()) for r in self.errors()), default=0.0))

    @property
    def agrees(self) -> bool:
        return self.max_error <= TOLERANCE_MIB

    def details(self) -> dict[str, Any]:
        return {"kind": "balloon-run", "tolerance_mib": TOLERANCE_MIB,
                "steps": [{"target_mib": s.target_mib, "model": s.to_dict(),
                           "measured": m.to_dict(), "error_mib": e}
                          for s, m, e in zip(self.simulated.steps, self.measured.steps,
                                             self.errors(), strict=True)]}

    def table(self) -> str:
        lines = [f"{'target':>7}{'MemTotal model':>16}{'real':>8}{'MemAvail model':>16}"
                 f"{'real':>8}{'RSS model':>16}{'real':>8}"]
        for s, m in zip(self.simulated.steps, self.measured.steps, strict=True):
            low = "-" if s.rss_low_mib is None else f"{s.rss_low_mib:.0f}"
            rss = f"{low}..{s.rss_high_mib:.0f}"
            real = "-" if m.rss_mib is None else f"{m.rss_mib:.1f}"
            lines.append(f"{s.target_mib:>7}{s.memtotal_mib:>16.1f}{m.memtotal_mib:>8.1f}"
                         f"{s.memavailable_mib:>16.1f}{m.memavailable_mib:>8.1f}"
                         f"{rss:>16}{real:>8}")
        lines.append(f"agrees: {self.agrees}; largest difference {self.max_error:g} MiB "
                     f"(tolerance {TOLERANCE_MIB:g})")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        from kvmlab.memory.plot import balloon_run_lines

        return balloon_run_lines(self.simulated, self.measured, ax=ax)


def compare_balloon_runs(simulated: BalloonRunResult, measured: BalloonRunResult
                         ) -> BalloonRunComparison:
    """The model's run next to a measured one (``kvmlab.memory.compare`` first puts the
    model on the measured start, so that its table shows the same numbers).

    Raises
    ------
    ScenarioError
        If the two runs are not balloon runs of one scenario.
    """
    if not isinstance(simulated, BalloonRunResult) or not isinstance(measured,
                                                                     BalloonRunResult):
        raise ScenarioError("compare takes two BalloonRunResult results")
    if simulated.scenario != measured.scenario:
        raise ScenarioError("the two balloon runs are of different scenarios: simulate the "
                            "measured run's scenario")
    return BalloonRunComparison(simulated, measured)


def explain_fit(plan: BalloonResult) -> str:
    """Why a balloon plan fits its host or not, in a sentence.

    Examples
    --------
    >>> from kvmlab.memory.model import simulate
    >>> plan = simulate("memory-balloon-three-guests")
    >>> print(explain_fit(plan))                      # doctest: +NORMALIZE_WHITESPACE
    It does not fit: the balloons take back 3072 MiB of the 12288 MiB promised, so the
    guests may still use 9216 MiB, 1024 MiB more than the host's 8192 MiB; the balloons
    would have to hold 1024 MiB more (or the host must swap).
    """
    back = plan.promised_mib - plan.needed_mib
    head = (f"the balloons take back {back} MiB of the {plan.promised_mib} MiB promised, so "
            f"the guests may still use {plan.needed_mib} MiB")
    gap = plan.needed_mib - plan.host_mib
    if gap > 0:
        return (f"It does not fit: {head}, {gap} MiB more than the host's {plan.host_mib} "
                f"MiB; the balloons would have to hold {gap} MiB more (or the host must "
                "swap).")
    return (f"It fits: {head}, within the host's {plan.host_mib} MiB ({-gap} MiB to "
            "spare).")


def balloon_series(result: BalloonRunResult, name: str) -> list[float | None]:
    """One field of every step, the start first (for plots)."""
    return [getattr(s, name) for s in (result.start, *result.steps)]


__all__ = ["FIELDS", "TOLERANCE_MIB", "BalloonRunComparison", "BalloonRunResult",
           "BalloonStep", "balloon_series", "compare_balloon_runs", "explain_fit"]
