"""Who owns a ``kvmlab-`` object: the process that made it, told apart from its successors.

Every object kvmlab creates on a host (a guest's libvirt description, a storage pool's
owner volume, a staged directory's owner file) carries an owner record: the process id,
the process's start time (field 22 of ``/proc/PID/stat``, in clock ticks since boot) and
the boot id of the machine it runs on. A process id alone is not enough: after the owner
dies, the kernel may give the same id to another process. With the start time and the
boot id, an object is *in use* exactly while the very process that made it still runs.

Examples
--------
>>> import os
>>> me = parse_owner(owner_record())
>>> me.pid == os.getpid(), me.state()
(True, 'alive')
>>> parse_owner("owner pid=1 start=5 boot=b host=another-machine").state()
'elsewhere'
>>> parse_owner("no record here") is None
True
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kvmlab.errors import ExperimentFailed
from kvmlab.host.signals import signals_deferred

__all__ = ["OWNER_FILE", "Owner", "boot_id", "dir_owner", "guest_deadline", "owned_tempdir",
           "owner_record", "parse_owner", "process_start", "remove_dead_dirs",
           "stale_reason", "temp_root"]

OWNER_FILE = "owner.txt"
"""The file of a kvmlab folder (temporary or staged) that holds its owner record."""
_PREFIX = "kvmlab-"

_DEADLINE = re.compile(r"deadline=(\d+)")
_RECORD = re.compile(r"owner pid=(\d+)(?: start=(\d+))? boot=(\S+)(?: host=(\S+))?")


def boot_id(proc: Path = Path("/proc")) -> str:
    """This machine's boot id (new at every boot), or ``'unknown'``.

    Examples
    --------
    >>> len(boot_id()) == 36 or boot_id() == "unknown"
    True
    """
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def process_start(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22).

    None when there is no such process. The command name (field 2) may hold spaces and
    parentheses, so the fields are counted from the last ``)``.

    Examples
    --------
    >>> process_start(os.getpid()) > 0
    True
    >>> process_start(2**22 + 1) is None           # above any pid Linux hands out
    True
    """
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])        # field 22 overall; fields[0] here is field 3
    except (IndexError, ValueError):
        return None


def owner_record(pid: int | None = None) -> str:
    """The owner record of process ``pid`` (default: this one).

    Examples
    --------
    >>> owner_record().startswith(f"owner pid={os.getpid()} start=")
    True
    """
    pid = os.getpid() if pid is None else pid
    return (f"owner pid={pid} start={process_start(pid) or 0} boot={boot_id()} "
            f"host={socket.gethostname() or 'unknown'}")


@dataclass(frozen=True)
class Owner:
    """An owner record read back: process id, start time, boot id and host name."""

    pid: int
    start: int | None
    boot: str
    host: str = ""

    def state(self) -> str:
        """``'alive'``, ``'gone'``, or ``'elsewhere'`` (a process of another machine).

        A record of an earlier boot of this machine is ``'gone'``. A record without a
        start time (written by an older kvmlab) counts as alive while the pid exists.

        Examples
        --------
        >>> Owner(os.getpid(), process_start(os.getpid()), boot_id()).state()
        'alive'
        >>> Owner(os.getpid(), 1, boot_id()).state()         # the pid was reused since
        'gone'
        >>> Owner(1, 1, "earlier-boot", socket.gethostname()).state()
        'gone'
        >>> Owner(1, 1, "other-boot", "another-machine").state()
        'elsewhere'
        """
        if self.boot != boot_id():
            # An earlier boot of this machine (its processes are all gone), or another one.
            here = not self.host or self.host == socket.gethostname()
            return "gone" if here else "elsewhere"
        started = process_start(self.pid)
        if started is None or (self.start is not None and started != self.start):
            return "gone"
        return "alive"

    def describe(self) -> str:
        """A few words for a report.

        Examples
        --------
        >>> Owner(7, 1, "b", "lab2").describe()
        'pid 7 on lab2'
        """
        return f"pid {self.pid}" + (f" on {self.host}" if self.host else "")


def guest_deadline(description: str) -> float | None:
    """The deadline recorded in a guest's description (seconds since the epoch), or None.

    Examples
    --------
    >>> guest_deadline("kvmlab guest; owner pid=1 boot=b deadline=99"), guest_deadline("")
    (99.0, None)
    """
    match = _DEADLINE.search(description or "")
    return float(match.group(1)) if match else None


def stale_reason(description: str, now: float | None = None) -> str:
    """Why a kvmlab guest with this description must go now, or ``''`` if it may stay.

    A description without kvmlab's owner record is not kvmlab's: it may stay.

    Examples
    --------
    >>> stale_reason(f"{owner_record()} deadline={int(time.time()) + 60}")
    ''
    >>> stale_reason(f"{owner_record()} deadline={int(time.time()) - 1}")
    'its deadline has passed'
    >>> stale_reason("kvmlab guest; owner pid=1 start=1 boot=an-earlier-boot")
    'the run that made it has ended'
    >>> stale_reason("someone else's guest")
    ''
    """
    owner = parse_owner(description)
    if owner is None:
        return ""
    deadline = guest_deadline(description)
    if deadline is not None and (time.time() if now is None else now) > deadline:
        return "its deadline has passed"
    return "the run that made it has ended" if owner.state() == "gone" else ""


def parse_owner(text: str) -> Owner | None:
    """The owner record in ``text``, or None.

    Examples
    --------
    >>> parse_owner("kvmlab guest; owner pid=12 start=99 boot=b-1 host=lab")
    Owner(pid=12, start=99, boot='b-1', host='lab')
    >>> parse_owner("kvmlab guest; owner pid=12 boot=b-1")     # an older record
    Owner(pid=12, start=None, boot='b-1', host='')
    """
    match = _RECORD.search(text or "")
    if not match:
        return None
    pid, start, boot, host = match.groups()
    return Owner(int(pid), int(start) if start else None, boot, host or "")


# -- kvmlab's temporary folders ---------------------------------------------------------
def temp_root() -> Path:
    """The one folder under which kvmlab makes its temporary folders: ``$TMPDIR/kvmlab-UID``.

    Examples
    --------
    >>> temp_root().name == f"kvmlab-{os.getuid()}"
    True
    """
    return Path(tempfile.gettempdir()) / f"{_PREFIX}{os.getuid()}"


def _make_temp_root() -> Path:
    """Create :func:`temp_root` if needed; refuse one this user does not own (a trap)."""
    root = temp_root()
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o755)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ExperimentFailed(f"{root} is not a folder of this user; kvmlab keeps its "
                               "temporary folders there: remove it, or set TMPDIR elsewhere")
    return root


def dir_owner(path: Path) -> Owner | None:
    """The owner record of a kvmlab folder, or None when it holds none (then not kvmlab's).

    Examples
    --------
    >>> dir_owner(Path(tempfile.gettempdir())) is None
    True
    """
    try:
        return parse_owner((path / OWNER_FILE).read_text())
    except OSError:
        return None


@contextlib.contextmanager
def owned_tempdir(purpose: str) -> Iterator[Path]:
    """A fresh folder ``kvmlab-PURPOSE-*`` in :func:`temp_root`, with this process's
    owner record, removed when the block ends (also on SIGINT, SIGTERM or SIGHUP, when
    :func:`kvmlab.host.signals.stop_signals_as_exit` is in force).

    After a SIGKILL the folder stays until :func:`remove_dead_dirs` (the next run,
    or ``kvmlab doctor --cleanup``) finds its owner gone.

    Examples
    --------
    >>> with owned_tempdir("doc") as path:
    ...     dir_owner(path).pid == os.getpid(), path.parent == temp_root()
    (True, True)
    >>> path.exists()
    False
    """
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{purpose}-", dir=_make_temp_root()))
    try:
        (path / OWNER_FILE).write_text(owner_record() + "\n")
        yield path
    finally:
        with signals_deferred():
            shutil.rmtree(path, ignore_errors=True)


def remove_dead_dirs(root: Path) -> list[Path]:
    """Remove the ``kvmlab-`` folders in ``root`` whose owner record names a process gone.

    A folder without kvmlab's owner record is never touched. Returns what was removed.

    Examples
    --------
    >>> with owned_tempdir("doc") as path:
    ...     path in remove_dead_dirs(temp_root())        # its owner runs: kept
    False
    """
    removed = []
    with contextlib.suppress(OSError):
        for path in sorted(root.iterdir()):
            if not path.name.startswith(_PREFIX) or path.is_symlink() or not path.is_dir():
                continue
            owner = dir_owner(path)
            if owner is not None and owner.state() == "gone":
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed
