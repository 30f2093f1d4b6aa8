"""What one scheduling decision of the CPU model costs, and how that grows with vCPUs.

Two measurements, each against a baseline timed in the same run:

overhead
    Scheduling decisions per second of :func:`kvmlab.cpu.model.simulate` (fair
    scheduler, no timeline) next to a *bare simpy loop*: as many simpy processes
    as the scenario has pCPUs, doing between them exactly as many
    ``env.timeout(slice)`` steps as the model made scheduling decisions, with no
    scheduling logic at all. ``ratio`` is the model's cost per event divided by
    the bare loop's: how much the scheduler adds on top of simpy itself.
scaling
    The same comparison for 10, 100, 1,000 and 10,000 vCPUs (VMs of 2 vCPUs,
    pCPUs = vCPUs / 2, so 2x overcommit), all simulated for the same time, so
    the number of events grows with the number of vCPUs. ``slope`` is the slope
    of log(time) against log(events) over all sizes: 1 means the cost is
    linear in the number of events, 2 quadratic. The bare loop's slope is the
    reference for what simpy alone does.

An *event* is one scheduling decision: a pCPU picks a vCPU and runs it for one
time slice. The events of a run are the sum of the ``slices`` of its vCPUs.

Timing follows :mod:`timeit`: ``time.perf_counter``, the garbage collector
switched off during each timed run (and the run's garbage collected after it,
untimed), the best of a few repeats reported (the median is in the JSON too).
Runs of the model and of the bare loop alternate. A measurement runs 3 times
(the overhead one 5 times), fewer once its runs add up to 45 s, more (up to
100) while they add up to less than 0.25 s: see :class:`Repeats`.

Examples
--------
>>> once = Repeats(times=1, min_total_s=0)
>>> events, timing = time_model(busy_scenario(4, duration_s=0.06), once)
>>> events                       # 2 pCPUs, 20 slices of 3 ms each
40
>>> time_bare(processes=2, events=events, slice_s=0.003, repeats=once)[0]
40
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import simpy

from kvmlab.cpu.model import simulate
from kvmlab.cpu.scenario import CpuScenario

T = TypeVar("T")

#: vCPU counts of the scaling benchmark.
SIZES: tuple[int, ...] = (10, 100, 1000, 10000)
#: Simulated seconds of each scaling run: 100 slices of 3 ms per pCPU.
SCALING_DURATION_S = 0.3
#: The overhead scenario: 16 vCPUs on 8 pCPUs for 75 s, 200,000 scheduling decisions.
OVERHEAD_VCPUS = 16
OVERHEAD_DURATION_S = 75.0
#: Sizes and durations of ``run(quick=True)``: a smoke run of well under a second.
QUICK_SIZES: tuple[int, ...] = (2, 4, 8)
QUICK_DURATION_S = 0.03


@dataclass(frozen=True)
class Repeats:
    """How many times :func:`measure` runs what it times.

    It runs ``times`` times, but stops early once the runs add up to
    ``budget_s`` seconds (it always runs once), and goes on (up to ``max_times``)
    while they add up to less than ``min_total_s``, so a run of a few
    milliseconds is repeated often enough for its best time to mean something.

    Examples
    --------
    >>> Repeats(times=3).more(2, 0.5), Repeats(times=3).more(3, 0.5)
    (True, False)
    >>> Repeats(times=3, budget_s=1.0).more(1, 2.0)     # out of budget
    False
    >>> Repeats(times=1, min_total_s=0.2).more(1, 0.01) # too short to trust yet
    True
    """

    times: int = 3
    budget_s: float = 45.0
    min_total_s: float = 0.25
    max_times: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.times <= self.max_times:
            raise ValueError(f"times must be between 1 and max_times ({self.max_times}), "
                             f"not {self.times}")

    def more(self, done: int, total_s: float) -> bool:
        """Whether to run again after ``done`` runs that took ``total_s`` seconds in all."""
        if total_s >= self.budget_s or done >= self.max_times:
            return False
        return done < self.times or total_s < self.min_total_s


#: Each scaling measurement, and the overhead one.
REPEATS = Repeats()
OVERHEAD_REPEATS = Repeats(times=5)
#: ``run(quick=True)``: run once.
QUICK_REPEATS = Repeats(times=1, min_total_s=0.0)


@dataclass(frozen=True)
class Timing:
    """The wall-clock seconds of the repeats of one measurement of ``events`` events.

    Examples
    --------
    >>> t = Timing(events=1000, times_s=(0.004, 0.002, 0.003))
    >>> t.best_s, t.median_s, t.us_per_event, t.events_per_s
    (0.002, 0.003, 2.0, 500000.0)
    """

    events: int
    times_s: tuple[float, ...] = field(default_factory=tuple)

    @property
    def best_s(self) -> float:
        """The fastest repeat, in seconds (the least disturbed by the rest of the machine)."""
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        """The median repeat, in seconds."""
        return statistics.median(self.times_s)

    @property
    def us_per_event(self) -> float:
        """Microseconds per event of the best repeat."""
        return 1e6 * self.best_s / self.events

    @property
    def events_per_s(self) -> float:
        """Events per second of the best repeat."""
        return self.events / self.best_s

    def to_dict(self) -> dict[str, Any]:
        """The timing as JSON-ready data."""
        return {"events": self.events, "repeats": len(self.times_s),
                "times_s": [round(t, 6) for t in self.times_s],
                "best_s": round(self.best_s, 6), "median_s": round(self.median_s, 6),
                "us_per_event": round(self.us_per_event, 4),
                "events_per_s": round(self.events_per_s, 1)}


def measure(fn: Callable[[], T],
            repeats: Repeats = REPEATS) -> tuple[T, tuple[float, ...]]:
    """Time ``fn()`` a few times, the way :mod:`timeit` does.

    During each run the garbage collector is off, so a collection caused by
    earlier garbage is not charged to this run; its previous state is restored
    afterwards. Between runs (outside the timing) the youngest generation is
    collected: with the collector off, everything a run allocated is still in it,
    so this frees the run's reference cycles (a big model's can take gigabytes)
    without walking every object of the process. Call ``gc.collect()`` once
    before a series of measurements for a clean start.

    Parameters
    ----------
    fn : callable
        What to time; called with no arguments.
    repeats : Repeats
        How many times to run it.

    Returns
    -------
    tuple
        The value of the last call, and the seconds of each run.

    Examples
    --------
    >>> value, times = measure(lambda: sum(range(100)), Repeats(times=3, min_total_s=0))
    >>> value, len(times), all(t > 0 for t in times)
    (4950, 3, True)
    """
    times: list[float] = []
    value: T
    while not times or repeats.more(len(times), sum(times)):
        value, seconds = timed(fn)
        times.append(seconds)
    gc.collect(0)
    return value, tuple(times)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn()`` once with the garbage collector off; return its value and seconds.

    The youngest generation is collected first, untimed (see :func:`measure`).

    Parameters
    ----------
    fn : callable
        What to time; called with no arguments.

    Returns
    -------
    tuple
        What ``fn()`` returned, and the seconds it took (``time.perf_counter``).
    """
    gc.collect(0)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        value = fn()
        return value, time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()


def busy_scenario(vcpus: int, duration_s: float, slice_ms: float = 3.0) -> CpuScenario:
    """``vcpus`` busy vCPUs in VMs of 2, on ``vcpus / 2`` pCPUs (2x overcommit).

    Parameters
    ----------
    vcpus : int
        Total vCPUs; an even number, at least 2.
    duration_s : float
        Simulated seconds.
    slice_ms : float
        The scheduler's time slice.

    Returns
    -------
    CpuScenario

    Examples
    --------
    >>> s = busy_scenario(10, 1.0)
    >>> s.pcpus, len(s.vms), s.overcommit
    (5, 5, 2.0)
    """
    if vcpus < 2 or vcpus % 2:
        raise ValueError(f"vcpus must be an even number of at least 2, not {vcpus}")
    return CpuScenario.from_dict({
        "pcpus": vcpus // 2, "duration_s": duration_s, "slice_ms": slice_ms,
        "name": f"bench-{vcpus}-vcpus",
        "vms": [{"name": f"vm{i}", "vcpus": 2} for i in range(vcpus // 2)]})


def model_events(scenario: CpuScenario) -> int:
    """Simulate ``scenario`` (fair scheduler, no timeline); return its scheduling decisions.

    Parameters
    ----------
    scenario : CpuScenario

    Returns
    -------
    int
        The sum of the vCPUs' ``slices``.
    """
    result = simulate(scenario, seed=0, scheduler="fair", record_timeline=False)
    return sum(v.slices for v in result.vcpus)


def time_model(scenario: CpuScenario, repeats: Repeats = REPEATS) -> tuple[int, Timing]:
    """Time ``simulate(scenario)`` with the fair scheduler and no timeline.

    Parameters
    ----------
    scenario : CpuScenario
    repeats : Repeats
        How many times to run it (see :func:`measure`).

    Returns
    -------
    tuple
        The number of scheduling decisions of a run (the sum of the vCPUs'
        slices; every repeat makes the same ones), and the timing.
    """
    events, times = measure(lambda: model_events(scenario), repeats)
    return events, Timing(events, times)


def _ticker(env: simpy.Environment, steps: int, slice_s: float,
            done: list[int]) -> Iterator[simpy.Event]:
    """A process that waits one slice ``steps`` times and counts the steps it made."""
    for _ in range(steps):
        yield env.timeout(slice_s)
    done[0] += steps


def bare_loop(processes: int, events: int, slice_s: float) -> int:
    """Run ``events`` timeouts of ``slice_s`` in ``processes`` simpy processes, no logic.

    Parameters
    ----------
    processes : int
        Number of simpy processes (the model has one per pCPU).
    events : int
        Total ``env.timeout`` steps, shared as evenly as possible.
    slice_s : float
        The delay of each step.

    Returns
    -------
    int
        The steps the processes made (``events``, counted by the processes).

    Examples
    --------
    >>> bare_loop(processes=3, events=10, slice_s=0.003)
    10
    """
    env = simpy.Environment()
    done = [0]
    share, extra = divmod(events, processes)
    for i in range(processes):
        env.process(_ticker(env, share + (i < extra), slice_s, done))
    env.run()
    return done[0]


def time_bare(processes: int, events: int, slice_s: float,
              repeats: Repeats = REPEATS) -> tuple[int, Timing]:
    """Time :func:`bare_loop`; return the events it made and the timing.

    Parameters
    ----------
    processes, events, slice_s
        As for :func:`bare_loop`.
    repeats : Repeats
        How many times to run it (see :func:`measure`).

    Returns
    -------
    tuple
        The number of steps the bare loop made, and the timing.
    """
    done, times = measure(lambda: bare_loop(processes, events, slice_s), repeats)
    return done, Timing(done, times)


def compare_with_bare(scenario: CpuScenario, repeats: Repeats = REPEATS) -> dict[str, Any]:
    """Time the model on ``scenario`` and a bare simpy loop with the same events.

    The runs alternate (model, bare loop, model, bare loop, ...), so a machine
    that gets faster or slower during the measurement affects both alike. Each
    round's bare loop does as many events as that round's model run made.

    Parameters
    ----------
    scenario : CpuScenario
        A scenario of busy vCPUs (see :func:`busy_scenario`).
    repeats : Repeats
        How many rounds to run; the time limits count both runs of a round.

    Returns
    -------
    dict
        ``vcpus``, ``pcpus``, ``vms``, ``duration_s``, ``slice_ms``, ``events``,
        the ``model`` and ``bare`` timings (see :meth:`Timing.to_dict`; the bare
        loop's ``events`` are the steps it counted), ``ratio``, the model's best
        time per event divided by the bare loop's, and ``paired_ratio``, the
        median over rounds of the model's time divided by the bare loop's.

    Raises
    ------
    RuntimeError
        If two runs of the model made different numbers of decisions, or the
        bare loop did not do as many events (both would be bugs).
    """
    slice_s = scenario.slice_ms / 1000
    model_s: list[float] = []
    bare_s: list[float] = []
    events: int | None = None
    while not model_s or repeats.more(len(model_s), sum(model_s) + sum(bare_s)):
        made, seconds = timed(lambda: model_events(scenario))
        done, bare_seconds = timed(lambda made=made: bare_loop(scenario.pcpus, made, slice_s))
        if made != (events if events is not None else made) or done != made:
            raise RuntimeError(f"event counts differ: model {events} then {made}, "
                               f"bare loop {done}")
        events = made
        model_s.append(seconds)
        bare_s.append(bare_seconds)
    gc.collect(0)
    assert events is not None
    model, bare = Timing(events, tuple(model_s)), Timing(events, tuple(bare_s))
    paired = statistics.median(m / b for m, b in zip(model_s, bare_s, strict=True))
    return {"vcpus": scenario.total_vcpus, "pcpus": scenario.pcpus, "vms": len(scenario.vms),
            "duration_s": scenario.duration_s, "slice_ms": scenario.slice_ms,
            "events": events, "model": model.to_dict(), "bare": bare.to_dict(),
            "ratio": round(model.us_per_event / bare.us_per_event, 3),
            "paired_ratio": round(paired, 3)}


def loglog_slope(events: Sequence[float], seconds: Sequence[float]) -> float:
    """The least-squares slope of log(seconds) against log(events).

    1 means time grows linearly with the number of events, 2 quadratically.

    Examples
    --------
    >>> loglog_slope([10, 100, 1000], [0.1, 1.0, 10.0])
    1.0
    >>> round(loglog_slope([10, 100, 1000], [0.01, 1.0, 100.0]), 6)
    2.0
    """
    if len(events) != len(seconds) or len(events) < 2:
        raise ValueError("a slope needs at least two (events, seconds) points")
    xs = [math.log(e) for e in events]
    ys = [math.log(s) for s in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a slope needs at least two different event counts")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def bench_overhead(vcpus: int = OVERHEAD_VCPUS, duration_s: float = OVERHEAD_DURATION_S, *,
                   repeats: Repeats = OVERHEAD_REPEATS) -> dict[str, Any]:
    """Scheduling decisions per second of the model against a bare simpy loop.

    Parameters
    ----------
    vcpus : int
        vCPUs of the scenario (VMs of 2, on ``vcpus / 2`` pCPUs).
    duration_s : float
        Simulated seconds; each pCPU makes ``duration_s / slice`` decisions.
    repeats : Repeats
        How many times to run it (see :func:`measure`).

    Returns
    -------
    dict
        As :func:`compare_with_bare`.
    """
    return compare_with_bare(busy_scenario(vcpus, duration_s), repeats)


def bench_scaling(sizes: Sequence[int] = SIZES, duration_s: float = SCALING_DURATION_S, *,
                  repeats: Repeats = REPEATS,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """How the model's cost grows with the number of vCPUs, at 2x overcommit.

    Parameters
    ----------
    sizes : sequence of int
        vCPU counts (even numbers), at least two different ones.
    duration_s : float
        Simulated seconds of every size, so the events grow with the vCPUs.
    repeats : Repeats
        How many times to run each measurement.
    log : callable, optional
        Called with a line of progress before each size.

    Returns
    -------
    dict
        ``duration_s``, ``sizes`` (one :func:`compare_with_bare` result per size,
        with ``peak_rss_mb``, the process's peak memory so far, where known),
        ``slope`` and ``bare_slope`` (:func:`loglog_slope` of the best times),
        and ``local_slopes`` between consecutive sizes.
    """
    rows = []
    for vcpus in sizes:
        if log is not None:
            log(f"cpu scaling: {vcpus} vCPUs ...")
        row = compare_with_bare(busy_scenario(vcpus, duration_s), repeats)
        row["peak_rss_mb"] = _peak_rss_mb()
        rows.append(row)
    events = [r["events"] for r in rows]
    model_s = [r["model"]["best_s"] for r in rows]
    bare_s = [r["bare"]["best_s"] for r in rows]
    local = [{"from_vcpus": a["vcpus"], "to_vcpus": b["vcpus"],
              "slope": round(loglog_slope([a["events"], b["events"]],
                                          [a["model"]["best_s"], b["model"]["best_s"]]), 3)}
             for a, b in itertools.pairwise(rows)]
    return {"duration_s": duration_s, "sizes": rows,
            "slope": round(loglog_slope(events, model_s), 3),
            "bare_slope": round(loglog_slope(events, bare_s), 3),
            "local_slopes": local}


def _peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MB (None where unknown)."""
    try:
        import resource
    except ImportError:                                 # pragma: no cover - not Unix
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def environment() -> dict[str, Any]:
    """Where the numbers were measured: Python, simpy, machine and time."""
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "simpy": getattr(simpy, "__version__", "?"), "machine": platform.machine(),
            "system": platform.system(), "cpu_count": os.cpu_count(),
            "when": datetime.now(UTC).isoformat(timespec="seconds")}


def run(quick: bool = False, sizes: Sequence[int] | None = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run both CPU benchmarks.

    Parameters
    ----------
    quick : bool
        Tiny sizes and one repeat: a smoke run that checks the benchmark works,
        in well under a second. Its numbers mean little.
    sizes : sequence of int, optional
        vCPU counts of the scaling benchmark (default ``SIZES``, or
        ``QUICK_SIZES`` when quick).
    log : callable, optional
        Called with a line of progress before each measurement.

    Returns
    -------
    dict
        ``environment``, ``overhead`` (:func:`bench_overhead`) and ``scaling``
        (:func:`bench_scaling`).
    """
    gc.collect()
    if quick:
        sizes = QUICK_SIZES if sizes is None else sizes
        if log is not None:
            log("cpu overhead ...")
        overhead = bench_overhead(4, QUICK_DURATION_S * 10, repeats=QUICK_REPEATS)
        scaling = bench_scaling(sizes, QUICK_DURATION_S, repeats=QUICK_REPEATS, log=log)
    else:
        sizes = SIZES if sizes is None else sizes
        if log is not None:
            log("cpu overhead ...")
        overhead = bench_overhead()
        scaling = bench_scaling(sizes, log=log)
    return {"environment": environment(), "overhead": overhead, "scaling": scaling}


def format_table(result: dict[str, Any]) -> str:
    """The result of :func:`run` as a readable table.

    Parameters
    ----------
    result : dict
        What :func:`run` returned.

    Returns
    -------
    str
    """
    env, o, s = result["environment"], result["overhead"], result["scaling"]
    m, b = o["model"], o["bare"]
    lines = [
        f"CPU model benchmark (Python {env['python']}, simpy {env['simpy']}, "
        f"{env['cpu_count']} CPUs)",
        "",
        "1. Scheduling decisions per second, fair scheduler, no timeline",
        f"   {o['vcpus']} vCPUs in {o['vms']} VMs on {o['pcpus']} pCPUs, "
        f"{o['duration_s']:g} s simulated, {o['events']:,} events, "
        f"best of {m['repeats']} alternating rounds",
        f"   {'':<20}{'events/s':>12}{'us/event':>10}{'(median)':>10}",
        f"   {'kvmlab model':<20}{m['events_per_s']:>12,.0f}{m['us_per_event']:>10.2f}"
        f"{1e6 * m['median_s'] / m['events']:>10.2f}",
        f"   {'bare simpy loop':<20}{b['events_per_s']:>12,.0f}{b['us_per_event']:>10.2f}"
        f"{1e6 * b['median_s'] / b['events']:>10.2f}",
        f"   ratio (model / bare simpy, per event): {o['ratio']:.2f}x best / best, "
        f"{o['paired_ratio']:.2f}x median of paired runs",
        "",
        f"2. Growth with vCPUs: VMs of 2 vCPUs, 2x overcommit, "
        f"{s['duration_s']:g} s simulated at every size",
        f"   {'vCPUs':>6}{'pCPUs':>7}{'events':>10}{'model s':>10}{'us/event':>10}"
        f"{'bare us/ev':>12}{'ratio':>8}{'runs':>6}{'peak MB':>9}",
    ]
    for r in s["sizes"]:
        rss = r.get("peak_rss_mb")
        lines.append(
            f"   {r['vcpus']:>6}{r['pcpus']:>7}{r['events']:>10,}{r['model']['best_s']:>10.4g}"
            f"{r['model']['us_per_event']:>10.2f}{r['bare']['us_per_event']:>12.2f}"
            f"{r['ratio']:>8.1f}{r['model']['repeats']:>6}"
            f"{(f'{rss:,.0f}' if rss is not None else '?'):>9}")
    local = ", ".join(f"{x['from_vcpus']}->{x['to_vcpus']}: {x['slope']:.2f}"
                      for x in s["local_slopes"])
    lines += [
        f"   slope of log(time) vs log(events): model {s['slope']:.2f}, "
        f"bare simpy {s['bare_slope']:.2f}  (1 = linear)",
        f"   local slopes of the model: {local}",
    ]
    return "\n".join(lines)


__all__ = [
    "SIZES",
    "Repeats",
    "Timing",
    "bare_loop",
    "bench_overhead",
    "bench_scaling",
    "busy_scenario",
    "compare_with_bare",
    "format_table",
    "loglog_slope",
    "measure",
    "model_events",
    "run",
    "time_bare",
    "time_model",
    "timed",
]
