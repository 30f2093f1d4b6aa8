"""Read a real VMware sparse disk (vmdk, a VMDK4 sparse extent) in pure Python: the header,
the grain directory and the grain tables.

A file is read table by table, never whole, and every field of a crafted or truncated file
is checked before it is used: what does not fit is a ScenarioError naming it. Compressed
extents (streamOptimized), descriptor-only files (monolithicFlat, the split subformats)
and the older COWD format are refused: they are not modelled.

Examples
--------
>>> parse_vmdk_header(b"KDMV" + bytes(10))
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: not a vmdk sparse extent: the header is 79 bytes, the file has 14
>>> parse_vmdk_header(b"# Disk DescriptorFile")        # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: not a vmdk sparse extent (its first bytes are not KDMV); ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kvmlab.errors import ScenarioError
from kvmlab.storage.reader import read_at
from kvmlab.storage.vmdk import SECTOR, grain_map

__all__ = ["FLAG_COMPRESSED", "FLAG_MARKERS", "FLAG_RGD", "FLAG_ZERO_GRAIN", "MAGIC",
           "MAX_CAPACITY", "MAX_GD_ENTRIES", "MAX_GT_ENTRIES_READ", "VmdkFile",
           "parse_vmdk_header", "read_vmdk"]

MAGIC = b"KDMV"
HEADER_BYTES = 4 + 75
FLAG_RGD = 1 << 1
FLAG_ZERO_GRAIN = 1 << 2
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
GD_AT_END = (1 << 64) - 1
ZEROED_GTE = 1
MAX_CAPACITY = 1 << 32
"""The largest capacity read, in sectors (2 TiB: QEMU's ``VMDK_EXTENT_MAX_SECTORS``)."""
MAX_GRAIN_SECTORS = 0x200000
"""QEMU's largest grain, in sectors (1 GiB)."""
MAX_GT_ENTRIES_READ = 1 << 21
"""The most grain table entries looked at (tables read times entries per table): 4096
tables of 512 entries, which map 128 GiB of 64 KiB grains (as much as the model takes)."""
MAX_GD_ENTRIES = 1 << 16
"""The longest grain directory read: 65536 tables, a 2 TiB disk of 64 KiB grains."""
FIELDS = ("version", "flags", "capacity", "granularity", "desc_offset", "desc_size",
          "num_gtes_per_gt", "rgd_offset", "gd_offset", "grain_offset", "filler",
          "check_bytes", "compress_algorithm")


def parse_vmdk_header(data: bytes) -> dict[str, Any]:
    """The fields of a VMDK4 sparse extent header (the first 79 bytes), little-endian."""
    if data[:4] != MAGIC:
        raise ScenarioError("not a vmdk sparse extent (its first bytes are not KDMV); "
                            "descriptor files and COWD extents are not read")
    if len(data) < HEADER_BYTES:
        raise ScenarioError(f"not a vmdk sparse extent: the header is {HEADER_BYTES} bytes, "
                            f"the file has {len(data)}")
    return dict(zip(FIELDS, struct.unpack("<IIQQQQIQQQc4sH", data[4:HEADER_BYTES]),
                    strict=True))


def _check_header(h: dict[str, Any], path: str, file_size: int) -> None:
    """Refuse what no sparse extent kvmlab reads can have."""
    if h["version"] not in (1, 2, 3):
        raise ScenarioError(f"{path}: vmdk version {h['version']} is not 1, 2 or 3")
    if h["compress_algorithm"] or h["flags"] & (FLAG_COMPRESSED | FLAG_MARKERS):
        raise ScenarioError(f"{path}: a compressed extent (streamOptimized) is not modelled")
    if h["gd_offset"] == GD_AT_END:
        raise ScenarioError(f"{path}: a grain directory at the end of the file "
                            "(streamOptimized) is not modelled")
    if not 0 < h["capacity"] <= MAX_CAPACITY:
        raise ScenarioError(f"{path}: a capacity of {h['capacity']} sectors is not 1 to "
                            f"{MAX_CAPACITY} (2 TiB)")
    g = h["granularity"]
    if not 0 < g <= MAX_GRAIN_SECTORS or g & (g - 1) or g < 8:
        raise ScenarioError(f"{path}: a grain of {g} sectors is not a power of two from 8 "
                            f"to {MAX_GRAIN_SECTORS}")
    if not 0 < h["num_gtes_per_gt"] <= 512:
        raise ScenarioError(f"{path}: {h['num_gtes_per_gt']} entries per grain table is "
                            "not 1 to 512")
    if h["grain_offset"] * SECTOR > file_size:
        raise ScenarioError(f"{path} is truncated: its first grain is at sector "
                            f"{h['grain_offset']}, the file has {file_size} bytes")
    if not 0 < h["gd_offset"] < h["grain_offset"] or not h["grain_offset"] <= MAX_CAPACITY:
        raise ScenarioError(f"{path}: the grain directory at sector {h['gd_offset']} is not "
                            f"before the first grain (sector {h['grain_offset']})")


@dataclass(frozen=True)
class VmdkFile:
    """What a real sparse vmdk maps: guest grain to file byte offset.

    Attributes
    ----------
    path : str
    virtual_size, grain_size : int
        Bytes (capacity and granularity times 512).
    header : dict
        The header's fields (sectors, as in the file).
    grains : tuple of (int, int)
        ``(guest grain, byte offset in the file)`` of every grain that holds data, in
        guest order.
    zero_grains : tuple of int
        Grains marked as reading zeros (the zeroed-grain flag).
    file_size : int
    """

    path: str
    virtual_size: int
    grain_size: int
    header: dict[str, Any]
    grains: tuple[tuple[int, int], ...]
    zero_grains: tuple[int, ...] = ()
    file_size: int = 0

    def map(self) -> list[dict[str, Any]]:
        """The file as ``qemu-img map --output=json`` shows it.

        Examples
        --------
        >>> f = VmdkFile("x.vmdk", 196608, 65536, {}, grains=((2, 65536),))
        >>> [(e["start"], e["data"], e.get("offset")) for e in f.map()]
        [(0, False, None), (131072, True, 65536)]
        """
        return grain_map(dict(self.grains), self.zero_grains, self.virtual_size,
                         self.grain_size)


def read_vmdk(path: str | Path) -> VmdkFile:
    """Read the header, grain directory and grain tables of the sparse vmdk at ``path``.

    Raises
    ------
    ScenarioError
        If the file cannot be read, is not a VMDK4 sparse extent, is compressed, or any
        table or grain does not fit in it.
    """
    try:
        with open(path, "rb") as handle:
            return _read_tables(handle, str(path))
    except OSError as exc:
        raise ScenarioError(f"cannot read the image {path}: {exc.strerror or exc}") from None
    except ValueError as exc:                   # a path with a NUL byte
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"cannot read the image {path!r}: {exc}") from None


def _read_tables(handle: BinaryIO, path: str) -> VmdkFile:
    file_size = handle.seek(0, 2)
    handle.seek(0)
    h = parse_vmdk_header(handle.read(HEADER_BYTES))
    _check_header(h, path, file_size)
    grain = h["granularity"]
    entries = h["num_gtes_per_gt"]
    tables = -(-h["capacity"] // (entries * grain))
    guest_grains = -(-h["capacity"] // grain)
    if tables > MAX_GD_ENTRIES:
        raise ScenarioError(f"{path}: a grain directory of {tables} entries is longer than "
                            f"kvmlab reads ({MAX_GD_ENTRIES})")
    directory = struct.unpack(f"<{tables}I", read_at(
        handle, h["gd_offset"] * SECTOR, 4 * tables, "grain directory", path))
    zero_ok = bool(h["flags"] & FLAG_ZERO_GRAIN)
    grains: list[tuple[int, int]] = []
    zero: list[int] = []
    used: dict[int, int] = {}                   # file sector -> the grain stored there
    examined = 0
    for i, table_sector in enumerate(directory):
        if not table_sector:
            continue
        examined += entries
        if examined > MAX_GT_ENTRIES_READ:
            raise ScenarioError(f"{path} has more grain tables than kvmlab reads "
                                f"({MAX_GT_ENTRIES_READ} entries at most)")
        table = struct.unpack(f"<{entries}I", read_at(
            handle, table_sector * SECTOR, 4 * entries, f"grain table {i}", path))
        for j, sector in enumerate(table):
            if not sector:
                continue
            g = i * entries + j
            if g >= guest_grains:
                raise ScenarioError(f"{path}: grain table {i} maps grain {g}, beyond the "
                                    f"capacity ({guest_grains} grains)")
            if zero_ok and sector == ZEROED_GTE:
                zero.append(g)
                continue
            if sector < h["grain_offset"] or (sector + grain) * SECTOR > file_size:
                raise ScenarioError(f"{path} is truncated or corrupt: grain {g} is at "
                                    f"sector {sector}, outside the grains of the file "
                                    f"(sectors {h['grain_offset']} to {file_size // SECTOR})")
            if sector in used:
                raise ScenarioError(f"{path} is corrupt: grains {used[sector]} and {g} are "
                                    f"both stored at sector {sector}")
            used[sector] = g
            grains.append((g, sector * SECTOR))
    return VmdkFile(path=path, virtual_size=h["capacity"] * SECTOR, grain_size=grain * SECTOR,
                    header=h, grains=tuple(grains), zero_grains=tuple(zero),
                    file_size=file_size)

