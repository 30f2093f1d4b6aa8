"""Where a guest's files go: a local directory, or a storage pool on the target host."""

from pathlib import Path

import pytest

from kvmlab.errors import ExperimentFailed
from kvmlab.host.connect import connection
from kvmlab.host.staging import (
    LocalStaging,
    PoolStaging,
    is_system_uri,
    local_qemu_pid,
    pool_xml_for,
    probe_upload,
    staging_for,
)


@pytest.mark.parametrize(("uri", "system"), [
    ("qemu:///system", True), ("qemu+unix:///system?socket=/s", True),
    ("qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k&no_verify=1", True),
    ("qemu:///session", False), ("qemu+ssh://me@lab2/session", False),
    ("test:///default", False), ("qemu+ssh://root@lab2/systemd", False)])
def test_system_daemons_are_told_by_the_uri_s_path(uri, system):
    assert is_system_uri(uri) is system


@pytest.mark.parametrize(("uri", "kind"), [
    ("qemu:///system", LocalStaging), ("qemu:///session", LocalStaging),
    ("qemu+ssh://root@lab2/system", PoolStaging), ("qemu+tcp://lab2/system", PoolStaging),
    ("qemu+ssh://root@127.0.0.1:2222/system?no_verify=1", PoolStaging)])
def test_only_a_local_uri_stages_files_on_this_machine(uri, kind, tmp_path):
    assert isinstance(staging_for(uri, None, "kvmlab-t", tmp_path), kind)


def test_local_staging_writes_the_files_and_an_owner_record_and_removes_them(tmp_path):
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"kernel")
    staging = LocalStaging(tmp_path / "run", "kvmlab-unit")
    staging.put(kernel, b"initrd")
    assert Path(staging.kernel).read_bytes() == b"kernel"
    assert Path(staging.initrd).read_bytes() == b"initrd"
    assert "owner pid=" in (staging.workdir / "owner.txt").read_text()
    assert staging.console() == ""
    Path(staging.console_log).write_text("KVMLAB-BOOTED\n")
    assert staging.console() == "KVMLAB-BOOTED\n"
    staging.close()
    assert not staging.workdir.exists()


def test_the_pool_is_a_dir_pool_qemu_may_enter():
    import xml.etree.ElementTree as ET

    pool = ET.fromstring(pool_xml_for("kvmlab-x", "/srv/kvmlab-x"))
    assert (pool.get("type"), pool.findtext("target/path"),
            pool.findtext("target/permissions/mode")) == ("dir", "/srv/kvmlab-x", "0755")


def test_a_host_with_nowhere_to_upload_says_so_and_keeps_nothing():
    with connection("test:///default", write=True) as conn:
        before = {p.name() for p in conn.listAllStoragePools()}
        with pytest.raises(ExperimentFailed, match="no 'default' storage pool"):
            probe_upload(conn, "kvmlab-unit-probe")
        assert {p.name() for p in conn.listAllStoragePools()} == before


def fake_process(proc, pid, argv):
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_a_guest_s_qemu_is_found_here_by_its_name_only(tmp_path):
    fake_process(tmp_path, 10, ["qemu-system-x86_64", "-name",
                                "guest=kvmlab-cpu-vm1-aa,debug-threads=on", "-S"])
    fake_process(tmp_path, 11, ["qemu-system-x86_64", "-name", "guest=kvmlab-cpu-vm1-aabb"])
    fake_process(tmp_path, 12, ["sh", "-c", "echo -name guest=kvmlab-x-1"])
    (tmp_path / "self").mkdir()
    assert local_qemu_pid("kvmlab-cpu-vm1-aa", tmp_path) == 10
    assert local_qemu_pid("kvmlab-cpu-vm1-aabb", tmp_path) == 11
    assert local_qemu_pid("kvmlab-x-1", tmp_path) is None
    assert local_qemu_pid("kvmlab-cpu-vm1", tmp_path) is None


def test_sweep_takes_the_host_s_uri(monkeypatch):
    import kvmlab.experiments as experiments

    seen = {}

    def fake_sweep_on_host(scenario, grid, seeds, *, uri, **kwargs):
        seen["uri"] = uri
        raise SystemExit(0)

    monkeypatch.setattr(experiments, "sweep_on_host", fake_sweep_on_host)
    from kvmlab.cli import main

    uri = "qemu+ssh://root@lab2/system"
    for argv in (["--uri", uri], ["--host", "--uri", uri], ["--host", uri]):
        seen.clear()
        with pytest.raises(SystemExit):
            main(["sweep", "cpu-overcommit", *argv, "--quiet"])
        assert seen == {"uri": uri}, argv
    assert main(["sweep", "cpu-overcommit", "--host", "qemu:///system", "--uri", uri]) == 2
