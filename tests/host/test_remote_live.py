"""Live runs through ``qemu+ssh://`` (marked live).

The test starts its own sshd on 127.0.0.1 (:mod:`tests.host.sshd`), so that
``qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&no_verify=1`` reaches this machine's
libvirtd the way a remote host is reached: the guest's kernel and initrd go through a
``kvmlab-`` storage pool and libvirt streams, not through local paths. A CPU run, a
network run, a memory trace and a guest's storage runs (a qcow2 overlay and a raw volume
in a pool on that host, read back through libvirt) go through it and are compared with the
models as the local live tests do; nothing ``kvmlab-`` is left on the host afterwards.
"""

from __future__ import annotations

import os
import shutil

import pytest

from kvmlab.host.connect import connection, is_local_uri
from tests.conftest import IN_CI, require

pytestmark = [pytest.mark.live, pytest.mark.alone]
TOLERANCE = 0.05


def _objects(uri: str) -> set[str]:
    """Every kvmlab- domain, pool, volume and secret of the host that this process owns or
    whose owner has ended: another run at the same time is that run's business, and so is
    an object with no owner record yet (another run's pool, between its making and its
    owner record; kvmlab's own objects all carry one)."""
    import libvirt

    from kvmlab.host.cleanup import find_libvirt_leftovers

    tries = 5
    while True:
        try:
            with connection(uri) as conn:
                return {f"{item.kind} {item.name}" for item in find_libvirt_leftovers(conn)
                        if item.owner_pid == os.getpid()
                        or (item.owner_pid is None and not item.unowned)}
        except libvirt.libvirtError:        # another run's object went while it was listed
            tries -= 1
            if not tries:
                raise


@pytest.fixture(scope="module")
def ssh_uri(live_uri, guest_image):
    from tests.host.sshd import SSHD, private_sshd

    require(os.geteuid() == 0, "the private sshd logs in as root, which needs root")
    require(os.path.exists(SSHD) and shutil.which("ssh") is not None,
            "openssh-server/openssh-client are not installed (scripts/setup-host.sh does it)")
    if not IN_CI and not live_uri.startswith("qemu:///system"):
        pytest.skip(f"the ssh URI reaches qemu:///system, not {live_uri}")
    with private_sshd("/system") as sshd:
        yield sshd.uri


@pytest.fixture
def nothing_left(ssh_uri):
    """Our own kvmlab- objects (made during the test) must all be gone afterwards."""
    before = _objects(ssh_uri)
    yield
    assert _objects(ssh_uri) - before == set()


def test_the_ssh_uri_reaches_this_machine_s_libvirtd(ssh_uri):
    assert not is_local_uri(ssh_uri)
    with connection(ssh_uri) as conn:
        assert conn.getType() == "QEMU"
        assert conn.getURI().startswith("qemu+ssh://root@127.0.0.1:")


def test_a_guest_s_files_are_uploaded_into_a_pool_and_removed(ssh_uri, nothing_left):
    from kvmlab.host.guest import TransientGuest
    from kvmlab.host.staging import PoolStaging

    with TransientGuest("echo vcpus=$(nproc)", uri=ssh_uri, purpose="remote",
                        accel="tcg") as guest:
        assert isinstance(guest.staging, PoolStaging)
        with connection(ssh_uri) as conn:
            pool = conn.storagePoolLookupByName(guest.name)
            volumes = {v.name() for v in pool.listAllVolumes()}
        assert {"vmlinuz", "initrd.gz", "console.log", "owner.txt"} <= volumes
        assert guest.cgroup_partition() == "/machine"       # asked of the host
        assert guest.local_qemu_pid() is not None           # the same machine, via ssh
        out = guest.result(timeout_s=90)
    assert out.values() == {"vcpus": "1"} and out.exit_status == 0


def test_a_cpu_run_over_ssh_matches_the_model(ssh_uri, nothing_left):
    from kvmlab.cpu import compare, load_scenario, run_on_host, simulate

    scenario = load_scenario("cpu-no-overcommit").with_duration(4.0)
    measured = run_on_host(scenario, uri=ssh_uri)
    assert measured.provenance["uri"] == ssh_uri
    comparison = compare(simulate(scenario, seed=0), measured)
    print(f"\n{comparison.table()}\nother load {measured.provenance['other_load_pcpus']}")
    tolerance = TOLERANCE if measured.provenance["accelerator"] == "kvm" else 2 * TOLERANCE
    assert comparison.max_error <= tolerance, comparison.table()


def test_a_cpu_run_on_a_host_whose_qemu_is_elsewhere_reads_libvirt_s_statistics(
        ssh_uri, nothing_left, monkeypatch):
    from kvmlab.cpu import compare, load_scenario, run_on_host, simulate
    from kvmlab.host.guest import TransientGuest

    # As on another machine: no QEMU process of the guest to be found here.
    monkeypatch.setattr(TransientGuest, "local_qemu_pid", lambda self: None)
    scenario = load_scenario("cpu-no-overcommit").with_duration(4.0)
    measured = run_on_host(scenario, uri=ssh_uri)
    assert "vcpu.N.time" in measured.provenance["method"]
    assert measured.provenance["host_kernel"] == "(remote)"
    assert measured.provenance["host_scheduler"] == "(remote)"
    comparison = compare(simulate(scenario, seed=0), measured)
    tolerance = TOLERANCE if measured.provenance["accelerator"] == "kvm" else 2 * TOLERANCE
    assert comparison.max_error <= tolerance, comparison.table()


def test_a_network_run_over_ssh_equals_the_model(ssh_uri, guest_image, nothing_left):
    from kvmlab.data import scenario_dict
    from kvmlab.network import compare, run_on_host, simulate

    measured = run_on_host(scenario_dict("net-hub"), uri=ssh_uri, image=guest_image)
    comparison = compare(simulate(scenario_dict("net-hub")), measured)
    assert comparison.agrees and comparison.max_error == 0, comparison.table()


@pytest.mark.parametrize("qemu_here", [True, False], ids=["same-machine", "elsewhere"])
def test_a_memory_trace_over_ssh(ssh_uri, nothing_left, monkeypatch, qemu_here):
    from kvmlab.host.guest import TransientGuest
    from kvmlab.memory import compare, run_on_host, simulate
    from kvmlab.memory.scenario import TraceScenario

    if not qemu_here:
        monkeypatch.setattr(TransientGuest, "local_qemu_pid", lambda self: None)
    result = run_on_host(TraceScenario(samples=8, seed=None), uri=ssh_uri)
    comparison = compare(simulate(result.scenario), result)
    assert comparison.agrees and comparison.max_error == 0.0, comparison.table()
    ok, n = result.agreement()
    assert ok == n == 8
    mapped = [t for t in result.translations if t.model_pa is not None]
    assert mapped
    if qemu_here:
        assert "not_measured" not in result.provenance
        assert all(t.ma is not None for t in mapped)
    else:
        assert "machine addresses (MA)" in result.provenance["not_measured"]
        assert all(t.ma is None for t in mapped)


def test_doctor_checks_the_host_behind_the_uri(ssh_uri, nothing_left):
    from kvmlab.doctor import diagnose

    d = diagnose(ssh_uri, trial_boot=False)
    assert d.live_uri == ssh_uri
    assert d.finding("capabilities").ok is True
    upload = d.finding("guest upload")
    assert upload.ok is True and "uploaded" in upload.summary
    # this machine's /dev/kvm says nothing about a remote host's
    assert all(f.topic != "KVM device" for f in d.findings)
    assert d.finding("leftovers").ok is not False, d.finding("leftovers")


def _copies_left() -> list[str]:
    from kvmlab.host.owner import temp_root

    return sorted(p.name for p in temp_root().glob("kvmlab-storage-copy-*"))


def test_a_guest_s_overlay_over_ssh_is_read_back_through_libvirt_and_equals_the_model(
        ssh_uri, nothing_left, monkeypatch):
    import kvmlab.storage.guestdisk as guestdisk
    from kvmlab.host.owner import temp_root
    from kvmlab.storage import compare, simulate
    from kvmlab.storage.scenario import load_scenario

    opened = []
    real_inspect = guestdisk.inspect

    def spy(path, fmt="qcow2", key=None, backing=()):
        opened.append((path, list(backing)))
        return real_inspect(path, fmt, key, backing)

    monkeypatch.setattr(guestdisk, "inspect", spy)
    before = _copies_left()
    scenario = load_scenario("storage-overlay")
    result = guestdisk.run_in_guest(scenario, uri=ssh_uri)
    prov = result.provenance
    assert prov["uri"] == ssh_uri and prov["in_guest"] is True
    assert prov["copied_through_libvirt"] == ["kvmlab-s0-l0.qcow2", "kvmlab-s0-l1.qcow2"]
    assert "downloaded through libvirt" in prov["method"]
    with connection(ssh_uri) as conn:
        assert prov["host"] == conn.getHostname()
    # qemu-img read the local copies, the overlay's backing the copy of the base, never the
    # files on the host (which, the host being this machine, would be readable here too)
    [(path, backing)] = opened
    assert path.parent.parent == temp_root() and path.name == "kvmlab-s0-l1.qcow2"
    assert [b.name for b in backing] == ["kvmlab-s0-l0.qcow2"] and backing[0].parent == path.parent
    assert prov["guest_disk_sectors"] * 512 == prov["volume_capacity"] == scenario.virtual_size
    comparison = compare(simulate(scenario, block_size=prov["block_size"],
                                  in_guest=True), result)
    assert comparison.agrees and comparison.max_error == 0, comparison.table()
    assert any(e["depth"] == 1 and e["data"] for e in result.map)    # the base shows through
    assert _copies_left() == before


def test_kvmlab_storage_compare_file_in_guest_over_ssh_agrees_exactly(ssh_uri, nothing_left,
                                                                    tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from kvmlab.data import scenario_dict

    path = tmp_path / "raw.json"
    path.write_text(json.dumps(scenario_dict("storage-raw-sparse")))
    kvmlab = str(Path(sys.executable).with_name("kvmlab"))
    before = _copies_left()
    done = subprocess.run([kvmlab, "storage", "compare", str(path), "--in-guest",
                           "--uri", ssh_uri], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["agrees"] is True and out["max_error"] == 0, done.stderr
    assert _copies_left() == before
    # without --in-guest a remote host is refused, saying what to do
    done = subprocess.run([kvmlab, "storage", "run", str(path), "--uri", ssh_uri],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "add --in-guest" in done.stderr
