"""Probe many libvirt hosts at once: who answers, and what each one has.

A teacher with a room of lab machines, or a student with a laptop and a server, often wants
one answer to "which of these hosts can I use, and what is on them?". :func:`probe_hosts`
asks every host at the same time and comes back with one :class:`HostReport` per URI, in
the order given, after at most ``timeout_s`` seconds, whatever the hosts do: a host that
refuses, has no libvirt driver, errs, or accepts the connection and then never answers is
*reported* (``reachable=False`` and an ``error`` that says why and what to do), never
raised, and never holds up the others.

What each report holds is the short version of the read-only tour of
:mod:`kvmlab.host.tour` (``virsh nodeinfo``, ``virsh capabilities``, ``virsh list --all``,
``virsh net-list --all``, ``virsh pool-list --all``): host name, hypervisor, versions, CPUs,
memory, the accelerator libvirt offers, and how many guests, networks and pools there are.
Pass ``probe=`` to gather something else instead. :func:`hosts_table` lays the reports out
as one table that prints in a terminal and renders as HTML in a notebook.

How the time limit is kept: each host is probed (connect, then reads) in its own *daemon*
thread, and the caller waits for all of them until one shared deadline. A thread still
busy then is abandoned, not joined (a ``ThreadPoolExecutor`` would join it at interpreter
exit, so a host that hangs forever would hang the program). Being a daemon thread, it
never holds up the program's exit.

Examples
--------
>>> from kvmlab.experiments.hosts import hosts_table, probe_hosts
>>> [report] = probe_hosts(["test:///default"])   # libvirt's built-in, daemonless fake host
>>> report.reachable, report.hypervisor, report.cpus, report.error
(True, 'TEST', 16, '')
>>> print(hosts_table([report], ["uri", "reachable", "cpus", "memory_bytes", "pools"]))
uri              reachable  cpus  memory_bytes  pools
---------------  ---------  ----  ------------  -----
test:///default  yes          16      3.00 GiB      1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from kvmlab.display import Record, Table
from kvmlab.errors import HostUnavailable, ScenarioError
from kvmlab.host.connect import connection
from kvmlab.host.inventory import list_domains, list_networks, list_pools
from kvmlab.host.node import capabilities_summary, node_info
from kvmlab.validate import is_real

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

__all__ = ["DEFAULT_TIMEOUT_S", "TABLE_COLUMNS", "HostReport", "hosts_table", "probe_hosts"]

DEFAULT_TIMEOUT_S = 5.0
"""Time allowed for the whole probe of every host (connect and reads), in seconds."""

TABLE_COLUMNS: tuple[str, ...] = (
    "uri", "reachable", "elapsed_s", "hostname", "hypervisor", "libvirt_version", "cpus",
    "memory_bytes", "accelerator", "domains_running", "domains_total", "networks", "pools",
    "error",
)
"""The columns :func:`hosts_table` shows by default (reports without ``details``)."""

_CONNECT_GRACE_S = 1.0
"""Extra time given to :func:`~kvmlab.host.connect.connect` beyond the shared deadline, so
that the deadline (which knows what the host was doing) always speaks first."""

Probe = Callable[["libvirt.virConnect"], Mapping[str, Any]]


@dataclass(frozen=True)
class HostReport(Record):
    """What one host answered (or why it did not), as returned by :func:`probe_hosts`.

    Prints as an aligned ``field  value`` list and renders as an HTML table in a notebook;
    :func:`hosts_table` lays several out side by side. A field that could not be read (the
    host is unreachable, or a custom ``probe`` was used) is ``None``.

    Attributes
    ----------
    uri : str
        The URI as given.
    reachable : bool
        Whether the host was connected to and read (or the custom probe returned) in time.
    elapsed_s : float
        Seconds from the start of the call to this host's answer (or to the deadline),
        rounded to the millisecond.
    hostname : str or None
        The host's name (``virsh hostname``).
    hypervisor : str or None
        The driver behind the connection: ``QEMU`` on a KVM/QEMU host, ``TEST`` for the
        test driver.
    hypervisor_version : str or None
        That driver's version (for ``QEMU``, the QEMU version).
    libvirt_version : str or None
        The version of the libvirt that serves the connection.
    cpus : int or None
        Active logical CPUs of the host.
    memory_bytes : int or None
        Host memory.
    accelerator : str or None
        What libvirt's capabilities *offer*: ``kvm`` (hardware-assisted), ``tcg`` (QEMU's
        software emulation only), or the domain types on offer (``test`` for the test
        driver). An offer is not a proof that it works: ``kvmlab doctor`` boots a guest to
        find out.
    domains_running : int or None
        Guests in the ``running`` state (or ``idle``: running, but blocked waiting).
    domains_total : int or None
        Every guest, running or not (``virsh list --all``).
    networks : int or None
        Virtual networks, active or not (``virsh net-list --all``).
    pools : int or None
        Storage pools, active or not (``virsh pool-list --all``).
    error : str
        ``''`` when reachable; otherwise why not, then ``What to do: ...``.
    details : dict or None
        What a custom ``probe`` returned (``None`` without one, or when it failed).
    """

    VIRSH: ClassVar[str] = ("virsh -c URI nodeinfo; virsh -c URI capabilities; "
                            "virsh -c URI list --all; net-list --all; pool-list --all")

    uri: str
    reachable: bool
    elapsed_s: float
    hostname: str | None = None
    hypervisor: str | None = None
    hypervisor_version: str | None = None
    libvirt_version: str | None = None
    cpus: int | None = None
    memory_bytes: int | None = None
    accelerator: str | None = None
    domains_running: int | None = None
    domains_total: int | None = None
    networks: int | None = None
    pools: int | None = None
    error: str = ""
    details: dict[str, Any] | None = field(default=None, hash=False)


# --------------------------------------------------------------------------- one host


class _Attempt:
    """The probe of one URI, shared between its worker thread and the waiting caller."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.phase = "connecting"           # what the worker is doing now, for the message
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.fields: dict[str, Any] | None = None   # set by the worker when it is finished
        self.finished_at: float | None = None
        self.abandoned = False               # set by the caller at the deadline


def _accelerator(domain_types: Sequence[str]) -> str | None:
    if "kvm" in domain_types:
        return "kvm"
    if "qemu" in domain_types:
        return "tcg"
    return "/".join(domain_types) or None


def _summary(conn: libvirt.virConnect, attempt: _Attempt) -> dict[str, Any]:
    """The default probe: the read-only tour, counted."""
    attempt.phase = "reading the node information"
    node = node_info(conn)
    attempt.phase = "reading the capabilities"
    caps = capabilities_summary(conn)
    attempt.phase = "reading the list of domains"
    domains = list_domains(conn)
    attempt.phase = "reading the list of networks"
    networks = list_networks(conn)
    attempt.phase = "reading the list of storage pools"
    pools = list_pools(conn)
    return {
        "hostname": node.hostname, "hypervisor": node.hypervisor,
        "hypervisor_version": node.hypervisor_version, "libvirt_version": node.libvirt_version,
        "cpus": node.cpus, "memory_bytes": node.memory_mib * 1024 * 1024,
        "accelerator": _accelerator(caps.domain_types),
        "domains_running": sum(d.state in ("running", "idle") for d in domains),
        "domains_total": len(domains), "networks": len(networks), "pools": len(pools),
    }


class _ProbeFailed(Exception):
    """A custom probe that raised or returned no mapping: the host answered, the probe did not."""

    def __init__(self, reason: str, remedy: str) -> None:
        super().__init__(reason)
        self.reason, self.remedy = reason, remedy


def _custom(conn: libvirt.virConnect, attempt: _Attempt, probe: Probe) -> dict[str, Any]:
    name = getattr(probe, "__name__", type(probe).__name__)
    attempt.phase = f"running the probe {name}()"
    try:
        result = probe(conn)
    except HostUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - reported for this host, never raised
        raise _ProbeFailed(
            f"connected, but the probe {name}() raised {type(exc).__name__}: {exc}",
            "fix the probe function; test it first with kvmlab.host.connect('test:///default')",
        ) from None
    if not isinstance(result, Mapping):
        raise _ProbeFailed(
            f"connected, but the probe {name}() returned {type(result).__name__}, not a mapping",
            "make the probe return a dict of what it found, e.g. {'cpus': 4}")
    return {"details": dict(result)}


def _error(reason: str, remedy: str) -> str:
    return f"{reason.rstrip('.')}. What to do: {remedy.rstrip('.')}."


def _work(attempt: _Attempt, deadline: float, probe: Probe | None) -> None:
    """Body of a worker thread: probe one host and leave the outcome in ``attempt``."""
    try:
        remaining = max(deadline - time.monotonic(), 0.001)
        with connection(attempt.uri, timeout_s=remaining + _CONNECT_GRACE_S) as conn:
            fields = _summary(conn, attempt) if probe is None else _custom(conn, attempt, probe)
        fields["reachable"] = True
    except (HostUnavailable, _ProbeFailed) as exc:
        fields = {"reachable": False, "error": _error(exc.reason, exc.remedy)}
    except BaseException as exc:  # noqa: BLE001 - a worker thread has no one to raise to
        fields = {"reachable": False, "error": _error(
            f"unexpected {type(exc).__name__} while {attempt.phase}: {exc}",
            "run `kvmlab doctor`, and report this if it persists")}
    with attempt.lock:
        if not attempt.abandoned:
            attempt.fields = fields
            attempt.finished_at = time.monotonic()
    attempt.done.set()


def _timed_out(attempt: _Attempt, timeout_s: float) -> dict[str, Any]:
    if attempt.phase == "connecting":
        reason = f"no answer within {timeout_s:g} s (still connecting)"
        remedy = ("check that the host is up and that libvirtd listens there (for qemu+ssh:// "
                  "URIs, that `ssh` to it works without a password prompt), or allow more "
                  "time with timeout_s")
    else:
        reason = f"no answer within {timeout_s:g} s (connected, but still {attempt.phase})"
        remedy = ("the host answers but too slowly: allow more time with timeout_s, or look "
                  "at libvirtd on that host (its load, its log)")
    return {"reachable": False, "error": _error(reason, remedy)}


# --------------------------------------------------------------------------- many hosts


def _check(uris: Any, timeout_s: Any, probe: Any) -> list[str]:
    if isinstance(uris, (str, bytes)):
        raise ScenarioError(f"uris must be a list of URIs, not one string: write [{uris!r}]")
    if not isinstance(uris, Sequence):
        raise ScenarioError(f"uris must be a list of URIs, not {type(uris).__name__}")
    if len(uris) == 0:
        raise ScenarioError("uris must name at least one host, e.g. ['test:///default']")
    for i, uri in enumerate(uris):
        if not isinstance(uri, str):
            raise ScenarioError(f"every URI must be a string: uris[{i}] is "
                                f"{type(uri).__name__} {uri!r}")
        if not uri.strip():
            raise ScenarioError(f"every URI must be a non-empty string: uris[{i}] is {uri!r}")
    if not (is_real(timeout_s) or isinstance(timeout_s, float)):    # nan, inf: floats
        raise ScenarioError(f"timeout_s must be a number of seconds, not "
                            f"{type(timeout_s).__name__} {timeout_s!r}")
    if not (is_real(timeout_s) and timeout_s > 0):
        raise ScenarioError(f"timeout_s must be a positive, finite number of seconds, not "
                            f"{timeout_s!r}: it bounds how long the call may take")
    if probe is not None and not callable(probe):
        raise ScenarioError(f"probe must be a function probe(conn) -> dict, or None, not "
                            f"{type(probe).__name__} {probe!r}")
    return list(uris)


def probe_hosts(uris: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                probe: Probe | None = None) -> list[HostReport]:
    """Probe every libvirt host of ``uris`` at the same time; one report per URI, in order.

    Each host is connected to read-only and read (the summary of :mod:`kvmlab.host.tour`)
    in its own daemon thread. The call returns at most about ``timeout_s`` seconds after it
    started, whatever the hosts do: a host that has not finished by then is reported as
    ``no answer within ...``, saying whether it was still connecting or already reading.
    Nothing the hosts do is raised: a refused connection, a libvirt error, a missing driver,
    a failing ``probe`` all end up in that host's report.

    A URI given twice is probed once, and its report appears at each of its places.

    Parameters
    ----------
    uris : sequence of str
        libvirt URIs: ``test:///default``, ``qemu:///system``, ``qemu+ssh://user@host/system``,
        ``qemu+tcp://host/system``...
    timeout_s : float
        Seconds allowed for the whole probe of each host (connect and reads), all hosts
        running at the same time; also the bound on the duration of the call.
    probe : callable, optional
        ``probe(conn) -> mapping`` to gather something else instead of the summary: its
        result goes into ``details`` (as a dict) and the summary fields stay ``None``. If it
        raises or returns something else than a mapping, the host is reported unreachable
        with that exception's text. It runs in a worker thread, on a read-only connection.

    Returns
    -------
    list of HostReport
        ``reports[i]`` is about ``uris[i]``.

    Raises
    ------
    ScenarioError
        When ``uris`` is not a non-empty list of non-empty strings, ``timeout_s`` is not a
        positive finite number, or ``probe`` is not callable. Never because of a host.

    Examples
    --------
    >>> import socket
    >>> with socket.socket() as s:        # a free port on this machine: nothing listens there
    ...     s.bind(("127.0.0.1", 0))
    ...     port = s.getsockname()[1]
    >>> closed = f"qemu+tcp://127.0.0.1:{port}/system"
    >>> fake, refused = probe_hosts(["test:///default", closed], timeout_s=3)
    >>> fake.reachable, fake.hypervisor, fake.accelerator, fake.domains_total >= 1
    (True, 'TEST', 'test', True)
    >>> refused.reachable, refused.cpus
    (False, None)
    >>> print(refused.error)
    nothing listens there (connection refused). What to do: check that libvirtd runs ...
    >>> refused.elapsed_s < 3
    True

    A custom probe, and one that fails:

    >>> def guests(conn):
    ...     return {"names": sorted(d.name() for d in conn.listAllDomains())}
    >>> probe_hosts(["test:///default"], probe=guests)[0].details
    {'names': ['test']}
    >>> def broken(conn):
    ...     raise RuntimeError("oops")
    >>> print(probe_hosts(["test:///default"], probe=broken)[0].error)
    connected, but the probe broken() raised RuntimeError: oops. What to do: fix the probe ...
    >>> probe_hosts([], timeout_s=1)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: uris must name at least one host, e.g. ['test:///default']
    """
    uris = _check(uris, timeout_s, probe)
    start = time.monotonic()
    deadline = start + float(timeout_s)
    attempts: dict[str, _Attempt] = {}
    for uri in uris:
        if uri in attempts:
            continue
        attempt = attempts[uri] = _Attempt(uri)
        threading.Thread(target=_work, args=(attempt, deadline, probe),
                         name=f"kvmlab-probe-{uri}", daemon=True).start()
    for attempt in attempts.values():
        attempt.done.wait(max(deadline - time.monotonic(), 0.0))

    outcomes: dict[str, HostReport] = {}
    for uri, attempt in attempts.items():
        with attempt.lock:
            if attempt.fields is None:
                attempt.abandoned = True          # the worker's late answer will be dropped
                fields, finished = _timed_out(attempt, float(timeout_s)), time.monotonic()
            else:
                fields, finished = attempt.fields, attempt.finished_at or time.monotonic()
        outcomes[uri] = HostReport(uri=uri, elapsed_s=round(finished - start, 3), **fields)
    return [outcomes[uri] for uri in uris]


def hosts_table(reports: Sequence[HostReport], columns: Sequence[str] | None = None) -> Table:
    """Lay out reports from :func:`probe_hosts` as one table (text in a terminal, HTML in Jupyter).

    Parameters
    ----------
    reports : sequence of HostReport
    columns : sequence of str, optional
        The columns to show. By default :data:`TABLE_COLUMNS`; when some report has
        ``details`` (a custom probe), ``uri``, ``reachable``, ``elapsed_s``, every key of
        the details, then ``error``.

    Returns
    -------
    Table
        Prints as aligned text; ``_repr_html_`` gives the HTML form.

    Raises
    ------
    ScenarioError
        When a row is not a HostReport, or a named column does not exist.

    Examples
    --------
    >>> reports = probe_hosts(["test:///default", "nosuchdriver:///x"], timeout_s=3)
    >>> print(hosts_table(reports, ["uri", "reachable", "hypervisor", "cpus", "networks"]))
    uri                reachable  hypervisor  cpus  networks
    -----------------  ---------  ----------  ----  --------
    test:///default    yes        TEST          16         1
    nosuchdriver:///x  no         -              -         -
    >>> "<th>accelerator</th>" in hosts_table(reports)._repr_html_()
    True
    >>> print(hosts_table(probe_hosts(["test:///default"],
    ...                               probe=lambda conn: {"guests": conn.numOfDomains()}),
    ...                   ["uri", "guests"]))
    uri              guests
    ---------------  ------
    test:///default       1
    """
    reports = list(reports)
    for i, report in enumerate(reports):
        if not isinstance(report, HostReport):
            raise ScenarioError(f"hosts_table takes the reports of probe_hosts(): row {i} is "
                                f"{type(report).__name__} {report!r}")
    title = "probe_hosts: " + HostReport.VIRSH
    with_details = [r for r in reports if r.details is not None]
    if not with_details:
        return Table(reports, list(TABLE_COLUMNS) if columns is None else columns, title)
    keys: list[str] = []
    for report in with_details:
        keys.extend(str(k) for k in (report.details or {}) if str(k) not in keys)
    rows = [{**{str(k): v for k, v in (r.details or {}).items()}, "uri": r.uri,
             "reachable": r.reachable, "elapsed_s": r.elapsed_s, "error": r.error}
            for r in reports]
    default = ["uri", "reachable", "elapsed_s", *[k for k in keys if k not in
                                                   ("uri", "reachable", "elapsed_s", "error")],
               "error"]
    return Table(rows, default if columns is None else columns, title)
