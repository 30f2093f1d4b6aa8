"""Storage scenarios: an image, its format and cluster size, and the guest's writes; and
the I/O workloads of the I/O model.

The JSON form, which scripts may rely on::

    {"format": "qcow2", "virtual_size": 10485760, "cluster_size": 65536,
     "writes": [[1048576, 65536], [100, 10]]}

``writes`` are ``[offset, length]`` pairs in bytes, in the order the guest issues
them. ``backing`` (optional) makes the image a copy-on-write overlay: either the
path of an existing qcow2 image (its tables are read once, when the scenario is
loaded: see :class:`~kvmlab.storage.reader.Qcow2File`), or a scenario of its own
(the base image, made first from its writes). ``snapshots`` (optional, qcow2 only) takes internal
snapshots between the writes, as ``qemu-img snapshot -c NAME`` does::

    "snapshots": [{"after": 2, "name": "before-upgrade"}]

takes a snapshot once the first two writes are done.

``"format": "raw"`` is a plain file: guest byte N is file byte N. It has no
clusters, backing file or snapshots; ``preallocation`` is ``"off"`` (sparse, the
default), ``"falloc"`` (blocks reserved, still reading as holes) or ``"full"``
(every byte written at creation).

:func:`load_scenario` takes a shipped scenario's name (``storage-first-writes``), a
JSON file, a dict or a scenario. :class:`IoWorkload` (with :class:`DiskParams`) is
what the I/O model (:func:`kvmlab.storage.model.simulate_io`) runs.

Examples
--------
>>> s = StorageScenario.from_dict({"format": "qcow2", "virtual_size": 1048576,
...                                "cluster_size": 4096, "writes": [[0, 512]]})
>>> s.clusters
256
>>> StorageScenario.from_dict({"format": "qcow2", "virtual_size": 1048576,
...                            "cluster_size": 3000, "writes": []})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: cluster_size must be a power of two between 512 B and 2 MiB, not 3000
>>> load_scenario("storage-first-writes").writes
((1048576, 65536), (100, 10))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.storage.reader import Qcow2File, read_qcow2
from kvmlab.validate import (
    check_keys,
    is_whole,
    list_of,
    mapping,
    read_json_file,
    real_number,
    suggest,
    text,
    whole_number,
)

__all__ = ["DEFAULT_CLUSTER", "DISKS", "FORMATS", "HDD", "IO_FORMATS", "IO_PATTERNS",
           "MAX_BACKING_DEPTH", "MAX_CLUSTER", "MAX_MODEL_UNITS", "MAX_REQUESTS",
           "MAX_TOUCHED_CLUSTERS",
           "MAX_VIRTUAL_SIZE", "MIN_CLUSTER", "PREALLOCATION", "SECTOR", "SSD", "DiskParams",
           "IoWorkload", "Snapshot", "StorageScenario", "as_scenario", "load_scenario",
           "model_units"]

FORMATS = ("qcow2", "raw")
PREALLOCATION = ("off", "falloc", "full")
MAX_SNAPSHOTS = 8
MAX_SNAPSHOT_NAME = 64
MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024
DEFAULT_CLUSTER = 65536

# -- bounds: what the image models compute in reasonable time and memory -------------------
MAX_VIRTUAL_SIZE = 1 << 50
"""The largest virtual size, in bytes (1 PiB); 2**63 once ran out of memory and 10**30
never ended."""
MAX_MODEL_UNITS = 1 << 21
"""The most work one image model is given: its guest clusters (qcow2, every layer of the
backing chain; the map walks each one) or file system blocks (raw, 4 KiB each), plus the
clusters or blocks its writes touch. Measured on a 2-core x86_64 machine (Python 3.11): a
qcow2 image of 2**21 guest clusters took 3.3 s and 366 MiB, a fully preallocated raw image
of 2**21 blocks 2.0 s and 163 MiB; a chain of backing images shares the bound."""
MAX_BACKING_DEPTH = 8
"""The longest chain of backing scenarios (each the base of the one above)."""
MAX_WRITES = 100_000
"""The most writes one scenario makes."""
RAW_BLOCK = 4096
"""The file system block the raw model counts in (``kvmlab.storage.raw.FS_BLOCK``)."""


@dataclass(frozen=True)
class StorageScenario:
    """An image to create and the writes a guest makes to it."""

    virtual_size: int
    cluster_size: int = DEFAULT_CLUSTER
    writes: tuple[tuple[int, int], ...] = ()
    format: str = "qcow2"
    backing: StorageScenario | Qcow2File | None = None
    name: str = ""
    snapshots: tuple[Snapshot, ...] = ()
    preallocation: str = "off"

    @property
    def clusters(self) -> int:
        """Number of guest clusters (the last one may be partial)."""
        return -(-self.virtual_size // self.cluster_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageScenario:
        """Build and check a scenario; a broken rule raises ScenarioError naming it."""
        return _from_dict(cls, data, 0)

    def steps(self) -> list[tuple[int, int] | Snapshot]:
        """The writes and snapshots in the order they happen.

        Examples
        --------
        >>> s = StorageScenario.from_dict({"virtual_size": 1048576, "writes": [[0, 1], [512, 1]],
        ...                                "snapshots": [{"after": 1, "name": "s1"}]})
        >>> s.steps()
        [(0, 1), Snapshot(after=1, name='s1'), (512, 1)]
        """
        out: list[tuple[int, int] | Snapshot] = []
        pending = list(self.snapshots)
        for i, w in enumerate(self.writes):
            while pending and pending[0].after == i:
                out.append(pending.pop(0))
            out.append(w)
        return out + pending

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (a backing file by its path)."""
        out: dict[str, Any] = {"format": self.format, "virtual_size": self.virtual_size,
                               "cluster_size": self.cluster_size,
                               "writes": [list(w) for w in self.writes]}
        if self.backing is not None:
            out["backing"] = (self.backing.path if isinstance(self.backing, Qcow2File)
                              else self.backing.to_dict())
        if self.name:
            out["name"] = self.name
        if self.snapshots:
            out["snapshots"] = [{"after": sn.after, "name": sn.name} for sn in self.snapshots]
        if self.format == "raw":
            del out["cluster_size"]
            out["preallocation"] = self.preallocation
        return out

    @classmethod
    def load(cls, path: str | Path) -> StorageScenario:
        """Read a scenario from a JSON file."""
        return cls.from_dict(read_json_file(path, "scenario"))


@dataclass(frozen=True)
class Snapshot:
    """An internal snapshot taken once the first ``after`` writes are done."""

    after: int
    name: str


def _from_dict(cls: type[StorageScenario], data: Any, depth: int) -> StorageScenario:
    """A scenario from its JSON form, ``depth`` backing scenarios below the top."""
    where = "the storage scenario" if depth == 0 else f"backing scenario {depth}"
    data = mapping(data, f"{where} (format, virtual_size, cluster_size, writes)")
    check_keys(data, ("format", "virtual_size", "cluster_size", "writes", "backing", "name",
                      "description", "snapshots", "preallocation"), where)
    fmt = data.get("format", "qcow2")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ScenarioError(f"format {fmt!r} is not modelled; use one of {FORMATS}"
                            f"{suggest(fmt, FORMATS)}")
    if "virtual_size" not in data:
        raise ScenarioError("a storage scenario needs 'virtual_size' (bytes)")
    size = whole_number(data["virtual_size"], "virtual_size")
    if size <= 0 or size % 512:
        raise ScenarioError(f"virtual_size must be a positive multiple of 512 bytes "
                            f"(a disk is made of 512-byte sectors), not {size}")
    whole_number(size, "virtual_size", high=MAX_VIRTUAL_SIZE, unit="bytes")
    if fmt == "raw":
        _raw_rules(data)
    elif data.get("preallocation", "off") != "off":
        raise ScenarioError("preallocation is a raw image's option; a qcow2 image here is "
                            "always created sparse (drop preallocation, or use raw)")
    cluster = whole_number(data.get("cluster_size", DEFAULT_CLUSTER), "cluster_size")
    if cluster < MIN_CLUSTER or cluster > MAX_CLUSTER or cluster & (cluster - 1):
        raise ScenarioError(f"cluster_size must be a power of two between 512 B and "
                            f"2 MiB, not {cluster}")
    raw_writes = list_of(data.get("writes", []), "writes (a list of [offset, length] pairs)",
                         high=MAX_WRITES)
    writes = tuple(_write(w, size) for w in raw_writes)
    unit = RAW_BLOCK if fmt == "raw" else cluster
    units = -(-size // unit) + sum((o + n - 1) // unit - o // unit + 1 for o, n in writes)
    backing = data.get("backing")
    if isinstance(backing, Mapping):
        if depth + 1 > MAX_BACKING_DEPTH:
            raise ScenarioError(f"a chain of backing scenarios may be at most "
                                f"{MAX_BACKING_DEPTH} deep")
        backing = _from_dict(cls, backing, depth + 1)
        if backing.virtual_size > size:
            raise ScenarioError("a backing image may not be larger than its overlay "
                                f"({backing.virtual_size} > {size} bytes)")
        units += model_units(backing)
    elif isinstance(backing, str):
        text(backing, "backing (a file name)", empty=False, high=4096)
        try:
            exists = Path(backing).is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise ScenarioError(f"backing file {backing!r} does not exist")
        backing = read_qcow2(backing)
        units += -(-backing.virtual_size // backing.cluster_size)
    elif backing is not None and not isinstance(backing, Qcow2File):
        raise ScenarioError("backing is the path of an image or a scenario of its own")
    if units > MAX_MODEL_UNITS:
        raise ScenarioError(
            f"this image is too large for the model: {units} "
            f"{'blocks' if fmt == 'raw' else 'clusters'} to walk (virtual_size / {unit} B, "
            "plus those the writes touch, over the backing chain); the model takes at most "
            f"{MAX_MODEL_UNITS} (a few seconds). Use a smaller virtual_size, larger clusters or "
            "fewer writes")
    preallocation = data.get("preallocation", "off")
    if not isinstance(preallocation, str) or preallocation not in PREALLOCATION:
        raise ScenarioError(f"preallocation {preallocation!r} is not one of {PREALLOCATION}"
                            f"{suggest(preallocation, PREALLOCATION)}")
    return cls(virtual_size=size, cluster_size=cluster, writes=writes, format=fmt,
               backing=backing, name=text(data.get("name", ""), "the scenario's name"),
               snapshots=_snapshots(data.get("snapshots", []), len(writes)),
               preallocation=preallocation)


def model_units(scenario: StorageScenario) -> int:
    """The model's work for ``scenario`` and its backing chain (see :data:`MAX_MODEL_UNITS`):
    guest clusters (raw: file system blocks) plus those its writes touch.

    Examples
    --------
    >>> model_units(StorageScenario.from_dict({"virtual_size": 1048576, "cluster_size": 65536,
    ...                                        "writes": [[0, 65537]]}))
    18
    """
    unit = RAW_BLOCK if scenario.format == "raw" else scenario.cluster_size
    units = -(-scenario.virtual_size // unit) + sum(
        (o + n - 1) // unit - o // unit + 1 for o, n in scenario.writes)
    if isinstance(scenario.backing, StorageScenario):
        units += model_units(scenario.backing)
    return units


def _raw_rules(data: Mapping[str, Any]) -> None:
    if "cluster_size" in data:
        raise ScenarioError("a raw image has no clusters: guest byte N is file byte N "
                            "(drop cluster_size, or use qcow2)")
    if data.get("backing") is not None:
        raise ScenarioError("a raw image cannot have a backing file: copy-on-write needs "
                            "qcow2")
    if data.get("snapshots"):
        raise ScenarioError("a raw image has no internal snapshots: they need qcow2")


def _snapshots(raw: Any, n_writes: int) -> tuple[Snapshot, ...]:
    if not isinstance(raw, list | tuple):
        raise ScenarioError('snapshots is a list of {"after": N, "name": NAME} objects')
    if len(raw) > MAX_SNAPSHOTS:
        raise ScenarioError(f"at most {MAX_SNAPSHOTS} snapshots per scenario, not {len(raw)}")
    out: list[Snapshot] = []
    for item in raw:
        if not isinstance(item, Mapping) or not {"after", "name"} <= set(item):
            raise ScenarioError(f'each snapshot is {{"after": N, "name": NAME}}, not '
                                f'{str(item)[:60]}')
        check_keys(item, ("after", "name"), "a snapshot")
        after = item["after"]
        if not is_whole(after) or not 0 <= after <= n_writes:
            raise ScenarioError(f"a snapshot's 'after' counts writes done before it: a whole "
                                f"number from 0 to {n_writes}, not {after!r}")
        name = item["name"]
        if (not isinstance(name, str) or not name or len(name) > MAX_SNAPSHOT_NAME
                or not name.isascii() or not name.replace("-", "").replace("_", "").isalnum()
                or name.isdigit()):
            raise ScenarioError(f"a snapshot name is 1-{MAX_SNAPSHOT_NAME} letters, digits, "
                                f"'-' or '_', not all digits (qemu-img would take digits for "
                                f"an id), not {name!r}")
        if out and after < out[-1].after:
            raise ScenarioError("snapshots are listed in the order they are taken "
                                f"('after' {after} comes after {out[-1].after})")
        if any(sn.name == name for sn in out):
            raise ScenarioError(f"two snapshots are called {name!r}; names are unique")
        out.append(Snapshot(after, name))
    return tuple(out)


def _write(w: Any, size: int) -> tuple[int, int]:
    if not isinstance(w, list | tuple) or len(w) != 2:
        raise ScenarioError(f"each write is [offset, length] in bytes, not {str(w)[:60]}")
    offset = whole_number(w[0], "a write's offset")
    length = whole_number(w[1], "a write's length")
    if offset < 0:
        raise ScenarioError(f"a write's offset cannot be negative, got {offset}")
    if length <= 0:
        raise ScenarioError(f"a write's length must be positive, got {length}")
    if offset + length > size:
        raise ScenarioError(f"the write [{offset}, {length}] ends at byte {offset + length}, "
                            f"beyond the virtual size {size}")
    return offset, length


def as_scenario(scenario: StorageScenario | Mapping[str, Any]) -> StorageScenario:
    """``scenario`` itself, or the scenario a dict describes.

    Examples
    --------
    >>> as_scenario({"virtual_size": 1048576}).cluster_size
    65536
    >>> as_scenario("storage-first-writes")             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: expected a StorageScenario or a dict, not 'storage-first...
    """
    if isinstance(scenario, StorageScenario):
        return scenario
    if isinstance(scenario, Mapping):
        return StorageScenario.from_dict(scenario)
    raise ScenarioError(f"expected a StorageScenario or a dict, not {scenario!r} "
                        "(load_scenario takes names and files)")


def load_scenario(scenario: str | Path | Mapping[str, Any] | StorageScenario
                  ) -> StorageScenario:
    """A shipped scenario by name (``storage-first-writes``), a JSON file, a dict or a
    scenario, checked.

    A backing image given as a path is read here (its L1 and L2 tables), so the model
    never opens a file.

    Examples
    --------
    >>> load_scenario("storage-first-writes").name
    'storage-first-writes'
    >>> load_scenario("storage-nope")                      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no storage scenario file or shipped storage scenario ...
    """
    return load_scenario_as(scenario, StorageScenario,
                            StorageScenario.from_dict,
                            what="storage scenario", prefixes=["storage-"])


# ----------------------------------------------------------------------------- I/O workloads

IO_FORMATS = ("raw", "qcow2", "overlay")
"""The images the I/O model knows: ``overlay`` is a qcow2 image over a full qcow2 base."""
IO_PATTERNS = ("sequential", "random")
SECTOR = 512
MAX_COUNT = 100_000
MAX_PASSES = 10
MAX_QUEUE_DEPTH = 64
MAX_GUEST_CLUSTERS = 65536
MAX_REQUESTS = 100_000
"""The most requests (``count`` times ``passes``) one workload issues. The I/O model spends
about 50 us of CPU on a request (the simpy events of its disk operations) and keeps a
record of each: on a 2-core x86_64 machine (Python 3.11) 100,000 random 4 KiB requests to
an overlay took 5 to 6 s and 120 MiB."""
MAX_TOUCHED_CLUSTERS = 1_000_000
"""The most guest clusters all requests of a qcow2 or overlay workload may touch, counted
as ``count * passes * (request_size // cluster_size + 1)``: the model looks up, and may
allocate, every cluster a request touches (about 4 us each), so 16 requests of 256 MiB on
4 KiB clusters (1,048,576 clusters) took 4.3 s. A raw request is one disk operation,
whatever its size. With both bounds the slowest workload measured (100,000 random 36 KiB
requests, half of them writes, to an overlay of 4 KiB clusters) took 7.7 s and 130 MiB."""

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
        text(self.name, "a disk's name")
        if real_number(self.seek_s, "a disk's seek_s", high=3600, unit="s") < 0:
            raise ScenarioError(f"a disk's seek_s cannot be negative, not {self.seek_s}")
        if real_number(self.bandwidth_bytes_per_s, "a disk's bandwidth_bytes_per_s",
                       high=1e15) < 1:
            raise ScenarioError("a disk's bandwidth_bytes_per_s must be positive (at least 1), not "
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
        data = mapping(data, "disk (a preset name or a dict with seek_s and "
                             "bandwidth_bytes_per_s)")
        check_keys(data, ("seek_s", "bandwidth_bytes_per_s", "name"), "the disk",
                   noun="disk field")
        return cls(**{"name": "custom", **data})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dataclasses.asdict(self)


SSD = DiskParams()
HDD = DiskParams(seek_s=8e-3, bandwidth_bytes_per_s=150e6, name="hdd")
DISKS: dict[str, DiskParams] = {"ssd": SSD, "hdd": HDD}
"""The disk presets by name."""


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
        Requests per pass, 1 to :data:`MAX_COUNT`; ``count * passes`` at most
        :data:`MAX_REQUESTS`, and for qcow2 and overlay the clusters they touch at most
        :data:`MAX_TOUCHED_CLUSTERS` (the largest workloads the model runs in seconds).
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
    >>> IoWorkload(count=100_000, passes=2)          # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: count x passes must be at most 100000 requests ...
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
        if self.format not in IO_FORMATS:
            raise ScenarioError(f"format must be one of {', '.join(map(repr, IO_FORMATS))}, "
                                f"not {self.format!r}")
        if self.pattern not in IO_PATTERNS:
            raise ScenarioError(f"pattern must be 'sequential' or 'random', not "
                                f"{self.pattern!r}")
        size = whole_number(self.virtual_size, "virtual_size")
        if size <= 0 or size % SECTOR:
            raise ScenarioError(f"virtual_size must be a positive multiple of 512 bytes, "
                                f"not {size}")
        request = whole_number(self.request_size, "request_size")
        if request <= 0 or request % SECTOR:
            raise ScenarioError(f"request_size must be a positive multiple of 512 bytes, "
                                f"not {request}")
        if request > size:
            raise ScenarioError(f"request_size ({request}) must be within the virtual size "
                                f"({size})")
        cluster = whole_number(self.cluster_size, "cluster_size")
        if cluster < MIN_CLUSTER or cluster > MAX_CLUSTER or cluster & (cluster - 1):
            raise ScenarioError(f"cluster_size must be a power of two between 512 B and "
                                f"2 MiB, not {cluster}")
        if self.format != "raw" and -(-size // cluster) > MAX_GUEST_CLUSTERS:
            raise ScenarioError(f"the model keeps at most {MAX_GUEST_CLUSTERS} guest clusters "
                                f"(virtual_size / cluster_size); use larger clusters or a "
                                f"smaller disk")
        for what, high in (("count", MAX_COUNT), ("passes", MAX_PASSES),
                           ("l2_cache_tables", 4096), ("queue_depth", MAX_QUEUE_DEPTH)):
            number = whole_number(getattr(self, what), what)
            if not 1 <= number <= high:
                raise ScenarioError(f"{what} must be between 1 and {high}, not {number}")
        requests = self.count * self.passes
        if requests > MAX_REQUESTS:
            raise ScenarioError(f"count x passes must be at most {MAX_REQUESTS} requests "
                                f"(the model takes some 50 us for each), not {requests}")
        touched = requests * (request // cluster + 1)
        if self.format != "raw" and touched > MAX_TOUCHED_CLUSTERS:
            raise ScenarioError(
                f"count x passes x (request_size // cluster_size + 1), the clusters the "
                f"requests touch, must be at most {MAX_TOUCHED_CLUSTERS} (the model looks "
                f"at each), not {touched}; use fewer or smaller requests, or larger clusters")
        share = real_number(self.read_fraction, "read_fraction")
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
        check_keys(data, (f.name for f in dataclasses.fields(cls)), "the I/O workload",
                   noun="workload field")
        values = dict(data)
        if "disk" in values and not isinstance(values["disk"], DiskParams):
            values["disk"] = DiskParams.from_dict(values["disk"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the disk as a dict of its fields)."""
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
