"""The node and its capabilities, as ``virsh nodeinfo`` and ``virsh capabilities`` show them.

Examples
--------
>>> from kvmlab.host import connect
>>> node_info(connect("test:///default")).cpus          # the test driver fakes 16 CPUs
16
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from kvmlab.display import Record
from kvmlab.errors import ScenarioError
from kvmlab.host.connect import version_string
from kvmlab.host.reading import reading, require_connection
from kvmlab.host.xmlread import xml_text

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

__all__ = ["CapabilitiesSummary", "GuestOffer", "NodeInfo", "capabilities_summary",
           "node_info", "parse_capabilities"]


# --------------------------------------------------------------------------- node


@dataclass(frozen=True)
class NodeInfo(Record):
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

    VIRSH: ClassVar[str] = "virsh nodeinfo"

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
    require_connection(conn)
    with reading(conn, "the node information"):
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
class GuestOffer(Record):
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

    VIRSH: ClassVar[str] = "virsh capabilities"

    os_type: str
    arch: str
    wordsize: int | None
    emulator: str | None
    domain_types: tuple[str, ...]


@dataclass(frozen=True)
class CapabilitiesSummary(Record):
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

    VIRSH: ClassVar[str] = "virsh capabilities"

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
        wordsize = xml_text(arch, "wordsize")
        types: list[str] = []
        for domain in arch.findall("domain"):
            kind = domain.get("type")
            if kind and kind not in types:
                types.append(kind)
        guests.append(GuestOffer(
            os_type=xml_text(guest, "os_type") or "?", arch=arch.get("name") or "?",
            wordsize=int(wordsize) if wordsize else None, emulator=xml_text(arch, "emulator"),
            domain_types=tuple(types)))
    return CapabilitiesSummary(
        host_arch=xml_text(root, "host/cpu/arch") or "?",
        cpu_model=xml_text(root, "host/cpu/model"),
        cpu_vendor=xml_text(root, "host/cpu/vendor"),
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
    require_connection(conn)
    with reading(conn, "the host capabilities"):
        xml = conn.getCapabilities()
    return parse_capabilities(xml)
