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
>>> ResultStore(path, {"scenario": "demo", "source": "model"}).add({"x": 1}, 0, {"y": 2.0})
>>> ResultStore(path, {"scenario": "demo", "source": "model"}).results
{'{"params": {"x": 1}, "seed": 0}': {'y': 2.0}}
>>> ResultStore(path, {"scenario": "other", "source": "model"})
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: .../sweep.jsonl holds runs of scenario 'demo' (model), not ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.experiments.grid import run_key

FORMAT = "kvmlab-sweep/1"


class ResultStore:
    """A JSON Lines file of finished runs, opened for appending.

    Parameters
    ----------
    path : str or Path
        Created (with its folder) when missing.
    header : mapping
        Says what the runs are (``scenario``, ``source`` and, for a host, ``uri``); an
        existing file with another header is refused rather than mixed.

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
        data = self.path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]
        if len(complete) < len(data):             # a write cut short by a kill
            self.dropped_partial_line = True
            with self.path.open("r+b") as f:
                f.truncate(len(complete))
        lines = complete.decode().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("format") != FORMAT:
            raise ScenarioError(f"{self.path} is not a kvmlab sweep file (its first line is "
                                "not a kvmlab-sweep header); choose another file")
        mine = {k: self.header.get(k) for k in self.header if k != "format"}
        theirs = {k: header.get(k) for k in mine}
        if theirs != mine:
            raise ScenarioError(
                f"{self.path} holds runs of scenario {header.get('scenario')!r} "
                f"({header.get('source')}), not of {self.header.get('scenario')!r} "
                f"({self.header.get('source')}) with {mine}; choose another file or delete "
                "this one")
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                self.results[run_key(entry["params"], entry["seed"])] = entry["figures"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ScenarioError(f"{self.path}, line {number}, is not a saved run: "
                                    f"{line[:80]!r}") from None

    def _append(self, entry: Mapping[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add(self, params: Mapping[str, Any], seed: int, figures: Mapping[str, Any]) -> None:
        """Save one finished run now (flushed to disk before returning)."""
        self._append({"params": dict(params), "seed": seed, "figures": dict(figures)})
        self.results[run_key(params, seed)] = dict(figures)
