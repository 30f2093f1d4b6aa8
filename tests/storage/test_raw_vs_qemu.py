"""The raw-image model against QEMU's own tools: sparse, reserved and fully written files."""

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab import storage
from kvmlab.errors import ScenarioError

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-utils is not installed (make test installs it)")
MiB = 1024 * 1024
BLOCK = os.statvfs(tempfile.gettempdir()).f_bsize


@st.composite
def raw_scenarios(draw):
    size = draw(st.sampled_from([64 * 1024, MiB, 3 * MiB + 4096]))
    writes = []
    for _ in range(draw(st.integers(0, 10))):
        offset = draw(st.integers(0, size - 1))
        writes.append([offset, draw(st.integers(1, min(size - offset, 200_000)))])
    return {"format": "raw", "virtual_size": size, "writes": writes,
            "preallocation": draw(st.sampled_from(["off", "falloc", "full"]))}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_scenarios())
def test_raw_model_equals_qemu_img(data):
    simulated = storage.simulate(data, block_size=BLOCK)
    measured = storage.run_on_host(data)
    assert simulated.map == measured.map
    assert simulated.allocated_clusters == measured.allocated_clusters
    assert simulated.image_end_offset == measured.image_end_offset == data["virtual_size"]
    # what the file takes on the host: the blocks, plus (at most a few) blocks of the
    # file system's own extent tree
    reserved = simulated.provenance["reserved_bytes"]
    assert reserved <= measured.provenance["actual_size"] <= reserved + 4 * BLOCK


def test_a_sparse_file_holds_only_what_was_written():
    real = storage.run_on_host({"format": "raw", "virtual_size": MiB,
                                  "writes": [[200_000, 70_000]]})
    data = [(e["start"], e["length"]) for e in real.map if e["data"]]
    assert data == [(0, BLOCK), (200_000 // BLOCK * BLOCK, 18 * BLOCK)]
    full = storage.run_on_host({"format": "raw", "virtual_size": MiB, "writes": [],
                                  "preallocation": "full"})
    assert [e["data"] for e in full.map] == [True]


@pytest.mark.parametrize(("field", "value", "rule"), [
    ("cluster_size", 65536, "a raw image has no clusters"),
    ("snapshots", [{"after": 0, "name": "s"}], "no internal snapshots"),
    ("backing", "/nonexistent", "cannot have a backing file"),
    ("preallocation", "metadata", "preallocation 'metadata' is not one of"),
])
def test_raw_rules(field, value, rule):
    with pytest.raises(ScenarioError, match=rule):
        storage.simulate({"format": "raw", "virtual_size": MiB, field: value})
