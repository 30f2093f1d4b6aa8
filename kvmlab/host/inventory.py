"""What a host holds: its domains, virtual networks and storage pools (read only).

Each function takes an open connection, only reads, and returns frozen dataclasses that
print as ``field  value`` lines and show as HTML tables.

Examples
--------
>>> from kvmlab.host import connect
>>> [d.name for d in list_domains(connect("test:///default"))]
['test']
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from kvmlab.display import HIDDEN, Record
from kvmlab.host.connect import import_libvirt
from kvmlab.host.reading import each, reading, require_connection
from kvmlab.host.xmlread import size_bytes, xml_text

if TYPE_CHECKING:  # pragma: no cover
    import libvirt

__all__ = ["DomainInfo", "NetworkInfo", "PoolInfo", "VolumeInfo", "list_domains",
           "list_networks", "list_pools", "state_word"]


# --------------------------------------------------------------------------- domains


@dataclass(frozen=True)
class DomainInfo(Record):
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

    VIRSH: ClassVar[str] = "virsh list --all"

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
    >>> import libvirt
    >>> state_word(libvirt.VIR_DOMAIN_RUNNING), state_word(libvirt.VIR_DOMAIN_SHUTOFF)
    ('running', 'shut off')
    >>> state_word(99)
    'unknown (99)'
    """
    libvirt = import_libvirt()
    words = {getattr(libvirt, name): word for name, word in _STATE_CONSTANTS.items()}
    return words.get(int(state), f"unknown ({state})")


def _domain(dom: Any) -> DomainInfo:
    state, max_kib, kib, vcpus, _cpu_time_ns = dom.info()
    dom_id = dom.ID()
    root = ET.fromstring(dom.XMLDesc())
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
    require_connection(conn)
    with reading(conn, "the list of domains"):
        domains = conn.listAllDomains()
    return sorted(each(conn, "a domain", domains, _domain), key=lambda d: d.name)


# --------------------------------------------------------------------------- networks


@dataclass(frozen=True)
class NetworkInfo(Record):
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

    VIRSH: ClassVar[str] = "virsh net-list --all; virsh net-dumpxml NAME"

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
    xml: str = field(default="", repr=False, metadata=HIDDEN)

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
    xml = net.XMLDesc()
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
    require_connection(conn)
    with reading(conn, "the list of networks"):
        networks = conn.listAllNetworks()
    return sorted(each(conn, "a network", networks, _network), key=lambda n: n.name)


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class VolumeInfo(Record):
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
class PoolInfo(Record):
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

    VIRSH: ClassVar[str] = "virsh pool-list --all; virsh vol-list POOL"

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
    root = ET.fromstring(vol.XMLDesc())
    fmt = root.find("target/format")
    return VolumeInfo(
        name=vol.name(), type=root.get("type"), format=fmt.get("type") if fmt is not None else None,
        capacity_bytes=size_bytes(root.find("capacity")),
        allocation_bytes=size_bytes(root.find("allocation")),
        path=xml_text(root, "target/path"),
    )


def _pool(conn: Any, pool: Any) -> PoolInfo:
    libvirt = import_libvirt()
    root = ET.fromstring(pool.XMLDesc())
    active = bool(pool.isActive())
    volumes: list[VolumeInfo] = []
    if active:
        try:
            listed = pool.listAllVolumes()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # went inactive
                raise
            listed = []
        volumes = sorted(each(conn, f"a volume of pool {pool.name()!r}", listed, _volume),
                         key=lambda v: v.name)
    return PoolInfo(
        name=pool.name(), type=root.get("type"), active=active,
        persistent=bool(pool.isPersistent()), autostart=bool(pool.autostart()),
        capacity_bytes=size_bytes(root.find("capacity")),
        allocation_bytes=size_bytes(root.find("allocation")),
        available_bytes=size_bytes(root.find("available")),
        target_path=xml_text(root, "target/path"), volumes=tuple(volumes),
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
    >>> from kvmlab.display import as_table
    >>> print(as_table([pool], ["name", "capacity_bytes", "available_bytes"]))
    name          capacity_bytes  available_bytes
    ------------  --------------  ---------------
    default-pool      100.00 GiB       100.00 GiB
    """
    require_connection(conn)
    with reading(conn, "the list of storage pools"):
        pools = conn.listAllStoragePools()
    return sorted(each(conn, "a storage pool", pools, lambda p: _pool(conn, p)),
                  key=lambda p: p.name)
