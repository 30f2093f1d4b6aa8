"""A libvirt NAT network as a scenario: the network's XML, guests that ask for leases, and
the connections they open to a server outside.

The JSON form::

    {"name": "nat-default-network",
     "network": "default",
     "guests": [{"name": "vm1", "mac": "52:54:00:00:00:01"},
                {"name": "vm2", "mac": "52:54:00:00:00:02"}],
     "connections": [{"from": "vm1", "sport": 40000, "dport": 5000},
                     {"from": "vm2", "sport": 40000, "dport": 5000}]}

``network`` is ``"default"`` (libvirt's ``default.xml``: the host's
``/usr/share/libvirt/networks/default.xml`` when it has one, else the same template as
kvmlab ships it) or a network's XML itself. Guests ask for their lease one after the
other, in the order given; two guests may have the same MAC (what dnsmasq then does is
part of the lab). Each connection is a UDP datagram from the guest's source port
``sport`` to the outside server :data:`SERVER_ADDRESS`, port ``dport``.

Examples
--------
>>> load_nat_scenario("nat-default-network").guests[0].name
'vm1'
>>> s = NatScenario.from_dict({"network": "default",
...                            "guests": [{"name": "vm1", "mac": "52:54:00:00:00:01"}],
...                            "connections": [{"from": "vm1", "sport": 40000, "dport": 5000}]})
>>> s.network.bridge, str(s.network.address), s.connections[0].proto
('virbr0', '192.168.122.1/24', 'udp')
>>> NatScenario.from_dict({"network": "default", "guests": []})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: a NAT scenario needs at least one guest (1-32)
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.network.frames import is_group, parse_mac
from kvmlab.network.virtnet import OUTSIDE_ADDRESS, VirtualNetwork
from kvmlab.validate import check_keys, is_whole, mapping, text

__all__ = [
    "DEFAULT_XML",
    "HOST_DEFAULT_XML",
    "MAX_GUESTS",
    "PREFIX",
    "SERVER_ADDRESS",
    "Connection",
    "NatGuest",
    "NatScenario",
    "default_xml",
    "is_nat_dict",
    "load_nat_scenario",
]

HOST_DEFAULT_XML = Path("/usr/share/libvirt/networks/default.xml")
"""Where Debian's libvirt keeps the template of the ``default`` network (``virsh net-define``
reads it once; the defined network then lives in ``/etc/libvirt/qemu/networks/default.xml``)."""
DEFAULT_XML = """<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
"""
"""libvirt's ``default.xml`` template as kvmlab ships it (the same as libvirt's)."""
SERVER_ADDRESS = "203.0.113.2"
"""The outside server's address (the NAT router's outside address is
:data:`~kvmlab.network.virtnet.OUTSIDE_ADDRESS`, in the same documentation subnet)."""
MAX_GUESTS = 32
"""Each guest's lease takes a few seconds on the real run (dnsmasq pings an address before
offering it)."""
PREFIX = "nat-"
"""The shipped NAT scenarios: ``data/scenarios/nat-*``."""
_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")


def default_xml() -> tuple[str, str]:
    """libvirt's ``default`` network XML and where it came from (the host's, or kvmlab's)."""
    try:
        return HOST_DEFAULT_XML.read_text(), str(HOST_DEFAULT_XML)
    except OSError:
        return DEFAULT_XML, "kvmlab's copy of libvirt's default.xml"


def is_nat_dict(data: Mapping[str, Any]) -> bool:
    """Is this JSON form a NAT scenario (it has ``network`` and ``guests``)?"""
    return "guests" in data or "network" in data


@dataclass(frozen=True)
class NatGuest:
    """A guest on the NAT network: a name (its namespace in the real run) and a MAC."""

    name: str
    mac: str


@dataclass(frozen=True)
class Connection:
    """A datagram from a guest's source port to the outside server's port ``dport``."""

    guest: str
    sport: int
    dport: int
    proto: str = "udp"


def _port(value: Any, what: str) -> int:
    if not is_whole(value) or not 1 <= int(value) <= 65535:
        raise ScenarioError(f"{what} is a port number 1-65535, not {value!r}")
    return int(value)


def _guest(data: Any, i: int) -> NatGuest:
    data = mapping(data, f"guest {i} (name and mac)")
    check_keys(data, ("name", "mac"), f"guest {i}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ScenarioError(f"guest {i}'s name {name!r} must be 1-8 lower-case letters or "
                            "digits, starting with a letter (it names a network namespace)")
    if "mac" not in data:
        raise ScenarioError(f"guest {name!r} needs a mac")
    mac = parse_mac(data["mac"])
    if is_group(mac):
        raise ScenarioError(f"guest {name!r}: {mac} is a group (multicast) address; a NIC's "
                            "MAC has the lowest bit of its first byte clear")
    return NatGuest(name, mac)


def _connection(data: Any, i: int, guests: dict[str, NatGuest]) -> Connection:
    data = mapping(data, f"connection {i} (from, sport, dport)")
    check_keys(data, ("from", "sport", "dport", "proto"), f"connection {i}")
    who = data.get("from")
    if who not in guests:
        raise ScenarioError(f"connection {i} is from {who!r}, which is not a guest; the "
                            f"guests are {', '.join(guests)}")
    proto = data.get("proto", "udp")
    if proto != "udp":
        raise ScenarioError(f"connection {i}: proto {proto!r}: the real run sends UDP "
                            "datagrams only (libvirt's masquerading treats TCP the same way)")
    return Connection(str(who), _port(data.get("sport"), f"connection {i}'s sport"),
                      _port(data.get("dport"), f"connection {i}'s dport"))


@dataclass(frozen=True)
class NatScenario:
    """A NAT network, its guests in the order they ask for leases, and their connections."""

    network: VirtualNetwork
    xml: str
    guests: tuple[NatGuest, ...]
    connections: tuple[Connection, ...] = ()
    network_source: str = "default"
    name: str = ""
    description: str = ""

    def guest(self, name: str) -> NatGuest:
        for g in self.guests:
            if g.name == name:
                return g
        raise ScenarioError(f"no guest {name!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NatScenario:
        """Build and check a NAT scenario; a broken rule raises ScenarioError naming it."""
        data = mapping(data, "a NAT scenario (network, guests, connections)")
        check_keys(data, ("name", "description", "network", "guests", "connections"),
                   "the NAT scenario")
        source = data.get("network", "default")
        if source == "default":
            xml, _where = default_xml()
        elif isinstance(source, str) and source.lstrip().startswith("<"):
            xml = source
        else:
            raise ScenarioError("network is 'default' (libvirt's default.xml) or a network's "
                                f"XML, not {str(source)[:40]!r}")
        net = VirtualNetwork.from_xml(xml)
        if net.mode != "nat":
            raise ScenarioError(f"network {net.name!r} has forward mode {net.mode!r}; this "
                                "scenario needs a NAT network (<forward/> or mode='nat')")
        if net.address is None or not net.bridge or net.dhcp_size == 0:
            raise ScenarioError(f"network {net.name!r} needs a bridge name, an IPv4 address "
                                "and a DHCP range")
        if not _IFNAME.fullmatch(net.bridge) or net.bridge in ("uplink", "lo"):
            raise ScenarioError(f"bridge name {net.bridge!r} is not a valid interface name "
                                "here: 1-15 letters, digits, '_', '.' or '-' (and not "
                                "'uplink' or 'lo')")
        if any(ipaddress.IPv4Address(a) in net.address.network
               for a in (OUTSIDE_ADDRESS, SERVER_ADDRESS)):
            raise ScenarioError(f"network {net.address.network} holds the outside addresses "
                                f"{OUTSIDE_ADDRESS} and {SERVER_ADDRESS}: choose another subnet")
        raw = data.get("guests", [])
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_GUESTS:
            raise ScenarioError(f"a NAT scenario needs at least one guest (1-{MAX_GUESTS})")
        guests = tuple(_guest(g, i) for i, g in enumerate(raw))
        names = [g.name for g in guests]
        if len(set(names)) != len(names):
            raise ScenarioError("two guests have the same name; names are unique")
        if "outside" in names:
            raise ScenarioError("'outside' is the server's namespace; name the guest otherwise")
        if len({g.mac for g in guests}) > net.dhcp_size:
            raise ScenarioError(f"{len({g.mac for g in guests})} MACs but the DHCP ranges hold "
                                f"{net.dhcp_size} addresses")
        by_name = {g.name: g for g in guests}
        raw_c = data.get("connections", [])
        if not isinstance(raw_c, list) or len(raw_c) > 64:
            raise ScenarioError("connections is a list of at most 64")
        conns = tuple(_connection(c, i, by_name) for i, c in enumerate(raw_c))
        flows = [(by_name[c.guest].mac, c.sport, c.dport) for c in conns]
        if len(set(flows)) != len(flows):
            raise ScenarioError("two connections from the same MAC use the same source and "
                                "destination ports: on the wire they are one flow (give one "
                                "another sport)")
        return cls(net, xml, guests, conns, "default" if source == "default" else "xml",
                   text(data.get("name", ""), "the scenario's name"),
                   text(data.get("description", ""), "the description", high=100_000))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out["network"] = "default" if self.network_source == "default" else self.xml
        out["guests"] = [{"name": g.name, "mac": g.mac} for g in self.guests]
        out["connections"] = [{"from": c.guest, "sport": c.sport, "dport": c.dport}
                              for c in self.connections]
        return out


def load_nat_scenario(scenario: NatScenario | Mapping[str, Any] | str | Path) -> NatScenario:
    """The NAT scenario a name (``nat-default-network``), JSON file or dict stands for."""
    return load_scenario_as(scenario, NatScenario, NatScenario.from_dict,
                            what="NAT scenario", prefixes=(PREFIX,))
