"""What one scheduling decision of the CPU model costs, and how that grows with vCPUs.

Two measurements, each against a baseline timed in the same run:

overhead
    Scheduling decisions per second of :func:`kvmlab.cpu.model.simulate` (the
    fair scheduler unless told another, no timeline) next to a *bare simpy loop*:
    as many simpy processes as the scenario has pCPUs, doing between them exactly
    as many ``env.timeout(slice)`` steps as the model made scheduling decisions,
    with no scheduling logic at all: what simpy alone costs a model that spends
    one simpy event on each decision. ``ratio`` is the model's cost per decision
    divided by the bare loop's. (The model wakes all pCPUs whose slices end at the
    same instant in one simpy event, so it may cost less than the bare loop.)
scaling
    The same comparison for 10, 100, 1,000 and 10,000 vCPUs (VMs of 2 vCPUs,
    pCPUs = vCPUs / 2, so 2x overcommit), all simulated for the same time, so
    the number of events grows with the number of vCPUs. ``slope`` is the slope
    of log(time) against log(events) over all sizes: 1 means the cost is
    linear in the number of events, 2 quadratic. The bare loop's slope is the
    reference for what simpy alone does.

An *event* is one scheduling decision: a pCPU picks a vCPU and runs it for one
time slice. The events of a run are the sum of the ``slices`` of its vCPUs. The
``linux`` scheduler also schedules each VM's QEMU main-loop thread, hundreds of times
a second: its events are all its context switches, to a thread of either kind.
Every function takes the ``scheduler`` to run (any that :func:`simulate` knows).

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
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import simpy

from benchmarks.timing import (
    Repeats,
    Timing,
    environment,
    measure,
    peak_rss_mb,
    timed,
)
from kvmlab.cpu.linux import simulate_linux
from kvmlab.cpu.model import simulate
from kvmlab.cpu.scenario import (
    MAX_PCPUS,
    MAX_VCPUS,
    CpuScenario,
    VmSpec,
    overcommit_scenario,
)

#: The scheduler benchmarked unless told another.
SCHEDULER = "fair"
#: vCPU counts of the scaling benchmark.
SIZES: tuple[int, ...] = (10, 100, 1000, 10000)
#: Simulated seconds of each scaling run: 100 slices of 3 ms per pCPU.
SCALING_DURATION_S = 0.3
#: The overhead scenario: 16 vCPUs on 8 pCPUs for 75 s: 200,000 scheduling decisions of the
#: fair scheduler, some 900,000 context switches of the linux one.
OVERHEAD_VCPUS = 16
OVERHEAD_DURATION_S = 75.0
#: Sizes and durations of ``run(quick=True)``: a smoke run of well under a second.
QUICK_SIZES: tuple[int, ...] = (2, 4, 8)
QUICK_DURATION_S = 0.03


#: Each scaling measurement, and the overhead one.
REPEATS = Repeats()
OVERHEAD_REPEATS = Repeats(times=5)
#: ``run(quick=True)``: run once.
QUICK_REPEATS = Repeats(times=1, min_total_s=0.0)


def busy_scenario(vcpus: int, duration_s: float, slice_ms: float = 3.0) -> CpuScenario:
    """``vcpus`` busy vCPUs in VMs of 2, on ``vcpus / 2`` pCPUs (2x overcommit).

    The scenario of the ``cpu-overcommit`` sweep at ratio 2
    (:func:`kvmlab.cpu.overcommit_scenario`), named after its size. A host
    larger than a scenario may be (:data:`~kvmlab.cpu.scenario.MAX_PCPUS` pCPUs,
    :data:`~kvmlab.cpu.scenario.MAX_VCPUS` vCPUs) is built with the same VMs but
    without the checks: the bounds protect users from long runs, and the model
    itself has no limit.

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
    >>> busy_scenario(10_000, 0.3).vms[-1]
    VmSpec(name='vm5000', vcpus=2, pin=None, shares=1024, load=1.0, period_ms=200.0, trace=None)
    """
    if vcpus < 2 or vcpus % 2:
        raise ValueError(f"vcpus must be an even number of at least 2, not {vcpus}")
    name = f"bench-{vcpus}-vcpus"
    if vcpus // 2 <= MAX_PCPUS and vcpus <= MAX_VCPUS:
        scenario = overcommit_scenario(2, pcpus=vcpus // 2, vcpus_per_vm=2,
                                       duration_s=duration_s, slice_ms=slice_ms)
        return replace(scenario, name=name)
    vms = tuple(VmSpec(f"vm{i + 1}", 2, load=1.0) for i in range(vcpus // 2))
    return CpuScenario(pcpus=vcpus // 2, duration_s=float(duration_s), vms=vms,
                       slice_ms=float(slice_ms), name=name)


def check_scheduler(scheduler: str) -> None:
    """Raise ScenarioError, naming the known ones, if :func:`simulate` has no ``scheduler``.

    Runs the model on 2 vCPUs for one slice, so it also fails early if the
    scheduler breaks at once.

    Examples
    --------
    >>> check_scheduler("fair")
    >>> check_scheduler("lottery")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: scheduler 'lottery' is not one of ...
    """
    simulate(busy_scenario(2, 0.003), scheduler=scheduler, record_timeline=False)


def model_events(scenario: CpuScenario, scheduler: str = SCHEDULER) -> int:
    """Simulate ``scenario`` (no timeline); return its scheduling decisions.

    Parameters
    ----------
    scenario : CpuScenario
    scheduler : str
        Passed to :func:`simulate` (``linux``: to :func:`simulate_linux`, unbounded).

    Returns
    -------
    int
        The sum of the vCPUs' ``slices``; for the ``linux`` scheduler, every switch of a
        pCPU to another thread (``provenance['context_switches']``): its QEMU main-loop
        threads are scheduled as the vCPU threads are.
    """
    if scheduler == "linux":       # the benchmark's sizes go past the model's bound for users
        result = simulate_linux(scenario, seed=0, max_cost=None)
        return int(result.provenance["context_switches"])
    result = simulate(scenario, seed=0, scheduler=scheduler, record_timeline=False)
    return sum(v.slices for v in result.vcpus)


def time_model(scenario: CpuScenario, repeats: Repeats = REPEATS,
               scheduler: str = SCHEDULER) -> tuple[int, Timing]:
    """Time ``simulate(scenario, scheduler=scheduler)`` with no timeline.

    Parameters
    ----------
    scenario : CpuScenario
    repeats : Repeats
        How many times to run it (see :func:`measure`).
    scheduler : str
        Passed to :func:`simulate`.

    Returns
    -------
    tuple
        The number of scheduling decisions of a run (:func:`model_events`; every
        repeat makes the same ones), and the timing.
    """
    events, times = measure(lambda: model_events(scenario, scheduler), repeats)
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


def compare_with_bare(scenario: CpuScenario, repeats: Repeats = REPEATS,
                      scheduler: str = SCHEDULER) -> dict[str, Any]:
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
    scheduler : str
        The model's scheduler.

    Returns
    -------
    dict
        ``scheduler``, ``vcpus``, ``pcpus``, ``vms``, ``duration_s``, ``slice_ms``, ``events``,
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
        made, seconds = timed(lambda: model_events(scenario, scheduler))
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
    return {"scheduler": scheduler,
            "vcpus": scenario.total_vcpus, "pcpus": scenario.pcpus, "vms": len(scenario.vms),
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
                   repeats: Repeats = OVERHEAD_REPEATS,
                   scheduler: str = SCHEDULER) -> dict[str, Any]:
    """Scheduling decisions per second of the model against a bare simpy loop.

    Parameters
    ----------
    vcpus : int
        vCPUs of the scenario (VMs of 2, on ``vcpus / 2`` pCPUs).
    duration_s : float
        Simulated seconds; each pCPU makes ``duration_s / slice`` decisions.
    repeats : Repeats
        How many times to run it (see :func:`measure`).
    scheduler : str
        The model's scheduler.

    Returns
    -------
    dict
        As :func:`compare_with_bare`.
    """
    return compare_with_bare(busy_scenario(vcpus, duration_s), repeats, scheduler)


def bench_scaling(sizes: Sequence[int] = SIZES, duration_s: float = SCALING_DURATION_S, *,
                  repeats: Repeats = REPEATS, log: Callable[[str], None] | None = None,
                  scheduler: str = SCHEDULER) -> dict[str, Any]:
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
    scheduler : str
        The model's scheduler.

    Returns
    -------
    dict
        ``scheduler``, ``duration_s``, ``sizes`` (one :func:`compare_with_bare` result per size,
        with ``peak_rss_mb``, the process's peak memory so far, where known),
        ``slope`` and ``bare_slope`` (:func:`loglog_slope` of the best times),
        and ``local_slopes`` between consecutive sizes.
    """
    rows = []
    for vcpus in sizes:
        if log is not None:
            log(f"cpu scaling ({scheduler}): {vcpus} vCPUs ...")
        row = compare_with_bare(busy_scenario(vcpus, duration_s), repeats, scheduler)
        row["peak_rss_mb"] = peak_rss_mb()
        rows.append(row)
    events = [r["events"] for r in rows]
    model_s = [r["model"]["best_s"] for r in rows]
    bare_s = [r["bare"]["best_s"] for r in rows]
    local = [{"from_vcpus": a["vcpus"], "to_vcpus": b["vcpus"],
              "slope": round(loglog_slope([a["events"], b["events"]],
                                          [a["model"]["best_s"], b["model"]["best_s"]]), 3)}
             for a, b in itertools.pairwise(rows)]
    return {"scheduler": scheduler, "duration_s": duration_s, "sizes": rows,
            "slope": round(loglog_slope(events, model_s), 3),
            "bare_slope": round(loglog_slope(events, bare_s), 3),
            "local_slopes": local}


def run(quick: bool = False, sizes: Sequence[int] | None = None,
        log: Callable[[str], None] | None = None,
        scheduler: str = SCHEDULER) -> dict[str, Any]:
    """Run both CPU benchmarks on one scheduler.

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
    scheduler : str
        The model's scheduler (see :func:`check_scheduler`).

    Returns
    -------
    dict
        ``environment``, ``scheduler``, ``overhead`` (:func:`bench_overhead`) and
        ``scaling`` (:func:`bench_scaling`).

    Raises
    ------
    ScenarioError
        If :func:`simulate` does not know ``scheduler`` (before anything is timed).
    """
    check_scheduler(scheduler)
    gc.collect()
    if log is not None:
        log(f"cpu overhead ({scheduler}) ...")
    if quick:
        sizes = QUICK_SIZES if sizes is None else sizes
        overhead = bench_overhead(4, QUICK_DURATION_S * 10, repeats=QUICK_REPEATS,
                                  scheduler=scheduler)
        scaling = bench_scaling(sizes, QUICK_DURATION_S, repeats=QUICK_REPEATS, log=log,
                                scheduler=scheduler)
    else:
        sizes = SIZES if sizes is None else sizes
        overhead = bench_overhead(scheduler=scheduler)
        scaling = bench_scaling(sizes, log=log, scheduler=scheduler)
    return {"environment": environment(), "scheduler": scheduler, "overhead": overhead,
            "scaling": scaling}


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
    scheduler = result.get("scheduler", SCHEDULER)
    lines = [
        f"CPU model benchmark, {scheduler} scheduler (Python {env['python']}, "
        f"simpy {env['simpy']}, {env['cpu_count']} CPUs)",
        "",
        f"1. Scheduling decisions per second, {scheduler} scheduler, no timeline",
        f"   {o['vcpus']} vCPUs in {o['vms']} VMs on {o['pcpus']} pCPUs, "
        f"{o['duration_s']:g} s simulated, {o['events']:,} events, "
        f"best of {m['repeats']} alternating rounds",
        f"   {'':<20}{'events/s':>12}{'us/event':>10}{'(median)':>10}",
        f"   {f'model ({scheduler})':<20}{m['events_per_s']:>12,.0f}{m['us_per_event']:>10.2f}"
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
    "SCHEDULER",
    "SIZES",
    "Repeats",
    "Timing",
    "bare_loop",
    "bench_overhead",
    "bench_scaling",
    "busy_scenario",
    "check_scheduler",
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
