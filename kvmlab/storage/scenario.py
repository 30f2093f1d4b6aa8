"""Storage scenarios: an image, its format and cluster size, and the guest's writes.

The JSON form, which scripts may rely on::

    {"format": "qcow2", "virtual_size": 10485760, "cluster_size": 65536,
     "writes": [[1048576, 65536], [100, 10]]}

``writes`` are ``[offset, length]`` pairs in bytes, in the order the guest issues
them. ``backing`` (optional) makes the image a copy-on-write overlay: either the
path of an existing qcow2 image, or a scenario of its own (the base image, made
first from its writes).

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
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError

FORMATS = ("qcow2",)
MIN_CLUSTER = 512
MAX_CLUSTER = 2 * 1024 * 1024
DEFAULT_CLUSTER = 65536


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{what} must be a whole number of bytes, not {value!r}")
    return value


@dataclass(frozen=True)
class StorageScenario:
    """An image to create and the writes a guest makes to it."""

    virtual_size: int
    cluster_size: int = DEFAULT_CLUSTER
    writes: tuple[tuple[int, int], ...] = ()
    format: str = "qcow2"
    backing: StorageScenario | str | None = None
    name: str = ""

    @property
    def clusters(self) -> int:
        """Number of guest clusters (the last one may be partial)."""
        return -(-self.virtual_size // self.cluster_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageScenario:
        """Build and check a scenario; a broken rule raises ScenarioError naming it."""
        if not isinstance(data, Mapping):
            raise ScenarioError("a storage scenario is a JSON object with format, "
                                "virtual_size, cluster_size and writes")
        known = {"format", "virtual_size", "cluster_size", "writes", "backing", "name",
                 "description"}
        if unknown := set(data) - known:
            raise ScenarioError(f"unknown scenario field(s) {sorted(unknown)}; known: "
                                f"{sorted(known)}")
        fmt = data.get("format", "qcow2")
        if fmt not in FORMATS:
            raise ScenarioError(f"format {fmt!r} is not modelled; use one of {FORMATS}")
        if "virtual_size" not in data:
            raise ScenarioError("a storage scenario needs 'virtual_size' (bytes)")
        size = _int(data["virtual_size"], "virtual_size")
        if size <= 0 or size % 512:
            raise ScenarioError(f"virtual_size must be a positive multiple of 512 bytes "
                                f"(a disk is made of 512-byte sectors), not {size}")
        cluster = _int(data.get("cluster_size", DEFAULT_CLUSTER), "cluster_size")
        if cluster < MIN_CLUSTER or cluster > MAX_CLUSTER or cluster & (cluster - 1):
            raise ScenarioError(f"cluster_size must be a power of two between 512 B and "
                                f"2 MiB, not {cluster}")
        raw_writes = data.get("writes", [])
        if not isinstance(raw_writes, Sequence) or isinstance(raw_writes, str):
            raise ScenarioError("writes must be a list of [offset, length] pairs")
        writes = tuple(_write(w, size) for w in raw_writes)
        backing = data.get("backing")
        if isinstance(backing, Mapping):
            backing = cls.from_dict(backing)
            if backing.virtual_size > size:
                raise ScenarioError("a backing image may not be larger than its overlay "
                                    f"({backing.virtual_size} > {size} bytes)")
        elif isinstance(backing, str):
            if not Path(backing).is_file():
                raise ScenarioError(f"backing file {backing!r} does not exist")
        elif backing is not None:
            raise ScenarioError("backing is the path of an image or a scenario of its own")
        return cls(virtual_size=size, cluster_size=cluster, writes=writes, format=fmt,
                   backing=backing, name=str(data.get("name", "")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "virtual_size": self.virtual_size,
                               "cluster_size": self.cluster_size,
                               "writes": [list(w) for w in self.writes]}
        if self.backing is not None:
            out["backing"] = (self.backing if isinstance(self.backing, str)
                              else self.backing.to_dict())
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def load(cls, path: str | Path) -> StorageScenario:
        """Read a scenario from a JSON file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path} is not valid JSON: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from None


def _write(w: Any, size: int) -> tuple[int, int]:
    if not isinstance(w, Sequence) or isinstance(w, str) or len(w) != 2:
        raise ScenarioError(f"each write is [offset, length] in bytes, not {w!r}")
    offset, length = _int(w[0], "a write's offset"), _int(w[1], "a write's length")
    if offset < 0:
        raise ScenarioError(f"a write's offset cannot be negative, got {offset}")
    if length <= 0:
        raise ScenarioError(f"a write's length must be positive, got {length}")
    if offset + length > size:
        raise ScenarioError(f"the write [{offset}, {length}] ends at byte {offset + length}, "
                            f"beyond the virtual size {size}")
    return offset, length
