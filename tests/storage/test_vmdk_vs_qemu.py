"""The vmdk (monolithicSparse) model and reader against QEMU's own tools, for many random
write sequences: the same ``qemu-img map`` (ranges, data flag, file offsets) and the file's
size; then vmdk <-> qcow2 conversions."""

import random
import shutil

import pytest

from kvmlab import storage
from kvmlab.errors import ScenarioError
from kvmlab.storage.convert import convert, predict_conversions
from kvmlab.storage.twin import make_image
from kvmlab.storage.vmdk import GRAIN, GT_ENTRIES, VmdkLayout, VmdkModel
from kvmlab.storage.vmdk_reader import read_vmdk
from tests.conftest import IN_CI

MiB = 1024 * 1024
GT_SPAN = GRAIN * GT_ENTRIES                 # 32 MiB: what one grain table maps
HAVE_QEMU = shutil.which("qemu-img") is not None and shutil.which("qemu-io") is not None
pytestmark = pytest.mark.skipif(not HAVE_QEMU and not IN_CI,
                                reason="qemu-utils is not installed (make test installs it)")


def random_scenario(rng: random.Random) -> dict:
    """Writes at sector granularity, many of them across grain or grain-table boundaries."""
    size = rng.choice([1, 7, 40, 100, 130]) * MiB + rng.choice([0, 512, 33 * 512])
    writes = []
    for _ in range(rng.randint(1, 14)):
        kind = rng.random()
        if kind < 0.35 and size > GT_SPAN:           # across a grain table's edge
            edge = rng.randrange(1, size // GT_SPAN + 1) * GT_SPAN
            offset = max(0, edge - rng.randint(1, 3 * GRAIN // 512) * 512)
        elif kind < 0.7:                             # across a grain's edge
            edge = rng.randrange(1, size // GRAIN + 1) * GRAIN
            offset = max(0, edge - rng.randint(1, 128) * 512)
        else:
            offset = rng.randrange(size // 512) * 512
        offset = min(offset, size - 512)
        length = rng.randint(1, min((size - offset) // 512, 3 * GRAIN // 512)) * 512
        writes.append([offset, length])
    return {"format": "vmdk", "virtual_size": size, "writes": writes}


@pytest.mark.parametrize("seed", range(24))
def test_model_and_reader_equal_qemu_img(seed, tmp_path_factory):
    data = random_scenario(random.Random(seed))
    simulated = storage.simulate(data)
    measured = storage.run_on_host(data)
    assert simulated.map == measured.map        # every key, every range, every offset
    assert simulated.image_end_offset == measured.image_end_offset   # the file's size
    assert simulated.allocated_clusters == measured.allocated_clusters
    assert storage.compare(simulated, measured).agrees
    path = make_image(storage.load_scenario(data),
                      tmp_path_factory.mktemp("kvmlab-vmdk") / "disk.vmdk")
    real = read_vmdk(path)
    assert real.map() == measured.map
    assert real.file_size == simulated.image_end_offset
    assert dict(real.grains) == VmdkModel.from_scenario(storage.load_scenario(data)).grains


def test_grains_go_to_the_end_of_the_file_in_the_order_first_written():
    data = {"format": "vmdk", "virtual_size": 64 * MiB,
            "writes": [[40 * MiB, 512], [0, GRAIN + 512], [40 * MiB + 100 * 512, 512]]}
    measured = storage.run_on_host(data)
    offsets = {e["start"]: e["offset"] for e in measured.map if e["data"]}
    first = VmdkLayout.for_size(64 * MiB).grain_offset * 512
    assert offsets == {40 * MiB: first, 0: first + GRAIN}      # grains 0 and 1 back to back
    assert measured.image_end_offset == first + 3 * GRAIN


def test_an_empty_image_is_its_metadata_up_to_the_first_grain():
    for size in (MiB, 3 * 1024 * MiB):
        measured = storage.run_on_host({"format": "vmdk", "virtual_size": size})
        layout = VmdkLayout.for_size(size)
        assert measured.image_end_offset == layout.grain_offset * 512
        assert measured.map == storage.simulate({"format": "vmdk",
                                                 "virtual_size": size}).map


def test_the_shipped_scenario_agrees():
    s = storage.load_scenario("storage-vmdk-sparse")
    assert storage.compare(storage.simulate(s), storage.run_on_host(s)).agrees


@pytest.mark.parametrize("fmt", ["vmdk", "qcow2"])
def test_conversions_both_ways_are_predicted(fmt):
    rng = random.Random(7)
    data = {**random_scenario(rng), "format": fmt}
    if fmt == "qcow2":
        data["cluster_size"] = GRAIN
    result = convert(data)
    assert result.agrees, result.table()
    assert set(result.measured) == {"vmdk -> qcow2", "qcow2 -> vmdk"}
    assert result.to_dict()["conversions"]["qcow2 -> vmdk"]["agrees"]


def test_a_conversion_sorts_the_clusters_by_guest_offset():
    s = {"format": "vmdk", "virtual_size": 8 * MiB, "writes": [[4 * MiB, 1], [0, 1]]}
    source = storage.simulate(s).map
    assert [e["offset"] for e in source if e["data"]] == [131072, 65536]   # written order
    target = predict_conversions(s)["qcow2 -> vmdk"]
    assert [e["offset"] for e in target if e["data"]] == [65536, 131072]   # guest order


@pytest.mark.parametrize("data, message", [
    ({"subformat": "streamOptimized"}, "vmdk subformat 'streamOptimized' is not modelled; "
                                       "kvmlab models monolithicSparse"),
    ({"subformat": "monolithicFlat"}, "'monolithicFlat' is not modelled"),
    ({"subformat": "twoGbMaxExtentSparse"}, "'twoGbMaxExtentSparse' is not modelled"),
    ({"subformat": "twoGbMaxExtentFlat"}, "'twoGbMaxExtentFlat' is not modelled"),
    ({"subformat": "vmfs"}, "'vmfs' is not modelled"),
    ({"subformat": "monolithicsparse"}, "did you mean 'monolithicSparse'"),
    ({"cluster_size": 4096}, "a vmdk image's grain is 65536 bytes"),
    ({"compress": True}, "compress is a qcow2 option"),
    ({"backing": {"virtual_size": MiB}}, "a vmdk image here has no backing file"),
    ({"snapshots": [{"after": 0, "name": "s"}]}, "a vmdk image has no internal snapshots"),
    ({"preallocation": "full"}, "a vmdk image here is always created sparse"),
])
def test_vmdk_rules(data, message):
    with pytest.raises(ScenarioError, match=message):
        storage.load_scenario({"format": "vmdk", "virtual_size": MiB, **data})


def test_subformat_belongs_to_vmdk():
    with pytest.raises(ScenarioError, match="subformat is a vmdk option"):
        storage.load_scenario({"format": "qcow2", "virtual_size": MiB,
                               "subformat": "monolithicSparse"})


def test_conversions_refuse_what_one_format_cannot_hold():
    with pytest.raises(ScenarioError, match="64 KiB clusters"):
        convert({"virtual_size": MiB, "cluster_size": 4096})
    with pytest.raises(ScenarioError, match="no backing image, snapshots or compress"):
        predict_conversions({"virtual_size": MiB, "compress": True})
    with pytest.raises(ScenarioError, match="neither"):
        predict_conversions({"format": "raw", "virtual_size": MiB})
