"""Run a topology on a real Linux kernel: the tiny guest builds it and sends the frames.

Inside the guest, each host is a network namespace, each link a veth pair, each
bridge a Linux bridge with the topology's ageing time and port flags. The guest
boots with IPv6 off and no IPv4 addresses, and its bridges without multicast
snooping (which would make them send IGMP reports of their own), so nothing but
the planned frames moves. ``kvmlab-frames`` (see :mod:`kvmlab.network.tool`) listens on every host
NIC, sends each frame from its NIC at its planned time, and reports every frame
each NIC received; then ``bridge fdb show`` gives the learned addresses.

Everything happens inside the guest: nothing touches the host's own network.
:func:`run_on_host` runs one topology; :func:`run_many_on_host` runs many side by side in
one guest (one boot for all).
"""

from __future__ import annotations

import ipaddress
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import check_uri
from kvmlab.host.guest import TransientGuest
from kvmlab.host.image import GuestImage
from kvmlab.host.signals import stop_signals_as_exit
from kvmlab.lab import MEASURED
from kvmlab.network.frames import Frame
from kvmlab.network.natresult import NatResult
from kvmlab.network.natscenario import NatScenario
from kvmlab.network.nattwin import run_nat_on_host
from kvmlab.network.result import NetworkResult
from kvmlab.network.scenario import SETTLE_S, Topology, load_scenario
from kvmlab.network.tool import frames_tool
from kvmlab.progress import ProgressArg, check_progress, progress_bar

__all__ = ["ARP_END", "BRIDGE", "FDB_MARKER", "IP", "MAGIC", "MIN_FRAME", "START_S", "ArpReply",
           "Batches", "Part", "Report", "frame_bytes", "guest_script", "ipv4_packet",
           "parse_arp_reply", "parse_fdb_line", "part_result", "parts_of", "plan", "read_report",
           "run_many_on_host", "run_on_host", "send_order", "setup_batches"]

IP = "/opt/iproute2/ip"
BRIDGE = "/opt/iproute2/bridge"
MAGIC = b"kvmlab"
FDB_MARKER = "KVMLAB-FDB"
START_S = 0.3
"""Time between reading the plan and the first frame (sockets are open by then)."""
MIN_FRAME = 60


ARP_END = 42
"""Where an ARP message over Ethernet ends (14 + 28 bytes); the padding after it is free."""


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def frame_bytes(frame: Frame, index: int, sender_ip: str | None = None) -> bytes:
    """The frame on the wire: addresses, EtherType, ``kvmlab`` and its index, padding.

    An ARP request carries a real ARP message (from ``sender_ip``), and the
    marker in the padding after it.

    Examples
    --------
    >>> f = Frame("a:eth0", "ff:ff:ff:ff:ff:ff", "52:54:00:00:01:01", 0.0)
    >>> b = frame_bytes(f, 7)
    >>> len(b), b[:6].hex(), b[12:14].hex(), b[14:20], int.from_bytes(b[20:22], "big")
    (60, 'ffffffffffff', '88b5', b'kvmlab', 7)
    >>> arp = Frame("a:eth0", "ff:ff:ff:ff:ff:ff", "52:54:00:00:01:01", 0.0, 0x0806,
    ...             arp_target="10.0.0.2")
    >>> b = frame_bytes(arp, 7, "10.0.0.1")
    >>> b[12:14].hex(), b[20:22].hex(), b[38:42].hex(), b[42:48]
    ('0806', '0001', '0a000002', b'kvmlab')
    """
    head = _mac_bytes(frame.dst) + _mac_bytes(frame.src)
    if frame.vlan is not None:                        # 802.1Q: TPID, then PCP 0 and the VID
        head += b"\x81\x00" + frame.vlan.to_bytes(2, "big")
    head += frame.ethertype.to_bytes(2, "big")
    if frame.to is not None:
        assert sender_ip is not None
        return (head + ipv4_packet(sender_ip, frame.to, frame.ttl, index)).ljust(
            MIN_FRAME + (4 if frame.vlan is not None else 0), b"\0")
    if frame.arp_target is not None:
        assert sender_ip is not None
        head += (bytes.fromhex("0001080006040001") + _mac_bytes(frame.src)
                 + ipaddress.IPv4Address(sender_ip).packed + bytes(6)
                 + ipaddress.IPv4Address(frame.arp_target).packed)
    head += MAGIC + index.to_bytes(2, "big")
    return head.ljust(MIN_FRAME + (4 if frame.vlan is not None else 0), b"\0")


def _checksum(data: bytes) -> bytes:
    total = sum(int.from_bytes(data[k:k + 2], "big") for k in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).to_bytes(2, "big")


def ipv4_packet(src: str, dst: str, ttl: int, index: int) -> bytes:
    """An IPv4 packet that no host answers: an ICMP echo *reply* (nobody asked, so it is
    dropped quietly), with ``kvmlab`` and the frame's index as its data, right where an ARP
    message would end (:data:`ARP_END`).

    Examples
    --------
    >>> p = ipv4_packet("10.0.10.2", "10.0.20.2", 64, 3)
    >>> len(p), p[8], p[9], p[28:34], _checksum(p[:20]) == _checksum(p[20:]) == bytes(2)
    (36, 64, 1, b'kvmlab', True)
    """
    icmp = bytearray(b"\x00\x00\x00\x00\x00\x00\x00\x00" + MAGIC + index.to_bytes(2, "big"))
    icmp[2:4] = _checksum(bytes(icmp))
    header = bytearray(b"\x45\x00" + (20 + len(icmp)).to_bytes(2, "big") + bytes(4)
                       + bytes([ttl, 1]) + bytes(2) + ipaddress.IPv4Address(src).packed
                       + ipaddress.IPv4Address(dst).packed)
    header[10:12] = _checksum(bytes(header))
    return bytes(header + icmp)


@dataclass(frozen=True)
class ArpReply:
    """An ARP reply a NIC received: who answered (MAC, IP) to whom (MAC, IP), and when."""

    time_s: float
    receiver: str
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_arp_reply(raw: bytes) -> tuple[str, str, str, str] | None:
    """(sender MAC, sender IP, target MAC, target IP) of an ARP reply frame, else None."""
    if len(raw) < ARP_END or raw[12:14] != b"\x08\x06" or raw[20:22] != b"\x00\x02":
        return None
    return (_mac(raw[22:28]), str(ipaddress.IPv4Address(raw[28:32])), _mac(raw[32:38]),
            str(ipaddress.IPv4Address(raw[38:42])))


@dataclass(frozen=True)
class Part:
    """One topology among several built side by side in one guest, under short names.

    Bridges, ports and namespaces get names of their own in the guest (``b0_1``,
    ``p0_1_2``, ``h0_3``) so that several topologies cannot clash; NICs keep
    theirs, inside their namespace.
    """

    index: int
    topology: Topology
    first_frame: int

    def bridge(self, name: str) -> str:
        if self.topology.bridge(name).host is not None:
            return name                      # alone in its host's namespace
        return f"b{self.index}_{[b.name for b in self.topology.bridges].index(name)}"

    def port(self, ident: str) -> str:
        bridge, port = ident.split(":")
        if self.topology.bridge(bridge).host is not None:
            return port
        b = [b.name for b in self.topology.bridges].index(bridge)
        k = [p.name for p in self.topology.bridge(bridge).ports].index(port)
        return f"p{self.index}_{b}_{k}"

    def netns(self, host: str) -> str:
        return f"h{self.index}_{[h.name for h in self.topology.hosts].index(host)}"


def parts_of(topologies: list[Topology]) -> list[Part]:
    parts, first = [], 0
    for i, t in enumerate(topologies):
        parts.append(Part(i, t, first))
        first += len(t.frames)
    return parts


def guest_script(parts: list[Part], batches: Batches | None = None) -> str:
    """The shell script that builds every part's topology in the guest and runs the plan.

    The topology itself is in two batch files (:func:`setup_batches`), one ``ip``
    and one ``bridge`` process for the lot: starting a program costs time in an
    emulated guest.
    """
    lines = ["set -e", "echo 1 > /proc/sys/kernel/printk", "echo KERNEL=$(uname -r)",
             "/bin/kvmlab-insmod net", "mkdir -p /run/netns /var/run",
             "[ -e /var/run/netns ] || ln -s /run/netns /var/run/netns",
             "/kvmlab/kvmlab-frames netns " + " ".join(
                 part.netns(h.name) for part in parts for h in part.topology.hosts),
             f"{IP} -b /kvmlab/setup.ip", f"{BRIDGE} -b /kvmlab/setup.bridge"]
    for ns in (batches or setup_batches(parts)).in_host:
        lines += [f"{IP} -n {ns} -b /kvmlab/setup-{ns}.ip",
                  f"{BRIDGE} -n {ns} -b /kvmlab/setup-{ns}.bridge"]
    lines += [f"{IP} -n {part.netns(n.host)} addr add {n.ip} dev {n.name}"
              for part in parts for n in part.topology.nics if n.ip]
    for part in parts:                   # layer 3: sub-device addresses, gateways, routers
        for h in part.topology.hosts:
            ns = part.netns(h.name)
            lines += [f"{IP} -n {ns} addr add {ip} dev {sub}" for sub, ip in h.addresses.items()]
            if h.gateway:
                lines.append(f"{IP} -n {ns} route add default via {h.gateway}")
            if h.forward:
                lines.append(f"{IP} netns exec {ns} /bin/busybox sh -c "
                             "'echo 1 > /proc/sys/net/ipv4/ip_forward'")
    lines.append("/kvmlab/kvmlab-frames < /kvmlab/plan")
    return "\n".join(lines) + "\n"


@dataclass
class Batches:
    """The ``ip -b`` and ``bridge -b`` commands that build the topologies: one pair for the
    shared namespace, and one pair per host that has bridges or VLAN sub-devices of its own
    (they run there with ``-n``)."""

    ip: list[str] = field(default_factory=list)
    bridge: list[str] = field(default_factory=list)
    in_host: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)

    def host(self, ns: str) -> tuple[list[str], list[str]]:
        return self.in_host.setdefault(ns, ([], []))

    def files(self) -> dict[str, bytes]:
        out = {"setup.ip": _lines(self.ip), "setup.bridge": _lines(self.bridge)}
        for ns, (ip, bridge) in self.in_host.items():
            out[f"setup-{ns}.ip"] = _lines(ip)
            out[f"setup-{ns}.bridge"] = _lines(bridge)
        return out


def _lines(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _port_commands(part: Part, port_id: str, dev: str) -> list[str]:
    """``bridge -b`` lines for a port's flags and VLANs."""
    port = part.topology.port(port_id)
    flags = " ".join(f"{f} {'on' if v else 'off'}" for f, v in port.flags.items())
    out = [f"link set dev {dev} {flags}"]
    if port.vlans is not None:                    # replace the default VLAN 1 by the port's
        out.append(f"vlan del dev {dev} vid 1")
        out += [f"vlan add dev {dev} vid {vid}" + (" pvid" if pvid else "")
                + (" untagged" if untagged else "")
                for vid, (pvid, untagged) in port.vlans.items()]
    return out


def setup_batches(parts: list[Part]) -> Batches:
    """The commands that build every part's topology (see :class:`Batches`)."""
    out = Batches()
    for part in parts:
        t = part.topology
        for b in t.bridges:
            # No multicast snooping: with it, the bridge joins 224.0.0.106 and sends its
            # own IGMP reports, which other bridges would learn from.
            where = f" netns {part.netns(b.host)}" if b.host else ""
            out.ip.append(f"link add {part.bridge(b.name)}{where} up type bridge ageing_time "
                          f"{round(b.ageing_s * 100)} mcast_snooping 0 "
                          f"vlan_filtering {int(b.vlan_filtering)}")
    for part in parts:
        t = part.topology
        for k, link in enumerate(t.links):
            # A veth's peer cannot be brought up as it is created (it has no peer yet
            # at that moment): create the first end up, then move or enslave the other.
            a, b = sorted(link, key=t.is_port)
            after = []
            specs = []
            for side, end in enumerate((a, b)):
                node, ifname = end.split(":")
                if t.is_port(end):
                    host = t.bridge(node).host
                    dev = part.port(end)
                    mac = t.port_mac(end)                # libvirt's rule for tap devices
                    address = "" if mac is None else f" address {mac}"
                    enslave = f"link set {dev} master {part.bridge(node)} up"
                    if host is None:
                        specs.append(dev + address + (" up" if side == 0 else ""))
                        after.append(enslave)
                        out.bridge += _port_commands(part, end, dev)
                    else:
                        ns = part.netns(host)
                        specs.append(f"{dev} netns {ns}{address}" + (" up" if side == 0 else ""))
                        out.host(ns)[0].append(enslave)
                        out.host(ns)[1].extend(_port_commands(part, end, dev))
                elif side == 0:
                    specs.append(f"{ifname} netns {part.netns(node)} address "
                                 f"{t.nic(end).mac} up")
                else:
                    tmp = f"v{part.index}_{k}"
                    specs.append(f"{tmp} address {t.nic(end).mac}")
                    after.append(f"link set {tmp} netns {part.netns(node)} name {ifname} up")
            out.ip.append(f"link add {specs[0]} type veth peer name {specs[1]}")
            out.ip += after
        for h in t.hosts:
            for sub, (parent, vid) in h.vlan_devices.items():
                ip, bridge = out.host(part.netns(h.name))
                ip.append(f"link add link {parent} name {sub} up type vlan id {vid}")
                for b in t.bridges:
                    if b.host == h.name and any(p.name == sub for p in b.ports):
                        ip.append(f"link set {sub} master {part.bridge(b.name)} up")
                        bridge.extend(_port_commands(part, f"{b.name}:{sub}", sub))
    return out


def send_order(parts: list[Part]) -> list[tuple[int, Part, int]]:
    """(microseconds, part, frame) in the order the frames leave (``TX`` lines come so)."""
    return sorted(((round((START_S + f.at_s) * 1e6), part, i)
                   for part in parts for i, f in enumerate(part.topology.frames)),
                  key=lambda s: (s[0], s[1].first_frame + s[2]))


def plan(parts: list[Part]) -> str:
    """``kvmlab-frames``' plan: listen on every NIC, send each frame at its time, stop."""
    lines = [f"listen {part.netns(n.host)} {n.name}" for part in parts
             for n in part.topology.nics]
    sends = []
    for at, part, i in send_order(parts):
        f = part.topology.frames[i]
        host, nic = f.sender.split(":")
        ip = part.topology.nic(f.sender).ip
        data = frame_bytes(f, part.first_frame + i, ip.split("/")[0] if ip else None)
        sends.append(f"send {at} {part.netns(host)} {nic} {data.hex()}")
    lines += sends
    last = max((at for at, _p, _i in send_order(parts)), default=round(START_S * 1e6))
    lines.append(f"end {last + round(SETTLE_S * 1e6)}")
    # the forwarding tables of every bridge, read the moment the plan ends
    show = "fdb show | grep -v -e permanent -e self"
    reads = [f"echo {FDB_MARKER} -; {BRIDGE} {show}"]
    spaces = dict.fromkeys(part.netns(b.host) for part in parts
                           for b in part.topology.bridges if b.host)    # each once, in order
    reads += [f"echo {FDB_MARKER} {ns}; {BRIDGE} -n {ns} {show}" for ns in spaces]
    lines.append("then " + "; ".join(reads) + "; echo")
    return "\n".join(lines) + "\n"


@dataclass
class Report:
    """What the guest reported, for every part at once: per frame (numbered across the
    parts) the NICs (``"netns nic"``) that received it with their tag, when each frame left
    (in send order), the learned fdb entries, and the ARP replies the NICs received."""

    received: list[dict[str, int | None]]
    sent_at: list[float]
    fdb: list[dict[str, str]]
    """Each fdb entry also says which namespace it was read in (``ns``, ``-``: the shared)."""
    arp_replies: list[ArpReply]
    packets: list[dict[str, str]] = field(default_factory=list)
    """For IPv4 packets: per frame, each receiver's copy (``TTL n, src MAC > dst MAC``)."""


def parse_fdb_line(line: str) -> dict[str, str] | None:
    """One learned entry of ``bridge fdb show``: ``MAC dev PORT master BRIDGE ...``.

    Examples
    --------
    >>> parse_fdb_line("52:54:00:00:00:0a dev p0_0_0 master b0_0 ")
    {'mac': '52:54:00:00:00:0a', 'ifname': 'p0_0_0', 'master': 'b0_0'}
    >>> parse_fdb_line("52:54:00:00:00:0a dev p0_0_0 vlan 10 master b0_0 ")["vlan"]
    '10'
    >>> parse_fdb_line("33:33:00:00:00:01 dev b0_0 self permanent") is None
    True
    """
    words = line.split()
    if len(words) < 5 or {"permanent", "static", "self"} & set(words):
        return None
    entry = {"mac": words[0]}
    for key, name in (("dev", "ifname"), ("master", "master"), ("vlan", "vlan")):
        if key in words[:-1]:
            entry[name] = words[words.index(key) + 1]
    return entry if {"ifname", "master"} <= set(entry) else None


def read_report(lines: list[str], n_frames: int) -> Report:
    """Read the guest's console lines (``TX``, ``RX`` and the fdb dump) into a report."""
    seen = Report([{} for _ in range(n_frames)], [], [], [], [{} for _ in range(n_frames)])
    in_fdb: str | None = None
    for line in lines:
        if line.startswith(FDB_MARKER):
            in_fdb = (line.split()[1:] or ["-"])[0]
        elif in_fdb is not None:
            if (entry := parse_fdb_line(line)) is not None:
                seen.fdb.append(entry | {"ns": in_fdb})
        elif line.startswith(("RX ", "TX ")):
            fields = line.split()
            if fields[0] == "TX":
                seen.sent_at.append(int(fields[1]) / 1e6 - START_S)
                continue
            raw = bytes.fromhex(fields[5])
            where = f"{fields[2]} {fields[3]}"
            tag = None if fields[4] == "-" else int(fields[4]) & 0xFFF
            if raw[12:14] == b"\x81\x00":     # a tag still in the frame itself: the outer
                if tag is None:                # one when the socket gave none, else the one
                    tag = int.from_bytes(raw[14:16], "big") & 0xFFF      # under it
                raw = raw[:12] + raw[16:]
            for at in (14, ARP_END):          # the marker: right after the header, or the ARP
                index = int.from_bytes(raw[at + 6:at + 8], "big")
                if raw[at:at + 6] == MAGIC and index < n_frames:
                    seen.received[index][where] = tag
                    if at == ARP_END and raw[12:14] == b"\x08\x00":     # an IPv4 packet
                        seen.packets[index][where] = (f"TTL {raw[22]}, {_mac(raw[6:12])} > "
                                                      f"{_mac(raw[0:6])}")
                    break
            else:
                if (reply := parse_arp_reply(raw)) is not None:
                    seen.arp_replies.append(ArpReply(int(fields[1]) / 1e6 - START_S, where,
                                                     *reply))
    return seen


def _arp_answers(part: Part, seen: Report, sent_at: dict[int, float]
                 ) -> tuple[list[tuple[str, ...]], list[str | None]]:
    """Which request each ARP reply of this part answers: the latest one sent before it from
    the reply's target (MAC and IP) for the reply's sender IP."""
    t = part.topology
    host_of = {part.netns(h.name): h.name for h in t.hosts}
    by_mac = {n.mac: n.id for n in t.nics}
    replies: list[set[str]] = [set() for _ in t.frames]
    repliers: list[str | None] = [None for _ in t.frames]
    for r in seen.arp_replies:
        ns, nic = r.receiver.split()
        if ns not in host_of:
            continue
        asked = [i for i, f in enumerate(t.frames)
                 if f.arp_target == r.sender_ip and f.src == r.target_mac
                 and sent_at.get(i, float("inf")) <= r.time_s]
        if asked:
            i = max(asked, key=lambda k: sent_at[k])
            replies[i].add(f"{host_of[ns]}:{nic}")
            repliers[i] = by_mac.get(r.sender_mac, r.sender_mac)
    return [tuple(sorted(r)) for r in replies], repliers


def part_result(part: Part, seen: Report, provenance: dict[str, Any],
                sent_at: dict[int, float]) -> NetworkResult:
    """One part's result, in its topology's own names, from the guest's report;
    ``sent_at`` is when each of the part's frames left (seconds, by frame)."""
    t = part.topology
    host_of = {part.netns(h.name): h.name for h in t.hosts}
    receivers, tags, packets = [], [], []
    for i in range(len(t.frames)):
        got = {f"{host_of[ns]}:{nic}": tag for (ns, nic), tag in
               ((where.split(), tag) for where, tag in seen.received[part.first_frame + i].items())
               if ns in host_of}
        receivers.append(tuple(sorted(got)))
        tags.append(got)
        packets.append({f"{host_of[ns]}:{nic}": what for (ns, nic), what in
                        ((where.split(), what) for where, what
                         in seen.packets[part.first_frame + i].items()) if ns in host_of})
    fdb = {}
    for b in t.bridges:
        name = part.bridge(b.name)
        port_of = {part.port(p.id): p.name for p in b.ports}
        ns = part.netns(b.host) if b.host else "-"
        fdb[b.name] = dict(sorted(
            (e["mac"] + (f" vlan {e['vlan']}" if "vlan" in e else ""), port_of[e["ifname"]])
            for e in seen.fdb if e["master"] == name and e["ifname"] in port_of
            and e["ns"] == ns))
    replies, repliers = _arp_answers(part, seen, sent_at)
    return NetworkResult(topology=t, source=MEASURED, receivers=receivers, fdb=fdb,
                         provenance=provenance, replies=replies, repliers=repliers, tags=tags,
                         packets=packets)


def run_many_on_host(scenarios: Sequence[Topology | Mapping[str, Any] | str | Path], *,
                     uri: str | None = None, progress: ProgressArg = None,
                     image: GuestImage | None = None,
                     timeout_s: float = 300.0) -> list[NetworkResult]:
    """Run several topologies side by side in one guest (one boot), each isolated.

    Each topology gets its own bridges and namespaces; their frames interleave in
    time but cannot meet. Returns one result per topology, in order (see
    :func:`run_on_host`); ``progress`` counts the three steps of the run.
    """
    tops = [load_scenario(t) for t in scenarios]
    if any(isinstance(t, NatScenario) for t in tops):
        raise ScenarioError("a NAT scenario runs alone (run_on_host), not beside topologies")
    check_uri(uri)                   # every argument before the plan, the tool, the guest
    progress = check_progress(progress)
    parts = parts_of(tops)
    n_frames = sum(len(t.frames) for t in tops)
    if n_frames > 65535:
        raise ExperimentFailed(f"{n_frames} frames in one run; at most 65535")
    with stop_signals_as_exit(), progress_bar(progress, total=3,
                                              desc="network on a real kernel",
                                              unit="step") as bar:
        bar.set_postfix_str("building the plan and the frame tool")
        batches = setup_batches(parts)
        files = {"kvmlab-frames": frames_tool(), "plan": plan(parts).encode(),
                 **batches.files()}
        bar.update(1)
        bar.set_postfix_str(f"a tiny guest builds {len(tops)} topology(ies) and sends "
                            f"{n_frames} frames")
        # namespaces and veth pairs take memory: 128 MiB runs out near a hundred hosts
        memory = 192 + sum(len(t.hosts) for t in tops)
        with TransientGuest(guest_script(parts, batches), uri=uri, purpose="network",
                            cmdline="ipv6.disable=1", image=image, files=files,
                            memory_mib=memory, lifetime_s=timeout_s + 120) as guest:
            out = guest.result(timeout_s)
            accel = guest.accel
        bar.update(1)
        bar.set_postfix_str("reading what each NIC received")
        if out.exit_status != 0:
            raise ExperimentFailed("building the topology in the guest failed (exit status "
                                   f"{out.exit_status}):\n" + "\n".join(out.lines[-15:]))
        seen = read_report(out.lines, n_frames)
        if len(seen.sent_at) != n_frames:
            raise ExperimentFailed(f"the guest sent {len(seen.sent_at)} of {n_frames} frames:\n"
                                   + "\n".join(out.lines[-15:]))
        order = send_order(parts)
        late = [round(seen.sent_at[k] - (at / 1e6 - START_S), 4) for k, (at, _p, _i)
                in enumerate(order)]
        sent = {p.first_frame + i: seen.sent_at[k] for k, (_at, p, i) in enumerate(order)}
        kernel = out.values().get("KERNEL", "unknown")
        provenance = {"measured_on": f"Linux {kernel} in a tiny guest ({accel})",
                      "guest_kernel": kernel, "accelerator": accel,
                      "host_kernel": platform.release(),
                      "max_late_s": max(late, default=0.0), "topologies_in_guest": len(tops),
                      "method": "veth pairs, namespaces and bridges in a tiny guest; "
                                "kvmlab-frames on AF_PACKET sockets; bridge fdb show"}
        results = [part_result(part, seen, provenance,
                               {i: sent[part.first_frame + i]
                                for i in range(len(part.topology.frames))})
                   for part in parts]
        bar.update(1)
    return results


def run_on_host(scenario: Topology | NatScenario | Mapping[str, Any] | str | Path, *,
                uri: str | None = None, progress: ProgressArg = None,
                image: GuestImage | None = None,
                timeout_s: float = 180.0) -> NetworkResult | NatResult:
    """Build the topology in a tiny guest's kernel, send its frames, and read back.

    Parameters
    ----------
    scenario : Topology, dict, str or Path
        The topology (see :func:`~kvmlab.network.scenario.load_scenario`).
    uri : str, optional
        A QEMU libvirt URI, local or remote (see :func:`kvmlab.host.guest.live_uri`).
    progress : None, bool or tqdm-like
        See :mod:`kvmlab.progress`; the unit is the run's three steps (plan, guest,
        reading back).
    image : GuestImage, optional
        The guest image (default: the cached one, built if needed).
    timeout_s : float
        How long the guest may take to boot and run.

    Returns
    -------
    NetworkResult
        ``source='measured'``: the receivers of each frame and the bridges'
        learned addresses; the provenance names the guest kernel and says how late
        the frames left against their plan (``max_late_s``).

    Raises
    ------
    ScenarioError
        If the topology, ``uri`` or ``progress`` breaks a rule (checked before anything
        is built or started).
    HostUnavailable, ExperimentFailed

    A NAT scenario runs with a real dnsmasq instead (see
    :func:`~kvmlab.network.nattwin.run_nat_on_host`).
    """
    loaded = load_scenario(scenario)
    if isinstance(loaded, NatScenario):
        return run_nat_on_host(loaded, uri=uri, progress=progress, image=image,
                               timeout_s=max(timeout_s, 240.0))
    return run_many_on_host([scenario], uri=uri, progress=progress, image=image,
                            timeout_s=timeout_s)[0]
