"""Where a thread wakes up: on the CPU it last ran on, or on an idle one (a live experiment).

The ``linux`` model (:mod:`kvmlab.cpu.linux`) places a waking thread on the CPU it last
ran on unless another CPU it may use is idle; then it wakes there. QEMU's main loop is
such a thread: it wakes hundreds of times a second for a few microseconds. This
experiment asks the real kernel the same question with plain processes: one busy loop
held on ``busy_cpu``, and a short periodic process that starts there too but may run on
``idle_cpu`` as well. Each time it wakes, it notes the CPU it runs on.

It also tells whether the host's scheduler bends wake-ups the way a packing option
would (keeping short threads on busy CPUs so that idle ones can sleep): the host the
lab's recordings come from runs a kernel with such an option, ``sched_vcpu_pack``
(see :func:`kvmlab.cpu.probe.host_scheduler`), and there the short process still
woke on the idle CPU at 998 to 999 of 1,000 wake-ups.

Both processes are forked (a spawned one would import the caller's main script again),
named ``kvmlab-placement-...``, and end with their owner however it ends.

Examples
--------
>>> p = tally([0, 1, 1, 1, 0, 1], idle_cpu=1)
>>> p.on_idle, p.on_busy, p.moves, round(p.idle_share, 2)
(4, 2, 3, 0.67)
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.signals import die_with_owner, signals_deferred

__all__ = ["Placement", "tally", "wake_placement"]

_GETCPU = ctypes.CDLL(None, use_errno=True).sched_getcpu    # resolved before any fork


@dataclass(frozen=True)
class Placement:
    """Where the short process ran after each wake-up.

    Attributes
    ----------
    on_idle, on_busy : int
        Wake-ups after which it ran on the idle CPU, and on the busy one.
    moves : int
        Wake-ups on another CPU than the one before.
    """

    on_idle: int
    on_busy: int
    moves: int

    @property
    def idle_share(self) -> float:
        """The share of wake-ups on the idle CPU (the ``linux`` model says 1)."""
        return self.on_idle / max(1, self.on_idle + self.on_busy)


def tally(cpus: Sequence[int], idle_cpu: int) -> Placement:
    """Count where a thread ran after each of its wake-ups (``cpus``, in order)."""
    moves = sum(a != b for a, b in itertools.pairwise(cpus))
    on_idle = sum(c == idle_cpu for c in cpus)
    return Placement(on_idle=on_idle, on_busy=len(cpus) - on_idle, moves=moves)


def _busy(owner: int, cpu: int, stop: object) -> None:
    die_with_owner(owner)
    os.sched_setaffinity(0, {cpu})
    while not stop.is_set():          # type: ignore[attr-defined]
        for _ in range(10_000):
            pass


def _short(owner: int, start: int, cpus: set[int], run_us: float, period_us: float,
           wakes: int, out: object) -> None:
    die_with_owner(owner)
    os.sched_setaffinity(0, {start})
    time.sleep(0.01)
    os.sched_setaffinity(0, cpus)
    seen = []
    for _ in range(wakes):
        began = time.perf_counter()
        while (time.perf_counter() - began) * 1e6 < run_us:
            pass
        seen.append(_GETCPU())
        time.sleep(period_us / 1e6)
    out.put(seen)                     # type: ignore[attr-defined]


def wake_placement(run_us: float = 50.0, period_us: float = 500.0, wakes: int = 1000, *,
                   busy_cpu: int = 0, idle_cpu: int = 1, timeout_s: float = 30.0) -> Placement:
    """Run the experiment on this host (see the module docstring); about ``wakes`` x
    ``period_us`` long.

    Parameters
    ----------
    run_us, period_us : float
        What the short process does on each wake-up: run ``run_us``, then sleep
        ``period_us``.
    wakes : int
        How many times it wakes.
    busy_cpu, idle_cpu : int
        The CPU held busy (where the short process starts) and the other it may use.

    Raises
    ------
    ScenarioError
        For CPUs this process may not use, the same CPU twice, or a bad number.
    ExperimentFailed
        If the short process does not report within ``timeout_s``.
    """
    if not (run_us > 0 and period_us > 0 and wakes >= 1):
        raise ScenarioError("run_us and period_us must be over 0 and wakes at least 1")
    allowed = os.sched_getaffinity(0)
    if busy_cpu == idle_cpu or not {busy_cpu, idle_cpu} <= allowed:
        raise ScenarioError(f"busy_cpu and idle_cpu must be two different CPUs of "
                            f"{sorted(allowed)}; got {busy_cpu} and {idle_cpu}")
    ctx = mp.get_context("fork")
    stop, out, owner = ctx.Event(), ctx.Queue(), os.getpid()
    procs = [ctx.Process(target=_busy, name="kvmlab-placement-busy",
                         args=(owner, busy_cpu, stop), daemon=True),
             ctx.Process(target=_short, name="kvmlab-placement-short",
                         args=(owner, busy_cpu, {busy_cpu, idle_cpu}, run_us, period_us,
                               wakes, out), daemon=True)]
    try:
        with signals_deferred():      # never a child that the clean-up below misses
            procs[0].start()
        time.sleep(0.2)
        with signals_deferred():
            procs[1].start()
        try:
            seen = out.get(timeout=timeout_s)
        except queue.Empty as err:
            raise ExperimentFailed(f"the short process did not report within "
                                   f"{timeout_s:g} s") from err
    finally:
        stop.set()
        for p in procs:
            if p.pid is None:         # never started
                continue
            p.join(timeout=2)
            if p.is_alive():
                p.kill()
                with contextlib.suppress(Exception):
                    p.join(timeout=2)
    return tally(seen, idle_cpu)
