"""What an image looks like after a scenario, predicted or real, and how they differ.

Examples
--------
>>> from kvmlab.storage import simulate
>>> r = simulate({"format": "qcow2", "virtual_size": 1048576, "cluster_size": 4096,
...               "writes": [[0, 100]]})
>>> r.allocated_clusters, r.image_end_offset
(1, 24576)
>>> compare(r, r).agrees
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvmlab.storage.scenario import StorageScenario


@dataclass(frozen=True)
class StorageResult:
    """The image after the scenario's writes.

    Attributes
    ----------
    map : list of dict
        As ``qemu-img map --output=json``: start, length, depth, present, zero, data,
        and offset (in the file of that depth) where there is data.
    allocated_clusters : int
        Data clusters allocated in the top image (``qemu-img check``).
    image_end_offset : int
        Where the top image's file ends (``qemu-img check``).
    """

    scenario: StorageScenario
    source: str
    map: list[dict[str, Any]]
    allocated_clusters: int
    image_end_offset: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "map": self.map,
                "allocated_clusters": self.allocated_clusters,
                "image_end_offset": self.image_end_offset,
                "scenario": self.scenario.to_dict(), "provenance": self.provenance}


@dataclass(frozen=True)
class StorageComparison:
    """Where a predicted and a real image differ (nothing, ideally)."""

    predicted: StorageResult
    real: StorageResult
    map_differences: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]

    @property
    def agrees(self) -> bool:
        return (not self.map_differences
                and self.predicted.allocated_clusters == self.real.allocated_clusters
                and self.predicted.image_end_offset == self.real.image_end_offset)

    def to_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees,
                "map_entries": [len(self.predicted.map), len(self.real.map)],
                "map_differences": [{"predicted": a, "real": b}
                                    for a, b in self.map_differences],
                "allocated_clusters": [self.predicted.allocated_clusters,
                                       self.real.allocated_clusters],
                "image_end_offset": [self.predicted.image_end_offset,
                                     self.real.image_end_offset]}

    def summary(self) -> str:
        if self.agrees:
            return (f"model and {self.real.source} agree: {len(self.real.map)} map entries, "
                    f"{self.real.allocated_clusters} allocated clusters, file ends at "
                    f"{self.real.image_end_offset}")
        return (f"{len(self.map_differences)} map entries differ; allocated clusters "
                f"{self.predicted.allocated_clusters} vs {self.real.allocated_clusters}; "
                f"end {self.predicted.image_end_offset} vs {self.real.image_end_offset}")


_KEYS = ("start", "length", "depth", "present", "zero", "data", "offset")


def _norm(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in _KEYS if k in entry}


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


def compare(predicted: StorageResult, real: StorageResult) -> StorageComparison:
    """Entry by entry, the map entries that differ (see :func:`image_view`), and the
    check figures."""
    a = image_view(predicted.map)
    b = image_view(real.map)
    diffs = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
    diffs += [(x, None) for x in a[len(b):]] + [(None, y) for y in b[len(a):]]
    return StorageComparison(predicted, real, diffs)
