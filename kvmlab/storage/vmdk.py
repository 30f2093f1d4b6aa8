"""A model of how QEMU lays out a VMware sparse disk (vmdk, monolithicSparse) as a guest
writes to it.

``qemu-img create -f vmdk`` makes one file (QEMU's ``block/vmdk.c``, ``vmdk_init_extent``),
counted in 512-byte sectors:

* sector 0: the sparse extent header (magic ``KDMV``, version 1, flags: new-line
  detection and a *redundant* grain directory), with the capacity, the grain size
  (128 sectors: 64 KiB), 512 entries per grain table, and where everything else is;
* sectors 1-20: the text descriptor (``createType="monolithicSparse"``, the extent line);
* sector 21: the redundant grain directory, followed right away by *all* its grain
  tables (4 sectors each: 512 entries of 4 bytes);
* then the grain directory itself and, again, all its grain tables;
* the first grain at the next multiple of 128 sectors (64 KiB for disks up to a few GiB).

Every grain table exists from the start (unlike qcow2's L2 tables, allocated on first
write): the file is exactly ``grain_offset`` long until the guest writes. The first write
into a grain appends one whole grain (64 KiB, the rest filled with zeros) at the end of the
file and records its sector in both grain tables; a later write goes to the same place.
So grains lie in the file in the order they were first written, and the file's size is
the metadata plus 64 KiB per grain written.

Examples
--------
>>> image = VmdkModel(10485760)
>>> image.grain_offset, image.image_end_offset
(65536, 65536)
>>> image.write(1048576, 65537)         # two grains: 16 and 17
>>> image.write(0, 1)
>>> for e in image.map():
...     print(e["start"], e["length"], e["data"], e.get("offset"))
0 65536 True 196608
65536 983040 False None
1048576 131072 True 65536
1179648 9306112 False None
>>> image.allocated_clusters, image.image_end_offset
(3, 262144)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvmlab.progress import Progress
from kvmlab.storage.scenario import SECTOR, StorageScenario

__all__ = ["DESC_OFFSET", "DESC_SECTORS", "GRAIN", "GRAIN_SECTORS", "GT_ENTRIES", "SECTOR",
           "VmdkLayout", "VmdkModel", "grain_map"]

GRAIN_SECTORS = 128
"""The grain QEMU creates, in sectors (``granularity`` in the header)."""
GRAIN = GRAIN_SECTORS * SECTOR
GT_ENTRIES = 512
"""Grain table entries per grain table (``num_gtes_per_gt``)."""
DESC_OFFSET = 1
DESC_SECTORS = 20


def _up(n: int, k: int) -> int:
    return -(-n // k)


@dataclass(frozen=True)
class VmdkLayout:
    """Where QEMU puts a new monolithicSparse file's parts, in sectors.

    Examples
    --------
    >>> v = VmdkLayout.for_size(100 * 1024 * 1024)
    >>> v.grain_tables, v.rgd_offset, v.gd_offset, v.grain_offset
    (4, 21, 38, 128)
    >>> VmdkLayout.for_size(1 << 30).grain_offset      # 32 grain tables twice
    384
    """

    capacity: int          # sectors
    grains: int
    grain_tables: int
    gt_sectors: int
    gd_sectors: int
    rgd_offset: int
    gd_offset: int
    grain_offset: int

    @classmethod
    def for_size(cls, virtual_size: int) -> VmdkLayout:
        """The layout of ``qemu-img create -f vmdk FILE virtual_size``."""
        capacity = virtual_size // SECTOR
        grains = _up(capacity, GRAIN_SECTORS)
        gt_sectors = _up(GT_ENTRIES * 4, SECTOR)
        tables = _up(grains, GT_ENTRIES)
        gd_sectors = _up(tables * 4, SECTOR)
        rgd = DESC_OFFSET + DESC_SECTORS
        gd = rgd + gd_sectors + gt_sectors * tables
        first = _up(gd + gd_sectors + gt_sectors * tables, GRAIN_SECTORS) * GRAIN_SECTORS
        return cls(capacity, grains, tables, gt_sectors, gd_sectors, rgd, gd, first)

    def grain_table_sector(self, table: int, redundant: bool = False) -> int:
        """Where grain table ``table`` of the (redundant) grain directory starts."""
        base = self.rgd_offset if redundant else self.gd_offset
        return base + self.gd_sectors + table * self.gt_sectors


class VmdkModel:
    """The grains of one monolithicSparse vmdk file, as QEMU allocates them.

    Attributes
    ----------
    grains : dict of int to int
        Guest grain to the byte offset of its grain in the file.
    first_write : dict of int to int
        Guest grain to the index of the write that allocated it.
    """

    cluster_size = GRAIN

    def __init__(self, virtual_size: int) -> None:
        self.virtual_size = virtual_size
        self.layout = VmdkLayout.for_size(virtual_size)
        self.grain_offset = self.layout.grain_offset * SECTOR
        self.next_offset = self.grain_offset         # where the next grain goes
        self.grains: dict[int, int] = {}
        self.first_write: dict[int, int] = {}

    @classmethod
    def from_scenario(cls, scenario: StorageScenario, bar: Progress | None = None
                      ) -> VmdkModel:
        """Create the image of ``scenario`` and apply its writes in order (``bar``, if
        given, advances by one per write)."""
        image = cls(scenario.virtual_size)
        for index, (offset, length) in enumerate(scenario.writes):
            image.write(offset, length, index)
            if bar is not None:
                bar.update(1)
        return image

    def write(self, offset: int, length: int, index: int | None = None) -> None:
        """A guest write: QEMU goes grain by grain, in guest order, and appends a whole
        grain for each one not written before."""
        for g in range(offset // GRAIN, (offset + length - 1) // GRAIN + 1):
            if g not in self.grains:
                self.grains[g] = self.next_offset
                self.next_offset += GRAIN
                if index is not None:
                    self.first_write[g] = index

    @property
    def allocated_clusters(self) -> int:
        """Grains that hold data."""
        return len(self.grains)

    @property
    def image_end_offset(self) -> int:
        """The file's size in bytes: the metadata, then one grain per grain written."""
        return self.next_offset

    def map(self) -> list[dict[str, Any]]:
        """The image as ``qemu-img map --output=json`` shows it."""
        return grain_map(self.grains, (), self.virtual_size)


def grain_map(grains: dict[int, int], zero: Any, virtual_size: int,
              grain: int = GRAIN) -> list[dict[str, Any]]:
    """``qemu-img map --output=json`` of a sparse vmdk: ``grains`` (guest grain to byte
    offset in the file), ``zero`` (grains marked as reading zeros), everything else
    unallocated. Neighbours are joined as ``qemu-img map`` joins them (same kind, and for
    data, back to back in the file).

    Examples
    --------
    >>> [(e["start"], e["length"], e.get("offset")) for e in grain_map({0: 65536, 1: 131072},
    ...                                                                 (), 196608)]
    [(0, 131072, 65536), (131072, 65536, None)]
    """
    out: list[dict[str, Any]] = []
    zero = frozenset(zero)

    def add(s: int, e: int, kind: str, offset: int | None = None) -> None:
        if s >= e:
            return
        entry: dict[str, Any] = {"start": s, "length": e - s, "depth": 0,
                                 "present": kind != "hole", "zero": kind != "data",
                                 "data": kind == "data"}
        if offset is not None:
            entry["offset"] = offset
        if out:
            p = out[-1]
            same = all(p[k] == entry[k] for k in ("present", "zero", "data"))
            joined = offset is None or p.get("offset", -1) + p["length"] == offset
            if same and joined and p["start"] + p["length"] == s:
                p["length"] += e - s
                return
        out.append(entry)

    at = 0                                   # the walk goes over known grains only
    for g in sorted(set(grains) | zero):
        s, e = g * grain, min(virtual_size, (g + 1) * grain)
        add(at, s, "hole")
        add(s, e, "data" if g in grains else "zero", grains.get(g))
        at = e
    add(at, virtual_size, "hole")
    return out
