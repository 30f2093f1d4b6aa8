"""A KVM host's 8021q sub-devices in bridges of its own: the kernel rules the model follows
(each checked on a real kernel with this very topology, and in the random live test)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.network import load_scenario, simulate
from kvmlab.network.generate import random_topology
from kvmlab.network.twin import Part, setup_batches

K = "52:54:00:00:00:01"
TOPOLOGY = {
    "hosts": [{"name": "kvm", "nics": [{"name": "eth0", "mac": K, "ip": "10.0.0.1/24"}],
               "vlan_devices": [{"name": "eth0.10", "parent": "eth0", "id": 10},
                                {"name": "eth0.0", "parent": "eth0", "id": 0}]},
              {"name": "g10", "nics": [{"name": "eth0", "mac": "52:54:00:00:01:10",
                                        "ip": "10.0.0.10/24"}]},
              {"name": "g0", "nics": [{"name": "eth0", "mac": "52:54:00:00:01:20",
                                       "ip": "10.0.0.20/24"}]},
              {"name": "lan", "nics": [{"name": "eth0", "mac": "52:54:00:00:00:02",
                                        "ip": "10.0.0.2/24"}]}],
    "bridges": [{"name": "kv10", "host": "kvm", "ports": ["eth0.10", "vnet10"]},
                {"name": "kv0", "host": "kvm", "ports": ["eth0.0", "vnet0"]}],
    "links": [["lan:eth0", "kvm:eth0"], ["g10:eth0", "kv10:vnet10"], ["g0:eth0", "kv0:vnet0"]]}


def run(frames):
    return simulate(load_scenario(TOPOLOGY | {"frames": frames}))


def test_a_bridge_takes_its_ports_lowest_mac_and_taps_get_fe():
    t = load_scenario(TOPOLOGY)
    assert t.port_mac("kv10:eth0.10") == K                  # a sub-device: its parent's
    assert t.port_mac("kv10:vnet10") == "fe:54:00:00:01:10"  # libvirt's rule for taps
    assert t.bridge_mac("kv10") == K
    assert t.local_macs("kv10") == {K, "fe:54:00:00:01:10"}
    batch = setup_batches([Part(0, t, 0)])
    assert any("vnet10 netns h0_0 address fe:54:00:00:01:10" in line for line in batch.ip)


def test_the_host_answers_arp_on_its_inner_bridges_with_the_bridges_mac():
    r = run([{"from": "g10:eth0", "arp": "10.0.0.1"},
             {"from": "lan:eth0", "arp": "10.0.0.1", "vlan": 10},
             {"from": "g0:eth0", "arp": "10.0.0.1"},
             {"from": "lan:eth0", "arp": "10.0.0.1"},
             {"from": "g10:eth0", "arp": "10.0.0.20"}])
    assert r.repliers[:4] == ["kvm:eth0"] * 4              # the bridge's MAC is eth0's
    assert r.replies[:4] == [("g10:eth0",), ("lan:eth0",), ("g0:eth0",), ("lan:eth0",)]
    assert r.repliers[4] is None                       # g0 is in the other bridge
    assert "from bridge kv10 itself" in r.steps()


def test_the_parents_mac_is_local_never_learned_never_forwarded():
    r = run([{"from": "g10:eth0", "dst": K},
             {"from": "lan:eth0", "dst": K, "vlan": 10},
             {"from": "g10:eth0", "dst": "ff:ff:ff:ff:ff:ff", "src": K}])
    assert r.receivers == [(), ("kvm:eth0",), ("lan:eth0",)]
    assert K not in r.fdb["kv10"]
    assert "the frame is for the host itself" in r.steps()


def test_a_guests_tagged_frame_leaves_with_two_tags_and_arrives_with_its_own():
    r = run([{"from": "g10:eth0", "dst": "ff:ff:ff:ff:ff:ff", "vlan": 5}])
    assert r.tags[0] == {"lan:eth0": 10}              # outer tag 10 (its own 5 under it)
    back = run([{"from": "lan:eth0", "dst": "ff:ff:ff:ff:ff:ff", "vlan": 0}])
    assert back.tags[0] == {"kvm:eth0": 0, "g0:eth0": None}    # VLAN 0's sub-device untags


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_no_bridge_ever_learns_one_of_its_own_addresses(seed, vlans):
    t = random_topology(seed, vlans=vlans, sub_devices=True)
    r = simulate(t)
    for b in t.bridges:
        learned = {key.split()[0] for key in r.fdb[b.name]}
        assert not learned & t.local_macs(b.name)
