"""Read a real qcow2 file's tables in pure Python (header, L1, L2).

Used to put an existing image under a modelled overlay, and to show a student
what is really inside a file.

Examples
--------
>>> parse_header(b"QFI\\xfb" + bytes(100))["version"]
0
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.storage.qcow2 import Range, cluster_ranges

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
COMPRESSED = 1 << 62
ZERO_FLAG = 1


def parse_header(data: bytes) -> dict[str, Any]:
    """The fields of a qcow2 header (the first 72 bytes)."""
    if data[:4] != MAGIC:
        raise ScenarioError("not a qcow2 image (its first bytes are not QFI\\xfb)")
    (version, backing_offset, backing_size, cluster_bits, size, _crypt, l1_size, l1_offset,
     reftable_offset, reftable_clusters) = struct.unpack(">IQIIQIIQQI", data[4:60])
    return {"version": version, "backing_file_offset": backing_offset,
            "backing_file_size": backing_size, "cluster_bits": cluster_bits, "size": size,
            "l1_size": l1_size, "l1_table_offset": l1_offset,
            "refcount_table_offset": reftable_offset,
            "refcount_table_clusters": reftable_clusters}


class Qcow2File:
    """The guest-cluster to file-offset mapping of a real qcow2 image (no backing chain)."""

    def __init__(self, path: str | Path) -> None:
        raw = Path(path).read_bytes()
        h = parse_header(raw)
        if h["backing_file_offset"]:
            raise ScenarioError(f"{path} has a backing file itself; chains of more than "
                                "one backing image are not modelled")
        self.path = str(path)
        self.virtual_size = h["size"]
        self.cluster_size = 1 << h["cluster_bits"]
        l2_entries = self.cluster_size // 8
        self.data: dict[int, int] = {}
        self.zero: set[int] = set()
        l1 = struct.unpack(f">{h['l1_size']}Q",
                           raw[h["l1_table_offset"]:h["l1_table_offset"] + 8 * h["l1_size"]])
        for i, l1_entry in enumerate(l1):
            l2_offset = l1_entry & OFFSET_MASK
            if not l2_offset:
                continue
            l2 = struct.unpack(f">{l2_entries}Q", raw[l2_offset:l2_offset + self.cluster_size])
            for j, entry in enumerate(l2):
                if entry & COMPRESSED:
                    raise ScenarioError(f"{path} has compressed clusters; not modelled")
                if entry & OFFSET_MASK:
                    self.data[i * l2_entries + j] = (entry & OFFSET_MASK) // self.cluster_size
                elif entry & ZERO_FLAG:
                    self.zero.add(i * l2_entries + j)

    def ranges(self, start: int, end: int, depth: int) -> list[Range]:
        """Where guest bytes ``start``..``end`` live in this file."""
        return cluster_ranges(self, start, end, depth)


def read_qcow2(path: str | Path) -> Qcow2File:
    """Read the tables of the qcow2 image at ``path``."""
    return Qcow2File(path)
