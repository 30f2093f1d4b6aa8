"""Shipped scenarios and recorded real-host runs (``data/`` in the repository).

``data/scenarios/<name>.json`` holds a scenario; ``data/recorded/<name>.json`` holds
what a real host measured for it, with provenance (host, libvirt and QEMU
versions, accelerator, date), so a classroom without libvirt still compares its
simulations with reality. ``KVMLAB_DATA_DIR`` points elsewhere.

Examples
--------
>>> "cpu-seed-example" in scenario_names("cpu")
True
>>> scenario_dict("cpu-seed-example")["pcpus"]
2
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError


def data_dir() -> Path:
    """The data directory: ``KVMLAB_DATA_DIR``, else ``data/`` beside the package."""
    return Path(os.environ.get("KVMLAB_DATA_DIR") or Path(__file__).parents[1] / "data")


def scenario_names(prefix: str = "") -> list[str]:
    """Names of the shipped scenarios starting with ``prefix``."""
    return sorted(p.stem for p in (data_dir() / "scenarios").glob(f"{prefix}*.json"))


def read_json(path: str | Path, what: str = "scenario") -> Any:
    """The JSON in the file at ``path``; a file that is missing or not JSON says so plainly.

    Examples
    --------
    >>> read_json("/nonexistent.json")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: cannot read scenario /nonexistent.json: No such file or directory
    """
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path} is not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def data_file(folder: str, what: str, name: str, suffix: str = ".json") -> Path:
    """The path of shipped file ``name`` in ``data/FOLDER``; if missing, an error listing
    the ones there are.

    Examples
    --------
    >>> data_file("recorded", "recorded run", "cpu-seed-example").name
    'cpu-seed-example.json'
    >>> data_file("recorded", "recorded sweep", "nope", ".jsonl")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no recorded sweep 'nope'; there are: sweep-cpu-overcommit
    """
    folder_path = data_dir() / folder
    path = folder_path / f"{name}{suffix}"
    if not path.exists():
        there = sorted(p.name.removesuffix(suffix) for p in folder_path.glob(f"*{suffix}"))
        raise ScenarioError(f"no {what} {name!r}; there are: {', '.join(there) or '(none)'}")
    return path


def _read(folder: str, what: str, name: str) -> dict[str, Any]:
    return json.loads(data_file(folder, what, name).read_text())


def scenario_dict(name: str) -> dict[str, Any]:
    """The JSON form of shipped scenario ``name``."""
    return _read("scenarios", "shipped scenario", name)


def recorded_names(prefix: str = "") -> list[str]:
    """Names of the recorded real-host runs starting with ``prefix``."""
    return sorted(p.stem for p in (data_dir() / "recorded").glob(f"{prefix}*.json"))


def load_recorded(name: str) -> dict[str, Any]:
    """The recorded real-host run ``name`` (a result's JSON form with provenance)."""
    return _read("recorded", "recorded run", name)


def save_recorded(name: str, data: dict[str, Any]) -> Path:
    """Write a recorded run (used by ``kvmlab cpu run --record``)."""
    path = data_dir() / "recorded" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
