"""The NAT scenario (libvirt's default network): its rules, the lease and masquerading
model, reading the guest's report, and the comparison."""

import ipaddress
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab import network
from kvmlab.cli import main
from kvmlab.data import scenario_dict
from kvmlab.errors import ScenarioError
from kvmlab.network.natmodel import simulate_nat
from kvmlab.network.natresult import NatResult, compare_nat
from kvmlab.network.natscenario import DEFAULT_XML, NatScenario
from kvmlab.network.nattwin import (
    dnsmasq_conf,
    nat_guest_script,
    nft_rules,
    parse_conntrack,
    read_nat_report,
)
from kvmlab.network.virtnet import NAT_PORTS, Dnsmasq, VirtualNetwork, dnsmasq_hash

NAME = "nat-default-network"


def scenario(**over):
    data = {"network": "default",
            "guests": [{"name": "vm1", "mac": "52:54:00:00:00:01"},
                       {"name": "vm2", "mac": "52:54:00:00:00:02"}],
            "connections": [{"from": "vm1", "sport": 40000, "dport": 5000},
                            {"from": "vm2", "sport": 40000, "dport": 5000}]}
    data.update(over)
    return data


def test_the_shipped_scenario_has_four_macs_five_guests_and_a_shared_mac():
    s = network.load_scenario(NAME)
    assert isinstance(s, NatScenario) and s.name == NAME
    macs = [g.mac for g in s.guests]
    assert len(set(macs)) >= 4 and len(macs) > len(set(macs))
    assert NatScenario.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_the_packaged_default_xml_is_libvirts_default_network():
    net = VirtualNetwork.from_xml(DEFAULT_XML)
    assert (net.mode, net.bridge, str(net.address)) == ("nat", "virbr0", "192.168.122.1/24")
    assert [(str(a), str(b)) for a, b in net.dhcp_ranges] == [("192.168.122.2",
                                                               "192.168.122.254")]
    assert net.stp and net.delay_s == 0.0


def test_the_model_gives_a_shared_mac_the_same_address():
    r = network.simulate(NAME)
    assert isinstance(r, NatResult)
    assert r.leases["vm3"] == r.leases["vm5"]
    assert len(r.lease_file) == len({g.mac for g in r.scenario.guests})


def test_the_model_keeps_a_free_port_and_moves_a_taken_or_low_one():
    r = simulate_nat(scenario(connections=[
        {"from": "vm1", "sport": 40000, "dport": 5000},
        {"from": "vm2", "sport": 40000, "dport": 5000},
        {"from": "vm2", "sport": 40000, "dport": 5001},
        {"from": "vm1", "sport": 80, "dport": 5000}]))
    assert [t.kept for t in r.translations] == [True, False, True, False]
    assert {t.out_ip for t in r.translations} == {"203.0.113.1"}
    low, high = NAT_PORTS
    assert all(low <= t.out_port <= high for t in r.translations)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**24 - 1), min_size=1, max_size=30))
def test_dnsmasq_leases_distinct_macs_distinct_addresses_in_the_range(tails):
    net = VirtualNetwork.from_xml(DEFAULT_XML)
    server = Dnsmasq(net)
    got = {}
    for t in tails:
        mac = "52:54:00:" + ":".join(f"{(t >> s) & 0xFF:02x}" for s in (16, 8, 0))
        got[mac] = ipaddress.IPv4Address(server.request(mac).ip)
    assert len(set(got.values())) == len(got)
    assert all(net.dhcp_start <= ip <= net.dhcp_end and ip != net.address.ip
               for ip in got.values())
    first = next(iter(got))       # the first MAC always gets the address its hash points at
    assert got[first] == net.dhcp_start + dnsmasq_hash(first) % net.dhcp_size


def test_a_class_c_range_never_leases_dot_0_or_dot_255():
    xml = DEFAULT_XML.replace("netmask='255.255.255.0'", "prefix='23'").replace(
        "192.168.122.254", "192.168.123.1")
    net = VirtualNetwork.from_xml(xml)
    mac = next(m for m in (f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(5000))
               if net.dhcp_start + dnsmasq_hash(m) % net.dhcp_size
               == ipaddress.IPv4Address("192.168.122.255"))
    assert Dnsmasq(net).request(mac).ip == "192.168.123.1"     # .255 and .0 passed over


@pytest.mark.parametrize(("ranges", "rule"), [
    ([("192.168.122.2", "192.168.123.10")], "not inside the network"),
    ([("10.0.0.2", "10.0.0.9")], "not inside the network"),
    ([("192.168.122.2", "192.168.122.100"), ("192.168.122.50", "192.168.122.200")],
     "overlap"),
    ([("192.168.122.200", "192.168.122.100")], "start is after its end"),
    ([("192.168.122.0", "192.168.122.10")], "own address"),
])
def test_bad_dhcp_ranges_name_the_rule(ranges, rule):
    body = "".join(f"<range start='{a}' end='{b}'/>" for a, b in ranges)
    xml = DEFAULT_XML.replace(
        "<range start='192.168.122.2' end='192.168.122.254'/>", body)
    with pytest.raises(ScenarioError, match=rule):
        VirtualNetwork.from_xml(xml)
    with pytest.raises(ScenarioError, match=rule):
        network.load_scenario(scenario(network=xml))


@pytest.mark.parametrize(("over", "rule"), [
    ({"guests": []}, "at least one guest"),
    ({"guests": [{"name": "VM 1", "mac": "52:54:00:00:00:01"}]}, "lower-case"),
    ({"guests": [{"name": "vm1", "mac": "01:00:5e:00:00:01"}]}, "group"),
    ({"guests": [{"name": "outside", "mac": "52:54:00:00:00:01"}]}, "server's namespace"),
    ({"connections": [{"from": "vm9", "sport": 1, "dport": 2}]}, "not a guest"),
    ({"connections": [{"from": "vm1", "sport": 0, "dport": 2}]}, "port number"),
    ({"connections": [{"from": "vm1", "sport": 5, "dport": 2, "proto": "tcp"}]}, "UDP"),
    ({"connections": [{"from": "vm1", "sport": 5, "dport": 2}] * 2}, "one flow"),
    ({"network": DEFAULT_XML.replace("<forward/>", "")}, "needs a NAT network"),
    ({"network": DEFAULT_XML.replace("virbr0", "a;reboot")}, "valid interface name"),
    ({"network": "somewhere"}, "default"),
    ({"netwrok": "default"}, "netwrok"),
])
def test_bad_nat_scenarios_name_the_rule(over, rule):
    with pytest.raises(ScenarioError, match=rule):
        NatScenario.from_dict(scenario(**over))


def test_dnsmasq_conf_and_nft_rules_follow_the_xml():
    s = network.load_scenario(NAME)
    conf = dnsmasq_conf(s.network)
    assert "dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0" in conf
    assert "interface=virbr0" in conf and "dhcp-lease-max=253" in conf
    rules = nft_rules(s.network)
    assert "ip saddr 192.168.122.0/24 ip daddr 224.0.0.0/24 return" in rules
    script = nat_guest_script(s)
    assert script.index("udhcpc") > script.index("dnsmasq --conf-file")
    assert [line.split()[3] for line in script.splitlines() if "udhcpc -i" in line] == [
        g.name for g in s.guests]


def test_parse_conntrack_reads_both_directions():
    line = ("ipv4 2 udp 17 29 src=192.168.122.76 dst=203.0.113.2 sport=40000 dport=5000 "
            "[UNREPLIED] src=203.0.113.2 dst=203.0.113.1 sport=5000 dport=2415 mark=0")
    e = parse_conntrack(line)
    assert (e["src"], e["dport"], e["reply_src"], e["reply_dport"]) == (
        "192.168.122.76", "5000", "203.0.113.2", "2415")
    assert parse_conntrack("ipv6 10 udp 17") is None


def test_reading_a_guest_report_and_comparing():
    s = network.load_scenario(scenario())
    lines = ["KVMLAB-NAT LEASE vm1 192.168.122.27", "KVMLAB-NAT LEASE vm2 192.168.122.28",
             "KVMLAB-NAT LEASES", "1 52:54:00:00:00:01 192.168.122.27 * 01:52:54:00:00:00:01",
             "KVMLAB-NAT CONNTRACK",
             "ipv4 2 udp 17 29 src=192.168.122.27 dst=203.0.113.2 sport=40000 dport=5000 "
             "[UNREPLIED] src=203.0.113.2 dst=203.0.113.1 sport=5000 dport=40000 mark=0",
             "ipv4 2 udp 17 29 src=192.168.122.28 dst=203.0.113.2 sport=40000 dport=5000 "
             "[UNREPLIED] src=203.0.113.2 dst=203.0.113.1 sport=5000 dport=31337 mark=0",
             "KVMLAB-NAT SEEN", "SEEN 203.0.113.1 40000 c0", "SEEN 203.0.113.1 31337 c1",
             "KVMLAB-NAT END"]
    real = read_nat_report(s, lines, {})
    assert real.leases == {"vm1": "192.168.122.27", "vm2": "192.168.122.28"}
    assert [t.out_port for t in real.translations] == [40000, 31337]
    c = network.compare(network.simulate(s), real)
    assert c.agrees and c.max_error == 0.0
    kept_wrongly = replace(real, translations=[real.translations[0],
                                               replace(real.translations[1], out_port=40000)])
    assert compare_nat(network.simulate(s), kept_wrongly).max_error == 1.0
    other_lease = replace(real, leases={**real.leases, "vm2": "192.168.122.99"})
    assert not compare_nat(network.simulate(s), other_lease).agrees


def test_the_recorded_real_run_agrees_with_the_model():
    real = network.recorded_result("net-nat-default-network")
    assert real.source == "measured" and "dnsmasq" in real.provenance["dnsmasq"].lower()
    c = network.compare(network.simulate(real.scenario), real)
    assert c.agrees, c.table()
    assert c.plot() is not None


def test_the_cli_compares_with_the_recording(capsys):
    assert main(["network", "compare", NAME, "--recorded", "net-nat-default-network"]) == 0
    assert json.loads(capsys.readouterr().out)["agrees"] is True


def test_a_nat_scenario_runs_alone():
    with pytest.raises(ScenarioError, match="runs alone"):
        network.run_many_on_host([NAME, "net-hub"])
    assert scenario_dict(NAME)["network"] == "default"


def test_a_cached_image_without_the_nat_tools_is_built_again(monkeypatch, tmp_path):
    from kvmlab.host import image

    monkeypatch.setenv("KVMLAB_CACHE_DIR", str(tmp_path))
    (tmp_path / "guest").mkdir()
    for name in ("vmlinuz", "initramfs.gz"):
        (tmp_path / "guest" / name).write_bytes(b"x")
    old = image.GuestImage(tmp_path / "guest" / "vmlinuz", tmp_path / "guest" / "initramfs.gz",
                           "6.1.0-test", "test", "2026-01-01")
    index = tmp_path / "guest" / "current.json"
    index.write_text(json.dumps(old.to_dict()))                    # built before layout 2
    assert image.cached_image() is None
    index.write_text(json.dumps(old.to_dict() | {"contents": image.contents_key()}))
    assert image.cached_image() == old
    assert " ".join(image.NAT_MODULES) in image.insmod_script()
    order = image.NAT_MODULES
    assert order.index("nf_conntrack") < order.index("nf_nat") < order.index("nft_masq")
