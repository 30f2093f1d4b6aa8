"""Find and remove what a crashed or killed kvmlab run left on a host.

Everything kvmlab creates on a host carries the ``kvmlab-`` prefix: transient
guests, storage pools and volumes, networks, network namespaces, host links and
the guests' staged files. Only objects with that prefix are ever touched.

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

from kvmlab.errors import HostUnavailable
from kvmlab.host.connect import connection, import_libvirt
from kvmlab.host.domxml import NAME_PREFIX
from kvmlab.host.guest import SYSTEM_IMAGES_DIR, destroy_domain, live_uri, owner_pid
from kvmlab.host.image import cache_dir


@dataclass(frozen=True)
class Leftover:
    """One object left behind: its kind, its name, and where it is.

    ``in_use`` when the kvmlab process that made it still runs; ``owner_pid`` is that
    process's id, where the object names it (guests, and their staged files).
    """

    kind: str
    name: str
    where: str
    in_use: bool = False
    owner_pid: int | None = field(default=None, compare=False)

    def __str__(self) -> str:
        pid = f" (pid {self.owner_pid})" if self.owner_pid is not None else ""
        busy = f", in use by a running kvmlab process{pid}" if self.in_use else ""
        return f"{self.kind} {self.name} ({self.where}{busy})"


def _ours(name: str) -> bool:
    return name.startswith(NAME_PREFIX)


def find_libvirt_leftovers(conn: Any) -> list[Leftover]:
    """Return the domains, networks, pools and volumes named ``kvmlab-*`` on ``conn``."""
    uri = conn.getURI()
    found = []
    for dom in conn.listAllDomains():
        if _ours(dom.name()):
            pid = owner_pid(_description(dom))
            found.append(Leftover("domain", dom.name(), uri, in_use=pid is not None,
                                  owner_pid=pid))
    found += [Leftover("network", n.name(), uri) for n in conn.listAllNetworks()
              if _ours(n.name())]
    for pool in conn.listAllStoragePools():
        if _ours(pool.name()):
            found.append(Leftover("pool", pool.name(), uri))
        if pool.isActive():
            with contextlib.suppress(Exception):
                found += [Leftover("volume", v.name(), f"{uri} pool {pool.name()}")
                          for v in pool.listAllVolumes() if _ours(v.name())]
    return found


def _description(dom: Any) -> str:
    try:
        return ET.fromstring(dom.XMLDesc()).findtext("description") or ""
    except Exception:  # noqa: BLE001 - a domain that vanished has no owner
        return ""


def _ip(*args: str) -> str:
    if shutil.which("ip") is None:
        return ""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def find_host_leftovers() -> list[Leftover]:
    """Return network namespaces, links and staged guest files named ``kvmlab-*``."""
    found = [Leftover("netns", line.split()[0], "this host")
             for line in _ip("netns", "list").splitlines() if line and _ours(line.split()[0])]
    with contextlib.suppress(ValueError):
        for link in json.loads(_ip("-j", "link", "show") or "[]"):
            if _ours(link.get("ifname", "")):
                found.append(Leftover("link", link["ifname"], "this host"))
    for root in (SYSTEM_IMAGES_DIR, cache_dir() / "run"):
        with contextlib.suppress(OSError):
            found += [Leftover("files", p.name, str(root)) for p in sorted(root.iterdir())
                      if _ours(p.name)]
    return found


def _live_connection(stack: contextlib.ExitStack, uri: str | None, write: bool) -> Any | None:
    """A connection to the live host that ``stack`` closes, or None when there is none."""
    try:
        return stack.enter_context(connection(live_uri(uri), write=write))
    except HostUnavailable:
        return None


def find_leftovers(uri: str | None = None) -> list[Leftover]:
    """Return every ``kvmlab-`` object on the live host ``uri`` and on this machine.

    A guest whose owning process still runs is marked ``in_use``, and so are its files.
    """
    with contextlib.ExitStack() as stack:
        conn = _live_connection(stack, uri, write=False)
        found = find_libvirt_leftovers(conn) if conn is not None else []
    owners = {item.name: item.owner_pid for item in found if item.in_use}
    return found + [Leftover(i.kind, i.name, i.where, in_use=i.name in owners,
                             owner_pid=owners.get(i.name)) for i in find_host_leftovers()]


def remove_leftovers(uri: str | None = None, *, force: bool = False) -> list[Leftover]:
    """Remove every ``kvmlab-`` object; return what was removed.

    Guests are destroyed (and undefined), networks and pools stopped and
    undefined, volumes deleted, namespaces and links deleted, staged files removed.
    Guests still owned by a running kvmlab process (and their files) are left
    alone unless ``force`` is true.
    """
    libvirt = import_libvirt()
    removed: list[Leftover] = []
    busy: set[str] = set()
    with contextlib.ExitStack() as stack:
        conn = _live_connection(stack, uri, write=True)
        for item in find_libvirt_leftovers(conn) if conn is not None else []:
            if item.in_use and not force:
                busy.add(item.name)
                continue
            with contextlib.suppress(libvirt.libvirtError):
                _remove(conn, item, libvirt)
                removed.append(item)
    for item in find_host_leftovers():
        if item.name in busy:
            continue
        if item.kind == "netns":
            subprocess.run(["ip", "netns", "delete", item.name], capture_output=True, timeout=30)
        elif item.kind == "link":
            subprocess.run(["ip", "link", "delete", item.name], capture_output=True, timeout=30)
        else:
            path = Path(item.where) / item.name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        removed.append(item)
    return removed


def _remove(conn: Any, item: Leftover, libvirt: Any) -> None:
    """Remove one libvirt object found by :func:`find_libvirt_leftovers`."""
    if item.kind == "domain":
        destroy_domain(conn, item.name)
    elif item.kind == "network":
        _stop_and_undefine(conn.networkLookupByName(item.name), libvirt)
    elif item.kind == "volume":
        pool_name = item.where.rsplit(" pool ", 1)[1]
        conn.storagePoolLookupByName(pool_name).storageVolLookupByName(item.name).delete(
            libvirt.VIR_STORAGE_VOL_DELETE_NORMAL)
    elif item.kind == "pool":
        pool = conn.storagePoolLookupByName(item.name)
        target = ET.fromstring(pool.XMLDesc()).findtext("target/path") or ""
        if pool.isActive():
            for vol in pool.listAllVolumes():
                vol.delete(libvirt.VIR_STORAGE_VOL_DELETE_NORMAL)
        _stop_and_undefine(pool, libvirt)
        if Path(target).name.startswith(NAME_PREFIX):    # a kvmlab temp dir
            shutil.rmtree(target, ignore_errors=True)


def _stop_and_undefine(obj: Any, libvirt: Any) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        obj.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        obj.undefine()
