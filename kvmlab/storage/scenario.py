"""Storage scenarios: an image, its format and cluster size, and the guest's writes (the
I/O workloads of the I/O model are in :mod:`kvmlab.storage.io_scenario`, re-exported here).

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

``"format": "vmdk"`` is a VMware sparse disk as ``qemu-img create -f vmdk`` makes it:
``"subformat": "monolithicSparse"`` (the default and the only one modelled: one file,
64 KiB grains, see :mod:`kvmlab.storage.vmdk`). It has no backing file, snapshots or
cluster size of its own (``cluster_size`` may only be 65536, the grain).

``"compress": true`` (qcow2 only, on the top image, without a backing image) means the
image looked at is the written image converted with ``qemu-img convert -c -O qcow2``: every
cluster that holds data becomes a compressed cluster (:mod:`kvmlab.storage.compress`).

A backing chain must end: a dict that holds itself further down, or a backing file whose
chain leads back to itself, is refused.

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
>>> StorageScenario.from_dict({"format": "vmdk", "subformat": "streamOptimized",
...                            "virtual_size": 1048576})     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: vmdk subformat 'streamOptimized' is not modelled; kvmlab models ...
>>> StorageScenario.from_dict({"format": "raw", "virtual_size": 1048576,
...                            "compress": True})     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: compress is a qcow2 option (qemu-img convert -c -O qcow2); a raw ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmlab.data import load_scenario_as
from kvmlab.errors import ScenarioError
from kvmlab.storage.io_scenario import (
    DEFAULT_CLUSTER,
    DISKS,
    HDD,
    IO_FORMATS,
    IO_PATTERNS,
    MAX_CLUSTER,
    MAX_REQUESTS,
    MAX_TOUCHED_CLUSTERS,
    MIN_CLUSTER,
    SECTOR,
    SSD,
    DiskParams,
    IoWorkload,
)
from kvmlab.storage.reader import Qcow2File, read_qcow2
from kvmlab.validate import (
    check_keys,
    is_whole,
    list_of,
    mapping,
    read_json_file,
    suggest,
    text,
    whole_number,
)

__all__ = ["DEFAULT_CLUSTER", "DISKS", "FORMATS", "HDD", "IO_FORMATS", "IO_PATTERNS",
           "MAX_BACKING_DEPTH", "MAX_CLUSTER", "MAX_MODEL_UNITS", "MAX_REQUESTS",
           "MAX_TOUCHED_CLUSTERS", "MAX_VIRTUAL_SIZE", "MIN_CLUSTER", "PAGE", "PREALLOCATION",
           "SECTOR",
           "SSD", "VMDK_GRAIN", "VMDK_SUBFORMATS", "DiskParams", "Encryption", "IoWorkload",
           "Snapshot",
           "StorageScenario", "as_scenario", "guest_requests", "load_scenario", "model_units"]

FORMATS = ("qcow2", "raw", "vmdk")
PREALLOCATION = ("off", "falloc", "full")
VMDK_SUBFORMATS = ("monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
                   "twoGbMaxExtentFlat", "streamOptimized", "vmfs")
"""What ``qemu-img create -f vmdk -o subformat=`` takes; only the first is modelled."""
VMDK_GRAIN = 65536
"""The grain (a vmdk cluster) ``qemu-img create -f vmdk`` makes: 128 sectors."""
MAX_SNAPSHOTS = 8
MAX_SNAPSHOT_NAME = 64

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
PAGE = 4096
"""A guest writes its disk at most one page (of its page cache) per request."""


def guest_requests(offset: int, length: int) -> list[tuple[int, int]]:
    """The requests in which a guest's write of ``length`` bytes at ``offset`` reaches its disk.

    A disk takes whole sectors, so the write is widened to the sectors it touches (the
    guest reads a partial sector first and writes it back changed); the sectors go out
    one page at a time, each at most up to the next page boundary, in the order of their
    offsets (:func:`kvmlab.storage.guestdisk.write_lines` writes exactly these). An image
    format allocates in the order its requests arrive, so the model of a guest's run
    applies these requests, not the write as a whole.

    Examples
    --------
    >>> guest_requests(100, 10)
    [(0, 512)]
    >>> guest_requests(3000, 6000)
    [(2560, 1536), (4096, 4096), (8192, 1024)]
    """
    start = offset // SECTOR * SECTOR
    end = -(-(offset + length) // SECTOR) * SECTOR
    out = []
    while start < end:
        step = min(end, (start // PAGE + 1) * PAGE) - start
        out.append((start, step))
        start += step
    return out


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
    subformat: str = ""
    compress: bool = False
    encryption: Encryption | None = None

    @property
    def clusters(self) -> int:
        """Number of guest clusters (the last one may be partial)."""
        return -(-self.virtual_size // self.cluster_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageScenario:
        """Build and check a scenario; a broken rule raises ScenarioError naming it."""
        return _from_dict(cls, data, 0, ())

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
        if self.format == "vmdk":
            out["subformat"] = self.subformat
        if self.compress:
            out["compress"] = True
        if self.encryption is not None:
            out["encryption"] = {"format": self.encryption.format,
                                 "secret": self.encryption.secret}
        return out

    @classmethod
    def load(cls, path: str | Path) -> StorageScenario:
        """Read a scenario from a JSON file."""
        return cls.from_dict(read_json_file(path, "scenario"))


@dataclass(frozen=True)
class Encryption:
    """A LUKS-encrypted qcow2 image: the format (``luks``) and the passphrase (the *secret*
    libvirt keeps and QEMU derives the key from)."""

    format: str
    secret: str = field(repr=False)


ENCRYPTION_FORMATS = ("luks",)
MAX_SECRET = 512


def _encryption_rules(data: Mapping[str, Any], fmt: str, depth: int) -> Encryption | None:
    """The image's encryption (None if it has none), after the encryption rules."""
    raw = data.get("encryption")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ScenarioError('encryption is {"format": "luks", "secret": PASSPHRASE}, not '
                            f"{str(raw)[:60]}")
    check_keys(raw, ("format", "secret"), "encryption")
    kind = raw.get("format", "luks")
    if kind not in ENCRYPTION_FORMATS:
        raise ScenarioError(f"encryption format {kind!r} is not one of {ENCRYPTION_FORMATS}"
                            f"{suggest(str(kind), ENCRYPTION_FORMATS)} (QEMU's old 'aes' "
                            "qcow2 encryption is insecure and refused by QEMU itself)")
    secret = raw.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ScenarioError("an encrypted image needs a secret: encryption.secret, the "
                            "passphrase QEMU derives the disk's key from (kvmlab hands it to "
                            "libvirt as a transient secret); an encryption without one "
                            "cannot be opened by anybody")
    if len(secret) > MAX_SECRET or not secret.isprintable():
        raise ScenarioError(f"encryption.secret is 1 to {MAX_SECRET} printable characters")
    if fmt != "qcow2":
        raise ScenarioError(f"encryption is a qcow2 option here (LUKS inside qcow2); a {fmt} "
                            "image is not encrypted (use qcow2)")
    if depth or data.get("backing") is not None or data.get("compress") \
            or data.get("snapshots"):
        raise ScenarioError("an encrypted image here has no backing image, compression or "
                            "snapshots (and is not itself a backing image)")
    return Encryption(kind, secret)


@dataclass(frozen=True)
class Snapshot:
    """An internal snapshot taken once the first ``after`` writes are done."""

    after: int
    name: str


def _from_dict(cls: type[StorageScenario], data: Any, depth: int,
               above: tuple[int, ...]) -> StorageScenario:
    """A scenario from its JSON form, ``depth`` backing scenarios below the top; ``above``
    holds the ids of the dicts above it (a loop in the chain is refused)."""
    where = "the storage scenario" if depth == 0 else f"backing scenario {depth}"
    data = mapping(data, f"{where} (format, virtual_size, cluster_size, writes)")
    check_keys(data, ("format", "virtual_size", "cluster_size", "writes", "backing", "name",
                      "description", "snapshots", "preallocation", "subformat", "compress",
               "encryption"),
               where)
    fmt = data.get("format", "qcow2")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ScenarioError(f"format {fmt!r} is not modelled; use one of {FORMATS}"
                            f"{suggest(fmt, FORMATS)}")
    subformat = _vmdk_rules(data, fmt)
    compress = _compress_rules(data, fmt, depth)
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
        raise ScenarioError(f"preallocation is a raw image's option; a {fmt} image here is "
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
        if id(backing) in (*above, id(data)):
            raise ScenarioError(f"the backing chain loops: {where}'s backing is "
                                f"{'itself' if backing is data else 'a scenario above it'}; "
                                "a backing chain must end in an image without a backing file")
        if depth + 1 > MAX_BACKING_DEPTH:
            raise ScenarioError(f"a chain of backing scenarios may be at most "
                                f"{MAX_BACKING_DEPTH} deep")
        backing = _from_dict(cls, backing, depth + 1, (*above, id(data)))
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
               preallocation=preallocation, subformat=subformat, compress=compress,
               encryption=_encryption_rules(data, fmt, depth))


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


def _vmdk_rules(data: Mapping[str, Any], fmt: str) -> str:
    """The vmdk subformat (``''`` for other formats), after the vmdk rules."""
    if fmt != "vmdk":
        if "subformat" in data:
            raise ScenarioError(f"subformat is a vmdk option (monolithicSparse, ...); a {fmt} "
                                "image has none (drop subformat, or use vmdk)")
        return ""
    sub = data.get("subformat", VMDK_SUBFORMATS[0])
    if not isinstance(sub, str) or sub not in VMDK_SUBFORMATS:
        raise ScenarioError(f"vmdk subformat {sub!r} is not one of {VMDK_SUBFORMATS}"
                            f"{suggest(sub, VMDK_SUBFORMATS)}")
    if sub != VMDK_SUBFORMATS[0]:
        raise ScenarioError(f"vmdk subformat {sub!r} is not modelled; kvmlab models "
                            f"{VMDK_SUBFORMATS[0]}")
    if data.get("cluster_size", VMDK_GRAIN) != VMDK_GRAIN:
        raise ScenarioError(f"a vmdk image's grain is {VMDK_GRAIN} bytes (128 sectors, as "
                            f"qemu-img create -f vmdk makes it); cluster_size may only be "
                            f"{VMDK_GRAIN}, not {data['cluster_size']!r}")
    if data.get("backing") is not None:
        raise ScenarioError("a vmdk image here has no backing file: copy-on-write chains "
                            "are modelled for qcow2 only")
    if data.get("snapshots"):
        raise ScenarioError("a vmdk image has no internal snapshots: they need qcow2")
    return sub


def _compress_rules(data: Mapping[str, Any], fmt: str, depth: int) -> bool:
    """Whether the image is converted with ``qemu-img convert -c``, after its rules."""
    compress = data.get("compress", False)
    if not isinstance(compress, bool):
        raise ScenarioError(f"compress is true or false, not {compress!r}")
    if not compress:
        return False
    if fmt == "raw":
        raise ScenarioError("compress is a qcow2 option (qemu-img convert -c -O qcow2); a raw "
                            "image has no clusters to compress")
    if fmt == "vmdk":
        raise ScenarioError("compress is a qcow2 option (qemu-img convert -c -O qcow2); a "
                            "compressed vmdk is the streamOptimized subformat, which is not "
                            "modelled")
    if depth:
        raise ScenarioError("compress applies to the top image only (the one converted with "
                            "qemu-img convert -c), not to a backing scenario")
    if data.get("backing") is not None:
        raise ScenarioError("compress with a backing image is not modelled: qemu-img convert "
                            "copies the whole chain, and whether a cluster then holds only "
                            "zeros depends on bytes the model does not follow")
    return True


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
