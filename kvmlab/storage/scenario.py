"""Storage scenarios: an image, its format and cluster size, and the guest's writes.

The JSON form, which scripts may rely on::

    {"format": "qcow2", "virtual_size": 10485760, "cluster_size": 65536,
     "writes": [[1048576, 65536], [100, 10]]}

``writes`` are ``[offset, length]`` pairs in bytes, in the order the guest issues
them. ``backing`` (optional) makes the image a copy-on-write overlay: either the
path of an existing qcow2 image, or a scenario of its own (the base image, made
first from its writes). ``snapshots`` (optional, qcow2 only) takes internal
snapshots between the writes, as ``qemu-img snapshot -c NAME`` does::

    "snapshots": [{"after": 2, "name": "before-upgrade"}]

takes a snapshot once the first two writes are done.

``"format": "raw"`` is a plain file: guest byte N is file byte N. It has no
clusters, backing file or snapshots; ``preallocation`` is ``"off"`` (sparse, the
default), ``"falloc"`` (blocks reserved, still reading as holes) or ``"full"``
(every byte written at creation).

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.data import read_json
from kvmlab.errors import ScenarioError

FORMATS = ("qcow2", "raw")
PREALLOCATION = ("off", "falloc", "full")
MAX_SNAPSHOTS = 8
MAX_SNAPSHOT_NAME = 64
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
    snapshots: tuple[Snapshot, ...] = ()
    preallocation: str = "off"

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
                 "description", "snapshots", "preallocation"}
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
        if fmt == "raw":
            _raw_rules(data)
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
        preallocation = data.get("preallocation", "off")
        if preallocation not in PREALLOCATION:
            raise ScenarioError(f"preallocation {preallocation!r} is not one of {PREALLOCATION}")
        return cls(virtual_size=size, cluster_size=cluster, writes=writes, format=fmt,
                   backing=backing, name=str(data.get("name", "")),
                   snapshots=_snapshots(data.get("snapshots", []), len(writes)),
                   preallocation=preallocation)

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
        out: dict[str, Any] = {"format": self.format, "virtual_size": self.virtual_size,
                               "cluster_size": self.cluster_size,
                               "writes": [list(w) for w in self.writes]}
        if self.backing is not None:
            out["backing"] = (self.backing if isinstance(self.backing, str)
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
        return cls.from_dict(read_json(path, "scenario"))


@dataclass(frozen=True)
class Snapshot:
    """An internal snapshot taken once the first ``after`` writes are done."""

    after: int
    name: str


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
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ScenarioError('snapshots is a list of {"after": N, "name": NAME} objects')
    if len(raw) > MAX_SNAPSHOTS:
        raise ScenarioError(f"at most {MAX_SNAPSHOTS} snapshots per scenario, not {len(raw)}")
    out: list[Snapshot] = []
    for item in raw:
        if not isinstance(item, Mapping) or set(item) != {"after", "name"}:
            raise ScenarioError(f'each snapshot is {{"after": N, "name": NAME}}, not {item!r}')
        after = item["after"]
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= n_writes:
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
