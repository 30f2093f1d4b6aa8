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
from kvmlab.network.frames import BROADCAST, Frame, kind_of
from kvmlab.network.natmodel import simulate_nat
from kvmlab.network.natresult import NatResult
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.result import Event, NetworkResult
from kvmlab.network.scenario import SETTLE_S, Bridge, Topology, load_scenario
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
        self.events: list[Event] = []
        self.received: list[list[str]] = [[] for _ in topology.frames]
        self.replies: list[list[str]] = [[] for _ in topology.frames]
        self.tags: list[dict[str, int | None]] = [{} for _ in topology.frames]
        self.repliers: list[str | None] = [None for _ in topology.frames]

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
               reply: bool = False) -> Iterator[simpy.Event]:
        """The frame leaves interface ``out_of`` and arrives at the other end of its link."""
        yield self.env.timeout(HOP_S)
        if (sub := self.topology.sub_device(out_of)) is not None:
            parent, vid = sub               # out through a VLAN sub-device: tagged, by its parent
            self._log(i, out_of, "tag", f"VLAN {vid}, out of {parent}")
            frame, out_of = replace(frame, vlan=vid), parent
        there = self.topology.peer(out_of)
        if self.topology.is_port(there):
            yield from self._bridge(i, frame, there, reply)
            return
        tag = "" if frame.vlan is None else f"tagged {frame.vlan}"
        self._log(i, there, "receive", ", ".join(x for x in ("the ARP reply" if reply else "",
                                                            tag) if x))
        (self.replies if reply else self.received)[i].append(there)
        if not reply:
            self.tags[i][there] = frame.vlan
        # A sub-device takes the frames of its VLAN, untagged; a frame tagged 0 (a priority
        # tag) goes to a VLAN 0 sub-device when there is one, else to the NIC itself.
        port = self.topology.sub_device_port(there, frame.vlan)
        if port is not None:
            self._log(i, there, "untag", f"VLAN {frame.vlan} goes to its sub-device, port "
                                         f"{port}")
            yield from self._bridge(i, replace(frame, vlan=None), port, reply)
            return
        nic = self.topology.nic(there)
        asker = self.topology.nic(frame.sender).ip
        # Linux answers only for its own address, never a request that claims to come from
        # its own address (one back through a hairpin port: a martian source), and never
        # one tagged with a VLAN it has no device for.
        if (not reply and frame.arp_target is not None and nic.interface is not None
                and str(nic.interface.ip) == frame.arp_target and asker != nic.ip
                and frame.vlan in (None, 0)):
            self.env.process(self._answer_arp(i, frame, there))

    def _answer_arp(self, i: int, request: Frame, nic_id: str) -> Iterator[simpy.Event]:
        nic = self.topology.nic(nic_id)
        answer = Frame(nic_id, request.src, nic.mac, self.env.now, request.ethertype,
                       f"ARP reply: {request.arp_target} is at {nic.mac}")
        self.repliers[i] = nic_id
        self._log(i, nic_id, "send", f"ARP reply {nic.mac} > {request.src}: "
                                     f"{request.arp_target} is at {nic.mac}")
        yield from self._cross(i, answer, nic_id, reply=True)

    def _bridge(self, i: int, frame: Frame, port_id: str,
                reply: bool = False) -> Iterator[simpy.Event]:
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
        if bridge.ageing_s == 0:
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
                leaving = replace(frame, vlan=tag)
            self.env.process(self._cross(i, leaving, f"{name}:{out}", reply))
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
        tags=net.tags,
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
