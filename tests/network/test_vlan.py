"""802.1Q in the model: the rules for VLAN IDs, and VLAN-aware bridges on any topology."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.data import scenario_dict, scenario_names
from kvmlab.errors import ScenarioError
from kvmlab.network import Topology, simulate
from kvmlab.network.generate import random_topology
from kvmlab.network.vlan import check_vid, egress, ingress_vid, port_vlans


@pytest.mark.parametrize(("vid", "rule"), [
    (0, "VLAN ID 0 means 'no VLAN'"), (4095, "VLAN ID 4095 is reserved; usable IDs are 1-4094"),
    (4096, "does not fit in 12 bits; usable IDs are 1-4094"), (-1, "does not fit in 12 bits"),
    ("10", "a whole number"),
])
def test_port_vlan_ids_follow_the_rule(vid, rule):
    with pytest.raises(ScenarioError, match=rule):
        check_vid(vid, "port p1's VLAN")


@given(st.integers(1, 4094))
def test_every_usable_id_is_accepted(vid):
    assert check_vid(vid, "x") == vid
    assert port_vlans({"access": vid}) == {vid: (True, True)}


@pytest.mark.parametrize(("spec", "rule"), [
    ({"access": 10, "trunk": [20]}, "'access' goes alone"),
    ({"vlans": [{"id": 10, "pvid": True}, {"id": 20, "pvid": True}]}, "at most one PVID"),
    ({"vlans": [{"id": 10}, {"id": 10}]}, "listed twice"),
    ({"trunk": [10, 4095]}, "4095 is reserved"),
])
def test_port_vlan_specs_that_break_a_rule(spec, rule):
    with pytest.raises(ScenarioError, match=rule):
        port_vlans(spec, "port sw1:p1")


def test_vlans_on_a_bridge_that_is_not_vlan_aware_are_refused():
    with pytest.raises(ScenarioError, match="not VLAN-aware"):
        Topology.from_dict({"bridges": [{"name": "br0", "ports": [{"name": "p", "access": 10}]}]})


def test_a_frame_tag_may_be_a_priority_tag_but_not_4095():
    t = Topology.from_dict(scenario_dict("vlan-broadcast-confined"))
    assert t.with_frames([{"from": "pc1:eth0", "dst": "ff:ff:ff:ff:ff:ff", "vlan": 0}])
    with pytest.raises(ScenarioError, match="4095 is reserved"):
        t.with_frames([{"from": "pc1:eth0", "dst": "ff:ff:ff:ff:ff:ff", "vlan": 4095}])


def test_ingress_and_egress_as_the_kernel_does_them():
    trunk = port_vlans({"trunk": [2, 3], "native": 1})
    assert [ingress_vid(trunk, t) for t in (None, 0, 2, 4)] == [1, 1, 2, None]
    assert [egress(trunk, v) for v in (1, 2, 4)] == [(True, None), (True, 2), (False, None)]


def vlan_of_nic(t: Topology, nic: str) -> set[int]:
    port = t.port(t.peer(nic)) if t.is_port(t.peer(nic)) else None
    return set(port.vlans) if port is not None and port.vlans else set()


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1))
def test_a_nic_on_an_access_port_never_sees_a_tag(seed):
    t = random_topology(seed, vlans=True)
    r = simulate(t)
    for tags in r.tags:
        for nic, tag in tags.items():
            port = t.port(t.peer(nic))
            if port.vlans and all(u for _p, u in port.vlans.values()):
                assert tag is None


@pytest.mark.parametrize("name", scenario_names("vlan-"))
def test_shipped_vlan_scenarios_load_and_round_trip(name):
    t = Topology.from_dict(scenario_dict(name))
    assert Topology.from_dict(t.to_dict()) == t
    assert any(b.vlan_filtering for b in t.bridges) or any(h.vlan_devices for h in t.hosts)


def test_the_seed_figure_keeps_each_vlan_to_itself():
    r = simulate(scenario_dict("vlan-seed-two-switches"))
    assert r.receivers[:3] == [("b1:eth0",), ("b2:eth0",), ("b3:eth0",)]
    assert all(tag is None for tags in r.tags for tag in tags.values())
    assert r.fdb["sw2"]["52:54:00:00:01:02 vlan 2"] == "trunk2"


def test_native_vlan_mismatch_leaks_and_the_steps_say_why():
    r = simulate(scenario_dict("vlan-native-mismatch"))
    assert r.receivers == [("b3:eth0",), ()]
    floods = [e.detail for e in r.events if e.action == "flood"]
    assert floods == ["broadcast in VLAN 1: to trunk1", "broadcast in VLAN 3: to q3",
                      "broadcast in VLAN 1: to no port"]


def test_a_wrong_tag_on_an_access_port_is_dropped_and_says_so():
    r = simulate(scenario_dict("vlan-tags-on-an-access-port"))
    assert r.receivers == [(), ("pc2:eth0",), ("pc2:eth0",)]
    [drop] = [e.detail for e in r.events if e.action == "drop"]
    assert drop == "tagged 20, and port p1 is not in VLAN 20 (its VLANs: 10)"


SEED_HOSTS = scenario_dict("vlan-seed-host-design")


def with_host(change):
    data = {**SEED_HOSTS, "hosts": [dict(h) for h in SEED_HOSTS["hosts"]]}
    data["hosts"][0] = {**data["hosts"][0], **change}
    return data


@pytest.mark.parametrize(("change", "rule"), [
    ({"vlan_devices": [{"name": "eth0.10", "parent": "eth9", "id": 10}]},
     "eth0.10's parent 'eth9' is not one of its NICs"),
    ({"vlan_devices": [{"name": "eth0.10", "parent": "eth0", "id": 10},
                       {"name": "ten", "parent": "eth0", "id": 10}]},
     "already has a sub-device for VLAN 10; Linux allows one per VLAN ID"),
    ({"vlan_devices": [{"name": "eth0.4095", "parent": "eth0", "id": 4095}]},
     "4095 is reserved; usable IDs are 1-4094"),
    ({"vlan_devices": [{"name": "eth0.x", "parent": "eth0"}]}, "each VLAN sub-device is"),
])
def test_sub_devices_that_break_a_rule(change, rule):
    with pytest.raises(ScenarioError, match=rule):
        Topology.from_dict(with_host(change))


def test_a_bridge_in_a_host_that_does_not_exist_is_refused():
    data = {**SEED_HOSTS, "bridges": [dict(b) for b in SEED_HOSTS["bridges"]]}
    data["bridges"][0]["host"] = "nowhere"
    with pytest.raises(ScenarioError, match="lives in host 'nowhere', which does not exist"):
        Topology.from_dict(data)


def test_the_seed_host_design_tags_between_hosts_and_isolates_vlans():
    r = simulate(SEED_HOSTS)
    assert r.receivers[0] == ("b10:eth0", "kvmB:eth0")
    assert r.tags[0] == {"kvmB:eth0": 10, "b10:eth0": None}     # tagged on the wire only
    assert r.receivers[2] == ("kvmA:eth0",)          # VLAN 20: no sub-device on host A
    assert "b20:eth0" not in r.receivers[3]
    steps = [(e.action, e.detail) for e in r.events if e.frame == 0]
    assert ("tag", "VLAN 10, out of kvmA:eth0") in steps
    assert any(a == "untag" and "brvlan10b:eth0.10" in d for a, d in steps)


def test_a_vlan_0_sub_device_takes_priority_tagged_frames_and_sends_them():
    # the kernel accepts `ip link add link eth0 name eth0.0 type vlan id 0`; only a bridge
    # port's VLANs refuse 0
    data = {"hosts": [{"name": "kvm", "nics": ["eth0"],
                       "vlan_devices": [{"name": "eth0.0", "parent": "eth0", "id": 0}]},
                      {"name": "g", "nics": ["eth0"]}, {"name": "lan", "nics": ["eth0"]}],
            "bridges": [{"name": "br0", "host": "kvm", "ports": ["eth0.0", "vnet0"]}],
            "links": [["kvm:eth0", "lan:eth0"], ["g:eth0", "br0:vnet0"]],
            "frames": [{"from": "lan:eth0", "dst": "ff:ff:ff:ff:ff:ff", "vlan": 0},
                       {"from": "lan:eth0", "dst": "ff:ff:ff:ff:ff:ff"},
                       {"from": "g:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]}
    r = simulate(data)
    assert r.receivers == [("g:eth0", "kvm:eth0"), ("kvm:eth0",), ("lan:eth0",)]
    assert r.tags[0] == {"kvm:eth0": 0, "g:eth0": None}      # untagged by eth0.0
    assert r.tags[2] == {"lan:eth0": 0}                        # out of eth0.0: tagged 0
    with pytest.raises(ScenarioError, match="VLAN ID 0 means"):
        Topology.from_dict({**data, "bridges": [{"name": "br0", "host": "kvm",
                                                 "vlan_filtering": True,
                                                 "ports": [{"name": "vnet0", "access": 0}]}]})


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_random_kvm_hosts_with_sub_devices_are_valid_topologies(seed, vlans):
    t = random_topology(seed, vlans=vlans, sub_devices=True)
    r = simulate(t)
    assert len(r.receivers) == len(t.frames)
    for h in t.hosts:
        assert all(0 <= vid <= 3 for _parent, vid in h.vlan_devices.values())
    assert random_topology(seed, vlans=vlans) == random_topology(seed, vlans=vlans,
                                                                 sub_devices=False)
