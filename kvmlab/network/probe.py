"""A read-only look at a host's bridges, their ports and forwarding tables, and the tap
devices of its running guests.

Bridges come from ``/sys/class/net`` (what ``bridge link`` and ``bridge fdb`` show),
read without any tool and without changing anything; libvirt's networks are read by
:func:`kvmlab.host.tour.list_networks` and guests' NICs from their domain XML.

Examples
--------
>>> host_bridges("/nonexistent")
[]
>>> from kvmlab.host import connect
>>> [(n.domain, n.target, n.source) for n in guest_nics(connect("test:///default"))]
[('test', 'testnet0', 'default')]
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.host.reading import each, reading

_FLAG_FILES = {"learning": "learning", "flood": "unicast_flood",
               "mcast_flood": "multicast_flood", "bcast_flood": "broadcast_flood",
               "hairpin": "hairpin_mode"}
FDB_ENTRY = struct.Struct("=6sBBIBBH")
"""One entry of a bridge's ``brforward`` file: ``struct __fdb_entry`` in linux/if_bridge.h."""
USER_HZ = 100


@dataclass(frozen=True)
class PortInfo:
    """A bridge port with its flags (``bridge -d link show``)."""

    name: str
    number: int
    flags: dict[str, bool]


@dataclass(frozen=True)
class FdbEntry:
    """One forwarding-table entry (``bridge fdb show br BRIDGE``)."""

    mac: str
    port: str
    local: bool
    age_s: float


@dataclass(frozen=True)
class BridgeInfo:
    """A Linux bridge on the host: its ports, ageing time and forwarding table."""

    name: str
    ageing_s: float
    stp: bool
    ports: list[PortInfo] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)

    def learned(self) -> dict[str, str]:
        """MAC to port for the addresses learned from traffic (not the bridge's own)."""
        return {e.mac: e.port for e in self.fdb if not e.local}


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def parse_brforward(data: bytes, ports: dict[int, str]) -> list[FdbEntry]:
    """Decode ``/sys/class/net/BRIDGE/brforward`` (an array of ``struct __fdb_entry``).

    Examples
    --------
    >>> entry = FDB_ENTRY.pack(bytes.fromhex("525400000001"), 1, 0, 250, 0, 0, 0)
    >>> parse_brforward(entry, {1: "vnet0"})
    [FdbEntry(mac='52:54:00:00:00:01', port='vnet0', local=False, age_s=2.5)]
    """
    out = []
    for off in range(0, len(data) - FDB_ENTRY.size + 1, FDB_ENTRY.size):
        mac, port_lo, is_local, timer, port_hi, _pad, _unused = FDB_ENTRY.unpack_from(data,
                                                                                       off)
        number = port_lo | (port_hi << 8)
        out.append(FdbEntry(":".join(f"{b:02x}" for b in mac), ports.get(number, str(number)),
                            bool(is_local), timer / USER_HZ))
    return out


def host_bridges(sys_class_net: str | Path = "/sys/class/net") -> list[BridgeInfo]:
    """Every Linux bridge of this host (its network namespace), read from sysfs.

    Returns an empty list on a host without bridges (or without access to sysfs).
    """
    root = Path(sys_class_net)
    bridges = []
    try:
        devices = sorted(p for p in root.iterdir() if (p / "bridge").is_dir())
    except OSError:
        return []
    for dev in devices:
        ports = []
        brif = dev / "brif"
        for port in sorted(brif.iterdir()) if brif.is_dir() else []:
            flags = {k: _read(port / f, "0") == "1" for k, f in _FLAG_FILES.items()}
            ports.append(PortInfo(port.name, int(_read(port / "port_no", "0"), 0), flags))
        try:
            raw = (dev / "brforward").read_bytes()
        except OSError:
            raw = b""
        ageing = int(_read(dev / "bridge" / "ageing_time", "30000")) / USER_HZ
        bridges.append(BridgeInfo(dev.name, ageing, _read(dev / "bridge" / "stp_state") == "1",
                                  ports, parse_brforward(raw, {p.number: p.name
                                                               for p in ports})))
    return bridges


@dataclass(frozen=True)
class GuestNic:
    """A guest's NIC as its domain XML describes it."""

    domain: str
    mac: str | None
    kind: str
    source: str | None
    target: str | None
    model: str | None
    vlan: list[int] = field(default_factory=list)


def guest_nics(conn: Any) -> list[GuestNic]:
    """The NICs of every running guest: MAC, network or bridge, and tap device (vnetN).

    virsh equivalent: ``virsh domiflist DOMAIN`` for each running domain.
    """
    with reading(conn, "the list of running domains"):
        domains = conn.listAllDomains(1)      # VIR_CONNECT_LIST_DOMAINS_ACTIVE

    def nics(dom: Any) -> list[GuestNic]:
        root = ET.fromstring(dom.XMLDesc())
        out = []
        for iface in root.findall("devices/interface"):
            source = iface.find("source")
            src = None
            if source is not None:
                src = source.get("network") or source.get("bridge") or source.get("dev")
            mac, target, model = (iface.find(t) for t in ("mac", "target", "model"))
            out.append(GuestNic(
                dom.name(), mac.get("address") if mac is not None else None,
                iface.get("type", ""), src, target.get("dev") if target is not None else None,
                model.get("type") if model is not None else None,
                [int(tag.get("id", "0")) for tag in iface.findall("vlan/tag")]))
        return out

    return [n for group in each(conn, "a domain", domains, nics) for n in group]
