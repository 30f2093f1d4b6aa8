"""The I/O workloads of the storage lab's I/O model (:func:`kvmlab.storage.model.simulate_io`):
what the guest does (:class:`IoWorkload`) and what a disk operation costs (:class:`DiskParams`).

:mod:`kvmlab.storage.scenario` re-exports every name here.

Examples
--------
>>> IoWorkload(format="raw", count=4).label
'raw, sequential write'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.validate import check_keys, mapping, real_number, text, whole_number

__all__ = ["DEFAULT_CLUSTER", "DISKS", "HDD", "IO_FORMATS", "IO_PATTERNS", "MAX_CLUSTER",
           "MAX_REQUESTS", "MAX_TOUCHED_CLUSTERS", "MIN_CLUSTER", "SECTOR", "SSD", "DiskParams",
           "IoWorkload"]

MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024
DEFAULT_CLUSTER = 65536

IO_FORMATS = ("raw", "qcow2", "overlay")
"""The images the I/O model knows: ``overlay`` is a qcow2 image over a full qcow2 base."""
IO_PATTERNS = ("sequential", "random")
SECTOR = 512
"""A disk's sector: the smallest unit a write reaches a disk in."""
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
