"""The bridge model: the shipped scenarios' stories, and rules that hold for any topology."""

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.data import scenario_dict
from kvmlab.network import Topology, simulate
from kvmlab.network.frames import BROADCAST, is_group
from kvmlab.network.generate import random_topology

seeds = st.integers(0, 2**32 - 1)


def component_nics(t: Topology, nic: str) -> set[str]:
    """NICs reachable from ``nic`` over links, bridges and 8021q sub-devices (which join a
    bridge port to its parent NIC); hosts do not forward."""
    g = nx.Graph()
    for a, b in t.links:
        g.add_edge(a, b)
    for br in t.bridges:
        ports = [p.id for p in br.ports]
        g.add_edges_from((ports[0], p) for p in ports[1:])
        g.add_edges_from((p, sub[0]) for p in ports if (sub := t.sub_device(p)) is not None)
    return {n for n in nx.node_connected_component(g, nic) if not t.is_port(n)}


@settings(max_examples=300)
@given(seeds)
def test_frames_stay_in_their_sender_component(seed):
    t = random_topology(seed)
    r = simulate(t)
    for frame, got in zip(t.frames, r.receivers, strict=True):
        assert set(got) <= component_nics(t, frame.sender)


@settings(max_examples=300)
@given(seeds)
def test_plain_switches_deliver_broadcast_to_all_and_learned_unicast_to_one(seed):
    t = random_topology(seed, odd=False)
    r = simulate(t)
    announced: set[str] = set()    # MACs whose owner broadcast: every bridge learned them
    owner = {n.mac: n.id for n in t.nics}
    for frame, got in zip(t.frames, r.receivers, strict=True):
        reachable = component_nics(t, frame.sender) - {frame.sender}
        if frame.dst == BROADCAST:
            assert set(got) == reachable
        elif frame.dst in owner and owner[frame.dst] in reachable:
            if frame.dst in announced:
                assert got == (owner[frame.dst],)
            else:
                assert owner[frame.dst] in got
        if frame.dst == BROADCAST:
            announced.add(frame.src)


@settings(max_examples=200)
@given(seeds)
def test_tables_hold_only_senders_on_their_own_bridges_ports(seed):
    t = random_topology(seed)
    r = simulate(t)
    sources = {f.src for f in t.frames} | {t.nic(n).mac for n in r.repliers if n}
    for b in t.bridges:
        assert set(r.fdb[b.name]) <= sources
        assert set(r.fdb[b.name].values()) <= {p.name for p in b.ports}
        if b.ageing_s == 0:
            assert r.fdb[b.name] == {}


@settings(max_examples=100)
@given(seeds)
def test_the_same_topology_gives_the_same_result(seed):
    t = random_topology(seed)
    assert simulate(t).receivers == simulate(t).receivers


@settings(max_examples=200)
@given(seeds)
def test_without_hairpin_no_nic_hears_its_own_frame(seed):
    t = random_topology(seed)
    hairpin = any(p.flags["hairpin"] for b in t.bridges for p in b.ports)
    r = simulate(t)
    if not hairpin:
        for frame, got in zip(t.frames, r.receivers, strict=True):
            assert frame.sender not in got


EXPECTED = {
    "net-flood-then-learn": [("vm2:eth0", "vm3:eth0"), ("vm1:eth0",), ("vm2:eth0",)],
    "net-hub": [("vm2:eth0", "vm3:eth0"), ("vm1:eth0", "vm3:eth0"), ("vm2:eth0", "vm3:eth0")],
    "net-no-hairpin": [("vm2:eth0", "vm3:eth0"), (), ("vm2:eth0", "vm3:eth0")],
    "net-hairpin": [("vm1:eth0", "vm2:eth0", "vm3:eth0"), ("vm1:eth0",),
                    ("vm1:eth0", "vm2:eth0", "vm3:eth0")],
    "net-ageing": [("vm1:eth0", "vm3:eth0"), ("vm2:eth0",), ("vm2:eth0", "vm3:eth0")],
    "net-mac-moves": [("vm2:eth0", "vm3:eth0"), ("vm1:eth0", "vm2:eth0"), ("vm3:eth0",)],
    "net-flood-off": [("vm2:eth0",), ("vm2:eth0", "vm3:eth0"), ("vm2:eth0",)],
    "net-learned-on-incoming-port": [("vm1:eth0", "vm2:eth0", "vm4:eth0"), ("vm3:eth0",)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_scenarios_tell_their_story(name):
    assert simulate(scenario_dict(name)).receivers == EXPECTED[name]


def test_the_event_list_steps_through_learning_and_flooding():
    r = simulate(scenario_dict("net-flood-then-learn"))
    first = [(e.where, e.action) for e in r.events if e.frame == 0]
    assert first[:3] == [("vm1:eth0", "send"), ("br0:vnet0", "learn"), ("br0:vnet0", "flood")]
    assert sorted(first[3:]) == [("vm2:eth0", "receive"), ("vm3:eth0", "receive")]
    # the tables after each step: vm1 is known from the learn step on
    learn = next(e for e in r.events if e.action == "learn")
    assert learn.fdb["br0"] == {"52:54:00:00:00:0a": "vnet0"}
    assert "learn" in r.steps() and all(e.time_s >= 0 for e in r.events)


def test_a_moved_mac_and_a_dropped_frame_say_why():
    moves = simulate(scenario_dict("net-mac-moves")).events
    assert any(e.action == "move" and "from vnet0 to vnet2" in e.detail for e in moves)
    drops = [e for e in simulate(scenario_dict("net-no-hairpin")).events if e.action == "drop"]
    assert len(drops) == 1 and "no hairpin" in drops[0].detail


def test_link_local_and_pause_frames_are_not_forwarded():
    t = Topology.from_dict(scenario_dict("net-flood-then-learn")).with_frames([
        {"from": "vm1:eth0", "dst": "01:80:c2:00:00:0e"},
        {"from": "vm2:eth0", "dst": "01:80:c2:00:00:01"},
        {"from": "vm3:eth0", "dst": "01:80:c2:00:00:00"}])
    r = simulate(t)
    assert r.receivers == [(), (), ("vm1:eth0", "vm2:eth0")]
    assert set(r.fdb["br0"]) == {"52:54:00:00:00:0a", "52:54:00:00:00:0c"}   # not the pause
    assert all(is_group(f.dst) for f in t.frames)


def test_arp_request_is_flooded_and_the_owner_answers_the_asker_alone():
    r = simulate(scenario_dict("net-arp"))
    assert r.receivers[0] == ("vm2:eth0", "vm3:eth0")
    assert (r.repliers[0], r.replies[0]) == ("vm2:eth0", ("vm1:eth0",))
    assert (r.repliers[1], r.replies[1]) == (None, ())           # nobody has 10.0.0.99
    assert any("who has 10.0.0.2?" in e.detail for e in r.events)


def test_a_host_does_not_answer_a_request_from_its_own_address():
    t = Topology.from_dict({
        "hosts": [{"name": "a", "nics": [{"name": "eth0", "ip": "10.0.0.1/24"}]}],
        "bridges": [{"name": "br0", "ports": [{"name": "p", "hairpin": True}]}],
        "links": [["a:eth0", "br0:p"]],
        "frames": [{"from": "a:eth0", "arp": "10.0.0.1"}]})
    r = simulate(t)
    assert r.receivers == [("a:eth0",)] and r.repliers == [None]


@pytest.mark.parametrize(("frame", "rule"), [
    ({"from": "vm1:eth0", "arp": "10.1.0.2"}, "outside vm1:eth0's subnet"),
    ({"from": "vm1:eth0", "arp": "10.0.0.2", "dst": "52:54:00:00:00:0b"}, "always broadcast"),
    ({"from": "vm1:eth0", "arp": "ten"}, "asks for an IPv4 address"),
])
def test_arp_requests_follow_the_rules(frame, rule):
    from kvmlab.errors import ScenarioError

    with pytest.raises(ScenarioError, match=rule):
        Topology.from_dict(scenario_dict("net-arp")).with_frames([frame])
