"""Parameter grids: every combination of the values given, seeds, and one key per run.

A *grid* maps parameter names to the values to try; a name given a single value (not a
list) keeps that value in every run. A *run* is one point of the grid with one seed, and
its key (:func:`run_key`) is the same string in every process and every session, so saved
results can be matched to the runs of a later sweep.

Examples
--------
>>> expand({"ratio": [1, 2], "load": [1.0, 0.5], "pcpus": 2})
[{'ratio': 1, 'load': 1.0, 'pcpus': 2}, {'ratio': 1, 'load': 0.5, 'pcpus': 2}, \
{'ratio': 2, 'load': 1.0, 'pcpus': 2}, {'ratio': 2, 'load': 0.5, 'pcpus': 2}]
>>> check_seeds(range(3))
(0, 1, 2)
>>> run_key({"ratio": 2, "load": 0.5}, seed=1)
'{"params": {"load": 0.5, "ratio": 2}, "seed": 1}'
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.validate import is_whole

#: Types a parameter value may have: they are saved as JSON and compared exactly.
PLAIN = (bool, int, float, str, type(None))
MAX_GRID_POINTS = 100_000
"""The most points a grid may have (the product of its parameters' numbers of values): each
point is at least one run, and a sweep keeps every run's row in memory."""
MAX_INT = 2**63
"""The largest whole number a grid value may be (its JSON must read back the same)."""


def _values(name: str, value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        values = [value]
    else:
        values = list(itertools.islice(value, MAX_GRID_POINTS + 1))
        if len(values) > MAX_GRID_POINTS:
            raise ScenarioError(f"grid parameter {name!r} has more than {MAX_GRID_POINTS} "
                                "values")
    if not values:
        raise ScenarioError(f"grid parameter {name!r} has no values; give at least one")
    for v in values:
        if not isinstance(v, PLAIN):
            raise ScenarioError(
                f"grid parameter {name!r} has the value {v!r} of type {type(v).__name__}; "
                "values must be numbers, strings, booleans or None (they are saved as JSON)")
        if isinstance(v, float) and v != v:
            raise ScenarioError(f"grid parameter {name!r} has the value NaN; give a number")
        if isinstance(v, float) and not math.isfinite(v):
            raise ScenarioError(f"grid parameter {name!r} has the value {v}; give a finite "
                                "number")
        if is_whole(v) and abs(v) > MAX_INT:
            raise ScenarioError(f"grid parameter {name!r} has a whole number of "
                                f"{len(str(abs(v)))} digits; at most 2**63 is taken")
        if isinstance(v, str) and len(v) > 1000:
            raise ScenarioError(f"grid parameter {name!r} has a text of {len(v)} characters; "
                                "at most 1000 are taken")
    if len({json.dumps(v) for v in values}) < len(values):
        raise ScenarioError(f"grid parameter {name!r} lists a value twice: {values!r}")
    return values


def expand(grid: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last parameter varying fastest.

    Parameters
    ----------
    grid : mapping of str to a list of values (or to one value), optional
        No grid (``None`` or ``{}``) is one run with the scenario's defaults.

    Returns
    -------
    list of dict

    Raises
    ------
    ScenarioError
        If a parameter has no values, a value twice, or a value that is not plain data.

    Examples
    --------
    >>> expand({"working_set_kib": range(64, 257, 64)})
    [{'working_set_kib': 64}, {'working_set_kib': 128}, {'working_set_kib': 192}, \
{'working_set_kib': 256}]
    >>> expand({"ratio": []})
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: grid parameter 'ratio' has no values; give at least one
    """
    values = normalize(grid)
    names = list(values)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*values.values())]


def normalize(grid: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """The grid with every parameter's values as a list (checked as :func:`expand` says).

    Examples
    --------
    >>> normalize({"ratio": range(1, 3), "load": 0.5})
    {'ratio': [1, 2], 'load': [0.5]}
    """
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise ScenarioError(f"a grid maps parameter names to lists of values, like "
                            f"{{'ratio': [1, 2, 3]}}; not {grid!r}")
    for name in grid:
        if not isinstance(name, str) or not name.isidentifier():
            raise ScenarioError(f"grid parameter names are Python names, not {name!r}")
        if name == "seed":
            raise ScenarioError("'seed' is not a grid parameter: pass seeds=[...] instead")
    out = {name: _values(name, grid[name]) for name in grid}
    if math.prod(len(v) for v in out.values()) > MAX_GRID_POINTS:
        raise ScenarioError(f"the grid has {math.prod(len(v) for v in out.values())} points "
                            f"(every combination of its values); at most {MAX_GRID_POINTS}")
    return out


def check_seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    """The seeds as a tuple of distinct whole numbers, at least one.

    Examples
    --------
    >>> check_seeds([3, 1])
    (3, 1)
    >>> check_seeds(5)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: seeds must be a list of whole numbers such as range(5), not 5
    """
    if not isinstance(seeds, Iterable) or isinstance(seeds, str | bytes):
        raise ScenarioError(f"seeds must be a list of whole numbers such as range(5), "
                            f"not {seeds!r}")
    out = tuple(itertools.islice(seeds, MAX_GRID_POINTS + 1))
    if len(out) > MAX_GRID_POINTS:
        raise ScenarioError(f"seeds has more than {MAX_GRID_POINTS} seeds")
    if not out:
        raise ScenarioError("seeds is empty; give at least one seed, such as [0]")
    out = tuple(map(plain_number, out))
    bad = [s for s in out if not (is_whole(s) and 0 <= s <= MAX_INT)]
    if bad:
        raise ScenarioError(f"seeds are whole numbers of at least 0 (and at most 2**63), "
                            f"not {str(bad[0])[:40]}")
    if len(set(out)) < len(out):
        raise ScenarioError(f"seeds lists a seed twice: {list(out)}")
    return out


def plain_number(value: Any) -> Any:
    """A numpy number as the Python number it holds; anything else as it is.

    Examples
    --------
    >>> import numpy as np
    >>> plain_number(np.int64(3)), plain_number(np.bool_(True)), plain_number("3")
    (3, True, '3')
    """
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item):
        return item()
    return value


def run_key(params: Mapping[str, Any], seed: int) -> str:
    """The key of one run: its parameters (in name order) and its seed, as JSON.

    Examples
    --------
    >>> run_key({"b": 1, "a": "x"}, 0) == run_key({"a": "x", "b": 1}, 0)
    True
    """
    return json.dumps({"params": dict(params), "seed": seed}, sort_keys=True)
