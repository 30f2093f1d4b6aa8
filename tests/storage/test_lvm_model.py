"""LVM's layout of a one-disk volume group (the model) and the parsers of what a guest's LVM
prints and writes on its disk (no guest here)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.host import image
from kvmlab.storage.lvmguest import (
    PATTERN_AT,
    PATTERN_LENGTH,
    compare_lvm,
    guest_report,
    lvm_script,
    pattern_byte,
    read_disk,
)
from kvmlab.storage.lvmpool import (
    DATA_ALIGNMENT,
    EXTENT_SIZE,
    MDA_OFFSET,
    dm_name,
    plan_volume_group,
)

MiB = 1 << 20


@settings(max_examples=200, deadline=None)
@given(disk=st.integers(2 * MiB, 4096 * MiB),
       sizes=st.lists(st.integers(1, 512 * MiB), max_size=6),
       shift=st.integers(9, 27))
def test_lvs_take_whole_extents_in_a_row_and_stay_on_the_disk(disk, sizes, shift):
    extent = 1 << shift
    lvs = [(f"lv{i}", s) for i, s in enumerate(sizes)]
    try:
        g = plan_volume_group(disk, lvs, extent_size=extent)
    except ScenarioError as exc:
        room = (disk - DATA_ALIGNMENT) // extent
        need = sum(-(-s // extent) for s in sizes)
        assert room < 1 or need > room, exc
        return
    assert g.pe_start == DATA_ALIGNMENT and g.mda_size == DATA_ALIGNMENT - MDA_OFFSET
    assert g.pe_start + g.pe_count * extent <= disk < g.pe_start + (g.pe_count + 1) * extent
    nxt = 0
    for lv, (name, size) in zip(g.lvs, lvs, strict=True):
        assert lv.name == name and lv.first_extent == nxt
        assert size <= lv.size < size + extent and lv.size == lv.extents * extent
        assert lv.disk_offset == g.pe_start + lv.first_extent * extent
        nxt += lv.extents
    assert g.free_extents == g.pe_count - nxt >= 0


@pytest.mark.parametrize(("disk", "lvs", "kw", "words"), [
    (64 * MiB, [("lv1", 60 * MiB), ("lv2", 8 * MiB)], {}, "insufficient free space"),
    (64 * MiB, [("lv1", MiB), ("lv1", MiB)], {}, "already exists"),
    (64 * MiB, [("-lv", MiB)], {}, "LV name"),
    (64 * MiB, [("..", MiB)], {}, "LV name"),
    (64 * MiB, [("lv1", 0)], {}, "above 0"),
    (64 * MiB, [], {"extent_size": 3 * MiB}, "power of 2"),
    (64 * MiB, [], {"extent_size": 256}, "power of 2"),
    (4 * MiB, [], {}, "larger disk"),
    (64 * MiB, [], {"data_alignment": 4096}, "data alignment"),
])
def test_rules_lvm_enforces_are_refused_by_name(disk, lvs, kw, words):
    with pytest.raises(ScenarioError, match=words):
        plan_volume_group(disk, lvs, **kw)


def test_the_article_group_rounds_10m_up_to_three_extents():
    g = plan_volume_group(64 * MiB, [("lv1", 8 * MiB), ("lv2", 10 * MiB)])
    assert g.extent_size == EXTENT_SIZE == 4 * MiB
    assert [(lv.extents, lv.size) for lv in g.lvs] == [(2, 8 * MiB), (3, 12 * MiB)]
    assert g.lv("lv2").disk_offset == MiB + 8 * MiB
    with pytest.raises(KeyError):
        g.lv("lv3")


@given(st.from_regex(r"[abc][abc-]{0,7}", fullmatch=True),
       st.from_regex(r"[xy][xy-]{0,7}", fullmatch=True))
def test_dm_names_double_each_hyphen_so_the_split_is_unambiguous(vg, lv):
    # LVM's names never start with '-' (plan_volume_group refuses such an LV name)
    name = dm_name(vg, lv)
    parts = name.replace("--", "\0").split("-")
    assert len(parts) == 2
    assert [p.replace("\0", "-") for p in parts] == [vg, lv]


def test_the_script_makes_each_lv_and_writes_its_own_pattern():
    script = lvm_script([("a", 5 * MiB), ("b", MiB)], vg="kvmlab-x")
    assert script.index("pvcreate /dev/vda") < script.index("vgcreate kvmlab-x /dev/vda")
    assert f"lvcreate -L {5 * MiB}b -n a kvmlab-x" in script
    assert f"\\{pattern_byte(0):03o}" in script and f"\\{pattern_byte(1):03o}" in script
    assert "udev_sync = 0" in script and "vgchange -an kvmlab-x" in script


def test_the_guest_reports_are_read_into_numbers():
    lines = ["  LVM2_PV_NAME='/dev/vda' LVM2_PE_START='1048576' LVM2_PV_PE_COUNT='15' "
             "LVM2_PV_PE_ALLOC_COUNT='5' LVM2_PV_MDA_SIZE='1044480'",
             "  LVM2_VG_NAME='kvmlab-hostvg' LVM2_VG_EXTENT_SIZE='4194304' "
             "LVM2_VG_EXTENT_COUNT='15' LVM2_VG_FREE_COUNT='10' LVM2_LV_COUNT='2'",
             "  LVM2_LV_NAME='lv2' LVM2_LV_SIZE='12582912' LVM2_SEG_PE_RANGES='/dev/vda:2-4' "
             "LVM2_LV_DM_PATH='/dev/mapper/kvmlab--hostvg-lv2'",
             "log| Logical volume \"lv2\" created."]
    got = guest_report(lines, 4 * MiB, MiB)
    assert (got["pe_start"], got["pe_count"], got["free_extents"]) == (MiB, 15, 10)
    assert got["lvs"]["lv2"] == {"size": 12 * MiB, "first_extent": 2, "extents": 3,
                                 "disk_offset": 9 * MiB,
                                 "dm_path": "/dev/mapper/kvmlab--hostvg-lv2"}


def metadata(seqno: int, pe_count: int, lvs: list[tuple[str, int, int]]) -> bytes:
    body = "".join(f"\n\t\t{n} {{\n\t\t\tid = \"x\"\n\t\t\tsegment1 {{\n\t\t\t\tstart_extent = 0"
                   f"\n\t\t\t\textent_count = {c}\n\t\t\t\tstripes = [\n\t\t\t\t\t\"pv0\", {f}"
                   "\n\t\t\t\t]\n\t\t\t}\n\t\t}" for n, f, c in lvs)
    return (f"kvmlab-hostvg {{\nid = \"y\"\nseqno = {seqno}\nextent_size = 8192\n"
            f"physical_volumes {{\npv0 {{\npe_start = 2048\npe_count = {pe_count}\n}}\n}}\n"
            f"logical_volumes {{{body}\n}}\n}}\n").encode() + b"\0"


def test_the_disk_reader_takes_the_newest_metadata_and_finds_the_patterns(tmp_path):
    rng = random.Random()
    first = rng.randint(0, 5)
    disk = bytearray(32 * MiB)
    disk[512:520] = b"LABELONE"
    old = metadata(3, 99, [("lv1", 0, 1)])
    new = metadata(7, 7, [("lv1", first, 2)])
    disk[MDA_OFFSET + 512:MDA_OFFSET + 512 + len(new)] = new      # newer first: order is no cue
    disk[MDA_OFFSET + 8192:MDA_OFFSET + 8192 + len(old)] = old
    at = MiB + first * 4 * MiB + PATTERN_AT
    disk[at:at + PATTERN_LENGTH] = bytes([pattern_byte(0)]) * PATTERN_LENGTH
    path = tmp_path / "pv.raw"
    path.write_bytes(bytes(disk))
    got = read_disk(path, "kvmlab-hostvg", ["lv1", "lv2"])
    assert got["label_offset"] == 512
    assert (got["metadata_pe_count"], got["metadata_pe_start"]) == (7, MiB)
    assert got["metadata_extent_size"] == 4 * MiB
    assert got["metadata_lvs"] == {"lv1": {"extents": 2, "first_extent": first}}
    assert got["pattern_at"] == {"lv1": MiB + first * 4 * MiB, "lv2": None}
    plan = plan_volume_group(32 * MiB, [("lv1", 8 * MiB)])
    assert compare_lvm(plan, got | {"lvs": {"lv1": {}}}).agrees == (first == 0)


def test_the_guest_image_brings_lvm_and_the_device_mapper():
    assert "dm-mod" in image.LVM_MODULES and "dm-mod" in image.contents_key()
    script = image.insmod_script()
    assert '[ "$1" = lvm ] && set -- dm-mod' in script
    assert "tr - _" in script            # /proc/modules says dm_mod for dm-mod.ko
    if image.lvm_tools_found():
        names = {e[0] for e in image.userland_entries(None)}
        assert f"{image.LVM_DIR}/lvm" in names
        assert any("libdevmapper" in n for n in names)
