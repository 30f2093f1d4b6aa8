"""The qcow2 reader over crafted and truncated files: a ScenarioError naming what does not
fit, or the file's tables; never ``struct.error``, an endless loop or a memory blow-up.
What reads is then used as the backing file of a modelled overlay."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kvmlab import storage
from kvmlab.errors import ScenarioError
from kvmlab.storage.reader import MAGIC, Qcow2File, read_qcow2
from tests.fuzz.strategies import fuzz_settings

CLUSTER = 512
SIZE = 1 << 20
COPIED = 1 << 63
HEADER_FIELDS = {"version": (4, ">I"), "backing_file_offset": (8, ">Q"),
                 "cluster_bits": (20, ">I"), "size": (24, ">Q"), "l1_size": (36, ">I"),
                 "l1_table_offset": (40, ">Q")}
"""Where each header field sits, and its struct format."""


def small_image() -> bytes:
    """A valid 1 MiB qcow2 image of 512-byte clusters: guest cluster 0 holds data (file
    cluster 3), guest cluster 1 reads as zeros."""
    raw = bytearray(4 * CLUSTER)
    l1_size = SIZE // (CLUSTER * (CLUSTER // 8))
    struct.pack_into(">4sIQIIQIIQQI", raw, 0, MAGIC, 3, 0, 0, 9, SIZE, 0, l1_size,
                     CLUSTER, 0, 0)
    struct.pack_into(">Q", raw, CLUSTER, 2 * CLUSTER | COPIED)            # L1[0] -> L2
    struct.pack_into(">QQ", raw, 2 * CLUSTER, 3 * CLUSTER | COPIED, 1)    # data, zero
    return bytes(raw)


def test_the_small_image_reads_as_built(tmp_path):
    path = tmp_path / "kvmlab-small.qcow2"
    path.write_bytes(small_image())
    image = read_qcow2(path)
    assert (image.virtual_size, image.cluster_size) == (SIZE, CLUSTER)
    assert image.clusters == ((0, 3),) and image.zero_clusters == (1,)


crafted = st.fixed_dictionaries({
    "fields": st.dictionaries(st.sampled_from(sorted(HEADER_FIELDS)),
                              st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1),
                                        st.sampled_from([2**62, 2**63, 2**64 - 1, 10**18])),
                              max_size=3),
    "entries": st.lists(st.tuples(st.integers(0, 2 * CLUSTER // 8 - 1),
                                  st.one_of(st.integers(0, 2**64 - 1),
                                            st.integers(0, 64).map(lambda c: c * CLUSTER
                                                                   | COPIED))),
                        max_size=4),
    "flips": st.lists(st.tuples(st.integers(0, 4 * CLUSTER - 1), st.integers(0, 255)),
                      max_size=4),
    "cut": st.one_of(st.none(), st.integers(0, 4 * CLUSTER)),
})


@fuzz_settings(300, deadline_s=3)
@given(craft=crafted)
def test_crafted_images_are_read_or_refused(craft, tmp_path_factory):
    raw = bytearray(small_image())
    for name, value in craft["fields"].items():
        offset, fmt = HEADER_FIELDS[name]
        struct.pack_into(fmt, raw, offset, value % (1 << (8 * struct.calcsize(fmt))))
    for index, value in craft["entries"]:                  # L1 and L2 entries
        struct.pack_into(">Q", raw, CLUSTER + 8 * index, value)
    for position, byte in craft["flips"]:
        raw[position] = byte
    if craft["cut"] is not None:
        raw = raw[:craft["cut"]]
    path = Path(tmp_path_factory.mktemp("kvmlab-qcow2")) / "crafted.qcow2"
    path.write_bytes(bytes(raw))
    tracemalloc.start()
    started = time.monotonic()
    try:
        image = read_qcow2(path)
    except ScenarioError as exc:
        event("refused")
        assert str(exc)
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.monotonic() - started < 3
        assert peak < 64 << 20, f"reading took {peak >> 20} MiB"
    event("read")
    assert isinstance(image, Qcow2File)
    guest_clusters = -(-image.virtual_size // image.cluster_size)
    assert all(0 <= g < guest_clusters for g, _f in image.clusters)
    assert all(0 <= g < guest_clusters for g in image.zero_clusters)
    try:                                       # as the backing file of a modelled overlay
        scenario = storage.load_scenario({"virtual_size": SIZE, "cluster_size": CLUSTER,
                                          "writes": [[0, 100]], "backing": str(path)})
    except ScenarioError:
        event("refused as a backing file")
        return
    result = storage.simulate(scenario, seed=0, progress=None)
    assert result.source == "simulated"


@pytest.mark.parametrize("raw", [b"", b"QFI", MAGIC + bytes(20), b"\x00" * 100,
                                 small_image()[:CLUSTER + 10], small_image()[:3 * CLUSTER]])
def test_truncated_images_are_refused(raw, tmp_path):
    path = tmp_path / "kvmlab-cut.qcow2"
    path.write_bytes(raw)
    with pytest.raises(ScenarioError, match=r"not a qcow2 image|truncated"):
        read_qcow2(path)
