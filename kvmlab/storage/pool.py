"""A transient libvirt storage pool of type ``dir`` in a temporary directory.

A *pool* is a place libvirt keeps disk images; a *volume* is one image in it,
what a guest sees as a disk. :class:`TransientPool` creates a pool named
``kvmlab-pool-<id>`` in a fresh temporary directory under kvmlab's own
:func:`kvmlab.host.owner.temp_root` (never one of the host's own pools), with an owner
record, lets you create volumes in it through libvirt, and removes volumes, pool
and directory when the ``with`` block ends, also on an exception, SIGINT, SIGTERM or
SIGHUP (after a SIGKILL, ``kvmlab doctor --cleanup`` removes them).

virsh equivalents: ``virsh pool-create-as NAME dir --target DIR``,
``virsh vol-create-as NAME VOL SIZE --format qcow2 [--backing-vol ...]``,
``virsh vol-delete``, ``virsh pool-destroy``.

Examples
--------
>>> xml = pool_xml("kvmlab-pool-doc", "/tmp/kvmlab-pool-doc")
>>> "<pool type=\\"dir\\">" in xml
True
>>> "<format type=\\"qcow2\\" />" in volume_xml("kvmlab-vol-1", 1048576, "qcow2")
True
"""

from __future__ import annotations

import contextlib
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import connect, import_libvirt
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.guest import live_uri
from kvmlab.host.owner import OWNER_FILE, owned_tempdir, owner_record
from kvmlab.host.signals import Transient

VOLUME_FORMATS = ("raw", "qcow2")


def pool_xml(name: str, path: str) -> str:
    """libvirt XML for a ``dir`` pool called ``name`` at ``path``."""
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = path
    return ET.tostring(pool, encoding="unicode")


def volume_xml(name: str, capacity_bytes: int, fmt: str, backing: str | None = None,
               backing_format: str = "qcow2") -> str:
    """libvirt XML for a volume (a qcow2 overlay when ``backing`` is a path)."""
    if not name.startswith(NAME_PREFIX):
        raise ScenarioError(f"volume name {name!r} must start with {NAME_PREFIX!r}")
    if fmt not in VOLUME_FORMATS:
        raise ScenarioError(f"volume format {fmt!r} is not one of {VOLUME_FORMATS}")
    if capacity_bytes <= 0 or capacity_bytes % 512:
        raise ScenarioError(f"a volume's capacity must be a positive multiple of 512 bytes, "
                            f"not {capacity_bytes}")
    if backing is not None and fmt != "qcow2":
        raise ScenarioError("only a qcow2 volume can have a backing image")
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity_bytes)
    ET.SubElement(ET.SubElement(vol, "target"), "format", type=fmt)
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type=backing_format)
    return ET.tostring(vol, encoding="unicode")


class TransientPool(Transient):
    """A ``dir`` pool that exists exactly as long as a ``with`` block.

    Parameters
    ----------
    uri : str, optional
        A local QEMU libvirt URI (see :func:`kvmlab.host.guest.live_uri`).
    """

    def __init__(self, uri: str | None = None) -> None:
        self.uri = live_uri(uri)
        self.conn: Any = None
        self.pool: Any = None
        self.path: Path | None = None
        self.name = ""
        self._dir: Any = None

    def start(self) -> None:
        """Create the temporary directory and the pool in it."""
        self.conn = connect(self.uri, write=True)
        self._dir = owned_tempdir("pool")
        self.path = Path(self._dir.__enter__())
        self.path.chmod(0o755)
        (self.path / OWNER_FILE).write_text(owner_record() + "\n")
        self.name = self.path.name
        libvirt = import_libvirt()
        try:
            self.pool = self.conn.storagePoolCreateXML(pool_xml(self.name, str(self.path)), 0)
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt refused to create pool {self.name}: {exc}") from None

    def create_volume(self, name: str, capacity_bytes: int, fmt: str = "qcow2",
                      backing: Any = None) -> Any:
        """Create a volume through libvirt; ``backing`` is another volume of this pool."""
        backing_path = backing.path() if backing is not None else None
        xml = volume_xml(name, capacity_bytes, fmt, backing_path)
        libvirt = import_libvirt()
        try:
            return self.pool.createXML(xml)
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt refused to create volume {name}: {exc}") from None

    def close(self) -> None:
        """Delete the volumes, destroy the pool, remove the directory. Idempotent."""
        libvirt = import_libvirt()
        if self.pool is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.pool.refresh(0)
                for vol in self.pool.listAllVolumes():
                    with contextlib.suppress(libvirt.libvirtError):
                        vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                self.pool.destroy()
            self.pool = None
        if self.conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.close()
            self.conn = None
        if self._dir is not None:
            self._dir.__exit__(None, None, None)          # removes self.path
            self._dir = None
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
