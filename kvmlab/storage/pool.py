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
import secrets
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.connect import connect, import_libvirt
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.guest import live_uri
from kvmlab.host.owner import OWNER_FILE, owned_tempdir, owner_record
from kvmlab.host.signals import Transient
from kvmlab.storage.luks import CPU_CLOCK_FLAKE

VOLUME_FORMATS = ("raw", "qcow2", "vmdk")
VOLUME_ATTEMPTS = 6
"""How often an encrypted volume is made before its ``CPU_CLOCK_FLAKE`` counts: three
attempts in a row failed on a busy 2-CPU host; the pauses between them double from 0.1 s."""


def pool_xml(name: str, path: str) -> str:
    """libvirt XML for a ``dir`` pool called ``name`` at ``path``."""
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = path
    return ET.tostring(pool, encoding="unicode")


def volume_xml(name: str, capacity_bytes: int, fmt: str, backing: str | None = None,
               backing_format: str = "qcow2", *, cluster_size: int | None = None,
               secret_uuid: str | None = None) -> str:
    """libvirt XML for a sparse volume (a qcow2 overlay when ``backing`` is a path).

    A qcow2 volume is version 3 (``<compat>1.1</compat>``), as ``qemu-img create`` makes
    it. ``cluster_size`` (qcow2) becomes ``<clusterSize>``; ``secret_uuid`` (qcow2) makes the
    volume LUKS-encrypted with the passphrase that libvirt secret holds. The allocation is
    0: libvirt would otherwise reserve (a raw file: write) the whole capacity.

    Examples
    --------
    >>> x = volume_xml("kvmlab-v", 1048576, "qcow2", cluster_size=4096, secret_uuid="u-1")
    >>> ET.fromstring(x).findtext("target/clusterSize")
    '4096'
    >>> ET.fromstring(x).find("target/encryption/secret").get("uuid")
    'u-1'
    >>> volume_xml("kvmlab-v", 1048576, "raw", secret_uuid="u-1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: only a qcow2 volume is encrypted here ...
    """
    if not name.startswith(NAME_PREFIX):
        raise ScenarioError(f"volume name {name!r} must start with {NAME_PREFIX!r}")
    if fmt not in VOLUME_FORMATS:
        raise ScenarioError(f"volume format {fmt!r} is not one of {VOLUME_FORMATS}")
    if capacity_bytes <= 0 or capacity_bytes % 512:
        raise ScenarioError(f"a volume's capacity must be a positive multiple of 512 bytes, "
                            f"not {capacity_bytes}")
    if backing is not None and fmt != "qcow2":
        raise ScenarioError("only a qcow2 volume can have a backing image")
    if secret_uuid is not None and fmt != "qcow2":
        raise ScenarioError(f"only a qcow2 volume is encrypted here (LUKS inside qcow2), "
                            f"not a {fmt} one")
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity_bytes)
    ET.SubElement(vol, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=fmt)
    if fmt == "qcow2":              # as qemu-img create makes it (libvirt's default: 0.10)
        ET.SubElement(target, "compat").text = "1.1"
    if cluster_size is not None and fmt == "qcow2":
        ET.SubElement(target, "clusterSize", unit="B").text = str(cluster_size)
    if secret_uuid is not None:
        enc = ET.SubElement(target, "encryption", format="luks")
        ET.SubElement(enc, "secret", type="passphrase", uuid=secret_uuid)
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
            raise ExperimentFailed(
                f"libvirt refused to create pool {self.name}: {exc}. Check that libvirtd has "
                f"its storage driver and that {self.path} is free to use ('kvmlab doctor' "
                "checks the host; 'make setup' installs what it needs)") from None

    def create_volume(self, name: str, capacity_bytes: int, fmt: str = "qcow2",
                      backing: Any = None, *, cluster_size: int | None = None,
                      secret_uuid: str | None = None) -> Any:
        """Create a volume through libvirt; ``backing`` is another volume of this pool
        (see :func:`volume_xml` for the rest)."""
        backing_path = backing.path() if backing is not None else None
        xml = volume_xml(name, capacity_bytes, fmt, backing_path, cluster_size=cluster_size,
                         secret_uuid=secret_uuid)
        libvirt = import_libvirt()
        for attempt in range(VOLUME_ATTEMPTS):
            try:
                return self.pool.createXML(xml)
            except libvirt.libvirtError as exc:
                error = exc
            # libvirt runs `qemu-img create` for an encrypted volume: see CPU_CLOCK_FLAKE
            if CPU_CLOCK_FLAKE not in str(error):
                break
            with contextlib.suppress(libvirt.libvirtError):         # a half-made volume
                self.pool.refresh(0)
                self.pool.storageVolLookupByName(name).delete(0)
            if attempt + 1 < VOLUME_ATTEMPTS:
                time.sleep(0.1 * 2 ** attempt)                      # let a busy host settle
        raise ExperimentFailed(f"libvirt refused to create volume {name}: {error}")

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


def secret_xml(description: str) -> str:
    """libvirt XML for an ephemeral, private passphrase secret (no usage: found by UUID).

    Examples
    --------
    >>> root = ET.fromstring(secret_xml("kvmlab-luks-1"))
    >>> root.get("ephemeral"), root.get("private"), root.findtext("description")
    ('yes', 'yes', 'kvmlab-luks-1')
    """
    if not description.startswith(NAME_PREFIX):
        raise ScenarioError(f"a secret's description must start with {NAME_PREFIX!r} so "
                            "that a clean-up can find it")
    root = ET.Element("secret", ephemeral="yes", private="yes")
    ET.SubElement(root, "description").text = description
    return ET.tostring(root, encoding="unicode")


class TransientSecret(Transient):
    """A libvirt secret holding a passphrase, for exactly as long as a ``with`` block.

    ``virsh secret-define`` + ``virsh secret-set-value``; removed (``secret-undefine``)
    when the block ends, also on an exception, SIGINT, SIGTERM or SIGHUP. Its description
    is ``kvmlab-luks-<id>``; :attr:`uuid` is what a volume's or a disk's
    ``<encryption><secret uuid=...>`` names.
    """

    def __init__(self, passphrase: str, uri: str | None = None) -> None:
        self.uri = live_uri(uri)
        self.passphrase = passphrase
        self.description = f"{NAME_PREFIX}luks-{secrets.token_hex(4)}"
        self.conn: Any = None
        self.secret: Any = None
        self.uuid = ""

    def start(self) -> None:
        """Define the secret and give it its value."""
        self.conn = connect(self.uri, write=True)
        libvirt = import_libvirt()
        try:
            self.secret = self.conn.secretDefineXML(secret_xml(self.description))
            self.secret.setValue(self.passphrase.encode())
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt refused the secret {self.description}: {exc}"
                                   ) from None
        self.uuid = self.secret.UUIDString()

    def close(self) -> None:
        """Undefine the secret. Idempotent."""
        libvirt = import_libvirt()
        if self.secret is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.secret.undefine()
            self.secret = None
        if self.conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.close()
            self.conn = None
