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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kvmlab.errors import ScenarioError

T = TypeVar("T")


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


def load_scenario_as(scenario: Any, kind: type[T] | tuple[type, ...],
                     from_dict: Callable[[Mapping[str, Any]], T], *, what: str,
                     prefixes: Sequence[str]) -> T:
    """The scenario a ``scenario`` argument stands for: every lab's ``load_scenario``.

    Parameters
    ----------
    scenario : str, Path, dict or scenario object
        A shipped scenario's name (one starting with one of ``prefixes``), a JSON file,
        the JSON form as a dict, or a scenario object of ``kind`` (returned as it is).
    kind : type or tuple of types
        The lab's scenario type(s).
    from_dict : callable
        Builds and checks a scenario from its JSON form.
    what : str
        The lab's word for a scenario in messages (``"storage scenario"``).
    prefixes : sequence of str
        Names of the lab's shipped scenarios start with one of these.

    Raises
    ------
    ScenarioError
        If the name is neither a file nor a shipped scenario of the lab (the message lists
        the shipped ones), the file cannot be read, or a rule is broken.

    Examples
    --------
    >>> load_scenario_as("cpu-seed-example", dict, dict, what="scenario",
    ...                  prefixes=["cpu-"])["pcpus"]
    2
    >>> load_scenario_as("net-hub", dict, dict, what="CPU scenario", prefixes=["cpu-"])
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no CPU scenario file or shipped CPU scenario 'net-hub'; ...
    >>> load_scenario_as(42, dict, dict, what="CPU scenario", prefixes=["cpu-"])
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a CPU scenario is a shipped name, a JSON file, a dict or a \
dict, not int
    """
    if isinstance(scenario, kind):
        return scenario        # type: ignore[return-value]
    if isinstance(scenario, Mapping):
        return from_dict(scenario)
    if not isinstance(scenario, str | Path):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise ScenarioError(f"a {what} is a shipped name, a JSON file, a dict or a "
                            f"{' or '.join(k.__name__ for k in kinds)}, not "
                            f"{type(scenario).__name__}")
    path = Path(scenario)
    if path.suffix == ".json" or path.exists():
        return from_dict(read_json(path, what))
    shipped = [n for prefix in prefixes for n in scenario_names(prefix)]
    if str(scenario) not in shipped:
        raise ScenarioError(f"no {what} file or shipped {what} {str(scenario)!r}; the shipped "
                            f"ones are {', '.join(shipped) or '(none)'}")
    return from_dict(scenario_dict(str(scenario)))
