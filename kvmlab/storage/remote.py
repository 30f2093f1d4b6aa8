"""A guest's disk on another libvirt host, and its image read back here through libvirt.

:func:`kvmlab.storage.guestdisk.run_in_guest` with a remote URI (``qemu+ssh://...``) makes
the scenario's volumes in a ``kvmlab-`` pool *on that host* (:class:`RemotePool`: made,
like the guest's kernel and initrd, by :class:`kvmlab.host.staging.PoolStaging` in the
directory libvirt there uses for images, with an owner record, removed when the run
ends, also on an exception, SIGINT, SIGTERM or SIGHUP). The guest writes them there. Then,
the guest powered off, :func:`download_chain` copies each image (and, for a qcow2 overlay,
every image below it) through libvirt into a local ``kvmlab-`` temporary folder:
``virStorageVol.download`` with a *sparse* stream, so that a hole of the host's file stays
a hole of the copy and ``qemu-img map`` of a raw copy shows the same data extents. Each
copy must be as long as the host's file. The copies are byte for byte the host's files:
an overlay's header still names its backing file by its path on the host, and
:func:`kvmlab.storage.twin.image_args` tells ``qemu-img`` where the local copy of each
image below is (``--image-opts`` with ``backing.file.filename=...``), never rewriting the
copy (``qemu-img rebase -u`` would change the header that ``qemu-img check`` reads).

virsh equivalents: ``virsh pool-define-as``, ``pool-build``, ``pool-start``,
``vol-create``, ``vol-download --sparse``, ``pool-destroy``, ``pool-delete``,
``pool-undefine``.

Examples
--------
>>> guest_host_uri("qemu+ssh://root@lab2/system"), guest_host_uri(None)
('qemu+ssh://root@lab2/system', None)
>>> is_remote("qemu+ssh://root@lab2/system"), is_remote("qemu:///system")
(True, False)
>>> guest_host_uri("test:///default")                     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: a guest's run needs a QEMU host: ...
"""

from __future__ import annotations

import contextlib
import os
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kvmlab.errors import ExperimentFailed, ScenarioError, shown
from kvmlab.host.connect import connect, import_libvirt, is_local_uri
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.signals import Transient
from kvmlab.host.staging import PoolStaging
from kvmlab.storage.pool import volume_xml
from kvmlab.storage.twin import local_uri

__all__ = ["RemotePool", "download_chain", "download_volume", "guest_host_uri", "is_remote"]

_MODES = ("/system", "/session")


def guest_host_uri(uri: str | None) -> str | None:
    """``uri`` if a guest's storage run can use it, else a ScenarioError.

    None (the default host), a local QEMU URI (as :func:`kvmlab.storage.twin.local_uri`
    accepts it), or a remote QEMU daemon reached through libvirt's remote driver
    (``qemu+ssh://``, ``qemu+tcp://``, ``qemu+tls://``, ``qemu+libssh2://``, ... with
    ``/system`` or ``/session``): there the volumes, the guest and its files are made
    through libvirt, and the images are read back through libvirt.

    Examples
    --------
    >>> guest_host_uri("qemu+tcp://lab2:16509/session")
    'qemu+tcp://lab2:16509/session'
    >>> guest_host_uri("qemu+ssh://lab2/")                 # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a guest's run needs a QEMU host: ... not 'qemu+ssh://lab2/'
    """
    with contextlib.suppress(ScenarioError):
        return local_uri(uri)
    assert uri is not None                   # local_uri accepts None
    parts = urlsplit(uri)
    scheme, _, transport = parts.scheme.partition("+")
    if (scheme == "qemu" and transport and not is_local_uri(uri)
            and "/" + parts.path.strip("/") in _MODES):
        return uri
    raise ScenarioError(f"a guest's run needs a QEMU host: uri must be None, qemu:///system, "
                        "qemu:///session or a remote QEMU daemon such as "
                        f"qemu+ssh://root@HOST/system, not {shown(uri)}")


def is_remote(uri: str) -> bool:
    """True if the daemon behind ``uri`` is reached through libvirt's remote driver, so that
    its files are not read from this machine (even when the host is this machine).

    Examples
    --------
    >>> is_remote("qemu+ssh://root@127.0.0.1:2222/system"), is_remote("qemu:///session")
    (True, False)
    """
    return not is_local_uri(uri)


class RemotePool(Transient):
    """A ``kvmlab-pool-<id>`` ``dir`` pool on the host behind ``uri``, for exactly as long
    as a ``with`` block: the same :meth:`create_volume` as
    :class:`kvmlab.storage.pool.TransientPool`, made through libvirt only.

    Its directory is the one that host's libvirt keeps images in
    (:func:`kvmlab.host.staging.pool_base_dir`); an owner record lies in it as a volume,
    so that a run killed with SIGKILL is cleaned up later (``kvmlab doctor --cleanup``).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.name = f"{NAME_PREFIX}pool-{secrets.token_hex(4)}"
        self.conn: Any = None
        self.pool: Any = None
        self.path = ""                   # the directory, on the remote host
        self._staging: PoolStaging | None = None

    def start(self) -> None:
        """Make the pool (and its directory) on the remote host."""
        self.conn = connect(self.uri, write=True)
        self._staging = PoolStaging(self.conn, self.name)
        libvirt = import_libvirt()
        try:
            self._staging.make_pool()
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt on {self.uri} refused to make pool "
                                   f"{self.name}: {exc}") from None
        self.pool = self._staging.pool
        self.path = ET.fromstring(self.pool.XMLDesc(0)).findtext("target/path") or ""

    def create_volume(self, name: str, capacity_bytes: int, fmt: str = "qcow2",
                      backing: Any = None, *, cluster_size: int | None = None,
                      secret_uuid: str | None = None) -> Any:
        """Create a volume on the remote host; ``backing`` is another volume of this pool
        (see :func:`kvmlab.storage.pool.volume_xml`)."""
        xml = volume_xml(name, capacity_bytes, fmt,
                         backing.path() if backing is not None else None,
                         cluster_size=cluster_size, secret_uuid=secret_uuid)
        libvirt = import_libvirt()
        try:
            return self.pool.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"libvirt on {self.uri} refused to create volume "
                                   f"{name}: {exc}") from None

    def hostname(self) -> str:
        """The remote host's name, as its libvirt says (``virsh hostname``)."""
        return str(self.conn.getHostname())

    def close(self) -> None:
        """Remove the volumes, the pool and its directory on the host. Idempotent."""
        if self._staging is not None:
            self._staging.close()
            self._staging = None
        self.pool = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def _skip_hole(fd: int, length: int) -> int:
    end = os.lseek(fd, length, os.SEEK_CUR)
    os.ftruncate(fd, end)           # a hole at the very end still makes the file that long
    return 0


def physical_size(vol: Any) -> int:
    """The length in bytes of a volume's file on its host (not its capacity)."""
    libvirt = import_libvirt()
    return int(vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2])


def download_volume(conn: Any, vol: Any, path: Path) -> int:
    """Copy volume ``vol``'s file into ``path`` (readable by its owner only) through a
    sparse libvirt stream; return the copy's length.

    Raises
    ------
    ExperimentFailed
        If libvirt refuses the download, or the copy is not as long as the file on the
        host.
    """
    libvirt = import_libvirt()
    expected = physical_size(vol)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    stream = conn.newStream(0)
    try:
        vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        stream.sparseRecvAll(lambda _s, data, f: _write_all(f, data),
                             lambda _s, length, f: _skip_hole(f, length), fd)
        stream.finish()
    except libvirt.libvirtError as exc:
        with contextlib.suppress(Exception):
            stream.abort()
        raise ExperimentFailed(f"cannot download volume {vol.name()} through libvirt "
                               f"(a sparse stream, libvirt 3.4 or later): {exc}") from None
    except BaseException:
        with contextlib.suppress(Exception):
            stream.abort()
        raise
    finally:
        os.close(fd)
    got = path.stat().st_size
    if got != expected:
        raise ExperimentFailed(f"the copy of volume {vol.name()} holds {got} bytes, but the "
                               f"file on the host holds {expected}")
    return got


def download_chain(conn: Any, vols: Sequence[Any], folder: Path) -> list[Path]:
    """Copy the volumes ``vols`` (a backing chain, the deepest base first) into ``folder``;
    return the copies' paths in the same order."""
    out = []
    for vol in vols:
        path = folder / vol.name()
        download_volume(conn, vol, path)
        out.append(path)
    return out
