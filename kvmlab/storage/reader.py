"""Read a real qcow2 file's tables in pure Python (header, L1, L2).

Used to put an existing image under a modelled overlay (a scenario's ``backing``
given as a path is read here once, when the scenario is loaded, so the model only
ever sees the data), and to show a student what is really inside a file.

Examples
--------
>>> parse_header(b"QFI\\xfb" + bytes(100))["version"]
0
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError

__all__ = ["COMPRESSED", "MAGIC", "OFFSET_MASK", "ZERO_FLAG", "Qcow2File", "parse_header",
           "read_qcow2"]

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
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read the image {path}: {exc.strerror or exc}") from None
    h = parse_header(raw)
    if h["backing_file_offset"]:
        raise ScenarioError(f"{path} has a backing file itself; chains of more than "
                            "one backing image are not modelled")
    cluster_size = 1 << h["cluster_bits"]
    l2_entries = cluster_size // 8
    data: list[tuple[int, int]] = []
    zero: list[int] = []
    l1 = struct.unpack(f">{h['l1_size']}Q",
                       raw[h["l1_table_offset"]:h["l1_table_offset"] + 8 * h["l1_size"]])
    for i, l1_entry in enumerate(l1):
        l2_offset = l1_entry & OFFSET_MASK
        if not l2_offset:
            continue
        l2 = struct.unpack(f">{l2_entries}Q", raw[l2_offset:l2_offset + cluster_size])
        for j, entry in enumerate(l2):
            if entry & COMPRESSED:
                raise ScenarioError(f"{path} has compressed clusters; not modelled")
            if entry & OFFSET_MASK:
                data.append((i * l2_entries + j, (entry & OFFSET_MASK) // cluster_size))
            elif entry & ZERO_FLAG:
                zero.append(i * l2_entries + j)
    return Qcow2File(path=str(path), virtual_size=h["size"], cluster_size=cluster_size,
                     clusters=tuple(data), zero_clusters=tuple(zero))
