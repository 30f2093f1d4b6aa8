"""The article's LVM storage pool (``hostvg.xml``), defined, started, listed and removed.

A ``logical`` pool is an LVM *volume group* on the host; each volume is a *logical volume*
(``/dev/VG/NAME``): a block device, not a file, so it has no format of its own and is not
sparse (its allocation is its capacity). The article's flow is::

    virsh pool-define hostvg.xml      # persistent, inactive
    virsh pool-list --all
    virsh pool-start HostVG           # active: libvirt runs vgchange -ay
    virsh vol-create-as HostVG lv1 64M
    virsh pool-destroy HostVG         # inactive again (the VG is kept)
    virsh pool-undefine HostVG        # forgotten by libvirt

:func:`article_flow` runs it through libvirt-python on libvirt's built-in **test driver**
(``test:///default``), which keeps pools in memory and touches no disk: a real logical pool
needs a spare disk and the kernel's device-mapper (which some hosts, containers and
sandboxes lack). The pool is named ``kvmlab-hostvg-<id>`` and is removed whatever happens.

:func:`plan_volume_group` is the model of the volume group itself: where LVM puts the PV
label, the metadata area, the extents and each logical volume on a whole disk, from LVM's
defaults (``lvmconfig --type default``: ``physical_extent_size`` 4096 KiB,
``default_data_alignment`` 1 MiB). :mod:`kvmlab.storage.lvmguest` checks it against a real
LVM inside a guest's kernel.

Examples
--------
>>> steps = article_flow()
>>> [(s["virsh"].split()[1], s["state"]) for s in steps]      # doctest: +NORMALIZE_WHITESPACE
[('pool-define', 'inactive'), ('pool-start', 'active'), ('vol-create-as', 'active'),
 ('pool-destroy', 'inactive'), ('pool-undefine', 'gone')]
>>> steps[2]["volume"]["path"], steps[2]["volume"]["allocation"] == 64 * 2**20
('/dev/HostVG/lv1', True)
"""

from __future__ import annotations

import contextlib
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.host.connect import connect, import_libvirt
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.storage.scenario import SECTOR

__all__ = ["DATA_ALIGNMENT", "EXTENT_SIZE", "LABEL_OFFSET", "MDA_OFFSET", "SECTOR", "TEST_URI",
           "LogicalVolume", "VolumeGroupLayout", "article_flow", "dm_name", "hostvg_xml",
           "plan_volume_group"]

TEST_URI = "test:///default"


def hostvg_xml(name: str, vg: str = "HostVG", device: str = "/dev/vdb") -> str:
    """The article's ``hostvg.xml``: a ``logical`` pool on volume group ``vg``, built on
    ``device``, its volumes under ``/dev/VG``.

    Examples
    --------
    >>> root = ET.fromstring(hostvg_xml("kvmlab-hostvg-doc"))
    >>> root.get("type"), root.findtext("source/name"), root.findtext("target/path")
    ('logical', 'HostVG', '/dev/HostVG')
    """
    if not name.startswith(NAME_PREFIX):
        raise ScenarioError(f"pool name {name!r} must start with {NAME_PREFIX!r}")
    pool = ET.Element("pool", type="logical")
    ET.SubElement(pool, "name").text = name
    source = ET.SubElement(pool, "source")
    ET.SubElement(source, "device", path=device)
    ET.SubElement(source, "name").text = vg
    ET.SubElement(source, "format", type="lvm2")
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = f"/dev/{vg}"
    return ET.tostring(pool, encoding="unicode")


def _state(conn: Any, name: str) -> str:
    """What ``virsh pool-list --all`` says of pool ``name``: active, inactive or gone."""
    for pool in conn.listAllStoragePools():
        if pool.name() == name:
            return "active" if pool.isActive() else "inactive"
    return "gone"


def article_flow(uri: str = TEST_URI, vg: str = "HostVG") -> list[dict[str, Any]]:
    """Run the article's flow on libvirt's test driver; one dict per ``virsh`` step.

    Each step has ``virsh`` (the command), ``state`` (the pool's line in
    ``virsh pool-list --all`` afterwards: active, inactive or gone) and, for
    ``vol-create-as``, ``volume`` (its path, capacity and allocation in bytes).

    Raises
    ------
    ScenarioError
        For any URI but the test driver's (a real logical pool would use a real disk).
    """
    if not isinstance(uri, str) or not uri.startswith("test:"):
        raise ScenarioError(f"the article's LVM pool runs on libvirt's test driver "
                            f"({TEST_URI}) only: a real logical pool takes over a whole disk "
                            f"and needs the kernel's device-mapper; not {uri!r}")
    libvirt = import_libvirt()
    name = f"{NAME_PREFIX}hostvg-{secrets.token_hex(4)}"
    conn = connect(uri, write=True)
    steps: list[dict[str, Any]] = []
    pool = None
    try:
        pool = conn.storagePoolDefineXML(hostvg_xml(name, vg), 0)
        steps.append({"virsh": "virsh pool-define hostvg.xml", "state": _state(conn, name)})
        pool.create(0)
        steps.append({"virsh": f"virsh pool-start {name}", "state": _state(conn, name)})
        vol = pool.createXML("<volume><name>lv1</name><capacity unit='MiB'>64</capacity>"
                             "</volume>", 0)
        _kind, capacity, allocation = vol.info()
        steps.append({"virsh": f"virsh vol-create-as {name} lv1 64M",
                      "state": _state(conn, name),
                      "volume": {"path": vol.path(), "capacity": capacity,
                                 "allocation": allocation}})
        pool.destroy()
        steps.append({"virsh": f"virsh pool-destroy {name}", "state": _state(conn, name)})
        pool.undefine()
        pool = None
        steps.append({"virsh": f"virsh pool-undefine {name}", "state": _state(conn, name)})
    finally:
        if pool is not None:
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return steps


EXTENT_SIZE = 4 << 20
"""LVM's default physical extent size (``vgcreate -s``; ``allocation/physical_extent_size``
4096 KiB)."""
DATA_ALIGNMENT = 1 << 20
"""Where a PV's first extent starts by default (``devices/default_data_alignment`` 1 MiB,
when the disk reports no larger I/O size, as a virtio disk does)."""
LABEL_OFFSET = SECTOR
"""The PV label (``LABELONE``, then ``LVM2 001``) sits in the disk's second sector."""
MDA_OFFSET = 4096
"""The metadata area (its header, then the VG's metadata as text) starts at 4 KiB and runs up
to the first extent."""
_LV_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]*")


@dataclass(frozen=True)
class LogicalVolume:
    """Where one LV lands: ``extents`` extents from extent ``first_extent`` of the PV, i.e.
    ``size`` bytes from byte ``disk_offset`` of the disk."""

    name: str
    requested: int
    extents: int
    size: int
    first_extent: int
    disk_offset: int


@dataclass(frozen=True)
class VolumeGroupLayout:
    """A one-disk volume group as LVM lays it out (see :func:`plan_volume_group`)."""

    vg: str
    disk_size: int
    extent_size: int
    pe_start: int
    mda_offset: int
    mda_size: int
    pe_count: int
    lvs: tuple[LogicalVolume, ...]

    @property
    def free_extents(self) -> int:
        return self.pe_count - sum(lv.extents for lv in self.lvs)

    def lv(self, name: str) -> LogicalVolume:
        """The LV called ``name``."""
        for lv in self.lvs:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"free_extents": self.free_extents}


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name of ``/dev/VG/LV``: ``/dev/mapper/VG-LV``, each ``-`` inside a
    name doubled so that the one between them stays unambiguous.

    Examples
    --------
    >>> dm_name("kvmlab-hostvg", "lv1")
    'kvmlab--hostvg-lv1'
    """
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def plan_volume_group(disk_size: int, lvs: Sequence[tuple[str, int]], *,
                      vg: str = f"{NAME_PREFIX}hostvg", extent_size: int = EXTENT_SIZE,
                      data_alignment: int = DATA_ALIGNMENT) -> VolumeGroupLayout:
    """Predict ``pvcreate DISK; vgcreate VG DISK; lvcreate -L SIZE -n NAME VG ...``.

    The whole disk is the PV (no partition table, as in the article). Its label is in sector
    1, its metadata area from 4 KiB up to the first extent, which starts at
    ``data_alignment``; the rest holds ``(disk_size - pe_start) // extent_size`` extents (a
    tail shorter than an extent is unused). Each LV's size is rounded up to whole extents,
    and, the ``normal`` allocation policy on an empty disk, each takes the next free extents
    in a row.

    Parameters
    ----------
    disk_size : int
        The disk's size in bytes.
    lvs : sequence of (name, bytes)
        The ``lvcreate`` calls, in order.
    vg, extent_size, data_alignment
        ``vgcreate``'s name and ``-s``, ``pvcreate``'s ``--dataalignment``.

    Raises
    ------
    ScenarioError
        A rule LVM enforces: the extent size a power of 2 of at least one sector, the data
        alignment a whole number of sectors past the metadata area's start, an LV name valid
        and unique, a size above 0, and enough free extents.

    Examples
    --------
    >>> g = plan_volume_group(64 << 20, [("lv1", 8 << 20), ("lv2", 10 << 20)])
    >>> g.pe_start, g.pe_count, g.mda_size
    (1048576, 15, 1044480)
    >>> [(lv.name, lv.extents, lv.first_extent, lv.disk_offset >> 20) for lv in g.lvs]
    [('lv1', 2, 0, 1), ('lv2', 3, 2, 9)]
    >>> g.free_extents
    10
    """
    if extent_size < SECTOR or extent_size & (extent_size - 1):
        raise ScenarioError(f"the extent size must be a power of 2 of at least {SECTOR} bytes "
                            f"(vgcreate -s), not {extent_size}")
    if data_alignment <= MDA_OFFSET or data_alignment % SECTOR:
        raise ScenarioError(f"the data alignment must be whole sectors past the metadata "
                            f"area's start ({MDA_OFFSET}), not {data_alignment}")
    pe_count = max(0, (disk_size - data_alignment) // extent_size)
    if pe_count < 1:
        raise ScenarioError(f"a disk of {disk_size} bytes holds no extent of {extent_size} "
                            f"bytes after the first {data_alignment}: LVM needs a larger disk")
    placed: list[LogicalVolume] = []
    used = 0
    for name, size in lvs:
        if not _LV_NAME.fullmatch(name) or name in (".", "..") or len(name) > 127:
            raise ScenarioError(f"LV name {name!r}: letters, digits and + _ . - only, not "
                                f"starting with '-', not '.' or '..'")
        if any(lv.name == name for lv in placed):
            raise ScenarioError(f"logical volume {name!r} already exists in VG {vg!r}")
        if size <= 0:
            raise ScenarioError(f"LV {name!r} needs a size above 0, not {size}")
        extents = -(-size // extent_size)
        if used + extents > pe_count:
            raise ScenarioError(f"volume group {vg!r} has insufficient free space "
                                f"({pe_count - used} extents): {extents} required for {name!r}")
        placed.append(LogicalVolume(name=name, requested=size, extents=extents,
                                    size=extents * extent_size, first_extent=used,
                                    disk_offset=data_alignment + used * extent_size))
        used += extents
    return VolumeGroupLayout(vg=vg, disk_size=disk_size, extent_size=extent_size,
                             pe_start=data_alignment, mda_offset=MDA_OFFSET,
                             mda_size=data_alignment - MDA_OFFSET, pe_count=pe_count,
                             lvs=tuple(placed))
