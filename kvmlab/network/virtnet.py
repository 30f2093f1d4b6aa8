"""libvirt's virtual networks as a model: the modes, DHCP leases from dnsmasq, and NAT.

A libvirt network is a Linux bridge (``virbr0`` for ``default``) with the host's own
address on it. What happens to a guest's traffic beyond the bridge depends on the
``<forward mode=...>`` of the network's XML:

* ``nat`` (the default network): dnsmasq leases addresses by DHCP; traffic to the
  outside leaves with the host's address (masquerading, source ports 1024-65535);
  the outside cannot start a connection in.
* ``route``: routed without NAT; the outside needs a route back to the subnet.
* ``open``: routed, and libvirt adds no firewall rules at all.
* no ``<forward>``: *isolated*; guests reach each other and the host, nothing else.
* ``bridge``: guests sit on an existing host bridge, directly on the LAN (libvirt
  runs no DHCP server and no NAT for it).

Only the network's XML is read from a host (:func:`kvmlab.host.tour.list_networks`);
the DHCP server and the NAT here are models, never started on the host. The
``nat-default-network`` scenario checks them against a real dnsmasq and a real kernel's
connection table inside a tiny guest (:mod:`kvmlab.network.nattwin`).

Examples
--------
>>> from kvmlab.host import connect
>>> from kvmlab.host.tour import list_networks
>>> default = {n.name: n for n in list_networks(connect("test:///default"))}["default"]
>>> net = VirtualNetwork.from_xml(default.xml)
>>> net.mode, net.bridge, str(net.address), net.dhcp_size
('nat', 'virbr0', '192.168.122.1/24', 253)
>>> server = Dnsmasq(net)
>>> lease = server.request("52:54:00:00:00:01")
>>> lease.ip, server.request("52:54:00:00:00:01").ip == lease.ip
('192.168.122.27', True)
>>> nat = Nat(net)
>>> out = nat.outbound("tcp", lease.ip, 40000, "198.51.100.7", 443)
>>> out.action, out.translated
('masquerade', ('203.0.113.1', 40000, '198.51.100.7', 443))
>>> nat.inbound("tcp", "198.51.100.7", 443, "203.0.113.1", 40000).translated[2:]
('192.168.122.27', 40000)
"""

from __future__ import annotations

import ipaddress
import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from kvmlab.errors import ScenarioError
from kvmlab.network.frames import parse_mac
from kvmlab.network.vlan import PortVlans, explain_port_vlans, libvirt_vlan

MODES = ("nat", "route", "open", "isolated", "bridge")
OUTSIDE_ADDRESS = "203.0.113.1"
"""The host's address towards the outside in the model (a documentation address)."""
NAT_PORTS = (1024, 65535)
"""libvirt's MASQUERADE rules map TCP and UDP source ports into this range."""
NOT_NATTED = (ipaddress.ip_network("224.0.0.0/24"), ipaddress.ip_network("255.255.255.255/32"))
"""Destinations libvirt's rules leave alone (local multicast and broadcast)."""
DEFAULT_LEASE_S = 3600


@dataclass(frozen=True)
class VirtualNetwork:
    """What a libvirt network's XML sets up."""

    name: str
    mode: str
    bridge: str | None
    address: ipaddress.IPv4Interface | None
    dhcp_start: ipaddress.IPv4Address | None = None
    dhcp_end: ipaddress.IPv4Address | None = None
    static_hosts: dict[str, tuple[ipaddress.IPv4Address, str]] = field(default_factory=dict)
    portgroups: dict[str, tuple[bool, PortVlans | None]] = field(default_factory=dict)
    """Port group name to (is the default, the VLANs it gives a guest's port, if any)."""
    more_ranges: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...] = ()
    """The ``<range>`` elements after the first (``dhcp_start``-``dhcp_end``)."""
    stp: bool = True
    """``<bridge stp=...>``: libvirt turns STP on unless the XML says ``stp='off'``."""
    delay_s: float = 0.0
    """``<bridge delay=...>``: the bridge's forward delay (libvirt's default 0)."""

    @property
    def dhcp_ranges(self) -> tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...]:
        """Every DHCP range, first to last as in the XML."""
        if self.dhcp_start is None or self.dhcp_end is None:
            return ()
        return ((self.dhcp_start, self.dhcp_end), *self.more_ranges)

    @classmethod
    def from_xml(cls, xml: str) -> VirtualNetwork:
        """Read a network's XML (``virsh net-dumpxml NAME``)."""
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise ScenarioError(f"not a network XML: {exc}") from None
        if root.tag != "network":
            raise ScenarioError(f"not a network XML: the root element is <{root.tag}>")
        forward = root.find("forward")
        mode = "isolated" if forward is None else (forward.get("mode") or "nat")
        bridge = root.find("bridge")
        address = start = end = None
        ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
        hosts: dict[str, tuple[ipaddress.IPv4Address, str]] = {}
        for ip in root.findall("ip"):
            if (ip.get("family") or "ipv4") != "ipv4" or address is not None:
                continue
            mask = ip.get("prefix") or ip.get("netmask") or "24"
            address = ipaddress.IPv4Interface(f"{ip.get('address')}/{mask}")
            ranges = [_dhcp_range(rng, address) for rng in ip.findall("dhcp/range")]
            _check_no_overlap(ranges)
            if ranges:
                start, end = ranges[0]
            for host in ip.findall("dhcp/host"):
                if host.get("mac") and host.get("ip"):
                    hosts[parse_mac(host.get("mac"))] = (ipaddress.IPv4Address(host.get("ip")),
                                                         host.get("name", ""))
        groups = {}
        for group in root.findall("portgroup"):
            vlan = group.find("vlan")
            groups[group.get("name", "")] = (group.get("default") == "yes",
                                             libvirt_vlan(vlan) if vlan is not None else None)
        stp = bridge is None or bridge.get("stp", "on") != "off"
        try:
            delay = float(bridge.get("delay", "0")) if bridge is not None else 0.0
        except ValueError:
            raise ScenarioError("<bridge delay=...> is a number of seconds, not "
                                f"{bridge.get('delay')!r}") from None
        return cls(root.findtext("name", ""), mode,
                   bridge.get("name") if bridge is not None else None, address, start, end,
                   hosts, groups, tuple(ranges[1:]) if address is not None else (), stp,
                   delay)

    def explain_portgroups(self) -> str:
        """What each ``<portgroup>`` does to the port of a guest that joins it."""
        if not self.portgroups:
            return f"network {self.name!r} has no port groups"
        lines = []
        for name, (default, vlans) in self.portgroups.items():
            what = explain_port_vlans(vlans) if vlans else "no VLAN settings"
            lines.append(f"port group {name!r}{' (the default)' if default else ''}: {what}")
        return "\n".join(lines)

    @property
    def dhcp_size(self) -> int:
        """How many addresses the DHCP ranges hold (0 without DHCP)."""
        return sum(int(b) - int(a) + 1 for a, b in self.dhcp_ranges)


def _dhcp_range(rng: ET.Element, net: ipaddress.IPv4Interface
                ) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """One ``<range start=... end=...>``, checked against its network."""
    try:
        start = ipaddress.IPv4Address(rng.get("start"))
        end = ipaddress.IPv4Address(rng.get("end"))
    except ValueError as exc:
        raise ScenarioError(f"a DHCP range needs IPv4 start and end addresses: {exc}") from None
    if int(start) > int(end):
        raise ScenarioError(f"DHCP range {start}-{end}: its start is after its end (dnsmasq "
                            "and libvirt refuse it; swap the two)")
    for a in (start, end):
        if a not in net.network:
            raise ScenarioError(f"DHCP range {start}-{end} is not inside the network "
                                f"{net.network}: {a} is outside it (a DHCP server leases only "
                                "addresses of its own subnet)")
    for a in (net.network.network_address, net.network.broadcast_address):
        if int(start) <= int(a) <= int(end):
            what = "address" if a == net.network.network_address else "broadcast address"
            raise ScenarioError(f"DHCP range {start}-{end} holds {a}, the network's own "
                                f"{what} (never a host's)")
    return start, end


def _check_no_overlap(ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]
                      ) -> None:
    ordered = sorted(ranges)
    for (a1, b1), (a2, b2) in itertools.pairwise(ordered):
        if int(a2) <= int(b1):
            raise ScenarioError(f"DHCP ranges {a1}-{b1} and {a2}-{b2} overlap: an address "
                                "belongs to one range (libvirt refuses overlapping ranges)")


@dataclass(frozen=True)
class Lease:
    """An address dnsmasq leased to a MAC."""

    mac: str
    ip: str
    hostname: str
    expires_s: float
    how: str


def dnsmasq_hash(mac: str) -> int:
    """The hash dnsmasq starts its search for a free address from (SDBM over the MAC's bytes).

    Examples
    --------
    >>> dnsmasq_hash("52:54:00:00:00:01") == dnsmasq_hash("52:54:00:00:00:01")
    True
    """
    j = 0
    for byte in bytes.fromhex(mac.replace(":", "")):
        j = (byte + (j << 6) + (j << 16) - j) & 0xFFFFFFFF
    return j or 1                       # dnsmasq keeps 0 as a marker


def _usable(ip: ipaddress.IPv4Address) -> bool:
    """dnsmasq never leases a class C address ending in .0 or .255 (Windows breaks on them)."""
    return not (192 <= ip.packed[0] <= 223 and ip.packed[3] in (0, 255))


def _first_free(ranges: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...],
                j: int, used: set[ipaddress.IPv4Address]
                ) -> tuple[ipaddress.IPv4Address, int]:
    """dnsmasq's ``address_allocate``: per range, start at ``start + j % size`` and walk
    on (wrapping round the range) to the first free, usable address.

    Returns the address and how many were passed over to reach it.
    """
    for start, end in ranges:
        size = int(end) - int(start) + 1
        first = j % size
        for k in range(size):
            candidate = start + (first + k) % size
            if candidate not in used and _usable(candidate):
                return candidate, k
    shown = ", ".join(f"{a}-{b}" for a, b in ranges)
    raise ScenarioError(f"no address left in {shown}: all are leased (dnsmasq answers "
                        "nothing)")


class Dnsmasq:
    """The DHCP side of dnsmasq as libvirt configures it, in one step per request.

    A MAC listed in ``<dhcp><host .../>`` gets its fixed address; a MAC that already
    has a lease keeps it; otherwise the search starts at an address derived from a
    hash of the MAC and takes the first free one after it (wrapping round the
    range), never the host's own address. The real exchange is four broadcast
    messages (DISCOVER, OFFER, REQUEST, ACK); :attr:`log` lists them.
    """

    def __init__(self, network: VirtualNetwork, lease_s: float = DEFAULT_LEASE_S) -> None:
        if network.dhcp_size == 0:
            raise ScenarioError(f"network {network.name!r} has no DHCP range: libvirt runs no "
                                "DHCP server for it (give its <ip> a <dhcp><range/>)")
        self.network = network
        self.lease_s = lease_s
        self.leases: dict[str, Lease] = {}
        self.log: list[str] = []

    def request(self, mac: str, hostname: str = "", now_s: float = 0.0) -> Lease:
        """A guest with ``mac`` asks for an address; the lease it gets."""
        mac = parse_mac(mac)
        net = self.network
        assert net.dhcp_start is not None and net.address is not None
        old = self.leases.get(mac)
        if mac in net.static_hosts:
            ip, name = net.static_hosts[mac]
            lease = Lease(mac, str(ip), name or hostname, now_s + self.lease_s,
                          "fixed by a <host> entry")
        elif old is not None and old.expires_s > now_s:
            lease = Lease(mac, old.ip, hostname or old.hostname, now_s + self.lease_s,
                          "renewed: the same address as before")
        else:
            used = {ipaddress.IPv4Address(le.ip) for m, le in self.leases.items()
                    if m != mac and le.expires_s > now_s}
            used |= {ip for ip, _name in net.static_hosts.values()}
            used.add(net.address.ip)
            candidate, k = _first_free(net.dhcp_ranges, dnsmasq_hash(mac), used)
            how = ("the address the MAC's hash points at" if k == 0 else
                   f"{k} address(es) after the one the MAC's hash points at (taken)")
            lease = Lease(mac, str(candidate), hostname, now_s + self.lease_s, how)
        self.leases[mac] = lease
        server = str(net.address.ip)
        self.log += [f"DHCPDISCOVER from {mac} (broadcast)",
                     f"DHCPOFFER {lease.ip} to {mac} from {server}",
                     f"DHCPREQUEST {lease.ip} from {mac} (broadcast)",
                     f"DHCPACK {lease.ip} to {mac}, lease {self.lease_s:g} s: {lease.how}"]
        return lease


@dataclass(frozen=True)
class Verdict:
    """What the host does with a packet: its action, the packet after it, and why."""

    action: str
    translated: tuple[str, int, str, int] | None
    reason: str


class Nat:
    """The host's forwarding and masquerading for one network, with a connection table."""

    def __init__(self, network: VirtualNetwork, outside: str = OUTSIDE_ADDRESS) -> None:
        if network.mode not in MODES:
            raise ScenarioError(f"forward mode {network.mode!r} is not modelled; modelled: "
                                f"{MODES}")
        self.network = network
        self.outside = outside
        self.connections: dict[tuple[str, str, int, str, int], tuple[str, int]] = {}

    def _free_port(self, proto: str, port: int, dst: str, dst_port: int) -> int:
        taken = {(p, o[1], d, dp) for (p, _s, _sp, d, dp), o in self.connections.items()}
        low, high = NAT_PORTS
        candidates = [port] if low <= port <= high else []
        candidates += range(low, high + 1)
        for candidate in candidates:
            if (proto, candidate, dst, dst_port) not in taken:
                return candidate
        raise ScenarioError("every source port towards that destination is in use")

    def outbound(self, proto: str, src: str, src_port: int, dst: str,
                 dst_port: int) -> Verdict:
        """A guest at ``src`` sends to ``dst``: switched, routed, masqueraded or dropped."""
        net = self.network
        d = ipaddress.IPv4Address(dst)
        packet = (src, src_port, dst, dst_port)
        if net.mode == "bridge":
            return Verdict("bridged", packet, "the guest is on the LAN itself: the host's "
                           "bridge switches its frames like any other machine's")
        if net.address is not None and d in net.address.network:
            return Verdict("switched", packet, f"{dst} is on {net.bridge}: the bridge "
                           "delivers it, nothing is routed")
        if net.mode == "isolated":
            return Verdict("dropped", None, "an isolated network (no <forward>) reaches only "
                           "its guests and the host")
        if net.mode in ("route", "open") or any(d in n for n in NOT_NATTED):
            return Verdict("routed", packet, "routed unchanged: the outside sees the guest's "
                           "own address and needs a route back to "
                           f"{net.address.network if net.address else 'its subnet'}")
        key = (proto, src, src_port, dst, dst_port)
        if key not in self.connections:
            port = self._free_port(proto, src_port, dst, dst_port) if proto in (
                "tcp", "udp") else src_port
            self.connections[key] = (self.outside, port)
        out_ip, out_port = self.connections[key]
        moved = "" if out_port == src_port else f", source port {src_port} -> {out_port}"
        return Verdict("masquerade", (out_ip, out_port, dst, dst_port),
                       f"source {src} -> {out_ip}{moved}; the connection is remembered so "
                       "that replies find their way back")

    def inbound(self, proto: str, src: str, src_port: int, dst: str, dst_port: int) -> Verdict:
        """A packet from the outside to the host's outside address: a reply, or nothing."""
        for (p, g_ip, g_port, d, d_port), (o_ip, o_port) in self.connections.items():
            if (p, d, d_port, o_ip, o_port) == (proto, src, src_port, dst, dst_port):
                return Verdict("de-masquerade", (src, src_port, g_ip, g_port),
                               f"a reply on a remembered connection: back to {g_ip}:{g_port}")
        return Verdict("dropped", None, "no remembered connection: behind NAT, the outside "
                       "cannot start a connection to a guest (forward a port for that)")
