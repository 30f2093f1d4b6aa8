"""802.1Q VLANs: the rules for VLAN IDs, and what a VLAN-aware Linux bridge does with tags.

A VLAN tag holds a 12-bit VLAN ID. Of the 4096 values, 0 means "no VLAN" (a
*priority tag*: only the priority bits count) and 4095 is reserved, so VLANs 1 to
4094 are usable, not 1 to 4096.

A Linux bridge with ``vlan_filtering`` on gives each port a set of VLANs; one of
them may be the port's **PVID** (the VLAN of frames that arrive untagged or
priority-tagged) and any may be **untagged** on the way out. The usual switch words
map onto that: an *access* port is one VLAN, PVID and untagged; a *trunk* carries
several VLANs tagged, and its *native* VLAN, if any, untagged as PVID.

Examples
--------
>>> port_vlans({"access": 10})
{10: (True, True)}
>>> port_vlans({"trunk": [10, 20], "native": 1})
{1: (True, True), 10: (False, False), 20: (False, False)}
>>> check_vid(4095, "port p1's VLAN")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: port p1's VLAN: VLAN ID 4095 is reserved; usable IDs are 1-4094
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.validate import boolean, check_keys, is_whole

__all__ = ["DEFAULT_PVID", "MAX_VID", "MIN_VID", "VLAN_KEYS", "PortVlans", "check_vid", "egress",
           "explain_port_vlans", "ingress_vid", "libvirt_vlan", "port_vlans"]

MIN_VID, MAX_VID = 1, 4094
DEFAULT_PVID = 1
"""A new port of a VLAN-aware Linux bridge is in VLAN 1, as PVID and untagged."""
VLAN_KEYS = ("vlans", "access", "trunk", "native")

PortVlans = dict[int, tuple[bool, bool]]
"""VLAN ID to (PVID, untagged) for one port."""


def check_vid(vid: Any, what: str, priority_tag_ok: bool = False) -> int:
    """A VLAN ID that the rule allows, else a ScenarioError naming the rule."""
    if not is_whole(vid):
        raise ScenarioError(f"{what}: a VLAN ID is a whole number, not {vid!r}")
    if vid == 0 and priority_tag_ok:
        return 0
    if vid == 0:
        raise ScenarioError(f"{what}: VLAN ID 0 means 'no VLAN' (a priority tag); usable IDs "
                            "are 1-4094")
    if vid == 4095:
        raise ScenarioError(f"{what}: VLAN ID 4095 is reserved; usable IDs are 1-4094")
    if not MIN_VID <= vid <= MAX_VID:
        raise ScenarioError(f"{what}: VLAN ID {vid} does not fit in 12 bits; usable IDs are "
                            "1-4094")
    return vid


def port_vlans(spec: Mapping[str, Any], name: str = "port") -> PortVlans:
    """A port's VLANs from ``vlans`` (list of {"id", "pvid", "untagged"}), or ``access``, or
    ``trunk`` (list of IDs) with an optional ``native`` VLAN; the Linux default otherwise."""
    given = [k for k in VLAN_KEYS if k in spec]
    if not given:
        return {DEFAULT_PVID: (True, True)}
    if "access" in spec and len(given) > 1:
        raise ScenarioError(f"{name}: an access port is in one VLAN: 'access' goes alone")
    if "vlans" in spec and len(given) > 1:
        raise ScenarioError(f"{name}: give 'vlans', or 'trunk' and 'native', not both")
    out: PortVlans = {}
    if "access" in spec:
        out[check_vid(spec["access"], f"{name}'s access VLAN")] = (True, True)
    elif "vlans" in spec:
        if not isinstance(spec["vlans"], list | tuple) or len(spec["vlans"]) > MAX_VID:
            raise ScenarioError(f'{name}: vlans is a list of {{"id": N, "pvid": bool, '
                                '"untagged": bool}}')
        for v in spec["vlans"]:
            if not isinstance(v, Mapping) or "id" not in v:
                raise ScenarioError(f'{name}: each VLAN is {{"id": N, "pvid": bool, '
                                    f'"untagged": bool}}, not {str(v)[:60]}')
            check_keys(v, ("id", "pvid", "untagged"), f"a VLAN of {name}")
            vid = check_vid(v["id"], f"{name}'s VLAN")
            if vid in out:
                raise ScenarioError(f"{name}: VLAN {vid} is listed twice")
            out[vid] = (boolean(v.get("pvid", False), f"{name}: VLAN {vid}'s pvid"),
                        boolean(v.get("untagged", False), f"{name}: VLAN {vid}'s untagged"))
    else:
        trunk = spec.get("trunk", [])
        if not isinstance(trunk, list | tuple) or len(trunk) > MAX_VID:
            raise ScenarioError(f"{name}: trunk is a list of VLAN IDs")
        for vid in trunk:
            out[check_vid(vid, f"{name}'s trunk VLAN")] = (False, False)
        if "native" in spec:
            out[check_vid(spec["native"], f"{name}'s native VLAN")] = (True, True)
    if sum(pvid for pvid, _u in out.values()) > 1:
        raise ScenarioError(f"{name}: a port has at most one PVID (the VLAN of untagged "
                            "frames)")
    return dict(sorted(out.items()))


def ingress_vid(vlans: PortVlans, tag: int | None) -> int | None:
    """The VLAN a frame belongs to once it enters a port, or None if the port drops it.

    Untagged and priority-tagged (VID 0) frames take the port's PVID; a tagged frame
    must carry one of the port's VLANs.

    Examples
    --------
    >>> ingress_vid({10: (True, True)}, None), ingress_vid({10: (True, True)}, 0)
    (10, 10)
    >>> ingress_vid({10: (True, True)}, 20) is None, ingress_vid({10: (False, False)}, None)
    (True, None)
    """
    if tag is None or tag == 0:
        return next((vid for vid, (pvid, _u) in vlans.items() if pvid), None)
    return tag if tag in vlans else None


def egress(vlans: PortVlans, vid: int) -> tuple[bool, int | None]:
    """Whether a frame of VLAN ``vid`` may leave by a port, and its tag then (None: untagged).

    Examples
    --------
    >>> egress({10: (True, True), 20: (False, False)}, 10), egress({10: (True, True)}, 20)
    ((True, None), (False, None))
    >>> egress({10: (True, True), 20: (False, False)}, 20)
    (True, 20)
    """
    if vid not in vlans:
        return False, None
    return True, (None if vlans[vid][1] else vid)


def libvirt_vlan(vlan: Any) -> PortVlans:
    """What a libvirt ``<vlan>`` element asks of the switch port, as this module's port VLANs.

    ``<vlan><tag id='42'/></vlan>`` is an access port of VLAN 42; ``<vlan trunk='yes'>``
    with several tags a trunk; a tag with ``nativeMode='untagged'`` (or ``'tagged'``) is
    the trunk's native VLAN, sent untagged (or still tagged).

    Examples
    --------
    >>> import xml.etree.ElementTree as ET
    >>> libvirt_vlan(ET.fromstring("<vlan><tag id='42'/></vlan>"))
    {42: (True, True)}
    >>> libvirt_vlan(ET.fromstring(
    ...     "<vlan trunk='yes'><tag id='42'/><tag id='123' nativeMode='untagged'/></vlan>"))
    {42: (False, False), 123: (True, True)}
    """
    tags = vlan.findall("tag")
    if not tags:
        raise ScenarioError("a <vlan> element needs at least one <tag id=.../>")
    trunk = vlan.get("trunk") == "yes" or len(tags) > 1
    out: PortVlans = {}
    for tag in tags:
        vid = check_vid(int(tag.get("id", "-1")), "libvirt <tag>")
        native = tag.get("nativeMode")
        if not trunk:
            out[vid] = (True, True)
        elif native is not None:
            out[vid] = (True, native == "untagged")
        else:
            out[vid] = (False, False)
    return dict(sorted(out.items()))


def explain_port_vlans(vlans: PortVlans) -> str:
    """A port's VLANs in switch words.

    Examples
    --------
    >>> explain_port_vlans({42: (False, False), 123: (True, True)})
    'a trunk: VLAN 42 tagged; VLAN 123 untagged (native: untagged frames that arrive join it)'
    """
    if len(vlans) == 1 and all(p and u for p, u in vlans.values()):
        return f"an access port of VLAN {next(iter(vlans))}: frames leave untagged"
    parts = []
    for vid, (pvid, untagged) in vlans.items():
        words = f"VLAN {vid} {'untagged' if untagged else 'tagged'}"
        if pvid:
            words += " (native: untagged frames that arrive join it)"
        parts.append(words)
    return "a trunk: " + "; ".join(parts)
