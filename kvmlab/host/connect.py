"""Open a libvirt connection with a clear error when it cannot be had.

The default is libvirt's built-in test driver, ``test:///default``: it needs no
daemon and no privileges, and holds a fake host with a domain, a network and a
storage pool, so every lab runs on a laptop. Set ``KVMLAB_URI`` (for example
``qemu:///system``) or pass ``uri=`` to talk to a real host.

Examples
--------
>>> from kvmlab.host import connect, connection
>>> conn = connect()                       # test:///default unless KVMLAB_URI is set
>>> conn.getURI() if "KVMLAB_URI" not in __import__("os").environ else "test:///default"
'test:///default'
>>> conn.close()
0
>>> with connection("test:///default") as conn:      # closed when the block ends
...     conn.getHostname() != ""
True
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kvmlab.errors import HostUnavailable, ScenarioError, shown

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

DEFAULT_URI = "test:///default"
"""libvirt's built-in test driver: no daemon, a fake 16-CPU host."""

DEFAULT_TIMEOUT_S = 10.0


def check_uri(uri: object) -> str | None:
    """Return a ``uri=`` argument if it can be a libvirt URI, or None (the default host).

    Only None means "the default host": an empty string, ``0`` or ``False`` are refused
    rather than read as it, and so is anything that is not a string. Whether libvirt
    accepts the string is for libvirt to say (a :class:`~kvmlab.errors.HostUnavailable`).

    Raises
    ------
    ScenarioError
        If ``uri`` is neither None nor a non-blank string without NUL characters.

    Examples
    --------
    >>> check_uri("qemu:///system"), check_uri(None)
    ('qemu:///system', None)
    >>> check_uri(5)                                 # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: uri must be a libvirt URI such as qemu:///system, or None ...
    """
    if uri is None:
        return None
    if not isinstance(uri, str) or not uri.strip() or "\x00" in uri:
        raise ScenarioError("uri must be a libvirt URI such as qemu:///system, or None for "
                            f"the default host; not {shown(uri)}")
    return uri


def resolve_uri(uri: str | None = None) -> str:
    """Return the URI to use: the argument, else ``KVMLAB_URI``, else the test driver.

    Raises
    ------
    ScenarioError
        If ``uri`` is neither None nor a URI (see :func:`check_uri`).

    Examples
    --------
    >>> resolve_uri("qemu:///system")
    'qemu:///system'
    """
    return check_uri(uri) or os.environ.get("KVMLAB_URI") or DEFAULT_URI


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
        When libvirt-python is not installed: without it this Python reaches no libvirt
        host at all, which is what the labs catch to fall back on their recorded data.
        (A missing *program*, a compiler or ``qemu-img``, is a ``ToolMissing``.)
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



def live_possible(live: bool) -> bool:
    """A notebook's ``LIVE`` switch, kept on only where this Python can reach libvirt at all.

    Without libvirt-python a live cell could only fail: this says so in one sentence and
    returns False, so the notebook uses its recorded real-host runs instead.

    Examples
    --------
    >>> live_possible(False)
    False
    """
    if not live:
        return False
    try:
        import_libvirt()
    except HostUnavailable as exc:
        print(f"LIVE is off: {exc.reason}, so the live cells use the recorded runs instead. "
              f"To measure for real: {exc.remedy}.")
        return False
    return True

# (reason, remedy) pairs for what goes wrong most often.
_DAEMON_DOWN = (
    "the libvirt daemon is not running (its socket does not exist)",
    "start it: `make lab` or `make test` do it for you, or run `virtlogd -d; libvirtd -d` "
    "as root (on a systemd machine: `systemctl start libvirtd`)",
)
_DAEMON_GONE = (
    "the libvirt daemon is not running (its socket is there, but nothing listens on it)",
    _DAEMON_DOWN[1],
)
_PERMISSION = (
    "permission denied",
    "run as root, or add your user to the 'libvirt' group and log in again, "
    "or use the unprivileged URI qemu:///session",
)
_NO_DRIVER = (
    "libvirt has no driver for this URI",
    "check the spelling (for example qemu:///system, qemu:///session, test:///default) "
    "and that the hypervisor's libvirt driver is installed",
)
_BAD_URI = (
    "libvirt does not accept this URI",
    "check its spelling: driver+transport://[user@]host[:port]/path, for example "
    "qemu:///system, qemu+ssh://root@lab2/system, qemu+tcp://lab2/system, test:///default",
)
_REFUSED = (
    "nothing listens there (connection refused)",
    "check that libvirtd runs on that host and accepts this transport (qemu+tcp:// "
    "needs libvirtd started with --listen; qemu+ssh:// needs sshd) and that the port "
    "is right",
)
_NO_ANSWER = (
    "the host does not answer",
    "check that the host is up and that libvirtd listens there "
    "(for qemu+ssh:// URIs, that `ssh` to it works without a password prompt)",
)
_NO_HOST_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EHOSTDOWN}
_SSH_TRANSPORTS = {"ssh", "libssh", "libssh2"}


def is_local_uri(uri: str) -> bool:
    """True for a URI served by a daemon on this machine, through its UNIX socket.

    Examples
    --------
    >>> is_local_uri("qemu:///system"), is_local_uri("qemu+unix:///system?socket=/s")
    (True, True)
    >>> is_local_uri("qemu+ssh://root@lab2/system"), is_local_uri("qemu+tcp://lab2/system")
    (False, False)
    """
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    return not parts.netloc and transport in ("", "unix")


def _by_code(uri: str, libvirt: Any, code: int | None, domain: int | None,
             os_errno: int | None) -> tuple[str, str] | None:
    """What libvirt's error code (and, for a system error, its errno) says, if enough."""
    if code == libvirt.VIR_ERR_NO_CONNECT:
        return _NO_DRIVER
    if domain == libvirt.VIR_FROM_URI or (code == libvirt.VIR_ERR_INVALID_ARG
                                          and domain == libvirt.VIR_FROM_REMOTE):
        return _BAD_URI
    if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED,
                libvirt.VIR_ERR_AUTH_UNAVAILABLE, libvirt.VIR_ERR_ACCESS_DENIED):
        return _PERMISSION
    if domain in (libvirt.VIR_FROM_POLKIT, libvirt.VIR_FROM_DBUS) and is_local_uri(uri):
        return _PERMISSION      # a user the daemon must ask polkit about, and cannot
    if code != libvirt.VIR_ERR_SYSTEM_ERROR or os_errno is None:
        return None
    if urlsplit(uri).scheme.partition("+")[2] in _SSH_TRANSPORTS:
        return None         # the errno is the pipe's to ssh; ssh's own words say more
    local = is_local_uri(uri)
    if os_errno in (errno.EACCES, errno.EPERM):
        return _PERMISSION
    if os_errno == errno.ENOENT and local:
        return _DAEMON_DOWN
    if os_errno == errno.ECONNREFUSED:
        return _DAEMON_GONE if local else _REFUSED
    if os_errno in _NO_HOST_ERRNOS:
        return _NO_ANSWER
    return None


def _by_text(message: str) -> tuple[str, str]:
    """What the words of a message say: the last resort, for errors without a telling code."""
    low = message.lower()
    if "no such file or directory" in low and "socket" in low:
        return _DAEMON_DOWN
    if "permission denied" in low or "authentication" in low or "not authorized" in low:
        return _PERMISSION
    if "no connection driver" in low or "unsupported" in low or "no such driver" in low or (
        "driver" in low and "not" in low and "available" in low
    ):
        return _NO_DRIVER
    if "connection refused" in low:
        return _REFUSED
    if any(w in low for w in ("no route", "timed out", "unreachable",
                              "could not resolve", "name or service not known")):
        return _NO_ANSWER
    return (message.strip().rstrip("."), "run `kvmlab doctor` to see what this machine can do")


def explain(uri: str, error: BaseException | str) -> tuple[str, str]:
    """Turn a libvirt error into a reason and a remedy for a student.

    A ``libvirtError`` is told apart by :meth:`get_error_code` and
    :meth:`get_error_domain` and, for a system error (``VIR_ERR_SYSTEM_ERROR``), by the
    operating system's error number libvirt keeps with it (``get_int1()``): no socket,
    permission denied, connection refused, host unreachable. Only what those leave open
    is read from the message's words: errors that carry no telling code, and those of
    ``qemu+ssh://`` URIs, where the error number is that of the pipe to ``ssh`` and the
    message holds what ``ssh`` said. A plain string is read by its words alone.

    Parameters
    ----------
    uri : str
        The URI that was tried (local and ssh URIs fail differently).
    error : libvirt.libvirtError or str
        The error, or its message.

    Returns
    -------
    (reason, remedy) : tuple of str

    Notes
    -----
    What libvirt 9.0 gives when a connection cannot be opened (code, domain, errno):

    - no daemon socket: ``VIR_ERR_SYSTEM_ERROR``, ``VIR_FROM_RPC``, ``ENOENT``;
    - a socket nobody listens on: the same with ``ECONNREFUSED``;
    - permission denied on the socket: the same with ``EACCES``;
    - ``qemu+tcp://`` to a closed port: the same with ``ECONNREFUSED``;
    - ``qemu+ssh://`` to a closed port: the same with ``ECONNRESET`` (the pipe to ssh),
      ssh's own words in the message;
    - an unknown driver (``foo:///``): ``VIR_ERR_NO_CONNECT``, ``VIR_FROM_NONE``;
    - an unknown transport (``qemu+foo://``): ``VIR_ERR_INVALID_ARG``, ``VIR_FROM_REMOTE``;
    - a user other than root on ``qemu:///system``, on a machine without a system bus to
      ask polkit through: ``VIR_ERR_INTERNAL_ERROR``, ``VIR_FROM_DBUS``; where polkit
      answers and refuses, libvirt says ``VIR_ERR_AUTH_FAILED``.

    Examples
    --------
    >>> import libvirt
    >>> try:
    ...     libvirt.openReadOnly("qemu+unix:///system?socket=/nonexistent")
    ... except libvirt.libvirtError as exc:
    ...     (exc.get_error_code() == libvirt.VIR_ERR_SYSTEM_ERROR, explain("qemu:///system",
    ...                                                                     exc)[0])
    (True, 'the libvirt daemon is not running (its socket does not exist)')
    >>> explain("qemu+ssh://root@lab2/system", "Cannot recv data: ssh: connect to host "
    ...         "lab2 port 22: Connection refused")[0]
    'nothing listens there (connection refused)'
    """
    if isinstance(error, str):
        return _by_text(error)
    get_message = getattr(error, "get_error_message", None)
    message = (get_message() if callable(get_message) else None) or str(error)
    if callable(getattr(error, "get_error_code", None)):
        libvirt = import_libvirt()
        code = error.get_error_code()                  # type: ignore[attr-defined]
        domain = error.get_error_domain()              # type: ignore[attr-defined]
        os_errno = None
        if code == libvirt.VIR_ERR_SYSTEM_ERROR:
            number = error.get_int1()                  # type: ignore[attr-defined]
            os_errno = number if isinstance(number, int) and number > 0 else None
        found = _by_code(uri, libvirt, code, domain, os_errno)
        if found is not None:
            return found
    return _by_text(message)


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
    lock = threading.Lock()
    outcome: list[tuple[str, Any]] = []       # filled by the attempt, unless abandoned
    abandoned = False
    answered = threading.Event()

    def attempt() -> None:
        try:
            found: tuple[str, Any] = ("ok", opener(uri))
        except Exception as exc:  # noqa: BLE001 - handed over to the caller's thread
            found = ("error", exc)
        with lock:
            late = abandoned
            if not late:
                outcome.append(found)
        if late and found[0] == "ok":      # nobody waits for it any more: close it
            with contextlib.suppress(Exception):
                found[1].close()
        answered.set()

    # A remote URI can hang in name resolution or ssh; bound the wait with a daemon thread.
    threading.Thread(target=attempt, name=f"kvmlab-connect-{uri}", daemon=True).start()
    try:
        answered.wait(timeout_s)
    except BaseException:                 # Ctrl-C while waiting: nobody will use it
        with lock:
            abandoned = True
            opened = [value for kind, value in outcome if kind == "ok"]
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()
        raise
    with lock:
        if not outcome:
            abandoned = True
    if abandoned:
        raise HostUnavailable(
            uri, f"no answer within {timeout_s:g} s",
            "check that the host is up and reachable, or choose another URI",
        )
    kind, value = outcome[0]
    if kind == "error":
        reason, remedy = explain(uri, value)
        raise HostUnavailable(uri, reason, remedy) from None
    return value


@contextlib.contextmanager
def connection(uri: str | None = None, *, write: bool = False,
               timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[libvirt.virConnect]:
    """A connection (as :func:`connect` opens it) that is closed when the block ends.

    It is closed however the block ends: normally, by an exception, or by Ctrl-C.

    Examples
    --------
    >>> with connection("test:///default") as conn:
    ...     conn.getInfo()[2]
    16
    >>> conn.getInfo()                   # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    libvirt.libvirtError: invalid connection pointer in virNodeGetInfo
    """
    conn = connect(uri, write=write, timeout_s=timeout_s)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):      # a broken connection is closed already
            conn.close()
