"""Where a thread's time went: running, waiting for a CPU, or asleep, from the kernel's counters.

For every thread the kernel keeps, in ``/proc/PID/task/TID/``:

- ``schedstat``: nanoseconds run, nanoseconds spent runnable but waiting for a CPU
  (``run_delay``), and the number of times it got a CPU (time slices);
- ``status``: ``voluntary_ctxt_switches`` (it went to sleep: each one is later a wake-up)
  and ``nonvoluntary_ctxt_switches`` (it was preempted);
- ``stat``: its state (``R`` running or runnable, ``S`` asleep, ``D`` in uninterruptible
  sleep, ...), and ``wchan``: the kernel function it sleeps in (``0`` when it does not);
- ``sched``: among much else ``se.nr_migrations``, the times it moved between CPUs.

:func:`measure_threads` reads them all a few times (20 by default) during a window and
:func:`account` turns the readings into run, wait and sleep seconds per thread, where
sleep is what remains: ``sleep = window - run - wait``, never negative.

How the wait is corrected at the window's edges
-----------------------------------------------
The kernel adds a wait to ``run_delay`` only when the wait ends (the thread gets a CPU)
or when the waiting thread moves to another CPU's queue. So at any instant a runnable
thread may have a wait *in progress* that the counter does not show yet: call it U(t).
The true wait over a window [t0, t1] is exactly::

    wait = (run_delay(t1) - run_delay(t0)) + U(t1) - U(t0)

U is estimated from the readings, interval by interval. An interval between two readings
is *waited through* when the thread was in state ``R`` at both, and neither its run time,
nor its slices, nor its context switches moved: it was runnable and never ran, so it
waited the whole interval. (A thread that runs has its run time brought up to date at
every scheduler tick, 4 ms at HZ=250; intervals shorter than :data:`MIN_INTERVAL_S` are
never counted as waited through.)

- A thread not in state ``R`` at an edge has no wait in progress: U = 0, exactly.
- A thread that waited through the intervals just before an edge has waited since the
  last interval in which it ran, woke up, or had its wait flushed (moved between CPUs):
  U is the time since the middle of that interval, within half an interval.
- A thread that waited through the whole window has U(t1) - U(t0) = the window: it
  waited all of it, exactly.
- A thread that waited through every reading before the window's start (or was not read
  before it) has its U(t0) told by the future: the first flush after t0 holds it, plus
  the part of the wait after t0 (within half an interval).
- A thread active in the interval just before an edge has at most one short wait in
  progress there: U is taken as 0. Both edges are treated alike, so the errors tend to
  cancel; the bound given is the mean wait per slice in that interval (typical, not
  strict: strictly it is the interval minus the time run in it).

The sum of these bounds is :attr:`ThreadTimes.wait_error_s`; sleep, the remainder, has
the same error plus run time's, which is exact to one scheduler tick per edge (the
kernel brings a running thread's run time up to date at every tick).

Examples
--------
>>> def s(at, state, run, wait, slices):
...     return ThreadSample(at, state, run, wait, slices, voluntary=0, nonvoluntary=slices)
>>> starved = [s(0.0, "R", 5, 0, 1), s(1.0, "R", 5, 0, 1), s(2.0, "R", 5, 0, 1)]
>>> t = account(starved)               # never ran, and the counter never moved
>>> t.run_s, t.wait_s, t.sleep_s, t.counter_wait_s
(0.0, 2.0, 0.0, 0.0)
>>> asleep = [s(0.0, "S", 5, 0, 1), s(1.0, "S", 5, 0, 1)]
>>> account(asleep).sleep_s
1.0
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.validate import list_of, mapping, real_number, whole_number

__all__ = ["MIN_INTERVAL_S", "SAMPLES", "ThreadSample", "ThreadTimes", "account",
           "list_threads", "measure_threads", "parse_sched_migrations", "parse_stat_state",
           "parse_status_switches", "read_sample", "run_shares", "thread_cgroup"]

SAMPLES = 20
"""Intervals between the readings of a window (:func:`measure_threads`), unless told
otherwise: a run on a host and the ``linux`` model read their threads alike."""

MIN_INTERVAL_S = 0.01
"""The shortest interval between two readings that can count as waited through: longer
than one scheduler tick (4 ms at HZ=250), after which a running thread's run time moves."""

PROC = Path("/proc")


@dataclass(frozen=True)
class ThreadSample:
    """One reading of one thread's counters, at monotonic time ``at_s``."""

    at_s: float
    state: str
    run_ns: int
    wait_ns: int
    slices: int
    voluntary: int = 0
    nonvoluntary: int = 0
    wchan: str = ""
    cpu: int = -1               # the CPU it last ran on (-1: not read)
    migrations: int = -1        # se.nr_migrations (-1: not read)


def parse_stat_state(text: str) -> str:
    """The state letter of a ``/proc/.../stat`` line (the name may hold spaces and ``)``).

    Examples
    --------
    >>> parse_stat_state("42 (a (b) c) R 1 42 42 0 -1")
    'R'
    """
    rest = text.rpartition(")")[2].split() if ")" in text else []
    return rest[0] if rest else "?"


def parse_stat_cpu(text: str) -> int:
    """The CPU a thread last ran on (field 39 of ``/proc/.../stat``), -1 if absent.

    Examples
    --------
    >>> parse_stat_cpu("42 (a b) R" + " 0" * 35 + " 1 0")
    1
    """
    rest = text.rpartition(")")[2].split() if ")" in text else []
    return int(rest[36]) if len(rest) > 36 and rest[36].lstrip("-").isdigit() else -1


def parse_status_switches(text: str) -> tuple[int, int]:
    """``(voluntary, nonvoluntary)`` context switches from a ``/proc/.../status`` text.

    Examples
    --------
    >>> parse_status_switches("Name:\\tx\\nvoluntary_ctxt_switches:\\t7\\n"
    ...                       "nonvoluntary_ctxt_switches:\\t3\\n")
    (7, 3)
    """
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            found[key] = int(value)
    return found.get("voluntary_ctxt_switches", 0), found.get("nonvoluntary_ctxt_switches", 0)


def parse_sched_migrations(text: str) -> int:
    """``se.nr_migrations`` of a ``/proc/.../sched`` text, -1 if absent.

    Examples
    --------
    >>> parse_sched_migrations("se.vruntime   :   17.6\\nse.nr_migrations   :   12\\n")
    12
    """
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "se.nr_migrations":
            return int(value)
    return -1


def read_sample(pid: int, tid: int, proc: Path = PROC) -> ThreadSample | None:
    """Read thread ``tid`` of process ``pid`` now; None when it has ended.

    Examples
    --------
    >>> import os
    >>> s = read_sample(os.getpid(), os.getpid())
    >>> s.state, s.run_ns > 0, s.wchan                  # this thread, reading itself
    ('R', True, '0')
    """
    task = proc / str(pid) / "task" / str(tid)
    try:
        schedstat = (task / "schedstat").read_text().split()
        stat = (task / "stat").read_text()
        state = parse_stat_state(stat)
        voluntary, nonvoluntary = parse_status_switches((task / "status").read_text())
        try:
            wchan = (task / "wchan").read_text().strip()
        except PermissionError:
            wchan = "?"
        try:
            migrations = parse_sched_migrations((task / "sched").read_text())
        except PermissionError:
            migrations = -1
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ThreadSample(time.monotonic(), state, int(schedstat[0]), int(schedstat[1]),
                        int(schedstat[2]), voluntary, nonvoluntary, wchan,
                        parse_stat_cpu(stat), migrations)


def list_threads(pid: int, proc: Path = PROC) -> list[tuple[int, str]]:
    """``(tid, name)`` of every thread of process ``pid``, by thread id.

    Examples
    --------
    >>> import os
    >>> main = dict(list_threads(os.getpid()))[os.getpid()]   # the main thread's name
    >>> main == open("/proc/self/comm").read().strip()
    True
    """
    out = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return []
    for task in tasks:
        try:
            out.append((int(task.name), (task / "comm").read_text().strip()))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return sorted(out)


def thread_cgroup(pid: int, tid: int, proc: Path = PROC) -> str:
    """The ``cpu`` controller's cgroup of a thread (cgroup v2: its one cgroup), or ``''``.

    Examples
    --------
    >>> import os
    >>> thread_cgroup(os.getpid(), os.getpid()).startswith("/")
    True
    """
    try:
        lines = (proc / str(pid) / "task" / str(tid) / "cgroup").read_text().splitlines()
    except OSError:
        return ""
    unified = ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
        if controllers == "":
            unified = path
    return unified


@dataclass(frozen=True)
class ThreadTimes:
    """Run, wait and sleep of one thread over one window, with its wake-ups and wchans.

    ``run_s + wait_s + sleep_s == window_s``; ``counter_wait_s`` is the kernel's own
    ``run_delay`` difference before the edge correction, and ``wait_error_s`` the
    estimated bound of that correction (see the module's text). ``wchans`` counts the
    readings in the window per ``wchan`` (``'0'``: not asleep), ``cpus`` per CPU the
    thread was last on. ``role`` says what the
    thread is (``'vcpu0'``, ``'emulator'``, ``'main-loop'``, ...). ``migrations_per_s``
    is how often it moved between CPUs (-1: not read), ``run_series`` its run share
    in each interval between two readings, in time order, and ``cpu_series`` the CPU
    it was last on at each reading (-1: not read; both empty: not kept).

    Examples
    --------
    >>> t = ThreadTimes(7, "CPU 0/TCG", 2.0, 1.0, 0.5, 0.5, 44.0, 400.0, 900, 0.4, 0.01,
    ...                 {"0": 20}, pid=6, role="vcpu0")
    >>> t.run_share, t.wait_share, t.sleep_share
    (0.5, 0.25, 0.25)
    >>> ThreadTimes.from_dict(t.to_dict()) == t
    True
    """

    tid: int
    name: str
    window_s: float
    run_s: float
    wait_s: float
    sleep_s: float
    wakes_per_s: float
    preemptions_per_s: float
    slices: int
    counter_wait_s: float
    wait_error_s: float
    wchans: dict[str, int] = field(default_factory=dict)
    cpus: dict[str, int] = field(default_factory=dict)
    pid: int = 0
    role: str = ""
    cgroup: str = ""
    migrations_per_s: float = -1.0
    run_series: tuple[float, ...] = ()
    cpu_series: tuple[int, ...] = ()

    def _share(self, seconds: float) -> float:
        return round(seconds / self.window_s, 6) if self.window_s > 0 else 0.0

    @property
    def run_share(self) -> float:
        """The fraction of the window the thread ran."""
        return self._share(self.run_s)

    @property
    def wait_share(self) -> float:
        """The fraction of the window it was runnable but waited for a CPU."""
        return self._share(self.wait_s)

    @property
    def sleep_share(self) -> float:
        """The fraction of the window it was not runnable (asleep, blocked)."""
        return self._share(self.sleep_s)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (seconds rounded to the microsecond, shares beside them)."""
        return {"pid": self.pid, "tid": self.tid, "name": self.name, "role": self.role,
                "cgroup": self.cgroup, "window_s": round(self.window_s, 6),
                "run_share": self.run_share, "wait_share": self.wait_share,
                "sleep_share": self.sleep_share, "run_s": round(self.run_s, 6),
                "wait_s": round(self.wait_s, 6), "sleep_s": round(self.sleep_s, 6),
                "wakes_per_s": round(self.wakes_per_s, 3),
                "preemptions_per_s": round(self.preemptions_per_s, 3),
                "slices": self.slices, "counter_wait_s": round(self.counter_wait_s, 6),
                "wait_error_s": round(self.wait_error_s, 6), "wchans": dict(self.wchans),
                "cpus": dict(self.cpus), "migrations_per_s": round(self.migrations_per_s, 3),
                "run_series": [round(x, 3) for x in self.run_series],
                "cpu_series": list(self.cpu_series)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThreadTimes:
        """Rebuild from :meth:`to_dict` output; a field out of place is a ScenarioError.

        Examples
        --------
        >>> ThreadTimes.from_dict({"tid": 1})
        Traceback (most recent call last):
        ...
        kvmlab.errors.ScenarioError: a thread's times lack 'name'
        """
        data = mapping(data, "a thread's times")
        for key in ("tid", "name", "window_s", "run_s", "wait_s", "sleep_s"):
            if key not in data:
                raise ScenarioError(f"a thread's times lack {key!r}")

        def seconds(key: str) -> float:
            return real_number(data.get(key, 0.0), f"a thread's {key}", low=0)

        wchans = mapping(data.get("wchans", {}), "a thread's wchans")
        cpus = mapping(data.get("cpus", {}), "a thread's cpus")
        return cls(tid=whole_number(data["tid"], "a thread's tid", low=0),
                   name=str(data["name"]), window_s=seconds("window_s"),
                   run_s=seconds("run_s"), wait_s=seconds("wait_s"),
                   sleep_s=seconds("sleep_s"), wakes_per_s=seconds("wakes_per_s"),
                   preemptions_per_s=seconds("preemptions_per_s"),
                   slices=whole_number(data.get("slices", 0), "a thread's slices", low=0),
                   counter_wait_s=real_number(data.get("counter_wait_s", 0.0),
                                              "a thread's counter_wait_s"),
                   wait_error_s=seconds("wait_error_s"),
                   wchans={str(k): whole_number(v, "a wchan count", low=0)
                           for k, v in wchans.items()},
                   cpus={str(k): whole_number(v, "a CPU count", low=0)
                         for k, v in cpus.items()},
                   pid=whole_number(data.get("pid", 0), "a thread's pid", low=0),
                   role=str(data.get("role", "")), cgroup=str(data.get("cgroup", "")),
                   migrations_per_s=real_number(data.get("migrations_per_s", -1.0),
                                                "a thread's migrations_per_s", low=-1),
                   run_series=tuple(real_number(x, "a run share", low=0, high=1)
                                    for x in list_of(data.get("run_series", []),
                                                     "a thread's run_series")),
                   cpu_series=tuple(whole_number(c, "a CPU", low=-1)
                                    for c in list_of(data.get("cpu_series", []),
                                                     "a thread's cpu_series")))


# -- the accounting (pure) -------------------------------------------------------------
def _active(a: ThreadSample, b: ThreadSample) -> bool:
    """Did the thread run, get a slice or switch between readings ``a`` and ``b``?"""
    return (b.run_ns != a.run_ns or b.slices != a.slices or b.voluntary != a.voluntary
            or b.nonvoluntary != a.nonvoluntary)


def _waited_through(a: ThreadSample, b: ThreadSample) -> bool:
    """Was the thread runnable and off every CPU for the whole interval from a to b?"""
    return (a.state == "R" and b.state == "R" and not _active(a, b)
            and b.at_s - a.at_s >= MIN_INTERVAL_S)


def _quiet(a: ThreadSample, b: ThreadSample) -> bool:
    """Waited through, and the wait counter did not move (no flush by a migration)."""
    return _waited_through(a, b) and b.wait_ns == a.wait_ns


def _episode_s(a: ThreadSample, b: ThreadSample) -> float:
    """The mean wait per slice between two readings: how long one wait typically lasts."""
    return max(0, b.wait_ns - a.wait_ns) / 1e9 / max(1, b.slices - a.slices)


def _pending_before(samples: Sequence[ThreadSample], j: int) -> tuple[float, float] | None:
    """(estimate, error) of the wait in progress at reading ``j``, from readings 0..j.

    None when the thread waited quietly since the first reading (or there is no earlier
    reading): the readings up to ``j`` do not tell when its wait began.
    """
    if samples[j].state != "R":
        return 0.0, 0.0
    i = j
    while i > 0 and _quiet(samples[i - 1], samples[i]):
        i -= 1
    if i == 0:
        return None
    a, b = samples[i - 1], samples[i]
    if i == j and _active(a, b):    # it ran just before: at most one short wait in progress
        return 0.0, _episode_s(a, b)
    # Its wait (as the counter sees it) began in the interval from a to b: it ran and was
    # preempted, woke up, or had its wait flushed by a move to another CPU there.
    return samples[j].at_s - (a.at_s + b.at_s) / 2, (b.at_s - a.at_s) / 2


def _pending_from_future(samples: Sequence[ThreadSample], start: int,
                         lower: float) -> tuple[float, float]:
    """(estimate, error) of the wait in progress at ``start``, from its first flush after.

    ``lower``: how long it is known to have waited already (quietly since the first reading).
    """
    t0 = samples[start].at_s
    for k in range(start + 1, len(samples)):
        a, b = samples[k - 1], samples[k]
        if _quiet(a, b):
            continue
        several = b.slices - a.slices > 1
        if several and k == start + 1 and lower == 0:
            # An ordinary busy interval, and nothing says a long wait was under way.
            return 0.0, _episode_s(a, b)
        flushed = max(0, b.wait_ns - a.wait_ns) / 1e9
        high = max(lower, flushed - (a.at_s - t0))
        estimate = min(high, max(lower, flushed - ((a.at_s + b.at_s) / 2 - t0)))
        return estimate, (b.at_s - a.at_s) * (1.0 if several else 0.5)
    return lower, 0.0                  # never flushed: handled as a window-long wait


def _times(samples: Sequence[ThreadSample], start: int) -> tuple[float, float, float, float]:
    """(window, run, wait, wait error) in seconds over readings start..end."""
    first, last = samples[start], samples[-1]
    if last is first:
        return 0.0, 0.0, 0.0, 0.0
    window = max(0.0, last.at_s - first.at_s)
    run = min(window, max(0.0, (last.run_ns - first.run_ns) / 1e9))
    counted = (last.wait_ns - first.wait_ns) / 1e9
    i = len(samples) - 1
    while i > start and _quiet(samples[i - 1], samples[i]):
        i -= 1
    if i == start:                  # runnable, never ran, counter still: waited it all
        return window, run, window - run, 0.0
    end = _pending_before(samples, len(samples) - 1)
    assert end is not None          # the quiet run at the end starts inside the window
    begin = _pending_before(samples[: start + 1], start)
    if begin is None:
        begin = _pending_from_future(samples, start, first.at_s - samples[0].at_s)
    wait = counted + end[0] - begin[0]
    wait = min(max(0.0, wait), window - run)
    if not math.isfinite(wait):
        wait = 0.0
    return window, run, wait, end[1] + begin[1]


def account(samples: Sequence[ThreadSample], start: int = 0, *, tid: int = 0,
            name: str = "", pid: int = 0, role: str = "", cgroup: str = "") -> ThreadTimes:
    """A thread's run, wait and sleep over the window from reading ``start`` to the last.

    Parameters
    ----------
    samples : sequence of ThreadSample
        Readings of one thread in time order; those before ``start`` (taken while the
        workload settled) only help to date a wait in progress at the window's start.
    start : int
        The reading that opens the window.
    tid, name, pid, role, cgroup
        Copied into the result.

    Returns
    -------
    ThreadTimes
        ``run_s + wait_s + sleep_s == window_s``, all three at least 0, whatever the
        readings say (a counter that went backwards counts as 0).

    Examples
    --------
    >>> busy = [ThreadSample(0.0, "R", 0, 0, 0), ThreadSample(1.0, "R", 600_000_000,
    ...         400_000_000, 90, nonvoluntary=90)]
    >>> t = account(busy)
    >>> t.run_s, t.wait_s, t.sleep_s, t.preemptions_per_s
    (0.6, 0.4, 0.0, 90.0)
    """
    if not 0 <= start < len(samples):
        raise ScenarioError(f"the window starts at reading {start}, but there are "
                            f"{len(samples)} readings")
    window, run, wait, error = _times(samples, start)
    sleep = max(0.0, window - run - wait)
    first, last = samples[start], samples[-1]
    per_s = 1.0 / window if window > 0 else 0.0
    wchans = Counter(s.wchan for s in samples[start:] if s.wchan)
    cpus = Counter(str(s.cpu) for s in samples[start:] if s.cpu >= 0)
    return ThreadTimes(tid=tid, name=name, window_s=window, run_s=run, wait_s=wait,
                       sleep_s=sleep,
                       wakes_per_s=max(0, last.voluntary - first.voluntary) * per_s,
                       preemptions_per_s=max(0, last.nonvoluntary - first.nonvoluntary) * per_s,
                       slices=max(0, last.slices - first.slices),
                       counter_wait_s=(last.wait_ns - first.wait_ns) / 1e9,
                       wait_error_s=error, wchans=dict(sorted(wchans.items())),
                       cpus=dict(sorted(cpus.items())), pid=pid,
                       role=role, cgroup=cgroup,
                       migrations_per_s=(max(0, last.migrations - first.migrations) * per_s
                                         if min(first.migrations, last.migrations) >= 0
                                         else -1.0),
                       run_series=run_shares([x.at_s for x in samples[start:]],
                                             [x.run_ns / 1e9 for x in samples[start:]]),
                       cpu_series=tuple(x.cpu for x in samples[start:]))


def run_shares(at_s: Sequence[float], run_s: Sequence[float]) -> tuple[float, ...]:
    """The run share in each interval between consecutive readings (within 0 and 1), from
    the readings' times ``at_s`` and the thread's run time ``run_s`` at each.

    >>> run_shares([0.0, 0.5, 1.0], [0.0, 0.125, 0.125])
    (0.25, 0.0)
    """
    return tuple(min(1.0, max(0.0, (r1 - r0) / (t1 - t0))) if t1 > t0 else 0.0
                 for (t0, r0), (t1, r1) in itertools.pairwise(zip(at_s, run_s, strict=True)))


# -- the measurement ---------------------------------------------------------------------
def measure_threads(threads: Sequence[tuple[int, int]], window_s: float, *,
                    samples: int = SAMPLES, lead_s: float = 0.0,
                    roles: Sequence[str] | None = None,
                    check: Callable[[int], None] | None = None,
                    proc: Path = PROC) -> list[ThreadTimes | None]:
    """Read threads ``(pid, tid)`` ``samples + 1`` times over ``window_s`` and account them.

    Parameters
    ----------
    threads : sequence of (pid, tid)
    window_s : float
        The window's length; readings are ``window_s / samples`` apart.
    samples : int
        Intervals in the window (the wchan of each thread is read at every reading).
    lead_s : float
        Also read at the same pace for this long before the window (while the workload
        settles): it dates the waits in progress when the window opens.
    roles : sequence of str, optional
        What each thread is, copied into its :class:`ThreadTimes`.
    check : callable, optional
        Called after every reading with its number: negative before the window, 0 when
        it opens, ``samples`` when it closes (to stop early, raise from it).

    Returns
    -------
    list
        Per thread its :class:`ThreadTimes`, or None for a thread that ended meanwhile.

    Examples
    --------
    >>> import os
    >>> [me] = measure_threads([(os.getpid(), os.getpid())], 0.05, samples=2)
    >>> abs(me.run_s + me.wait_s + me.sleep_s - me.window_s) < 1e-9
    True
    """
    samples = whole_number(samples, "samples", low=1, high=10_000)
    step = real_number(window_s, "window_s", low=0) / samples
    lead = math.ceil(real_number(lead_s, "lead_s", low=0) / step - 1e-9) if step > 0 else 0
    names = dict(t for pid in {pid for pid, _ in threads} for t in list_threads(pid, proc))
    cgroups = [thread_cgroup(pid, tid, proc) for pid, tid in threads]
    readings: list[list[ThreadSample | None]] = [[] for _ in threads]
    begin = time.monotonic() + lead * step
    for k in range(-lead, samples + 1):
        delay = begin + k * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for seen, (pid, tid) in zip(readings, threads, strict=True):
            seen.append(read_sample(pid, tid, proc))
        if check is not None:
            check(k)
    out: list[ThreadTimes | None] = []
    for n, ((pid, tid), seen) in enumerate(zip(threads, readings, strict=True)):
        window = seen[lead:]
        if any(s is None for s in window):
            out.append(None)
            continue
        history = [s for s in seen[:lead] if s is not None]
        usable = [s for s in history + window if s is not None]
        out.append(account(usable, len(history), tid=tid, name=names.get(tid, ""), pid=pid,
                           role=roles[n] if roles is not None else "", cgroup=cgroups[n]))
    return out
