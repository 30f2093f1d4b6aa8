"""Guest I/O through the image layers: a small simpy model of raw, qcow2 and overlay disks.

**This is a teaching model, not a measurement.** Its disk is two numbers (a
positioning cost and a transfer rate) and its image formats are a handful of
rules. It has not been fitted to, or checked against, a real disk: use it to see
*why* one layout costs more than another, and measure (``fio`` in a guest) when
you need real figures.

The model
---------
A guest issues ``count`` requests of ``request_size`` bytes, one after the other
(or ``queue_depth`` at a time), at sequential or random offsets, each a read
with probability ``read_fraction``. Each request becomes a few disk operations,
and the disk (a ``simpy.Resource``) carries out one operation at a time: an
operation costs ``seek_s`` unless it starts where the previous one ended in the
same file, plus its length divided by ``bandwidth_bytes_per_s``.

``raw``
    Guest offset = file offset. One operation per request. (The file is treated
    as fully allocated: the cost of a file system filling holes is left out.)
``qcow2``
    Guest offsets are translated through L1 and L2 tables. The L1 table is held
    in memory; an L2 table that is not among the ``l2_cache_tables`` most
    recently used ones is read from the file first (a *metadata read*). The
    first write to a guest cluster allocates a cluster at the end of the file
    (where :class:`~kvmlab.storage.qcow2.Qcow2Model` puts it, L2 tables and
    refcount blocks included), writes the whole cluster, and then updates the
    refcount block and the L2 table on disk (*metadata writes*; one more for the
    L1 entry of a new L2 table or the refcount-table entry of a new refcount
    block). A write that covers only part of a new cluster also writes the rest
    of it (*copy-on-write bytes*, zeros here). Reading a cluster that was never
    written costs nothing: the image knows it holds zeros.
``overlay``
    A qcow2 image over a qcow2 base image that holds data everywhere (think of a
    template with an installed system). Reading a cluster the overlay does not
    have reads the base (with an L2 cache of its own). A partial first write to
    a cluster reads the base cluster first, then writes the whole cluster into
    the overlay; the bytes copied count as copy-on-write bytes.

Simplifications worth knowing: metadata is written back after every
allocating request, as if the guest flushed each write (QEMU batches these
updates until a flush or a cache eviction); QEMU's real L2 cache is far larger
by default (recent versions cover the whole of a 256 GiB image with 64 KiB
clusters); a request allocates its clusters the moment it starts; and on file
systems that support it QEMU fills the rest of a new cluster with a cheap
"write zeroes" instead of writing it.

Examples
--------
>>> w = IoWorkload(format="qcow2", pattern="sequential", request_size=65536, count=64)
>>> first = simulate_io(w)
>>> first.allocated_clusters, first.metadata_writes   # refcount block + L2 each, 1 L1 entry
(64, 129)
>>> raw = simulate_io(w.replace(format="raw"))
>>> raw.throughput_bytes_per_s > first.throughput_bytes_per_s
True
>>> simulate_io(w.replace(request_size=4096, count=1)).cow_bytes   # 64 KiB - 4 KiB
61440
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from kvmlab.errors import ScenarioError
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.scenario import DEFAULT_CLUSTER, MAX_CLUSTER, MIN_CLUSTER

FORMATS = ("raw", "qcow2", "overlay")
PATTERNS = ("sequential", "random")
SECTOR = 512
MAX_COUNT = 100_000
MAX_PASSES = 10
MAX_QUEUE_DEPTH = 64
MAX_GUEST_CLUSTERS = 65536
TEACHING_NOTE = "a teaching model with made-up disk figures, not measured on a real disk"

__all__ = ["DISKS", "FORMATS", "HDD", "PATTERNS", "SSD", "DiskOp", "DiskParams", "IoResult",
           "IoWorkload", "RequestRecord", "plan_requests", "simulate_io"]


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{what} must be a whole number, not {value!r}")
    return value


def _within(value: Any, what: str, low: int, high: int) -> int:
    number = _whole(value, what)
    if not low <= number <= high:
        raise ScenarioError(f"{what} must be between {low} and {high}, not {number}")
    return number


# ----------------------------------------------------------------------------- the disk


@dataclass(frozen=True)
class DiskParams:
    """What one disk operation costs: ``seek_s`` when it does not start where the last
    one ended, plus ``length / bandwidth_bytes_per_s``.

    The defaults look like a SATA SSD (60 µs to reach a new place, 500 MB/s);
    :data:`HDD` looks like a 7200 rpm disk (8 ms, 150 MB/s). Neither was measured.

    Examples
    --------
    >>> SSD.op_s(65536, contiguous=True) < SSD.op_s(65536, contiguous=False)
    True
    >>> round(HDD.op_s(4096, contiguous=False) * 1000, 3)   # ms: almost all positioning
    8.027
    """

    seek_s: float = 60e-6
    bandwidth_bytes_per_s: float = 500e6
    name: str = "ssd"

    def __post_init__(self) -> None:
        if _finite(self.seek_s, "a disk's seek_s") < 0:
            raise ScenarioError(f"a disk's seek_s cannot be negative, not {self.seek_s}")
        if _finite(self.bandwidth_bytes_per_s, "a disk's bandwidth_bytes_per_s") <= 0:
            raise ScenarioError("a disk's bandwidth_bytes_per_s must be positive, not "
                                f"{self.bandwidth_bytes_per_s}")

    def op_s(self, length: int, contiguous: bool) -> float:
        """Seconds for one operation of ``length`` bytes."""
        return (0.0 if contiguous else self.seek_s) + length / self.bandwidth_bytes_per_s

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> DiskParams:
        """A preset name (``'ssd'``, ``'hdd'``) or a dict of the fields."""
        if isinstance(data, str):
            if data not in DISKS:
                raise ScenarioError(f"disk must be one of {sorted(DISKS)} or a dict with "
                                    f"seek_s and bandwidth_bytes_per_s, not {data!r}")
            return DISKS[data]
        if not isinstance(data, Mapping):
            raise ScenarioError("disk must be a preset name or a dict with seek_s and "
                                "bandwidth_bytes_per_s")
        known = {"seek_s", "bandwidth_bytes_per_s", "name"}
        if unknown := set(data) - known:
            raise ScenarioError(f"unknown disk field(s) {sorted(unknown)}; known: "
                                f"{sorted(known)}")
        return cls(**{"name": "custom", **data})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SSD = DiskParams()
HDD = DiskParams(seek_s=8e-3, bandwidth_bytes_per_s=150e6, name="hdd")
DISKS: dict[str, DiskParams] = {"ssd": SSD, "hdd": HDD}
"""The disk presets by name."""


# ----------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class IoWorkload:
    """What the guest does, to which kind of image, on which disk.

    Attributes
    ----------
    format : str
        ``'raw'``, ``'qcow2'`` or ``'overlay'`` (a qcow2 image over a full qcow2 base).
    pattern : str
        ``'sequential'`` (wrapping round at the end of the disk) or ``'random'``
        (offsets aligned to the request size).
    request_size : int
        Bytes per request, a positive multiple of 512, at most ``virtual_size``.
    count : int
        Requests per pass.
    read_fraction : float
        Share of the requests that are reads (0: all writes, 1: all reads).
    passes : int
        How many times the same sequence of requests is issued (a second pass of
        writes finds its clusters allocated).
    virtual_size, cluster_size : int
        The guest disk's size and the image's cluster size, in bytes.
    l2_cache_tables : int
        L2 tables held in memory per qcow2 image (least recently used goes first).
    queue_depth : int
        Requests the guest keeps in flight at once.
    prefill : bool
        Start from an image that already holds data everywhere (its clusters in
        guest order) instead of an empty one; the overlay's base is always full.
    disk : DiskParams
        The disk's costs (:data:`SSD` by default).

    Examples
    --------
    >>> w = IoWorkload.from_dict({"format": "overlay", "pattern": "random",
    ...                           "request_size": 4096, "disk": "hdd"})
    >>> w.disk.name, IoWorkload.from_dict(w.to_dict()) == w
    ('hdd', True)
    >>> IoWorkload(request_size=1000)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: request_size must be a positive multiple of 512 bytes, not 1000
    """

    format: str = "qcow2"
    pattern: str = "sequential"
    request_size: int = 65536
    count: int = 256
    read_fraction: float = 0.0
    passes: int = 1
    virtual_size: int = 1024 ** 3
    cluster_size: int = DEFAULT_CLUSTER
    l2_cache_tables: int = 4
    queue_depth: int = 1
    prefill: bool = False
    disk: DiskParams = field(default=SSD)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ScenarioError(f"format must be one of {', '.join(map(repr, FORMATS))}, "
                                f"not {self.format!r}")
        if self.pattern not in PATTERNS:
            raise ScenarioError(f"pattern must be 'sequential' or 'random', not "
                                f"{self.pattern!r}")
        size = _whole(self.virtual_size, "virtual_size")
        if size <= 0 or size % SECTOR:
            raise ScenarioError(f"virtual_size must be a positive multiple of 512 bytes, "
                                f"not {size}")
        request = _whole(self.request_size, "request_size")
        if request <= 0 or request % SECTOR:
            raise ScenarioError(f"request_size must be a positive multiple of 512 bytes, "
                                f"not {request}")
        if request > size:
            raise ScenarioError(f"request_size ({request}) must be within the virtual size "
                                f"({size})")
        cluster = _whole(self.cluster_size, "cluster_size")
        if cluster < MIN_CLUSTER or cluster > MAX_CLUSTER or cluster & (cluster - 1):
            raise ScenarioError(f"cluster_size must be a power of two between 512 B and "
                                f"2 MiB, not {cluster}")
        if self.format != "raw" and -(-size // cluster) > MAX_GUEST_CLUSTERS:
            raise ScenarioError(f"the model keeps at most {MAX_GUEST_CLUSTERS} guest clusters "
                                f"(virtual_size / cluster_size); use larger clusters or a "
                                f"smaller disk")
        _within(self.count, "count", 1, MAX_COUNT)
        _within(self.passes, "passes", 1, MAX_PASSES)
        _within(self.l2_cache_tables, "l2_cache_tables", 1, 4096)
        _within(self.queue_depth, "queue_depth", 1, MAX_QUEUE_DEPTH)
        share = _finite(self.read_fraction, "read_fraction")
        if not 0 <= share <= 1:
            raise ScenarioError(f"read_fraction is a share of the requests, between 0 and 1, "
                                f"not {share}")
        if not isinstance(self.prefill, bool):
            raise ScenarioError(f"prefill must be true or false, not {self.prefill!r}")
        if not isinstance(self.disk, DiskParams):
            raise ScenarioError("disk must be a DiskParams (or, in from_dict, a preset name)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IoWorkload:
        """Build and check a workload; a broken rule raises ScenarioError naming it."""
        if not isinstance(data, Mapping):
            raise ScenarioError("an I/O workload is a dict of IoWorkload's fields")
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := set(data) - known:
            raise ScenarioError(f"unknown workload field(s) {sorted(unknown)}; known: "
                                f"{sorted(known)}")
        values = dict(data)
        if "disk" in values and not isinstance(values["disk"], DiskParams):
            values["disk"] = DiskParams.from_dict(values["disk"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["disk"] = self.disk.to_dict()
        return out

    def replace(self, **changes: Any) -> IoWorkload:
        """A copy with some fields changed (and checked again)."""
        if isinstance(changes.get("disk"), str | Mapping):
            changes["disk"] = DiskParams.from_dict(changes["disk"])
        return dataclasses.replace(self, **changes)

    @property
    def operation(self) -> str:
        """``'write'``, ``'read'`` or for example ``'30% reads'``."""
        if self.read_fraction == 0:
            return "write"
        if self.read_fraction == 1:
            return "read"
        return f"{self.read_fraction:.0%} reads"

    @property
    def label(self) -> str:
        """A short name for figures: ``'qcow2, sequential write'``."""
        return f"{self.format}, {self.pattern} {self.operation}"


def _requests(workload: IoWorkload, rng: random.Random) -> list[tuple[bool, int]]:
    """One pass: (is_read, offset) per request."""
    size = workload.request_size
    slots = workload.virtual_size // size
    out = []
    for i in range(workload.count):
        if workload.read_fraction in (0, 1):
            is_read = workload.read_fraction == 1
        else:
            is_read = rng.random() < workload.read_fraction
        slot = i % slots if workload.pattern == "sequential" else rng.randrange(slots)
        out.append((is_read, slot * size))
    return out


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class DiskOp:
    """One operation the disk carries out: ``length`` bytes at ``offset`` of ``file``
    (``'raw'``, ``'image'`` or ``'base'``); ``what`` says why (``data``, ``L2``...)."""

    file: str
    offset: int
    length: int
    write: bool
    what: str


@dataclass
class _Counts:
    metadata_reads: int = 0
    metadata_writes: int = 0
    cow_bytes: int = 0
    allocated: int = 0
    base_reads: int = 0


class _Image:
    """One qcow2 file in the chain, with its L2 cache."""

    def __init__(self, model: Qcow2Model, file: str, cache_tables: int) -> None:
        self.model = model
        self.file = file
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.cache_tables = cache_tables
        kinds = {a.kind: a.cluster for a in reversed(model.layout())}
        self.l1_cluster = kinds["L1"]
        self.reftable_cluster = kinds["refcount table"]

    def remember(self, l1_index: int) -> None:
        self.cache[l1_index] = None
        self.cache.move_to_end(l1_index)
        while len(self.cache) > self.cache_tables:
            self.cache.popitem(last=False)

    def lookup(self, l1_index: int, ops: list[DiskOp], counts: _Counts) -> None:
        """Find the L2 table of ``l1_index``: free if cached or absent, else read it."""
        if l1_index in self.cache:
            self.cache.move_to_end(l1_index)
            return
        table = self.model.l2_tables.get(l1_index)
        if table is None:                     # the L1 entry (in memory) is zero
            return
        cs = self.model.cluster_size
        ops.append(DiskOp(self.file, table * cs, cs, False, "L2"))
        counts.metadata_reads += 1
        self.remember(l1_index)


def _merge(ops: list[DiskOp]) -> list[DiskOp]:
    """Join back-to-back operations of one kind into one."""
    out: list[DiskOp] = []
    for op in ops:
        if out:
            p = out[-1]
            if (p.file, p.write, p.what) == (op.file, op.write, op.what) and \
                    p.offset + p.length == op.offset:
                out[-1] = dataclasses.replace(p, length=p.length + op.length)
                continue
        out.append(op)
    return out


class _Planner:
    """Turns guest requests into disk operations, keeping the images' state."""

    def __init__(self, workload: IoWorkload) -> None:
        self.w = workload
        self.image: _Image | None = None
        self.base: _Image | None = None
        if workload.format == "raw":
            return
        size, cs = workload.virtual_size, workload.cluster_size
        backing = None
        if workload.format == "overlay":
            base = Qcow2Model(size, cs)
            base.write(0, size)
            self.base = _Image(base, "base", workload.l2_cache_tables)
            backing = base
        top = Qcow2Model(size, cs, backing)
        if workload.prefill:
            top.write(0, size)
        self.image = _Image(top, "image", workload.l2_cache_tables)

    def _pieces(self, offset: int, length: int) -> Iterator[tuple[int, int, int]]:
        cs = self.w.cluster_size
        for g in range(offset // cs, -(-(offset + length) // cs)):
            yield g, max(offset, g * cs), min(offset + length, (g + 1) * cs)

    def plan(self, is_read: bool, offset: int, length: int, index: int
             ) -> tuple[list[DiskOp], _Counts]:
        counts = _Counts()
        if self.image is None:
            return [DiskOp("raw", offset, length, not is_read, "data")], counts
        if is_read:
            return _merge(self._read(offset, length, counts)), counts
        return _merge(self._write(offset, length, index, counts)), counts

    def _base_offset(self, g: int, ops: list[DiskOp], counts: _Counts) -> int:
        assert self.base is not None
        base = self.base.model
        self.base.lookup(g // base.l2_entries, ops, counts)
        return base.data[g] * base.cluster_size

    def _read(self, offset: int, length: int, counts: _Counts) -> list[DiskOp]:
        assert self.image is not None
        model, cs = self.image.model, self.w.cluster_size
        ops: list[DiskOp] = []
        for g, s, e in self._pieces(offset, length):
            self.image.lookup(g // model.l2_entries, ops, counts)
            if g in model.data:
                ops.append(DiskOp("image", model.data[g] * cs + s - g * cs, e - s, False,
                                  "data"))
            elif self.base is not None and g in self.base.model.data:
                where = self._base_offset(g, ops, counts)
                ops.append(DiskOp("base", where + s - g * cs, e - s, False, "data"))
                counts.base_reads += 1
        return ops

    def _write(self, offset: int, length: int, index: int, counts: _Counts) -> list[DiskOp]:
        assert self.image is not None
        image, model, cs = self.image, self.image.model, self.w.cluster_size
        ops: list[DiskOp] = []
        pieces = list(self._pieces(offset, length))
        for l1 in dict.fromkeys(g // model.l2_entries for g, _s, _e in pieces):
            image.lookup(l1, ops, counts)
        had_data, had_l2 = set(model.data), set(model.l2_tables)
        had_refblocks, first_new = set(model.refblocks), model.next_free
        model.write(offset, length, index=index)
        new_l2 = [k for k in model.l2_tables if k not in had_l2]
        for l1 in new_l2:
            image.remember(l1)                 # made in memory, nothing to read
        data_ops: list[DiskOp] = []
        for g, s, e in pieces:
            if g in had_data:
                data_ops.append(DiskOp("image", model.data[g] * cs + s - g * cs, e - s, True,
                                       "data"))
                continue
            counts.allocated += 1
            cluster_bytes = min(cs, self.w.virtual_size - g * cs)
            cow = cluster_bytes - (e - s)
            if cow and self.base is not None and g in self.base.model.data:
                where = self._base_offset(g, ops, counts)
                ops.append(DiskOp("base", where, cluster_bytes, False, "copy-on-write read"))
                counts.base_reads += 1
            counts.cow_bytes += cow
            data_ops.append(DiskOp("image", model.data[g] * cs, cs, True, "data"))
        ops += data_ops
        if model.next_free > first_new:        # something was allocated: update metadata
            blocks = dict.fromkeys(c // model.refs_per_block
                                   for c in range(first_new, model.next_free))
            for k in blocks:
                ops.append(DiskOp("image", model.refblocks[k] * cs, cs, True,
                                  "refcount block"))
            for k in model.refblocks:
                if k not in had_refblocks:
                    ops.append(DiskOp("image", image.reftable_cluster * cs + k * 8 // SECTOR
                                      * SECTOR, SECTOR, True, "refcount table"))
            changed = dict.fromkeys(g // model.l2_entries for g, _s, _e in pieces
                                    if g not in had_data)
            for l1 in changed:
                ops.append(DiskOp("image", model.l2_tables[l1] * cs, cs, True, "L2"))
            for l1 in new_l2:
                ops.append(DiskOp("image", image.l1_cluster * cs + l1 * 8 // SECTOR * SECTOR,
                                  SECTOR, True, "L1"))
            counts.metadata_writes += (len(blocks) + len(model.refblocks) - len(had_refblocks)
                                       + len(changed) + len(new_l2))
        return ops


def plan_requests(workload: IoWorkload | Mapping[str, Any], seed: int = 0
                  ) -> Iterator[tuple[bool, int, list[DiskOp]]]:
    """The disk operations of each request, in issue order, without timing them.

    Yields ``(is_read, guest_offset, ops)`` per request. Handy for seeing what one
    request costs.

    Examples
    --------
    >>> w = IoWorkload(format="qcow2", request_size=4096, count=2)
    >>> for is_read, offset, ops in plan_requests(w):
    ...     print(offset, [(op.what, op.offset, op.length) for op in ops])
    0 [('data', 327680, 65536), ('refcount block', 131072, 65536), ('L2', 262144, 65536),
       ('L1', 196608, 512)]
    4096 [('data', 331776, 4096)]
    """
    if not isinstance(workload, IoWorkload):
        workload = IoWorkload.from_dict(workload)
    planner = _Planner(workload)
    one_pass = _requests(workload, random.Random(seed))
    index = 0
    for _ in range(workload.passes):
        for is_read, offset in one_pass:
            ops, _counts = planner.plan(is_read, offset, workload.request_size, index)
            index += 1
            yield is_read, offset, ops


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RequestRecord:
    """One guest request: what it was, when it started and ended, and what it cost."""

    index: int
    pass_index: int
    op: str
    offset: int
    length: int
    start_s: float
    end_s: float
    disk_ops: int
    seeks: int
    metadata_reads: int
    metadata_writes: int
    cow_bytes: int
    allocated_clusters: int
    base_reads: int

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


def _p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(records: list[RequestRecord]) -> dict[str, Any]:
    latencies = [r.latency_s for r in records]
    total = sum(r.length for r in records)
    elapsed = (max(r.end_s for r in records) - min(r.start_s for r in records)
               if records else 0.0)
    return {"requests": len(records), "bytes": total, "duration_s": elapsed,
            "throughput_bytes_per_s": total / elapsed if elapsed > 0 else math.inf,
            "mean_latency_s": sum(latencies) / len(latencies) if latencies else 0.0,
            "p95_latency_s": _p95(latencies),
            **{k: sum(getattr(r, k) for r in records)
               for k in ("metadata_reads", "metadata_writes", "cow_bytes",
                         "allocated_clusters", "base_reads", "seeks", "disk_ops")}}


@dataclass(frozen=True)
class IoResult:
    """What the guest saw: throughput and latency, and what the image layers cost.

    ``throughput_bytes_per_s`` is guest bytes over the time from the first request
    to the last completion (infinite when no request touched the disk, as when
    reading an empty qcow2 image). Latencies are from issue to completion.
    """

    workload: IoWorkload
    seed: int
    requests: tuple[RequestRecord, ...]
    duration_s: float
    throughput_bytes_per_s: float
    mean_latency_s: float
    p95_latency_s: float
    metadata_reads: int
    metadata_writes: int
    cow_bytes: int
    allocated_clusters: int
    base_reads: int
    seeks: int
    image_end_offset: int | None
    source: str = "model"
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return self.workload.label

    def per_pass(self) -> list[dict[str, Any]]:
        """The summary figures of each pass separately (pass 0 first).

        Examples
        --------
        >>> r = simulate_io(IoWorkload(count=16, passes=2))
        >>> [p["allocated_clusters"] for p in r.per_pass()]
        [16, 0]
        """
        return [{"pass": k, **_summary([r for r in self.requests if r.pass_index == k])}
                for k in range(self.workload.passes)]

    def row(self, pass_index: int | None = None) -> dict[str, Any]:
        """One line for a table: the label and the main figures, in friendly units.

        With ``pass_index``, the figures of that pass only.

        Examples
        --------
        >>> r = simulate_io(IoWorkload(count=16, passes=2))
        >>> r.row(1)["new clusters"], r.row(1)["pass"], r.row()["new clusters"]
        (0, 1, 16)
        """
        if pass_index is None:
            s = {k: getattr(self, k) for k in ("throughput_bytes_per_s", "mean_latency_s",
                                                "p95_latency_s", "metadata_reads",
                                                "metadata_writes", "cow_bytes",
                                                "allocated_clusters")}
        else:
            if not 0 <= pass_index < self.workload.passes:
                raise ScenarioError(f"pass_index must be between 0 and "
                                    f"{self.workload.passes - 1}, not {pass_index}")
            s = self.per_pass()[pass_index]
        mb_s = s["throughput_bytes_per_s"] / 1e6
        out: dict[str, Any] = {"workload": self.label, "disk": self.workload.disk.name}
        if pass_index is not None:
            out["pass"] = pass_index
        return {**out, "MB/s": round(mb_s, 1) if math.isfinite(mb_s) else None,
                "mean latency ms": round(s["mean_latency_s"] * 1e3, 3),
                "p95 latency ms": round(s["p95_latency_s"] * 1e3, 3),
                "metadata reads": s["metadata_reads"], "metadata writes": s["metadata_writes"],
                "COW bytes": s["cow_bytes"], "new clusters": s["allocated_clusters"]}

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("workload", "requests")}
        if not math.isfinite(out["throughput_bytes_per_s"]):
            out["throughput_bytes_per_s"] = None
        return {"workload": self.workload.to_dict(), **out,
                "requests": [dataclasses.asdict(r) for r in self.requests]}


# ----------------------------------------------------------------------------- simulation


def simulate_io(workload: IoWorkload | Mapping[str, Any], seed: int = 0) -> IoResult:
    """Run the workload through the model; the same seed always gives the same result.

    Parameters
    ----------
    workload : IoWorkload or dict
    seed : int
        Seeds the workload's own ``random.Random`` (random offsets, the read/write mix).

    Returns
    -------
    IoResult

    Examples
    --------
    >>> w = {"format": "overlay", "pattern": "random", "request_size": 4096,
    ...      "count": 50, "read_fraction": 1.0}
    >>> r = simulate_io(w, seed=1)
    >>> r.base_reads, r.allocated_clusters                  # every read went to the base
    (50, 0)
    >>> simulate_io(w, seed=1) == r
    True
    """
    if not isinstance(workload, IoWorkload):
        workload = IoWorkload.from_dict(workload)
    rng = random.Random(seed)
    one_pass = _requests(workload, rng)
    todo = iter([(k, i, is_read, offset) for k in range(workload.passes)
                 for i, (is_read, offset) in enumerate(one_pass)])
    planner = _Planner(workload)
    env = simpy.Environment()
    disk = simpy.Resource(env, capacity=1)
    head: list[tuple[str, int] | None] = [None]
    records: list[RequestRecord] = []
    size = workload.request_size

    def guest() -> Iterator[Any]:
        for k, i, is_read, offset in todo:
            index = k * workload.count + i
            start = env.now
            ops, counts = planner.plan(is_read, offset, size, index)
            seeks = 0
            for op in ops:
                with disk.request() as turn:
                    yield turn
                    contiguous = head[0] == (op.file, op.offset)
                    seeks += not contiguous
                    yield env.timeout(workload.disk.op_s(op.length, contiguous))
                    head[0] = (op.file, op.offset + op.length)
            records.append(RequestRecord(
                index=index, pass_index=k, op="read" if is_read else "write", offset=offset,
                length=size, start_s=start, end_s=env.now, disk_ops=len(ops), seeks=seeks,
                metadata_reads=counts.metadata_reads, metadata_writes=counts.metadata_writes,
                cow_bytes=counts.cow_bytes, allocated_clusters=counts.allocated,
                base_reads=counts.base_reads))

    for _ in range(workload.queue_depth):
        env.process(guest())
    env.run()
    records.sort(key=lambda r: r.index)
    s = _summary(records)
    image = planner.image
    return IoResult(
        workload=workload, seed=seed, requests=tuple(records), duration_s=s["duration_s"],
        throughput_bytes_per_s=s["throughput_bytes_per_s"],
        mean_latency_s=s["mean_latency_s"], p95_latency_s=s["p95_latency_s"],
        metadata_reads=s["metadata_reads"], metadata_writes=s["metadata_writes"],
        cow_bytes=s["cow_bytes"], allocated_clusters=s["allocated_clusters"],
        base_reads=s["base_reads"], seeks=s["seeks"],
        image_end_offset=None if image is None else image.model.image_end_offset,
        provenance={"model": "kvmlab.storage.io", "seed": seed, "note": TEACHING_NOTE})
