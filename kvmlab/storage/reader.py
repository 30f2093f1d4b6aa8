"""Read a real qcow2 file's tables in pure Python (header, L1, L2), and its guest bytes
(compressed clusters inflated as QEMU does: raw deflate).

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
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kvmlab.errors import ScenarioError

__all__ = ["COMPRESSED", "MAGIC", "MAX_CHAIN", "MAX_L1_ENTRIES", "MAX_L2_ENTRIES_READ",
           "MAX_READ", "MAX_SIZE", "OFFSET_MASK", "ZERO_FLAG", "Qcow2File", "check_chain",
           "compressed_extent", "inflate", "parse_header", "read_at", "read_guest", "read_qcow2"]

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


def read_at(handle: BinaryIO, offset: int, length: int, what: str, path: str) -> bytes:
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
    compressed : tuple of (int, int, int)
        ``(guest cluster, byte offset, bytes)`` of every compressed cluster: where its
        deflate stream is (:func:`compressed_extent`, :func:`read_guest`).
    """

    path: str
    virtual_size: int
    cluster_size: int
    clusters: tuple[tuple[int, int], ...]
    zero_clusters: tuple[int, ...] = ()
    compressed: tuple[tuple[int, int, int], ...] = ()

    @property
    def data(self) -> dict[int, int]:
        """Guest cluster to file cluster, as a dict (like ``Qcow2Model.data``)."""
        return dict(self.clusters)


def read_qcow2(path: str | Path) -> Qcow2File:
    """Read the tables of the qcow2 image at ``path``.

    Raises
    ------
    ScenarioError
        If the file cannot be read, is not a qcow2 image, or has a backing file itself
        (not modelled; a chain that loops says so).
    """
    try:
        with open(path, "rb") as handle:
            return _read_tables(handle, str(path))
    except OSError as exc:
        raise ScenarioError(f"cannot read the image {path}: {exc.strerror or exc}") from None
    except ValueError as exc:                  # a path with a NUL byte
        raise ScenarioError(f"cannot read the image {path!r}: {exc}") from None


MAX_CHAIN = 16
"""How far :func:`check_chain` follows backing file names before it gives up."""


def _backing_name(handle: BinaryIO, h: dict[str, Any], path: str) -> str:
    """The backing file name a qcow2 header points to (as written: maybe relative)."""
    size = h["backing_file_size"]
    if not 0 < size <= 1023:
        raise ScenarioError(f"{path}: a backing file name of {size} bytes is not 1-1023")
    raw = read_at(handle, h["backing_file_offset"], size, "backing file name", path)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: its backing file name is not UTF-8") from None


def check_chain(handle: BinaryIO, h: dict[str, Any], path: str) -> None:
    """Follow the backing file names from ``path``; a chain that comes back to a file
    already in it is refused, naming the loop.

    Only names are followed (each file's header and backing name, nothing more); a chain
    that ends, or a file that cannot be read, is left for the caller to judge.
    """
    seen = [Path(path).resolve()]
    name = _backing_name(handle, h, path)
    while len(seen) <= MAX_CHAIN:
        if ":" in name.split("/")[0]:            # a protocol (nbd:, json:...), not a file
            return
        following = (seen[-1].parent / name).resolve()
        if following in seen:
            loop = " -> ".join(p.name for p in [*seen[seen.index(following):], following])
            raise ScenarioError(f"the backing chain loops ({loop}): a backing chain must end "
                                "in an image without a backing file")
        seen.append(following)
        try:
            with open(following, "rb") as nxt:
                head = parse_header(nxt.read(HEADER_BYTES))
                if not head["backing_file_offset"]:
                    return
                name = _backing_name(nxt, head, str(following))
        except (OSError, ScenarioError, ValueError):
            return


def _read_tables(handle: BinaryIO, path: str) -> Qcow2File:
    file_size = handle.seek(0, 2)
    handle.seek(0)
    h = parse_header(handle.read(HEADER_BYTES))
    _check_header(h, path)
    if h["backing_file_offset"]:
        check_chain(handle, h, path)
        raise ScenarioError(f"{path} has a backing file itself; chains of more than "
                            "one backing image are not modelled")
    cluster_size = 1 << h["cluster_bits"]
    l2_entries = cluster_size // 8
    guest_clusters = -(-h["size"] // cluster_size)
    data: list[tuple[int, int]] = []
    zero: list[int] = []
    packed: list[tuple[int, int, int]] = []
    l1 = struct.unpack(f">{h['l1_size']}Q", read_at(
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
        l2 = struct.unpack(f">{l2_entries}Q", read_at(
            handle, l2_offset, cluster_size, f"L2 table {i}", path))
        for j, entry in enumerate(l2):
            guest = i * l2_entries + j
            if entry & COMPRESSED:
                if guest >= guest_clusters:
                    raise ScenarioError(f"{path}: L2 table {i} maps guest cluster {guest}, "
                                        f"beyond the virtual size ({guest_clusters} clusters)")
                where, length = compressed_extent(entry, h["cluster_bits"])
                if not where or where + length > file_size:
                    raise ScenarioError(f"{path} is truncated or corrupt: compressed guest "
                                        f"cluster {guest} is {length} bytes at byte {where}, "
                                        f"the file has {file_size}")
                packed.append((guest, where, length))
                continue
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
                     clusters=tuple(data), zero_clusters=tuple(zero),
                     compressed=tuple(packed))


def compressed_extent(entry: int, cluster_bits: int) -> tuple[int, int]:
    """Where a compressed cluster's deflate stream lies in the file: ``(byte offset,
    bytes to read)``, from its L2 entry (QEMU's layout: the low ``62 - (cluster_bits - 8)``
    bits are the offset, the bits above them up to bit 61 the extra 512-byte sectors).

    Examples
    --------
    >>> compressed_extent(COMPRESSED | (1 << 54) | 0x50210, 16)   # 2 sectors from 0x50210
    (328208, 1008)
    """
    offset_bits = 62 - (cluster_bits - 8)
    offset = entry & ((1 << offset_bits) - 1)
    sectors = ((entry & ((1 << 62) - 1)) >> offset_bits) + 1
    return offset, sectors * 512 - (offset & 511)


def inflate(raw: bytes, cluster_size: int, what: str) -> bytes:
    """A compressed cluster's bytes: a raw deflate stream (no zlib header, as QEMU writes
    it) that must give exactly one cluster; anything else is a ScenarioError.

    Examples
    --------
    >>> import zlib
    >>> c = zlib.compressobj(wbits=-12)
    >>> inflate(c.compress(b"a" * 512) + c.flush() + bytes(7), 512, "x") == b"a" * 512
    True
    >>> inflate(b"nonsense", 512, "guest cluster 3")      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: guest cluster 3 is not a valid deflate stream: ...
    """
    d = zlib.decompressobj(wbits=-15)
    try:
        out = d.decompress(raw, cluster_size + 1)
    except zlib.error as exc:
        raise ScenarioError(f"{what} is not a valid deflate stream: {exc}") from None
    if len(out) != cluster_size:
        raise ScenarioError(f"{what} inflates to {len(out)} bytes, not one cluster "
                            f"({cluster_size})")
    return out


MAX_READ = 64 << 20
"""The most guest bytes :func:`read_guest` returns at once (64 MiB)."""


def read_guest(image: Qcow2File, offset: int, length: int) -> bytes:
    """Guest bytes ``offset``..``offset + length`` of a qcow2 file read with
    :func:`read_qcow2`: data clusters as they are, compressed clusters inflated, the rest
    zeros (a file with a backing image is never read, see :func:`read_qcow2`).

    Raises
    ------
    ScenarioError
        For a range outside the disk or over :data:`MAX_READ`, or a cluster that does not
        read (a corrupt deflate stream, a file that changed).
    """
    if offset < 0 or length < 0 or offset + length > image.virtual_size or length > MAX_READ:
        raise ScenarioError(f"cannot read {length} bytes at {offset} of a "
                            f"{image.virtual_size}-byte disk (at most {MAX_READ} at once)")
    cs = image.cluster_size
    data, packed = image.data, {g: (w, n) for g, w, n in image.compressed}
    out = bytearray()
    try:
        with open(image.path, "rb") as handle:
            for g in range(offset // cs, -(-(offset + length) // cs)):
                if g in data:
                    cluster = read_at(handle, data[g] * cs, cs, f"guest cluster {g}",
                                       image.path)
                elif g in packed:
                    where, n = packed[g]
                    cluster = inflate(read_at(handle, where, n, f"compressed cluster {g}",
                                               image.path), cs, f"compressed guest cluster {g}")
                else:
                    cluster = bytes(cs)
                start = max(offset, g * cs) - g * cs
                out += cluster[start:min(offset + length, (g + 1) * cs) - g * cs]
    except OSError as exc:
        raise ScenarioError(f"cannot read the image {image.path}: {exc.strerror or exc}"
                            ) from None
    return bytes(out)
