"""The lab contract: the same verbs, result shapes and rooms in every lab.

Every lab package (:mod:`kvmlab.cpu`, :mod:`kvmlab.memory`, :mod:`kvmlab.storage`,
:mod:`kvmlab.network`) exports the same four verbs over the same kind of data::

    scenario = lab.load_scenario("name" | path | dict)   # frozen, validated, JSON-able
    simulated = lab.simulate(scenario, seed=0, progress=None)        # the simpy model
    measured = lab.run_on_host(scenario, uri=None, progress=None)    # a real host or kernel
    comparison = lab.compare(simulated, measured)   # .agrees, .max_error, .table(), .plot()

``simulate`` and ``run_on_host`` return the **same** result type; its ``source`` is
:data:`SIMULATED` or :data:`MEASURED` (a recorded host run is ``measured``; its
provenance says where and when). ``progress`` follows :mod:`kvmlab.progress`.

Every lab folder has the same rooms: ``scenario.py`` (the data and every rule),
``model.py`` (simpy only, never libvirt), ``twin.py`` (the real host or kernel, never
simpy), ``result.py`` (the result and comparison types), ``plot.py`` (results to
matplotlib Axes; never runs a model), ``widgets.py`` (ipywidgets over pure functions),
``problems.py`` (seeded exercises) and ``commands.py`` (its ``kvmlab LAB ...`` commands).

Examples
--------
>>> from kvmlab.lab import LABS, lab
>>> LABS
('cpu', 'memory', 'storage', 'network')
>>> cpu = lab("cpu")
>>> s = cpu.load_scenario("cpu-seed-example")
>>> c = cpu.compare(cpu.simulate(s, seed=1), cpu.simulate(s, seed=1))
>>> c.agrees, c.max_error
(True, 0.0)
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kvmlab.errors import ScenarioError
from kvmlab.progress import ProgressArg

__all__ = ["LABS", "MEASURED", "ROOMS", "SIMULATED", "SOURCES", "Comparison", "Lab",
           "LabResult", "check_pair", "lab"]

SIMULATED = "simulated"
"""``source`` of a result that a model computed."""
MEASURED = "measured"
"""``source`` of a result that a real host or kernel produced (now, or recorded)."""
SOURCES = (SIMULATED, MEASURED)

LABS = ("cpu", "memory", "storage", "network")
"""The labs that follow the contract."""

ROOMS = ("scenario", "model", "twin", "result", "plot", "widgets", "problems", "commands")
"""The modules every lab folder has."""


@runtime_checkable
class LabResult(Protocol):
    """What every lab's result has, whichever side made it."""

    scenario: Any
    source: str
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]: ...


class Comparison(ABC):
    """A simulated result next to a measured one: every lab's comparison is one of these.

    Subclasses say what differs (:attr:`agrees`), by how much (:attr:`max_error`, in the
    lab's own unit, 0.0 exactly when nothing differs), lay it out (:meth:`table`) and draw
    it (:meth:`plot`). ``to_dict()`` always starts with ``agrees`` and ``max_error``.
    """

    simulated: Any
    measured: Any

    @property
    @abstractmethod
    def agrees(self) -> bool:
        """Do the model and the host agree (within the lab's stated tolerance)?"""

    @property
    @abstractmethod
    def max_error(self) -> float:
        """The largest difference found; 0.0 when the two results are the same."""

    @abstractmethod
    def table(self) -> str:
        """A plain-text table of the two sides and their differences."""

    @abstractmethod
    def plot(self, ax: Any = None) -> Any:
        """Draw the two sides on a matplotlib Axes (a new one by default); return it."""

    def details(self) -> dict[str, Any]:
        """The lab's own fields of :meth:`to_dict` (after ``agrees`` and ``max_error``)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"agrees": ..., "max_error": ..., ...}``."""
        return {"agrees": bool(self.agrees), "max_error": float(self.max_error),
                **self.details()}

    def __str__(self) -> str:
        return self.table()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.table())


class Lab(Protocol):
    """The module-level verbs every lab package exports (``kvmlab.cpu`` is one)."""

    def load_scenario(self, scenario: str | Path | Mapping[str, Any]) -> Any: ...

    def simulate(self, scenario: Any, *, seed: int = 0,
                 progress: ProgressArg = None) -> LabResult: ...

    def run_on_host(self, scenario: Any, *, uri: str | None = None,
                    progress: ProgressArg = None) -> LabResult: ...

    def compare(self, simulated: Any, measured: Any) -> Comparison: ...


def lab(name: str) -> Lab:
    """The lab package called ``name`` (one of :data:`LABS`).

    Examples
    --------
    >>> lab("gpu")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: no lab 'gpu'; the labs are cpu, memory, storage, network
    """
    if name not in LABS:
        raise ScenarioError(f"no lab {name!r}; the labs are {', '.join(LABS)}")
    module: Lab = importlib.import_module(f"kvmlab.{name}")     # type: ignore[assignment]
    return module


def check_pair(simulated: LabResult, measured: LabResult, kind: type) -> None:
    """Refuse to compare results that are not both of ``kind`` (the lab's result type).

    Examples
    --------
    >>> check_pair(1, 2, str)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: compare takes two str results (simulated, measured), not ...
    """
    if not isinstance(simulated, kind) or not isinstance(measured, kind):
        raise ScenarioError(f"compare takes two {kind.__name__} results (simulated, "
                            f"measured), not {type(simulated).__name__} and "
                            f"{type(measured).__name__}")
