"""A real guest writes the scenarios on libvirt volumes it sees as virtio disks, and the
model predicts the images exactly (marked live)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from kvmlab.errors import ExperimentFailed
from kvmlab.storage import compare, simulate
from kvmlab.storage.guestdisk import run_in_guest, run_many_in_guest
from kvmlab.storage.luks import luks_header_bytes
from kvmlab.storage.scenario import StorageScenario

pytestmark = pytest.mark.live
KiB, MiB = 1024, 1024 * 1024


def random_writes(rng: random.Random, size: int, n: int) -> list[list[int]]:
    out = []
    for _ in range(n):
        length = rng.choice([1, 10, 512, 4096, rng.randint(1, 200 * KiB)])
        offset = rng.choice([0, rng.randrange(0, size - length + 1),
                             rng.randrange(0, size // 512) * 512]) if length < size else 0
        out.append([min(offset, size - length), length])
    return out


def random_scenarios(seed: int) -> list[StorageScenario]:
    """3 random write sequences for each of raw, qcow2, qcow2 over a backing volume, vmdk."""
    rng = random.Random(seed)
    out = []
    for i in range(3):
        size = rng.choice([1, 2, 3]) * MiB
        cluster = rng.choice([512, 4096, 65536])
        n = rng.randint(1, 7)
        out += [
            {"format": "raw", "virtual_size": size, "writes": random_writes(rng, size, n)},
            {"format": "qcow2", "virtual_size": size, "cluster_size": cluster,
             "writes": random_writes(rng, size, n)},
            {"format": "qcow2", "virtual_size": size, "cluster_size": cluster,
             "writes": random_writes(rng, size, n),
             "backing": {"format": "qcow2", "virtual_size": size,
                         "cluster_size": rng.choice([4096, 65536]),
                         "writes": random_writes(rng, size, rng.randint(1, 4))}},
            {"format": "vmdk", "virtual_size": size, "writes": random_writes(rng, size, n)},
        ]
        out[-4]["name"] = f"random-{i}"
    return [StorageScenario.from_dict(d) for d in out]


def test_a_guest_writing_through_virtio_disks_agrees_exactly_with_the_model(live_uri,
                                                                           no_leftovers):
    scenarios = random_scenarios(seed=random.SystemRandom().randrange(10**6))
    measured = run_many_in_guest(scenarios, uri=live_uri)
    for scenario, result in zip(scenarios, measured, strict=True):
        prov = result.provenance
        # the guest saw a disk of the volume's capacity, while the file holds far less
        assert prov["guest_disk_sectors"] * 512 == prov["volume_capacity"] \
            == scenario.virtual_size
        assert prov["volume_allocation"] < scenario.virtual_size
        assert prov["in_guest"] is True
        comparison = compare(simulate(scenario, block_size=prov["block_size"],
                                      in_guest=True), result)
        assert comparison.agrees, (scenario.to_dict(), comparison.table())
        assert comparison.max_error == 0


def test_a_guest_without_its_disk_driver_fails_saying_what_to_do(live_uri, no_leftovers):
    s = StorageScenario.from_dict({"virtual_size": MiB, "writes": [[0, 512]]})
    with pytest.raises(ExperimentFailed, match=r"does not see its disk.*virtio_blk"):
        run_many_in_guest([s], uri=live_uri, load_driver=False)


def test_kvmlab_storage_compare_in_guest_prints_the_same_json(live_uri, no_leftovers):
    kvmlab = str(Path(sys.executable).with_name("kvmlab"))
    done = subprocess.run([kvmlab, "storage", "compare", "storage-first-writes",
                           "--in-guest", "--uri", live_uri],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["agrees"] is True and out["max_error"] == 0


def test_run_in_guest_takes_a_shipped_scenarios_name(live_uri, no_leftovers):
    result = run_in_guest("storage-vmdk-sparse", uri=live_uri)
    assert result.source == "measured" and result.provenance["in_guest"]
    assert "found in the image by kvmlab's reader" in result.provenance["reader_check"]
    assert compare(simulate(result.scenario), result).agrees


def kvmlab_secrets(uri):
    from kvmlab.host.connect import connect

    conn = connect(uri)
    try:
        return [s.UUIDString() for s in conn.listAllSecrets()
                if (s.XMLDesc(0).find("<description>kvmlab-") >= 0)]
    finally:
        conn.close()


def test_a_luks_volume_holds_no_plaintext_of_what_the_guest_wrote(live_uri, no_leftovers):
    rng = random.Random()
    size, cluster = 4 * MiB, rng.choice([4096, 65536])
    writes = [[i * MiB + rng.randrange(0, MiB - 65536), rng.randint(64, 65536)]
              for i in range(4)]                 # one per MiB: none hides another
    base = {"format": "qcow2", "virtual_size": size, "cluster_size": cluster,
            "writes": writes}
    encrypted = StorageScenario.from_dict(
        {**base, "encryption": {"format": "luks", "secret": "kvmlab live passphrase"}})
    plain = StorageScenario.from_dict(base)
    before = kvmlab_secrets(live_uri)
    secret, control = run_many_in_guest([encrypted, plain], uri=live_uri)
    assert kvmlab_secrets(live_uri) == before          # the transient secret is gone
    # the guest wrote the same bytes; only the plain file holds them as written
    assert secret.provenance["plaintext_found"] == []
    assert control.provenance["plaintext_found"] == list(range(len(writes)))
    simulated = simulate(encrypted)
    assert compare(simulated, secret).agrees
    assert tuple(secret.provenance["luks_extent"]) == tuple(simulated.provenance["luks_extent"])
    # the header's cost: the encrypted file ends that many clusters further
    header = -(-luks_header_bytes() // cluster) * cluster
    assert secret.image_end_offset >= control.image_end_offset + header

