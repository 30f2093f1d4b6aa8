import grp
import os
import pwd

import pytest

from kvmlab import doctor
from kvmlab.doctor import (
    Diagnosis,
    Finding,
    check_capabilities,
    check_kvm_device,
    check_leftovers,
    cpu_virtualization_flags,
    diagnose,
    kvm_modules,
    qemu_user,
    user_may_open,
)
from kvmlab.errors import HostUnavailable
from kvmlab.host import cleanup
from kvmlab.host.connect import connection
from kvmlab.host.guest import owner_note


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


def _kvm_like(tmp_path, mode=0o660):
    dev = tmp_path / "kvm"
    dev.touch()
    os.chown(dev, 0, grp.getgrnam("kvm").gr_gid)
    dev.chmod(mode)
    return dev


def _a_user(in_group_kvm: bool) -> str:
    kvm = grp.getgrnam("kvm")
    for entry in pwd.getpwall():
        if entry.pw_uid == 0:
            continue
        member = kvm.gr_gid in os.getgrouplist(entry.pw_name, entry.pw_gid)
        if member == in_group_kvm:
            return entry.pw_name
    pytest.fail(f"no user {'in' if in_group_kvm else 'outside'} group kvm on this machine")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file group kvm")
def test_a_kvm_device_qemu_s_user_cannot_open_says_how_to_fix_it(tmp_path):
    dev = _kvm_like(tmp_path)
    outsider = _a_user(in_group_kvm=False)
    f = check_kvm_device(dev, user=outsider)
    assert f.ok is False and "cannot open" in f.summary and outsider in f.summary
    assert f"chmod 660 {dev}" in f.detail and f"put {outsider} in group kvm" in f.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file group kvm")
def test_a_member_of_group_kvm_may_open_a_660_device_and_others_only_if_world_writable(
        tmp_path):
    member, outsider = _a_user(in_group_kvm=True), _a_user(in_group_kvm=False)
    dev = _kvm_like(tmp_path, 0o660)
    assert user_may_open(dev, member) and not user_may_open(dev, outsider)
    assert check_kvm_device(dev, user=member).ok is True
    dev.chmod(0o600)
    assert not user_may_open(dev, member)
    dev.chmod(0o666)
    assert user_may_open(dev, outsider)


def test_the_user_running_kvmlab_is_judged_by_os_access(tmp_path, monkeypatch):
    me = pwd.getpwuid(os.geteuid()).pw_name
    dev = tmp_path / "kvm"
    dev.touch(mode=0o000)
    seen = []
    monkeypatch.setattr(os, "access", lambda path, how: seen.append((path, how)) or False)
    assert user_may_open(dev, me) is False
    assert seen == [(dev, os.R_OK | os.W_OK)]


def test_qemu_runs_as_the_configured_user_of_a_system_daemon(tmp_path):
    conf = tmp_path / "qemu.conf"
    conf.write_text('# user = "commented"\nuser = "someone"\n')
    assert qemu_user("qemu:///system", conf) == "someone"
    assert qemu_user("qemu:///session", conf) == pwd.getpwuid(os.geteuid()).pw_name
    conf.write_text("")
    assert qemu_user("qemu:///system", conf) in ("libvirt-qemu", "qemu", "root")


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


def test_without_libvirt_python_the_verdict_says_what_works_and_the_status_fails(
        monkeypatch):
    def missing():
        raise HostUnavailable("(any)", "libvirt-python is not installed", "pip install ...")

    monkeypatch.setattr(doctor, "import_libvirt", missing)
    d = diagnose(trial_boot=False)
    assert d.libvirt_python is False and d.finding("libvirt").ok is False
    verdict = d.verdict()
    assert "not installed" in verdict and "models" in verdict and "data/" in verdict
    assert "test driver)" in verdict and "use libvirt's" not in verdict   # no false promise
    assert d.exit_status() == 1 and d.to_dict()["ok"] is False


@pytest.mark.parametrize(("oks", "status"), [
    ([True, True], 0), ([True, None], 0), ([None, False], 1), ([False], 1), ([], 0)])
def test_the_exit_status_is_non_zero_exactly_when_a_check_fails(oks, status):
    d = Diagnosis([Finding(f"t{i}", ok, "") for i, ok in enumerate(oks)])
    assert d.exit_status() == status
    assert d.to_dict()["ok"] is (status == 0)


def _test_domain(conn, name, description):
    return conn.defineXML(f"<domain type='test'><name>{name}</name><memory>1024</memory>"
                          f"<description>{description}</description><os><type>hvm</type>"
                          "</os></domain>")


@pytest.fixture
def test_driver_only(monkeypatch):
    """Leftovers of the test driver alone (not this machine's real files)."""
    monkeypatch.setattr(cleanup, "find_host_leftovers", lambda: [])


def test_a_running_owner_s_guest_is_in_use_not_a_leftover(test_driver_only):
    with connection("test:///default", write=True) as conn:
        dom = _test_domain(conn, "kvmlab-doctor-mine", owner_note())
        try:
            f = check_leftovers("test:///default")
        finally:
            dom.undefine()
    assert f.ok is True and f"in use by pid {os.getpid()}" in f.summary + f.detail
    assert "--cleanup" not in f.detail


def test_a_guest_whose_owner_pid_was_reused_is_a_leftover(test_driver_only):
    # this very pid, but another start time: the process that made it has ended
    reused = f"kvmlab guest; owner pid={os.getpid()} start=1 boot={doctor_boot()}"
    with connection("test:///default", write=True) as conn:
        dom = _test_domain(conn, "kvmlab-doctor-reused", reused)
        try:
            f = check_leftovers("test:///default")
        finally:
            dom.undefine()
    assert f.ok is False and "kvmlab-doctor-reused" in f.detail and "--cleanup" in f.detail


def test_a_guest_made_on_another_machine_is_not_called_a_leftover(test_driver_only):
    other = "kvmlab guest; owner pid=4242 start=7 boot=other-boot host=another-machine"
    with connection("test:///default", write=True) as conn:
        dom = _test_domain(conn, "kvmlab-doctor-other", other)
        try:
            f = check_leftovers("test:///default")
            removed = cleanup.remove_leftovers("test:///default")
            still = [d.name() for d in conn.listAllDomains()]
        finally:
            dom.undefine()
    assert f.ok is None and "another machine" in f.summary
    assert "pid 4242 on another-machine" in f.detail
    assert removed == [] and "kvmlab-doctor-other" in still      # --cleanup leaves it


def doctor_boot():
    from kvmlab.host.owner import boot_id

    return boot_id()


def test_the_capabilities_of_the_host_are_read_from_its_xml():
    caps = ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host><guest>"
            "<arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>"
            "</capabilities>")
    f = check_capabilities(caps, "qemu+ssh://root@lab2/system")
    assert f.ok is True and "kvm, qemu" in f.summary
    f = check_capabilities(caps.replace("<domain type='kvm'/>", ""), "u")
    assert f.ok is True and "TCG only" in f.detail
    f = check_capabilities("<capabilities><guest><arch name='aarch64'><domain type='qemu'/>"
                           "</arch></guest></capabilities>", "u")
    assert f.ok is False and "no QEMU x86_64 guest" in f.summary


def test_a_session_user_is_told_which_labs_run_live_and_why():
    from kvmlab.doctor import check_live_labs, live_labs

    labs = {lab: (runs, why) for lab, runs, why in live_labs("qemu:///session", root=False)}
    assert set(labs) == {"cpu", "memory", "storage", "network"}
    assert labs["cpu"][0] is False and "cgroup per VM" in labs["cpu"][1]
    assert labs["memory"][0] and "root" in labs["memory"][1]
    finding = check_live_labs("qemu:///session")
    assert "cpu" not in finding.summary and "network" in finding.summary
    assert "models and recordings only" in finding.detail
    assert all(runs for runs, _ in
               {lab: (r, w) for lab, r, w in live_labs("qemu:///system", root=True)}.values())
