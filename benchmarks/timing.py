"""Timing for the benchmarks, the way :mod:`timeit` does it, and where it was done.

:func:`measure` runs a function a few times (:class:`Repeats` says how many) with the
garbage collector off during each run; :class:`Timing` holds the seconds of the runs;
:func:`environment` says where the numbers were measured.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import simpy

T = TypeVar("T")


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
            repeats: Repeats = Repeats()) -> tuple[T, tuple[float, ...]]:
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


def peak_rss_mb() -> float | None:
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
