"""libvirt's network modes, dnsmasq's leases and NAT, as models over a network's XML."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.network.virtnet import Dnsmasq, Nat, VirtualNetwork, dnsmasq_hash

XML = """<network>
  <name>lab</name>
  <forward mode='{mode}'/>
  <bridge name='virbr9'/>
  <ip address='10.9.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.9.0.{start}' end='10.9.0.{end}'/>
      <host mac='52:54:00:aa:00:01' name='fixed' ip='10.9.0.50'/>
    </dhcp>
  </ip>
</network>"""


def network(mode="nat", start=2, end=254):
    xml = XML.format(mode=mode, start=start, end=end)
    if mode == "isolated":
        xml = xml.replace("<forward mode='isolated'/>", "")
    return VirtualNetwork.from_xml(xml)


def test_the_xml_says_mode_bridge_address_range_and_fixed_hosts():
    net = network()
    assert (net.name, net.mode, net.bridge) == ("lab", "nat", "virbr9")
    assert net.address == ipaddress.IPv4Interface("10.9.0.1/24") and net.dhcp_size == 253
    assert net.static_hosts["52:54:00:aa:00:01"] == (ipaddress.IPv4Address("10.9.0.50"),
                                                     "fixed")
    assert network("isolated").mode == "isolated"
    with pytest.raises(ScenarioError, match="root element is <domain>"):
        VirtualNetwork.from_xml("<domain/>")


macs = st.lists(st.integers(0, 2**24 - 1), min_size=1, max_size=40, unique=True).map(
    lambda ns: [f"52:54:00:{n >> 16:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}" for n in ns])


@settings(max_examples=200)
@given(macs)
def test_leases_are_distinct_in_range_and_never_the_hosts_address(addresses):
    net = network(start=2, end=41)
    server = Dnsmasq(net)
    leases = [server.request(m) for m in addresses]
    ips = [ipaddress.IPv4Address(le.ip) for le in leases]
    assert len(set(ips)) == len(ips)
    assert all(ip == ipaddress.IPv4Address("10.9.0.50") or
               net.dhcp_start <= ip <= net.dhcp_end for ip in ips)
    assert net.address.ip not in ips
    # asking again gives the same address
    assert [server.request(m).ip for m in addresses] == [le.ip for le in leases]


def test_a_fixed_host_gets_its_address_and_a_full_range_says_so():
    server = Dnsmasq(network(start=2, end=3))
    assert server.request("52:54:00:aa:00:01").ip == "10.9.0.50"
    server.request("52:54:00:00:00:01")
    server.request("52:54:00:00:00:02")
    with pytest.raises(ScenarioError, match=r"no address left in 10\.9\.0\.2-10\.9\.0\.3"):
        server.request("52:54:00:00:00:03")
    assert server.log[0].startswith("DHCPDISCOVER") and "DHCPACK" in server.log[3]


def test_an_expired_lease_frees_its_address():
    server = Dnsmasq(network(start=2, end=2), lease_s=10)
    assert server.request("52:54:00:00:00:01", now_s=0).ip == "10.9.0.2"
    with pytest.raises(ScenarioError):
        server.request("52:54:00:00:00:02", now_s=5)
    assert server.request("52:54:00:00:00:02", now_s=11).ip == "10.9.0.2"


def test_the_search_starts_at_the_hash():
    net = network()
    lease = Dnsmasq(net).request("52:54:00:12:34:56")
    assert int(ipaddress.IPv4Address(lease.ip)) - int(net.dhcp_start) == \
        dnsmasq_hash("52:54:00:12:34:56") % net.dhcp_size


def test_nat_masquerades_out_and_lets_only_replies_in():
    nat = Nat(network())
    out = nat.outbound("tcp", "10.9.0.7", 40000, "198.51.100.7", 443)
    assert out.action == "masquerade" and out.translated == ("203.0.113.1", 40000,
                                                             "198.51.100.7", 443)
    # a second guest with the same source port to the same server gets another port
    other = nat.outbound("tcp", "10.9.0.8", 40000, "198.51.100.7", 443)
    assert other.translated[1] != 40000
    back = nat.inbound("tcp", "198.51.100.7", 443, "203.0.113.1", other.translated[1])
    assert back.action == "de-masquerade" and back.translated[2:] == ("10.9.0.8", 40000)
    assert nat.inbound("tcp", "198.51.100.9", 22, "203.0.113.1", 2222).action == "dropped"
    # a privileged source port is mapped into 1024-65535
    assert nat.outbound("udp", "10.9.0.7", 123, "198.51.100.1", 123).translated[1] >= 1024


@pytest.mark.parametrize(("mode", "dst", "action"), [
    ("nat", "10.9.0.20", "switched"), ("nat", "224.0.0.251", "routed"),
    ("route", "198.51.100.7", "routed"), ("open", "198.51.100.7", "routed"),
    ("isolated", "198.51.100.7", "dropped"), ("isolated", "10.9.0.1", "switched"),
    ("bridge", "198.51.100.7", "bridged"),
])
def test_each_mode_does_what_its_name_says(mode, dst, action):
    assert Nat(network(mode)).outbound("udp", "10.9.0.7", 5000, dst, 53).action == action


def test_a_network_without_dhcp_has_no_server():
    xml = XML.format(mode="nat", start=2, end=254).replace(
        "<range start='10.9.0.2' end='10.9.0.254'/>", "")
    with pytest.raises(ScenarioError, match="no DHCP range"):
        Dnsmasq(VirtualNetwork.from_xml(xml))


def test_port_groups_and_their_vlans_are_read_and_explained():
    xml = """<network><name>ovs</name><forward mode='bridge'/><bridge name='ovsbr0'/>
      <virtualport type='openvswitch'/>
      <portgroup name='office' default='yes'><vlan><tag id='10'/></vlan></portgroup>
      <portgroup name='lab'><vlan trunk='yes'><tag id='20'/><tag id='30'/>
        <tag id='1' nativeMode='untagged'/></vlan></portgroup>
      <portgroup name='plain'/></network>"""
    net = VirtualNetwork.from_xml(xml)
    assert net.portgroups["office"] == (True, {10: (True, True)})
    assert net.portgroups["lab"] == (False, {1: (True, True), 20: (False, False),
                                             30: (False, False)})
    text = net.explain_portgroups()
    assert "port group 'office' (the default): an access port of VLAN 10" in text
    assert "port group 'lab': a trunk: VLAN 1 untagged (native" in text
    assert "'plain': no VLAN settings" in text


def test_a_libvirt_tag_of_4095_is_refused_with_the_rule():
    xml = ("<network><name>x</name><portgroup name='p'><vlan><tag id='4095'/></vlan>"
           "</portgroup></network>")
    with pytest.raises(ScenarioError, match="4095 is reserved; usable IDs are 1-4094"):
        VirtualNetwork.from_xml(xml)
