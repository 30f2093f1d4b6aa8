"""Build and cache the tiny guest: a Debian kernel plus a busybox initramfs.

The guest needs no disk image. Its kernel comes from Debian's
``linux-image-cloud-amd64`` package (small, with the network modules the labs
load: bridge, 8021q, veth); its userland is the static busybox of the host plus
iproute2's ``ip`` and ``bridge`` with their libraries (busybox's own ``ip`` knows
no namespaces or VLANs), and, when the host has them, ``dnsmasq`` and ``nft`` in
``/opt/nat/`` with the kernel's conntrack, nf_tables and NAT modules (``kvmlab-insmod nat``)
for the network lab's NAT scenario, and ``lvm`` in ``/opt/lvm/`` with the device-mapper
module (``kvmlab-insmod lvm``) for the storage lab's LVM volume group. Its ``/init`` mounts
``/proc``, ``/sys`` and ``/dev``, prints ``KVMLAB-BOOTED`` on the serial console, runs
``/kvmlab/scenario.sh`` between ``KVMLAB-BEGIN`` and ``KVMLAB-END <exit status>`` and powers off.

The image is cached in the user's cache directory (``KVMLAB_CACHE_DIR``, else
``$XDG_CACHE_HOME/kvmlab``, else ``~/.cache/kvmlab``); building it takes a few
seconds once. On a system without apt, point ``KVMLAB_KERNEL`` at a bzImage and
``KVMLAB_KERNEL_MODULES`` at its ``lib/modules/<release>`` directory.

Examples
--------
>>> init = init_script()
>>> init.splitlines()[0]
'#!/bin/busybox sh'
>>> "KVMLAB-BOOTED" in init
True
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from kvmlab.errors import ExperimentFailed, ToolMissing
from kvmlab.host import cpio
from kvmlab.host.owner import owned_tempdir
from kvmlab.progress import ProgressArg, progress_bar

KERNEL_PACKAGE = "linux-image-cloud-amd64"
NET_MODULES = ("llc", "stp", "garp", "mrp", "8021q", "bridge", "veth")
"""Kernel modules the network labs use, in the order they must be loaded."""
USERLAND_TOOLS = ("ip", "bridge")
"""iproute2 programs copied into the guest, with their shared libraries."""
NAT_MODULES = ("libcrc32c", "nfnetlink", "nf_defrag_ipv4", "nf_defrag_ipv6", "nf_conntrack",
               "nf_nat", "nf_tables", "nft_chain_nat", "nft_masq")
"""Kernel modules of a NAT router (conntrack, nf_tables and masquerading), in load order."""
BALLOON_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                   "virtio_pci", "virtio_balloon")
"""Kernel modules of the virtio balloon driver (``kvmlab-insmod balloon``), in load order."""
DISK_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                "virtio_pci", "virtio_blk")
"""Kernel modules of the virtio block driver (``kvmlab-insmod disk``: ``/dev/vda``, ...),
in load order."""
NAT_TOOLS = ("dnsmasq", "nft")
"""Programs of a libvirt host's NAT network copied into ``/opt/nat/`` when the host has them
(packages ``dnsmasq-base`` and ``nftables``; ``scripts/setup-host.sh`` installs both)."""
NAT_DIR = "opt/nat"
LVM_MODULES = ("dm-mod",)
"""Kernel modules of LVM (the device-mapper; its ``linear`` target is built in), in load
order (``kvmlab-insmod lvm``)."""
LVM_TOOLS = ("lvm",)
"""LVM's one program (``lvm pvcreate ...``) copied into ``/opt/lvm/`` when the host has it
(package ``lvm2``; ``scripts/setup-host.sh`` installs it)."""
LVM_DIR = "opt/lvm"
IMAGE_LAYOUT = 3
"""Bumped whenever the initramfs gains or loses something: a cached image of another layout
(or built when a NAT tool was missing that is there now) is rebuilt."""
BOOT_MARKER = "KVMLAB-BOOTED"
BEGIN_MARKER = "KVMLAB-BEGIN"
END_MARKER = "KVMLAB-END"
SCENARIO_PATH = "kvmlab/scenario.sh"
BUILD_STEPS = 3
"""Steps of :func:`build_image` (its progress bar's total): kernel, initramfs, cache."""


def cache_dir() -> Path:
    """Return kvmlab's cache directory (it is not created here).

    Examples
    --------
    >>> import os
    >>> os.environ["KVMLAB_CACHE_DIR"] = "/tmp/kvmlab-doc-cache"
    >>> str(cache_dir())
    '/tmp/kvmlab-doc-cache'
    >>> del os.environ["KVMLAB_CACHE_DIR"]
    """
    if env := os.environ.get("KVMLAB_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kvmlab"


@dataclass(frozen=True)
class GuestImage:
    """A cached guest: kernel, base initramfs and where they came from."""

    kernel: Path
    initramfs: Path
    kernel_release: str
    source: str
    built: str

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> GuestImage:
        return cls(kernel=Path(data["kernel"]), initramfs=Path(data["initramfs"]),
                   kernel_release=data["kernel_release"], source=data["source"],
                   built=data["built"])


def init_script() -> str:
    """Return the guest's ``/init``: mount, announce, run the scenario, power off."""
    return f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mkdir -p /dev/pts /run /var /tmp
/bin/busybox ln -s /run /var/run
/bin/busybox --install -s /bin
export PATH=/bin:/opt/iproute2
echo {BOOT_MARKER}
if [ -f /{SCENARIO_PATH} ]; then
  echo {BEGIN_MARKER}
  sh /{SCENARIO_PATH}
  echo "{END_MARKER} $?"
fi
poweroff -f
"""


def insmod_script() -> str:
    """Return ``/bin/kvmlab-insmod``: load kvmlab's bundled modules by name, in order."""
    return """#!/bin/busybox sh
# usage: kvmlab-insmod MODULE...   (or: kvmlab-insmod net, for all network modules)
[ "$1" = net ] && set -- """ + " ".join(NET_MODULES) + """
[ "$1" = nat ] && set -- """ + " ".join(NAT_MODULES) + """
[ "$1" = disk ] && set -- """ + " ".join(DISK_MODULES) + """
[ "$1" = balloon ] && set -- """ + " ".join(BALLOON_MODULES) + """
[ "$1" = lvm ] && set -- """ + " ".join(LVM_MODULES) + """
for m in "$@"; do
  grep -q "^$(echo "$m" | tr - _) " /proc/modules && continue
  insmod /lib/kvmlab-modules/$m.ko || exit 1
done
"""


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise ToolMissing(cmd[0], "install it: it is needed to build the guest image "
                                  "(see README.md; make test and make lab do it)") from None
    if done.returncode != 0:
        raise ExperimentFailed(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-600:]}")
    return done.stdout


def _apt_download(package: str, workdir: Path) -> Path:
    try:
        _run(["apt-get", "download", package], cwd=workdir)
    except ExperimentFailed:
        if os.geteuid() != 0:
            raise
        _run(["apt-get", "update", "-qq"])          # stale or missing package lists
        _run(["apt-get", "download", package], cwd=workdir)
    found = sorted(workdir.glob(f"{package}_*.deb"))
    if not found:
        raise ExperimentFailed(f"apt-get download {package} produced no .deb file")
    return found[-1]


def fetch_debian_kernel(workdir: Path, progress: ProgressArg = None) -> tuple[Path, Path, str]:
    """Download Debian's cloud kernel into ``workdir``.

    Parameters
    ----------
    workdir : Path
    progress : bool or tqdm-like, optional
        Told (``set_postfix_str``) which package is being downloaded; see
        :mod:`kvmlab.progress`.

    Returns
    -------
    (vmlinuz, modules directory, kernel release)

    Raises
    ------
    ToolMissing
        If ``apt-get`` or ``dpkg`` is not installed.
    ExperimentFailed
        If the download or the unpacking fails.
    """
    with progress_bar(progress, total=None, desc="guest kernel", unit="step") as bar:
        bar.set_postfix_str(f"downloading {KERNEL_PACKAGE}")
        meta = _apt_download(KERNEL_PACKAGE, workdir)
        depends = _run(["dpkg-deb", "-f", str(meta), "Depends"])
        match = re.search(r"(linux-image-[\w.+-]+)", depends)
        if not match:
            raise ExperimentFailed(f"{KERNEL_PACKAGE} names no kernel package: {depends!r}")
        package = match.group(1)
        bar.set_postfix_str(f"downloading {package}")
        deb = _apt_download(package, workdir)
        bar.set_postfix_str(f"unpacking {package}")
        tree = workdir / "tree"
        _run(["dpkg", "-x", str(deb), str(tree)])
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ExperimentFailed(f"{package} holds no boot/vmlinuz-*")
    release = kernels[0].name.removeprefix("vmlinuz-")
    return kernels[0], tree / "lib" / "modules" / release, release


def _dirs_of(path: str) -> Iterator[str]:
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def shared_libraries(program: str) -> list[str]:
    """Return the shared libraries ``program`` loads, as absolute paths (from ``ldd``)."""
    out = _run(["ldd", program])
    libs = re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", out)
    return sorted(set(libs))


def _tool_path(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/sbin:/usr/sbin:/bin:/usr/bin")


def nat_tools_found() -> tuple[str, ...]:
    """The programs of :data:`NAT_TOOLS` this host has (and the image therefore holds)."""
    return tuple(t for t in NAT_TOOLS if _tool_path(t) is not None)


def lvm_tools_found() -> tuple[str, ...]:
    """The programs of :data:`LVM_TOOLS` this host has (and the image therefore holds)."""
    return tuple(t for t in LVM_TOOLS if _tool_path(t) is not None)


def contents_key() -> str:
    """What an image built here and now would hold, as a short key (see :data:`IMAGE_LAYOUT`).

    Examples
    --------
    >>> contents_key().startswith("layout 3;")
    True
    """
    return (f"layout {IMAGE_LAYOUT}; modules "
            f"{' '.join(NET_MODULES + NAT_MODULES + BALLOON_MODULES + DISK_MODULES)} "
            f"{' '.join(LVM_MODULES)}; "
            f"tools {' '.join(USERLAND_TOOLS + nat_tools_found() + lvm_tools_found())}")


def userland_entries(modules_dir: Path | None) -> list[cpio.Entry]:
    """Return the base initramfs: busybox, /init, iproute2, the NAT and LVM tools the host
    has (:data:`NAT_TOOLS`, :data:`LVM_TOOLS`), and the network, NAT, balloon, disk and LVM
    modules."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).exists():
        raise ToolMissing("busybox", "install the busybox-static package")
    busybox_bytes = Path(busybox).read_bytes()
    if b"ld-linux" in busybox_bytes[:4096]:  # a dynamic ELF names its loader up front
        raise ToolMissing(f"a static busybox ({busybox} is linked dynamically)",
                          "install the busybox-static package")
    entries: dict[str, cpio.Entry] = {}

    def add_dir(path: str) -> None:
        entries.setdefault(path, (path, cpio.DIR, b""))

    def add_file(path: str, mode: int, data: bytes) -> None:
        for d in _dirs_of(path):
            add_dir(d)
        entries[path.strip("/")] = (path.strip("/"), mode, data)

    for d in ("bin", "proc", "sys", "dev", "etc", "kvmlab", "opt/iproute2"):
        for parent in [*_dirs_of(d + "/x")]:
            add_dir(parent)
    add_file("bin/busybox", cpio.EXEC, busybox_bytes)
    add_file("init", cpio.EXEC, init_script().encode())
    add_file("bin/kvmlab-insmod", cpio.EXEC, insmod_script().encode())
    add_file("etc/passwd", cpio.FILE, b"root:x:0:0:root:/:/bin/sh\n")
    for tool in USERLAND_TOOLS:
        path = _tool_path(tool)
        if path is None:
            raise ToolMissing(f"iproute2's `{tool}`", "install the iproute2 package")
        add_file(f"opt/iproute2/{tool}", cpio.EXEC, Path(path).read_bytes())
        for lib in shared_libraries(path):
            add_file(lib, cpio.EXEC, Path(lib).read_bytes())
    for folder, tool in ([(NAT_DIR, t) for t in nat_tools_found()]
                         + [(LVM_DIR, t) for t in lvm_tools_found()]):
        path = _tool_path(tool)
        assert path is not None
        add_file(f"{folder}/{tool}", cpio.EXEC, Path(path).read_bytes())
        for lib in shared_libraries(path):
            add_file(lib, cpio.EXEC, Path(lib).read_bytes())
    if modules_dir is not None:
        for name in NET_MODULES + NAT_MODULES + BALLOON_MODULES + DISK_MODULES + LVM_MODULES:
            found = sorted(modules_dir.rglob(f"{name}.ko"))
            if found:
                add_file(f"lib/kvmlab-modules/{name}.ko", cpio.FILE, found[0].read_bytes())
    return list(entries.values())


def scenario_archive(script: str, files: Mapping[str, bytes] | None = None) -> bytes:
    """Return a gzipped cpio archive holding ``script`` as the guest's scenario.

    Appended after the base initramfs, it adds ``/kvmlab/scenario.sh``, and each of
    ``files`` (name to content) as an executable ``/kvmlab/NAME``.

    Examples
    --------
    >>> import gzip
    >>> b"echo hi" in gzip.decompress(scenario_archive("echo hi"))
    True
    """
    extra = [(f"kvmlab/{name}", cpio.EXEC, data) for name, data in (files or {}).items()]
    return cpio.gzip_archive([("kvmlab", cpio.DIR, b""),
                              (SCENARIO_PATH, cpio.EXEC, script.encode()), *extra])


def _index_path() -> Path:
    return cache_dir() / "guest" / "current.json"


def cached_image() -> GuestImage | None:
    """Return the cached guest image, or None when none has been built (or the cached one
    holds other things than an image built now would: see :func:`contents_key`)."""
    try:
        index = json.loads(_index_path().read_text())
        image = GuestImage.from_dict(index)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if index.get("contents") != contents_key():
        return None
    if image.kernel.exists() and image.initramfs.exists():
        return image
    return None


def build_image(force: bool = False, progress: ProgressArg = None) -> GuestImage:
    """Return the guest image, building and caching it first if needed.

    Parameters
    ----------
    force : bool
        Rebuild even if a cached image exists.
    progress : bool or tqdm-like, optional
        A bar of :data:`BUILD_STEPS` steps (fetch the kernel, pack the initramfs, cache
        them), told what each step does; silent by default (see :mod:`kvmlab.progress`).

    Raises
    ------
    ToolMissing
        If a program the build needs (``apt-get``, ``dpkg``, busybox-static, iproute2) is
        not installed.
    ExperimentFailed
        If a step fails for another reason (a download, say).
    """
    if not force and (image := cached_image()) is not None:
        return image
    with progress_bar(progress, total=BUILD_STEPS, desc="guest image", unit="step") as bar, \
            owned_tempdir("build") as work:
        if env_kernel := os.environ.get("KVMLAB_KERNEL"):
            kernel = Path(env_kernel)
            modules_env = os.environ.get("KVMLAB_KERNEL_MODULES")
            modules = Path(modules_env) if modules_env else None
            release = modules.name if modules else kernel.name.removeprefix("vmlinuz-")
            source = f"KVMLAB_KERNEL={kernel}"
        else:
            bar.set_postfix_str(f"fetching the guest kernel ({KERNEL_PACKAGE}, Debian)")
            kernel, modules, release = fetch_debian_kernel(work, bar)
            source = f"Debian package for {release}"
        bar.update(1)
        bar.set_postfix_str("packing the initramfs (busybox, iproute2, dnsmasq, nft, "
                            "lvm, modules)")
        initramfs = cpio.gzip_archive(userland_entries(modules))
        bar.update(1)
        target = cache_dir() / "guest" / release
        bar.set_postfix_str(f"caching it in {target}")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kernel, target / "vmlinuz")
        (target / "initramfs.gz").write_bytes(initramfs)
        image = GuestImage(kernel=target / "vmlinuz", initramfs=target / "initramfs.gz",
                           kernel_release=release, source=source,
                           built=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
        _index_path().write_text(json.dumps(image.to_dict() | {"contents": contents_key()},
                                            indent=2))
        bar.update(1)
    return image
