"""Scenarios and recorded real-host runs: shipped in the package, and the user's own.

A scenario is ``scenarios/<name>.json``; a recording, ``recorded/<name>.json``, is what a
real host measured for a scenario, with provenance (host, libvirt and QEMU versions,
accelerator, date), so a classroom without libvirt still compares its simulations with
reality. Both are looked up by name, first in the user's data directory
(``$XDG_DATA_HOME/kvmlab``, by default ``~/.local/share/kvmlab``; ``kvmlab cpu run
--record NAME`` writes there), then in the data shipped inside the package (the package
``kvmlab.shipped``, read through :mod:`importlib.resources`; in the repository it is the
folder ``data/``). ``KVMLAB_DATA_DIR``, when set, replaces both: data is read from it and
recordings are written to it.

Examples
--------
>>> "cpu-seed-example" in scenario_names("cpu")
True
>>> scenario_dict("cpu-seed-example")["pcpus"]
2
>>> check_name("../etc/passwd", "recording")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: a recording name is a name, not a path: ...
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from kvmlab.errors import ScenarioError
from kvmlab.validate import read_json_file

T = TypeVar("T")

NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What a scenario or recording name looks like (and no ``..`` in it)."""


def check_name(name: str, what: str = "recording") -> str:
    """``name`` itself if it is a plain name (``[A-Za-z0-9][A-Za-z0-9._-]*``, no ``..``).

    Names of shipped and recorded data are file names, never paths: a ``/`` or a ``..``
    would reach outside the data directories.

    Raises
    ------
    ScenarioError
        If ``name`` breaks the rule; the message states it.

    Examples
    --------
    >>> check_name("cpu-overcommit-2x.v2")
    'cpu-overcommit-2x.v2'
    >>> check_name("runs/today")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a recording name is a name, not a path: 'runs/today' ...
    """
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or ".." in name:
        raise ScenarioError(
            f"a {what} name is a name, not a path: {name!r} breaks the rule (letters, "
            "digits, '.', '_' and '-', starting with a letter or digit; no '/', no '..')")
    return name


def shipped_dir() -> Path:
    """The data shipped in the package (``data/`` in the repository).

    Examples
    --------
    >>> sorted(p.name for p in shipped_dir().iterdir() if p.is_dir())[-2:]
    ['recorded', 'scenarios']
    """
    root = resources.files("kvmlab.shipped")
    if not isinstance(root, Path):         # pragma: no cover - only a zip import does this
        raise ScenarioError("kvmlab's data cannot be read from a zip file: install kvmlab "
                            "unpacked (as pip does)")
    return root


def user_data_dir() -> Path:
    """Where the user's own recordings (and scenarios) live, and where new ones go.

    ``KVMLAB_DATA_DIR`` if set, else ``$XDG_DATA_HOME/kvmlab`` (an absolute
    ``XDG_DATA_HOME`` only), else ``~/.local/share/kvmlab``.

    Examples
    --------
    >>> import os
    >>> user_data_dir().name == "kvmlab" or "KVMLAB_DATA_DIR" in os.environ
    True
    """
    if os.environ.get("KVMLAB_DATA_DIR"):
        return Path(os.environ["KVMLAB_DATA_DIR"])
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "kvmlab"


def data_dirs() -> list[Path]:
    """The data directories, searched in this order: ``KVMLAB_DATA_DIR`` alone if set,
    else the user's data directory and then the shipped data.

    Examples
    --------
    >>> data_dirs()[-1] == shipped_dir() or "KVMLAB_DATA_DIR" in __import__("os").environ
    True
    """
    if os.environ.get("KVMLAB_DATA_DIR"):
        return [Path(os.environ["KVMLAB_DATA_DIR"])]
    return [user_data_dir(), shipped_dir()]


def data_dir() -> Path:
    """The directory of the shipped data, or ``KVMLAB_DATA_DIR`` if set."""
    return data_dirs()[-1]


def _names(folder: str, prefix: str, suffix: str = ".json") -> list[str]:
    found = {p.name.removesuffix(suffix) for d in data_dirs() if (d / folder).is_dir()
             for p in (d / folder).iterdir()
             if p.name.startswith(prefix) and p.name.endswith(suffix)}
    return sorted(n for n in found if NAME_RULE.fullmatch(n) and ".." not in n)


def scenario_names(prefix: str = "") -> list[str]:
    """Names of the scenarios (the user's and the shipped ones) starting with ``prefix``."""
    return _names("scenarios", prefix)


def read_json(path: str | Path, what: str = "scenario") -> Any:
    """The JSON in the file at ``path``; a file that is missing or not JSON says so plainly.

    Examples
    --------
    >>> read_json("/nonexistent.json")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: cannot read scenario /nonexistent.json: No such file or directory
    """
    return read_json_file(path, what)


def data_file(folder: str, what: str, name: str, suffix: str = ".json") -> Path:
    """The path of data file ``name`` in ``FOLDER`` of the first data directory that has
    it; if none has it, an error listing the ones there are.

    Examples
    --------
    >>> data_file("recorded", "recorded run", "cpu-seed-example").name
    'cpu-seed-example.json'
    >>> data_file("recorded", "recorded sweep", "nope", ".jsonl")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no recorded sweep 'nope'; there are: sweep-cpu-overcommit
    """
    check_name(name, what)
    for directory in data_dirs():
        path = directory / folder / f"{name}{suffix}"
        if path.is_file():
            return path
    there = _names(folder, "", suffix)
    raise ScenarioError(f"no {what} {name!r}; there are: {', '.join(there) or '(none)'}")


def _read(folder: str, what: str, name: str) -> dict[str, Any]:
    return read_json(data_file(folder, what, name), what)


def scenario_dict(name: str) -> dict[str, Any]:
    """The JSON form of scenario ``name`` (the user's, else the shipped one)."""
    return _read("scenarios", "shipped scenario", name)


def recorded_names(prefix: str = "") -> list[str]:
    """Names of the recorded real-host runs (the user's and the shipped ones) starting
    with ``prefix``."""
    return _names("recorded", prefix)


def load_recorded(name: str) -> dict[str, Any]:
    """The recorded real-host run ``name`` (a result's JSON form with provenance); the
    user's recording of that name comes before a shipped one."""
    return _read("recorded", "recorded run", name)


def save_recorded(name: str, data: dict[str, Any]) -> Path:
    """Write a recorded run into the user's data directory; return its path.

    Used by ``kvmlab cpu run --record NAME``; ``name`` must be a plain name
    (see :func:`check_name`). The package's own data is never written.
    """
    path = user_data_dir() / "recorded" / f"{check_name(name)}.json"
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
    >>> load_scenario_as("x" * 300, dict, dict, what="scenario", prefixes=["cpu-"])
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: 'xxx...' is neither a scenario file nor a shipped scenario: \
File name too long
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
    try:
        path = Path(scenario)
        is_file = path.suffix == ".json" or path.exists()
    except (OSError, ValueError) as exc:   # too long for a file name, a NUL byte, ...
        shown = repr(str(scenario))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError(f"{shown} is neither a {what} file nor a shipped {what}: "
                            f"{reason}") from None
    if is_file:
        return from_dict(read_json(path, what))
    shipped = [n for prefix in prefixes for n in scenario_names(prefix)]
    if str(scenario) not in shipped:
        raise ScenarioError(f"no {what} file or shipped {what} {str(scenario)!r}; the shipped "
                            f"ones are {', '.join(shipped) or '(none)'}")
    return from_dict(scenario_dict(str(scenario)))
