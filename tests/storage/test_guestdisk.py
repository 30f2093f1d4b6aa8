"""The guest-disk run's pure parts: the guest's shell lines (run here by busybox on a
file), the rules of a guest's run, the volume and disk XML."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmlab.data import recorded_names
from kvmlab.errors import ScenarioError
from kvmlab.host.domxml import DiskSpec, GuestSpec, disk_target, domain_xml
from kvmlab.host.image import DISK_MODULES, insmod_script
from kvmlab.storage import compare, recorded_result, simulate
from kvmlab.storage.guestdisk import (
    MAX_GUEST_WRITE,
    PAGE,
    check_in_guest,
    expected_bytes,
    fill_byte,
    guest_script,
    write_lines,
)
from kvmlab.storage.pool import volume_xml
from kvmlab.storage.scenario import SECTOR, StorageScenario, guest_requests

SIZE = 64 * 1024


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("busybox is missing (install busybox-static)")
        pytest.skip("busybox is not installed")
    return path


writes_st = st.lists(
    st.integers(0, SIZE - 1).flatmap(
        lambda o: st.tuples(st.just(o), st.integers(1, min(SIZE - o, 9000)))),
    min_size=1, max_size=6)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=writes_st)
def test_the_guests_lines_leave_exactly_the_written_bytes(tmp_path, writes):
    """busybox runs the very lines the guest runs, on a file: every byte is the last
    writer's fill byte, every other byte is untouched (read-modify-write keeps it)."""
    image = tmp_path / "disk.img"
    image.write_bytes(b"\xee" * SIZE)
    dev = "../" + str(image).lstrip("/")              # /dev/../<image>
    script = "\n".join(write_lines(dev, o, n, fill_byte(i), tmp=str(tmp_path))
                       for i, (o, n) in enumerate(writes))
    done = subprocess.run([busybox(), "sh", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    want = bytearray(b"\xee" * SIZE)
    for i, (o, n) in enumerate(writes):
        want[o:o + n] = bytes([fill_byte(i)]) * n
    assert image.read_bytes() == bytes(want)
    for i, (o, n) in enumerate(writes):
        assert expected_bytes(writes, i) == bytes(want[o:o + n])


@given(o=st.integers(0, 10**7), n=st.integers(1, 10**6))
def test_a_guests_write_reaches_the_disk_in_whole_sectors_flushed_page_by_page(o, n):
    lines = write_lines("vda", o, n, 9).splitlines()
    to_disk = [line for line in lines if "of=/dev/vda" in line]
    pieces = [(int(line.split(" seek=")[1].split()[0]), int(line.split(" bs=")[1].split()[0]))
              for line in to_disk]
    assert all("conv=notrunc,fsync" in line for line in to_disk)
    # whole sectors, at most a page each, in the order of their offsets, with no gap
    assert all(at % 512 == 0 and 0 < size <= PAGE and size % 512 == 0 for at, size in pieces)
    assert all(a + m == b for (a, m), (b, _) in itertools.pairwise(pieces))
    assert all((at + size - 1) // PAGE == at // PAGE for at, size in pieces)   # one page
    start, end = pieces[0][0], pieces[-1][0] + pieces[-1][1]
    assert start <= o and o + n <= end < o + n + 512 + (o % 512)
    aligned = o % 512 == 0 and n % 512 == 0
    assert (len(lines) == 1 + len(to_disk)) == aligned          # else a read-modify-write


def test_the_script_loads_the_driver_checks_each_disk_and_reads_back():
    a = StorageScenario.from_dict({"virtual_size": 1 << 20, "writes": [[0, 512]]})
    b = StorageScenario.from_dict({"format": "raw", "virtual_size": 1 << 20,
                                   "writes": [[10, 1], [4096, 4096]]})
    script = guest_script([a, b])
    assert script.startswith("kvmlab-insmod disk")
    assert "[ -b /dev/vdb ]" in script and "sectors.vdb=$(cat /sys/block/vdb/size)" in script
    assert "blockdev --setbsz 512 /dev/vdb" in script
    assert script.count("echo md5.vdb.") == 2 and script.count("echo md5.vda.") == 1
    assert "kvmlab-insmod" not in guest_script([a], load_driver=False)


def test_the_image_bundles_and_loads_the_virtio_block_driver_in_order():
    assert DISK_MODULES[-1] == "virtio_blk" and DISK_MODULES.index("virtio_ring") == 0
    assert "[ \"$1\" = disk ] && set -- " + " ".join(DISK_MODULES) in insmod_script()


@pytest.mark.parametrize("data, rule", [
    ({"virtual_size": 1 << 20, "writes": [[0, 1]], "snapshots": [{"after": 1, "name": "a"}]},
     "no internal snapshots"),
    ({"format": "raw", "virtual_size": 1 << 20, "preallocation": "falloc"}, "sparse"),
    ({"virtual_size": 1 << 26, "writes": [[0, MAX_GUEST_WRITE + 1]]}, "split it"),
    ({"virtual_size": 1 << 20, "backing": {"virtual_size": 1 << 20,
                                           "snapshots": [{"after": 0, "name": "b"}]}},
     "no internal snapshots"),
])
def test_what_a_guest_cannot_do_is_refused_by_rule(data, rule):
    with pytest.raises(ScenarioError, match=rule):
        check_in_guest(StorageScenario.from_dict(data))


def test_a_volume_is_sparse_and_says_its_cluster_size():
    vol = ET.fromstring(volume_xml("kvmlab-v.qcow2", 1 << 20, "qcow2", cluster_size=512))
    assert vol.findtext("allocation") == "0" and vol.findtext("target/clusterSize") == "512"
    assert ET.fromstring(volume_xml("kvmlab-v.vmdk", 1 << 20, "vmdk")).find(
        "target/format").get("type") == "vmdk"


def test_disks_are_virtio_vda_vdb_with_their_format_and_luks_secret():
    spec = GuestSpec(name="kvmlab-t-1", vcpus=1, memory_mib=128, kernel="/k", initrd="/i",
                     console_log="/c", disks=(DiskSpec("/a.raw", "raw"),
                                              DiskSpec("/b.qcow2", "qcow2", secret_uuid="u")))
    disks = ET.fromstring(domain_xml(spec)).findall("devices/disk")
    assert [(d.find("target").get("dev"), d.find("target").get("bus"),
             d.find("driver").get("type"), d.find("source").get("file")) for d in disks] == \
        [("vda", "virtio", "raw", "/a.raw"), ("vdb", "virtio", "qcow2", "/b.qcow2")]
    assert disks[1].find("source/encryption/secret").get("uuid") == "u"
    assert disks[0].find("source/encryption") is None
    assert disk_target(2) == "vdc"
    assert ET.fromstring(domain_xml(GuestSpec(name="kvmlab-t-2", vcpus=1, memory_mib=128,
                                              kernel="/k", initrd="/i", console_log="/c"))
                         ).find("devices/disk") is None


def test_a_raw_volume_libvirt_made_has_no_first_block():
    s = {"format": "raw", "virtual_size": 1 << 20, "writes": [[200000, 10]]}
    by_qemu_img, by_libvirt = simulate(s), simulate(s, in_guest=True)
    assert by_qemu_img.allocated_clusters == by_libvirt.allocated_clusters + 1
    first = by_libvirt.map[0]
    assert (first["start"], first["length"], first["data"]) == (0, 196608, False)
    assert by_qemu_img.map[0]["data"] and by_qemu_img.map[0]["length"] == 4096


@pytest.mark.parametrize("name", recorded_names("storage-"))
def test_every_recorded_guests_run_agrees_with_the_model(name):
    measured = recorded_result(name)
    prov = measured.provenance
    assert measured.source == "measured" and prov["in_guest"] is True
    assert prov["guest_disk_sectors"] * 512 == prov["volume_capacity"] \
        == measured.scenario.virtual_size
    simulated = simulate(measured.scenario, block_size=prov["block_size"],
                         in_guest=True)
    comparison = compare(simulated, measured)
    assert comparison.agrees and comparison.max_error == 0, comparison.table()


# A real guest (TCG, QEMU 7.2) wrote 146,969 bytes at 1,282,048 of a qcow2 overlay with
# 512-byte clusters; the write needed refcount block 1. qemu-img map of the image:
MEASURED_AROUND_THE_REFCOUNT_BLOCK = [(1376256, 24576, 110592), (1400832, 8192, 135680),
                                      (1409024, 20480, 144384)]


def test_a_guest_s_page_by_page_write_has_the_new_refcount_block_between_its_clusters():
    s = {"format": "qcow2", "virtual_size": 2 << 20, "cluster_size": 512,
         "writes": [[1151864, 4096], [0, 1], [0, 1], [914432, 4096], [351631, 10],
                    [1282048, 146969]],
         "backing": {"format": "qcow2", "virtual_size": 2 << 20, "cluster_size": 65536,
                     "writes": [[0, 10]]}}

    def around(result):
        return [(e["start"], e["length"], e["offset"]) for e in result.map
                if e["data"] and e["depth"] == 0 and 1376256 <= e["start"] < 1429504]

    assert around(simulate(s, in_guest=True)) == MEASURED_AROUND_THE_REFCOUNT_BLOCK
    # qemu-io sends the write whole: its data clusters lie back to back, the block after
    assert around(simulate(s)) == [(1376256, 32768, 110592), (1409024, 20480, 144384)]
    assert simulate(s).image_end_offset == simulate(s, in_guest=True).image_end_offset


@given(st.integers(0, 1 << 30), st.integers(1, 1 << 20))
def test_a_guest_s_requests_cover_the_write_s_sectors_a_page_at_most_each(offset, length):
    requests = guest_requests(offset, length)
    start, end = requests[0][0], requests[-1][0] + requests[-1][1]
    assert start == offset // SECTOR * SECTOR and start <= offset
    assert end >= offset + length and end - (offset + length) < SECTOR and end % SECTOR == 0
    for (a, n), (b, _) in itertools.pairwise(requests):
        assert a + n == b                                  # back to back, in order
    for at, n in requests:
        assert 0 < n <= PAGE and at // PAGE == (at + n - 1) // PAGE    # within one page
