"""The storage lab: qcow2 clusters, allocate-on-write and copy-on-write, checked
against QEMU's own tools.

Examples
--------
>>> from kvmlab import storage
>>> r = storage.simulate({"format": "qcow2", "virtual_size": 10485760,
...                       "cluster_size": 65536, "writes": [[1048576, 65536]]})
>>> r.allocated_clusters, r.image_end_offset
(1, 393216)
"""

from __future__ import annotations

from typing import Any

from kvmlab.storage.io import IoWorkload, simulate_io
from kvmlab.storage.qcow2 import Qcow2Model
from kvmlab.storage.result import StorageComparison, StorageResult, compare
from kvmlab.storage.scenario import StorageScenario
from kvmlab.storage.twin import run_with_qemu


def simulate(scenario: StorageScenario | dict[str, Any]) -> StorageResult:
    """Predict the image a scenario makes: its map, allocated clusters and end offset."""
    if isinstance(scenario, dict):
        scenario = StorageScenario.from_dict(scenario)
    image = Qcow2Model.from_scenario(scenario)
    return StorageResult(scenario=scenario, source="model", map=image.map(),
                         allocated_clusters=image.allocated_clusters,
                         image_end_offset=image.image_end_offset,
                         provenance={"model": "kvmlab.storage.qcow2"})


__all__ = ["IoWorkload", "Qcow2Model", "StorageComparison", "StorageResult",
           "StorageScenario", "compare", "run_with_qemu", "simulate", "simulate_io"]
