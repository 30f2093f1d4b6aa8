"""Read-only look at a host's storage: pools, volumes, formats and backing chains.

Builds on :func:`kvmlab.host.tour.list_pools` and adds, for each volume, its
backing chain, read from the libvirt volume XML (``virsh vol-dumpxml``) and,
below that, from the qcow2 headers themselves.

Examples
--------
>>> from kvmlab.host import connect
>>> [p.name for p in probe_pools(connect("test:///default"))]
['default-pool']
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.host.tour import list_pools
from kvmlab.storage.reader import MAGIC, parse_header


@dataclass(frozen=True)
class VolumeFacts:
    """One volume: where it is, its format and sizes, and the images below it."""

    name: str
    path: str
    format: str | None
    capacity_bytes: int | None
    allocation_bytes: int | None
    backing_chain: tuple[str, ...]


@dataclass(frozen=True)
class PoolFacts:
    """One pool and its volumes."""

    name: str
    type: str | None
    active: bool
    target_path: str | None
    capacity_bytes: int | None
    allocation_bytes: int | None
    volumes: tuple[VolumeFacts, ...]


def backing_chain(path: str | Path, limit: int = 16) -> tuple[str, ...]:
    """The backing files below a qcow2 image, read from the headers (nearest first)."""
    chain: list[str] = []
    current = Path(path)
    while len(chain) < limit:
        try:
            with open(current, "rb") as f:
                head = f.read(72)
                if head[:4] != MAGIC:
                    break
                h = parse_header(head)
                if not h["backing_file_offset"]:
                    break
                f.seek(h["backing_file_offset"])
                name = f.read(h["backing_file_size"]).decode()
        except (OSError, ScenarioError):
            break
        nxt = Path(name) if Path(name).is_absolute() else current.parent / name
        chain.append(str(nxt))
        current = nxt
    return tuple(chain)


def _volume_backing(vol: Any) -> str | None:
    try:
        return ET.fromstring(vol.XMLDesc()).findtext("backingStore/path")
    except Exception:  # noqa: BLE001 - a volume that vanished has no backing
        return None


def probe_pools(conn: Any) -> list[PoolFacts]:
    """Every pool of the host with its volumes and their backing chains (reads only)."""
    out = []
    for pool in list_pools(conn):
        vols = []
        for v in pool.volumes:
            chain = backing_chain(v.path) if v.path and Path(v.path).exists() else ()
            if not chain:
                lv_pool = conn.storagePoolLookupByName(pool.name)
                first = _volume_backing(lv_pool.storageVolLookupByName(v.name))
                chain = (first,) if first else ()
            vols.append(VolumeFacts(v.name, v.path or "", v.format, v.capacity_bytes,
                                    v.allocation_bytes, chain))
        out.append(PoolFacts(pool.name, pool.type, pool.active, pool.target_path,
                             pool.capacity_bytes, pool.allocation_bytes, tuple(vols)))
    return out
