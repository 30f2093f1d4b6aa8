"""Open a libvirt connection with a clear error when it cannot be had.

The default is libvirt's built-in test driver, ``test:///default``: it needs no
daemon and no privileges, and holds a fake host with a domain, a network and a
storage pool, so every lab runs on a laptop. Set ``KVMLAB_URI`` (for example
``qemu:///system``) or pass ``uri=`` to talk to a real host.

Examples
--------
>>> from kvmlab.host import connect
>>> conn = connect()                       # test:///default unless KVMLAB_URI is set
>>> conn.getURI() if "KVMLAB_URI" not in __import__("os").environ else "test:///default"
'test:///default'
>>> conn.close()
0
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Any

from kvmlab.errors import HostUnavailable

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

DEFAULT_URI = "test:///default"
"""libvirt's built-in test driver: no daemon, a fake 16-CPU host."""

DEFAULT_TIMEOUT_S = 10.0


def resolve_uri(uri: str | None = None) -> str:
    """Return the URI to use: the argument, else ``KVMLAB_URI``, else the test driver.

    Examples
    --------
    >>> resolve_uri("qemu:///system")
    'qemu:///system'
    """
    return uri or os.environ.get("KVMLAB_URI") or DEFAULT_URI


def version_string(number: int) -> str:
    """libvirt encodes versions as major * 1,000,000 + minor * 1,000 + release.

    Examples
    --------
    >>> version_string(9000000), version_string(8002002), version_string(2)
    ('9.0.0', '8.2.2', '0.0.2')
    """
    major, rest = divmod(int(number), 1_000_000)
    minor, release = divmod(rest, 1_000)
    return f"{major}.{minor}.{release}"


def import_libvirt() -> Any:
    """Import libvirt-python with libvirt's own error printing silenced.

    Raises
    ------
    HostUnavailable
        When libvirt-python is not installed.
    """
    try:
        import libvirt
    except ImportError as exc:
        raise HostUnavailable(
            "(any)",
            f"libvirt-python is not installed ({exc})",
            "install it with `pip install 'kvmlab[live]'` (it needs the libvirt C library, "
            "libvirt-dev and pkg-config); meanwhile the labs use the recorded data in data/",
        ) from None
    # libvirt prints every error to stderr by default; kvmlab turns them into exceptions.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def explain(uri: str, message: str) -> tuple[str, str]:
    """Turn a libvirt error message into a reason and a remedy for a student.

    Examples
    --------
    >>> explain("qemu:///system", "Failed to connect socket to "
    ...         "'/var/run/libvirt/libvirt-sock': No such file or directory")[0]
    'the libvirt daemon is not running (its socket does not exist)'
    """
    low = message.lower()
    if "no such file or directory" in low and "socket" in low:
        return (
            "the libvirt daemon is not running (its socket does not exist)",
            "start it: `make lab` or `make test` do it for you, or run `virtlogd -d; libvirtd -d` "
            "as root (on a systemd machine: `systemctl start libvirtd`)",
        )
    if "permission denied" in low or "authentication" in low or "not authorized" in low:
        return (
            "permission denied",
            "run as root, or add your user to the 'libvirt' group and log in again, "
            "or use the unprivileged URI qemu:///session",
        )
    if "no connection driver" in low or "unsupported" in low or "no such driver" in low or (
        "driver" in low and "not" in low and "available" in low
    ):
        return (
            "libvirt has no driver for this URI",
            "check the spelling (for example qemu:///system, qemu:///session, test:///default) "
            "and that the hypervisor's libvirt driver is installed",
        )
    if "connection refused" in low:
        return (
            "nothing listens there (connection refused)",
            "check that libvirtd runs on that host and accepts this transport (qemu+tcp:// "
            "needs libvirtd started with --listen; qemu+ssh:// needs sshd) and that the port "
            "is right",
        )
    if any(w in low for w in ("no route", "timed out", "unreachable",
                              "could not resolve", "name or service not known")):
        return (
            "the host does not answer",
            "check that the host is up and that libvirtd listens there "
            "(for qemu+ssh:// URIs, that `ssh` to it works without a password prompt)",
        )
    return (message.strip().rstrip("."), "run `kvmlab doctor` to see what this machine can do")


def connect(uri: str | None = None, *, write: bool = False,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> libvirt.virConnect:
    """Open a connection to a libvirt host.

    Parameters
    ----------
    uri : str, optional
        A libvirt URI. Defaults to ``KVMLAB_URI`` or, failing that, ``test:///default``.
    write : bool
        Open read-write. The default is read-only, which is all a probe needs.
    timeout_s : float
        Give up after this long (a remote host that does not answer).

    Returns
    -------
    libvirt.virConnect

    Raises
    ------
    HostUnavailable
        Saying what was tried, why it failed and what to do.

    Examples
    --------
    >>> conn = connect("test:///default")
    >>> conn.getInfo()[2]        # the test driver's fake host has 16 CPUs
    16
    >>> connect("nosuchdriver:///x")
    Traceback (most recent call last):
    ...
    kvmlab.errors.HostUnavailable: Cannot reach libvirt at 'nosuchdriver:///x': libvirt has no ...
    """
    uri = resolve_uri(uri)
    libvirt = import_libvirt()
    opener = libvirt.open if write else libvirt.openReadOnly
    answer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)

    def attempt() -> None:
        try:
            answer.put(("ok", opener(uri)))
        except Exception as exc:  # noqa: BLE001 - handed over to the caller's thread
            answer.put(("error", exc))

    # A remote URI can hang in name resolution or ssh; bound the wait with a daemon thread.
    threading.Thread(target=attempt, name=f"kvmlab-connect-{uri}", daemon=True).start()
    try:
        kind, value = answer.get(timeout=timeout_s)
    except queue.Empty:
        raise HostUnavailable(
            uri, f"no answer within {timeout_s:g} s",
            "check that the host is up and reachable, or choose another URI",
        ) from None
    if kind == "error":
        reason, remedy = explain(uri, str(value))
        raise HostUnavailable(uri, reason, remedy) from None
    return value
