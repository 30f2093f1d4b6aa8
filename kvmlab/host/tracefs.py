"""The kernel's trace events, read through a tracefs instance of kvmlab's own.

Tracing is the kernel's own account of what happened, event by event (which thread
woke which, on what CPU, what moved where). kvmlab never touches the machine's main
trace buffer: :func:`trace_events` makes an *instance* (a separate buffer with its own
events), named ``kvmlab-trace-PID-START`` after the process that made it and that
process's start time, and removes it when the block ends, also on an error or an
interrupt. ``kvmlab cleanup`` removes an instance whose owner died (a killed run).

Examples
--------
>>> instance_owner(f"{INSTANCE_PREFIX}{os.getpid()}-{process_start(os.getpid())}") == os.getpid()
True
>>> instance_owner(f"{INSTANCE_PREFIX}1-0"), instance_owner("not-ours")
(None, None)
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kvmlab.errors import ExperimentFailed
from kvmlab.host.owner import process_start

__all__ = ["INSTANCE_PREFIX", "TRACEFS", "TraceText", "find_tracefs", "instance_owner",
           "remove_instance", "trace_events"]

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
"""Where tracefs may be mounted, in the order kvmlab looks."""
INSTANCE_PREFIX = "kvmlab-trace-"
"""Names of kvmlab's tracefs instances: ``kvmlab-trace-PID-START``."""
BUFFER_KIB = 16384
"""The instance's buffer per CPU: about 10 s of scheduler events of three busy guests
on two CPUs. When it fills, the oldest events go first."""


def find_tracefs(candidates: Sequence[Path] = TRACEFS) -> Path:
    """The mounted tracefs: the first of ``candidates`` that has ``instances``.

    Raises
    ------
    ExperimentFailed
        Naming what is missing: tracefs is not mounted, or this is not root.

    Examples
    --------
    >>> find_tracefs([Path("/nonexistent")])
    Traceback (most recent call last):
    ...
    kvmlab.errors.ExperimentFailed: tracing needs tracefs, and it is not mounted (looked \
in /nonexistent); as root: mount -t tracefs nodev /sys/kernel/tracing
    """
    for root in candidates:
        if (root / "instances").is_dir():
            if not os.access(root / "instances", os.W_OK):
                raise ExperimentFailed(f"tracing needs root: {root}/instances is not writable")
            return root
    raise ExperimentFailed(
        "tracing needs tracefs, and it is not mounted (looked in "
        f"{', '.join(str(p) for p in candidates)}); as root: mount -t tracefs nodev "
        "/sys/kernel/tracing")


def instance_owner(name: str) -> int | None:
    """The process id of the process that made tracefs instance ``name``, while it still
    runs; None once it has ended, or for a name that is not kvmlab's (see the module's
    examples)."""
    match = re.fullmatch(re.escape(INSTANCE_PREFIX) + r"(\d+)-(\d+)", name)
    if match is None or process_start(int(match.group(1))) != int(match.group(2)):
        return None
    return int(match.group(1))


@dataclass
class TraceText:
    """What :func:`trace_events` read: the trace's text, once the block has ended."""

    text: str = ""


def _write(path: Path, value: str) -> None:
    path.write_text(value + "\n")


def remove_instance(instance: Path) -> None:
    """Stop tracing into ``instance``, switch its events and triggers off, remove it."""
    with contextlib.suppress(OSError):
        _write(instance / "tracing_on", "0")
    for trigger in instance.glob("events/*/*/trigger"):
        with contextlib.suppress(OSError):
            for line in trigger.read_text().splitlines():
                if line and not line.startswith("#"):
                    _write(trigger, "!" + line.split(" if ")[0].split(":")[0])
    with contextlib.suppress(OSError):
        _write(instance / "events/enable", "0")
    with contextlib.suppress(OSError):
        instance.rmdir()


@contextlib.contextmanager
def trace_events(events: Sequence[str], *, triggers: Mapping[str, str] | None = None,
                 root: Path | None = None) -> Iterator[TraceText]:
    """Record trace ``events`` while the block runs, in an instance of kvmlab's own.

    Parameters
    ----------
    events : sequence of str
        ``SYSTEM/EVENT`` names, e.g. ``sched/sched_switch``.
    triggers : mapping, optional
        ``SYSTEM/EVENT`` to a trigger, e.g. ``stacktrace if pid == 10`` (a kernel stack
        with each such event).
    root : Path, optional
        The tracefs mount (default: :func:`find_tracefs`).

    Yields
    ------
    TraceText
        Holds the trace's text once the block has ended.

    Raises
    ------
    ExperimentFailed
        Without tracefs or root (before anything is traced).
    """
    root = root or find_tracefs()
    me = os.getpid()
    instance = root / "instances" / f"{INSTANCE_PREFIX}{me}-{process_start(me)}"
    out = TraceText()
    instance.mkdir()
    try:
        _write(instance / "buffer_size_kb", str(BUFFER_KIB))
        for event, trigger in (triggers or {}).items():
            _write(instance / "events" / event / "trigger", trigger)
        for event in events:
            _write(instance / "events" / event / "enable", "1")
        _write(instance / "tracing_on", "1")
        yield out
        _write(instance / "tracing_on", "0")
        out.text = (instance / "trace").read_text(errors="replace")
    finally:
        remove_instance(instance)
