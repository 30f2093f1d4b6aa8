"""Read a real qcow2 file's tables in pure Python (header, L1, L2).

Used to put an existing image under a modelled overlay (a scenario's ``backing``
given as a path is read here once, when the scenario is loaded, so the model only
ever sees the data), and to show a student what is really inside a file.

A file is read table by table, never whole, and every field of a crafted or truncated
file is checked before it is used: what does not fit is a ScenarioError naming it.

Examples
--------
>>> parse_header(b"QFI\\xfb" + bytes(100))["version"]
0
>>> parse_header(b"QFI\\xfb" + bytes(10))
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: not a qcow2 image: the header is 72 bytes, the file has 14
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kvmlab.errors import ScenarioError

__all__ = ["COMPRESSED", "MAGIC", "MAX_L1_ENTRIES", "MAX_L2_ENTRIES_READ", "MAX_SIZE",
           "OFFSET_MASK", "ZERO_FLAG", "Qcow2File", "parse_header", "read_qcow2"]

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
COMPRESSED = 1 << 62
ZERO_FLAG = 1
HEADER_BYTES = 72
MAX_SIZE = 1 << 50
"""The largest virtual size read (1 PiB), as for a modelled image."""
MAX_L1_ENTRIES = 1 << 22
"""QEMU's own limit: an L1 table of at most 32 MiB (``QCOW_MAX_L1_SIZE``)."""
MAX_L2_ENTRIES_READ = 1 << 23
"""The most L2 entries looked at (L2 tables read times entries per table): 1024 tables of
a 64 KiB-cluster image, which maps 64 GiB of data; about a second of work."""


def parse_header(data: bytes) -> dict[str, Any]:
    """The fields of a qcow2 header (the first 72 bytes)."""
    if data[:4] != MAGIC:
        raise ScenarioError("not a qcow2 image (its first bytes are not QFI\\xfb)")
    if len(data) < HEADER_BYTES:
        raise ScenarioError(f"not a qcow2 image: the header is {HEADER_BYTES} bytes, the file "
                            f"has {len(data)}")
    (version, backing_offset, backing_size, cluster_bits, size, _crypt, l1_size, l1_offset,
     reftable_offset, reftable_clusters) = struct.unpack(">IQIIQIIQQI", data[4:60])
    return {"version": version, "backing_file_offset": backing_offset,
            "backing_file_size": backing_size, "cluster_bits": cluster_bits, "size": size,
            "l1_size": l1_size, "l1_table_offset": l1_offset,
            "refcount_table_offset": reftable_offset,
            "refcount_table_clusters": reftable_clusters}


def _check_header(h: dict[str, Any], path: str) -> None:
    """Refuse header fields no image QEMU writes can have."""
    if h["version"] not in (2, 3):
        raise ScenarioError(f"{path}: qcow2 version {h['version']} is not 2 or 3")
    if not 9 <= h["cluster_bits"] <= 21:
        raise ScenarioError(f"{path}: cluster_bits {h['cluster_bits']} is not 9-21 "
                            "(clusters of 512 B to 2 MiB)")
    if h["size"] > MAX_SIZE:
        raise ScenarioError(f"{path}: a virtual size of {h['size']} bytes is more than "
                            f"{MAX_SIZE} (1 PiB)")
    cluster_size = 1 << h["cluster_bits"]
    needed = -(-h["size"] // (cluster_size * (cluster_size // 8)))
    if not needed <= h["l1_size"] <= MAX_L1_ENTRIES:
        raise ScenarioError(f"{path}: an L1 table of {h['l1_size']} entries does not fit a "
                            f"virtual size of {h['size']} bytes (it needs {needed} to "
                            f"{MAX_L1_ENTRIES})")


def _read_at(handle: BinaryIO, offset: int, length: int, what: str, path: str) -> bytes:
    """Exactly ``length`` bytes at ``offset``; a truncated file says so."""
    handle.seek(offset)
    chunk = handle.read(length)
    if len(chunk) != length:
        raise ScenarioError(f"{path} is truncated: its {what} at byte {offset} needs "
                            f"{length} bytes, the file has {len(chunk)} there")
    return chunk


@dataclass(frozen=True)
class Qcow2File:
    """The guest-cluster to file-cluster mapping of a real qcow2 image (no backing chain).

    Attributes
    ----------
    path : str
        Where the file is (as given).
    virtual_size, cluster_size : int
        From its header.
    clusters : tuple of (int, int)
        ``(guest cluster, file cluster)`` for every guest cluster that holds data,
        in guest order.
    zero_clusters : tuple of int
        Guest clusters marked as reading zeros.
    """

    path: str
    virtual_size: int
    cluster_size: int
    clusters: tuple[tuple[int, int], ...]
    zero_clusters: tuple[int, ...] = ()

    @property
    def data(self) -> dict[int, int]:
        """Guest cluster to file cluster, as a dict (like ``Qcow2Model.data``)."""
        return dict(self.clusters)


def read_qcow2(path: str | Path) -> Qcow2File:
    """Read the tables of the qcow2 image at ``path``.

    Raises
    ------
    ScenarioError
        If the file cannot be read, is not a qcow2 image, has a backing file itself, or
        holds compressed clusters (neither is modelled).
    """
    try:
        with open(path, "rb") as handle:
            return _read_tables(handle, str(path))
    except OSError as exc:
        raise ScenarioError(f"cannot read the image {path}: {exc.strerror or exc}") from None
    except ValueError as exc:                  # a path with a NUL byte
        raise ScenarioError(f"cannot read the image {path!r}: {exc}") from None


def _read_tables(handle: BinaryIO, path: str) -> Qcow2File:
    file_size = handle.seek(0, 2)
    handle.seek(0)
    h = parse_header(handle.read(HEADER_BYTES))
    _check_header(h, path)
    if h["backing_file_offset"]:
        raise ScenarioError(f"{path} has a backing file itself; chains of more than "
                            "one backing image are not modelled")
    cluster_size = 1 << h["cluster_bits"]
    l2_entries = cluster_size // 8
    guest_clusters = -(-h["size"] // cluster_size)
    data: list[tuple[int, int]] = []
    zero: list[int] = []
    l1 = struct.unpack(f">{h['l1_size']}Q", _read_at(
        handle, h["l1_table_offset"], 8 * h["l1_size"], "L1 table", path))
    examined = 0
    for i, l1_entry in enumerate(l1):
        l2_offset = l1_entry & OFFSET_MASK
        if not l2_offset:
            continue
        examined += l2_entries
        if examined > MAX_L2_ENTRIES_READ:
            raise ScenarioError(f"{path} has more L2 tables than kvmlab reads "
                                f"({MAX_L2_ENTRIES_READ} entries at most)")
        l2 = struct.unpack(f">{l2_entries}Q", _read_at(
            handle, l2_offset, cluster_size, f"L2 table {i}", path))
        for j, entry in enumerate(l2):
            guest = i * l2_entries + j
            if entry & COMPRESSED:
                raise ScenarioError(f"{path} has compressed clusters; not modelled")
            if not entry & (OFFSET_MASK | ZERO_FLAG):
                continue
            if guest >= guest_clusters:
                raise ScenarioError(f"{path}: L2 table {i} maps guest cluster {guest}, beyond "
                                    f"the virtual size ({guest_clusters} clusters)")
            if entry & OFFSET_MASK:
                if (entry & OFFSET_MASK) + cluster_size > file_size:
                    raise ScenarioError(f"{path} is truncated: guest cluster {guest} is at "
                                        f"byte {entry & OFFSET_MASK}, past the end of the "
                                        f"file ({file_size} bytes)")
                data.append((guest, (entry & OFFSET_MASK) // cluster_size))
            else:
                zero.append(guest)
    return Qcow2File(path=path, virtual_size=h["size"], cluster_size=cluster_size,
                     clusters=tuple(data), zero_clusters=tuple(zero))
