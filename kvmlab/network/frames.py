"""Ethernet frames and MAC addresses, as the labs send them.

A MAC address is six bytes written as six pairs of hex digits separated by
colons. The lowest bit of the first byte marks a *group* address (multicast; all
ones is broadcast); a frame's source is always an individual (unicast) address.

Examples
--------
>>> parse_mac("52:54:00:AB:cd:01")
'52:54:00:ab:cd:01'
>>> is_group("01:00:5e:00:00:01"), is_group("52:54:00:00:00:01")
(True, False)
>>> parse_mac("52:54:00:zz:00:01")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: malformed MAC address '52:54:00:zz:00:01': six pairs of hex ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kvmlab.errors import ScenarioError

BROADCAST = "ff:ff:ff:ff:ff:ff"
ETHERTYPE_LAB = 0x88B5
"""The IEEE's EtherType for local experiments: no host's kernel answers it."""
ETHERTYPE_ARP = 0x0806
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def parse_mac(text: Any) -> str:
    """Check a MAC address and return it in lower case."""
    if not isinstance(text, str) or not _MAC.match(text.lower()):
        raise ScenarioError(f"malformed MAC address {text!r}: six pairs of hex digits "
                            "separated by ':' (like 52:54:00:12:34:56)")
    return text.lower()


def is_group(mac: str) -> bool:
    """True for multicast and broadcast addresses (the first byte's lowest bit)."""
    return bool(int(mac[:2], 16) & 1)


LINK_LOCAL_PREFIX = "01:80:c2:00:00:0"
"""01:80:c2:00:00:00 to 0f: group addresses for the link itself (STP, pause, LACP, LLDP...)."""


def kind_of(dst: str) -> str:
    """``'broadcast'``, ``'multicast'`` or ``'unicast'``: which flood flag applies; or
    ``'pause'`` (01:80:c2:00:00:01) and ``'link-local'`` (01:80:c2:00:00:02 to 0f), which a
    bridge never forwards.

    Examples
    --------
    >>> [kind_of(m) for m in ("01:80:c2:00:00:00", "01:80:c2:00:00:01", "01:80:c2:00:00:0e")]
    ['multicast', 'pause', 'link-local']
    """
    if dst.startswith(LINK_LOCAL_PREFIX):
        # 00 (STP's address) is forwarded like any multicast while STP is off
        return {"0": "multicast", "1": "pause"}.get(dst[-1], "link-local")
    if dst == BROADCAST:
        return "broadcast"
    return "multicast" if is_group(dst) else "unicast"


@dataclass(frozen=True)
class Frame:
    """One frame a host sends: from which NIC, to which MAC, with which source MAC.

    Attributes
    ----------
    sender : str
        ``"host:nic"``, the NIC that sends it.
    dst, src : str
        Destination and source MAC addresses.
    at_s : float
        When it is sent, in seconds from the start.
    ethertype : int
        The protocol field (the lab's own, by default).
    label : str
        What the frame is for, in a sentence.
    arp_target : str or None
        For an ARP request ("who has this IPv4 address?"), the address asked for.
    vlan : int or None
        The 802.1Q tag's VLAN ID the frame carries on the wire (0: a priority tag,
        None: untagged).
    """

    sender: str
    dst: str
    src: str
    at_s: float
    ethertype: int = ETHERTYPE_LAB
    label: str = ""
    arp_target: str | None = None
    vlan: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.sender, "dst": self.dst, "src": self.src,
                               "at_s": self.at_s}
        if self.arp_target is not None:
            del out["dst"]
            out["arp"] = self.arp_target
        elif self.ethertype != ETHERTYPE_LAB:
            out["ethertype"] = self.ethertype
        if self.vlan is not None:
            out["vlan"] = self.vlan
        if self.label:
            out["label"] = self.label
        return out
