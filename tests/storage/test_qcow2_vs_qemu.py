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
def scenarios(draw, with_backing=False):
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
    if with_backing:
        base_cluster = draw(st.sampled_from(CLUSTERS[:4]))
        data["backing"] = {"format": "qcow2", "virtual_size": size,
                           "cluster_size": base_cluster, "writes": writes(base_cluster)}
    return data


def check_agreement(data):
    predicted = storage.simulate(data)
    real = storage.run_with_qemu(data)
    comparison = storage.compare(predicted, real)
    assert comparison.agrees, comparison.summary() + f"\n{comparison.map_differences[:3]}"
    assert predicted.map == real.map           # every key, every range, every offset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_model_equals_qemu_img(data):
    check_agreement(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(with_backing=True))
def test_model_equals_qemu_img_with_a_backing_file(data):
    check_agreement(data)


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
    storage.run_with_qemu({"format": "qcow2", "virtual_size": MiB, "writes": [[0, 1]]})
    with pytest.raises(ScenarioError):
        storage.run_with_qemu({"format": "qcow2", "virtual_size": MiB, "writes": [[MiB, 1]]})
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "kvmlab-storage-*"))) == before
