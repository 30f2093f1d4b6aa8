"""A time and memory budget for one fuzz example, and the check of a refusal.

Time is this process's CPU time (all its threads): on a shared machine (two CPUs, other
test runs, live guests) wall-clock time says more about the neighbours than about kvmlab.
A block that waits instead (a hang) is caught by the wall clock, at :data:`WALL_FACTOR`
times the budget.
Memory is the growth of the process's peak resident size (``VmHWM``, reset through
``/proc/self/clear_refs`` before the example): unlike ``tracemalloc`` it costs nothing, so
the time measured is the time the code takes for a student, and it counts what C code
(matplotlib's renderer, numpy) allocates too.

Examples
--------
>>> with within_budget(seconds=1, mib=64) as spent:
...     _ = sum(range(1000))
>>> spent.seconds < 1 and spent.mib < 64
True
>>> refused(lambda: int("x"), ValueError) is REFUSED
True
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import event
from hypothesis.errors import InvalidArgument

from kvmlab.errors import KvmlabError

__all__ = ["REFUSED", "WALL_FACTOR", "Spent", "check_refusal", "refused", "within_budget"]

REFUSED = object()
"""What :func:`refused` returns when the call raised a kvmlab error."""

WALL_FACTOR = 5.0
"""How many times its CPU budget a block may take by the wall clock (waiting, or sharing
the CPUs with other work)."""

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _kib(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _reset_peak() -> bool:
    """Set the peak resident size to the current one (Linux 4.0 and later)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Spent:
    """What an example took: CPU seconds, wall-clock seconds and MiB of peak resident
    growth."""

    seconds: float = 0.0
    wall_seconds: float = 0.0
    mib: float = 0.0


@contextmanager
def within_budget(*, seconds: float, mib: float) -> Iterator[Spent]:
    """Fail the example if the block takes more than ``seconds`` of CPU time or makes the
    process's peak resident size grow by more than ``mib`` MiB (the growth is not measured
    where ``/proc`` does not allow it).

    Examples
    --------
    >>> with within_budget(seconds=5, mib=512) as spent:
    ...     data = b"x" * (64 << 20)
    >>> 32 < spent.mib < 512
    True
    """
    spent = Spent()
    measured = _reset_peak()
    before = _kib("VmRSS") if measured else None
    started, wall = time.process_time(), time.monotonic()
    yield spent
    spent.seconds = time.process_time() - started
    spent.wall_seconds = time.monotonic() - wall
    peak = _kib("VmHWM") if measured else None
    if before is not None and peak is not None:
        spent.mib = max(0, peak - before) / 1024
    assert spent.seconds <= seconds, (
        f"the example took {spent.seconds:.2f} s of CPU ({spent.wall_seconds:.2f} s of wall "
        f"clock; budget {seconds:g} s)")
    assert spent.wall_seconds <= seconds * WALL_FACTOR, (
        f"the example took {spent.wall_seconds:.2f} s of wall clock ({spent.seconds:.2f} s of "
        f"CPU): more than {WALL_FACTOR:g} times its budget of {seconds:g} s")
    assert spent.mib <= mib, (
        f"the example grew the peak resident size by {spent.mib:.0f} MiB (budget {mib:g} MiB)")


def check_refusal(exc: KvmlabError) -> None:
    """A kvmlab error as a student sees it: one short message that is not a traceback."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} without a message"
    assert "Traceback" not in message and len(message) < 2000, message[:300]


def refused(call: Callable[[], Any], *also: type[BaseException], name: str = "") -> Any:
    """``call()``, or :data:`REFUSED` if it raised a kvmlab error (or one of ``also``);
    any other exception goes on (and fails the test). With a ``name``, hypothesis's
    statistics count how often that call answered and how often it refused."""
    try:
        answer = call()
    except KvmlabError as exc:
        check_refusal(exc)
        _count(name, f"refused ({type(exc).__name__})")
        return REFUSED
    except also:
        return REFUSED
    _count(name, "answered")
    return answer


def _count(name: str, outcome: str) -> None:
    if name:
        with suppress(InvalidArgument):     # outside a hypothesis test: nothing to count
            event(f"{name}: {outcome}")
