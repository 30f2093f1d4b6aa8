"""The same scenario on a real image: ``qemu-img create``, ``qemu-io`` writes, and
``qemu-img map``/``check`` as ground truth.

Everything happens in a temporary directory named ``kvmlab-storage-*``, removed
afterwards whatever happens.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kvmlab.errors import ExperimentFailed, HostUnavailable
from kvmlab.storage.result import StorageResult
from kvmlab.storage.scenario import StorageScenario

WRITES_PER_CALL = 200


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HostUnavailable("(local)", f"{name} is not installed",
                              "install qemu-utils (make test and make lab do)")
    return path


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ExperimentFailed(f"`{' '.join(cmd[:3])} ...` failed: {done.stderr.strip()}")
    return done.stdout


def make_image(scenario: StorageScenario, path: Path) -> Path:
    """Create the scenario's image at ``path`` (its backing first) and apply its writes."""
    qemu_img, qemu_io = _tool("qemu-img"), _tool("qemu-io")
    cmd = [qemu_img, "create", "-q", "-f", "qcow2", "-o",
           f"cluster_size={scenario.cluster_size}"]
    if isinstance(scenario.backing, StorageScenario):
        base = make_image(scenario.backing, path.with_name(path.stem + "-base.qcow2"))
        cmd += ["-b", str(base), "-F", "qcow2"]
    elif isinstance(scenario.backing, str):
        cmd += ["-b", str(Path(scenario.backing).resolve()), "-F", "qcow2"]
    _run([*cmd, str(path), str(scenario.virtual_size)])
    writes = list(enumerate(scenario.writes))
    for i in range(0, len(writes), WRITES_PER_CALL):
        args = [qemu_io]
        for n, (offset, length) in writes[i:i + WRITES_PER_CALL]:
            args += ["-c", f"write -P {1 + n % 250} {offset} {length}"]
        _run([*args, str(path)])
    return path


def inspect(path: Path) -> dict[str, Any]:
    """``qemu-img map``, ``check`` and ``info`` of the image at ``path``, as dicts."""
    qemu_img = _tool("qemu-img")
    return {"map": json.loads(_run([qemu_img, "map", "--output=json", str(path)])),
            "check": json.loads(_run([qemu_img, "check", "--output=json", str(path)])),
            "info": json.loads(_run([qemu_img, "info", "--output=json", str(path)]))}


def run_with_qemu(scenario: StorageScenario | dict[str, Any]) -> StorageResult:
    """Make the scenario's image with QEMU's own tools and report what they see."""
    if isinstance(scenario, dict):
        scenario = StorageScenario.from_dict(scenario)
    with tempfile.TemporaryDirectory(prefix="kvmlab-storage-") as tmp:
        path = make_image(scenario, Path(tmp) / "disk.qcow2")
        seen = inspect(path)
    version = _run([_tool("qemu-img"), "--version"]).splitlines()[0]
    return StorageResult(scenario=scenario, source="qemu-img", map=seen["map"],
                         allocated_clusters=seen["check"].get("allocated-clusters", 0),
                         image_end_offset=seen["check"]["image-end-offset"],
                         provenance={"tool": version, "method": "qemu-io writes, "
                                     "qemu-img map/check --output=json"})
