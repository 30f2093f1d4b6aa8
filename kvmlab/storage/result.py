"""What an image looks like after a scenario, simulated or measured, and how they differ;
and what the I/O model reports.

:class:`StorageResult` is what both :func:`kvmlab.storage.simulate` and
:func:`kvmlab.storage.run_on_host` return; :func:`compare` lines two of them up in a
:class:`StorageComparison`. :class:`ImageLayout` is the model's image after some of a
scenario's writes (what a cluster map draws); :class:`IoResult` what the I/O model saw.

Examples
--------
>>> from kvmlab.storage import simulate
>>> r = simulate({"format": "qcow2", "virtual_size": 1048576, "cluster_size": 4096,
...               "writes": [[0, 100]]})
>>> r.allocated_clusters, r.image_end_offset, r.source
(1, 24576, 'simulated')
>>> c = compare(r, r)
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from kvmlab.display import Table, as_table
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SIMULATED, SOURCES, Comparison, check_pair
from kvmlab.storage.qcow2 import Allocation, Qcow2Model
from kvmlab.storage.scenario import IoWorkload, StorageScenario, as_scenario

__all__ = ["ImageLayout", "IoResult", "IoResults", "RequestRecord", "StorageComparison",
           "StorageResult", "compare", "image_view", "summarize"]

MAP_KEYS = ("start", "length", "depth", "present", "zero", "data", "offset")
"""The fields of a ``qemu-img map --output=json`` entry that are compared."""
TABLE_ROWS = 40
"""Above this many map entries, :meth:`StorageComparison.table` shows only those that differ."""


def _source(source: str) -> None:
    if source not in SOURCES:
        raise ScenarioError(f"source is {SIMULATED!r} or {MEASURED!r}, not {source!r}")


@dataclass(frozen=True)
class StorageResult:
    """The image after the scenario's writes, as the model predicts it or QEMU's tools see it.

    Attributes
    ----------
    scenario : StorageScenario
    source : str
        ``'simulated'`` (the model) or ``'measured'`` (``qemu-img``; the tool and its
        version are in ``provenance``).
    map : list of dict
        As ``qemu-img map --output=json``: start, length, depth, present, zero, data,
        and offset (in the file of that depth) where there is data.
    allocated_clusters : int
        Data clusters allocated in the top image (``qemu-img check``, compressed ones
        included); for a raw image, the file system blocks that hold data; for a vmdk
        image, the grains that hold data.
    image_end_offset : int or None
        Where the top image's file ends (``qemu-img check``); for a raw image, its length;
        for a vmdk image, the file's size. None where the model does not predict it (a
        compressed image: it depends on deflate's output).
    provenance : dict
        Which model (and seed), or which tool, where and when.
    compressed_clusters : int or None
        For a compressed scenario, the compressed clusters (``qemu-img check``'s
        ``compressed-clusters``); None otherwise.
    """

    scenario: StorageScenario
    source: str
    map: list[dict[str, Any]]
    allocated_clusters: int
    image_end_offset: int | None
    provenance: dict[str, Any] = field(default_factory=dict)
    compressed_clusters: int | None = None

    def __post_init__(self) -> None:
        _source(self.source)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what ``kvmlab storage simulate`` and ``run`` print)."""
        out = {"source": self.source, "map": self.map,
               "allocated_clusters": self.allocated_clusters,
               "image_end_offset": self.image_end_offset,
               "scenario": self.scenario.to_dict(), "provenance": self.provenance}
        if self.compressed_clusters is not None:
            out["compressed_clusters"] = self.compressed_clusters
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StorageResult:
        """A result from its JSON form.

        Examples
        --------
        >>> from kvmlab.storage import simulate
        >>> r = simulate({"virtual_size": 1048576, "writes": [[0, 1]]})
        >>> StorageResult.from_dict(r.to_dict()) == r
        True
        """
        try:
            return cls(scenario=as_scenario(data["scenario"]), source=data["source"],
                       map=list(data["map"]), allocated_clusters=data["allocated_clusters"],
                       image_end_offset=data["image_end_offset"],
                       provenance=dict(data.get("provenance", {})),
                       compressed_clusters=data.get("compressed_clusters"))
        except (KeyError, TypeError) as exc:
            raise ScenarioError(f"not a storage result: {exc!r} is missing or wrong") from None

    def plot(self, ax: Any = None) -> Any:
        """The guest disk coloured by where each byte is read from
        (:func:`kvmlab.storage.plot.guest_map`)."""
        from kvmlab.storage.plot import guest_map

        return guest_map(self.map, ax=ax)


def _norm(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in MAP_KEYS if k in entry}


def image_view(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The map as the image format sees it, without the file system's holes inside data.

    ``qemu-img map`` sometimes asks the file system too: when an image holds many
    more clusters than the host file has blocks (QEMU's test for *metadata
    preallocation*, which internal snapshots often pass, since their tables are
    mostly holes), the part of a data cluster that the file system keeps as a hole
    is shown as ``"zero": true``, in an entry of its own. The image still maps
    those bytes to that place in the file; this joins such entries back.

    Examples
    --------
    >>> m = [{"start": 0, "length": 4096, "depth": 0, "present": True, "zero": False,
    ...       "data": True, "offset": 983040},
    ...      {"start": 4096, "length": 61440, "depth": 0, "present": True, "zero": True,
    ...       "data": True, "offset": 987136}]
    >>> [(e["start"], e["length"], e["zero"]) for e in image_view(m)]
    [(0, 65536, False)]
    """
    out: list[dict[str, Any]] = []
    for e in map(_norm, entries):
        if e["data"]:
            e["zero"] = False
        if out:
            p = out[-1]
            same = all(p[k] == e[k] for k in ("depth", "present", "zero", "data"))
            offsets = ("offset" in p) == ("offset" in e) and (
                "offset" not in p or p["offset"] + p["length"] == e["offset"])
            if same and offsets and p["start"] + p["length"] == e["start"]:
                p["length"] += e["length"]
                continue
        out.append(e)
    return out


def _entry_text(e: dict[str, Any] | None) -> str:
    if e is None:
        return "(none)"
    where = f"data at {e['offset']:,}" if e.get("data") and "offset" in e else (
        "data" if e.get("data") else "zeros")
    depth = f", depth {e['depth']}" if e.get("depth") else ""
    return f"{e['start']:,} +{e['length']:,}: {where}{depth}"


@dataclass(frozen=True)
class StorageComparison(Comparison):
    """Where a simulated and a measured image differ (nothing, ideally).

    Map entries are compared as the image format sees them (:func:`image_view`), then
    the two figures of ``qemu-img check``: allocated clusters and the image end offset.

    Attributes
    ----------
    simulated, measured : StorageResult
    map_differences : list of (dict or None, dict or None)
        The entries that differ, simulated first; ``None`` where one map has fewer.
    """

    simulated: StorageResult
    measured: StorageResult
    map_differences: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]

    def _figures(self) -> list[tuple[str, Any, Any]]:
        figures = [("allocated_clusters", self.simulated.allocated_clusters,
                    self.measured.allocated_clusters)]
        if self.simulated.scenario.compress or self.measured.scenario.compress:
            return [*figures, ("compressed_clusters", self.simulated.compressed_clusters,
                               self.measured.compressed_clusters)]
        return [*figures, ("image_end_offset", self.simulated.image_end_offset,
                           self.measured.image_end_offset)]

    @property
    def not_compared(self) -> list[str]:
        """Figures left out: a compressed image's end offset (deflate's output decides it;
        the model does not predict it)."""
        if self.simulated.scenario.compress or self.measured.scenario.compress:
            return ["image_end_offset"]
        return []

    @property
    def agrees(self) -> bool:
        """Every map entry and both check figures are the same (no tolerance: the layout
        is exact arithmetic)."""
        return self.max_error == 0

    @property
    def max_error(self) -> float:
        """How many things differ, a count: the map entries that differ plus the check
        figures (allocated clusters, image end offset) that differ; 0.0 when identical."""
        return float(len(self.map_differences)
                     + sum(a != b for _name, a, b in self._figures()))

    def details(self) -> dict[str, Any]:
        """The storage fields of :meth:`to_dict`: map entries, differences, figures."""
        return {"map_entries": [len(self.simulated.map), len(self.measured.map)],
                "map_differences": [{"simulated": a, "measured": b}
                                    for a, b in self.map_differences],
                **{name: [a, b] for name, a, b in self._figures()},
                "not_compared": self.not_compared}

    def summary(self) -> str:
        """One line: do they agree, and on what.

        Examples
        --------
        >>> from kvmlab.storage import simulate
        >>> r = simulate({"virtual_size": 1048576, "writes": [[0, 1]]})
        >>> print(compare(r, r).summary())
        simulated and simulated agree: 2 map entries, 1 allocated clusters, file ends at 393216
        """
        if self.agrees:
            return (f"{self.simulated.source} and {self.measured.source} agree: "
                    f"{len(self.measured.map)} map entries, "
                    f"{self.measured.allocated_clusters} allocated clusters, file ends at "
                    f"{self.measured.image_end_offset}")
        return (f"{len(self.map_differences)} map entries differ; allocated clusters "
                f"{self.simulated.allocated_clusters} vs {self.measured.allocated_clusters}; "
                f"end {self.simulated.image_end_offset} vs {self.measured.image_end_offset}")

    def table(self) -> str:
        """The map entries side by side (only those that differ, for a long map), then
        the check figures.

        Examples
        --------
        >>> from kvmlab.storage import simulate
        >>> r = simulate({"virtual_size": 1048576, "writes": [[0, 1]]})
        >>> print(compare(r, r).table())
        map entries (qemu-img map, as the image format sees them)
        simulated                   measured                    same
        --------------------------  --------------------------  ----
        0 +65,536: data at 327,680  0 +65,536: data at 327,680  yes
        65,536 +983,040: zeros      65,536 +983,040: zeros      yes
        <BLANKLINE>
        check figures (qemu-img check)
        figure              simulated  measured  same
        ------------------  ---------  --------  ----
        allocated_clusters          1         1  yes
        image_end_offset       393216    393216  yes
        <BLANKLINE>
        agrees: yes; max_error: 0 (differences counted)
        """
        pairs = list(zip_longest(image_view(self.simulated.map),
                                 image_view(self.measured.map)))
        rows = [{"simulated": _entry_text(a), "measured": _entry_text(b), "same": a == b}
                for a, b in pairs]
        head = "map entries (qemu-img map, as the image format sees them)"
        if len(rows) > TABLE_ROWS:
            shown = [r for r in rows if not r["same"]]
            head += f": the {len(shown)} of {len(rows)} that differ"
            rows = shown
        figures = [{"figure": name, "simulated": a, "measured": b, "same": a == b}
                   for name, a, b in self._figures()]
        figures += [{"figure": name, "simulated": "not predicted",
                     "measured": getattr(self.measured, name), "same": "not compared"}
                    for name in self.not_compared]
        return "\n".join([head, as_table(rows, ["simulated", "measured", "same"]), "",
                          "figures (vmdk: data grains in qemu-img map, the file's size)"
                          if self.measured.scenario.format == "vmdk" else
                          "check figures (qemu-img check)", as_table(figures), "",
                          f"agrees: {'yes' if self.agrees else 'no'}; max_error: "
                          f"{self.max_error:g} (differences counted)"])

    def plot(self, ax: Any = None) -> Any:
        """Both maps as strips, simulated above measured, entries that differ outlined
        (:func:`kvmlab.storage.plot.map_pair`)."""
        from kvmlab.storage.plot import map_pair

        return map_pair(image_view(self.simulated.map), image_view(self.measured.map),
                        ax=ax, labels=(self.simulated.source, self.measured.source))


def compare(simulated: StorageResult, measured: StorageResult) -> StorageComparison:
    """Entry by entry, the map entries that differ (see :func:`image_view`), and the
    check figures.

    Raises
    ------
    ScenarioError
        If either is not a :class:`StorageResult`.
    """
    check_pair(simulated, measured, StorageResult)
    a = image_view(simulated.map)
    b = image_view(measured.map)
    diffs = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
    diffs += [(x, None) for x in a[len(b):]] + [(None, y) for y in b[len(a):]]
    return StorageComparison(simulated, measured, diffs)


@dataclass(frozen=True)
class ImageLayout:
    """A qcow2 image as the model has it after the first ``writes_applied`` writes of
    ``scenario`` (see :func:`kvmlab.storage.model.image_after`).

    Attributes
    ----------
    image : Qcow2Model
    scenario : StorageScenario
    writes_applied : int
    new_clusters : frozenset of int
        The file clusters the last applied write added or changed (none after 0 writes).
    """

    image: Qcow2Model
    scenario: StorageScenario
    writes_applied: int
    new_clusters: frozenset[int] = frozenset()

    def layout(self) -> list[Allocation]:
        """Every cluster in use, in file order."""
        return self.image.layout()

    def plot(self, ax: Any = None, columns: int = 16, min_clusters: int = 0) -> Any:
        """The file as a grid of clusters (:func:`kvmlab.storage.plot.cluster_map`)."""
        from kvmlab.storage.plot import cluster_map

        return cluster_map(self, ax=ax, columns=columns, min_clusters=min_clusters)


# ----------------------------------------------------------------------------- I/O results


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
        """From issue to completion, in seconds."""
        return self.end_s - self.start_s


def _p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(records: list[RequestRecord]) -> dict[str, Any]:
    """The summary figures of some requests: throughput, latencies, what they cost."""
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
    source: str = SIMULATED
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _source(self.source)

    @property
    def label(self) -> str:
        """The workload's label (``'qcow2, sequential write'``)."""
        return self.workload.label

    def per_pass(self) -> list[dict[str, Any]]:
        """The summary figures of each pass separately (pass 0 first).

        Examples
        --------
        >>> from kvmlab.storage.model import simulate_io
        >>> r = simulate_io(IoWorkload(count=16, passes=2))
        >>> [p["allocated_clusters"] for p in r.per_pass()]
        [16, 0]
        """
        return [{"pass": k, **summarize([r for r in self.requests if r.pass_index == k])}
                for k in range(self.workload.passes)]

    def row(self, pass_index: int | None = None) -> dict[str, Any]:
        """One line for a table: the label and the main figures, in friendly units.

        With ``pass_index``, the figures of that pass only.

        Examples
        --------
        >>> from kvmlab.storage.model import simulate_io
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
        """The JSON form (an infinite throughput as ``None``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("workload", "requests")}
        if not math.isfinite(out["throughput_bytes_per_s"]):
            out["throughput_bytes_per_s"] = None
        return {"workload": self.workload.to_dict(), **out,
                "requests": [dataclasses.asdict(r) for r in self.requests]}


# ----------------------------------------------------------------------------- simulation


class IoResults(tuple[IoResult, ...]):
    """Several I/O results side by side (a raw baseline first, say), drawn and tabled together.

    Examples
    --------
    >>> from kvmlab.storage.model import simulate_io
    >>> w = IoWorkload(count=8)
    >>> both = IoResults([simulate_io(w.replace(format="raw")), simulate_io(w)])
    >>> [r.workload.format for r in both]
    ['raw', 'qcow2']
    >>> len(both.table())
    2
    """

    def table(self, title: str = "simulated (a teaching model)") -> Table:
        """One row per result (:meth:`IoResult.row`)."""
        return Table([r.row() for r in self], title=title)

    def plot(self, ax: Any = None) -> Any:
        """Throughput bars and latency markers (:func:`kvmlab.storage.plot.plot_io`)."""
        from kvmlab.storage.plot import plot_io

        return plot_io(list(self), ax=ax)
