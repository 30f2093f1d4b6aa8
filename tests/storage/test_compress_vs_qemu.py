"""Compressed qcow2 (``qemu-img convert -c``) against QEMU's own tools for random write
sequences: the map's ranges and data flags, and ``qemu-img check``'s allocated and
compressed clusters; the reader inflates the clusters back into what was written."""

import json
import random
import shutil
import subprocess

import pytest

from kvmlab import storage
from kvmlab.errors import ScenarioError
from kvmlab.storage.reader import read_guest, read_qcow2
from kvmlab.storage.twin import make_image
from tests.conftest import IN_CI

MiB = 1024 * 1024
HAVE_QEMU = shutil.which("qemu-img") is not None and shutil.which("qemu-io") is not None
pytestmark = pytest.mark.skipif(not HAVE_QEMU and not IN_CI,
                                reason="qemu-utils is not installed (make test installs it)")


def random_scenario(rng: random.Random) -> dict:
    cluster = rng.choice([512, 4096, 65536, 65536, 2 * MiB])
    size = rng.choice([1, 3, 10, 16]) * MiB + rng.choice([0, 512, 7 * 512])
    writes = []
    for _ in range(rng.randint(0, 10)):
        offset = rng.randrange(size // 512) * 512
        length = rng.randint(1, min((size - offset) // 512, 3 * cluster // 512 + 1)) * 512
        writes.append([offset, length])
    data = {"format": "qcow2", "virtual_size": size, "cluster_size": cluster,
            "compress": True, "writes": writes}
    if writes and rng.random() < 0.3:
        data["snapshots"] = [{"after": rng.randint(0, len(writes)), "name": "before"}]
    return data


def expected_bytes(data: dict) -> bytearray:
    """The guest disk after the writes: write n fills its bytes with 1 + n % 250 (the
    pattern kvmlab.storage.twin.make_image gives qemu-io)."""
    disk = bytearray(data["virtual_size"])
    for n, (offset, length) in enumerate(data["writes"]):
        disk[offset:offset + length] = bytes([1 + n % 250]) * length
    return disk


@pytest.mark.parametrize("seed", range(22))
def test_compressed_image_equals_qemu_img(seed, tmp_path_factory):
    data = random_scenario(random.Random(seed))
    simulated = storage.simulate(data)
    measured = storage.run_on_host(data)
    assert simulated.map == measured.map            # ranges, data flags, no offsets
    assert all("offset" not in e for e in measured.map)
    assert simulated.allocated_clusters == measured.allocated_clusters
    assert simulated.compressed_clusters == measured.compressed_clusters
    comparison = storage.compare(simulated, measured)
    assert comparison.agrees and comparison.not_compared == ["image_end_offset"]
    path = make_image(storage.load_scenario(data),
                      tmp_path_factory.mktemp("kvmlab-compress") / "disk.qcow2")
    check = json.loads(subprocess.run(["qemu-img", "check", "--output=json", str(path)],
                                      capture_output=True, text=True, check=True).stdout)
    assert simulated.compressed_clusters == check.get("compressed-clusters", 0)
    assert simulated.allocated_clusters == check.get("allocated-clusters", 0)
    image = read_qcow2(path)
    assert len(image.compressed) == simulated.compressed_clusters and not image.clusters
    assert read_guest(image, 0, data["virtual_size"]) == expected_bytes(data)


def test_the_shipped_scenario_agrees_and_says_what_it_leaves_out():
    s = storage.load_scenario("storage-qcow2-compressed")
    comparison = storage.compare(storage.simulate(s), storage.run_on_host(s))
    assert comparison.agrees
    out = comparison.to_dict()
    assert out["compressed_clusters"] == [5, 5] and out["not_compared"] == ["image_end_offset"]
    assert "not compared" in comparison.table()
    assert storage.simulate(s).image_end_offset is None


def test_a_compressed_file_as_backing_shows_its_clusters_as_data(tmp_path):
    base = storage.load_scenario({"virtual_size": 2 * MiB, "compress": True,
                                  "writes": [[0, 70000]]})
    path = make_image(base, tmp_path / "kvmlab-base.qcow2")
    over = {"format": "qcow2", "virtual_size": 2 * MiB, "cluster_size": 4096,
            "writes": [[MiB, 1]], "backing": str(path)}
    simulated, measured = storage.simulate(over), storage.run_on_host(over)
    assert storage.compare(simulated, measured).agrees
    assert [e for e in measured.map if e["depth"] == 1 and e["data"]] == [
        {"start": 0, "length": 131072, "depth": 1, "present": True, "zero": False,
         "data": True}]


def test_a_corrupt_deflate_stream_is_refused(tmp_path):
    s = storage.load_scenario({"virtual_size": MiB, "compress": True, "writes": [[0, 512]]})
    path = make_image(s, tmp_path / "kvmlab-c.qcow2")
    image = read_qcow2(path)
    _guest, where, _n = image.compressed[0]
    raw = bytearray(path.read_bytes())
    raw[where:where + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw))
    with pytest.raises(ScenarioError, match="compressed guest cluster 0"):
        read_guest(read_qcow2(path), 0, 512)


@pytest.mark.parametrize("data, message", [
    ({"format": "raw", "compress": True}, "a raw image has no clusters to compress"),
    ({"format": "vmdk", "compress": True}, "streamOptimized"),
    ({"compress": "yes"}, "compress is true or false"),
    ({"compress": True, "backing": {"virtual_size": MiB}},
     "compress with a backing image is not modelled"),
    ({"backing": {"virtual_size": MiB, "compress": True}},
     "compress applies to the top image only"),
])
def test_compress_rules(data, message):
    with pytest.raises(ScenarioError, match=message):
        storage.load_scenario({"virtual_size": MiB, **data})


def test_a_backing_chain_that_loops_is_refused():
    data = {"virtual_size": MiB}
    data["backing"] = data
    with pytest.raises(ScenarioError, match="the backing chain loops"):
        storage.load_scenario(data)
    top = {"virtual_size": MiB, "backing": {"virtual_size": MiB}}
    top["backing"]["backing"] = top
    with pytest.raises(ScenarioError, match="the backing chain loops: backing scenario 1"):
        storage.load_scenario(top)


def test_a_backing_file_chain_that_loops_is_refused(tmp_path):
    a, b = tmp_path / "kvmlab-a.qcow2", tmp_path / "kvmlab-b.qcow2"
    run = ["qemu-img", "create", "-q", "-f", "qcow2"]
    subprocess.run([*run, str(a), "1M"], check=True)
    subprocess.run([*run, "-b", a.name, "-F", "qcow2", str(b), "1M"], check=True)
    subprocess.run(["qemu-img", "rebase", "-u", "-b", b.name, "-F", "qcow2", str(a)],
                   check=True)
    with pytest.raises(ScenarioError, match=r"backing chain loops \(kvmlab-b.qcow2 -> "
                                            r"kvmlab-a.qcow2 -> kvmlab-b.qcow2\)"):
        storage.load_scenario({"virtual_size": MiB, "backing": str(b)})
    c = tmp_path / "kvmlab-c.qcow2"                  # a chain that ends is still refused
    subprocess.run([*run, str(c), "1M"], check=True)
    subprocess.run(["qemu-img", "rebase", "-u", "-b", c.name, "-F", "qcow2", str(a)],
                   check=True)
    with pytest.raises(ScenarioError, match="has a backing file itself"):
        storage.load_scenario({"virtual_size": MiB, "backing": str(b)})
