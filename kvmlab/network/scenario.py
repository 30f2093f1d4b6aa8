"""The network lab's scenario, a topology as plain data: hosts with NICs, Linux bridges with
ports, the links between them, and the frames the hosts send.

The JSON form::

    {"name": "two-guests",
     "hosts": [{"name": "vm1", "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01"}]},
               {"name": "vm2", "nics": [{"name": "eth0", "mac": "52:54:00:00:00:02"}]}],
     "bridges": [{"name": "br0", "ageing_s": 300,
                  "ports": ["vnet0", {"name": "vnet1", "hairpin": false}]}],
     "links": [["vm1:eth0", "br0:vnet0"], ["vm2:eth0", "br0:vnet1"]],
     "frames": [{"from": "vm1:eth0", "dst": "ff:ff:ff:ff:ff:ff"},
                {"from": "vm2:eth0", "dst": "52:54:00:00:00:01", "at_s": 0.5}]}

A NIC may have an IPv4 address (``"ip": "10.0.0.1/24"``); a frame
``{"from": "vm1:eth0", "arp": "10.0.0.2"}`` is then an ARP request ("who has
10.0.0.2?"), broadcast, and the host that has the address answers it.

An interface is named ``node:interface``. A link is a cable (a veth pair on the
real kernel, like the tap device ``vnet0`` that joins a guest to a bridge). A
port takes the flags ``learning``, ``flood`` (unknown unicast), ``mcast_flood``,
``bcast_flood`` (all on by default) and ``hairpin`` (off), as
``bridge link set`` does. A frame's ``src`` defaults to its NIC's MAC and its
``at_s`` to 0.1 s after the frame before.

Examples
--------
>>> t = Topology.from_dict({"hosts": [{"name": "a", "nics": ["eth0"]},
...                                   {"name": "b", "nics": ["eth0"]}],
...                         "bridges": [{"name": "br0", "ports": ["p1", "p2"]}],
...                         "links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"]],
...                         "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]})
>>> t.nic("a:eth0").mac, t.frames[0].at_s
('52:54:00:00:01:01', 0.0)
>>> load_scenario("net-hub").bridges[0].ageing_s
0.0
>>> Topology.from_dict({"bridges": [{"name": "this-name-is-too-long"}]})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: bridge name 'this-name-is-too-long' is not a valid interface ...
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.network.frames import Frame, Sender, is_group, parse_frames, parse_mac
from kvmlab.network.layer3 import check_address, check_layer3, interfaces, next_hop_mac
from kvmlab.network.natscenario import PREFIX as NAT_PREFIX
from kvmlab.network.natscenario import NatScenario, is_nat_dict
from kvmlab.network.vlan import VLAN_KEYS, PortVlans, check_vid, port_vlans
from kvmlab.validate import (
    boolean,
    check_keys,
    is_real,
    list_of,
    mapping,
    read_json_file,
    text,
)

__all__ = ["DEFAULT_AGEING_S", "PORT_FLAGS", "PREFIXES", "SETTLE_S", "TAP_BYTE", "Bridge", "Host",
           "Nic", "Port", "Topology", "check_ifname", "load_scenario"]

_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
"""Interface, host and bridge names: within Linux's rule (1-15 characters, no '/', ':' or
white space), and only letters, digits, '_', '.' and '-', so that a name is the same word in
the guest's shell scripts as in the kernel (nothing to quote, nothing to expand)."""
DEFAULT_AGEING_S = 300.0
"""Linux's default: a learned address is forgotten after 300 s of silence."""
SETTLE_S = 0.5
"""How long after the last frame the forwarding tables are read (by the model and the kernel)."""
PORT_FLAGS = {"learning": True, "flood": True, "mcast_flood": True, "bcast_flood": True,
              "hairpin": False}
"""A new bridge port's flags in Linux (``bridge link show -d``)."""
MAX_NODES = 256
"""The most hosts, bridges, NICs per host, ports per bridge or links of a topology: the
model's loop checks and flooding walk the graph for every link and frame, and 256 bridges
in a line with 200 frames already take seconds."""
TAP_BYTE = "fe"
"""The first byte of a bridge port's MAC when the port's other end is a NIC (see
:meth:`Topology.port_mac`)."""
PREFIXES = ("net-", "vlan-", NAT_PREFIX)
"""The shipped scenarios of this lab: ``data/scenarios/net-*`` and ``vlan-*`` (topologies), and
``nat-*`` (NAT networks, see :mod:`kvmlab.network.natscenario`)."""


def check_ifname(name: Any, what: str) -> str:
    """A name the kernel accepts for an interface (and kvmlab for a host or bridge)."""
    if not isinstance(name, str) or not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise ScenarioError(f"{what} name {name!r} is not a valid interface name here: "
                            "1-15 letters, digits, '_', '.' or '-', not starting with "
                            "'.' or '-'")
    return name


@dataclass(frozen=True)
class Nic:
    """A host's network card."""

    host: str
    name: str
    mac: str
    ip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.host}:{self.name}"

    @property
    def interface(self) -> ipaddress.IPv4Interface | None:
        return None if self.ip is None else ipaddress.IPv4Interface(self.ip)


@dataclass(frozen=True)
class Port:
    """A bridge port with its flags, and its VLANs on a VLAN-aware bridge."""

    bridge: str
    name: str
    flags: Mapping[str, bool] = field(default_factory=lambda: dict(PORT_FLAGS))
    vlans: PortVlans | None = None

    @property
    def id(self) -> str:
        return f"{self.bridge}:{self.name}"


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge: its ports and how long it remembers an address."""

    name: str
    ports: tuple[Port, ...] = ()
    ageing_s: float = DEFAULT_AGEING_S
    vlan_filtering: bool = False
    host: str | None = None
    """The host the bridge lives in (its namespace), if not the shared one."""


@dataclass(frozen=True)
class Host:
    """A host (a network namespace on the real kernel) with its NICs, and its 8021q VLAN
    sub-devices: name to (parent NIC, VLAN ID), like ``eth0.10`` on ``eth0``."""

    name: str
    nics: tuple[Nic, ...] = ()
    vlan_devices: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    addresses: Mapping[str, str] = field(default_factory=dict)
    """Sub-device name to its IPv4 address with prefix (see :mod:`kvmlab.network.layer3`)."""
    gateway: str | None = None
    forward: bool = False
    """A router: forwards IPv4 packets between its interfaces."""


@dataclass(frozen=True)
class Topology:
    """Hosts, bridges, links and frames; see the module's description for the JSON form."""

    hosts: tuple[Host, ...] = ()
    bridges: tuple[Bridge, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    frames: tuple[Frame, ...] = ()
    name: str = ""
    description: str = ""

    # -- lookups ---------------------------------------------------------------------
    def nic(self, ident: str) -> Nic:
        """The NIC ``host:nic``."""
        for h in self.hosts:
            for n in h.nics:
                if n.id == ident:
                    return n
        raise ScenarioError(f"no NIC {ident!r} in the topology")

    def port(self, ident: str) -> Port:
        """The bridge port ``bridge:port``."""
        for b in self.bridges:
            for p in b.ports:
                if p.id == ident:
                    return p
        raise ScenarioError(f"no bridge port {ident!r} in the topology")

    def bridge(self, name: str) -> Bridge:
        for b in self.bridges:
            if b.name == name:
                return b
        raise ScenarioError(f"no bridge {name!r} in the topology")

    def peer(self, ident: str) -> str:
        """The interface at the other end of the link from ``ident``."""
        for a, b in self.links:
            if a == ident:
                return b
            if b == ident:
                return a
        raise ScenarioError(f"interface {ident!r} is in no link")

    def sub_device(self, port_id: str) -> tuple[str, int] | None:
        """For a bridge port that is a VLAN sub-device: (its parent NIC, VLAN ID)."""
        bridge, name = port_id.split(":", 1)
        host = next((b.host for b in self.bridges if b.name == bridge), None)
        for h in self.hosts:
            if h.name == host and name in h.vlan_devices:
                parent, vid = h.vlan_devices[name]
                return f"{h.name}:{parent}", vid
        return None

    def sub_device_port(self, nic: str, vid: int | None) -> str | None:
        """The bridge port that is ``nic``'s sub-device for VLAN ``vid``, if there is one."""
        if vid is None:
            return None
        host, parent = nic.split(":", 1)
        for h in self.hosts:
            if h.name != host:
                continue
            for sub, (p, v) in h.vlan_devices.items():
                if p == parent and v == vid:
                    for b in self.bridges:
                        if b.host == host and any(port.name == sub for port in b.ports):
                            return f"{b.name}:{sub}"
        return None

    def port_mac(self, port_id: str) -> str | None:
        """The MAC of a bridge port's own device, where the kernel's is known.

        A VLAN sub-device has its parent's MAC. A veth whose other end is a NIC gets the
        NIC's MAC with the first byte ``fe`` (as libvirt gives its tap devices
        ``fe:54:00:…``: a bridge takes the lowest of its ports' MACs as its own, and
        ``fe`` keeps a guest's from being chosen). Other ports get a random one: None.
        """
        if (sub := self.sub_device(port_id)) is not None:
            return self.nic(sub[0]).mac
        peer = next((b if a == port_id else a for a, b in self.links if port_id in (a, b)),
                    None)
        if peer is None or self.is_port(peer):
            return None
        return TAP_BYTE + self.nic(peer).mac[2:]

    def bridge_mac(self, name: str) -> str | None:
        """A bridge's own MAC: its ports' lowest (``br_stp_recalculate_bridge_id``), or None."""
        macs = [self.port_mac(p.id) for p in self.bridge(name).ports]
        return None if not macs or None in macs else min(m for m in macs if m)

    def local_macs(self, name: str) -> set[str]:
        """The bridge's *local* addresses: its own and its ports' MACs. The kernel keeps them
        in the forwarding table as permanent entries: never learned from a port, and a frame
        to one is for the bridge itself (passed up, never forwarded)."""
        macs = {self.port_mac(p.id) for p in self.bridge(name).ports}
        macs.add(self.bridge_mac(name))
        return {m for m in macs if m is not None}

    def host_ips(self, host: str) -> set[str]:
        """The IPv4 addresses of a host's interfaces (a network namespace's local
        addresses)."""
        return {i.ip for i in interfaces(self, host)}

    def next_hop(self, nic: Sender, to: str) -> str:
        """The MAC a packet from ``nic`` to address ``to`` goes to (see
        :func:`~kvmlab.network.layer3.next_hop_mac`)."""
        return next_hop_mac(self, nic, to)

    def is_port(self, ident: str) -> bool:
        return ident.split(":", 1)[0] in {b.name for b in self.bridges}

    @property
    def nics(self) -> list[Nic]:
        return [n for h in self.hosts for n in h.nics]

    def graph(self) -> nx.MultiGraph:
        """Hosts and bridges as nodes, links as edges (with the interfaces at each end)."""
        g = nx.MultiGraph()
        for h in self.hosts:
            g.add_node(h.name, kind="host")
        for b in self.bridges:
            g.add_node(b.name, kind="bridge")
        for a, b in self.links:
            g.add_edge(a.split(":")[0], b.split(":")[0], ends=(a, b))
        for br in self.bridges:                  # a host's VLAN sub-device in its own bridge
            for port in br.ports:
                if self.sub_device(port.id) is not None:
                    g.add_edge(br.host, br.name, ends=(f"{br.host}:{port.name}", port.id))
        return g

    # -- JSON --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """Build and check a topology; a broken rule raises ScenarioError naming it."""
        data = mapping(data, "a topology (hosts, bridges, links and frames)")
        check_keys(data, ("name", "description", "hosts", "bridges", "links", "frames"),
                   "the topology")
        hosts = tuple(_host(h, i) for i, h in enumerate(_list(data, "hosts")))
        bridges = tuple(_bridge(b) for b in _list(data, "bridges"))
        nodes = [h.name for h in hosts] + [b.name for b in bridges]
        if not nodes:
            raise ScenarioError("a topology needs at least one host or bridge")
        if dup := _first_duplicate(nodes):
            raise ScenarioError(f"two hosts or bridges are called {dup!r}; names are unique")
        for where in {b.host for b in bridges}:          # names are per network namespace
            ports = [p.name for b in bridges if b.host == where for p in b.ports]
            if dup := _first_duplicate(ports):
                raise ScenarioError(f"port {dup!r} is plugged into two bridges (or twice into "
                                    "one); an interface has one place")
            if clash := set(ports) & {b.name for b in bridges if b.host == where}:
                raise ScenarioError(f"{sorted(clash)[0]!r} is both a bridge and a port name")
        macs = [n.mac for h in hosts for n in h.nics]
        if dup := _first_duplicate(macs):
            raise ScenarioError(f"two NICs have the MAC address {dup}; each NIC needs its "
                                "own (a frame may still borrow one with 'src')")
        ips = [n.ip.split("/")[0] for h in hosts for n in h.nics if n.ip]
        ips += [ip.split("/")[0] for h in hosts for ip in h.addresses.values()]
        if dup := _first_duplicate(ips):
            raise ScenarioError(f"two NICs have the address {dup}; each needs its own")
        topo = cls(hosts=hosts, bridges=bridges,
                   name=text(data.get("name", ""), "the topology's name"),
                   description=text(data.get("description", ""), "the description",
                                    high=100_000))
        _check_bridge_hosts(topo)
        interfaces = ({n.id for n in topo.nics}
                      | {p.id for b in bridges for p in b.ports if not topo.sub_device(p.id)})
        links = tuple(_link(link, interfaces) for link in _list(data, "links"))
        used = [end for link in links for end in link]
        if dup := _first_duplicate(used):
            raise ScenarioError(f"interface {dup!r} is in two links; a cable has two ends "
                                "and an interface takes one cable")
        if missing := sorted(interfaces - set(used)):
            raise ScenarioError(f"interface {missing[0]!r} is in no link: connect it or "
                                "leave it out")
        topo = cls(hosts=hosts, bridges=bridges, links=links, name=topo.name,
                   description=topo.description)
        _check_no_loops(topo)
        check_layer3(topo)
        frames = parse_frames(data.get("frames", []), topo.nic, topo.is_port, topo.next_hop)
        return cls(hosts=hosts, bridges=bridges, links=links, frames=frames, name=topo.name,
                   description=topo.description)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        out["hosts"] = [{"name": h.name, "nics": [{"name": n.name, "mac": n.mac}
                                                 | ({"ip": n.ip} if n.ip else {})
                                                 for n in h.nics]}
                        | ({"vlan_devices": [{"name": k, "parent": p, "id": v}
                                             | ({"ip": h.addresses[k]} if k in h.addresses
                                                else {})
                                             for k, (p, v) in h.vlan_devices.items()]}
                           if h.vlan_devices else {})
                        | ({"gateway": h.gateway} if h.gateway else {})
                        | ({"forward": True} if h.forward else {})
                        for h in self.hosts]
        out["bridges"] = [{"name": b.name, "ageing_s": b.ageing_s,
                           "ports": [{"name": p.name, **p.flags} | _vlans_dict(p)
                                     for p in b.ports]}
                          | ({"vlan_filtering": True} if b.vlan_filtering else {})
                          | ({"host": b.host} if b.host else {})
                          for b in self.bridges]
        out["links"] = [list(link) for link in self.links]
        out["frames"] = [f.to_dict() for f in self.frames]
        return out

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Read a topology from a JSON file."""
        return cls.from_dict(read_json_file(path, "topology"))

    def with_frames(self, frames: Sequence[Mapping[str, Any]]) -> Topology:
        """The same network with other frames."""
        return Topology(self.hosts, self.bridges, self.links,
                        parse_frames(frames, self.nic, self.is_port, self.next_hop), self.name,
                        self.description)


def _vlans_dict(port: Port) -> dict[str, Any]:
    if port.vlans is None:
        return {}
    return {"vlans": [{"id": vid, "pvid": pvid, "untagged": untagged}
                      for vid, (pvid, untagged) in port.vlans.items()]}


def _list(data: Mapping[str, Any], key: str, high: int = MAX_NODES) -> Sequence[Any]:
    return list_of(data.get(key, []), key, high=high)


def _first_duplicate(items: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _host(data: Any, index: int) -> Host:
    if not isinstance(data, Mapping) or "name" not in data:
        raise ScenarioError(f'each host is {{"name": ..., "nics": [...]}}, not '
                            f'{str(data)[:80]}')
    name = check_ifname(data["name"], "host")
    check_keys(data, ("name", "nics", "vlan_devices", "gateway", "forward"), f"host {name!r}")
    nics = []
    for j, nic in enumerate(_list(data, "nics")):
        if isinstance(nic, str):
            nic = {"name": nic}
        if not isinstance(nic, Mapping) or "name" not in nic:
            raise ScenarioError(f'each NIC is a name or {{"name": ..., "mac": ...}}, '
                                f"not {str(nic)[:80]}")
        check_keys(nic, ("name", "mac", "ip"), f"NIC '{name}:{nic['name']}'")
        mac = nic.get("mac", f"52:54:00:00:{index + 1:02x}:{j + 1:02x}")
        mac = parse_mac(mac)
        if is_group(mac):
            raise ScenarioError(f"NIC {name}:{nic['name']} has the group (multicast) address "
                                f"{mac}; a NIC's own address is unicast")
        ip = nic.get("ip")
        if ip is not None:
            text(ip, f"NIC {name}:{nic['name']}: ip")
            ip = check_address(ip, f"NIC {name}:{nic['name']}")
        nics.append(Nic(name, check_ifname(nic["name"], "NIC"), mac, ip))
    if dup := _first_duplicate([n.name for n in nics]):
        raise ScenarioError(f"host {name!r} has two NICs called {dup!r}")
    subs: dict[str, tuple[str, int]] = {}
    addresses: dict[str, str] = {}
    for sub in _list(data, "vlan_devices"):
        if not isinstance(sub, Mapping) or not {"name", "parent", "id"} <= set(sub):
            raise ScenarioError(f'each VLAN sub-device is {{"name": "eth0.10", "parent": '
                                f'"eth0", "id": 10}}, not {str(sub)[:80]}')
        check_keys(sub, ("name", "parent", "id", "ip"), f"a VLAN sub-device of host {name!r}")
        sub_name = check_ifname(sub["name"], "VLAN sub-device")
        if not isinstance(sub["parent"], str) or sub["parent"] not in {n.name for n in nics}:
            raise ScenarioError(f"host {name}: {sub_name}'s parent {sub['parent']!r} is not "
                                "one of its NICs")
        # The kernel accepts an 8021q sub-device for VLAN 0 (``ip link add link eth0 name
        # eth0.0 type vlan id 0``): it sends priority-tagged frames and takes the ones that
        # arrive tagged 0. Only a bridge port's VLANs refuse 0.
        vid = check_vid(sub["id"], f"host {name}: {sub_name}", priority_tag_ok=True)
        if (sub["parent"], vid) in subs.values():
            raise ScenarioError(f"host {name}: {sub['parent']} already has a sub-device for "
                                f"VLAN {vid}; Linux allows one per VLAN ID on a device")
        if sub_name in subs or sub_name in {n.name for n in nics}:
            raise ScenarioError(f"host {name} has two interfaces called {sub_name!r}")
        subs[sub_name] = (sub["parent"], vid)
        if "ip" in sub:
            addresses[sub_name] = check_address(sub["ip"], f"{name}:{sub_name}")
    gateway = data.get("gateway")
    if gateway is not None:
        try:
            gateway = str(ipaddress.IPv4Address(gateway))
        except (ipaddress.AddressValueError, ValueError):
            raise ScenarioError(f"host {name}: gateway is an IPv4 address without a prefix "
                                f"(like 10.0.10.1), not {gateway!r}") from None
    forward = boolean(data.get("forward", False), f"host {name}: forward")
    return Host(name, tuple(nics), subs, addresses, gateway, forward)


def _bridge(data: Any) -> Bridge:
    if not isinstance(data, Mapping) or "name" not in data:
        raise ScenarioError(f'each bridge is {{"name": ..., "ports": [...]}}, not '
                            f'{str(data)[:80]}')
    name = check_ifname(data["name"], "bridge")
    check_keys(data, ("name", "ageing_s", "ports", "vlan_filtering", "host"),
               f"bridge {name!r}")
    ageing = data.get("ageing_s", DEFAULT_AGEING_S)
    if not is_real(ageing) or not 0 <= ageing <= 1_000_000:
        raise ScenarioError(f"bridge {name}: ageing_s is seconds from 0 (never learn: a hub) "
                            f"to 1000000, not {ageing!r}")
    if abs(ageing * 100 - round(ageing * 100)) > 1e-9:
        raise ScenarioError(f"bridge {name}: ageing_s {ageing} is finer than the kernel's "
                            "hundredths of a second")
    filtering = boolean(data.get("vlan_filtering", False), f"bridge {name}: vlan_filtering")
    host = data.get("host")
    if host is not None and not isinstance(host, str):
        raise ScenarioError(f"bridge {name}: host is the name of the host it lives in")
    ports = []
    for p in _list(data, "ports"):
        if isinstance(p, str):
            p = {"name": p}
        if not isinstance(p, Mapping) or "name" not in p:
            raise ScenarioError(f'each port is a name or {{"name": ..., flags}}, not '
                                f'{str(p)[:80]}')
        check_ifname(p["name"], "port")
        check_keys(p, ("name", *PORT_FLAGS, *VLAN_KEYS), f"port '{name}:{p['name']}'")
        vlans = None
        if filtering:
            vlans = port_vlans(p, f"port {name}:{p['name']}")
        elif set(p) & set(VLAN_KEYS):
            raise ScenarioError(f"port {name}:{p['name']} has VLANs but bridge {name} is not "
                                "VLAN-aware: give the bridge \"vlan_filtering\": true")
        flags = dict(PORT_FLAGS)
        for key, value in p.items():
            if key in PORT_FLAGS:              # other keys were checked by check_keys
                flags[key] = boolean(value, f"port {p['name']}: {key}")
        ports.append(Port(name, check_ifname(p["name"], "port"), flags, vlans))
    return Bridge(name, tuple(ports), float(ageing), filtering, host)


def _link(link: Any, interfaces: set[str]) -> tuple[str, str]:
    if (not isinstance(link, list | tuple) or len(link) != 2
            or not all(isinstance(end, str) for end in link)):
        raise ScenarioError(f'each link is ["node:interface", "node:interface"], not '
                            f'{str(link)[:80]}')
    for end in link:
        if end not in interfaces:
            raise ScenarioError(f"link {list(link)} names unknown interface {end!r} "
                                "(write host:nic or bridge:port)")
    if link[0] == link[1]:
        raise ScenarioError(f"link {list(link)} joins an interface to itself")
    return link[0], link[1]


def _check_bridge_hosts(topo: Topology) -> None:
    hosts = {h.name: h for h in topo.hosts}
    for b in topo.bridges:
        if b.host is None:
            continue
        if b.host not in hosts:
            raise ScenarioError(f"bridge {b.name} lives in host {b.host!r}, which does not exist")
        for p in b.ports:
            if p.name in hosts[b.host].vlan_devices and b.vlan_filtering:
                raise ScenarioError(f"bridge {b.name}: a VLAN sub-device as a port of a "
                                    "VLAN-aware bridge would tag twice; use one way or the "
                                    "other")
    for h in topo.hosts:
        for sub in h.vlan_devices:
            homes = [b.name for b in topo.bridges
                     if any(p.name == sub for p in b.ports) and b.host == h.name]
            if len(homes) > 1:
                raise ScenarioError(f"{h.name}:{sub} is plugged into two bridges")


def _check_no_loops(topo: Topology) -> None:
    bridges = {b.name for b in topo.bridges}
    g = nx.MultiGraph()
    g.add_nodes_from(bridges)
    for a, b in topo.links:
        x, y = a.split(":")[0], b.split(":")[0]
        if x in bridges and y in bridges:
            if topo.port(a).flags["hairpin"] and topo.port(b).flags["hairpin"]:
                raise ScenarioError(
                    f"hairpin is on at both ends of the link {a} - {b}: each bridge would "
                    "send every flooded frame back to the other, for ever")
            if g.has_edge(x, y) or x == y or nx.has_path(g, x, y):
                raise ScenarioError(
                    f"the link {a} - {b} closes a loop between bridges: frames would circle "
                    "for ever (a broadcast storm); these bridges run without STP")
            g.add_edge(x, y)


def _from_dict(data: Mapping[str, Any]) -> Topology | NatScenario:
    data = mapping(data, "a topology (hosts, bridges, links and frames)")
    return NatScenario.from_dict(data) if is_nat_dict(data) else Topology.from_dict(data)


def load_scenario(scenario: str | Path | Mapping[str, Any] | Topology | NatScenario
                  ) -> Topology:
    """The topology a scenario argument stands for, checked.

    Parameters
    ----------
    scenario : str, Path, dict, Topology or NatScenario
        A shipped scenario's name (``net-flood-then-learn``, ``vlan-seed-two-switches``:
        see :data:`PREFIXES`), a topology JSON file, its JSON form as a dict, or a
        :class:`Topology` (returned as it is). A NAT scenario (``nat-default-network``,
        or a dict with ``network`` and ``guests``) gives a
        :class:`~kvmlab.network.natscenario.NatScenario` instead.

    Returns
    -------
    Topology (or NatScenario)

    Raises
    ------
    ScenarioError
        If the name is neither a file nor a shipped topology, or the topology breaks a
        rule (the message names it).

    Examples
    --------
    >>> load_scenario("net-two-bridges").name
    'net-two-bridges'
    >>> load_scenario({"hosts": [{"name": "a", "nics": ["eth0"]}],
    ...                "bridges": [{"name": "br0", "ports": ["p1"]}],
    ...                "links": [["a:eth0", "br0:p1"]]}).nics[0].id
    'a:eth0'
    >>> load_scenario("net-nothing-like-this")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no topology file or shipped topology 'net-nothing-like-this'; ...
    """
    return load_scenario_as(scenario, (Topology, NatScenario),   # type: ignore[return-value]
                            _from_dict, what="topology", prefixes=PREFIXES)
