"""A storage volume as a real guest's disk: the guest itself makes the scenario's writes.

"The host assigns a volume to the virtual machine, and the volume is seen as a hard disk in
the virtual machine": :func:`run_in_guest` creates the scenario's image as a volume of a
transient libvirt pool (:class:`kvmlab.storage.pool.TransientPool`; a qcow2 overlay on a
backing volume for a scenario with a backing scenario), attaches it to a tiny guest
(:class:`kvmlab.host.guest.TransientGuest`) as a virtio disk, and the guest's own shell
writes the scenario's bytes to ``/dev/vda`` with busybox ``dd``. Then, the guest powered
off, the image is read with ``qemu-img map/check/info`` and with kvmlab's own readers, and
the result has the same form as :func:`kvmlab.storage.run_on_host`'s, so
:func:`kvmlab.storage.compare` holds it to the model. On a remote host (``qemu+ssh://``)
the pool is made there, and the images are read in copies downloaded through libvirt
(:mod:`kvmlab.storage.remote`).

What the guest does, per write ``[offset, length]`` with fill byte ``p``: a disk is made of
512-byte sectors, so a write that does not cover whole sectors is a *read-modify-write*
(read the sectors, change the bytes, write the sectors back, as a guest's file system
does); each write is flushed (``conv=fsync``) so that it reaches the image, in order, before
the next one. The guest's page cache would write back whole 4 KiB blocks (the block size
Linux gives a disk whose size is a multiple of 4 KiB), so the script first sets the disk's
block size to one sector (``blockdev --setbsz 512``, kept while the disk stays open on file
descriptor 3). Busybox ``dd oflag=direct`` does not help here: its buffer is not aligned
to a sector, and the kernel refuses such an ``O_DIRECT`` write.
It then reads the bytes back and prints their MD5 sum. It also prints the disk's size as
it sees it (``/sys/block/vda/size``, sectors): the volume's *capacity*, not the little the
file holds on the host.

A scenario with a backing scenario needs one boot per layer (the base is written by one
guest, then the overlay, over it, by the next): QEMU locks a backing image, so one guest
cannot write a base and its overlay at once. :func:`run_many_in_guest` runs several
scenarios with one boot per layer, one disk each (``vda``, ``vdb``, ...).

Examples
--------
>>> print(write_lines("vda", 100, 10, 7))       # doctest: +NORMALIZE_WHITESPACE
head -c 10 /dev/zero | tr '\\000' '\\007' > /tmp/p
dd if=/dev/vda of=/tmp/s bs=512 count=1 skip=0 iflag=skip_bytes 2>/dev/null || exit 4
dd if=/tmp/p of=/tmp/s bs=10 seek=100 oflag=seek_bytes conv=notrunc 2>/dev/null || exit 4
dd if=/tmp/s of=/dev/vda bs=512 count=1 skip=0 seek=0 iflag=skip_bytes oflag=seek_bytes \
conv=notrunc,fsync 2>/dev/null || exit 4
>>> check_in_guest(load_scenario("storage-snapshots"))     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: a guest's run takes no internal snapshots ...
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kvmlab.data import load_recorded
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.host.domxml import DiskSpec, disk_target
from kvmlab.host.guest import TransientGuest, live_uri
from kvmlab.host.owner import owned_tempdir, remove_dead_dirs, temp_root
from kvmlab.progress import ProgressArg, check_progress, progress_bar
from kvmlab.storage.luks import read_luks_extent
from kvmlab.storage.pool import TransientPool, TransientSecret
from kvmlab.storage.reader import read_guest, read_qcow2
from kvmlab.storage.remote import RemotePool, download_chain, guest_host_uri, is_remote
from kvmlab.storage.result import StorageResult
from kvmlab.storage.scenario import (
    PAGE,
    SECTOR,
    StorageScenario,
    as_scenario,
    guest_requests,
    load_scenario,
)
from kvmlab.storage.twin import (
    inspect,
    measured_result,
    secret_options,
    tool_version,
)
from kvmlab.storage.vmdk_reader import read_vmdk

__all__ = ["GUEST_MEMORY_MIB", "MAX_GUEST_DISKS", "MAX_GUEST_WRITE", "PAGE", "PLAINTEXT_RUN",
           "SECTOR", "check_in_guest", "expected_bytes", "fill_byte", "plaintext_found",
           "recorded_result", "run_in_guest", "run_many_in_guest", "write_lines"]

MAX_GUEST_WRITE = 16 << 20
"""The longest single write a guest makes here (it is built in the guest's memory first)."""
MAX_GUEST_WRITES = 2000
"""The most writes per disk (each is a few ``dd`` runs on an emulated CPU)."""
MAX_GUEST_DISKS = 20
GUEST_MEMORY_MIB = 256
DONE_MARKER = "KVMLAB-DISKS-DONE"
NO_DISK_REMEDY = (
    "the guest's kernel needs the virtio block driver (virtio_blk and the virtio PCI "
    "modules, kvmlab.host.image.DISK_MODULES): rebuild the guest image with "
    "`kvmlab doctor --build-image` (or delete kvmlab's cache folder) so that it bundles "
    "them, or use a guest kernel with virtio_blk built in (KVMLAB_KERNEL)")


def fill_byte(n: int) -> int:
    """The byte the ``n``-th write of an image (from 0) fills with, as the host twin's
    ``qemu-io write -P`` does.

    Examples
    --------
    >>> fill_byte(0), fill_byte(249), fill_byte(250)
    (1, 250, 1)
    """
    return 1 + n % 250


def check_in_guest(scenario: StorageScenario) -> StorageScenario:
    """``scenario`` if a guest can make its writes here, else a ScenarioError naming the rule.

    A guest's run makes no internal snapshots (a running guest's qcow2 is snapshotted by
    libvirt, not by ``qemu-img snapshot``), reads no backing file given by path (the base
    must be a volume of the run's pool: give it as a backing scenario), makes sparse
    images only, and writes at most :data:`MAX_GUEST_WRITE` bytes at once.
    """
    chain: list[StorageScenario] = []
    layer: Any = scenario
    while isinstance(layer, StorageScenario):
        chain.append(layer)
        layer = layer.backing
    if layer is not None:
        raise ScenarioError("a guest's run needs its backing image as a volume of its pool: "
                            "give the base as a backing scenario, not as a file path")
    for s in chain:
        if s.snapshots:
            raise ScenarioError("a guest's run takes no internal snapshots (qemu-img "
                                "snapshot -c works on an image no guest uses): drop "
                                "'snapshots', or run it without --in-guest")
        if s.preallocation != "off":
            raise ScenarioError("a guest's run makes sparse volumes only (preallocation "
                                f"'off'), not {s.preallocation!r}")
        if len(s.writes) > MAX_GUEST_WRITES:
            raise ScenarioError(f"a guest makes at most {MAX_GUEST_WRITES} writes per disk "
                                f"here, not {len(s.writes)}")
        for offset, length in s.writes:
            if length > MAX_GUEST_WRITE:
                raise ScenarioError(f"a guest's single write is at most {MAX_GUEST_WRITE} "
                                    f"bytes here (it is built in the guest's memory), not "
                                    f"{length} (the write at {offset}): split it")
    return scenario


def write_lines(dev: str, offset: int, length: int, byte: int, tmp: str = "/tmp") -> str:
    """Shell lines that write ``length`` bytes ``byte`` at ``offset`` of ``/dev/DEV``.

    Whole sectors are written and flushed (``conv=fsync``), one page (4 KiB) at a time in
    the order of their offsets; a partial sector is read first and written back changed
    (a read-modify-write). ``tmp`` is the folder of the two scratch
    files (``p``, the bytes; ``s``, the sectors).
    """
    requests = guest_requests(offset, length)
    start = requests[0][0]
    end = requests[-1][0] + requests[-1][1]
    ok = "2>/dev/null || exit 4"
    lines = [f"head -c {length} /dev/zero | tr '\\000' '\\{byte:03o}' > {tmp}/p"]
    if (start, end) == (offset, offset + length):
        src = f"{tmp}/p"
    else:
        src = f"{tmp}/s"
        lines += [f"dd if=/dev/{dev} of={tmp}/s bs={end - start} count=1 skip={start} "
                  f"iflag=skip_bytes {ok}",
                  f"dd if={tmp}/p of={tmp}/s bs={length} seek={offset - start} "
                  f"oflag=seek_bytes conv=notrunc {ok}"]
    # One page at a time, each flushed before the next: a larger write would leave the
    # page cache as several requests in flight at once, and an image format allocates
    # clusters in the order its requests arrive, which is then not the offsets' order.
    for at, step in requests:
        lines.append(f"dd if={src} of=/dev/{dev} bs={step} count=1 skip={at - start} "
                     f"seek={at} iflag=skip_bytes oflag=seek_bytes conv=notrunc,fsync {ok}")
    return "\n".join(lines)


def _disk_script(dev: str, scenario: StorageScenario) -> str:
    out = [f"[ -b /dev/{dev} ] || {{ echo missing={dev}; exit 3; }}",
           f"echo sectors.{dev}=$(cat /sys/block/{dev}/size)",
           f"exec 3</dev/{dev}",                   # keeps the block size set below
           f"blockdev --setbsz {SECTOR} /dev/{dev} || exit 5",
           f"echo bsz.{dev}=$(blockdev --getbsz /dev/{dev})"]
    for i, (offset, length) in enumerate(scenario.writes):
        out.append(write_lines(dev, offset, length, fill_byte(i)))
        out.append(f"echo md5.{dev}.{i}=$(dd if=/dev/{dev} bs=65536 skip={offset} "
                   f"count={length} iflag=skip_bytes,count_bytes 2>/dev/null | md5sum | "
                   "cut -d' ' -f1)")
        out.append("rm -f /tmp/p /tmp/s")
    out.append("exec 3<&-")
    return "\n".join(out)


def guest_script(layers: Sequence[StorageScenario], *, load_driver: bool = True) -> str:
    """The guest's whole script: load the virtio block driver, then each disk's writes
    (``layers[i]`` on the ``i``-th disk), then :data:`DONE_MARKER`.

    Examples
    --------
    >>> s = StorageScenario.from_dict({"virtual_size": 1048576, "writes": [[0, 512]]})
    >>> script = guest_script([s])
    >>> script.splitlines()[0], "echo md5.vda.0=" in script
    ('kvmlab-insmod disk || echo insmod=failed', True)
    """
    head = ["kvmlab-insmod disk || echo insmod=failed"] if load_driver else []
    body = [_disk_script(disk_target(i), s) for i, s in enumerate(layers)]
    return "\n".join([*head, *body, f"echo {DONE_MARKER}", ""])


def expected_bytes(writes: Sequence[tuple[int, int]], i: int) -> bytes:
    """What the image holds at write ``i``'s range once all ``writes`` are done: its fill
    byte, except where a later write overwrote it.

    Examples
    --------
    >>> expected_bytes([(0, 4), (2, 4)], 0)
    b'\\x01\\x01\\x02\\x02'
    """
    offset, length = writes[i]
    out = bytearray([fill_byte(i)]) * length
    for j in range(i + 1, len(writes)):
        o, n = writes[j]
        lo, hi = max(o, offset), min(o + n, offset + length)
        if lo < hi:
            out[lo - offset:hi - offset] = bytes([fill_byte(j)]) * (hi - lo)
    return bytes(out)


def _read_image(path: Path, fmt: str, offset: int, length: int) -> bytes:
    """Guest bytes of the image at ``path`` read by kvmlab's own readers (not QEMU)."""
    if fmt == "raw":
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    if fmt == "qcow2":
        return read_guest(read_qcow2(path), offset, length)
    vmdk = read_vmdk(path)
    grains, gs = dict(vmdk.grains), vmdk.grain_size
    out = bytearray()
    with open(path, "rb") as handle:
        for g in range(offset // gs, -(-(offset + length) // gs)):
            lo, hi = max(offset, g * gs), min(offset + length, (g + 1) * gs)
            if g in grains:
                handle.seek(grains[g] + lo - g * gs)
                out += handle.read(hi - lo)
            else:
                out += bytes(hi - lo)
    return bytes(out)


PLAINTEXT_RUN = 64
"""How many of a write's bytes in a row :func:`plaintext_found` looks for."""


def plaintext_found(path: str | Path, scenario: StorageScenario) -> list[int]:
    """The writes of ``scenario`` whose bytes are in the file at ``path`` as written: a run
    of :data:`PLAINTEXT_RUN` of the write's fill byte (writes shorter than that are left
    out). A plain image holds them all; an encrypted one none.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(bytes(100) + bytes([1]) * 64)
    ...     f.flush()
    ...     plaintext_found(f.name, StorageScenario.from_dict(
    ...         {"virtual_size": 1048576, "writes": [[0, 64], [64, 64], [0, 10]]}))
    [0]
    """
    data = Path(path).read_bytes()
    return [i for i, (_, n) in enumerate(scenario.writes)
            if n >= PLAINTEXT_RUN and bytes([fill_byte(i)]) * PLAINTEXT_RUN in data]


def _chain(scenario: StorageScenario) -> list[StorageScenario]:
    """The scenario's layers, the deepest base first."""
    out = [scenario]
    while isinstance(out[-1].backing, StorageScenario):
        out.append(out[-1].backing)
    return out[::-1]


def _check_output(values: Mapping[str, str], lines: Sequence[str], layers: Sequence[Any],
                  vols: Sequence[Any], console: str) -> dict[str, int]:
    """Check what the guest printed; return each disk's size in sectors, as it saw it."""
    if "insmod" in values or any(line.startswith("missing=") for line in lines):
        raise ExperimentFailed("the guest does not see its disk (no /dev/vda): "
                               + NO_DISK_REMEDY)
    if DONE_MARKER not in lines:
        tail = "\n".join(console.splitlines()[-8:])
        raise ExperimentFailed(f"the guest's writes did not all finish; last console "
                               f"lines:\n{tail}")
    sectors = {}
    for i, (scenario, vol) in enumerate(zip(layers, vols, strict=True)):
        dev = disk_target(i)
        seen = int(values.get(f"sectors.{dev}", "-1"))
        capacity = vol.info()[1]
        if seen * SECTOR != capacity:
            raise ExperimentFailed(f"the guest sees /dev/{dev} as {seen} sectors, but the "
                                   f"volume's capacity is {capacity} bytes")
        if values.get(f"bsz.{dev}") != str(SECTOR):
            raise ExperimentFailed(f"the guest could not set /dev/{dev}'s block size to "
                                   f"{SECTOR} (it is {values.get(f'bsz.{dev}')}): its writes "
                                   "would reach the disk in larger blocks than the scenario's")
        for j, (_, length) in enumerate(scenario.writes):
            want = hashlib.md5(bytes([fill_byte(j)]) * length).hexdigest()
            if values.get(f"md5.{dev}.{j}") != want:
                raise ExperimentFailed(f"write {j} on /dev/{dev} did not read back in the "
                                       f"guest (md5 {values.get(f'md5.{dev}.{j}')}, "
                                       f"expected {want})")
        sectors[dev] = seen
    return sectors


def run_many_in_guest(scenarios: Iterable[StorageScenario | Mapping[str, Any]], *,
                      uri: str | None = None, progress: ProgressArg = None,
                      load_driver: bool = True) -> list[StorageResult]:
    """Like :func:`run_in_guest` for several scenarios at once: one guest boot per layer
    (a scenario without a backing scenario has one), each scenario's image one disk.

    ``load_driver=False`` boots the guest without loading its virtio block driver (what a
    guest kernel without one does): the run then fails, saying what to do.
    """
    todo = [check_in_guest(as_scenario(s)) for s in scenarios]
    if not 0 < len(todo) <= MAX_GUEST_DISKS:
        raise ScenarioError(f"one guest run takes 1 to {MAX_GUEST_DISKS} scenarios, "
                            f"not {len(todo)}")
    uri = guest_host_uri(uri)
    target = live_uri(uri)
    guest_host_uri(target)                      # the default host (KVMLAB_URI) too
    remote = is_remote(target)
    progress = check_progress(progress)
    chains = [_chain(s) for s in todo]
    depth = max(len(c) for c in chains)
    remove_dead_dirs(temp_root())
    results = []
    with (progress_bar(progress, total=depth + len(todo), desc="guest disks",
                       unit="step") as bar,
          (RemotePool(target) if remote else TransientPool(uri)) as pool,
          contextlib.ExitStack() as stack):
        keys = {k: stack.enter_context(TransientSecret(s.encryption.secret, uri)).uuid
                for k, s in enumerate(todo) if s.encryption is not None}
        vols: list[list[Any]] = [[] for _ in chains]
        accel = ""
        guest_sectors: dict[int, int] = {}
        for level in range(depth):
            here = [(k, c[level]) for k, c in enumerate(chains) if level < len(c)]
            for k, layer in here:
                fmt = layer.format
                vols[k].append(pool.create_volume(
                    f"kvmlab-s{k}-l{level}.{fmt}", layer.virtual_size, fmt,
                    backing=vols[k][-1] if level else None,
                    cluster_size=layer.cluster_size if fmt == "qcow2" else None,
                    secret_uuid=keys.get(k)))
            disks = [DiskSpec(vols[k][level].path(), layer.format, secret_uuid=keys.get(k))
                     for k, layer in here]
            bar.set_postfix_str(f"a guest writes layer {level} ({len(disks)} disk(s))")
            script = guest_script([layer for _, layer in here], load_driver=load_driver)
            with TransientGuest(script, uri=uri, purpose="disk", disks=disks,
                                memory_mib=GUEST_MEMORY_MIB) as guest:
                out = guest.result(timeout_s=300)
                accel = guest.accel
            sectors = _check_output(out.values(), out.lines, [c for _, c in here],
                                    [vols[k][level] for k, _ in here], out.console)
            for pos, (k, _) in enumerate(here):
                guest_sectors[k] = sectors[disk_target(pos)]
            bar.update(1)
        # a remote host's images are read in local copies, downloaded through libvirt
        copies = stack.enter_context(owned_tempdir("storage-copy")) if remote else None
        block_size = os.statvfs(copies or pool.path).f_bsize
        for k, scenario in enumerate(todo):
            below: list[Path] = []              # the copies under an overlay, nearest first
            if copies is None:
                path = Path(vols[k][-1].path())
            else:
                *below, path = download_chain(pool.conn, vols[k], copies)
                below.reverse()
            if scenario.compress:
                packed = path.with_name(path.stem + "-compressed.qcow2")
                subprocess.run(["qemu-img", "convert", "-c", "-f", "qcow2", "-O", "qcow2",
                                "-o", f"cluster_size={scenario.cluster_size}", str(path),
                                str(packed)], check=True, capture_output=True, timeout=300)
                path = packed
            fmt = "qcow2" if scenario.compress else scenario.format
            key = secret_options(scenario, path)
            extra: dict[str, Any] = {"plaintext_found": plaintext_found(path, scenario)}
            reader = "skipped: an overlay (kvmlab's reader reads images without a backing file)"
            if scenario.encryption is not None:
                extra["luks_extent"] = read_luks_extent(path)
                reader = "skipped: encrypted (kvmlab's reader sees the ciphertext)"
            elif scenario.backing is None:
                for i, (offset, length) in enumerate(scenario.writes):
                    if _read_image(path, fmt, offset, length) != expected_bytes(
                            scenario.writes, i):
                        raise ExperimentFailed(f"kvmlab's reader does not find write {i} of "
                                               f"scenario {k} in the image the guest wrote")
                reader = "every write's bytes found in the image by kvmlab's reader"
            seen = inspect(path, fmt, key, below)
            if copies is not None:
                extra["copied_through_libvirt"] = [v.name() for v in vols[k]]
            provenance = {
                "tool": tool_version(), "uri": uri,
                "host": pool.hostname() if copies is not None else socket.gethostname(),
                "method": f"a tiny guest ({accel}) wrote through a virtio disk with busybox "
                          "dd (512-byte blocks, fsync after each write, read-modify-write "
                          "of partial sectors); "
                          + ("the images downloaded through libvirt (sparse stream) and "
                             if copies is not None else "")
                          + "qemu-img map/check/info --output=json; kvmlab's reader read the "
                          "written bytes back",
                "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "block_size": block_size, "actual_size": seen["info"].get("actual-size"),
                "snapshots": [], "in_guest": True, "reader_check": reader, "accelerator": accel,
                "guest_disk_sectors": guest_sectors[k],
                "volume_capacity": vols[k][-1].info()[1],
                "volume_allocation": vols[k][-1].info()[2], **extra}
            results.append(measured_result(scenario, seen, block_size, provenance))
            bar.update(1)
    return results


def run_in_guest(scenario: StorageScenario | Mapping[str, Any] | str, *,
                 uri: str | None = None, progress: ProgressArg = None) -> StorageResult:
    """The scenario's writes made by a real guest on a libvirt volume it sees as its disk.

    The same result as :func:`kvmlab.storage.run_on_host` (``source='measured'``), with
    ``provenance['in_guest']`` true, the guest's accelerator in ``provenance['method']``,
    the volume's capacity and allocation, and the disk's size as the guest saw it.

    Parameters
    ----------
    scenario : StorageScenario, dict or a shipped scenario's name
        Checked by :func:`check_in_guest` too (no snapshots, no backing file by path).
    uri : str, optional
        None or a local QEMU URI (``qemu:///system`` as root), or a remote QEMU host
        (``qemu+ssh://root@HOST/system``): the volumes and the guest are made there, and
        the images are downloaded through libvirt afterwards
        (:mod:`kvmlab.storage.remote`). Either way the image is read with this machine's
        ``qemu-img`` and kvmlab's own reader.
    progress : None, bool or a tqdm-like bar
        One step per guest boot and one per image looked at.

    Raises
    ------
    ScenarioError
        A rule broken (before anything is created on the host).
    ExperimentFailed
        If the guest does not see its disk (with what to do), a write does not read back,
        or the guest's disk size is not the volume's capacity.
    HostUnavailable, ToolMissing
        No libvirt host, or no ``qemu-img``.
    """
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    return run_many_in_guest([scenario], uri=uri, progress=progress)[0]


def recorded_result(name: str) -> StorageResult:
    """A recorded guest's run (``data/recorded/NAME.json``, named after its scenario).

    Examples
    --------
    >>> r = recorded_result("storage-raw-sparse")
    >>> r.provenance["in_guest"], r.provenance["guest_disk_sectors"] * 512
    (True, 1048576)
    """
    return StorageResult.from_dict(load_recorded(name))
