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


def compare(predicted: StorageResult, real: StorageResult) -> StorageComparison:
    """Entry by entry, the map entries that differ, and the check figures."""
    a = [_norm(e) for e in predicted.map]
    b = [_norm(e) for e in real.map]
    diffs = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
    diffs += [(x, None) for x in a[len(b):]] + [(None, y) for y in b[len(a):]]
    return StorageComparison(predicted, real, diffs)
