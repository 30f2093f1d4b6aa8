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

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Owner", "boot_id", "owner_record", "parse_owner", "process_start"]

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
