"""Results saved as they arrive, so that an interrupted sweep resumes where it stopped.

The file is JSON Lines: a header line naming the scenario and where it ran, then one line
per finished run (its parameters, seed and figures), appended and flushed to disk the
moment the run ends. A run killed in the middle of writing leaves at most a broken last
line, which the next opening drops. Opening the file again gives back every finished run,
so a sweep only does the runs that are missing.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sweep.jsonl"
>>> header = {"scenario": "demo", "source": "simulated"}
>>> ResultStore(path, header).add({"x": 1}, 0, {"y": 2.0})
>>> ResultStore(path, header).results
{'{"params": {"x": 1}, "seed": 0}': {'y': 2.0}}
>>> ResultStore(path, {"scenario": "other", "source": "simulated"})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: .../sweep.jsonl holds runs of scenario 'demo' (simulated) that ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.experiments.grid import run_key
from kvmlab.experiments.table import SweepTable
from kvmlab.lab import MEASURED, SIMULATED
from kvmlab.validate import is_whole

FORMAT = "kvmlab-sweep/1"
LEGACY_SOURCES = {"model": SIMULATED, "host": MEASURED}
"""The ``source`` words of files saved before kvmlab's one vocabulary, and what they mean."""


def parse(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Read a sweep file without changing it: its header, its runs (``params``, ``seed``,
    ``figures``) in the order saved, and how many bytes of it are whole lines (a last line
    cut short by a kill is left out). A header's ``source`` is given in kvmlab's words
    (``simulated`` or ``measured``), also for a file saved with the older ones."""
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    try:
        lines = complete.decode().splitlines()
        header = json.loads(lines[0]) if lines else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        lines, header = [], {}
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ScenarioError(f"{path} is not a kvmlab sweep file (its first line is not a "
                            "kvmlab-sweep header); choose another file")
    if header.get("source") in LEGACY_SOURCES:
        header["source"] = LEGACY_SOURCES[header["source"]]
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not (isinstance(entry, dict) and isinstance(entry.get("params"), dict)
                and is_whole(entry.get("seed"))
                and isinstance(entry.get("figures"), dict)):
            raise ScenarioError(f"{path}, line {number}, is not a saved run: {line[:80]!r}")
        entries.append(entry)
    return header, entries, len(complete)


class ResultStore:
    """A JSON Lines file of finished runs, opened for appending.

    Parameters
    ----------
    path : str or Path
        Created (with its folder) when missing.
    header : mapping
        Says what the runs are (``scenario``, ``function``, ``defaults``, ``source`` and, for
        a host, ``uri``); an existing file with another header is refused rather than mixed.

    Attributes
    ----------
    results : dict
        Run key (:func:`~kvmlab.experiments.grid.run_key`) to that run's figures.
    """

    def __init__(self, path: str | Path, header: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.header = {"format": FORMAT, **header}
        self.results: dict[str, dict[str, Any]] = {}
        self.dropped_partial_line = False
        if self.path.exists() and self.path.stat().st_size:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append(self.header)

    def _load(self) -> None:
        header, entries, complete = parse(self.path)
        differ = [k for k in self.header if k != "format" and header.get(k) != self.header[k]]
        if differ:
            raise ScenarioError(
                f"{self.path} holds runs of scenario {header.get('scenario')!r} "
                f"({header.get('source')}) that differ from this sweep's in "
                f"{', '.join(differ)} ({', '.join(f'{header.get(k)!r}' for k in differ)}, "
                f"not {', '.join(f'{self.header[k]!r}' for k in differ)}); choose another "
                "file, or delete this one (fresh=True for a host sweep)")
        self.results = {run_key(e["params"], e["seed"]): e["figures"] for e in entries}
        if complete < self.path.stat().st_size:       # a write cut short by a kill
            self.dropped_partial_line = True
            with self.path.open("r+b") as f:
                f.truncate(complete)

    def _append(self, entry: Mapping[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, params: Mapping[str, Any], seed: int, figures: Mapping[str, Any]) -> None:
        """Save one finished run now (flushed to disk before returning)."""
        self._append({"params": dict(params), "seed": seed, "figures": dict(figures)})
        self.results[run_key(params, seed)] = dict(figures)


def read_table(path: str | Path) -> SweepTable:
    """The runs saved in a sweep file, as a table (parameters in the order first seen).

    Examples
    --------
    >>> t = recorded_sweep("sweep-cpu-overcommit")     # measured on a real host
    >>> t.parameters[:2], set(t["source"])
    (['ratio', 'load'], {'measured'})
    """
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"no sweep file {path}")
    header, entries, _ = parse(path)
    params: dict[str, None] = {}
    figures: dict[str, None] = {}
    rows = []
    latest = {run_key(e["params"], e["seed"]): e for e in entries}   # a run saved twice
    for entry in latest.values():
        params.update(dict.fromkeys(entry["params"]))
        figures.update(dict.fromkeys(entry["figures"]))
        rows.append({**entry["params"], "seed": entry["seed"], "source": header.get("source"),
                     **entry["figures"]})
    return SweepTable(rows, list(params), list(figures), str(header.get("scenario", "")))


def recorded_sweep(name: str) -> SweepTable:
    """A sweep recorded on a real host and shipped in ``data/recorded/NAME.jsonl``."""
    from kvmlab.data import data_file

    return read_table(data_file("recorded", "recorded sweep", name, ".jsonl"))
