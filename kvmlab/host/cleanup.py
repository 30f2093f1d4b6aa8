"""Find and remove what a crashed or killed kvmlab run left on a host.

Everything kvmlab creates on a host carries the ``kvmlab-`` prefix: transient
guests, storage pools and volumes, networks, network namespaces, host links, scheduler
traces (tracefs instances), the guests' staged files and kvmlab's temporary folders (under
:func:`kvmlab.host.owner.temp_root`). Only objects with that prefix are ever touched,
and of guests, pools and folders only those holding kvmlab's owner record: a pool
named ``kvmlab-...`` that kvmlab did not make is listed but never removed.

Examples
--------
>>> from kvmlab.host import connect
>>> find_libvirt_leftovers(connect("test:///default"))   # the test driver's objects are not ours
[]
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kvmlab.errors import HostUnavailable
from kvmlab.host.connect import connection, import_libvirt, is_local_uri
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.guest import destroy_domain, live_uri
from kvmlab.host.image import cache_dir
from kvmlab.host.owner import OWNER_FILE, dir_owner, parse_owner, stale_reason, temp_root
from kvmlab.host.staging import SYSTEM_IMAGES_DIR, pool_owner, remove_pool
from kvmlab.host.tracefs import INSTANCE_PREFIX, TRACEFS, instance_owner, remove_instance


@dataclass(frozen=True)
class Leftover:
    """One ``kvmlab-`` object: its kind, its name, where it is, and whether it is in use.

    ``in_use`` when the kvmlab process that made it still runs (its owner record names a
    process with the same id *and start time* on this boot); ``owner_pid`` is that
    process's id. ``elsewhere`` when its owner ran on another machine, whose processes
    cannot be seen from here: such an object may be in use and is not a sure leftover.
    ``unowned`` when it holds no kvmlab owner record: kvmlab did not make it, and never
    removes it.
    """

    kind: str
    name: str
    where: str
    in_use: bool = False
    owner_pid: int | None = field(default=None, compare=False)
    elsewhere: str = field(default="", compare=False)
    unowned: bool = field(default=False, compare=False)

    @property
    def left_over(self) -> bool:
        """True when nothing can still be using it: no live owner, here or elsewhere."""
        return not self.in_use and not self.elsewhere and not self.unowned

    def __str__(self) -> str:
        if self.in_use:
            state = f", in use by pid {self.owner_pid}"
        elif self.elsewhere:
            state = f", made by {self.elsewhere} (cannot tell from here whether it still runs)"
        elif self.unowned:
            state = ", no kvmlab owner record: not kvmlab's, left alone"
        else:
            state = ""
        return f"{self.kind} {self.name} ({self.where}{state})"


def _with_owner(kind: str, name: str, where: str, record: str) -> Leftover:
    """A Leftover whose state comes from an owner record (see :mod:`kvmlab.host.owner`).

    A guest whose recorded deadline has passed is left over even if its owner runs.
    """
    owner = parse_owner(record)
    if owner is None:
        return Leftover(kind, name, where, unowned=True)
    state = "gone" if stale_reason(record) else owner.state()
    return Leftover(kind, name, where, in_use=state == "alive",
                    owner_pid=owner.pid if owner is not None and state == "alive" else None,
                    elsewhere=owner.describe() if owner is not None and state == "elsewhere"
                    else "")


def _like(item: Leftover, other: Leftover | None) -> Leftover:
    """``item`` with the owner state of ``other`` (its guest), if ``item`` has none."""
    if other is None or item.in_use or item.elsewhere or item.unowned:
        return item
    return Leftover(item.kind, item.name, item.where, other.in_use, other.owner_pid,
                    other.elsewhere)


def on_this_machine(uri: str) -> bool:
    """True when the host behind ``uri`` is this machine: a local daemon, not libvirt's
    built-in test driver (whose objects live in its own memory, so a clean-up through it
    never touches this machine's namespaces and files).

    >>> on_this_machine("qemu:///system"), on_this_machine("test:///default")
    (True, False)
    >>> on_this_machine("qemu+ssh://root@lab2/system")
    False
    """
    return is_local_uri(uri) and urlsplit(uri).scheme.partition("+")[0] != "test"


def _ours(name: str) -> bool:
    return name.startswith(NAME_PREFIX)


def find_libvirt_leftovers(conn: Any) -> list[Leftover]:
    """Return the domains, networks, pools, volumes and secrets named ``kvmlab-*`` on
    ``conn``."""
    uri = conn.getURI()
    found = []
    for dom in conn.listAllDomains():
        if _ours(dom.name()) and (description := _description(dom)) is not None:
            found.append(_with_owner("domain", dom.name(), uri, description))
    guests = {item.name: item for item in found}
    found += [Leftover("network", n.name(), uri) for n in conn.listAllNetworks()
              if _ours(n.name())]
    local = is_local_uri(uri)
    for pool in conn.listAllStoragePools():
        if not _ours(pool.name()):
            continue            # kvmlab makes its volumes in its own pools only
        record = pool_owner(conn, pool) or (_owner_file(_pool_target(pool)) if local else "")
        item = _like(_with_owner("pool", pool.name(), uri, record), guests.get(pool.name()))
        found.append(item)
        if pool.isActive() and not item.unowned:
            with contextlib.suppress(Exception):
                found += [Leftover("volume", v.name(), f"{uri} pool {pool.name()}",
                                   item.in_use, item.owner_pid, item.elsewhere)
                          for v in pool.listAllVolumes() if _ours(v.name())]
    return found + _secrets(conn, uri, found)


def _secrets(conn: Any, uri: str, found: list[Leftover]) -> list[Leftover]:
    """The secrets whose description is ``kvmlab-*`` (a LUKS volume's passphrase).

    A secret carries no owner record: while any kvmlab guest or pool of this host is
    in use, its secrets count as in use too (the run that made them may need them).
    """
    busy = next((item for item in found if item.in_use), None)
    secrets = []
    with contextlib.suppress(Exception):       # a driver without secrets has none
        for secret in conn.listAllSecrets():
            description = ET.fromstring(secret.XMLDesc(0)).findtext("description") or ""
            if _ours(description):
                item = Leftover("secret", description, f"{uri} secret {secret.UUIDString()}")
                secrets.append(_like(item, busy))
    return secrets


def _pool_target(pool: Any) -> Path:
    try:
        return Path(ET.fromstring(pool.XMLDesc()).findtext("target/path") or "/nonexistent")
    except Exception:  # noqa: BLE001 - a pool that vanished has no target
        return Path("/nonexistent")


def _description(dom: Any) -> str | None:
    """The domain's description; None if it vanished while the list was read (a guest
    that ends at that moment is no leftover, and had its owner)."""
    try:
        return ET.fromstring(dom.XMLDesc()).findtext("description") or ""
    except Exception:  # noqa: BLE001 - libvirt's "domain not found", or a closed connection
        return None


def _ip(*args: str) -> str:
    if shutil.which("ip") is None:
        return ""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def find_host_leftovers() -> list[Leftover]:
    """Return network namespaces, links, staged guest files and temporary folders
    named ``kvmlab-*`` (folders only with kvmlab's owner record)."""
    found = [Leftover("netns", line.split()[0], "this host")
             for line in _ip("netns", "list").splitlines() if line and _ours(line.split()[0])]
    with contextlib.suppress(ValueError):
        for link in json.loads(_ip("-j", "link", "show") or "[]"):
            if _ours(link.get("ifname", "")):
                found.append(Leftover("link", link["ifname"], "this host"))
    found += _trace_instances()
    for root in (SYSTEM_IMAGES_DIR, cache_dir() / "run", temp_root()):
        with contextlib.suppress(OSError):
            found += [_with_owner("files", p.name, str(root), _owner_file(p))
                      for p in sorted(root.iterdir())
                      if _ours(p.name) and not p.is_symlink() and dir_owner(p) is not None]
    return found


def _trace_instances() -> list[Leftover]:
    """The scheduler traces (tracefs instances) of kvmlab runs, in use while their owner runs."""
    found, seen = [], set()
    for root in TRACEFS:
        with contextlib.suppress(OSError):
            where = (root / "instances").stat()
            if (where.st_dev, where.st_ino) in seen:     # tracefs mounted twice: once is enough
                continue
            seen.add((where.st_dev, where.st_ino))
            for path in sorted((root / "instances").iterdir()):
                if path.name.startswith(INSTANCE_PREFIX):
                    owner = instance_owner(path.name)
                    found.append(Leftover("trace", path.name, str(path.parent),
                                          in_use=owner is not None, owner_pid=owner))
    return found


def _owner_file(path: Path) -> str:
    try:
        return (path / OWNER_FILE).read_text()
    except OSError:
        return ""


def _live_connection(stack: contextlib.ExitStack, uri: str | None, write: bool) -> Any | None:
    """A connection to the live host that ``stack`` closes, or None when there is none."""
    try:
        return stack.enter_context(connection(live_uri(uri), write=write))
    except HostUnavailable:
        return None


def find_leftovers(uri: str | None = None) -> list[Leftover]:
    """Return every ``kvmlab-`` object on the live host ``uri`` (and on this machine).

    An object whose owning process still runs is marked ``in_use``, and so are the
    files and pools of such a guest. This machine's namespaces, links and staged files
    are included when ``uri`` is a local host.
    """
    with contextlib.ExitStack() as stack:
        conn = _live_connection(stack, uri, write=False)
        found = find_libvirt_leftovers(conn) if conn is not None else []
    if not on_this_machine(live_uri(uri)):
        return found
    guests = {item.name: item for item in found if item.kind == "domain"}
    return found + [_like(i, guests.get(i.name)) for i in find_host_leftovers()]


def remove_leftovers(uri: str | None = None, *, force: bool = False) -> list[Leftover]:
    """Remove every ``kvmlab-`` object; return what was removed.

    Guests are destroyed (and undefined), networks and pools stopped and
    undefined, volumes deleted, namespaces and links deleted, staged files removed.
    Objects still owned by a running kvmlab process (and their files), or made by a
    process of another machine, are left alone unless ``force`` is true; objects without
    kvmlab's owner record (not kvmlab's) always.
    """
    libvirt = import_libvirt()
    removed: list[Leftover] = []
    busy: set[str] = set()
    with contextlib.ExitStack() as stack:
        conn = _live_connection(stack, uri, write=True)
        for item in find_libvirt_leftovers(conn) if conn is not None else []:
            if item.unowned or (not item.left_over and not force):
                busy.add(item.name)
                continue
            with contextlib.suppress(libvirt.libvirtError):
                _remove(conn, item, libvirt)
                removed.append(item)
    for item in find_host_leftovers() if on_this_machine(live_uri(uri)) else []:
        if item.name in busy or item.unowned or (not item.left_over and not force):
            continue
        if item.kind == "netns":
            subprocess.run(["ip", "netns", "delete", item.name], capture_output=True, timeout=30)
        elif item.kind == "link":
            subprocess.run(["ip", "link", "delete", item.name], capture_output=True, timeout=30)
        elif item.kind == "trace":
            remove_instance(Path(item.where) / item.name)
        else:
            path = Path(item.where) / item.name
            if path.is_symlink() or dir_owner(path) is None:
                continue                    # not (or no longer) a folder kvmlab made
            shutil.rmtree(path, ignore_errors=True)
        removed.append(item)
    return removed


def _remove(conn: Any, item: Leftover, libvirt: Any) -> None:
    """Remove one libvirt object found by :func:`find_libvirt_leftovers`."""
    if item.kind == "domain":
        destroy_domain(conn, item.name)
    elif item.kind == "network":
        _stop_and_undefine(conn.networkLookupByName(item.name), libvirt)
    elif item.kind == "secret":
        conn.secretLookupByUUIDString(item.where.rsplit(" secret ", 1)[1]).undefine()
    elif item.kind == "volume":
        pool_name = item.where.rsplit(" pool ", 1)[1]
        conn.storagePoolLookupByName(pool_name).storageVolLookupByName(item.name).delete(
            libvirt.VIR_STORAGE_VOL_DELETE_NORMAL)
    elif item.kind == "pool":
        pool = conn.storagePoolLookupByName(item.name)
        target = _pool_target(pool)
        ours = (on_this_machine(conn.getURI()) and target.name.startswith(NAME_PREFIX)
                and not target.is_symlink() and dir_owner(target) is not None)
        remove_pool(pool)              # volumes, the directory on the host, the pool
        if ours:
            shutil.rmtree(target, ignore_errors=True)     # a local kvmlab temp dir


def _stop_and_undefine(obj: Any, libvirt: Any) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        obj.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        obj.undefine()
