"""The article's LVM storage pool (``hostvg.xml``), defined, started, listed and removed.

A ``logical`` pool is an LVM *volume group* on the host; each volume is a *logical volume*
(``/dev/VG/NAME``): a block device, not a file, so it has no format of its own and is not
sparse (its allocation is its capacity). The article's flow is::

    virsh pool-define hostvg.xml      # persistent, inactive
    virsh pool-list --all
    virsh pool-start HostVG           # active: libvirt runs vgchange -ay
    virsh vol-create-as HostVG lv1 64M
    virsh pool-destroy HostVG         # inactive again (the VG is kept)
    virsh pool-undefine HostVG        # forgotten by libvirt

:func:`article_flow` runs it through libvirt-python on libvirt's built-in **test driver**
(``test:///default``), which keeps pools in memory and touches no disk: a real logical pool
needs a spare disk and the kernel's device-mapper (which some hosts, containers and
sandboxes lack). The pool is named ``kvmlab-hostvg-<id>`` and is removed whatever happens.

Examples
--------
>>> steps = article_flow()
>>> [(s["virsh"].split()[1], s["state"]) for s in steps]      # doctest: +NORMALIZE_WHITESPACE
[('pool-define', 'inactive'), ('pool-start', 'active'), ('vol-create-as', 'active'),
 ('pool-destroy', 'inactive'), ('pool-undefine', 'gone')]
>>> steps[2]["volume"]["path"], steps[2]["volume"]["allocation"] == 64 * 2**20
('/dev/HostVG/lv1', True)
"""

from __future__ import annotations

import contextlib
import secrets
import xml.etree.ElementTree as ET
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.host.connect import connect, import_libvirt
from kvmlab.host.domxml import NAME_PREFIX

__all__ = ["TEST_URI", "article_flow", "hostvg_xml"]

TEST_URI = "test:///default"


def hostvg_xml(name: str, vg: str = "HostVG", device: str = "/dev/vdb") -> str:
    """The article's ``hostvg.xml``: a ``logical`` pool on volume group ``vg``, built on
    ``device``, its volumes under ``/dev/VG``.

    Examples
    --------
    >>> root = ET.fromstring(hostvg_xml("kvmlab-hostvg-doc"))
    >>> root.get("type"), root.findtext("source/name"), root.findtext("target/path")
    ('logical', 'HostVG', '/dev/HostVG')
    """
    if not name.startswith(NAME_PREFIX):
        raise ScenarioError(f"pool name {name!r} must start with {NAME_PREFIX!r}")
    pool = ET.Element("pool", type="logical")
    ET.SubElement(pool, "name").text = name
    source = ET.SubElement(pool, "source")
    ET.SubElement(source, "device", path=device)
    ET.SubElement(source, "name").text = vg
    ET.SubElement(source, "format", type="lvm2")
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = f"/dev/{vg}"
    return ET.tostring(pool, encoding="unicode")


def _state(conn: Any, name: str) -> str:
    """What ``virsh pool-list --all`` says of pool ``name``: active, inactive or gone."""
    for pool in conn.listAllStoragePools():
        if pool.name() == name:
            return "active" if pool.isActive() else "inactive"
    return "gone"


def article_flow(uri: str = TEST_URI, vg: str = "HostVG") -> list[dict[str, Any]]:
    """Run the article's flow on libvirt's test driver; one dict per ``virsh`` step.

    Each step has ``virsh`` (the command), ``state`` (the pool's line in
    ``virsh pool-list --all`` afterwards: active, inactive or gone) and, for
    ``vol-create-as``, ``volume`` (its path, capacity and allocation in bytes).

    Raises
    ------
    ScenarioError
        For any URI but the test driver's (a real logical pool would use a real disk).
    """
    if not isinstance(uri, str) or not uri.startswith("test:"):
        raise ScenarioError(f"the article's LVM pool runs on libvirt's test driver "
                            f"({TEST_URI}) only: a real logical pool takes over a whole disk "
                            f"and needs the kernel's device-mapper; not {uri!r}")
    libvirt = import_libvirt()
    name = f"{NAME_PREFIX}hostvg-{secrets.token_hex(4)}"
    conn = connect(uri, write=True)
    steps: list[dict[str, Any]] = []
    pool = None
    try:
        pool = conn.storagePoolDefineXML(hostvg_xml(name, vg), 0)
        steps.append({"virsh": "virsh pool-define hostvg.xml", "state": _state(conn, name)})
        pool.create(0)
        steps.append({"virsh": f"virsh pool-start {name}", "state": _state(conn, name)})
        vol = pool.createXML("<volume><name>lv1</name><capacity unit='MiB'>64</capacity>"
                             "</volume>", 0)
        _kind, capacity, allocation = vol.info()
        steps.append({"virsh": f"virsh vol-create-as {name} lv1 64M",
                      "state": _state(conn, name),
                      "volume": {"path": vol.path(), "capacity": capacity,
                                 "allocation": allocation}})
        pool.destroy()
        steps.append({"virsh": f"virsh pool-destroy {name}", "state": _state(conn, name)})
        pool.undefine()
        pool = None
        steps.append({"virsh": f"virsh pool-undefine {name}", "state": _state(conn, name)})
    finally:
        if pool is not None:
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return steps
