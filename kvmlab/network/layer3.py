"""Layer 3 in a topology: addresses on NICs and VLAN sub-devices, default gateways, and
routers (hosts that forward IPv4 packets between their interfaces).

A host's *interfaces* (in the IP sense) are its NICs and its VLAN sub-devices that are not
bridge ports, each with the MAC it sends from (a sub-device has its parent's). A host with
``"gateway": "10.0.10.1"`` sends a packet for another subnet to the gateway's MAC; a host
with ``"forward": true`` is a router: a packet that reaches it for an address not its own
leaves again by the interface whose subnet holds that address, with the TTL one lower and
new MAC addresses (its own as source, the next hop's as destination, which it asks for by
ARP the first time).

Router on a stick: one NIC on a trunk port, one 802.1Q sub-device per VLAN, each with an
address in its VLAN's subnet; the hosts of each VLAN have that address as gateway.

Examples
--------
>>> from kvmlab.network.scenario import load_scenario
>>> t = load_scenario("vlan-router-on-a-stick")
>>> [(i.id, str(i.address)) for i in interfaces(t, "router")]
[('router:eth0.10', '10.0.10.1/24'), ('router:eth0.20', '10.0.20.1/24')]
>>> route(t, "router", "10.0.20.2").id, route(t, "a", "10.0.20.2") is None
('router:eth0.20', True)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kvmlab.errors import ScenarioError

if TYPE_CHECKING:
    from kvmlab.network.frames import Sender


class Topology(Protocol):
    """What layer 3 reads of a :class:`kvmlab.network.scenario.Topology`. That module
    checks its topologies with this one, so this one names only what it uses."""

    hosts: tuple[Any, ...]
    bridges: tuple[Any, ...]

    def port(self, ident: str) -> Any: ...

    def peer(self, ident: str) -> str: ...

    def is_port(self, ident: str) -> bool: ...

__all__ = ["Interface", "check_address", "check_layer3", "interfaces", "next_hop_mac",
           "owner_of", "route"]


@dataclass(frozen=True)
class Interface:
    """A host's interface with an IPv4 address: a NIC or a VLAN sub-device."""

    host: str
    name: str
    mac: str
    address: ipaddress.IPv4Interface

    @property
    def id(self) -> str:
        return f"{self.host}:{self.name}"

    @property
    def ip(self) -> str:
        return str(self.address.ip)


def check_address(ip: Any, what: str) -> str:
    """An IPv4 address with a prefix (``10.0.0.1/24``), not its subnet's network or
    broadcast address; a ScenarioError naming the rule otherwise."""
    if not isinstance(ip, str):
        raise ScenarioError(f"{what}: an IPv4 address with a prefix is text like "
                            f"'10.0.0.1/24', not {ip!r}")
    try:
        iface = ipaddress.IPv4Interface(ip)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        raise ScenarioError(f"{what}: {ip!r} is not an IPv4 address with a prefix (like "
                            "10.0.0.1/24)") from None
    if "/" not in ip or iface.ip in (iface.network.network_address,
                                     iface.network.broadcast_address):
        raise ScenarioError(f"{what}: {ip!r} needs a prefix and must not be its subnet's "
                            "network or broadcast address")
    return str(iface)


def interfaces(topo: Topology, host: str) -> list[Interface]:
    """The host's interfaces that have an address: NICs, then sub-devices, by name."""
    out = []
    for h in topo.hosts:
        if h.name != host:
            continue
        macs = {n.name: n.mac for n in h.nics}
        out += [Interface(host, n.name, n.mac, ipaddress.IPv4Interface(n.ip))
                for n in h.nics if n.ip]
        out += [Interface(host, sub, macs[h.vlan_devices[sub][0]], ipaddress.IPv4Interface(ip))
                for sub, ip in sorted(h.addresses.items())]
    return out


def owner_of(topo: Topology, ip: str) -> Interface | None:
    """The interface that has address ``ip``, if any."""
    return next((i for h in topo.hosts for i in interfaces(topo, h.name) if i.ip == ip), None)


def route(topo: Topology, host: str, to: str) -> Interface | None:
    """The host's interface whose subnet holds ``to`` (a connected route), if any."""
    addr = ipaddress.IPv4Address(to)
    return next((i for i in interfaces(topo, host) if addr in i.address.network), None)


def next_hop_mac(topo: Topology, nic: Sender, to: str) -> str:
    """The MAC a packet from ``nic`` to ``to`` is sent to: the destination's on the NIC's own
    subnet, else its host's gateway's. A ScenarioError when there is no route or nobody has
    the next hop's address."""
    assert nic.interface is not None
    host = nic.id.split(":")[0]
    if ipaddress.IPv4Address(to) in nic.interface.network:
        hop = to
    else:
        gateway = next(h.gateway for h in topo.hosts if h.name == host)
        if gateway is None:
            raise ScenarioError(f"{nic.id} sends to {to}, outside its subnet "
                                f"{nic.interface.network}, and host {host} has no gateway")
        hop = gateway
    owner = owner_of(topo, hop)
    if owner is None:
        raise ScenarioError(f"{nic.id} sends to {to} by {hop}, and no interface has {hop}")
    return owner.mac


def check_layer3(topo: Topology) -> None:
    """The layer 3 rules: an address on a sub-device that is a bridge port is refused; a
    gateway lies in one of its host's subnets and belongs to a router; a router has an
    interface in every VLAN its trunk port carries tagged."""
    for h in topo.hosts:
        for sub in h.addresses:
            if any(b.host == h.name and any(p.name == sub for p in b.ports)
                   for b in topo.bridges):
                raise ScenarioError(f"{h.name}:{sub} is a bridge port: a port's address is "
                                    "never used (give the address to a host behind it)")
        if h.gateway is not None:
            gw = ipaddress.IPv4Address(h.gateway)
            mine = interfaces(topo, h.name)
            if not any(gw in i.address.network for i in mine):
                raise ScenarioError(
                    f"host {h.name}: gateway {gw} is not in the host's subnet "
                    f"({', '.join(str(i.address.network) for i in mine) or 'it has none'}): a "
                    "host reaches its gateway directly, on its own link")
            if any(i.ip == str(gw) for i in mine):
                raise ScenarioError(f"host {h.name}: gateway {gw} is its own address")
            owner = owner_of(topo, str(gw))
            if owner is None or not next(x.forward for x in topo.hosts
                                         if x.name == owner.host):
                raise ScenarioError(f"host {h.name}: gateway {gw} is no router's address "
                                    "(give a host \"forward\": true and that address)")
        if h.forward:
            _check_router(topo, h.name)


def _check_router(topo: Topology, name: str) -> None:
    host = next(h for h in topo.hosts if h.name == name)
    for nic in host.nics:
        try:
            peer = topo.peer(nic.id)
        except ScenarioError:
            continue
        if not topo.is_port(peer) or topo.port(peer).vlans is None:
            continue
        vlans = topo.port(peer).vlans or {}
        for vid, (_pvid, untagged) in vlans.items():
            if untagged:
                if nic.ip is None:
                    raise ScenarioError(f"router {name} has no interface in VLAN {vid}: "
                                        f"{peer} sends it untagged to {nic.id}, which has "
                                        "no address")
                continue
            subs = [s for s, (p, v) in host.vlan_devices.items() if p == nic.name and v == vid]
            if not any(s in host.addresses for s in subs):
                raise ScenarioError(f"router {name} has no interface in VLAN {vid}, which its "
                                    f"port {peer} carries: give it a sub-device "
                                    f"{nic.name}.{vid} with an address in that VLAN's subnet")
    if len(interfaces(topo, name)) < 2:
        raise ScenarioError(f"router {name} forwards between interfaces: it needs two with "
                            "an address at least")
