"""The storage lab: raw files and qcow2 clusters, allocate-on-write, copy-on-write and
internal snapshots, checked against QEMU's own tools.

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
from kvmlab.storage.raw import FS_BLOCK, RawModel
from kvmlab.storage.result import StorageComparison, StorageResult, compare
from kvmlab.storage.scenario import StorageScenario
from kvmlab.storage.twin import run_with_qemu


def simulate(scenario: StorageScenario | dict[str, Any], *,
             block_size: int = FS_BLOCK) -> StorageResult:
    """Predict the image a scenario makes: its map, allocated clusters and end offset.

    For a raw image, the "clusters" are the host file system's blocks of
    ``block_size`` bytes, and the end offset is the file's length.

    Examples
    --------
    >>> r = simulate({"format": "raw", "virtual_size": 1048576, "writes": [[8192, 10]]})
    >>> r.allocated_clusters, r.image_end_offset, len(r.map)
    (2, 1048576, 4)
    """
    if isinstance(scenario, dict):
        scenario = StorageScenario.from_dict(scenario)
    if scenario.format == "raw":
        raw = RawModel.from_scenario(scenario, block_size)
        return StorageResult(scenario=scenario, source="model", map=raw.map(),
                             allocated_clusters=raw.allocated_blocks,
                             image_end_offset=raw.virtual_size,
                             provenance={"model": "kvmlab.storage.raw",
                                         "block_size": block_size,
                                         "reserved_bytes": raw.reserved_bytes})
    image = Qcow2Model.from_scenario(scenario)
    return StorageResult(scenario=scenario, source="model", map=image.map(),
                         allocated_clusters=image.allocated_clusters,
                         image_end_offset=image.image_end_offset,
                         provenance={"model": "kvmlab.storage.qcow2"})


__all__ = ["IoWorkload", "Qcow2Model", "RawModel", "StorageComparison", "StorageResult",
           "StorageScenario", "compare", "run_with_qemu", "simulate", "simulate_io"]
