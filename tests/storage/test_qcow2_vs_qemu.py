"""The qcow2 model against QEMU's own tools, for many random write sequences."""

import glob
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab import storage
from kvmlab.errors import ScenarioError
from kvmlab.storage.reader import read_qcow2
from kvmlab.storage.twin import make_image

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None or
                                shutil.which("qemu-io") is None,
                                reason="qemu-utils is not installed (make test installs it)")
CLUSTERS = [512, 1024, 4096, 65536, 2 * 1024 * 1024]
MiB = 1024 * 1024


@st.composite
def scenarios(draw, with_backing=False, with_snapshots=False):
    size = draw(st.sampled_from([1, 3, 10, 16])) * MiB
    cluster = draw(st.sampled_from(CLUSTERS))

    def writes(cs):
        n = draw(st.integers(0, 12))
        out = []
        for _ in range(n):
            offset = draw(st.integers(0, size - 1))
            length = draw(st.integers(1, min(size - offset, 3 * cs)))
            out.append([offset, length])
        return out

    data = {"format": "qcow2", "virtual_size": size, "cluster_size": cluster,
            "writes": writes(cluster)}
    if with_snapshots:
        n = len(data["writes"])
        points = sorted(draw(st.lists(st.integers(0, n), min_size=1, max_size=3)))
        data["snapshots"] = [{"after": a, "name": f"snap{i}"} for i, a in enumerate(points)]
    if with_backing:
        base_cluster = draw(st.sampled_from(CLUSTERS[:4]))
        data["backing"] = {"format": "qcow2", "virtual_size": size,
                           "cluster_size": base_cluster, "writes": writes(base_cluster)}
    return data


def check_agreement(data, exact=True):
    """The model agrees with qemu-img; ``exact`` also asks for the very same map entries
    (without it, holes that the file system keeps inside data clusters may split them:
    see storage.result.image_view)."""
    simulated = storage.simulate(data)
    measured = storage.run_on_host(data)
    comparison = storage.compare(simulated, measured)
    assert comparison.agrees, comparison.summary() + f"\n{comparison.map_differences[:3]}"
    if exact:
        assert simulated.map == measured.map       # every key, every range, every offset
    return measured


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_model_equals_qemu_img(data):
    check_agreement(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(with_backing=True))
def test_model_equals_qemu_img_with_a_backing_file(data):
    check_agreement(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(with_snapshots=True))
def test_model_equals_qemu_img_with_internal_snapshots(data):
    check_agreement(data, exact=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(with_backing=True, with_snapshots=True))
def test_model_equals_qemu_img_with_snapshots_of_an_overlay(data):
    check_agreement(data, exact=False)


def test_a_write_after_a_snapshot_copies_the_l2_table_and_the_cluster():
    data = {"format": "qcow2", "virtual_size": 10 * MiB, "cluster_size": 65536,
            "writes": [[0, 131072], [MiB, 65536], [0, 4096], [2 * MiB, 65536]],
            "snapshots": [{"after": 2, "name": "s1"}]}
    real = check_agreement(data, exact=False)
    image = storage.Qcow2Model.from_scenario(storage.StorageScenario.from_dict(data))
    # header, reftable, refblock, L1, L2, 3 data, snapshot L1, snapshot table, then the
    # copied L2 table (10), guest cluster 0 copied (11), and the new cluster at 2 MiB (12)
    assert [a.kind for a in image.layout()[8:]] == ["snapshot L1", "snapshot table", "L2",
                                                    "data", "data"]
    assert real.map[0]["offset"] == 11 * 65536 and real.map[1]["offset"] == 6 * 65536
    assert image.refcount(5) == 1 and image.refcount(6) == 2      # old copy, still shared


def test_a_second_snapshot_frees_the_old_table_and_the_next_write_reuses_it():
    data = {"format": "qcow2", "virtual_size": 10 * MiB, "cluster_size": 65536,
            "writes": [[0, 65536], [3 * MiB, 4096]],
            "snapshots": [{"after": 1, "name": "a"}, {"after": 1, "name": "b"}]}
    check_agreement(data, exact=False)
    image = storage.Qcow2Model.from_scenario(storage.StorageScenario.from_dict(data))
    # a: L1 copy 6, table 7; b: L1 copy 8, table 9, and 7 is free again; then the write
    # copies the shared L2 table into cluster 7 and puts its data at the end (10)
    kinds = [a.kind for a in image.layout()[6:]]
    assert kinds == ["snapshot L1", "L2", "snapshot L1", "snapshot table", "data"]


def test_refcount_blocks_are_added_as_the_file_grows():
    # 512-byte clusters: one refcount block describes 256 clusters, so 300 writes need more
    data = {"format": "qcow2", "virtual_size": MiB, "cluster_size": 512,
            "writes": [[i * 512, 512] for i in range(300)]}
    check_agreement(data)
    image = storage.Qcow2Model.from_scenario(storage.StorageScenario.from_dict(data))
    assert len(image.refblocks) == 2


def test_the_reader_sees_what_the_model_predicted(tmp_path):
    s = storage.StorageScenario.from_dict({"virtual_size": 4 * MiB, "cluster_size": 4096,
                                           "writes": [[0, 5000], [3 * MiB, 10]]})
    real = read_qcow2(make_image(s, tmp_path / "x.qcow2"))
    assert real.data == storage.Qcow2Model.from_scenario(s).data


def test_an_existing_file_as_backing(tmp_path):
    base = storage.StorageScenario.from_dict({"virtual_size": 2 * MiB, "cluster_size": 65536,
                                              "writes": [[0, 70000]]})
    path = make_image(base, tmp_path / "base.qcow2")
    check_agreement({"format": "qcow2", "virtual_size": 2 * MiB, "cluster_size": 4096,
                     "writes": [[4096, 1]], "backing": str(path)})


def test_runs_leave_nothing_behind():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "kvmlab-storage-*")))
    storage.run_on_host({"format": "qcow2", "virtual_size": MiB, "writes": [[0, 1]]})
    with pytest.raises(ScenarioError):
        storage.run_on_host({"format": "qcow2", "virtual_size": MiB, "writes": [[MiB, 1]]})
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "kvmlab-storage-*"))) == before
