import os

import pytest

from kvmlab.doctor import (
    Diagnosis,
    Finding,
    check_kvm_device,
    cpu_virtualization_flags,
    diagnose,
    kvm_modules,
)


@pytest.mark.parametrize(("cpuinfo", "flags"), [
    ("flags\t\t: fpu vme vmx ept\nflags : fpu vmx\n", {"vmx"}),
    ("flags : fpu svm npt\n", {"svm"}),
    ("flags : fpu hypervisor lm\n", set()),
    ("model name : vmx in a name does not count\n", set()),
])
def test_cpu_virtualization_flags(cpuinfo, flags):
    assert cpu_virtualization_flags(cpuinfo) == flags


def test_kvm_modules_lists_vendor_modules(tmp_path):
    for name in ("kvm", "kvm_amd", "kvm_pvm", "bridge"):
        (tmp_path / name).mkdir()
    assert kvm_modules(tmp_path) == ["kvm_amd", "kvm_pvm"]


def test_a_missing_kvm_device_means_tcg(tmp_path):
    f = check_kvm_device(tmp_path / "kvm")
    assert f.ok is False and "does not exist" in f.summary and "TCG" in f.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a device-like file")
def test_a_kvm_device_qemu_cannot_open_says_how_to_fix_it(tmp_path):
    dev = tmp_path / "kvm"
    dev.touch(mode=0o600)
    f = check_kvm_device(dev)
    assert f.ok is False and "cannot open" in f.summary
    assert f"chmod 660 {dev}" in f.detail


def test_report_and_json_carry_every_finding():
    d = Diagnosis([Finding("a", True, "fine"), Finding("b", False, "broken", "fix it")],
                  live_uri="qemu:///system", accelerator="tcg")
    text = d.report()
    assert "[ok  ] a: fine" in text and "[FAIL] b: broken" in text and "fix it" in text
    assert "TCG" in d.verdict()
    assert [f["topic"] for f in d.to_dict()["findings"]] == ["a", "b"]


def test_without_a_live_host_the_verdict_points_to_the_test_driver_and_data():
    d = diagnose(trial_boot=False, live=False)
    assert d.finding("libvirt").ok is True
    assert "test:///default" in d.verdict() and "data/" in d.verdict()
