"""The vmdk reader over crafted and truncated files: a ScenarioError naming what does not
fit, or the file's tables; never ``struct.error``, an endless loop or a memory blow-up."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.storage.vmdk_reader import MAGIC, VmdkFile, read_vmdk
from tests.fuzz.strategies import fuzz_settings

SECTOR = 512
GRAIN = 8                      # sectors
GTES = 4
CAPACITY = 64                  # sectors: 8 grains, 2 grain tables
HEADER = "<IIQQQQIQQQc4sH"
HEADER_FIELDS = {"version": (4, "<I"), "flags": (8, "<I"), "capacity": (12, "<Q"),
                 "granularity": (20, "<Q"), "num_gtes_per_gt": (44, "<I"),
                 "gd_offset": (56, "<Q"), "grain_offset": (64, "<Q"),
                 "compress_algorithm": (77, "<H")}
"""Where each header field sits (from the start of the file), and its struct format."""


def small_image() -> bytes:
    """A valid sparse extent: 32 KiB of 4 KiB grains; grain 0 at sector 8, grain 5 at 16."""
    raw = bytearray(8 * SECTOR + 2 * GRAIN * SECTOR)
    raw[:4] = MAGIC
    struct.pack_into(HEADER, raw, 4, 1, 3, CAPACITY, GRAIN, 0, 0, GTES, 0, 1, 8, b"\0",
                     b"\n \r\n", 0)
    struct.pack_into("<II", raw, 1 * SECTOR, 2, 3)          # grain directory -> 2 tables
    struct.pack_into("<I", raw, 2 * SECTOR, 8)              # grain 0
    struct.pack_into("<I", raw, 3 * SECTOR + 4, 16)         # grain 5 (table 1, entry 1)
    return bytes(raw)


def test_the_small_image_reads_as_built(tmp_path):
    path = tmp_path / "kvmlab-small.vmdk"
    path.write_bytes(small_image())
    image = read_vmdk(path)
    assert (image.virtual_size, image.grain_size) == (CAPACITY * SECTOR, GRAIN * SECTOR)
    assert image.grains == ((0, 8 * SECTOR), (5, 16 * SECTOR))
    assert [(e["start"], e["data"], e.get("offset")) for e in image.map()] == [
        (0, True, 4096), (4096, False, None), (20480, True, 8192), (24576, False, None)]


crafted = st.fixed_dictionaries({
    "fields": st.dictionaries(st.sampled_from(sorted(HEADER_FIELDS)),
                              st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1),
                                        st.sampled_from([2**62, 2**63, 2**64 - 1, 10**18])),
                              max_size=3),
    "entries": st.lists(st.tuples(st.integers(0, 3 * SECTOR // 4 - 1),
                                  st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 40))),
                        max_size=4),
    "flips": st.lists(st.tuples(st.integers(0, 8 * SECTOR - 1), st.integers(0, 255)),
                      max_size=4),
    "cut": st.one_of(st.none(), st.integers(0, 8 * SECTOR + 2 * GRAIN * SECTOR)),
})


@fuzz_settings(300, deadline_s=3)
@given(craft=crafted)
def test_crafted_images_are_read_or_refused(craft, tmp_path_factory):
    raw = bytearray(small_image())
    for name, value in craft["fields"].items():
        offset, fmt = HEADER_FIELDS[name]
        struct.pack_into(fmt, raw, offset, value % (1 << (8 * struct.calcsize(fmt))))
    for index, value in craft["entries"]:            # grain directory and table entries
        struct.pack_into("<I", raw, SECTOR + 4 * index, value)
    for position, byte in craft["flips"]:
        raw[position] = byte
    if craft["cut"] is not None:
        raw = raw[:craft["cut"]]
    path = Path(tmp_path_factory.mktemp("kvmlab-vmdk")) / "crafted.vmdk"
    path.write_bytes(bytes(raw))
    tracemalloc.start()
    started = time.monotonic()
    try:
        image = read_vmdk(path)
        entries = image.map()
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
    assert isinstance(image, VmdkFile)
    grains = -(-image.virtual_size // image.grain_size)
    assert all(0 <= g < grains for g, _o in image.grains)
    assert all(o + image.grain_size <= image.file_size for _g, o in image.grains)
    assert sum(e["length"] for e in entries) == image.virtual_size


@pytest.mark.parametrize("raw", [b"", b"KDM", MAGIC + bytes(20), b"\x00" * 100,
                                 b"# Disk DescriptorFile\nversion=1\n",
                                 small_image()[:SECTOR + 4], small_image()[:3 * SECTOR + 2],
                                 small_image()[:9 * SECTOR]])
def test_truncated_images_are_refused(raw, tmp_path):
    path = tmp_path / "kvmlab-cut.vmdk"
    path.write_bytes(raw)
    with pytest.raises(ScenarioError, match=r"not a vmdk sparse extent|truncated"):
        read_vmdk(path)


@pytest.mark.parametrize("name, value, message", [
    ("compress_algorithm", 1, "streamOptimized"),
    ("flags", 3 | 1 << 16, "streamOptimized"),
    ("gd_offset", 2**64 - 1, "end of the file"),
    ("version", 4, "vmdk version 4"),
    ("num_gtes_per_gt", 513, "entries per grain table"),
    ("granularity", 3, "a grain of 3 sectors"),
])
def test_what_is_not_modelled_is_named(name, value, message, tmp_path):
    raw = bytearray(small_image())
    offset, fmt = HEADER_FIELDS[name]
    struct.pack_into(fmt, raw, offset, value)
    path = tmp_path / "kvmlab-x.vmdk"
    path.write_bytes(bytes(raw))
    with pytest.raises(ScenarioError, match=message):
        read_vmdk(path)


def test_a_missing_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read the image"):
        read_vmdk(tmp_path / "kvmlab-none.vmdk")
