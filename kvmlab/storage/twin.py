"""The same scenario on a real image: ``qemu-img create``, ``qemu-io`` writes, and
``qemu-img map``/``check`` as ground truth; ``qemu-img snapshot -c`` for internal snapshots.

Everything happens in a temporary directory named ``kvmlab-storage-*``, removed
afterwards whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, HostUnavailable
from kvmlab.storage.result import StorageResult
from kvmlab.storage.scenario import Snapshot, StorageScenario


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HostUnavailable("(local)", f"{name} is not installed",
                              "install qemu-utils (make test and make lab do)")
    return path


def _run(cmd: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, input=stdin)
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


def make_image(scenario: StorageScenario, path: Path) -> Path:
    """Create the scenario's image at ``path`` (its backing first), then apply its writes
    and take its snapshots in order.

    The writes between two snapshots go to one ``qemu-io`` process (through its
    standard input), as the model assumes: a new process searches for free
    clusters from the start of the file again.
    """
    qemu_img, qemu_io = _tool("qemu-img"), _tool("qemu-io")
    fmt = scenario.format
    if fmt == "raw":
        cmd = [qemu_img, "create", "-q", "-f", "raw", "-o",
               f"preallocation={scenario.preallocation}"]
    else:
        cmd = [qemu_img, "create", "-q", "-f", "qcow2", "-o",
               f"cluster_size={scenario.cluster_size}"]
    if isinstance(scenario.backing, StorageScenario):
        base = make_image(scenario.backing, path.with_name(path.stem + "-base.qcow2"))
        cmd += ["-b", str(base), "-F", "qcow2"]
    elif isinstance(scenario.backing, str):
        cmd += ["-b", str(Path(scenario.backing).resolve()), "-F", "qcow2"]
    _run([*cmd, str(path), str(scenario.virtual_size)])
    n = 0
    for session in _sessions(scenario):
        if isinstance(session, Snapshot):
            _run([qemu_img, "snapshot", "-c", session.name, str(path)])
            continue
        commands = []
        for offset, length in session:
            commands.append(f"write -P {1 + n % 250} {offset} {length}")
            n += 1
        _run([qemu_io, "-f", fmt, str(path)], stdin="\n".join(commands) + "\n")
    return path


def inspect(path: Path, fmt: str = "qcow2") -> dict[str, Any]:
    """``qemu-img map``, ``check`` (qcow2 only) and ``info`` of the image at ``path``."""
    qemu_img = _tool("qemu-img")
    seen = {"map": json.loads(_run([qemu_img, "map", "--output=json", "-f", fmt, str(path)])),
            "info": json.loads(_run([qemu_img, "info", "--output=json", "-f", fmt,
                                     str(path)]))}
    if fmt == "qcow2":
        seen["check"] = json.loads(_run([qemu_img, "check", "--output=json", str(path)]))
    return seen


def run_with_qemu(scenario: StorageScenario | dict[str, Any]) -> StorageResult:
    """Make the scenario's image with QEMU's own tools and report what they see.

    For a raw image, the allocated "clusters" are the file system blocks that
    ``qemu-img map`` shows as data, and the end offset is the file's length.
    """
    if isinstance(scenario, dict):
        scenario = StorageScenario.from_dict(scenario)
    with tempfile.TemporaryDirectory(prefix="kvmlab-storage-") as tmp:
        path = Path(tmp) / f"disk.{scenario.format}"
        make_image(scenario, path)
        seen = inspect(path, scenario.format)
        block_size = os.statvfs(tmp).f_bsize
    version = _run([_tool("qemu-img"), "--version"]).splitlines()[0]
    provenance = {"tool": version, "method": "qemu-io writes, qemu-img map/check/info "
                  "--output=json", "block_size": block_size,
                  "actual_size": seen["info"].get("actual-size"),
                  "snapshots": [sn["name"] for sn in seen["info"].get("snapshots", [])]}
    if scenario.format == "raw":
        data = sum(e["length"] for e in seen["map"] if e["data"])
        return StorageResult(scenario=scenario, source="qemu-img", map=seen["map"],
                             allocated_clusters=-(-data // block_size),
                             image_end_offset=seen["info"]["virtual-size"],
                             provenance=provenance)
    return StorageResult(scenario=scenario, source="qemu-img", map=seen["map"],
                         allocated_clusters=seen["check"].get("allocated-clusters", 0),
                         image_end_offset=seen["check"]["image-end-offset"],
                         provenance=provenance)
