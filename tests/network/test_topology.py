"""Topologies as data: what is accepted, and the rule named when something is not."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.data import scenario_dict, scenario_names
from kvmlab.errors import ScenarioError
from kvmlab.network import Topology

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"


def base(**change):
    data = {"hosts": [{"name": "a", "nics": [{"name": "eth0", "mac": MAC1}]},
                      {"name": "b", "nics": [{"name": "eth0", "mac": MAC2}]}],
            "bridges": [{"name": "br0", "ports": ["p1", "p2"]}],
            "links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"]],
            "frames": [{"from": "a:eth0", "dst": "ff:ff:ff:ff:ff:ff"}]}
    data.update(change)
    return data


@pytest.mark.parametrize(("change", "rule"), [
    ({"links": [["a:eth0", "br0:p9"], ["b:eth0", "br0:p2"]]}, "unknown interface 'br0:p9'"),
    ({"links": [["a:eth0", "br0:p1"], ["b:eth0", "br0:p1"]]}, "'br0:p1' is in two links"),
    ({"links": [["a:eth0", "br0:p1"]]}, "is in no link"),
    ({"bridges": [{"name": "br0", "ports": ["p1", "p2"]}, {"name": "br1", "ports": ["p2"]}]},
     "port 'p2' is plugged into two bridges"),
    ({"hosts": [{"name": "a", "nics": [{"name": "eth0", "mac": "52:54:00:00:00"}]}]},
     "malformed MAC address '52:54:00:00:00'"),
    ({"hosts": [{"name": "a", "nics": [{"name": "eth0", "mac": "01:00:5e:00:00:01"}]}]},
     "group \\(multicast\\) address"),
    ({"hosts": [{"name": "a/b", "nics": ["eth0"]}]}, "not a valid interface name here"),
    ({"hosts": [{"name": "a", "nics": ["eth 0"]}]}, "not a valid interface name here"),
    ({"bridges": [{"name": "a-very-long-bridge", "ports": []}]},
     "1-15 letters, digits, '_', '.' or '-'"),
    ({"hosts": [{"name": "a", "nics": [{"name": "eth0", "mac": MAC1}]},
                {"name": "b", "nics": [{"name": "eth0", "mac": MAC1}]}]},
     "two NICs have the MAC address"),
    ({"hosts": [{"name": "br0", "nics": []}]}, "two hosts or bridges are called 'br0'"),
    ({"bridges": [{"name": "br0", "ageing_s": -1, "ports": ["p1", "p2"]}]}, "ageing_s"),
    ({"bridges": [{"name": "br0", "ageing_s": 0.001, "ports": ["p1", "p2"]}]},
     "hundredths of a second"),
    ({"bridges": [{"name": "br0", "ports": [{"name": "p1", "hairpn": True}, "p2"]}]},
     "unknown key 'hairpn' in port 'br0:p1'; did you mean 'hairpin'?"),
    ({"frames": [{"from": "br0:p1", "dst": MAC2}]}, "not from a bridge port"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "src": "ff:ff:ff:ff:ff:ff"}]},
     "source .* is a group address"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "at_s": 1},
                 {"from": "a:eth0", "dst": MAC2, "at_s": 0.5}]}, "not before the frame before"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "ethertype": 0x8100}]}, "VLAN tag"),
    ({"wires": []}, "unknown key 'wires' in the topology"),
    ({"hosts": [{"name": "a", "nic": ["eth0"]}]}, "unknown key 'nic' in host 'a'; did you mean "
                                                  "'nics'"),
    ({"hosts": [{"name": "a", "nics": [{"name": "eth0", "mack": "02:00:00:00:00:01"}]}]},
     "unknown key 'mack' in NIC 'a:eth0'; did you mean 'mac'"),
    ({"hosts": [{"name": "a", "nics": [{"name": "eth0", "IP": "10.0.0.1/24"}]}]},
     "unknown key 'IP' in NIC 'a:eth0'; did you mean 'ip'"),
    ({"bridges": [{"name": "br0", "ageing": 10}]}, "did you mean 'ageing_s'"),
    ({"bridges": [{"name": "br0", "vlan_filter": True}]}, "did you mean 'vlan_filtering'"),
    ({"bridges": [{"name": "br0", "vlan_filtering": "true"}]}, "must be true or false"),
    ({"hosts": [{"name": None}]}, "host name None is not a valid"),
    ({"hosts": [{"name": "a", "nics": ["eth0"],
                 "vlan_devices": [{"name": "e.10", "parent": ["eth0"], "id": 10}]}]},
     "is not one of its NICs"),
    ({"bridges": [{"name": "br0", "vlan_filtering": True,
                   "ports": [{"name": "p1", "vlans": [{"id": 10, "pvid": "false"}]}, "p2"]}]},
     "pvid must be true or false \\(a JSON boolean\\), not 'false'"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "at_s": float("nan")}]}, "at_s is seconds"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "at_s": float("inf")}]}, "at_s is seconds"),
    ({"frames": [{"from": "a:eth0", "dst": MAC2, "at_s": 1e9}]}, "at most 3600"),
    ({"frames": [{"from": "a:eth0", "dts": MAC2}]}, "unknown key 'dts' in frame 0; did you "
                                                    "mean 'dst'"),
])
def test_bad_input_names_the_rule(change, rule):
    with pytest.raises(ScenarioError, match=rule):
        Topology.from_dict(base(**change))


def test_a_loop_between_bridges_is_refused():
    data = base(bridges=[{"name": "br0", "ports": ["p1", "p2", "u1", "u2"]},
                         {"name": "br1", "ports": ["v1", "v2"]}],
                links=[["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"], ["br0:u1", "br1:v1"],
                       ["br0:u2", "br1:v2"]])
    with pytest.raises(ScenarioError, match="closes a loop between bridges"):
        Topology.from_dict(data)


def test_hairpin_at_both_ends_of_a_bridge_link_is_refused():
    data = base(bridges=[{"name": "br0", "ports": ["p1", "p2", {"name": "u", "hairpin": True}]},
                         {"name": "br1", "ports": [{"name": "v", "hairpin": True}]}],
                links=[["a:eth0", "br0:p1"], ["b:eth0", "br0:p2"], ["br0:u", "br1:v"]])
    with pytest.raises(ScenarioError, match="both ends"):
        Topology.from_dict(data)


@pytest.mark.parametrize("name", scenario_names("net-"))
def test_shipped_topologies_load_and_round_trip(name):
    t = Topology.from_dict(scenario_dict(name))
    assert t.description and t.frames
    assert Topology.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_at_least_twelve_shipped_topologies():
    assert len(scenario_names("net-")) >= 12


def test_graph_has_hosts_bridges_and_links():
    g = Topology.from_dict(base()).graph()
    assert dict(g.nodes(data="kind")) == {"a": "host", "b": "host", "br0": "bridge"}
    assert g.number_of_edges() == 2


@given(st.text(min_size=1, max_size=20))
def test_every_accepted_name_is_one_plain_word_for_the_guest_shell(name):
    import shlex

    from kvmlab.network.scenario import check_ifname

    try:
        accepted = check_ifname(name, "NIC")
    except ScenarioError:
        return
    assert shlex.quote(accepted) == accepted and len(accepted) <= 15
    assert not accepted.startswith(("-", "."))


def test_a_trailing_newline_is_not_part_of_a_valid_name_or_mac():
    from kvmlab.network.frames import parse_mac
    from kvmlab.network.natscenario import load_nat_scenario
    from kvmlab.network.scenario import check_ifname

    assert check_ifname("eth0", "NIC") == "eth0"
    with pytest.raises(ScenarioError, match="not a valid interface name"):
        check_ifname("eth0\n", "NIC")
    assert parse_mac("52:54:00:00:00:0A") == "52:54:00:00:00:0a"
    with pytest.raises(ScenarioError, match="malformed MAC"):
        parse_mac("52:54:00:00:00:0a\n")
    good = scenario_dict("nat-default-network")
    assert load_nat_scenario(good).guests[0].name == good["guests"][0]["name"]
    bad = json.loads(json.dumps(good))
    bad["guests"][0]["name"] += "\n"
    with pytest.raises(ScenarioError, match=r"name .* must be"):
        load_nat_scenario(bad)
