"""The Linux bridge as the kernel runs it, frame by frame, on simpy.

What a bridge does with a frame that arrives on port P (``br_handle_frame`` and
``br_forward.c`` in the kernel):

1. **Learn**: if P has ``learning`` on, remember "the source MAC is behind P" with
   the time (a MAC seen before on another port *moves* to P). A bridge whose
   ageing time is 0 learns nothing: it floods everything, like a hub.
2. **Decide**: a broadcast or multicast destination is flooded; a unicast one is
   looked up; an address not heard from for the ageing time (300 s by default) is
   forgotten. Known: forward to its port, but *never back out of P* unless P is in
   hairpin mode (then the frame is dropped). Unknown: flood.
   Link-local group addresses (01:80:c2:00:00:0X) are for the bridge itself: pause
   frames (…:01) are dropped before anything else, the others are learned from but
   never forwarded; …:00, STP's, is forwarded like any multicast while STP is off.
3. **Flood**: send to every port except P (P too if it is in hairpin mode) whose
   flag for this kind of frame is on: ``flood`` for unknown unicast,
   ``mcast_flood``, ``bcast_flood``.

A host whose NIC has the address an ARP request asks for answers it: the reply
goes from that NIC to the request's source MAC, through the same bridges.

Every step is an :class:`Event`; :func:`simulate` returns them all with the
forwarding tables after each, so a notebook can step through them. The model has no
randomness: the same topology gives the same result whatever the seed.

Examples
--------
>>> from kvmlab.network.scenario import Topology
>>> t = Topology.from_dict({
...     "hosts": [{"name": n, "nics": ["eth0"]} for n in ("a", "b", "c")],
...     "bridges": [{"name": "br0", "ports": ["p1", "p2", "p3"]}],
...     "links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"], ["c:eth0", "br0:p3"]],
...     "frames": [{"from": "a:eth0", "dst": "52:54:00:00:02:01"},
...                {"from": "b:eth0", "dst": "52:54:00:00:01:01"}]})
>>> r = simulate(t)
>>> r.receivers        # a's frame to b is flooded (b unknown); b's reply goes to a only
[('b:eth0', 'c:eth0'), ('a:eth0',)]
>>> r.fdb
{'br0': {'52:54:00:00:01:01': 'p1', '52:54:00:00:02:01': 'p2'}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx
import simpy

from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.network.frames import BROADCAST, ETHERTYPE_ARP, Frame, kind_of
from kvmlab.network.layer3 import route
from kvmlab.network.natmodel import simulate_nat
from kvmlab.network.natresult import NatResult
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.result import Event, NetworkResult
from kvmlab.network.scenario import SETTLE_S, Bridge, Host, Topology, load_scenario
from kvmlab.network.vlan import egress, ingress_vid
from kvmlab.progress import Progress, ProgressArg, progress_bar
from kvmlab.validate import whole_number

__all__ = ["HOP_S", "BridgeState", "FdbEntry", "Network", "broadcast_domains", "simulate"]

HOP_S = 1e-6
"""Time a frame takes across one link or bridge in the model (only orders events)."""
_FLAG = {"unicast": "flood", "multicast": "mcast_flood", "broadcast": "bcast_flood"}


@dataclass
class FdbEntry:
    port: str
    updated_s: float


@dataclass
class BridgeState:
    """One bridge's forwarding table while the simulation runs."""

    bridge: Bridge
    fdb: dict[str, FdbEntry] = field(default_factory=dict)

    def alive(self, now: float) -> dict[str, str]:
        """The entries not yet aged out at ``now``: MAC (``MAC vlan N`` on a VLAN-aware
        bridge) to port."""
        return {key: e.port for key, e in sorted(self.fdb.items())
                if e.updated_s + self.bridge.ageing_s > now}

    def key(self, mac: str, vid: int | None) -> str:
        """How the table names an address: per VLAN on a VLAN-aware bridge."""
        return mac if vid is None else f"{mac} vlan {vid}"


class Network:
    """A topology running on a simpy environment."""

    def __init__(self, topology: Topology, bar: Progress | None = None) -> None:
        self.topology = topology
        self.bar = bar
        self.env = simpy.Environment()
        self.bridges = {b.name: BridgeState(b) for b in topology.bridges}
        self.local = {b.name: topology.local_macs(b.name) for b in topology.bridges}
        self.events: list[Event] = []
        self.received: list[list[str]] = [[] for _ in topology.frames]
        self.replies: list[list[str]] = [[] for _ in topology.frames]
        self.tags: list[dict[str, int | None]] = [{} for _ in topology.frames]
        self.repliers: list[str | None] = [None for _ in topology.frames]
        self.packets: list[dict[str, str]] = [{} for _ in topology.frames]
        self.neighbours: dict[tuple[str, str, str], str] = {}
        self.pending: dict[tuple[str, str, str], list[tuple[int, Frame]]] = {}

    def _log(self, frame: int, where: str, action: str, detail: str = "") -> None:
        self.events.append(Event(self.env.now, frame, where, action, detail,
                                 {b: s.alive(self.env.now) for b, s in self.bridges.items()}))

    def run(self) -> None:
        for i, frame in enumerate(self.topology.frames):
            self.env.process(self._send(i, frame))
        end = (self.topology.frames[-1].at_s if self.topology.frames else 0.0) + SETTLE_S
        self.env.run(until=end)

    def _send(self, i: int, frame: Frame) -> Iterator[simpy.Event]:
        yield self.env.timeout(frame.at_s - self.env.now)
        what = f"{frame.src} > {frame.dst}"
        if frame.arp_target is not None:
            what = f"ARP request {what}: who has {frame.arp_target}?"
        self._log(i, frame.sender, "send", what)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"frame {i} at {frame.at_s:g} s")
        yield from self._cross(i, frame, frame.sender)

    def _cross(self, i: int, frame: Frame, out_of: str,
               reply: str = "") -> Iterator[simpy.Event]:
        """The frame leaves interface ``out_of`` and arrives at the other end of its link.

        ``reply`` is what the frame is: ``""`` frame ``i`` itself (or a router's copy of
        it), ``"reply"`` the ARP reply to it, ``"aux"`` a router's own ARP on its way."""
        yield self.env.timeout(HOP_S)
        if (sub := self.topology.sub_device(out_of) or self._l3_sub(out_of)) is not None:
            parent, vid = sub               # out through a VLAN sub-device: tagged, by its parent
            self._log(i, out_of, "tag", f"VLAN {vid}, out of {parent}")
            frame, out_of = frame.push_tag(vid), parent
        there = self.topology.peer(out_of)
        if self.topology.is_port(there):
            yield from self._bridge(i, frame, there, reply)
            return
        tag = "" if frame.vlan is None else f"tagged {frame.vlan}"
        what = {"reply": "the ARP reply", "aux": f"a router's {frame.label}"}.get(reply, "")
        if frame.to is not None and not reply:
            what = f"TTL {frame.ttl}, {frame.src} > {frame.dst}"
            self.packets[i][there] = what
        self._log(i, there, "receive", ", ".join(x for x in (what, tag) if x))
        if reply != "aux":
            (self.replies if reply else self.received)[i].append(there)
        if not reply:
            self.tags[i][there] = frame.vlan
        # A sub-device takes the frames of its VLAN, untagged; a frame tagged 0 (a priority
        # tag) goes to a VLAN 0 sub-device when there is one, else to the NIC itself.
        port = self.topology.sub_device_port(there, frame.vlan)
        if port is not None:
            self._log(i, there, "untag", f"VLAN {frame.vlan} goes to its sub-device, port "
                                         f"{port}")
            yield from self._bridge(i, frame.pop_tag(), port, reply)
            return
        # The device that takes it: the NIC, or its (unbridged) sub-device for the tag; a
        # frame tagged with a VLAN it has no device for goes nowhere.
        host, parent = there.split(":", 1)
        device = next((f"{host}:{sub}" for sub, (p, v) in
                       self._host(host).vlan_devices.items()
                       if p == parent and v == frame.vlan), None)
        if device is not None:
            frame = frame.pop_tag()
        elif frame.vlan not in (None, 0):
            return
        else:
            device = there
        yield from self._layer3(i, frame, device, reply)

    def _host(self, name: str) -> Host:
        return next(h for h in self.topology.hosts if h.name == name)

    def _l3_sub(self, ident: str) -> tuple[str, int] | None:
        """For ``host:sub``, a host's VLAN sub-device that is no bridge port: (parent, VID)."""
        host, name = ident.split(":", 1)
        if self.topology.is_port(ident) or not any(h.name == host for h in self.topology.hosts):
            return None
        parent, vid = self._host(host).vlan_devices.get(name, (None, 0))
        return None if parent is None else (f"{host}:{parent}", vid)

    def _device_mac(self, device: str) -> str:
        sub = self._l3_sub(device)
        return self.topology.nic(sub[0] if sub else device).mac

    def _layer3(self, i: int, frame: Frame, device: str, role: str) -> Iterator[simpy.Event]:
        """What the host does with a frame its device ``device`` takes: answer an ARP
        request, note an ARP reply, take or forward an IPv4 packet."""
        host = device.split(":")[0]
        mine = self.topology.host_ips(host)
        mac = self._device_mac(device)
        if frame.arp_target is not None and role != "reply":
            # Linux answers for any of the host's addresses on any device (arp_ignore 0), but
            # never a request that claims to come from one of them (a martian source).
            asker = frame.ip_src or (self.topology.nic(frame.sender).ip or "").split("/")[0]
            if frame.arp_target in mine and asker not in mine:
                self.neighbours[(host, device, asker)] = frame.src   # neigh_event_ns
                self.env.process(self._answer_arp(i, frame, device, role or "reply"))
        elif (frame.ethertype == ETHERTYPE_ARP and frame.dst == mac and frame.ip_src
              and ((key := (host, device, frame.ip_src)) in self.pending
                   or key in self.neighbours)):   # unasked-for replies make no entry
            self.neighbours[key] = frame.src
            for k, packet in self.pending.pop((host, device, frame.ip_src), []):
                self.env.process(self._cross(k, replace(packet, dst=frame.src), device))
        elif frame.to is not None and frame.dst == mac and not role:
            if frame.to in mine:
                self._log(i, device, "deliver", f"{frame.to} is the host's own address")
            elif not self._host(host).forward:
                self._log(i, device, "drop", f"for {frame.to}, and {host} is no router")
            else:
                yield from self._forward(i, frame, host)
        yield self.env.timeout(0)

    def _forward(self, i: int, packet: Frame, host: str) -> Iterator[simpy.Event]:
        """A router forwards: TTL one lower, out by the connected route, its own MAC as
        source and the next hop's as destination (asked for by ARP the first time)."""
        out = route(self.topology, host, packet.to or "")
        if packet.ttl <= 1:
            self._log(i, host, "drop", f"TTL {packet.ttl} would reach 0: the router drops it "
                                       "(and sends an ICMP time-exceeded to the sender)")
            return
        if out is None:
            self._log(i, host, "drop", f"no route to {packet.to}")
            return
        packet = replace(packet, sender=out.id, src=out.mac, ttl=packet.ttl - 1, vlan=None,
                         inner=())
        key = (host, out.id, packet.to or "")
        if (mac := self.neighbours.get(key)) is not None:
            self._log(i, host, "route", f"{packet.to} via {out.name}, TTL {packet.ttl}, "
                                        f"{out.mac} > {mac}")
            self.env.process(self._cross(i, replace(packet, dst=mac), out.id))
        else:
            first = key not in self.pending
            self.pending.setdefault(key, []).append((i, packet))
            self._log(i, host, "route", f"{packet.to} via {out.name}: its MAC is unknown, "
                                        "the packet waits for an ARP reply")
            if first:
                ask = Frame(out.id, BROADCAST, out.mac, self.env.now, ETHERTYPE_ARP,
                            f"ARP request: who has {packet.to}?", arp_target=packet.to,
                            ip_src=out.ip)
                self.env.process(self._cross(i, ask, out.id, "aux"))
        yield self.env.timeout(0)

    def _answer_arp(self, i: int, request: Frame, device: str,
                    role: str) -> Iterator[simpy.Event]:
        mac = self._device_mac(device)
        answer = Frame(device, request.src, mac, self.env.now, request.ethertype,
                       f"ARP reply: {request.arp_target} is at {mac}",
                       ip_src=request.arp_target)
        if role == "reply":
            self.repliers[i] = next(n.id for n in self.topology.nics if n.mac == mac)
        self._log(i, device, "send", f"ARP reply {mac} > {request.src}: "
                                     f"{request.arp_target} is at {mac}")
        yield from self._cross(i, answer, device, role)

    def _bridge(self, i: int, frame: Frame, port_id: str,
                reply: str = "") -> Iterator[simpy.Event]:
        name, port_name = port_id.split(":")
        state = self.bridges[name]
        bridge = state.bridge
        port = self.topology.port(port_id)
        now = self.env.now
        kind = kind_of(frame.dst)
        if kind == "pause":
            self._log(i, port_id, "drop", "a pause frame (01:80:c2:00:00:01) stops at the "
                                          "first port")
            return
        vid: int | None = None
        if bridge.vlan_filtering:
            assert port.vlans is not None
            vid = ingress_vid(port.vlans, frame.vlan)
            if vid is None:
                self._log(i, port_id, "drop", _ingress_refusal(port_name, port.vlans,
                                                               frame.vlan))
                return
        src_key = state.key(frame.src, vid)
        local = self.local[name]
        if frame.src in local:
            self._log(i, port_id, "ignore", f"{frame.src} is the bridge's own (a local "
                                            "entry): never learned from a port")
        elif bridge.ageing_s == 0:
            pass                              # "some users want to always flood"
        elif port.flags["learning"]:
            old = state.fdb.get(src_key)
            state.fdb[src_key] = FdbEntry(port_name, now)
            if old is None or old.updated_s + bridge.ageing_s <= now:
                self._log(i, port_id, "learn", f"{src_key} is behind {port_name}")
            elif old.port != port_name:
                self._log(i, port_id, "move", f"{src_key} moved from {old.port} to "
                                              f"{port_name}")
        targets: list[str]
        if kind == "link-local":
            self._log(i, port_id, "drop", f"{frame.dst} is a link-local group address: "
                                          "for the bridge itself, never forwarded")
            return
        dst_key = state.key(frame.dst, vid)
        in_vlan = f" in VLAN {vid}" if vid is not None else ""
        if frame.vlan is not None:
            in_vlan += f" (it came in tagged {frame.vlan})"
        if kind == "unicast" and frame.dst in local:
            self._log(i, port_id, "local", f"{frame.dst} is the bridge's own address: the "
                                           "frame is for the host itself, never forwarded")
            return
        if kind == "unicast" and dst_key in state.alive(now):
            out = state.alive(now)[dst_key]
            if out == port_name and not port.flags["hairpin"]:
                self._log(i, port_id, "drop", f"{frame.dst}{in_vlan} is behind {port_name}, "
                                              "where the frame came from (no hairpin)")
                return
            self._log(i, port_id, "forward", f"{frame.dst}{in_vlan} is behind {out}")
            targets = [out]
        else:
            why = "broadcast" if kind == "broadcast" else (
                "multicast" if kind == "multicast" else f"{frame.dst} is unknown")
            flag = _FLAG[kind]
            targets = [p.name for p in bridge.ports
                       if p.flags[flag] and (p.name != port_name or p.flags["hairpin"])
                       and (vid is None or egress(p.vlans or {}, vid)[0])]
            self._log(i, port_id, "flood", f"{why}{in_vlan}: to "
                                           f"{', '.join(targets) or 'no port'}")
        for out in targets:
            leaving = frame
            if vid is not None:
                allowed, tag = egress(self.topology.port(f"{name}:{out}").vlans or {}, vid)
                if not allowed:
                    self._log(i, f"{name}:{out}", "drop", f"port {out} is not in VLAN {vid}")
                    continue
                leaving = frame.pop_tag() if tag is None else replace(frame, vlan=tag)
            self.env.process(self._cross(i, leaving, f"{name}:{out}", reply))
        if kind == "broadcast" and not reply and self._bridge_answers(bridge, frame):
            self.env.process(self._answer_arp_from_bridge(i, frame, name))
        yield self.env.timeout(0)

    def _bridge_answers(self, bridge: Bridge, frame: Frame) -> bool:
        """Whether a bridge inside a host answers an ARP request that reaches it.

        A broadcast always goes up to the bridge device too. Linux answers ARP on any
        interface for any of the host's addresses (the weak host model, ``arp_ignore`` 0),
        so the bridge answers for an address of one of the host's NICs, with its own MAC —
        unless the request comes from one of the host's own addresses (a martian source)."""
        if bridge.host is None or bridge.vlan_filtering or frame.arp_target is None:
            return False
        mine = self.topology.host_ips(bridge.host)
        asker = self.topology.nic(frame.sender).ip
        return (frame.arp_target in mine and asker is not None
                and asker.split("/")[0] not in mine
                and self.topology.bridge_mac(bridge.name) is not None)

    def _answer_arp_from_bridge(self, i: int, request: Frame, name: str
                                ) -> Iterator[simpy.Event]:
        """The bridge device sends the ARP reply: looked up in its table like any frame it
        sends itself (``br_dev_xmit``), flooded if unknown; nothing learned from it."""
        mac = self.topology.bridge_mac(name)
        assert mac is not None
        answer = Frame(f"{name}:", request.src, mac, self.env.now, request.ethertype,
                       f"ARP reply: {request.arp_target} is at {mac}")
        self.repliers[i] = next((n.id for n in self.topology.nics if n.mac == mac), mac)
        self._log(i, name, "send", f"ARP reply {mac} > {request.src} from bridge {name} "
                                   f"itself: {request.arp_target} (an address of its host) "
                                   f"is at {mac}")
        state = self.bridges[name]
        alive = state.alive(self.env.now)
        if request.src in alive:
            targets = [alive[request.src]]
            self._log(i, name, "forward", f"{request.src} is behind {targets[0]}")
        else:
            targets = [p.name for p in state.bridge.ports if p.flags["flood"]]
            self._log(i, name, "flood", f"{request.src} is unknown: to "
                                        f"{', '.join(targets) or 'no port'}")
        for out in targets:
            self.env.process(self._cross(i, answer, f"{name}:{out}", "reply"))
        yield self.env.timeout(0)


def _ingress_refusal(port: str, vlans: dict[int, tuple[bool, bool]], tag: int | None) -> str:
    if tag is None or tag == 0:
        what = "untagged" if tag is None else "priority-tagged (VLAN 0)"
        return f"{what}, and port {port} has no PVID to put it in"
    return f"tagged {tag}, and port {port} is not in VLAN {tag} (its VLANs: " \
           f"{', '.join(map(str, vlans)) or 'none'})"


def simulate(scenario: Topology | NatScenario | Mapping[str, Any] | str | Path, *,
             seed: int = 0, progress: ProgressArg = None) -> NetworkResult | NatResult:
    """Send the topology's frames through the model; who received what, and the tables.

    Parameters
    ----------
    scenario : Topology, dict, str or Path
        The topology (see :func:`~kvmlab.network.scenario.load_scenario`).
    seed : int
        Recorded in the provenance; the bridge model has no randomness, so every seed
        gives the same result.
    progress : None, bool or tqdm-like
        See :mod:`kvmlab.progress`; the unit is frames sent.

    Returns
    -------
    NetworkResult
        ``source='simulated'``: ``receivers`` per frame, the final forwarding tables
        (``fdb``), and every event with the tables after it. A NAT scenario gives a
        :class:`~kvmlab.network.natresult.NatResult` (see
        :func:`~kvmlab.network.natmodel.simulate_nat`).

    Examples
    --------
    >>> r = simulate("net-hub", seed=7)
    >>> r.source, r.provenance["seed"], r.fdb
    ('simulated', 7, {'br0': {}})
    """
    topology = load_scenario(scenario)
    seed = whole_number(seed, "seed")
    if isinstance(topology, NatScenario):
        return simulate_nat(topology, seed=seed, progress=progress)
    with progress_bar(progress, total=len(topology.frames), desc=topology.name or "network",
                      unit="frame") as bar:
        net = Network(topology, bar)
        net.run()
    return NetworkResult(
        topology=topology, source=SIMULATED,
        receivers=[tuple(sorted(set(r))) for r in net.received],
        replies=[tuple(sorted(set(r))) for r in net.replies], repliers=net.repliers,
        tags=net.tags, packets=net.packets,
        fdb={b: s.alive(net.env.now) for b, s in net.bridges.items()},
        events=net.events, provenance={"model": "kvmlab.network.model", "seed": seed})


def broadcast_domains(topology: Topology | Mapping[str, Any] | str | Path) -> list[set[str]]:
    """The broadcast domains of a topology: NICs that hear each other's untagged broadcasts.

    Found by asking the model itself: every NIC sends one untagged broadcast, and two
    NICs are in one domain when a broadcast of either reaches the other untagged. (A NIC
    on a trunk hears several VLANs, tagged: it belongs to none of them alone.)

    Examples
    --------
    >>> [sorted(d) for d in broadcast_domains("vlan-seed-two-switches")]
    [['a1:eth0', 'b1:eth0'], ['a2:eth0', 'b2:eth0'], ['a3:eth0', 'b3:eth0']]
    """
    topology = load_scenario(topology)
    if isinstance(topology, NatScenario):
        raise ScenarioError("broadcast domains are a topology's; a NAT scenario has one "
                            "bridge, and every guest on it is in its one domain")
    nics = [n.id for n in topology.nics]
    probe = topology.with_frames([{"from": n, "dst": BROADCAST, "at_s": 0.001 * k}
                                  for k, n in enumerate(nics)])
    heard = nx.Graph()
    heard.add_nodes_from(nics)
    for nic, tags in zip(nics, simulate(probe).tags, strict=True):
        heard.add_edges_from((nic, other) for other, tag in tags.items()
                             if other != nic and tag is None)
    return sorted((set(c) for c in nx.connected_components(heard)), key=lambda c: sorted(c))
