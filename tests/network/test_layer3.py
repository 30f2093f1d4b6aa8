"""Layer 3 between VLANs: hosts with addresses and gateways, a router on a stick."""

import copy
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.data import scenario_dict
from kvmlab.errors import ScenarioError
from kvmlab.network import NetworkResult, compare, load_scenario, recorded_result, simulate
from kvmlab.network.layer3 import interfaces, route
from kvmlab.network.twin import ARP_END, MAGIC, Part, guest_script, ipv4_packet, read_report

NAME = "vlan-router-on-a-stick"
ROUTER_MAC = "52:54:00:00:0a:01"
VLAN_OF = {"a": 10, "a2": 10, "b": 20, "b2": 20}
ADDRESS = {"a": "10.0.10.2", "a2": "10.0.10.3", "b": "10.0.20.2", "b2": "10.0.20.3"}


def _with(frames):
    data = copy.deepcopy(scenario_dict(NAME))
    data["frames"] = frames
    return data


def test_arp_stays_inside_its_vlan_and_the_router_answers_from_its_sub_interface():
    r = simulate(NAME)
    assert r.receivers[0] == ("a2:eth0", "router:eth0") and r.tags[0]["router:eth0"] == 10
    assert r.receivers[1] == ("b2:eth0", "router:eth0") and r.tags[1]["router:eth0"] == 20
    assert r.repliers[0] == r.repliers[1] == "router:eth0"      # eth0.10 has eth0's MAC
    assert r.replies[0] == ("a:eth0",) and r.replies[1] == ("b:eth0",)


def test_a_packet_crosses_only_through_the_router_with_a_lower_ttl_and_new_macs():
    r = simulate(NAME)
    t = r.topology
    assert r.packets[2] == {"router:eth0": f"TTL 64, {t.nic('a:eth0').mac} > {ROUTER_MAC}",
                            "b:eth0": f"TTL 63, {ROUTER_MAC} > {t.nic('b:eth0').mac}"}
    assert r.packets[5] == {"a2:eth0": f"TTL 64, {t.nic('a:eth0').mac} > "
                                       f"{t.nic('a2:eth0').mac}"}      # same subnet: direct
    assert r.receivers[7] == ("router:eth0",)                      # TTL 1 dies at the router
    assert "TTL 1 would reach 0" in r.steps()
    # the router asked for b2 by ARP in VLAN 20 only, before forwarding frame 3
    asked = [e for e in r.events if e.frame == 3 and "who has 10.0.20.3" in e.detail
             and e.action == "receive"]
    assert sorted(e.where for e in asked) == ["b2:eth0", "b:eth0"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(VLAN_OF)), st.sampled_from(sorted(VLAN_OF))),
                min_size=1, max_size=6))
def test_every_packet_reaches_its_host_and_no_host_of_the_other_vlan(pairs):
    frames = [{"from": f"{s}:eth0", "to": ADDRESS[d]} for s, d in pairs if s != d]
    if not frames:
        return
    r = simulate(_with(frames))
    for (s, d), got, copies in zip([p for p in pairs if p[0] != p[1]], r.receivers, r.packets,
                                   strict=True):
        assert f"{d}:eth0" in got
        crosses = VLAN_OF[s] != VLAN_OF[d]
        assert copies[f"{d}:eth0"].startswith("TTL 63" if crosses else "TTL 64")
        assert (ROUTER_MAC in copies[f"{d}:eth0"]) == crosses
        # hosts of the sender's VLAN may see a flooded copy; the other VLAN only the target
        others = {f"{h}:eth0" for h in VLAN_OF if VLAN_OF[h] != VLAN_OF[s] and h != d}
        assert not others & set(got)


def test_routes_and_interfaces():
    t = load_scenario(NAME)
    assert [i.name for i in interfaces(t, "router")] == ["eth0.10", "eth0.20"]
    assert route(t, "router", "10.0.10.3").name == "eth0.10"
    assert route(t, "router", "192.168.1.1") is None


def _broken(change):
    data = copy.deepcopy(scenario_dict(NAME))
    change(data)
    return data


def _host(data, name):
    return next(h for h in data["hosts"] if h["name"] == name)


@pytest.mark.parametrize(("change", "rule"), [
    (lambda d: _host(d, "a").update(gateway="10.0.20.1"), "not in the host's subnet"),
    (lambda d: _host(d, "a").update(gateway="10.0.10.2"), "its own address"),
    (lambda d: _host(d, "a").update(gateway="10.0.10.3"), "no router's address"),
    (lambda d: _host(d, "router")["vlan_devices"].pop(1), "no interface in VLAN 20"),
    (lambda d: _host(d, "router")["vlan_devices"][1].pop("ip"), "no interface in VLAN 20"),
    (lambda d: _host(d, "a").update(gateway="10.0.10.300"), "gateway is an IPv4 address"),
    (lambda d: _host(d, "a").pop("gateway") and d["frames"].__setitem__(
        slice(None), [{"from": "a:eth0", "to": "10.0.20.2"}]), "has no gateway"),
    (lambda d: d["frames"].__setitem__(slice(None), [{"from": "a:eth0", "to": "10.0.10.9"}]),
     "no interface has 10.0.10.9"),
    (lambda d: d["frames"].__setitem__(slice(None), [{"from": "a:eth0", "to": "10.0.20.2",
                                                      "ttl": 0}]), "ttl is a whole number"),
    (lambda d: d["frames"].__setitem__(slice(None), [{"from": "a:eth0", "dst": ROUTER_MAC,
                                                      "ttl": 5}]), "ttl belongs to an IPv4"),
    (lambda d: _host(d, "router")["vlan_devices"][0].update(ip="10.0.10.2/24"),
     "two NICs have the address 10.0.10.2"),
])
def test_layer3_rules(change, rule):
    with pytest.raises(ScenarioError, match=rule):
        load_scenario(_broken(change))


def test_a_router_with_one_interface_is_refused():
    def one(d):
        r = _host(d, "router")
        r["vlan_devices"] = r["vlan_devices"][:1]
        next(p for p in d["bridges"][0]["ports"] if p["name"] == "pr")["trunk"] = [10]
        for h in ("b", "b2"):
            _host(d, h).pop("gateway")
        d["frames"] = []
    with pytest.raises(ScenarioError, match="two with an address"):
        load_scenario(_broken(one))


def test_the_scenario_round_trips():
    t = load_scenario(NAME)
    assert load_scenario(t.to_dict()) == t


def test_the_packet_on_the_wire_and_read_back():
    p = ipv4_packet("10.0.10.2", "10.0.20.2", 7, 300)
    assert ipaddress.IPv4Address(p[12:16]) == ipaddress.IPv4Address("10.0.10.2") and p[8] == 7
    frame = bytes.fromhex("5254000a0001" "5254000a0002" "0800") + p
    assert frame[ARP_END:ARP_END + 6] == MAGIC
    lines = [f"RX 1000 h0_1 eth0 - {frame.hex()}", "TX 300000"]
    seen = read_report(lines, 301)
    assert seen.received[300] == {"h0_1 eth0": None}
    assert seen.packets[300] == {"h0_1 eth0": "TTL 7, 52:54:00:0a:00:02 > 52:54:00:0a:00:01"}


def test_the_guest_gives_addresses_gateways_and_forwarding():
    script = guest_script([Part(0, load_scenario(NAME), 0)])
    assert "addr add 10.0.20.1/24 dev eth0.20" in script
    assert "route add default via 10.0.10.1" in script
    assert script.count("ip_forward") == 1


@pytest.mark.parametrize("name", ["vlan-router-on-a-stick", "vlan-seed-two-switches",
                                  "net-seed-bridge"])
def test_the_recorded_real_runs_agree_with_the_model(name):
    real = recorded_result(name)
    assert real.source == "measured" and real.provenance["guest_kernel"] != "unknown"
    assert real.provenance["recorded_at"] and real.provenance["method"]
    assert compare(simulate(real.topology), real).agrees


def test_a_recording_with_a_different_receiver_disagrees():
    real = recorded_result("vlan-router-on-a-stick")
    data = real.to_dict()
    data["packets"][2]["b:eth0"] = data["packets"][2]["b:eth0"].replace("TTL 63", "TTL 64")
    assert compare(simulate(real.topology), NetworkResult.from_dict(data)
                   ).differing_frames == [2]
