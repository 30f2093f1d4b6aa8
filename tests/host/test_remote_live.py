"""Live runs through ``qemu+ssh://`` (marked live).

The test starts its own sshd on 127.0.0.1 (:mod:`tests.host.sshd`), so that
``qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&no_verify=1`` reaches this machine's
libvirtd the way a remote host is reached: the guest's kernel and initrd go through a
``kvmlab-`` storage pool and libvirt streams, not through local paths. A CPU run, a
network run and a memory trace go through it and are compared with the models as the
local live tests do; nothing ``kvmlab-`` is left on the host afterwards.
"""

from __future__ import annotations

import os
import shutil

import pytest

from kvmlab.host.connect import connection, is_local_uri
from tests.conftest import IN_CI, require

pytestmark = pytest.mark.live
TOLERANCE = 0.05


def _objects(uri: str) -> set[str]:
    """Every kvmlab- domain, pool and volume the host has (whoever owns them)."""
    with connection(uri) as conn:
        names = {f"domain {d.name()}" for d in conn.listAllDomains()
                 if d.name().startswith("kvmlab-")}
        for pool in conn.listAllStoragePools():
            if pool.name().startswith("kvmlab-"):
                names.add(f"pool {pool.name()}")
    return names


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
