"""The same scenario on a real image: ``qemu-img create``, ``qemu-io`` writes, and
``qemu-img map``/``check`` as ground truth; ``qemu-img snapshot -c`` for internal snapshots.

Everything happens on this machine, in a temporary folder ``kvmlab-storage-*`` under
kvmlab's own :func:`kvmlab.host.owner.temp_root`, with an owner record, removed afterwards
whatever happens (an exception, SIGINT, SIGTERM, SIGHUP); after a SIGKILL the next run (or
``kvmlab doctor --cleanup``) removes it. Nothing is booted and no libvirt is needed.

Examples
--------
>>> local_uri("qemu:///session"), local_uri(None)
('qemu:///session', None)
>>> local_uri("qemu+ssh://root@example.org/system")      # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: the storage lab makes its images with this machine's qemu-img ...
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from kvmlab.errors import ExperimentFailed, ScenarioError, ToolMissing, shown
from kvmlab.host.connect import check_uri
from kvmlab.host.owner import owned_tempdir, remove_dead_dirs, temp_root
from kvmlab.host.signals import stop_signals_as_exit
from kvmlab.lab import MEASURED
from kvmlab.progress import Progress, ProgressArg, check_progress, progress_bar
from kvmlab.storage.luks import CPU_CLOCK_FLAKE
from kvmlab.storage.reader import Qcow2File
from kvmlab.storage.result import StorageResult
from kvmlab.storage.scenario import Snapshot, StorageScenario, as_scenario

__all__ = ["CONVERSIONS", "SOCKET_PATH_MAX", "TOOLS", "convert_on_host", "data_grains",
           "inspect", "local_uri", "make_image", "measured_result", "run_on_host",
           "tool_version"]

TOOLS = ("qemu-img", "qemu-io")
"""The programs the twin runs (both in Debian's and Ubuntu's ``qemu-utils``)."""
_REMEDY = "install qemu-utils (make test and make lab do)"
_LOCAL_PATHS = ("/system", "/session")
SOCKET_PATH_MAX = 107
"""The longest path of a UNIX socket, in bytes (Linux's ``sun_path`` holds 108, its NUL
included)."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(name, _REMEDY)
    return path


def local_uri(uri: str | None) -> str | None:
    """``uri`` if it names this machine's QEMU (or is None); else a ScenarioError.

    The images are made by the local ``qemu-img`` and ``qemu-io``, so a remote host or
    another hypervisor cannot be asked to make them. Nothing connects to libvirt, but a
    URI libvirt would refuse is refused here too: one that is not a string
    (:func:`kvmlab.host.connect.check_uri`), or whose ``socket=`` cannot be a UNIX socket's
    path (1 to :data:`SOCKET_PATH_MAX` bytes).

    Examples
    --------
    >>> local_uri("qemu+unix:///system?socket=/run/libvirt/libvirt-sock")
    'qemu+unix:///system?socket=/run/libvirt/libvirt-sock'
    >>> local_uri("qemu:///system?socket=/" + "x" * 300)      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: the socket of a libvirt URI is a UNIX socket's path, ...
    """
    uri = check_uri(uri)
    if uri is None:
        return None
    scheme, sep, rest = uri.partition("://")
    host, _, path = rest.partition("/")
    if (sep and scheme in ("qemu", "qemu+unix") and not host
            and "/" + path.split("?")[0].rstrip("/") in _LOCAL_PATHS):
        for key, value in parse_qsl(path.partition("?")[2], keep_blank_values=True):
            if key == "socket" and not 0 < len(value.encode()) <= SOCKET_PATH_MAX:
                raise ScenarioError(
                    f"the socket of a libvirt URI is a UNIX socket's path, 1 to "
                    f"{SOCKET_PATH_MAX} bytes long, not {len(value.encode())} bytes "
                    f"({shown(value)})")
        return uri
    raise ScenarioError(f"the storage lab makes its images with this machine's qemu-img and "
                        f"qemu-io, so it runs on the local QEMU host only: uri must be None, "
                        f"qemu:///system or qemu:///session, not {shown(uri)}; on a remote "
                        f"QEMU host a guest can write the image, which is then read back "
                        f"through libvirt: add --in-guest (kvmlab.storage.guestdisk.run_in_guest)")


def _run(cmd: list[str], stdin: str | None = None) -> str:
    for _attempt in range(3):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, input=stdin)
        if CPU_CLOCK_FLAKE not in done.stderr:
            break
    if done.returncode != 0:
        raise ExperimentFailed(f"`{' '.join(cmd[:3])} ...` failed: "
                               f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def _sessions(scenario: StorageScenario) -> list[list[tuple[int, int]] | Snapshot]:
    """The writes between snapshots, each batch for one qemu-io process, and the snapshots."""
    out: list[list[tuple[int, int]] | Snapshot] = []
    for step in scenario.steps():
        if isinstance(step, Snapshot):
            out.append(step)
        elif out and isinstance(out[-1], list):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _count_steps(scenario: StorageScenario) -> int:
    """Programs :func:`make_image` runs for ``scenario``: create, then one per session."""
    below = _count_steps(scenario.backing) if isinstance(scenario.backing,
                                                         StorageScenario) else 0
    return below + 1 + len(_sessions(scenario)) + int(scenario.compress)


def make_image(scenario: StorageScenario, path: Path, bar: Progress | None = None) -> Path:
    """Create the scenario's image at ``path`` (its backing first), then apply its writes
    and take its snapshots in order.

    The writes between two snapshots go to one ``qemu-io`` process (through its
    standard input), as the model assumes: a new process searches for free
    clusters from the start of the file again. ``bar`` (a :mod:`kvmlab.progress` bar),
    if given, advances by one per program run. A compressed scenario's image is the
    written image (``NAME-written.qcow2`` beside it) copied by ``qemu-img convert -c``.
    """
    qemu_img, qemu_io = _tool("qemu-img"), _tool("qemu-io")
    fmt = scenario.format

    def step(text: str) -> None:
        if bar is not None:
            bar.set_postfix_str(text)
            bar.update(1)

    if scenario.compress:                    # the written image, then a compressed copy
        written = make_image(dataclasses.replace(scenario, compress=False),
                             path.with_name(path.stem + "-written.qcow2"), bar)
        _run([qemu_img, "convert", "-c", "-f", "qcow2", "-O", "qcow2", "-o",
              f"cluster_size={scenario.cluster_size}", str(written), str(path)])
        step(f"qemu-img convert -c {path.name}")
        return path
    if fmt == "raw":
        cmd = [qemu_img, "create", "-q", "-f", "raw", "-o",
               f"preallocation={scenario.preallocation}"]
    elif fmt == "vmdk":
        cmd = [qemu_img, "create", "-q", "-f", "vmdk", "-o", f"subformat={scenario.subformat}"]
    else:
        cmd = [qemu_img, "create", "-q", "-f", "qcow2", "-o",
               f"cluster_size={scenario.cluster_size}"]
    key = secret_options(scenario, path)
    if key:
        cmd += [*key, "-o", f"encrypt.format=luks,encrypt.key-secret={KEY_ID},"
                            f"encrypt.iter-time={LUKS_ITER_MS}"]
    if isinstance(scenario.backing, StorageScenario):
        base = make_image(scenario.backing, path.with_name(path.stem + "-base.qcow2"), bar)
        cmd += ["-b", str(base), "-F", "qcow2"]
    elif isinstance(scenario.backing, Qcow2File):
        cmd += ["-b", str(Path(scenario.backing.path).resolve()), "-F", "qcow2"]
    _run([*cmd, str(path), str(scenario.virtual_size)])
    step(f"qemu-img create {path.name}")
    n = 0
    for session in _sessions(scenario):
        if isinstance(session, Snapshot):
            _run([qemu_img, "snapshot", "-c", session.name, str(path)])
            step(f"qemu-img snapshot -c {session.name}")
            continue
        commands = []
        for offset, length in session:
            commands.append(f"write -P {1 + n % 250} {offset} {length}")
            n += 1
        _run([qemu_io, *image_args(path, fmt, key)], stdin="\n".join(commands) + "\n")
        step(f"qemu-io: {len(session)} write(s)")
    return path


LUKS_ITER_MS = 100
"""How long (ms) the passphrase's key derivation takes here (QEMU's default, 2000, makes
every ``qemu-io`` and ``qemu-img`` run of an encrypted image two seconds slower; the
layout does not depend on it)."""
KEY_ID = "kvmlab-key"
"""The id of the secret object that gives QEMU's tools an encrypted image's passphrase."""


def secret_options(scenario: StorageScenario, path: Path) -> list[str]:
    """``--object secret,...`` for QEMU's tools if the scenario's image is encrypted (the
    passphrase goes into ``secret`` beside ``path``, readable by its owner only), else
    nothing."""
    if scenario.encryption is None:
        return []
    secret = path.with_name(path.name + ".secret")
    secret.touch(mode=0o600)
    secret.write_text(scenario.encryption.secret)
    return ["--object", f"secret,id={KEY_ID},file={secret}"]


def image_args(path: Path, fmt: str, key: list[str],
               backing: Sequence[Path] = ()) -> list[str]:
    """How QEMU's tools open the image: ``-f FMT PATH``, or ``--image-opts`` naming an
    encrypted image's secret (``key`` from :func:`secret_options`) or where the qcow2
    images below it are (``backing``: the nearest first), instead of the paths its header
    names.

    Examples
    --------
    >>> image_args(Path("disk.raw"), "raw", [])
    ['-f', 'raw', 'disk.raw']
    >>> opts = image_args(Path("top"), "qcow2", [], [Path("mid"), Path("b,ase")])[1]
    >>> opts.split(",")[:4]
    ['driver=qcow2', 'file.filename=top', 'backing.driver=qcow2', 'backing.file.filename=mid']
    >>> opts.endswith(",backing.backing.driver=qcow2,backing.backing.file.filename=b,,ase")
    True
    """
    if not key and not backing:
        return ["-f", fmt, str(path)]

    def name(p: Path) -> str:
        return str(p).replace(",", ",,")

    opts = [f"driver={fmt}", f"file.filename={name(path)}"]
    if key:
        opts.append(f"encrypt.key-secret={KEY_ID}")
    for depth, below in enumerate(backing, start=1):
        prefix = "backing." * depth
        opts += [f"{prefix}driver=qcow2", f"{prefix}file.filename={name(below)}"]
    return [*key, "--image-opts", ",".join(opts)]


def inspect(path: Path, fmt: str = "qcow2", key: list[str] | None = None,
            backing: Sequence[Path] = ()) -> dict[str, Any]:
    """``qemu-img map``, ``check`` (qcow2 only) and ``info`` of the image at ``path``
    (``key``: the secret of an encrypted image, see :func:`secret_options`; ``backing``:
    the images below it, the nearest first, if not where its header says)."""
    qemu_img = _tool("qemu-img")
    opened = image_args(path, fmt, key or [], backing)
    seen = {"map": json.loads(_run([qemu_img, "map", "--output=json", *opened])),
            "info": json.loads(_run([qemu_img, "info", "--output=json", "-f", fmt,
                                     str(path)]))}
    if fmt == "qcow2":
        seen["check"] = json.loads(_run([qemu_img, "check", "--output=json", *opened]))
    seen["file_size"] = path.stat().st_size
    return seen


def run_on_host(scenario: StorageScenario | Mapping[str, Any], *, uri: str | None = None,
                progress: ProgressArg = None) -> StorageResult:
    """Make the scenario's image with QEMU's own tools and report what they see.

    For a raw image, the allocated "clusters" are the file system blocks that
    ``qemu-img map`` shows as data, and the end offset is the file's length. For a vmdk
    image they are the grains the map shows as data, and the end offset is the file's
    size (``qemu-img check`` reports neither for vmdk). A compressed scenario's figures
    come from ``qemu-img check`` of the converted image, ``compressed-clusters`` included.

    Parameters
    ----------
    scenario : StorageScenario or dict
    uri : str, optional
        None (this machine), or a local QEMU URI (``qemu:///system``,
        ``qemu:///session``); anything else is refused, since the images are made by this
        machine's ``qemu-img``.
    progress : None, bool or a tqdm-like bar
        Advances by one per program run: each ``qemu-img create``, ``qemu-io`` session and
        ``qemu-img snapshot``, and the final look with ``qemu-img map/check/info``.

    Returns
    -------
    StorageResult
        With ``source='measured'``; the tool, its version, the host and the date are in
        ``provenance``.

    Raises
    ------
    ToolMissing
        If ``qemu-img`` or ``qemu-io`` is not installed.
    ScenarioError
        If ``uri`` is not this machine's QEMU, ``progress`` is not a bar kvmlab can call,
        or the scenario breaks a rule.
    ExperimentFailed
        If one of the programs fails.
    """
    scenario = as_scenario(scenario)
    local_uri(uri)
    progress = check_progress(progress)      # before any program runs
    _tool("qemu-img")
    _tool("qemu-io")
    remove_dead_dirs(temp_root())            # what runs killed with SIGKILL left
    with (stop_signals_as_exit(),
          progress_bar(progress, total=_count_steps(scenario) + 1, desc="qemu-img",
                       unit="step") as bar,
          owned_tempdir("storage") as tmp):
        path = tmp / f"disk.{scenario.format}"
        make_image(scenario, path, bar)
        seen = inspect(path, scenario.format, secret_options(scenario, path))
        bar.set_postfix_str("qemu-img map, check, info")
        bar.update(1)
        block_size = os.statvfs(tmp).f_bsize
    provenance = {"tool": tool_version(), "method": "qemu-io writes, qemu-img map/check/info "
                  "--output=json", "host": socket.gethostname(), "uri": uri,
                  "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                  "block_size": block_size, "actual_size": seen["info"].get("actual-size"),
                  "snapshots": [sn["name"] for sn in seen["info"].get("snapshots", [])]}
    return measured_result(scenario, seen, block_size, provenance)


def tool_version() -> str:
    """The first line of ``qemu-img --version``."""
    return _run([_tool("qemu-img"), "--version"]).splitlines()[0]


def measured_result(scenario: StorageScenario, seen: Mapping[str, Any], block_size: int,
                    provenance: dict[str, Any]) -> StorageResult:
    """The measured result from what :func:`inspect` saw of the scenario's image.

    ``block_size`` is the host file system's block (a raw image's allocation unit).
    """
    if scenario.format == "raw":
        data = sum(e["length"] for e in seen["map"] if e["data"])
        return StorageResult(scenario=scenario, source=MEASURED, map=seen["map"],
                             allocated_clusters=-(-data // block_size),
                             image_end_offset=seen["info"]["virtual-size"],
                             provenance=provenance)
    if scenario.format == "vmdk":
        return StorageResult(scenario=scenario, source=MEASURED, map=seen["map"],
                             allocated_clusters=data_grains(seen["map"]),
                             image_end_offset=seen["file_size"], provenance=provenance)
    return StorageResult(scenario=scenario, source=MEASURED, map=seen["map"],
                         allocated_clusters=seen["check"].get("allocated-clusters", 0),
                         image_end_offset=seen["check"]["image-end-offset"],
                         provenance=provenance,
                         compressed_clusters=(seen["check"].get("compressed-clusters", 0)
                                              if scenario.compress else None))


CONVERSIONS = (("vmdk", "qcow2"), ("qcow2", "vmdk"))
"""The conversions :func:`convert_on_host` makes: source format, target format."""


def convert_on_host(scenario: StorageScenario | Mapping[str, Any], *,
                    progress: ProgressArg = None) -> dict[str, list[dict[str, Any]]]:
    """The scenario's writes made on a vmdk and on a qcow2 image (64 KiB clusters), each
    converted to the other format with ``qemu-img convert``: the target's
    ``qemu-img map`` of each, keyed ``"vmdk -> qcow2"`` and ``"qcow2 -> vmdk"``.

    The qcow2 target gets 64 KiB clusters (``-o cluster_size=65536``), the vmdk target
    the default monolithicSparse subformat. Everything happens in a ``kvmlab-storage-*``
    folder removed afterwards.
    """
    scenario = as_scenario(scenario)
    progress = check_progress(progress)
    qemu_img = _tool("qemu-img")
    _tool("qemu-io")
    remove_dead_dirs(temp_root())
    out: dict[str, list[dict[str, Any]]] = {}
    with (stop_signals_as_exit(),
          progress_bar(progress, total=2 * len(CONVERSIONS), desc="qemu-img convert",
                       unit="step") as bar,
          owned_tempdir("storage") as tmp):
        for source, target in CONVERSIONS:
            extra = {"subformat": "monolithicSparse"} if source == "vmdk" else {}
            made = dataclasses.replace(scenario, format=source, cluster_size=65536,
                                       name="", **{"subformat": "", **extra})
            src = make_image(made, tmp / f"source.{source}")
            bar.update(1)
            options = ["-o", "cluster_size=65536"] if target == "qcow2" else []
            dst = tmp / f"target.{target}"
            _run([qemu_img, "convert", "-f", source, "-O", target, *options, str(src),
                  str(dst)])
            out[f"{source} -> {target}"] = json.loads(_run(
                [qemu_img, "map", "--output=json", "-f", target, str(dst)]))
            bar.update(1)
    return out


def data_grains(entries: list[dict[str, Any]], grain: int = 65536) -> int:
    """The grains a vmdk's ``qemu-img map`` shows as data (``qemu-img check`` does not
    count them for vmdk). Entries start on grain boundaries; the last may be short.

    Examples
    --------
    >>> data_grains([{"start": 0, "length": 131072, "data": True},
    ...              {"start": 131072, "length": 512, "data": True}])
    3
    """
    return sum(-(-e["length"] // grain) for e in entries if e["data"])
