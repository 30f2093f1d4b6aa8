"""A read-only tour of a libvirt host: the node, its capabilities, domains, networks, storage.

Every function takes an open connection (from :func:`kvmlab.host.connect`), only *reads*
(it never starts, stops, defines or refreshes anything, so a read-only connection is
enough) and returns plain frozen dataclasses. Each dataclass knows the ``virsh`` command
that shows the same facts (its ``VIRSH`` attribute), prints as an aligned list of
``field  value`` lines and renders as an HTML table in a notebook. :func:`as_table` and
:class:`Table` lay out a list of them as a table.

A libvirt error never escapes as a raw ``libvirtError``: it becomes a
:class:`~kvmlab.errors.HostUnavailable` that says what was being read, why it failed and
what to do. An object that disappears while it is being listed (a guest undefined by
someone else a moment earlier) is left out instead.

Examples
--------
>>> from kvmlab.host import connect
>>> from kvmlab.host.tour import as_table, list_domains, node_info
>>> conn = connect("test:///default")
>>> node_info(conn).cpus                   # libvirt's test driver fakes a 16-CPU host
16
>>> domains = {d.name: d for d in list_domains(conn)}   # the test driver has one, "test"
>>> print(as_table([domains["test"]], columns=["name", "id", "state", "vcpus"]))
name  id  state    vcpus
----  --  -------  -----
test   1  running      2
>>> VIRSH_EQUIVALENT["list_domains"]
'virsh list --all'
"""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from kvmlab.errors import HostUnavailable, ScenarioError
from kvmlab.host.connect import explain, import_libvirt, version_string

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

__all__ = [
    "VIRSH_EQUIVALENT",
    "CapabilitiesSummary",
    "DomainInfo",
    "GuestOffer",
    "NetworkInfo",
    "NodeInfo",
    "PoolInfo",
    "Table",
    "VolumeInfo",
    "as_table",
    "capabilities_summary",
    "human_bytes",
    "list_domains",
    "list_networks",
    "list_pools",
    "node_info",
    "parse_capabilities",
    "state_word",
]

VIRSH_EQUIVALENT: dict[str, str] = {
    "node_info": "virsh nodeinfo",
    "capabilities_summary": "virsh capabilities",
    "list_domains": "virsh list --all",
    "list_networks": "virsh net-list --all; virsh net-dumpxml NAME",
    "list_pools": "virsh pool-list --all; virsh vol-list POOL",
}
"""The ``virsh`` command(s) a practitioner would type to see what each function returns."""

_HIDDEN = {"show": False}  # field metadata: keep the field out of text, HTML and tables


# --------------------------------------------------------------------------- rendering


class _Record:
    """Mixin giving the dataclasses below a text form (``print``) and an HTML form (Jupyter)."""

    VIRSH: ClassVar[str] = ""

    def __str__(self) -> str:
        shown = _shown_fields(self)
        width = max((len(f.name) for f in shown), default=0)
        lines = []
        for f in shown:
            value = getattr(self, f.name)
            if _is_record_sequence(value):
                lines.append(f"{f.name}:")
                lines.extend("  " + line for line in as_table(value).splitlines())
            else:
                lines.append(f"{f.name:<{width}}  {_cell(value, f.name)}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for f in _shown_fields(self):
            value = getattr(self, f.name)
            if _is_record_sequence(value):
                inner = Table(value)._repr_html_() if value else "<em>(none)</em>"
            else:
                inner = html.escape(_cell(value, f.name))
            rows.append(f"<tr><th style='text-align:left'>{html.escape(f.name)}</th>"
                        f"<td style='text-align:left'>{inner}</td></tr>")
        caption = _caption(self.VIRSH, type(self).__name__)
        return f"<table>{caption}<tbody>{''.join(rows)}</tbody></table>"


def _shown_fields(record: Any) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(record) if f.metadata.get("show", True)]


def _is_record_sequence(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and all(
        dataclasses.is_dataclass(v) and not isinstance(v, type) for v in value)


def _caption(virsh: str, kind: str) -> str:
    text = f"{kind} (like <code>{html.escape(virsh)}</code>)" if virsh else kind
    return f"<caption style='text-align:left'>{text}</caption>"


def human_bytes(size_bytes: int) -> str:
    """Format a byte count the way ``virsh pool-list --details`` does (powers of 1024).

    Examples
    --------
    >>> human_bytes(107374182400), human_bytes(512), human_bytes(1536)
    ('100.00 GiB', '512 B', '1.50 KiB')
    """
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{size_bytes} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _printable(text: str) -> str:
    """Escape anything that would break a one-line cell (newlines, tabs, control characters)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def _cell(value: Any, name: str = "") -> str:
    """The text of one table cell; ``name`` is the field name (``*_bytes`` get units)."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int) and name.endswith("_bytes"):
        text = human_bytes(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (tuple, list, frozenset, set)):
        items = [getattr(v, "name", v) if dataclasses.is_dataclass(v) else v for v in value]
        text = ", ".join(_cell(v) for v in items) if items else "-"
    else:
        text = str(value)
    return _printable(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _columns(rows: Sequence[Any], columns: Sequence[str] | None) -> list[str]:
    available: list[str] = []
    if rows:
        first = rows[0]
        if dataclasses.is_dataclass(first) and not isinstance(first, type):
            for row in rows:
                if type(row) is not type(first):
                    raise ScenarioError(
                        "all rows of a table must be of one kind: got "
                        f"{type(first).__name__} and {type(row).__name__}")
            available = [f.name for f in _shown_fields(first)]
        elif all(isinstance(row, Mapping) for row in rows):
            for row in rows:
                available.extend(str(k) for k in row if str(k) not in available)
        else:
            raise ScenarioError("table rows must be dataclass instances or mappings, got "
                                f"{type(first).__name__}")
    if columns is None:
        return available
    if rows:
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise ScenarioError(f"unknown column(s) {unknown}; the rows have {available}")
    return list(columns)


def _value(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name)


def _layout(rows: Sequence[Any], columns: Sequence[str] | None
            ) -> tuple[list[str], list[list[str]], list[bool]]:
    names = _columns(rows, columns)
    values = [[_value(row, n) for n in names] for row in rows]
    cells = [[_cell(v, n) for v, n in zip(vals, names, strict=True)] for vals in values]
    right = [
        any(vals[j] is not None for vals in values)
        and all(_is_number(vals[j]) for vals in values if vals[j] is not None)
        for j in range(len(names))
    ]
    return names, cells, right


def as_table(rows: Iterable[Any], columns: Sequence[str] | None = None) -> str:
    """Lay out dataclass instances (or mappings) as a fixed-width text table.

    One line of column names, one line of dashes as wide as each column, then one line per
    row; columns are separated by two spaces and start at the same offset on every line.
    Numbers are right-aligned, text left-aligned; ``None`` shows as ``-``, booleans as
    ``yes``/``no``, integers in fields named ``*_bytes`` in binary units (``100.00 GiB``).
    Trailing blanks are trimmed, so lines may be shorter than the line of dashes.

    Parameters
    ----------
    rows : iterable of dataclass instances (all of one kind) or of mappings
    columns : sequence of str, optional
        The columns to show, in order; by default every field (or key) of the rows.

    Returns
    -------
    str
        The table, or ``'(none)'`` when there are no rows and no columns were named.

    Raises
    ------
    ScenarioError
        When rows are of mixed kinds, are neither dataclasses nor mappings, or a named
        column does not exist.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Vm:
    ...     name: str
    ...     vcpus: int
    ...     running: bool
    >>> print(as_table([Vm("web", 2, True), Vm("database", 16, False)]))
    name      vcpus  running
    --------  -----  -------
    web           2  yes
    database     16  no
    >>> as_table([])
    '(none)'
    """
    rows = list(rows)
    names, cells, right = _layout(rows, columns)
    if not names:
        return "(none)"
    widths = [max([len(n), *(len(row[j]) for row in cells)]) for j, n in enumerate(names)]

    def line(texts: Sequence[str]) -> str:
        triples = zip(texts, widths, right, strict=True)
        parts = [t.rjust(w) if r else t.ljust(w) for t, w, r in triples]
        return "  ".join(parts).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells)])


class Table:
    """A list of rows that prints as :func:`as_table` and shows as HTML in a notebook.

    Parameters
    ----------
    rows : iterable of dataclass instances or mappings
    columns : sequence of str, optional
        The columns to show (default: all).
    title : str, optional
        A caption for the HTML form; by default the ``virsh`` equivalent of the rows.

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> nets = [n for n in list_networks(connect("test:///default")) if n.name == "default"]
    >>> table = Table(nets, ["name", "bridge", "active"])
    >>> table
    name     bridge  active
    -------  ------  ------
    default  virbr0  yes
    >>> len(table), table.title
    (1, 'virsh net-list --all; virsh net-dumpxml NAME')
    >>> "<th>bridge</th>" in table._repr_html_()
    True
    """

    def __init__(self, rows: Iterable[Any], columns: Sequence[str] | None = None,
                 title: str | None = None) -> None:
        self.rows: tuple[Any, ...] = tuple(rows)
        self.columns: list[str] = _columns(self.rows, columns)
        virsh = getattr(self.rows[0], "VIRSH", "") if self.rows else ""
        self.title: str = title if title is not None else virsh

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> Any:
        return self.rows[index]

    def __str__(self) -> str:
        return as_table(self.rows, self.columns)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        caption = (f"<caption style='text-align:left'><code>{html.escape(self.title)}</code>"
                   "</caption>" if self.title else "")
        if not self.rows:
            return f"<table>{caption}<tbody><tr><td><em>(none)</em></td></tr></tbody></table>"
        names, cells, right = _layout(self.rows, self.columns)

        def cell(tag: str, text: str, is_right: bool) -> str:
            align = "right" if is_right else "left"
            return f"<{tag} style='text-align:{align}'>{html.escape(text)}</{tag}>"

        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(
            "<tr>" + "".join(cell("td", t, r) for t, r in zip(row, right, strict=True)) + "</tr>"
            for row in cells)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------- errors


T = TypeVar("T")
R = TypeVar("R")

_VANISHED_CODES = ("VIR_ERR_NO_DOMAIN", "VIR_ERR_NO_NETWORK", "VIR_ERR_NO_STORAGE_POOL",
                   "VIR_ERR_NO_STORAGE_VOL")


def _uri_of(conn: Any) -> str:
    try:
        return str(conn.getURI())
    except Exception:  # noqa: BLE001 - the URI is only used in a message
        return "(this connection)"


def _probe_error(conn: Any, what: str, exc: Exception) -> HostUnavailable:
    """Turn a libvirt error met while reading ``what`` into a :class:`HostUnavailable`."""
    libvirt = import_libvirt()
    uri = _uri_of(conn)
    get_message = getattr(exc, "get_error_message", None)
    message = (get_message() if get_message else None) or str(exc)
    code = exc.get_error_code() if hasattr(exc, "get_error_code") else None
    if code == libvirt.VIR_ERR_INVALID_CONN:
        return HostUnavailable(uri, f"could not read {what}: the connection is closed or broken",
                               "open a new one with kvmlab.host.connect()")
    _reason, remedy = explain(uri, message)
    return HostUnavailable(uri, f"could not read {what} ({message.strip().rstrip('.')})", remedy)


def _libvirt_module(conn: Any) -> Any:
    """Import libvirt and check that ``conn`` is a connection; return the module."""
    libvirt = import_libvirt()
    if not isinstance(conn, libvirt.virConnect):
        raise ScenarioError(
            "expected an open libvirt connection, as returned by kvmlab.host.connect(), "
            f"but got {type(conn).__name__} {conn!r}")
    return libvirt


@contextmanager
def _reading(conn: Any, what: str) -> Iterator[None]:
    """Inside this block a libvirt error becomes a :class:`HostUnavailable`."""
    libvirt = import_libvirt()
    try:
        yield
    except libvirt.libvirtError as exc:
        raise _probe_error(conn, what, exc) from None


def _each(conn: Any, what: str, items: Iterable[T], build: Callable[[T], R]) -> list[R]:
    """``build`` every item, leaving out those that vanished meanwhile."""
    libvirt = import_libvirt()
    vanished = {getattr(libvirt, name) for name in _VANISHED_CODES}
    out = []
    for item in items:
        try:
            out.append(build(item))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in vanished:
                continue
            raise _probe_error(conn, what, exc) from None
    return out


# --------------------------------------------------------------------------- XML helpers

_UNIT_FACTORS = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000**2, "m": 1024**2, "mib": 1024**2,
    "gb": 1000**3, "g": 1024**3, "gib": 1024**3,
    "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
    "pb": 1000**5, "p": 1024**5, "pib": 1024**5,
}


def _size_bytes(element: ET.Element | None, default_unit: str = "bytes") -> int | None:
    """Read a libvirt size element such as ``<capacity unit='bytes'>42</capacity>``."""
    if element is None or not (element.text or "").strip():
        return None
    unit = (element.get("unit") or default_unit).lower()
    return int((element.text or "").strip()) * _UNIT_FACTORS.get(unit, 1)


def _text(root: ET.Element, path: str) -> str | None:
    text = root.findtext(path)
    return text.strip() if text is not None and text.strip() else None


# --------------------------------------------------------------------------- node


@dataclass(frozen=True)
class NodeInfo(_Record):
    """The host machine as libvirt sees it (``virsh nodeinfo`` plus ``virsh version``).

    Attributes
    ----------
    model : str
        CPU model or architecture as reported by the node (``x86_64`` on a PC).
    memory_mib : int
        Host memory in MiB.
    cpus : int
        Active logical CPUs (the authoritative count).
    mhz : int
        Nominal CPU frequency in MHz.
    numa_nodes : int
        NUMA nodes (memory controllers with their CPUs).
    sockets_per_node : int
        CPU sockets per NUMA node.
    cores_per_socket : int
        Cores per socket.
    threads_per_core : int
        Hardware threads per core (2 with Hyper-Threading/SMT).
    hypervisor : str
        The driver behind the connection: ``QEMU`` for KVM/QEMU hosts, ``TEST`` for the
        test driver.
    hypervisor_version : str
        That driver's version (for ``QEMU``, the QEMU version).
    libvirt_version : str
        Version of the libvirt library that serves the connection.
    hostname : str
    uri : str
        The canonical URI of the connection.
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["node_info"]

    model: str
    memory_mib: int
    cpus: int
    mhz: int
    numa_nodes: int
    sockets_per_node: int
    cores_per_socket: int
    threads_per_core: int
    hypervisor: str
    hypervisor_version: str
    libvirt_version: str
    hostname: str
    uri: str


def node_info(conn: libvirt.virConnect) -> NodeInfo:
    """Read the host's CPUs, memory and software versions.

    virsh equivalent: ``virsh nodeinfo`` (and ``virsh version``, ``virsh hostname``,
    ``virsh uri``).

    Parameters
    ----------
    conn : libvirt.virConnect
        An open connection; read-only is enough.

    Returns
    -------
    NodeInfo

    Raises
    ------
    HostUnavailable
        When libvirt cannot answer (for example, the connection was closed).

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> node = node_info(connect("test:///default"))
    >>> node.cpus, node.mhz, node.memory_mib, node.model
    (16, 1400, 3072, 'i686')
    >>> node.numa_nodes * node.sockets_per_node * node.cores_per_socket * node.threads_per_core
    16
    >>> node.hypervisor, node.uri
    ('TEST', 'test:///default')
    """
    _libvirt_module(conn)
    with _reading(conn, "the node information"):
        model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
        return NodeInfo(
            model=str(model), memory_mib=int(memory_mib), cpus=int(cpus), mhz=int(mhz),
            numa_nodes=int(nodes), sockets_per_node=int(sockets), cores_per_socket=int(cores),
            threads_per_core=int(threads), hypervisor=str(conn.getType()),
            hypervisor_version=version_string(conn.getVersion()),
            libvirt_version=version_string(conn.getLibVersion()),
            hostname=str(conn.getHostname()), uri=str(conn.getURI()),
        )


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class GuestOffer(_Record):
    """One kind of guest the host can run: an OS type on an architecture, by some drivers.

    Attributes
    ----------
    os_type : str
        ``hvm`` (an unmodified OS on emulated or hardware-assisted hardware), ``xen``
        (a paravirtualized Xen guest), ``exe`` (a container's process), ...
    arch : str
        Guest CPU architecture, e.g. ``x86_64``.
    wordsize : int or None
        32 or 64 bits.
    emulator : str or None
        The program that runs such guests (the QEMU binary on a KVM host).
    domain_types : tuple of str
        The ``<domain type=...>`` values allowed: ``qemu`` is pure software emulation (TCG),
        ``kvm`` uses the kvm.ko hardware-assisted accelerator.
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["capabilities_summary"]

    os_type: str
    arch: str
    wordsize: int | None
    emulator: str | None
    domain_types: tuple[str, ...]


@dataclass(frozen=True)
class CapabilitiesSummary(_Record):
    """The essentials of ``virsh capabilities``: the host CPU and the guests on offer.

    Attributes
    ----------
    host_arch : str
    cpu_model : str or None
        The host CPU model name (``Skylake-Client-IBRS``...); the test driver gives none.
    cpu_vendor : str or None
    cpu_features : tuple of str
        CPU features listed next to the model (those the model itself does not imply).
    numa_cells : int
        NUMA cells in the host topology (0 when the host does not report a topology).
    host_cpus : int
        Logical CPUs listed in that topology.
    guests : tuple of GuestOffer
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["capabilities_summary"]

    host_arch: str
    cpu_model: str | None
    cpu_vendor: str | None
    cpu_features: tuple[str, ...]
    numa_cells: int
    host_cpus: int
    guests: tuple[GuestOffer, ...]

    @property
    def guest_arches(self) -> tuple[str, ...]:
        """The distinct guest architectures on offer, sorted."""
        return tuple(sorted({g.arch for g in self.guests}))

    @property
    def domain_types(self) -> tuple[str, ...]:
        """The distinct domain types on offer, sorted (e.g. ``('kvm', 'qemu')``)."""
        return tuple(sorted({t for g in self.guests for t in g.domain_types}))

    @property
    def has_kvm(self) -> bool:
        """Whether libvirt offers hardware-assisted ``kvm`` guests on this host."""
        return "kvm" in self.domain_types


def parse_capabilities(xml: str) -> CapabilitiesSummary:
    """Summarise a ``<capabilities>`` XML document (the text of ``virsh capabilities``).

    Examples
    --------
    >>> caps = parse_capabilities('''<capabilities>
    ...   <host><cpu><arch>x86_64</arch><model>Skylake</model><vendor>Intel</vendor>
    ...     <feature name='vmx'/></cpu></host>
    ...   <guest><os_type>hvm</os_type>
    ...     <arch name='x86_64'><wordsize>64</wordsize>
    ...       <emulator>/usr/bin/qemu-system-x86_64</emulator>
    ...       <domain type='qemu'/><domain type='kvm'/></arch></guest>
    ... </capabilities>''')
    >>> caps.cpu_model, caps.cpu_features, caps.domain_types, caps.has_kvm
    ('Skylake', ('vmx',), ('kvm', 'qemu'), True)
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ScenarioError(f"the capabilities are not well-formed XML: {exc}") from None
    cpu = root.find("host/cpu")
    features: list[str] = []
    if cpu is not None:
        for element in [*cpu.findall("feature"), *cpu.findall("features/*")]:
            name = element.get("name") if element.tag == "feature" else element.tag
            if name and name not in features:
                features.append(name)
    cells = root.find("host/topology/cells")
    guests = []
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if arch is None:
            continue
        wordsize = _text(arch, "wordsize")
        types: list[str] = []
        for domain in arch.findall("domain"):
            kind = domain.get("type")
            if kind and kind not in types:
                types.append(kind)
        guests.append(GuestOffer(
            os_type=_text(guest, "os_type") or "?", arch=arch.get("name") or "?",
            wordsize=int(wordsize) if wordsize else None, emulator=_text(arch, "emulator"),
            domain_types=tuple(types)))
    return CapabilitiesSummary(
        host_arch=_text(root, "host/cpu/arch") or "?",
        cpu_model=_text(root, "host/cpu/model"),
        cpu_vendor=_text(root, "host/cpu/vendor"),
        cpu_features=tuple(features),
        numa_cells=len(cells.findall("cell")) if cells is not None else 0,
        host_cpus=len(root.findall("host/topology/cells/cell/cpus/cpu")),
        guests=tuple(guests),
    )


def capabilities_summary(conn: libvirt.virConnect) -> CapabilitiesSummary:
    """Read what the host is and which guests it can run.

    virsh equivalent: ``virsh capabilities`` (this function parses that XML).

    Parameters
    ----------
    conn : libvirt.virConnect

    Returns
    -------
    CapabilitiesSummary

    Raises
    ------
    HostUnavailable

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> caps = capabilities_summary(connect("test:///default"))
    >>> caps.host_arch, caps.cpu_model, caps.numa_cells, caps.host_cpus
    ('i686', None, 2, 16)
    >>> [(g.os_type, g.arch, g.domain_types) for g in caps.guests]
    [('hvm', 'i686', ('test',)), ('xen', 'i686', ('test',))]
    >>> caps.has_kvm              # a real KVM host offers ('kvm', 'qemu')
    False
    """
    _libvirt_module(conn)
    with _reading(conn, "the host capabilities"):
        xml = conn.getCapabilities()
    return parse_capabilities(xml)


# --------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class DomainInfo(_Record):
    """One guest (a *domain* in libvirt's words), as in ``virsh list --all`` and ``dominfo``.

    Attributes
    ----------
    name : str
    id : int or None
        The running instance's number; ``None`` when the domain is not running.
    state : str
        As virsh says it: ``running``, ``idle``, ``paused``, ``in shutdown``, ``shut off``,
        ``crashed``, ``pmsuspended`` or ``no state``.
    vcpus : int
        Virtual CPUs (on a KVM host, each one is a thread of the guest's QEMU process).
    memory_mib : int
        Memory the guest currently has, in MiB.
    max_memory_mib : int
        Memory it may be given at most (the balloon's ceiling), in MiB.
    persistent : bool
        Defined on the host (survives shut-off) rather than transient.
    autostart : bool
        Started when the host (libvirtd) starts.
    domain_type : str or None
        ``kvm`` (hardware-assisted), ``qemu`` (software emulation), ``test``...
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["list_domains"]

    name: str
    id: int | None
    state: str
    vcpus: int
    memory_mib: int
    max_memory_mib: int
    persistent: bool
    autostart: bool
    domain_type: str | None


_STATE_CONSTANTS = {
    "VIR_DOMAIN_NOSTATE": "no state",
    "VIR_DOMAIN_RUNNING": "running",
    "VIR_DOMAIN_BLOCKED": "idle",
    "VIR_DOMAIN_PAUSED": "paused",
    "VIR_DOMAIN_SHUTDOWN": "in shutdown",
    "VIR_DOMAIN_SHUTOFF": "shut off",
    "VIR_DOMAIN_CRASHED": "crashed",
    "VIR_DOMAIN_PMSUSPENDED": "pmsuspended",
}


def state_word(state: int) -> str:
    """The word virsh uses for a ``virDomainState`` number.

    Examples
    --------
    >>> state_word(1), state_word(5), state_word(99)
    ('running', 'shut off', 'unknown (99)')
    """
    libvirt = import_libvirt()
    words = {getattr(libvirt, name): word for name, word in _STATE_CONSTANTS.items()}
    return words.get(int(state), f"unknown ({state})")


def _domain(dom: Any) -> DomainInfo:
    state, max_kib, kib, vcpus, _cpu_time_ns = dom.info()
    dom_id = dom.ID()
    root = ET.fromstring(dom.XMLDesc(0))
    return DomainInfo(
        name=dom.name(), id=int(dom_id) if dom_id >= 0 else None, state=state_word(state),
        vcpus=int(vcpus), memory_mib=int(kib) // 1024, max_memory_mib=int(max_kib) // 1024,
        persistent=bool(dom.isPersistent()), autostart=bool(dom.autostart()),
        domain_type=root.get("type"),
    )


def list_domains(conn: libvirt.virConnect) -> list[DomainInfo]:
    """List every guest, running or not, sorted by name.

    virsh equivalent: ``virsh list --all`` (and ``virsh dominfo NAME`` for the details).

    Parameters
    ----------
    conn : libvirt.virConnect

    Returns
    -------
    list of DomainInfo

    Raises
    ------
    HostUnavailable

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> test = {d.name: d for d in list_domains(connect("test:///default"))}["test"]
    >>> test.name, test.id, test.state, test.vcpus, test.memory_mib, test.max_memory_mib
    ('test', 1, 'running', 2, 2048, 8192)
    >>> test.persistent, test.autostart, test.domain_type
    (True, False, 'test')
    """
    _libvirt_module(conn)
    with _reading(conn, "the list of domains"):
        domains = conn.listAllDomains(0)
    return sorted(_each(conn, "a domain", domains, _domain), key=lambda d: d.name)


# --------------------------------------------------------------------------- networks


@dataclass(frozen=True)
class NetworkInfo(_Record):
    """One libvirt virtual network, read from its XML (``virsh net-dumpxml NAME``).

    Attributes
    ----------
    name : str
    active : bool
    persistent : bool
    autostart : bool
    bridge : str or None
        The Linux bridge (software switch) guests are plugged into, e.g. ``virbr0``.
    forward_mode : str or None
        How traffic leaves the network: ``nat``, ``route``, ``open``, ``bridge``, ...;
        ``None`` when there is no ``<forward>`` element, that is, an isolated network.
    ip_address : str or None
        The host's own address on the bridge (the first IPv4 ``<ip>``, else the first).
    netmask : str or None
        Its netmask (computed from ``prefix=`` when the XML gives a prefix length).
    dhcp_start, dhcp_end : str or None
        The first DHCP range served on that address (by dnsmasq).
    xml : str
        The full network XML (not shown in tables; ``print(net.xml)`` to read it).
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["list_networks"]

    name: str
    active: bool
    persistent: bool
    autostart: bool
    bridge: str | None
    forward_mode: str | None
    ip_address: str | None
    netmask: str | None
    dhcp_start: str | None
    dhcp_end: str | None
    xml: str = field(default="", repr=False, metadata=_HIDDEN)

    @property
    def subnet(self) -> str | None:
        """The IP subnet of the network, e.g. ``'192.168.122.0/24'``."""
        if self.ip_address is None:
            return None
        mask = f"/{self.netmask}" if self.netmask else ""
        return str(ipaddress.ip_interface(f"{self.ip_address}{mask}").network)

    def explain(self) -> str:
        """Say in plain words what this network's XML sets up.

        Examples
        --------
        >>> from kvmlab.host import connect
        >>> net = {n.name: n for n in list_networks(connect("test:///default"))}["default"]
        >>> print(net.explain())  # doctest: +NORMALIZE_WHITESPACE
        Network 'default' is active and persistent; autostart is off (libvirt does not
        start it by itself when it starts at boot).
        Its switch is the Linux bridge virbr0: every guest NIC on this network is a tap
        device (vnet0, vnet1, ...) plugged into that bridge.
        The host itself has the address 192.168.122.1 (netmask 255.255.255.0) on the
        bridge, in the subnet 192.168.122.0/24; guests use it as their gateway.
        dnsmasq leases guests addresses from 192.168.122.2 to 192.168.122.254 by DHCP.
        Forward mode 'nat': traffic to the outside leaves with the host's own address
        (masquerading), so guests can reach out but the outside cannot reach in unaided.
        """
        state = "active" if self.active else "inactive"
        kept = "persistent" if self.persistent else "transient"
        auto = ("on (libvirt starts it by itself when it starts at boot)" if self.autostart
                else "off (libvirt does not start it by itself when it starts at boot)")
        lines = [f"Network {self.name!r} is {state} and {kept}; autostart is {auto}."]
        if self.bridge:
            lines.append(f"Its switch is the Linux bridge {self.bridge}: every guest NIC on "
                         "this network is a tap device (vnet0, vnet1, ...) plugged into that "
                         "bridge.")
        if self.ip_address:
            mask = f" (netmask {self.netmask})" if self.netmask else ""
            lines.append(f"The host itself has the address {self.ip_address}{mask} on the "
                         f"bridge, in the subnet {self.subnet}; guests use it as their gateway.")
        if self.dhcp_start and self.dhcp_end:
            lines.append(f"dnsmasq leases guests addresses from {self.dhcp_start} to "
                         f"{self.dhcp_end} by DHCP.")
        lines.append(_FORWARD_WORDS.get(
            self.forward_mode,
            f"Forward mode {self.forward_mode!r}: see libvirt's network XML documentation."))
        return "\n".join(lines)


_FORWARD_WORDS: dict[str | None, str] = {
    None: "No <forward> element: the network is isolated; guests reach each other and the "
          "host, nothing beyond.",
    "nat": "Forward mode 'nat': traffic to the outside leaves with the host's own address "
           "(masquerading), so guests can reach out but the outside cannot reach in unaided.",
    "route": "Forward mode 'route': the host routes the guests' traffic without NAT; the "
             "outside needs a route back to this subnet.",
    "open": "Forward mode 'open': the host routes traffic and libvirt adds no firewall rules.",
    "bridge": "Forward mode 'bridge': guests are plugged into an existing host bridge and sit "
              "directly on the physical LAN.",
}


def _network(net: Any) -> NetworkInfo:
    xml = net.XMLDesc(0)
    root = ET.fromstring(xml)
    forward = root.find("forward")
    ips = root.findall("ip")
    ipv4 = [ip for ip in ips if (ip.get("family") or "ipv4") == "ipv4"]
    ip = (ipv4 or ips or [None])[0]
    address = netmask = dhcp_start = dhcp_end = None
    if ip is not None:
        address, netmask = ip.get("address"), ip.get("netmask")
        prefix = ip.get("prefix")
        if netmask is None and prefix and address and ":" not in address:
            netmask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
        dhcp_range = ip.find("dhcp/range")
        if dhcp_range is not None:
            dhcp_start, dhcp_end = dhcp_range.get("start"), dhcp_range.get("end")
    bridge = root.find("bridge")
    return NetworkInfo(
        name=net.name(), active=bool(net.isActive()), persistent=bool(net.isPersistent()),
        autostart=bool(net.autostart()),
        bridge=bridge.get("name") if bridge is not None else None,
        forward_mode=(forward.get("mode") or "nat") if forward is not None else None,
        ip_address=address, netmask=netmask, dhcp_start=dhcp_start, dhcp_end=dhcp_end,
        xml=xml,
    )


def list_networks(conn: libvirt.virConnect) -> list[NetworkInfo]:
    """List every virtual network, active or not, sorted by name, with its XML parsed.

    Only reads: an inactive network is reported as inactive, never started.

    virsh equivalent: ``virsh net-list --all``, then ``virsh net-dumpxml NAME`` for each.

    Parameters
    ----------
    conn : libvirt.virConnect

    Returns
    -------
    list of NetworkInfo

    Raises
    ------
    HostUnavailable

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> net = {n.name: n for n in list_networks(connect("test:///default"))}["default"]
    >>> net.name, net.active, net.bridge, net.forward_mode
    ('default', True, 'virbr0', 'nat')
    >>> net.ip_address, net.netmask, net.dhcp_start, net.dhcp_end
    ('192.168.122.1', '255.255.255.0', '192.168.122.2', '192.168.122.254')
    >>> net.subnet
    '192.168.122.0/24'
    """
    _libvirt_module(conn)
    with _reading(conn, "the list of networks"):
        networks = conn.listAllNetworks(0)
    return sorted(_each(conn, "a network", networks, _network), key=lambda n: n.name)


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class VolumeInfo(_Record):
    """One storage volume (a disk image, a logical volume...), as in ``virsh vol-list``.

    Attributes
    ----------
    name : str
    type : str or None
        ``file``, ``block``, ``dir``, ``network``...
    format : str or None
        ``raw``, ``qcow2``, ``vmdk``... (``None`` when the pool does not say).
    capacity_bytes : int or None
        The size the guest sees.
    allocation_bytes : int or None
        The space it really takes on the host (smaller for sparse or qcow2 images).
    path : str or None
        Where the volume lives on the host.
    """

    VIRSH: ClassVar[str] = "virsh vol-list POOL --details"

    name: str
    type: str | None
    format: str | None
    capacity_bytes: int | None
    allocation_bytes: int | None
    path: str | None


@dataclass(frozen=True)
class PoolInfo(_Record):
    """One storage pool and its volumes, as in ``virsh pool-list --all --details``.

    Attributes
    ----------
    name : str
    type : str or None
        ``dir``, ``logical`` (an LVM volume group), ``netfs``, ``iscsi``, ``rbd``...
    active : bool
    persistent : bool
    autostart : bool
    capacity_bytes, allocation_bytes, available_bytes : int or None
        Size of the pool, space used, space free.
    target_path : str or None
        Where the pool appears on the host (a directory, ``/dev/VG``...).
    volumes : tuple of VolumeInfo
        Empty when the pool is inactive (libvirt cannot list an inactive pool).
    """

    VIRSH: ClassVar[str] = VIRSH_EQUIVALENT["list_pools"]

    name: str
    type: str | None
    active: bool
    persistent: bool
    autostart: bool
    capacity_bytes: int | None
    allocation_bytes: int | None
    available_bytes: int | None
    target_path: str | None
    volumes: tuple[VolumeInfo, ...]


def _volume(vol: Any) -> VolumeInfo:
    root = ET.fromstring(vol.XMLDesc(0))
    fmt = root.find("target/format")
    return VolumeInfo(
        name=vol.name(), type=root.get("type"), format=fmt.get("type") if fmt is not None else None,
        capacity_bytes=_size_bytes(root.find("capacity")),
        allocation_bytes=_size_bytes(root.find("allocation")),
        path=_text(root, "target/path"),
    )


def _pool(conn: Any, pool: Any) -> PoolInfo:
    libvirt = import_libvirt()
    root = ET.fromstring(pool.XMLDesc(0))
    active = bool(pool.isActive())
    volumes: list[VolumeInfo] = []
    if active:
        try:
            listed = pool.listAllVolumes(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # went inactive
                raise
            listed = []
        volumes = sorted(_each(conn, f"a volume of pool {pool.name()!r}", listed, _volume),
                         key=lambda v: v.name)
    return PoolInfo(
        name=pool.name(), type=root.get("type"), active=active,
        persistent=bool(pool.isPersistent()), autostart=bool(pool.autostart()),
        capacity_bytes=_size_bytes(root.find("capacity")),
        allocation_bytes=_size_bytes(root.find("allocation")),
        available_bytes=_size_bytes(root.find("available")),
        target_path=_text(root, "target/path"), volumes=tuple(volumes),
    )


def list_pools(conn: libvirt.virConnect) -> list[PoolInfo]:
    """List every storage pool, active or not, sorted by name, with its volumes.

    Only reads: pools are neither started nor refreshed, so volumes created behind
    libvirt's back since the last refresh do not show.

    virsh equivalent: ``virsh pool-list --all``, then ``virsh vol-list POOL`` for each.

    Parameters
    ----------
    conn : libvirt.virConnect

    Returns
    -------
    list of PoolInfo

    Raises
    ------
    HostUnavailable

    Examples
    --------
    >>> from kvmlab.host import connect
    >>> pool = {p.name: p for p in list_pools(connect("test:///default"))}["default-pool"]
    >>> pool.name, pool.type, pool.active, pool.target_path, pool.volumes
    ('default-pool', 'dir', True, '/default-pool', ())
    >>> pool.capacity_bytes, pool.allocation_bytes, pool.available_bytes
    (107374182400, 0, 107374182400)
    >>> print(as_table([pool], ["name", "capacity_bytes", "available_bytes"]))
    name          capacity_bytes  available_bytes
    ------------  --------------  ---------------
    default-pool      100.00 GiB       100.00 GiB
    """
    _libvirt_module(conn)
    with _reading(conn, "the list of storage pools"):
        pools = conn.listAllStoragePools(0)
    return sorted(_each(conn, "a storage pool", pools, lambda p: _pool(conn, p)),
                  key=lambda p: p.name)
