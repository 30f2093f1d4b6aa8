"""Domain XML for the tiny guest, built with ElementTree (never string formatting).

Examples
--------
>>> spec = GuestSpec(name="kvmlab-doc-1", vcpus=2, memory_mib=128,
...                  kernel="/k", initrd="/i", console_log="/c.log",
...                  pinning={0: (0,), 1: (1,)})
>>> root = ET.fromstring(domain_xml(spec))
>>> root.get("type"), root.findtext("vcpu"), root.find("cputune/vcpupin").get("cpuset")
('qemu', '2', '0')
>>> spec = GuestSpec(name="kvmlab-doc-2", vcpus=1, memory_mib=128, kernel="/k",
...                  initrd="/i", console_log="/c.log", disks=(DiskSpec("/d.qcow2"),))
>>> disk = ET.fromstring(domain_xml(spec)).find("devices/disk")
>>> disk.find("driver").get("type"), disk.find("target").get("dev")
('qcow2', 'vda')
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kvmlab.errors import ScenarioError

ACCELERATORS = ("kvm", "tcg")
NAME_PREFIX = "kvmlab-"


DISK_FORMATS = ("raw", "qcow2", "vmdk")
MAX_DISKS = 20


@dataclass(frozen=True)
class DiskSpec:
    """An image file a guest sees as a virtio disk.

    Parameters
    ----------
    path : str
        The image on the host (QEMU must be able to open it).
    format : {'raw', 'qcow2', 'vmdk'}
        The image's format (``<driver type=...>``): never probed, always said.
    secret_uuid : str, optional
        The libvirt secret holding the passphrase of a LUKS-encrypted qcow2 image
        (``<encryption format='luks'>``).

    Examples
    --------
    >>> DiskSpec("/i.vmdk", "vmdk").format
    'vmdk'
    >>> DiskSpec("/i.img", "img")                       # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: disk format 'img' is not one of ('raw', 'qcow2', 'vmdk')...
    """

    path: str
    format: str = "qcow2"
    secret_uuid: str | None = None

    def __post_init__(self) -> None:
        if self.format not in DISK_FORMATS:
            raise ScenarioError(f"disk format {self.format!r} is not one of {DISK_FORMATS}: "
                                "say the image's format (QEMU never guesses it here)")
        if self.secret_uuid is not None and self.format != "qcow2":
            raise ScenarioError("only a qcow2 disk is LUKS-encrypted here (a secret_uuid "
                                f"needs format 'qcow2', not {self.format!r})")


def disk_target(index: int) -> str:
    """The guest's name of its ``index``-th virtio disk.

    Examples
    --------
    >>> disk_target(0), disk_target(1), disk_target(25)
    ('vda', 'vdb', 'vdz')
    """
    return "vd" + "abcdefghijklmnopqrstuvwxyz"[index]


@dataclass(frozen=True)
class GuestSpec:
    """What a tiny guest looks like to libvirt.

    Parameters
    ----------
    name : str
        Must start with ``kvmlab-`` so that a clean-up can find it.
    vcpus : int
        Number of virtual CPUs (threads of the QEMU process on the host).
    memory_mib : int
        Guest memory in MiB.
    kernel, initrd, console_log : str
        Host paths QEMU can read (kernel, initrd) and write (console log).
    accel : {'tcg', 'kvm'}
        ``kvm`` is hardware-assisted; ``tcg`` is QEMU's software translator.
    pinning : mapping of vCPU index to host CPU indices
        Restrict each listed vCPU thread to those host CPUs (``<vcpupin>``).
    emulator_pinning : sequence of host CPU indices
        Restrict QEMU's other threads (its main loop among them) to those host CPUs
        (``<emulatorpin>``; empty: anywhere).
    cmdline : str
        Extra kernel command-line arguments.
    shares : int, optional
        The guest's CPU weight relative to other guests (``<cputune><shares>``;
        the host's default is 1024).
    disks : sequence of DiskSpec
        Image files attached as virtio disks (``vda``, ``vdb``, ... in this order).
    """

    name: str
    vcpus: int
    memory_mib: int
    kernel: str
    initrd: str
    console_log: str
    accel: str = "tcg"
    pinning: Mapping[int, Sequence[int]] = field(default_factory=dict)
    emulator_pinning: Sequence[int] = ()
    cmdline: str = ""
    shares: int | None = None
    description: str = ""
    disks: Sequence[DiskSpec] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith(NAME_PREFIX):
            raise ScenarioError(f"guest name {self.name!r} must start with {NAME_PREFIX!r} "
                                "so that `kvmlab doctor --cleanup` can find it")
        if self.vcpus < 1:
            raise ScenarioError(f"a guest needs at least 1 vCPU, not {self.vcpus}")
        if self.memory_mib < 64:
            raise ScenarioError(f"the tiny guest needs at least 64 MiB, not {self.memory_mib}")
        if self.accel not in ACCELERATORS:
            raise ScenarioError(f"accelerator {self.accel!r} is not one of {ACCELERATORS}")
        if len(self.disks) > MAX_DISKS:
            raise ScenarioError(f"a guest here takes at most {MAX_DISKS} disks, "
                                f"not {len(self.disks)}")
        if self.shares is not None and self.shares <= 0:
            raise ScenarioError(f"CPU shares must be positive, not {self.shares}")
        for vcpu, cpus in self.pinning.items():
            if not 0 <= vcpu < self.vcpus:
                raise ScenarioError(f"cannot pin vCPU {vcpu}: the guest has vCPUs "
                                    f"0-{self.vcpus - 1}")
            if not cpus or any(c < 0 for c in cpus):
                raise ScenarioError(f"vCPU {vcpu} must be pinned to one or more host CPUs "
                                    f"numbered from 0, not {list(cpus)}")
        if any(c < 0 for c in self.emulator_pinning):
            raise ScenarioError("QEMU's emulator threads must be pinned to host CPUs numbered "
                                f"from 0, not {list(self.emulator_pinning)}")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _cpuset(cpus: Iterable[int]) -> str:
    """libvirt's ``cpuset`` attribute: the host CPUs, sorted, comma-separated."""
    return ",".join(map(str, sorted(cpus)))


def domain_xml(spec: GuestSpec) -> str:
    """Return libvirt domain XML for a transient, direct-kernel-boot guest (diskless
    unless ``spec.disks`` lists images for it).

    The guest powers itself off when its scenario ends; every way it can stop
    (power-off, reboot, crash) destroys it, so nothing is left defined.
    """
    dom = ET.Element("domain", type="kvm" if spec.accel == "kvm" else "qemu")
    _sub(dom, "name", spec.name)
    if spec.description:
        _sub(dom, "description", spec.description)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus), placement="static")
    if spec.pinning or spec.emulator_pinning or spec.shares is not None:
        tune = _sub(dom, "cputune")
        if spec.shares is not None:
            _sub(tune, "shares", str(spec.shares))
        for vcpu, cpus in sorted(spec.pinning.items()):
            _sub(tune, "vcpupin", vcpu=str(vcpu), cpuset=_cpuset(cpus))
        if spec.emulator_pinning:
            _sub(tune, "emulatorpin", cpuset=_cpuset(spec.emulator_pinning))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "kernel", spec.kernel)
    _sub(os_el, "initrd", spec.initrd)
    _sub(os_el, "cmdline", f"console=ttyS0 quiet panic=-1 {spec.cmdline}".strip())
    features = _sub(dom, "features")
    _sub(features, "acpi")  # without ACPI the guest kernel finds only one CPU
    _sub(features, "apic")
    if spec.accel == "kvm":
        _sub(dom, "cpu", mode="host-passthrough")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        _sub(dom, event, "destroy")
    devices = _sub(dom, "devices")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=spec.console_log)
    _sub(serial, "target", port="0")
    for i, disk in enumerate(spec.disks):
        el = _sub(devices, "disk", type="file", device="disk")
        _sub(el, "driver", name="qemu", type=disk.format)
        source = _sub(el, "source", file=disk.path)
        if disk.secret_uuid is not None:
            enc = _sub(source, "encryption", format="luks")
            _sub(enc, "secret", type="passphrase", uuid=disk.secret_uuid)
        _sub(el, "target", dev=disk_target(i), bus="virtio")
    _sub(devices, "memballoon", model="virtio")
    return ET.tostring(dom, encoding="unicode")
