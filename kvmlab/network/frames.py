"""Ethernet frames and MAC addresses, as the labs send them, and the rules a topology's
frames follow (:func:`parse_frames`, used by :class:`~kvmlab.network.scenario.Topology`).

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

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from kvmlab.errors import ScenarioError
from kvmlab.network.vlan import check_vid
from kvmlab.validate import check_keys, is_real, is_whole, list_of, mapping, text

__all__ = ["BROADCAST", "DEFAULT_TTL", "ETHERTYPE_ARP", "ETHERTYPE_IPV4", "ETHERTYPE_LAB",
           "FRAME_GAP_S", "LINK_LOCAL_PREFIX", "MAX_FRAMES", "Frame", "Sender", "is_group",
           "kind_of", "parse_frames", "parse_mac"]

BROADCAST = "ff:ff:ff:ff:ff:ff"
ETHERTYPE_LAB = 0x88B5
"""The IEEE's EtherType for local experiments: no host's kernel answers it."""
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV4 = 0x0800
DEFAULT_TTL = 64
"""Linux's default time to live for the packets a host sends."""
FRAME_GAP_S = 0.1
"""A frame without ``at_s`` leaves this long after the frame before."""
MAX_FRAMES = 200
"""The most frames one topology sends."""
MAX_AT_S = 3600.0
"""The latest a frame may leave, in seconds after the start (the model and a real run wait
for it)."""
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def parse_mac(text: Any) -> str:
    """Check a MAC address and return it in lower case."""
    if not isinstance(text, str) or not _MAC.fullmatch(text.lower()):
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
    to: str | None = None
    """For an IPv4 packet, its destination address (``dst`` is then the next hop's MAC:
    the destination's on the sender's own subnet, else the gateway's)."""
    ttl: int = DEFAULT_TTL
    ip_src: str | None = None
    """The sender's IPv4 address in an ARP request or IPv4 packet (None: its NIC's)."""
    inner: tuple[int, ...] = ()
    """Tags under the outer one (``vlan``), outermost first: a tagged frame that leaves by a
    VLAN sub-device gets a second tag on top (802.1Q in 802.1Q)."""

    def push_tag(self, vid: int) -> Frame:
        """The frame with one more tag on top (what a VLAN sub-device does on the way out)."""
        inner = self.inner if self.vlan is None else (self.vlan, *self.inner)
        return replace(self, vlan=vid, inner=inner)

    def pop_tag(self) -> Frame:
        """The frame without its outer tag (a sub-device on the way in, or a bridge port
        that sends the VLAN untagged): the tag under it, if any, is the outer one now.

        Examples
        --------
        >>> f = Frame("a:eth0", "ff:ff:ff:ff:ff:ff", "52:54:00:00:01:01", 0.0, vlan=2)
        >>> g = f.push_tag(10)
        >>> (g.vlan, g.inner), (g.pop_tag().vlan, g.pop_tag().inner), f.pop_tag().vlan
        ((10, (2,)), (2, ()), None)
        """
        if self.vlan is None:
            return self
        return replace(self, vlan=self.inner[0] if self.inner else None, inner=self.inner[1:])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.sender, "dst": self.dst, "src": self.src,
                               "at_s": self.at_s}
        if self.arp_target is not None:
            del out["dst"]
            out["arp"] = self.arp_target
        elif self.to is not None:
            del out["dst"], out["src"]
            out["to"] = self.to
            if self.ttl != DEFAULT_TTL:
                out["ttl"] = self.ttl
        elif self.ethertype != ETHERTYPE_LAB:
            out["ethertype"] = self.ethertype
        if self.vlan is not None:
            out["vlan"] = self.vlan
        if self.label:
            out["label"] = self.label
        return out


class Sender(Protocol):
    """What the frame rules need to know of the NIC that sends a frame."""

    @property
    def id(self) -> str: ...

    @property
    def mac(self) -> str: ...

    @property
    def interface(self) -> ipaddress.IPv4Interface | None: ...


def _arp_target(f: Mapping[str, Any], i: int, nic: Sender) -> str:
    if set(f) & {"dst", "ethertype"}:
        raise ScenarioError(f"frame {i}: an ARP request is always broadcast with EtherType "
                            "0x0806; drop 'dst' and 'ethertype'")
    if nic.interface is None:
        raise ScenarioError(f"frame {i}: {nic.id} has no IPv4 address to ask from (give the "
                            "NIC an \"ip\")")
    try:
        if not isinstance(f["arp"], str):
            raise ValueError(f["arp"])
        target = ipaddress.IPv4Address(f["arp"])
    except (ipaddress.AddressValueError, ValueError):
        raise ScenarioError(f"frame {i}: 'arp' asks for an IPv4 address, not {f['arp']!r}"
                            ) from None
    if target not in nic.interface.network:
        raise ScenarioError(f"frame {i}: {target} is outside {nic.id}'s subnet "
                            f"{nic.interface.network}: a host asks by ARP only for addresses "
                            "on its own link (for others it asks for its gateway)")
    return str(target)


def _packet(f: Mapping[str, Any], i: int, nic: Sender,
            next_hop: Callable[[Sender, str], str] | None) -> tuple[str, str, int]:
    """(destination address, next hop's MAC, TTL) of an IPv4 packet ``{"to": IPv4}``."""
    if set(f) & {"dst", "ethertype", "arp", "src"}:
        raise ScenarioError(f"frame {i}: an IPv4 packet goes to the next hop's MAC with its "
                            "NIC's own; drop 'dst', 'src', 'ethertype' and 'arp'")
    if nic.interface is None:
        raise ScenarioError(f"frame {i}: {nic.id} has no IPv4 address to send from")
    try:
        if not isinstance(f["to"], str):
            raise ValueError(f["to"])
        to = ipaddress.IPv4Address(f["to"])
    except (ipaddress.AddressValueError, ValueError):
        raise ScenarioError(f"frame {i}: 'to' is an IPv4 address, not {f['to']!r}") from None
    ttl = f.get("ttl", DEFAULT_TTL)
    if not is_whole(ttl) or not 1 <= ttl <= 255:
        raise ScenarioError(f"frame {i}: ttl is a whole number of hops from 1 to 255, "
                            f"not {ttl!r}")
    if next_hop is None:
        raise ScenarioError(f"frame {i}: this topology has no layer 3 to send IPv4 packets")
    return str(to), next_hop(nic, str(to)), int(ttl)


def parse_frames(raw: Sequence[Any], nic_of: Callable[[str], Sender],
                 is_port: Callable[[str], bool],
                 next_hop: Callable[[Sender, str], str] | None = None) -> tuple[Frame, ...]:
    """Check a topology's frames, in the order they are sent, and build them.

    Parameters
    ----------
    raw : list of dict
        The frames' JSON form (see :mod:`kvmlab.network.scenario`).
    nic_of : callable
        The sending NIC named ``host:nic`` (a ScenarioError if there is none).
    is_port : callable
        Whether ``node:interface`` names a bridge port (which sends no frames).
    next_hop : callable, optional
        For an IPv4 packet (``{"from": ..., "to": IPv4}``): the sending NIC and the
        destination address to the next hop's MAC (a ScenarioError if there is no route).

    Raises
    ------
    ScenarioError
        Naming the frame and the rule it breaks.
    """
    raw = list_of(raw, "frames")
    if len(raw) > MAX_FRAMES:
        raise ScenarioError(f"at most {MAX_FRAMES} frames per topology, not {len(raw)}")
    frames: list[Frame] = []
    clock = 0.0
    known = ("from", "dst", "src", "at_s", "ethertype", "label", "arp", "vlan", "to", "ttl")
    for i, f in enumerate(raw):
        f = mapping(f, f"frame {i}")
        check_keys(f, known, f"frame {i}")
        if "from" not in f or not {"dst", "arp", "to"} & set(f):
            raise ScenarioError(f'each frame is {{"from": "host:nic", "dst": MAC, ...}}, '
                                f'{{"from": "host:nic", "arp": IPv4}} or {{"from": '
                                f'"host:nic", "to": IPv4}} (a packet), not {str(f)[:80]}')
        if "ttl" in f and "to" not in f:
            raise ScenarioError(f"frame {i}: ttl belongs to an IPv4 packet (\"to\")")
        sender = f["from"]
        if not isinstance(sender, str) or is_port(sender):
            raise ScenarioError(f"frame {i} is sent from {sender!r}: frames come from a "
                                "host's NIC (host:nic), not from a bridge port")
        nic = nic_of(sender)
        src = parse_mac(f.get("src", nic.mac))
        if is_group(src):
            raise ScenarioError(f"frame {i}: source {src} is a group address; a source MAC "
                                "is always unicast")
        at = f.get("at_s", clock + FRAME_GAP_S if frames else 0.0)
        if not is_real(at) or not clock <= at <= MAX_AT_S:
            raise ScenarioError(f"frame {i}: at_s is seconds, not before the frame before "
                                f"({clock}) and at most {MAX_AT_S:g}, not {at!r}")
        ethertype = f.get("ethertype", ETHERTYPE_LAB)
        if not is_whole(ethertype) or not 0x0600 <= ethertype <= 0xFFFF or ethertype in (
                0x8100, 0x88A8):
            raise ScenarioError(f"frame {i}: ethertype {ethertype!r} must be 0x0600-0xffff "
                                "and not a VLAN tag's (0x8100, 0x88a8)")
        clock = float(at)
        target = to = None
        ttl = DEFAULT_TTL
        if "arp" in f:
            if "to" in f:
                raise ScenarioError(f"frame {i}: an ARP request ('arp') or an IPv4 packet "
                                    "('to'), not both")
            target = _arp_target(f, i, nic)
            ethertype = ETHERTYPE_ARP
            dst = BROADCAST
        elif "to" in f:
            to, dst, ttl = _packet(f, i, nic, next_hop)
            ethertype = ETHERTYPE_IPV4
        else:
            dst = parse_mac(f["dst"])
        vlan = f.get("vlan")
        if vlan is not None:
            vlan = check_vid(vlan, f"frame {i}'s tag", priority_tag_ok=True)
        label = text(f.get("label", ""), f"frame {i}'s label")
        frames.append(Frame(sender, dst, src, clock, ethertype, label,
                            target, vlan, to, ttl))
    return tuple(frames)
