"""A model of how QEMU lays out a qcow2 image file as a guest writes to it.

A qcow2 file is made of clusters (64 KiB by default). It starts with a header
(cluster 0), the refcount table (cluster 1), the first refcount block (cluster 2)
and the L1 table (from cluster 3). Nothing else is allocated until the guest
writes. The first write into the part of the disk covered by an L2 table
allocates that L2 table, then the data clusters, always at the end of the file:
this is *allocate on first write*. A refcount block is added whenever a new
cluster lies beyond what the existing ones describe. In an overlay, a cluster not
written yet is read from the backing image: *copy on write*.

The model predicts, for every guest byte, where it lives (``qemu-img map``), how
many data clusters are allocated and where the file ends (``qemu-img check``).

Examples
--------
>>> from kvmlab.storage.scenario import StorageScenario
>>> s = StorageScenario.from_dict({"virtual_size": 10485760, "cluster_size": 65536,
...                                "writes": [[1048576, 65536], [100, 10]]})
>>> image = Qcow2Model.from_scenario(s)
>>> for e in image.map():
...     print(e["start"], e["length"], e["data"], e.get("offset"))
0 65536 True 393216
65536 983040 False None
1048576 65536 True 327680
1114112 9371648 False None
>>> image.allocated_clusters, image.image_end_offset
(2, 458752)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kvmlab.errors import ScenarioError
from kvmlab.progress import Progress
from kvmlab.storage.reader import Qcow2File
from kvmlab.storage.scenario import Snapshot, StorageScenario, guest_requests

REFCOUNT_BITS = 16
"""qemu-img's default refcount width."""


@dataclass(frozen=True)
class Allocation:
    """One cluster of the image file and what it holds.

    ``kind`` is ``header``, ``refcount table``, ``refcount block``, ``L1``, ``L2`` or
    ``data``; for data, ``guest_cluster`` says which guest cluster it holds and
    ``write`` which write (index into the scenario's writes) allocated it.
    """

    cluster: int
    kind: str
    guest_cluster: int | None = None
    write: int | None = None


Range = tuple[int, int, int, bool, bool, bool, int | None]
"""(start, length, depth, present, zero, data, file offset)."""


class Layer(Protocol):
    """Anything that can say where a range of guest bytes lives (an image in a chain)."""

    virtual_size: int

    def ranges(self, start: int, end: int, depth: int) -> list[Range]: ...


class Qcow2Model:
    """The clusters of one qcow2 image, as QEMU allocates them.

    Parameters
    ----------
    virtual_size, cluster_size : int
        As given to ``qemu-img create``.
    backing : Layer, optional
        The image this one is an overlay of.

    Examples
    --------
    An internal snapshot shares every cluster; the next write copies what it touches:

    >>> image = Qcow2Model(10485760, 65536)
    >>> image.write(0, 65536)
    >>> image.refcount(image.data[0])
    1
    >>> image.snapshot("s1")
    >>> image.refcount(image.data[0]), image.snapshots
    (2, ['s1'])
    >>> old = image.data[0]
    >>> image.write(0, 512)                  # copy on write: a new L2 table and data cluster
    >>> image.data[0] != old, image.refcount(old), image.refcount(image.data[0])
    (True, 1, 1)
    """

    def __init__(self, virtual_size: int, cluster_size: int,
                 backing: Layer | None = None) -> None:
        self.virtual_size = virtual_size
        self.cluster_size = cluster_size
        self.backing = backing
        self.l2_entries = cluster_size // 8               # 8-byte entries per L2 table
        self.refs_per_block = cluster_size * 8 // REFCOUNT_BITS
        self.reftable_entries = cluster_size // 8         # a one-cluster refcount table
        self.l1_size = -(-virtual_size // (cluster_size * self.l2_entries))
        self.allocations: dict[int, Allocation] = {}      # file cluster -> what it holds
        self.refcounts: dict[int, int] = {}               # file cluster -> references (>0)
        self.refblocks: dict[int, int] = {}               # refcount block index -> cluster
        self.l2_tables: dict[int, int] = {}               # L1 index -> cluster
        self.data: dict[int, int] = {}                    # guest cluster -> file cluster
        self.snapshots: list[str] = []
        self.snapshot_table: tuple[int, int] | None = None   # (first cluster, clusters)
        self.next_free = 0                                # one past the highest cluster used
        self.free_index = 0                               # where QEMU's search starts
        # what `qemu-img create` writes: header, refcount table, first refcount block, L1
        self.refblocks[0] = 2
        self._alloc(1, "header")
        self._alloc(1, "refcount table")
        self._alloc(1, "refcount block")
        self._alloc(self._l1_clusters(), "L1")

    @classmethod
    def from_scenario(cls, scenario: StorageScenario, bar: Progress | None = None,
                      in_guest: bool = False) -> Qcow2Model:
        """Create the image of ``scenario`` (its backing image first), then apply its writes
        and take its snapshots in order.

        ``bar`` (a :mod:`kvmlab.progress` bar), if given, advances by one per write or
        snapshot of the image itself. With ``in_guest``, each write arrives as a guest's
        requests (:func:`kvmlab.storage.scenario.guest_requests`), one page at a time; else
        whole, as ``qemu-io`` sends it. It matters where a request needs a new refcount
        block: QEMU puts it right after that request's data.
        """
        backing: Layer | None = None
        if isinstance(scenario.backing, StorageScenario):
            backing = cls.from_scenario(scenario.backing, in_guest=in_guest)
        elif isinstance(scenario.backing, Qcow2File):
            backing = FileLayer(scenario.backing)
        image = cls(scenario.virtual_size, scenario.cluster_size, backing)
        index = 0
        for step in scenario.steps():
            if isinstance(step, Snapshot):
                image.snapshot(step.name)
            else:
                for request in guest_requests(*step) if in_guest else [step]:
                    image.write(*request, index=index)
                index += 1
            if bar is not None:
                bar.update(1)
        return image

    # -- allocation ------------------------------------------------------------------
    def _l1_clusters(self) -> int:
        return -(-self.l1_size * 8 // self.cluster_size)

    def refcount(self, cluster: int) -> int:
        """How many tables refer to file cluster ``cluster`` (0: free)."""
        return self.refcounts.get(cluster, 0)

    def reopen(self) -> None:
        """A new process opens the image: QEMU searches for free clusters from the start."""
        self.free_index = 0

    def _find_free(self, n: int) -> int:
        """QEMU's search: the first ``n`` free clusters in a row from the search position."""
        while True:
            start = self.free_index
            for _ in range(n):
                taken = self.refcount(self.free_index)
                self.free_index += 1
                if taken:
                    break
            else:
                return start

    def _alloc(self, n: int, kind: str, guest: int | None = None,
               write: int | None = None, at: int | None = None) -> int:
        """Allocate ``n`` clusters (at ``at``, or where QEMU's search finds them)."""
        start = self._find_free(n) if at is None else at
        for i in range(n):
            self.allocations[start + i] = Allocation(
                start + i, kind, None if guest is None else guest + i, write)
            self.refcounts[start + i] = 1
        self.next_free = max(self.next_free, start + n)
        for k in range(start // self.refs_per_block,
                       (start + n - 1) // self.refs_per_block + 1):
            if k not in self.refblocks:
                self._new_refblock(k)
        return start

    def _free_count_at(self, cluster: int, n: int) -> int:
        """How many of the ``n`` clusters from ``cluster`` on are free (QEMU's alloc_at)."""
        count = 0
        while count < n and not self.refcount(cluster + count):
            count += 1
        return count

    def _new_refblock(self, k: int) -> None:
        """Add refcount block ``k`` at the end of the file (QEMU's choice)."""
        if k >= self.reftable_entries:
            raise ScenarioError(
                f"the image would grow past {self.reftable_entries * self.refs_per_block} "
                f"clusters, where QEMU enlarges its refcount table; the model does not cover "
                f"that (use a larger cluster_size or fewer writes)")
        cluster = self.next_free
        self.next_free += 1
        self.free_index = max(self.free_index, self.next_free)
        self.refblocks[k] = cluster
        self.refcounts[cluster] = 1
        self.allocations[cluster] = Allocation(cluster, "refcount block")
        own = cluster // self.refs_per_block
        if own not in self.refblocks:        # described by a block that does not exist yet
            self._new_refblock(own)

    def _unref(self, cluster: int) -> None:
        """Drop one reference; a cluster nobody refers to any more is free again."""
        self.refcounts[cluster] -= 1
        if not self.refcounts[cluster]:
            del self.refcounts[cluster]
            del self.allocations[cluster]
            self.free_index = min(self.free_index, cluster)

    def _own_l2(self, l1_index: int) -> None:
        """Make sure the L2 table for ``l1_index`` exists and is this image's alone."""
        old = self.l2_tables.get(l1_index)
        if old is not None and self.refcount(old) == 1:
            return
        self.l2_tables[l1_index] = self._alloc(1, "L2")
        if old is not None:                  # shared with a snapshot: copy it, drop one ref
            self._unref(old)

    def _needs_new(self, g: int) -> bool:
        return g not in self.data or self.refcount(self.data[g]) > 1

    def write(self, offset: int, length: int, index: int | None = None) -> None:
        """Apply a guest write of ``length`` bytes at ``offset``.

        Like QEMU, the write is handled in pieces: each piece covers clusters of one L2
        table that lie back to back in the file. Clusters written for the first time,
        and clusters shared with a snapshot, get new clusters (the shared ones are
        copied and lose one reference).
        """
        cs = self.cluster_size
        g, last = offset // cs, (offset + length - 1) // cs
        host: int | None = None              # where the piece so far ends in the file
        while g <= last:
            l1_index = g // self.l2_entries
            chunk_end = min(last, (l1_index + 1) * self.l2_entries - 1)
            self._own_l2(l1_index)
            if not self._needs_new(g):       # already this image's: written in place
                run = 1
                while (g + run <= chunk_end and not self._needs_new(g + run)
                       and self.data[g + run] == self.data[g] + run):
                    run += 1
                if host is not None and self.data[g] != host:
                    host = None              # not contiguous: a new piece starts here
                    continue
                host, g = self.data[g] + run, g + run
                continue
            run = 1
            while g + run <= chunk_end and self._needs_new(g + run):
                run += 1
            if host is not None:             # try to carry on right after the piece
                run = self._free_count_at(host, run)
                if not run:
                    host = None
                    continue
            where = self._alloc(run, "data", g, index, at=host)
            for i in range(run):
                old = self.data.get(g + i)
                self.data[g + i] = where + i
                if old is not None:          # copy on write: the snapshot keeps the old one
                    self._unref(old)
            host, g = where + run, g + run

    def snapshot(self, name: str) -> None:
        """Take an internal snapshot, as ``qemu-img snapshot -c NAME`` does.

        The active L1 table is copied to new clusters, every L2 table and data cluster
        gains a reference (so the next write to it copies it first), and the snapshot
        table is written anew while the old one is freed.
        """
        if name in self.snapshots:
            raise ScenarioError(f"the image already has a snapshot called {name!r}")
        self.reopen()
        self._alloc(self._l1_clusters(), "snapshot L1")
        for table in self.l2_tables.values():
            self.refcounts[table] += 1
        for cluster in self.data.values():
            self.refcounts[cluster] += 1
        self.snapshots.append(name)
        table_bytes = sum(snapshot_entry_size(i + 1, n) for i, n in enumerate(self.snapshots))
        n = -(-table_bytes // self.cluster_size)
        old = self.snapshot_table
        self.snapshot_table = (self._alloc(n, "snapshot table"), n)
        if old is not None:
            for c in range(old[0], old[0] + old[1]):
                self._unref(c)
        self.reopen()                        # the next writes come from a new process

    # -- what qemu-img reports ---------------------------------------------------------
    @property
    def allocated_clusters(self) -> int:
        """Data clusters allocated in this image (``qemu-img check``)."""
        return len(self.data)

    @property
    def image_end_offset(self) -> int:
        """Where the file ends, in bytes (``qemu-img check``)."""
        return (max(self.refcounts) + 1) * self.cluster_size

    def ranges(self, start: int, end: int, depth: int = 0) -> list[Range]:
        """Where guest bytes ``start``..``end`` live, cluster by cluster, down the chain."""
        return cluster_ranges(self, start, end, depth)

    def map(self) -> list[dict[str, Any]]:
        """The image as ``qemu-img map --output=json`` shows it."""
        return [_entry(r) for r in merge_ranges(self.ranges(0, self.virtual_size))]

    def layout(self) -> list[Allocation]:
        """Every cluster in use, in file order (for a picture of the image)."""
        return [self.allocations[c] for c in sorted(self.allocations)]


class FileLayer:
    """A real qcow2 file, read before the model runs, as the backing layer of a model.

    Examples
    --------
    >>> base = Qcow2File("base.qcow2", 1048576, 65536, clusters=((0, 5),))
    >>> FileLayer(base).ranges(0, 65536, 1)
    [(0, 65536, 1, True, False, True, 327680)]
    """

    def __init__(self, image: Qcow2File) -> None:
        self.path = image.path
        self.virtual_size = image.virtual_size
        self.cluster_size = image.cluster_size
        self.data = image.data
        self.zero = frozenset(image.zero_clusters)
        self.compressed = frozenset(g for g, _where, _n in image.compressed)

    def ranges(self, start: int, end: int, depth: int) -> list[Range]:
        """Where guest bytes ``start``..``end`` live in this file."""
        return cluster_ranges(self, start, end, depth)


def snapshot_entry_size(snapshot_id: int, name: str) -> int:
    """Bytes one snapshot takes in the snapshot table (QEMU's layout, padded to 8).

    A 40-byte header, 24 bytes of extra data (the VM state size, the disk size, the
    instruction count), then the id and the name.

    Examples
    --------
    >>> snapshot_entry_size(1, "s1")
    72
    """
    raw = 40 + 24 + len(str(snapshot_id)) + len(name.encode())
    return -(-raw // 8) * 8


def cluster_ranges(image: Any, start: int, end: int, depth: int) -> list[Range]:
    """Where guest bytes ``start``..``end`` of ``image`` live, cluster by cluster.

    ``image`` has ``cluster_size``, ``data`` (guest cluster to file cluster), and
    may have ``zero`` (clusters marked as reading zeros), ``compressed`` (compressed
    clusters: data, but at no one offset) and ``backing`` (a layer below); the model and
    a real file read into a :class:`FileLayer` share this walk.
    """
    cs = image.cluster_size
    zero = getattr(image, "zero", ())
    compressed = getattr(image, "compressed", ())
    backing = getattr(image, "backing", None)
    out: list[Range] = []
    for g in range(start // cs, -(-end // cs)):
        s, e = max(start, g * cs), min(end, (g + 1) * cs)
        if g in image.data:
            out.append((s, e - s, depth, True, False, True, image.data[g] * cs + s - g * cs))
        elif g in compressed:
            out.append((s, e - s, depth, True, False, True, None))
        elif g in zero:
            out.append((s, e - s, depth, True, True, False, None))
        elif backing is not None and s < backing.virtual_size:
            out += backing.ranges(s, min(e, backing.virtual_size), depth + 1)
            if e > backing.virtual_size:
                out.append((backing.virtual_size, e - backing.virtual_size,
                            depth, False, True, False, None))
        else:
            out.append((s, e - s, depth, False, True, False, None))
    return out


def _runs(clusters: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive runs in a sorted list: [1, 2, 3, 7] -> (1, 3), (7, 1)."""
    start = prev = None
    for c in clusters:
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            yield start, prev - start + 1
            start = prev = c
    if start is not None:
        yield start, prev - start + 1


def merge_ranges(ranges: list[Range]) -> list[Range]:
    """Join neighbours that look the same and, if they have data, lie back to back in the file.

    This is the rule ``qemu-img map`` uses to print one entry for many clusters.

    Examples
    --------
    >>> merge_ranges([(0, 4, 0, True, False, True, 100), (4, 4, 0, True, False, True, 104),
    ...               (8, 4, 0, True, False, True, 300)])
    [(0, 8, 0, True, False, True, 100), (8, 4, 0, True, False, True, 300)]
    """
    out: list[Range] = []
    for r in ranges:
        if out:
            p = out[-1]
            same = p[2:6] == r[2:6]
            contiguous = (p[6] is None and r[6] is None) or (
                p[6] is not None and r[6] is not None and p[6] + p[1] == r[6])
            if same and contiguous and p[0] + p[1] == r[0]:
                out[-1] = (p[0], p[1] + r[1], *p[2:6], p[6])
                continue
        out.append(r)
    return out


def _entry(r: Range) -> dict[str, Any]:
    start, length, depth, present, zero, data, offset = r
    entry: dict[str, Any] = {"start": start, "length": length, "depth": depth,
                             "present": present, "zero": zero, "data": data}
    if offset is not None:
        entry["offset"] = offset
    return entry
