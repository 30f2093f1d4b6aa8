"""Where a guest's kernel, initrd and console log live on the host that runs it.

A local host (``qemu:///system``, ``qemu:///session``) reads the files from a directory
of this machine (:class:`LocalStaging`). Any other host gets them through libvirt itself
(:class:`PoolStaging`): a ``kvmlab-`` storage pool is made on the target host, the kernel
and initrd are uploaded into it as volumes (``virStorageVol.upload`` with a stream), the
serial console writes into a volume of the same pool, and that volume is read back with
``virStorageVol.download``. Nothing is assumed about the target's file system beyond
what its libvirt says, and the pool (with an owner record, see :mod:`kvmlab.host.owner`)
is removed when the guest ends.

:func:`local_qemu_pid` finds a guest's QEMU process on *this* machine, if it runs here:
that, not the URI's shape, decides whether a lab may read ``/proc`` of the QEMU process.

Examples
--------
>>> pool_xml_for("kvmlab-doc-1", "/srv/kvmlab-doc-1")   # doctest: +ELLIPSIS
'<pool type="dir"><name>kvmlab-doc-1</name><target><path>/srv/kvmlab-doc-1</path>...'

>>> local_qemu_pid("kvmlab-no-such-guest") is None
True
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kvmlab.errors import ExperimentFailed
from kvmlab.host.connect import import_libvirt, is_local_uri
from kvmlab.host.owner import OWNER_FILE, boot_id, owner_record, parse_owner

__all__ = ["HOST_ANSWERS_KEPT", "OWNER_FILE", "OWNER_VOLUME", "SYSTEM_IMAGES_DIR",
           "LocalStaging", "PoolStaging", "download", "host_key", "is_system_uri",
           "keep_host_answer", "local_qemu_pid", "pool_base_dir", "pool_owner",
           "pool_xml_for", "probe_upload", "read_host_answers", "remove_pool", "staging_for",
           "upload"]

SYSTEM_IMAGES_DIR = Path("/var/lib/libvirt/images")
OWNER_VOLUME = "owner.txt"
"""The volume of a kvmlab pool that holds its owner record."""
_CHUNK = 256 * 1024


def is_system_uri(uri: str) -> bool:
    """True for a URI of a QEMU driver in ``system`` mode (local or remote).

    Examples
    --------
    >>> is_system_uri("qemu+unix:///system"), is_system_uri("qemu:///session")
    (True, False)
    >>> is_system_uri("qemu+ssh://root@lab2:2222/system?keyfile=/k&no_verify=1")
    True
    """
    scheme, _, rest = uri.partition("://")
    path = "/" + rest.partition("/")[2].split("?")[0] if rest else ""
    return scheme.split("+")[0] == "qemu" and path.rstrip("/") == "/system"


def pool_xml_for(name: str, path: str) -> str:
    """XML of a ``dir`` pool whose directory QEMU's user may enter and read."""
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = path
    ET.SubElement(ET.SubElement(target, "permissions"), "mode").text = "0755"
    return ET.tostring(pool, encoding="unicode")


def _volume_xml(name: str, size: int) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(size)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type="raw")
    ET.SubElement(ET.SubElement(target, "permissions"), "mode").text = "0644"
    return ET.tostring(vol, encoding="unicode")


def upload(conn: Any, vol: Any, data: bytes) -> None:
    """Write ``data`` into volume ``vol`` through a libvirt stream."""
    stream = conn.newStream(0)
    try:
        vol.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            sent += stream.send(bytes(view[sent:sent + _CHUNK]))
        stream.finish()
    except BaseException:
        with contextlib.suppress(Exception):
            stream.abort()
        raise


def download(conn: Any, vol: Any) -> bytes:
    """Read all of volume ``vol`` through a libvirt stream."""
    stream = conn.newStream(0)
    chunks = []
    try:
        vol.download(stream, 0, 0, 0)
        while chunk := stream.recv(_CHUNK):
            if not isinstance(chunk, bytes):         # -2: would block (not on this stream)
                break
            chunks.append(chunk)
        stream.finish()
    except BaseException:
        with contextlib.suppress(Exception):
            stream.abort()
        raise
    return b"".join(chunks)


def pool_base_dir(conn: Any) -> str:
    """The directory of the target host under which a kvmlab pool is made.

    libvirt's images directory for a ``system`` daemon (QEMU's user may read it), else
    the directory of the host's ``default`` pool (a ``session`` daemon's own images).

    Raises
    ------
    ExperimentFailed
        If the host has neither.
    """
    if is_system_uri(conn.getURI()):
        return str(SYSTEM_IMAGES_DIR)
    libvirt = import_libvirt()
    try:
        pool = conn.storagePoolLookupByName("default")
        path = ET.fromstring(pool.XMLDesc()).findtext("target/path")
    except libvirt.libvirtError:
        path = None
    if not path:
        raise ExperimentFailed(
            f"{conn.getURI()} is not a system daemon and has no 'default' storage pool to "
            "put the guest's kernel in; create one (virsh pool-define-as default dir "
            "--target DIR; virsh pool-build default; virsh pool-start default)")
    return path


def pool_owner(conn: Any, pool: Any) -> str:
    """The owner record kept in a kvmlab pool, or ``''`` (none, or unreadable)."""
    with contextlib.suppress(Exception):
        if pool.isActive():
            vol = pool.storageVolLookupByName(OWNER_VOLUME)
            text = download(conn, vol).decode(errors="replace")
            return text if parse_owner(text) else ""
    return ""


def remove_pool(pool: Any) -> None:
    """Delete a kvmlab pool's volumes and directory and forget the pool. Idempotent."""
    libvirt = import_libvirt()
    with contextlib.suppress(libvirt.libvirtError):
        if pool.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)
            for vol in pool.listAllVolumes():
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
            pool.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        pool.delete(0)                    # the (now empty) directory, on the target host
    with contextlib.suppress(libvirt.libvirtError):
        pool.undefine()


class LocalStaging:
    """The guest's files in a directory of this machine (QEMU runs here and reads it)."""

    poll_s = 0.05

    def __init__(self, root: Path, name: str) -> None:
        self.workdir = root / name
        self.kernel = str(self.workdir / "vmlinuz")
        self.initrd = str(self.workdir / "initrd.gz")
        self.console_log = str(self.workdir / "console.log")

    def put(self, kernel: Path, initrd: bytes) -> None:
        """Copy the kernel and write the initrd (and the owner record)."""
        self.workdir.mkdir(parents=True, exist_ok=False)
        self.workdir.chmod(0o755)
        (self.workdir / OWNER_FILE).write_text(owner_record() + "\n")
        shutil.copyfile(kernel, self.kernel)
        Path(self.initrd).write_bytes(initrd)

    def console(self) -> str:
        try:
            return Path(self.console_log).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        # virtlogd may still be writing the console log of a guest destroyed a moment ago,
        # and recreate it while the folder is being removed: try again until it is gone.
        for _ in range(20):
            shutil.rmtree(self.workdir, ignore_errors=True)
            if not self.workdir.exists():
                return
            time.sleep(0.1)


class PoolStaging:
    """The guest's files in a ``kvmlab-`` storage pool of the target host, via libvirt."""

    poll_s = 0.25

    def __init__(self, conn: Any, name: str) -> None:
        self.conn = conn
        self.name = name
        self.pool: Any = None
        self.kernel = self.initrd = self.console_log = ""
        self._log: Any = None
        self._last = ""
        self._last_t = 0.0

    def volume(self, name: str, data: bytes) -> Any:
        """Make volume ``name`` in the pool and upload ``data`` into it."""
        vol = self.pool.createXML(_volume_xml(name, len(data)), 0)
        if data:
            upload(self.conn, vol, data)
        return vol

    def make_pool(self) -> None:
        """Define, build and start the pool on the target host, with its owner record.

        Raises libvirt's own error; :meth:`close` removes whatever was made.
        """
        path = f"{pool_base_dir(self.conn).rstrip('/')}/{self.name}"
        self.pool = self.conn.storagePoolDefineXML(pool_xml_for(self.name, path), 0)
        self.pool.build(0)
        self.pool.create(0)
        self.volume(OWNER_VOLUME, (owner_record() + "\n").encode())

    def put(self, kernel: Path, initrd: bytes) -> None:
        """Make the pool on the target host and upload the kernel and initrd into it."""
        libvirt = import_libvirt()
        try:
            self.make_pool()
            self.kernel = self.volume("vmlinuz", kernel.read_bytes()).path()
            self.initrd = self.volume("initrd.gz", initrd).path()
            self._log = self.volume("console.log", b"")
            self.console_log = self._log.path()
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"cannot upload the guest's kernel and initrd to "
                                   f"{self.conn.getURI()} (storage pool {self.name}): "
                                   f"{exc}") from None

    def console(self) -> str:
        """The console log as the target host has it now (read at most every poll)."""
        if self._log is None:
            return ""
        if time.monotonic() - self._last_t >= self.poll_s / 2:
            with contextlib.suppress(Exception):      # a pool that is going away
                self._last = download(self.conn, self._log).decode(errors="replace")
            self._last_t = time.monotonic()
        return self._last

    def close(self) -> None:
        if self.pool is not None:
            remove_pool(self.pool)
            self.pool = None
        self._log = None


def staging_for(uri: str, conn: Any, name: str, local_root: Path) -> LocalStaging | PoolStaging:
    """A :class:`LocalStaging` in ``local_root`` for a local URI, else a :class:`PoolStaging`.

    Examples
    --------
    >>> type(staging_for("qemu:///session", None, "kvmlab-x", Path("/tmp"))).__name__
    'LocalStaging'
    >>> type(staging_for("qemu+ssh://root@lab2/system", None, "kvmlab-x", Path("/tmp"))).__name__
    'PoolStaging'
    """
    if is_local_uri(uri):
        return LocalStaging(local_root, name)
    return PoolStaging(conn, name)


def local_qemu_pid(name: str, proc: Path = Path("/proc")) -> int | None:
    """The id of the QEMU process of guest ``name`` if it runs on this machine, else None.

    libvirt starts QEMU with ``-name guest=NAME,...``; a kvmlab guest's name holds a
    random part, so a match here means the guest really runs on this machine (whatever
    URI reached it: ``qemu+ssh://`` to this machine's own sshd included).
    """
    wanted = f"guest={name}".encode()
    with contextlib.suppress(OSError):
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                for before, arg in itertools.pairwise(argv):
                    if before == b"-name" and arg.split(b",")[0] in (wanted, name.encode()):
                        return int(entry.name)
    return None


def probe_upload(conn: Any, name: str) -> int:
    """Check that a guest's files can be uploaded to the host of ``conn``; bytes sent.

    Makes the ``kvmlab-`` pool ``name`` on the host the way :class:`PoolStaging` does,
    uploads a small owner record into it, reads it back, and removes it all.

    Raises
    ------
    ExperimentFailed
        If any step fails (with libvirt's words), or the bytes read back differ.
    """
    staging = PoolStaging(conn, name)
    libvirt = import_libvirt()
    try:
        try:
            staging.make_pool()
            data = (owner_record() + "\n").encode()
            back = download(conn, staging.pool.storageVolLookupByName(OWNER_VOLUME))
        except libvirt.libvirtError as exc:
            raise ExperimentFailed(f"cannot make a storage pool and upload into it: "
                                   f"{exc}") from None
        if back != data:
            raise ExperimentFailed(f"uploaded {len(data)} bytes but read back {len(back)}")
        return len(data)
    finally:
        staging.close()


HOST_ANSWERS_KEPT = 16
"""How many hosts' answers a per-host cache file keeps (the most recently decided)."""


def host_key(uri: str, conn: Any, kernel_release: str) -> str:
    """Which host and boot ``conn`` (open to ``uri``) reaches, as a key for what was found
    out about it (the accelerator choice of :func:`kvmlab.host.guest.choose_accelerator`).

    The host as its libvirt names it (``getHostname()`` and the host UUID of its
    capabilities), the daemon's mode (``/system`` or ``/session``: a session daemon's QEMU
    may not open ``/dev/kvm``), the guest kernel, and the boot: this machine's boot id for
    a daemon reached through its local socket; libvirt tells no boot id of a remote host,
    so there the URI stands in. So a remote host's answer is never taken for this
    machine's, nor one host's for another's reached through the same URI.

    Examples
    --------
    >>> CAPS = "<capabilities><host><uuid>u-1</uuid></host></capabilities>"
    >>> class Host:
    ...     def __init__(self, name): self.name = name
    ...     def getHostname(self): return self.name
    ...     def getCapabilities(self): return CAPS
    >>> key = json.loads(host_key("qemu+ssh://root@lab2/system", Host("lab2"), "6.1"))
    >>> key["host"], key["host_uuid"], key["boot"], key["mode"]
    ('lab2', 'u-1', 'uri=qemu+ssh://root@lab2/system', '/system')
    >>> json.loads(host_key("qemu:///system", Host("me"), "6.1"))["boot"] == boot_id()
    True
    """
    libvirt = import_libvirt()
    try:
        hostname = str(conn.getHostname())
    except libvirt.libvirtError:
        hostname = ""
    try:
        host_uuid = ET.fromstring(conn.getCapabilities()).findtext("host/uuid") or ""
    except (libvirt.libvirtError, ET.ParseError):
        host_uuid = ""
    boot = boot_id() if is_local_uri(uri) else f"uri={uri}"
    return json.dumps({"host": hostname, "host_uuid": host_uuid, "boot": boot,
                       "mode": "/" + urlsplit(uri).path.strip("/"),
                       "kernel": kernel_release}, sort_keys=True)


def read_host_answers(memo: Path) -> dict[str, dict[str, Any]]:
    """The answers kept in ``memo`` by :func:`keep_host_answer` (none if it is missing,
    unreadable or of an older form), by :func:`host_key`."""
    with contextlib.suppress(OSError, ValueError):
        hosts = json.loads(memo.read_text()).get("hosts")
        if isinstance(hosts, dict):
            return {k: v for k, v in hosts.items()
                    if isinstance(v, dict) and v.get("accel") in ("kvm", "tcg")}
    return {}


def keep_host_answer(memo: Path, key: str, answer: dict[str, Any]) -> None:
    """Keep ``answer`` under ``key`` in ``memo``, with the other hosts' answers (at most
    :data:`HOST_ANSWERS_KEPT`, the newest); the file is replaced whole."""
    answers = read_host_answers(memo)
    answers.pop(key, None)
    answers[key] = answer
    kept = dict(list(answers.items())[-HOST_ANSWERS_KEPT:])
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"hosts": kept}, indent=1))
    tmp.replace(memo)
