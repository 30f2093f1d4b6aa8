import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.host.domxml import GuestSpec, domain_xml


def spec(**kw):
    base = dict(name="kvmlab-t-1", vcpus=2, memory_mib=128, kernel="/k", initrd="/i",
                console_log="/c")
    return GuestSpec(**{**base, **kw})


@given(vcpus=st.integers(1, 64), memory=st.integers(64, 65536),
       accel=st.sampled_from(["kvm", "tcg"]), data=st.data())
def test_xml_says_what_the_spec_says(vcpus, memory, accel, data):
    pins = data.draw(st.dictionaries(st.integers(0, vcpus - 1),
                                     st.sets(st.integers(0, 15), min_size=1, max_size=4)))
    root = ET.fromstring(domain_xml(spec(vcpus=vcpus, memory_mib=memory, accel=accel,
                                         pinning=pins)))
    assert root.get("type") == ("kvm" if accel == "kvm" else "qemu")
    assert int(root.findtext("vcpu")) == vcpus
    assert int(root.findtext("memory")) == memory and root.find("memory").get("unit") == "MiB"
    got = {int(p.get("vcpu")): set(map(int, p.get("cpuset").split(",")))
           for p in root.iterfind("cputune/vcpupin")}
    assert got == pins
    assert root.find("features/acpi") is not None      # else the guest sees one CPU
    assert {root.findtext(e) for e in ("on_poweroff", "on_reboot", "on_crash")} == {"destroy"}
    assert root.find("devices/serial/source").get("path") == "/c"


@given(st.sets(st.integers(0, 15), max_size=4))
def test_emulator_pinning_is_libvirts_emulatorpin(cpus):
    root = ET.fromstring(domain_xml(spec(emulator_pinning=tuple(cpus))))
    pin = root.find("cputune/emulatorpin")
    if cpus:
        assert set(map(int, pin.get("cpuset").split(","))) == cpus
    else:
        assert pin is None


def test_names_outside_the_kvmlab_prefix_are_refused():
    with pytest.raises(ScenarioError, match="must start with 'kvmlab-'"):
        spec(name="myguest")


@pytest.mark.parametrize(("kw", "rule"), [
    ({"vcpus": 0}, "at least 1 vCPU"),
    ({"memory_mib": 16}, "at least 64 MiB"),
    ({"accel": "xen"}, "not one of"),
    ({"pinning": {2: (0,)}}, "vCPUs 0-1"),
    ({"pinning": {0: ()}}, "one or more host CPUs"),
    ({"emulator_pinning": (-1,)}, "emulator threads must be pinned to host CPUs numbered"),
])
def test_bad_specs_name_the_rule(kw, rule):
    with pytest.raises(ScenarioError, match=rule):
        spec(**kw)


def test_the_test_driver_accepts_the_xml():
    libvirt = pytest.importorskip("libvirt")
    from kvmlab.host import connect

    conn = connect("test:///default", write=True)
    dom = conn.createXML(domain_xml(spec(accel="tcg", pinning={0: (1,)})), 0)
    try:
        assert dom.info()[3] == 2                       # vCPUs
        assert dom.name() == "kvmlab-t-1"
    finally:
        dom.destroy()
    assert isinstance(libvirt.getVersion(), int)
