"""A model of a compressed qcow2 image: the written image converted with
``qemu-img convert -c -O qcow2``.

``qemu-img convert`` reads the source cluster by cluster (in the target's cluster size,
which kvmlab keeps equal to the source's) and skips what the source does not have or
what reads as zeros; with ``-c`` it deflates each remaining cluster (raw deflate, as
zlib's ``compress`` with a 4 KiB window) and stores the stream packed byte after byte,
several to a host cluster. A cluster whose stream would not be smaller than the cluster
is stored as it is; the guest's writes here fill clusters with one repeated byte (and
zeros), which always shrinks, so **every cluster the written image has becomes a
compressed cluster**.

``qemu-img map`` shows a compressed cluster as data with no ``offset`` (it has no one
place in the file a guest byte could be read from), and joins neighbours into one entry;
``qemu-img check`` counts each one in ``allocated-clusters`` and in
``compressed-clusters``. Where the file ends depends on the length of each deflate stream,
which the model does not compute: the end offset is **not predicted** (and not compared).

Examples
--------
>>> from kvmlab.storage.scenario import StorageScenario
>>> s = StorageScenario.from_dict({"virtual_size": 1048576, "compress": True,
...                                "writes": [[0, 70000], [524288, 1]]})
>>> image = CompressedQcow2.from_scenario(s)
>>> image.compressed_clusters, image.allocated_clusters
(3, 3)
>>> [(e["start"], e["length"], e["data"], "offset" in e) for e in image.map()]
[(0, 131072, True, False), (131072, 393216, False, False), (524288, 65536, True, False), \
(589824, 458752, False, False)]
"""

from __future__ import annotations

from typing import Any

from kvmlab.progress import Progress
from kvmlab.storage.qcow2 import Qcow2Model, cluster_ranges, merge_ranges
from kvmlab.storage.scenario import StorageScenario

__all__ = ["NOT_PREDICTED", "CompressedQcow2"]

NOT_PREDICTED = ("image_end_offset",)
"""What the compressed model leaves out: the file's end depends on deflate's output."""


class CompressedQcow2:
    """The compressed copy of a modelled qcow2 image.

    Attributes
    ----------
    written : Qcow2Model
        The image as the guest's writes left it (the source of the conversion).
    compressed : frozenset of int
        The guest clusters stored compressed.
    """

    def __init__(self, written: Qcow2Model) -> None:
        self.written = written
        self.virtual_size = written.virtual_size
        self.cluster_size = written.cluster_size
        self.compressed = frozenset(written.data)
        self.data: dict[int, int] = {}          # no cluster is stored as it is

    @classmethod
    def from_scenario(cls, scenario: StorageScenario, bar: Progress | None = None
                      ) -> CompressedQcow2:
        """The written image of ``scenario`` (:meth:`Qcow2Model.from_scenario`), compressed."""
        return cls(Qcow2Model.from_scenario(scenario, bar=bar))

    @property
    def compressed_clusters(self) -> int:
        """Compressed clusters (``qemu-img check``'s ``compressed-clusters``)."""
        return len(self.compressed)

    @property
    def allocated_clusters(self) -> int:
        """Clusters that hold data, compressed ones included (``allocated-clusters``)."""
        return len(self.compressed) + len(self.data)

    def map(self) -> list[dict[str, Any]]:
        """The image as ``qemu-img map --output=json`` shows it."""
        out = []
        for start, length, depth, present, zero, data, _offset in merge_ranges(
                cluster_ranges(self, 0, self.virtual_size, 0)):
            out.append({"start": start, "length": length, "depth": depth,
                        "present": present, "zero": zero, "data": data})
        return out
