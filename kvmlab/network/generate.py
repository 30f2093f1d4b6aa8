"""Random topologies and frames, from a seed: for property-based tests and practice problems.

Examples
--------
>>> t = random_topology(3)
>>> t == random_topology(3), 1 <= len(t.bridges) <= 3, len(t.frames) >= 1
(True, True, True)
"""

from __future__ import annotations

import random
from typing import Any

from kvmlab.network.frames import BROADCAST
from kvmlab.network.scenario import PORT_FLAGS, Topology

MULTICAST = "01:00:5e:00:00:fb"
UNKNOWN = "52:54:00:ff:ff:01"
LINK_LOCAL = ("01:80:c2:00:00:00", "01:80:c2:00:00:01", "01:80:c2:00:00:0e")


def _random_vlans(rng: random.Random, trunk: bool) -> dict[str, Any]:
    """A port's VLANs from VLANs 1-3: an access port, or a trunk with or without a native."""
    if not trunk and rng.random() < 0.6:
        return {"access": rng.randint(1, 3)}
    vids = sorted(rng.sample([1, 2, 3], rng.randint(1, 3)))
    spec: dict[str, Any] = {"trunk": vids}
    if rng.random() < 0.6:
        native = rng.randint(1, 3)
        spec = {"trunk": [v for v in vids if v != native], "native": native}
    return spec


def _add_sub_devices(rng: random.Random, host: dict[str, Any], guests: list[dict[str, Any]],
                     bridges: list[dict[str, Any]], links: list[list[str]]) -> None:
    """Make ``host`` a KVM host with 8021q sub-devices: ``eth0.V`` for one or two VLANs of
    0-3 (0 included: the kernel takes a VLAN 0 sub-device), each in a bridge of its own
    inside the host with a guest behind it (``vnetV``), like the seed article's design.

    Such a host shows two kernel rules the model follows: the host answers ARP for its
    address on the bridges inside it too (Linux's weak host model, with the bridge's own MAC,
    which is ``eth0``'s: a bridge takes its ports' lowest MAC, and the tap-like ports have
    ``fe:…`` ones), and a sub-device has its parent's MAC, which is a *local* address of the
    bridge it is a port of (never learned from a port; a frame to it is for the host, never
    forwarded). A guest's tagged frame leaves such a host with two tags (802.1Q in 802.1Q)."""
    name = host["name"]
    for vid in sorted(rng.sample([0, 1, 2, 3], rng.randint(1, 2))):
        sub = f"eth0.{vid}"
        host.setdefault("vlan_devices", []).append({"name": sub, "parent": "eth0", "id": vid})
        guest = f"{name}g{vid}"
        k = len(guests)
        guests.append({"name": guest, "nics": [{"name": "eth0",
                                                "mac": f"52:54:00:00:01:{k + 1:02x}",
                                                "ip": f"10.0.0.{100 + k}/24"}]})
        bridges.append({"name": f"{name}v{vid}", "host": name, "ports": [sub, f"vnet{vid}"]})
        links.append([f"{guest}:eth0", f"{name}v{vid}:vnet{vid}"])


def random_topology_dict(seed: int, *, max_bridges: int = 3, max_hosts: int = 5,
                         max_frames: int = 8, odd: bool = True,
                         vlans: bool = False, sub_devices: bool = False) -> dict[str, Any]:
    """A random network (bridges in a tree, hosts on them) and frames, as JSON data.

    With ``vlans``, every bridge is VLAN-aware: host ports are access ports or trunks
    of VLANs 1-3, links between bridges are trunks (with or without a native VLAN),
    and some frames leave their host tagged (VLAN 0 to 3).

    With ``odd`` and ``sub_devices``, now and then a host is a KVM host with 8021q
    sub-devices (VLAN 0 to 3), each in a bridge inside the host with a guest behind it (see
    :func:`_add_sub_devices`; off by default, so that the topologies of a seed stay the
    same).

    Every host has an address (10.0.0.N/24), and now and then a frame is an ARP
    request (for a host, or for an address nobody has). With ``odd`` (the
    default), port flags other than the defaults and an ageing
    time of 0 (a hub) turn up now and then, and so do frames that borrow another
    host's source address (a MAC that moves); without it, every bridge is a plain
    learning switch and every frame carries its sender's own address.
    """
    rng = random.Random(seed)
    n_bridges = rng.randint(1, max_bridges)
    bridges: list[dict[str, Any]] = [
        {"name": f"br{i}", "ageing_s": 0 if odd and rng.random() < 0.1 else 300,
         "ports": [], **({"vlan_filtering": True} if vlans else {})}
        for i in range(n_bridges)]
    links: list[list[str]] = []

    def new_port(b: int, host_facing: bool = True) -> str:
        flags = {k: not v for k, v in PORT_FLAGS.items() if odd and rng.random() < 0.12}
        if not host_facing:     # hairpin is for hosts behind a port (reflective relay); on a
            flags.pop("hairpin", None)   # link between bridges it bounces frames: a race
        if vlans:
            flags |= _random_vlans(rng, trunk=not host_facing)
        name = f"p{b}{len(bridges[b]['ports'])}"
        bridges[b]["ports"].append({"name": name, **flags})
        return f"br{b}:{name}"

    for i in range(1, n_bridges):
        links.append([new_port(rng.randrange(i), False), new_port(i, False)])
    hosts = [{"name": f"h{i}", "nics": [{"name": "eth0", "mac": f"52:54:00:00:00:{i + 1:02x}",
                                         "ip": f"10.0.0.{i + 1}/24"}]}
             for i in range(rng.randint(1, max_hosts))]
    for h in hosts:
        links.append([f"{h['name']}:eth0", new_port(rng.randrange(n_bridges))])
    guests: list[dict[str, Any]] = []
    for h in hosts if odd and sub_devices else []:
        if rng.random() < 0.25:
            _add_sub_devices(rng, h, guests, bridges, links)
    n_hosts = len(hosts)
    hosts += guests
    macs = [h["nics"][0]["mac"] for h in hosts]
    frames = []
    for _ in range(rng.randint(1, max_frames)):
        sender = rng.randrange(len(hosts))
        frame: dict[str, Any] = {"from": f"{hosts[sender]['name']}:eth0"}
        if rng.random() < 0.15:              # an ARP request, for a host or for nobody
            frame["arp"] = f"10.0.0.{rng.randint(1, n_hosts + 1)}"
            frames.append(frame)
            continue
        r = rng.random()
        frame["dst"] = (BROADCAST if r < 0.25 else MULTICAST if r < 0.33 else
                        UNKNOWN if r < 0.41 else rng.choice(LINK_LOCAL) if r < 0.46 else
                        rng.choice(macs))
        if odd and rng.random() < 0.1:
            frame["src"] = rng.choice(macs)
        if vlans and rng.random() < 0.35:
            frame["vlan"] = rng.choice([0, 1, 2, 3])
        frames.append(frame)
    return {"name": f"random-{seed}", "hosts": hosts, "bridges": bridges, "links": links,
            "frames": frames}


def random_topology(seed: int, **options: Any) -> Topology:
    """:func:`random_topology_dict`, checked and built."""
    return Topology.from_dict(random_topology_dict(seed, **options))
