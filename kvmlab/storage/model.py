"""The storage lab's models: what an image file holds after a scenario, and what guest
I/O through the image layers costs (simpy).

:func:`simulate` predicts the image a :class:`~kvmlab.storage.scenario.StorageScenario`
makes, with :class:`~kvmlab.storage.qcow2.Qcow2Model` or
:class:`~kvmlab.storage.raw.RawModel`: its ``qemu-img map``, its allocated clusters and
where the file ends. It is deterministic (the ``seed`` is only recorded) and never runs
a program or opens a file: a backing image given as a path was read when the scenario
was loaded. :func:`image_after` replays the first writes of a scenario for a picture.

:func:`simulate_io` runs an :class:`~kvmlab.storage.scenario.IoWorkload` through a
small simpy model of raw, qcow2 and overlay disks. **It is a teaching model, not a
measurement.** Its disk is two numbers (a positioning cost and a transfer rate) and its
image formats are a handful of rules. It has not been fitted to, or checked against, a
real disk: use it to see *why* one layout costs more than another, and measure (``fio``
in a guest) when you need real figures.

The I/O model
-------------
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
>>> r = simulate({"format": "qcow2", "virtual_size": 10485760,
...               "cluster_size": 65536, "writes": [[1048576, 65536]]})
>>> r.allocated_clusters, r.image_end_offset, r.source
(1, 393216, 'simulated')
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
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import simpy

from kvmlab.errors import ScenarioError
from kvmlab.lab import SIMULATED
from kvmlab.progress import ProgressArg, progress_bar
from kvmlab.storage.compress import NOT_PREDICTED, CompressedQcow2
from kvmlab.storage.luks import LuksQcow2
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.raw import FS_BLOCK, RawModel
from kvmlab.storage.result import (
    ImageLayout,
    IoResult,
    RequestRecord,
    StorageResult,
    summarize,
)
from kvmlab.storage.scenario import (
    SECTOR,
    IoWorkload,
    StorageScenario,
    as_scenario,
)
from kvmlab.storage.vmdk import VmdkModel
from kvmlab.validate import whole_number

__all__ = ["TEACHING_NOTE", "DiskOp", "image_after", "model_after", "plan_requests",
           "simulate", "simulate_io"]

TEACHING_NOTE = "a teaching model with made-up disk figures, not measured on a real disk"


# ----------------------------------------------------------------------------- images


def simulate(scenario: StorageScenario | Mapping[str, Any], *, seed: int = 0,
             progress: ProgressArg = None, block_size: int = FS_BLOCK,
             in_guest: bool = False) -> StorageResult:
    """Predict the image a scenario makes: its map, allocated clusters and end offset.

    For a raw image, the "clusters" are the host file system's blocks of
    ``block_size`` bytes, and the end offset is the file's length. For a vmdk image
    (:mod:`kvmlab.storage.vmdk`) the clusters are 64 KiB grains and the end offset is the
    file's size. For a compressed qcow2 image (:mod:`kvmlab.storage.compress`) the result
    also has ``compressed_clusters``, and its end offset is None: not predicted.

    Parameters
    ----------
    scenario : StorageScenario or dict
    seed : int
        Recorded in the provenance; the layout of an image has no randomness.
    progress : None, bool or a tqdm-like bar
        Advances by one per write or snapshot (:mod:`kvmlab.progress`).
    block_size : int
        The host file system's block size, for raw images.
    in_guest : bool
        Predict a guest's run (:func:`kvmlab.storage.guestdisk.run_in_guest`) instead of
        the host twin's: libvirt, which makes a raw volume's file itself, does not write its
        first block as ``qemu-img create`` does, and a guest's write reaches the image one
        page at a time (:func:`kvmlab.storage.scenario.guest_requests`), where ``qemu-io``
        sends it whole.

    Returns
    -------
    StorageResult
        With ``source='simulated'``.

    Examples
    --------
    >>> r = simulate({"format": "raw", "virtual_size": 1048576, "writes": [[8192, 10]]})
    >>> r.allocated_clusters, r.image_end_offset, len(r.map)
    (2, 1048576, 4)
    >>> r.provenance["seed"]
    0
    >>> v = simulate({"format": "vmdk", "virtual_size": 1048576, "writes": [[0, 1]]})
    >>> v.allocated_clusters, v.image_end_offset
    (1, 131072)
    """
    scenario = as_scenario(scenario)
    seed = whole_number(seed, "seed")
    steps = scenario.steps()
    with progress_bar(progress, total=len(steps), desc="storage model", unit="step") as bar:
        if scenario.format == "raw":
            raw = RawModel.from_scenario(scenario, block_size, bar=bar,
                                         first_block=not in_guest)
            return StorageResult(scenario=scenario, source=SIMULATED, map=raw.map(),
                                 allocated_clusters=raw.allocated_blocks,
                                 image_end_offset=raw.virtual_size,
                                 provenance={"model": "kvmlab.storage.raw", "seed": seed,
                                             "block_size": block_size,
                                             "reserved_bytes": raw.reserved_bytes})
        if scenario.format == "vmdk":
            grains = VmdkModel.from_scenario(scenario, bar=bar)
            return StorageResult(scenario=scenario, source=SIMULATED, map=grains.map(),
                                 allocated_clusters=grains.allocated_clusters,
                                 image_end_offset=grains.image_end_offset,
                                 provenance={"model": "kvmlab.storage.vmdk", "seed": seed})
        if scenario.compress:
            packed = CompressedQcow2.from_scenario(scenario, bar=bar)
            return StorageResult(scenario=scenario, source=SIMULATED, map=packed.map(),
                                 allocated_clusters=packed.allocated_clusters,
                                 image_end_offset=None,
                                 compressed_clusters=packed.compressed_clusters,
                                 provenance={"model": "kvmlab.storage.compress", "seed": seed,
                                             "not_predicted": list(NOT_PREDICTED)})
        if scenario.encryption is not None:
            luks = LuksQcow2.from_scenario(scenario, bar=bar, in_guest=in_guest)
            return StorageResult(scenario=scenario, source=SIMULATED, map=luks.map(),
                                 allocated_clusters=luks.allocated_clusters,
                                 image_end_offset=luks.image_end_offset,
                                 provenance={"model": "kvmlab.storage.luks", "seed": seed,
                                             "luks_extent": list(luks.luks_extent)})
        image = Qcow2Model.from_scenario(scenario, bar=bar, in_guest=in_guest)
        bar.set_postfix_str(f"{image.allocated_clusters} data clusters")
    return StorageResult(scenario=scenario, source=SIMULATED, map=image.map(),
                         allocated_clusters=image.allocated_clusters,
                         image_end_offset=image.image_end_offset,
                         provenance={"model": "kvmlab.storage.qcow2", "seed": seed})


def model_after(scenario: StorageScenario | Mapping[str, Any], n_writes: int | None = None
                ) -> Qcow2Model:
    """The qcow2 image of ``scenario`` after its first ``n_writes`` writes (all when None),
    with the snapshots taken by then.

    Examples
    --------
    >>> s = {"virtual_size": 10485760, "cluster_size": 65536,
    ...      "writes": [[1048576, 65536], [100, 10]]}
    >>> [model_after(s, n).allocated_clusters for n in range(3)]
    [0, 1, 2]
    """
    scenario = as_scenario(scenario)
    total = len(scenario.writes)
    if n_writes is None:
        n_writes = total
    if whole_number(n_writes, "the number of writes to apply") < 0 or n_writes > total:
        raise ScenarioError(f"the number of writes to apply must be between 0 and {total}, "
                            f"not {n_writes!r}")
    if scenario.format != "qcow2":
        raise ScenarioError("a cluster map shows a qcow2 image; " + (
            "a raw image has no clusters (guest byte N is file byte N: draw it with "
            "guest_map)" if scenario.format == "raw" else
            "a vmdk image's grains are drawn with guest_map (its qemu-img map)"))
    return Qcow2Model.from_scenario(dataclasses.replace(
        scenario, writes=scenario.writes[:n_writes],
        snapshots=tuple(sn for sn in scenario.snapshots if sn.after <= n_writes)))


def image_after(scenario: StorageScenario | Mapping[str, Any], n_writes: int | None = None
                ) -> ImageLayout:
    """The image after the first ``n_writes`` writes (all when None), with the clusters
    the last of them added or changed: what :func:`kvmlab.storage.plot.cluster_map` draws.

    Examples
    --------
    >>> s = {"virtual_size": 10485760, "cluster_size": 65536,
    ...      "writes": [[1048576, 65536], [100, 10]]}
    >>> step = image_after(s, 1)
    >>> step.writes_applied, sorted(step.new_clusters)
    (1, [4, 5])
    >>> image_after(s).writes_applied
    2
    """
    scenario = as_scenario(scenario)
    image = model_after(scenario, n_writes)
    applied = len(scenario.writes) if n_writes is None else n_writes
    new: frozenset[int] = frozenset()
    if applied:
        before = model_after(scenario, applied - 1).allocations
        new = frozenset(a.cluster for a in image.layout() if before.get(a.cluster) != a)
    return ImageLayout(image=image, scenario=scenario, writes_applied=applied,
                       new_clusters=new)


# ----------------------------------------------------------------------------- I/O


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
    """Join back-to-back operations of one kind into one.

    Examples
    --------
    >>> _merge([DiskOp("image", 0, 512, True, "data"), DiskOp("image", 512, 512, True, "data"),
    ...         DiskOp("image", 4096, 512, True, "data")])      # doctest: +NORMALIZE_WHITESPACE
    [DiskOp(file='image', offset=0, length=1024, write=True, what='data'),
     DiskOp(file='image', offset=4096, length=512, write=True, what='data')]
    """
    runs: list[list[Any]] = []               # [first op, total length], made into ops once
    for op in ops:
        if runs:
            p, length = runs[-1]
            if (p.file, p.write, p.what) == (op.file, op.write, op.what) and \
                    p.offset + length == op.offset:
                runs[-1][1] = length + op.length
                continue
        runs.append([op, op.length])
    return [op if length == op.length else DiskOp(op.file, op.offset, length, op.write, op.what)
            for op, length in runs]


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
        # What the write finds, read for its own clusters only (copying the whole maps
        # made every write O(image) and a long workload quadratic).
        had_data = {g for g, _s, _e in pieces if g in model.data}
        new_l2 = [l1 for l1 in dict.fromkeys(g // model.l2_entries for g, _s, _e in pieces)
                  if l1 not in model.l2_tables]
        had_refblocks, first_new = len(model.refblocks), model.next_free
        model.write(offset, length, index=index)
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
            # refcount blocks are only ever added: the new ones are the last in the dict
            new_refblocks = (list(model.refblocks)[had_refblocks:]
                             if len(model.refblocks) > had_refblocks else [])
            for k in new_refblocks:
                ops.append(DiskOp("image", image.reftable_cluster * cs + k * 8 // SECTOR
                                  * SECTOR, SECTOR, True, "refcount table"))
            changed = dict.fromkeys(g // model.l2_entries for g, _s, _e in pieces
                                    if g not in had_data)
            for l1 in changed:
                ops.append(DiskOp("image", model.l2_tables[l1] * cs, cs, True, "L2"))
            for l1 in new_l2:
                ops.append(DiskOp("image", image.l1_cluster * cs + l1 * 8 // SECTOR * SECTOR,
                                  SECTOR, True, "L1"))
            counts.metadata_writes += (len(blocks) + len(new_refblocks) + len(changed)
                                       + len(new_l2))
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



def simulate_io(workload: IoWorkload | Mapping[str, Any], seed: int = 0, *,
                progress: ProgressArg = None) -> IoResult:
    """Run the workload through the model; the same seed always gives the same result.

    Parameters
    ----------
    workload : IoWorkload or dict
    seed : int
        Seeds the workload's own ``random.Random`` (random offsets, the read/write mix).
    progress : None, bool or a tqdm-like bar
        Advances by one per request completed (:mod:`kvmlab.progress`).

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
    total = workload.passes * workload.count
    with progress_bar(progress, total=total, desc="I/O model", unit="request") as bar:

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
                    index=index, pass_index=k, op="read" if is_read else "write",
                    offset=offset, length=size, start_s=start, end_s=env.now,
                    disk_ops=len(ops), seeks=seeks, metadata_reads=counts.metadata_reads,
                    metadata_writes=counts.metadata_writes, cow_bytes=counts.cow_bytes,
                    allocated_clusters=counts.allocated, base_reads=counts.base_reads))
                bar.update(1)

        for _ in range(workload.queue_depth):
            env.process(guest())
        env.run()
    records.sort(key=lambda r: r.index)
    s = summarize(records)
    image = planner.image
    return IoResult(
        workload=workload, seed=seed, requests=tuple(records), duration_s=s["duration_s"],
        throughput_bytes_per_s=s["throughput_bytes_per_s"],
        mean_latency_s=s["mean_latency_s"], p95_latency_s=s["p95_latency_s"],
        metadata_reads=s["metadata_reads"], metadata_writes=s["metadata_writes"],
        cow_bytes=s["cow_bytes"], allocated_clusters=s["allocated_clusters"],
        base_reads=s["base_reads"], seeks=s["seeks"],
        image_end_offset=None if image is None else image.model.image_end_offset,
        provenance={"model": "kvmlab.storage.model.simulate_io", "seed": seed,
                    "note": TEACHING_NOTE})
