"""The read-only host tour, checked against libvirt's daemonless test driver.

``test:///default`` is shared by every connection of the process, so these tests only read
it. Anything that needs a changed host (a shut-off guest, an inactive pool, volumes) uses
a private fake host loaded from a node XML file in ``tmp_path``: each connection to such a
URI gets its own copy, and nothing is written back to the file.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.errors import HostUnavailable, KvmlabError, ScenarioError
from kvmlab.host.connect import connect
from kvmlab.host.tour import (
    VIRSH_EQUIVALENT,
    CapabilitiesSummary,
    DomainInfo,
    GuestOffer,
    NetworkInfo,
    NodeInfo,
    PoolInfo,
    Table,
    VolumeInfo,
    as_table,
    capabilities_summary,
    human_bytes,
    list_domains,
    list_networks,
    list_pools,
    node_info,
    parse_capabilities,
    state_word,
)

libvirt = pytest.importorskip("libvirt")

PRIVATE_HOST_XML = """\
<node>
  <cpu>
    <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads>
    <active>8</active><mhz>2400</mhz><model>x86_64</model>
  </cpu>
  <memory>4194304</memory>
  <domain type='test'>
    <name>kvmlab-tour-b</name>
    <memory unit='KiB'>262144</memory>
    <currentMemory unit='KiB'>131072</currentMemory>
    <vcpu>3</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>kvmlab-tour-a</name>
    <memory unit='KiB'>524288</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <network>
    <name>kvmlab-isolated</name>
    <bridge name='kvmlabbr1'/>
    <ip address='10.10.0.1' prefix='16'/>
  </network>
  <network>
    <name>kvmlab-routed</name>
    <forward mode='route'/>
    <bridge name='kvmlabbr2'/>
    <ip family='ipv6' address='fd00::1' prefix='64'/>
    <ip address='172.30.0.1' netmask='255.255.255.0'>
      <dhcp><range start='172.30.0.100' end='172.30.0.200'/></dhcp>
    </ip>
  </network>
  <pool type='dir'>
    <name>kvmlab-images</name>
    <source/>
    <target><path>/srv/kvmlab-images</path></target>
    <volume>
      <name>root.qcow2</name>
      <capacity unit='MiB'>512</capacity>
      <allocation unit='MiB'>100</allocation>
      <target><format type='qcow2'/></target>
    </volume>
    <volume>
      <name>data.raw</name>
      <capacity unit='GiB'>2</capacity>
      <allocation unit='GiB'>2</allocation>
      <target><format type='raw'/></target>
    </volume>
  </pool>
</node>
"""


@pytest.fixture(scope="module")
def conn():
    """A read-only connection to the shared test driver: the probes must need no more."""
    connection = connect("test:///default")
    yield connection
    connection.close()


@pytest.fixture
def private(tmp_path: Path):
    """A read-write connection to a private fake host that the test may change."""
    node = tmp_path / "node.xml"
    node.write_text(PRIVATE_HOST_XML)
    connection = connect(f"test://{node}", write=True)
    yield connection
    connection.close()


def by_name(rows):
    return {row.name: row for row in rows}


# --------------------------------------------------------------------------- virsh


def test_every_probe_names_its_virsh_equivalent():
    assert VIRSH_EQUIVALENT == {
        "node_info": "virsh nodeinfo",
        "capabilities_summary": "virsh capabilities",
        "list_domains": "virsh list --all",
        "list_networks": "virsh net-list --all; virsh net-dumpxml NAME",
        "list_pools": "virsh pool-list --all; virsh vol-list POOL",
    }
    probes = {"node_info": node_info, "capabilities_summary": capabilities_summary,
              "list_domains": list_domains, "list_networks": list_networks,
              "list_pools": list_pools}
    for name, function in probes.items():
        first_command = VIRSH_EQUIVALENT[name].split(";")[0]
        assert first_command in " ".join(function.__doc__.split()), name
    assert NodeInfo.VIRSH == "virsh nodeinfo"
    assert CapabilitiesSummary.VIRSH == GuestOffer.VIRSH == "virsh capabilities"
    assert DomainInfo.VIRSH == "virsh list --all"
    assert VIRSH_EQUIVALENT["list_networks"] == NetworkInfo.VIRSH
    assert VIRSH_EQUIVALENT["list_pools"] == PoolInfo.VIRSH
    assert VolumeInfo.VIRSH.startswith("virsh vol-list")


@pytest.mark.parametrize("kind", [NodeInfo, CapabilitiesSummary, GuestOffer, DomainInfo,
                                  NetworkInfo, PoolInfo, VolumeInfo])
def test_results_are_frozen_dataclasses(kind):
    assert dataclasses.is_dataclass(kind)
    assert kind.__dataclass_params__.frozen


# --------------------------------------------------------------------------- node


def test_node_info_reports_the_test_drivers_16_cpu_host(conn):
    node = node_info(conn)
    model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
    assert (node.cpus, node.mhz, node.memory_mib, node.model) == (16, 1400, 3072, "i686")
    assert (node.model, node.memory_mib, node.cpus, node.mhz) == (model, memory_mib, cpus, mhz)
    assert (node.numa_nodes, node.sockets_per_node, node.cores_per_socket,
            node.threads_per_core) == (nodes, sockets, cores, threads) == (2, 2, 2, 2)
    assert node.hypervisor == conn.getType() == "TEST"
    assert node.uri == conn.getURI() == "test:///default"
    assert node.hostname == conn.getHostname()


def test_versions_are_decoded_from_libvirts_integer_encoding(conn):
    node = node_info(conn)
    assert re.fullmatch(r"\d+\.\d+\.\d+", node.libvirt_version)
    major, minor, release = map(int, node.libvirt_version.split("."))
    assert major * 1_000_000 + minor * 1_000 + release == conn.getLibVersion()
    assert node.hypervisor_version == "0.0.2"          # the test driver says 2


def test_node_info_of_a_custom_host(private):
    node = node_info(private)
    assert (node.cpus, node.mhz, node.memory_mib, node.model) == (8, 2400, 4096, "x86_64")
    assert (node.cores_per_socket, node.threads_per_core) == (4, 2)


def test_node_info_prints_one_field_a_line(conn):
    text = str(node_info(conn))
    assert re.search(r"^cpus +16$", text, re.MULTILINE)
    assert re.search(r"^uri +test:///default$", text, re.MULTILINE)
    html_text = node_info(conn)._repr_html_()
    assert "virsh nodeinfo" in html_text and "<td style='text-align:left'>16</td>" in html_text


# --------------------------------------------------------------------------- capabilities


def test_capabilities_match_the_xml_and_the_node(conn):
    caps = capabilities_summary(conn)
    root = ET.fromstring(conn.getCapabilities())
    assert caps.host_arch == root.findtext("host/cpu/arch") == "i686"
    assert caps.cpu_model is None                      # the test driver names no model
    assert caps.cpu_features == ("pae", "nonpae")
    assert caps.numa_cells == 2 == node_info(conn).numa_nodes
    assert caps.host_cpus == 16 == node_info(conn).cpus
    assert [(g.os_type, g.arch, g.wordsize, g.domain_types) for g in caps.guests] == [
        ("hvm", "i686", 32, ("test",)), ("xen", "i686", 32, ("test",))]
    assert len(caps.guests) == len(root.findall("guest"))
    assert caps.guest_arches == ("i686",)
    assert caps.domain_types == ("test",)
    assert not caps.has_kvm


KVM_HOST_CAPABILITIES = """<capabilities>
  <host>
    <cpu>
      <arch>x86_64</arch><model>Skylake-Client-IBRS</model><vendor>Intel</vendor>
      <topology sockets='1' dies='1' cores='4' threads='2'/>
      <feature name='vmx'/><feature name='pdpe1gb'/>
    </cpu>
    <topology><cells num='1'><cell id='0'><cpus num='2'>
      <cpu id='0'/><cpu id='1'/></cpus></cell></cells></topology>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='i686'><wordsize>32</wordsize><emulator>/usr/bin/qemu-system-i386</emulator>
      <domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'><wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-8.2</machine>
      <domain type='qemu'/><domain type='kvm'/></arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='aarch64'><wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-aarch64</emulator><domain type='qemu'/></arch>
  </guest>
</capabilities>"""


def test_a_kvm_host_offers_kvm_and_qemu_domains():
    caps = parse_capabilities(KVM_HOST_CAPABILITIES)
    assert (caps.host_arch, caps.cpu_model, caps.cpu_vendor) == (
        "x86_64", "Skylake-Client-IBRS", "Intel")
    assert caps.cpu_features == ("vmx", "pdpe1gb")
    assert (caps.numa_cells, caps.host_cpus) == (1, 2)
    assert caps.guest_arches == ("aarch64", "i686", "x86_64")
    assert caps.domain_types == ("kvm", "qemu")
    assert caps.has_kvm
    assert caps.guests[2] == GuestOffer("hvm", "aarch64", 64, "/usr/bin/qemu-system-aarch64",
                                        ("qemu",))


def test_broken_capabilities_xml_is_a_kvmlab_error():
    with pytest.raises(ScenarioError, match="not well-formed XML"):
        parse_capabilities("<capabilities>")


def test_capabilities_print_the_guests_as_a_nested_table(conn):
    text = str(capabilities_summary(conn))
    assert "guests:" in text
    assert re.search(r"^  hvm +i686 +32 +/usr/bin/test-hv +test$", text, re.MULTILINE)


# --------------------------------------------------------------------------- domains


def test_the_test_domain_is_running_and_matches_the_api(conn):
    test = by_name(list_domains(conn))["test"]
    dom = conn.lookupByName("test")
    state, max_kib, kib, vcpus, _ = dom.info()
    assert (test.id, test.state, test.vcpus) == (1, "running", 2)
    assert test.id == dom.ID()
    assert state == libvirt.VIR_DOMAIN_RUNNING
    assert (test.vcpus, test.memory_mib, test.max_memory_mib) == (vcpus, kib // 1024,
                                                                 max_kib // 1024)
    assert (test.memory_mib, test.max_memory_mib) == (2048, 8192)
    assert test.persistent is bool(dom.isPersistent()) is True
    assert test.autostart is bool(dom.autostart()) is False
    assert test.domain_type == "test"


def test_shut_off_and_transient_domains(private):
    private.lookupByName("kvmlab-tour-b").destroy()
    private.createXML("<domain type='test'><name>kvmlab-tour-c</name>"
                      "<memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    domains = list_domains(private)
    assert [d.name for d in domains] == ["kvmlab-tour-a", "kvmlab-tour-b", "kvmlab-tour-c"]
    a, b, c = domains
    assert (b.id, b.state, b.vcpus, b.memory_mib, b.max_memory_mib) == (None, "shut off", 3,
                                                                       128, 256)
    assert (a.state, a.id) == ("running", private.lookupByName("kvmlab-tour-a").ID())
    assert (c.persistent, c.state, c.memory_mib) == (False, "running", 64)


def test_a_domain_that_vanishes_while_listed_is_left_out(private, monkeypatch):
    private.createXML("<domain type='test'><name>kvmlab-tour-gone</name>"
                      "<memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>")
    snapshot = private.listAllDomains(0)
    private.lookupByName("kvmlab-tour-gone").destroy()       # transient: now gone for good
    monkeypatch.setattr(private, "listAllDomains", lambda flags=0: snapshot)
    assert [d.name for d in list_domains(private)] == ["kvmlab-tour-a", "kvmlab-tour-b"]


@pytest.mark.parametrize(("constant", "word"), [
    ("VIR_DOMAIN_NOSTATE", "no state"), ("VIR_DOMAIN_RUNNING", "running"),
    ("VIR_DOMAIN_BLOCKED", "idle"), ("VIR_DOMAIN_PAUSED", "paused"),
    ("VIR_DOMAIN_SHUTDOWN", "in shutdown"), ("VIR_DOMAIN_SHUTOFF", "shut off"),
    ("VIR_DOMAIN_CRASHED", "crashed"), ("VIR_DOMAIN_PMSUSPENDED", "pmsuspended"),
])
def test_states_are_named_as_virsh_names_them(constant, word):
    assert state_word(getattr(libvirt, constant)) == word


# --------------------------------------------------------------------------- networks


def test_default_network_is_virbr0_with_nat_and_dhcp(conn):
    net = by_name(list_networks(conn))["default"]
    api = conn.networkLookupByName("default")
    assert net.bridge == api.bridgeName() == "virbr0"
    assert (net.active, net.persistent, net.autostart) == (
        bool(api.isActive()), bool(api.isPersistent()), bool(api.autostart())) == (
        True, True, False)
    assert net.forward_mode == "nat"
    assert (net.ip_address, net.netmask) == ("192.168.122.1", "255.255.255.0")
    assert (net.dhcp_start, net.dhcp_end) == ("192.168.122.2", "192.168.122.254")
    assert net.subnet == "192.168.122.0/24"
    assert net.xml == api.XMLDesc(0)
    ip = ET.fromstring(net.xml).find("ip")
    assert ip.get("address") == net.ip_address


def test_the_xml_is_kept_but_not_shown(conn):
    net = by_name(list_networks(conn))["default"]
    assert "<network>" in net.xml
    assert "xml" not in str(net).split() and "<network>" not in str(net)
    assert "xml" not in as_table([net]).splitlines()[0].split()
    assert "<network>" not in repr(net)


def test_isolated_routed_and_inactive_networks(private):
    private.networkLookupByName("kvmlab-isolated").destroy()
    nets = by_name(list_networks(private))
    iso, routed = nets["kvmlab-isolated"], nets["kvmlab-routed"]
    assert (iso.active, iso.forward_mode, iso.bridge) == (False, None, "kvmlabbr1")
    assert (iso.ip_address, iso.netmask, iso.subnet) == ("10.10.0.1", "255.255.0.0",
                                                         "10.10.0.0/16")
    assert (iso.dhcp_start, iso.dhcp_end) == (None, None)
    assert "isolated" in iso.explain() and "inactive" in iso.explain()
    # The IPv4 address is preferred over an IPv6 one listed first.
    assert (routed.forward_mode, routed.ip_address, routed.netmask) == (
        "route", "172.30.0.1", "255.255.255.0")
    assert (routed.dhcp_start, routed.dhcp_end) == ("172.30.0.100", "172.30.0.200")
    assert "without NAT" in routed.explain()


def test_listing_networks_never_starts_one(private):
    private.networkLookupByName("kvmlab-isolated").destroy()
    list_networks(private)
    list_networks(private)
    assert not private.networkLookupByName("kvmlab-isolated").isActive()


def test_explain_the_default_network(conn):
    text = by_name(list_networks(conn))["default"].explain()
    for fact in ("virbr0", "192.168.122.1", "255.255.255.0", "192.168.122.2",
                 "192.168.122.254", "'nat'", "dnsmasq"):
        assert fact in text


# --------------------------------------------------------------------------- storage


def test_default_pool_matches_pool_info(conn):
    pool = by_name(list_pools(conn))["default-pool"]
    api = conn.storagePoolLookupByName("default-pool")
    state, capacity, allocation, available = api.info()
    assert (pool.capacity_bytes, pool.allocation_bytes, pool.available_bytes) == (
        capacity, allocation, available) == (100 * 1024**3, 0, 100 * 1024**3)
    assert pool.active is (state == libvirt.VIR_STORAGE_POOL_RUNNING) is True
    assert (pool.type, pool.target_path, pool.volumes) == ("dir", "/default-pool", ())
    assert pool.persistent and not pool.autostart


def test_volumes_match_the_volume_api(private):
    pool = by_name(list_pools(private))["kvmlab-images"]
    api = private.storagePoolLookupByName("kvmlab-images")
    assert (pool.capacity_bytes, pool.allocation_bytes, pool.available_bytes) == tuple(
        api.info()[1:])
    assert [v.name for v in pool.volumes] == ["data.raw", "root.qcow2"]
    for volume in pool.volumes:
        vol = api.storageVolLookupByName(volume.name)
        _type, capacity, allocation = vol.info()
        assert (volume.capacity_bytes, volume.allocation_bytes) == (capacity, allocation)
        assert volume.path == vol.path()
        assert volume.type == "file"
    data, root = pool.volumes
    assert (root.format, root.capacity_bytes, root.allocation_bytes) == (
        "qcow2", 512 * 1024**2, 100 * 1024**2)
    assert (data.format, data.capacity_bytes) == ("raw", 2 * 1024**3)
    assert root.path == "/srv/kvmlab-images/root.qcow2"
    assert re.search(r"^volumes:$", str(pool), re.MULTILINE)
    assert "root.qcow2" in as_table([pool])                     # the volumes cell names them


def test_an_inactive_pool_is_listed_without_volumes_and_stays_inactive(private):
    private.storagePoolLookupByName("kvmlab-images").destroy()
    pool = by_name(list_pools(private))["kvmlab-images"]
    assert (pool.active, pool.volumes) == (False, ())
    assert not private.storagePoolLookupByName("kvmlab-images").isActive()


# --------------------------------------------------------------------------- errors


def test_a_closed_connection_gives_a_clear_kvmlab_error():
    closed = connect("test:///default")
    closed.close()
    for probe in (node_info, capabilities_summary, list_domains, list_networks, list_pools):
        with pytest.raises(HostUnavailable, match="closed or broken") as info:
            probe(closed)
        assert "kvmlab.host.connect()" in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_libvirt_error_names_what_was_read(conn, monkeypatch):
    def refuse(*_args):  # a genuine libvirt error: writing through a read-only connection
        conn.networkDefineXML("<network><name>kvmlab-tour-never</name></network>")

    monkeypatch.setattr(conn, "listAllStoragePools", refuse)
    with pytest.raises(HostUnavailable, match="could not read the list of storage pools") as info:
        list_pools(conn)
    assert "read only" in str(info.value) or "read-only" in str(info.value)


def test_a_uri_instead_of_a_connection_is_explained():
    with pytest.raises(ScenarioError, match="open libvirt connection"):
        node_info("test:///default")
    assert issubclass(ScenarioError, KvmlabError)


# --------------------------------------------------------------------------- tables


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    count: int
    ratio: float | None
    flag: bool


def expected_cell(value: object) -> str:
    """The documented rendering of one value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def column_spans(dash_line: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dash_line)]


printable_text = st.text(st.characters().filter(str.isprintable), max_size=12)
rows_strategy = st.lists(st.builds(
    Row, name=printable_text, count=st.integers(-10**12, 10**12),
    ratio=st.none() | st.floats(allow_nan=False, allow_infinity=False), flag=st.booleans(),
), max_size=8)


@given(rows_strategy)
def test_every_value_sits_in_its_column(rows):
    table = as_table(rows)
    if not rows:
        assert table == "(none)"
        return
    lines = table.split("\n")
    assert len(lines) == len(rows) + 2
    spans = column_spans(lines[1])
    assert len(spans) == 4
    assert lines[0].split() == ["name", "count", "ratio", "flag"]
    width = len(lines[1])
    for line in lines:
        assert len(line) <= width
        assert line == line.rstrip()
    for row, line in zip(rows, lines[2:], strict=True):
        for (start, end), name in zip(spans, ["name", "count", "ratio", "flag"], strict=True):
            cell = expected_cell(getattr(row, name))
            assert line[start:end].strip() == cell.strip()
            assert line[end:end + 2].strip() == ""              # the gap between columns
        # Numbers are right-aligned: the count ends exactly where its column ends.
        start, end = spans[1]
        assert line[start:end].endswith(str(row.count))


@given(st.lists(st.text(max_size=10), min_size=1, max_size=5))
def test_no_value_can_break_a_line(names):
    rows = [{"name": n, "size_bytes": len(n)} for n in names]
    lines = as_table(rows).split("\n")
    assert len(lines) == len(names) + 2
    assert all(len(line) <= len(lines[1]) and line.isprintable() for line in lines)


def test_table_rules_and_errors():
    assert as_table([], columns=["a", "bb"]) == "a  bb\n-  --"
    assert as_table([{"a": 1}, {"b": "x"}]) == "a  b\n-  -\n1  -\n-  x"
    assert as_table([{"text": "two\nlines\t!"}]).splitlines()[2] == "two\\nlines\\t!"
    assert as_table([{"size_bytes": 1536}]).splitlines()[2] == "  1.50 KiB"
    with pytest.raises(ScenarioError, match="one kind"):
        as_table([Row("a", 1, None, True), GuestOffer("hvm", "x86_64", 64, None, ())])
    with pytest.raises(ScenarioError, match="unknown column"):
        as_table([Row("a", 1, None, True)], columns=["nope"])
    with pytest.raises(ScenarioError, match="dataclass instances or mappings"):
        as_table([1, 2])


def test_human_bytes_uses_binary_units():
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1024) == "1.00 KiB"
    assert human_bytes(100 * 1024**3) == "100.00 GiB"
    assert human_bytes(3 * 1024**5) == "3.00 PiB"


def test_table_wrapper_prints_text_and_shows_html(conn):
    domains = Table(list_domains(conn), ["name", "state", "vcpus"])
    assert repr(domains) == str(domains) == as_table(list_domains(conn), ["name", "state",
                                                                          "vcpus"])
    assert domains.title == "virsh list --all"
    assert len(domains) == len(list_domains(conn)) and next(iter(domains)) is domains[0]
    page = domains._repr_html_()
    assert "<code>virsh list --all</code>" in page
    assert "<th>vcpus</th>" in page and "<td style='text-align:right'>2</td>" in page
    hostile = Table([{"name": "<script>alert(1)</script>"}], title="a & b")
    assert "<script>" not in hostile._repr_html_() and "a &amp; b" in hostile._repr_html_()
    assert "(none)" in Table([])._repr_html_() and str(Table([])) == "(none)"
