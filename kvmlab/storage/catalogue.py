"""The kinds of storage pools and volume formats, described by what matters when choosing.

The article lists pool types (a directory, an LVM volume group, NFS, iSCSI, Ceph)
and volume formats (raw, qcow2, vmdk). Here each is described by the same
properties, with the virsh commands that manage it, so they can be compared in
one table.

Examples
--------
>>> POOL_TYPES["logical"].data_lives
'in logical volumes of an LVM volume group on the host'
>>> sorted(FORMATS)
['qcow2', 'raw', 'vmdk']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolType:
    """A libvirt storage pool type (``<pool type='...'>``)."""

    type: str
    data_lives: str
    volumes_are: str
    performance: str
    mobility: str
    snapshots: str
    define: str


POOL_TYPES: dict[str, PoolType] = {p.type: p for p in (
    PoolType("dir", "in files of a directory on the host", "image files (raw, qcow2, ...)",
             "good; a file system sits between guest and disk",
             "easy: copy the files (or use shared storage)",
             "qcow2 internal and external snapshots",
             "virsh pool-define-as NAME dir --target /path"),
    PoolType("fs", "in files on a block device that libvirt mounts",
             "image files", "as dir", "the device must move with the guest",
             "qcow2 snapshots", "virsh pool-define-as NAME fs --source-dev /dev/X --target /mnt"),
    PoolType("netfs", "in files on a network file system (NFS, GlusterFS mount)",
             "image files", "depends on the network and the server",
             "good: every host that mounts it sees the same files (live migration)",
             "qcow2 snapshots",
             "virsh pool-define-as NAME netfs --source-host H --source-path /export --target /mnt"),
    PoolType("logical", "in logical volumes of an LVM volume group on the host",
             "block devices (raw only)", "very good: no file system in the way",
             "poor: tied to the host's disks; cannot be used over the network",
             "LVM snapshots, not qcow2 ones",
             "virsh pool-define-as NAME logical --source-name VG --target /dev/VG"),
    PoolType("iscsi", "on LUNs of an iSCSI target elsewhere on the network",
             "block devices (LUNs); libvirt cannot create or delete them",
             "good, over a dedicated network", "good: any host can log in to the target",
             "none of libvirt's own",
             "virsh pool-define-as NAME iscsi --source-host H --source-dev IQN "
             "--target /dev/disk/by-path"),
    PoolType("rbd", "as RADOS block devices in a Ceph cluster",
             "network block devices, replicated", "good and scales out",
             "excellent: shared by every host of the cluster", "Ceph (RBD) snapshots",
             "virsh pool-define NAME.xml (a <source> with the Ceph monitors)"),
)}

MANAGE = {
    "list": "virsh pool-list --all",
    "define": "virsh pool-define FILE.xml   (or pool-define-as ...)",
    "start": "virsh pool-start NAME",
    "autostart": "virsh pool-autostart NAME",
    "volumes": "virsh vol-list NAME --details",
    "create volume": "virsh vol-create-as NAME VOL SIZE --format qcow2",
    "overlay": "virsh vol-create-as NAME VOL SIZE --format qcow2 --backing-vol BASE "
               "--backing-vol-format qcow2",
    "delete volume": "virsh vol-delete VOL --pool NAME",
    "stop": "virsh pool-destroy NAME   (stops it; the data stays)",
}


@dataclass(frozen=True)
class VolumeFormat:
    """A disk image format."""

    name: str
    size_on_disk: str
    snapshots: str
    features: str
    speed: str


FORMATS: dict[str, VolumeFormat] = {f.name: f for f in (
    VolumeFormat("raw", "sparse on most file systems: only written blocks take space; the "
                 "virtual size is fixed at creation (it can be resized)",
                 "none in the format (use LVM, the file system, or an overlay)",
                 "none: byte n of the disk is byte n of the file", "fastest, least overhead"),
    VolumeFormat("qcow2", "grows as clusters are first written",
                 "internal (in the file) and external (overlays over a backing file)",
                 "copy-on-write overlays, compression (zlib, zstd), encryption (LUKS), "
                 "discard", "close to raw once allocated; first writes cost allocation"),
    VolumeFormat("vmdk", "sparse or preallocated variants", "VMware's",
                 "VMware's format: QEMU reads and writes it, mostly to import images "
                 "(`qemu-img convert -O qcow2`)", "usable, but not what KVM hosts run on"),
)}
