"""A transient pool and volumes through libvirt, read back by the probe (marked live)."""

import json
import subprocess

import pytest

from kvmlab.host.connect import connect
from kvmlab.storage.pool import TransientPool
from kvmlab.storage.probe import probe_pools

pytestmark = pytest.mark.live
MiB = 1024 * 1024


def pool_names(uri):
    conn = connect(uri)
    try:
        return {p.name() for p in conn.listAllStoragePools()}
    finally:
        conn.close()


def test_pool_and_volumes_are_created_read_back_and_removed(live_uri, no_leftovers):
    with TransientPool(live_uri) as pool:
        base = pool.create_volume("kvmlab-base.qcow2", 8 * MiB, "qcow2")
        overlay = pool.create_volume("kvmlab-overlay.qcow2", 8 * MiB, "qcow2", backing=base)
        raw = pool.create_volume("kvmlab-disk.raw", 4 * MiB, "raw")
        assert pool.name in pool_names(live_uri)
        facts = {p.name: p for p in probe_pools(connect(live_uri))}[pool.name]
        vols = {v.name: v for v in facts.volumes}
        assert facts.type == "dir" and facts.active and facts.target_path == str(pool.path)
        assert (vols["kvmlab-base.qcow2"].format, vols["kvmlab-disk.raw"].format) == \
            ("qcow2", "raw")
        assert vols["kvmlab-overlay.qcow2"].capacity_bytes == 8 * MiB
        assert vols["kvmlab-overlay.qcow2"].backing_chain == (base.path(),)
        assert vols["kvmlab-base.qcow2"].backing_chain == ()
        # qemu-img, the ground truth, sees the same
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", overlay.path()],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["format"] == "qcow2" and info["virtual-size"] == 8 * MiB
        assert info["full-backing-filename"] == base.path()
        assert raw.info()[1] == 4 * MiB
        path = pool.path
    assert pool.name not in pool_names(live_uri)
    assert not path.exists()


def test_an_exception_still_removes_the_pool(live_uri, no_leftovers):
    with pytest.raises(RuntimeError), TransientPool(live_uri) as pool:
        pool.create_volume("kvmlab-x.qcow2", MiB)
        raise RuntimeError("student bug")
    assert pool.name not in pool_names(live_uri)
    assert not pool.path.exists()


def test_doctor_cleanup_removes_a_pool_left_by_a_killed_run(live_uri):
    import os
    import signal
    import sys
    from pathlib import Path

    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from kvmlab.storage.pool import TransientPool\n"
        "with TransientPool(sys.argv[1]) as p:\n"
        "    p.create_volume('kvmlab-v.qcow2', 1048576)\n"
        "    print(p.name, p.path, flush=True)\n"
        "    time.sleep(600)\n"), live_uri], stdout=subprocess.PIPE, text=True)
    name, path = child.stdout.readline().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert name in pool_names(live_uri) and Path(path).exists()
    cli = Path(sys.executable).with_name("kvmlab")
    done = subprocess.run([str(cli), "doctor", "--cleanup"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert name not in pool_names(live_uri)
    assert not Path(path).exists()
