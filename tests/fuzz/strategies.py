"""Hypothesis strategies that attack kvmlab's entry points: mutations of the shipped
scenarios (keys dropped, renamed or added, values replaced by other JSON types, by huge,
tiny, negative or non-finite numbers), and the settings every fuzz test shares.

``KVMLAB_FUZZ_EXAMPLES`` multiplies the number of examples (and turns off the fixed
seed) for a longer hunt than the test suite's.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kvmlab.data import scenario_dict, scenario_names

SCALE = float(os.environ.get("KVMLAB_FUZZ_EXAMPLES", "1"))


def fuzz_settings(examples: int, deadline_s: float | None = 5.0) -> settings:
    """The settings of one fuzz test: ``examples`` examples (times ``SCALE``), each within
    ``deadline_s`` seconds; a fixed seed in the test suite, so a run is repeatable."""
    return settings(max_examples=max(1, int(examples * SCALE)),
                    deadline=None if deadline_s is None else deadline_s * 1000,
                    derandomize=SCALE == 1, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 2, 3, 0.5, 1.5, -0.5, 1e-9, -1e-9, 1e9, 1e30, -1e30,
    10**9, 2**31, 2**63, 2**64, 10**30, 10**400, math.nan, math.inf, -math.inf,
    "", "x", "0", "1", "false", "true", "null", "NaN", "eth0", "ff:ff:ff:ff:ff:ff",
    "10.0.0.1/24", "qcow2", "raw", "full", "a" * 300, [], {}, [1, 2], [[0, 512]], ["eth0"],
    {"name": "x"}, {"a": 1},
]
"""Values that broke kvmlab once, or could: other JSON types, huge, tiny, negative and
non-finite numbers, integers too long for a float, strings that look like other things."""

#: Only values the models refuse or run quickly: for the command line, where an accepted
#: scenario is simulated in full.
QUICK_NASTY = [v for v in NASTY if not (isinstance(v, int | float) and not isinstance(v, bool)
                                        and 3 < abs(v) < 1e9)]

json_scalars = st.one_of(st.sampled_from(NASTY), st.integers(-5, 300),
                         st.floats(-10.0, 1000.0), st.text(max_size=8))


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, (*prefix, i))


def _typo(draw: Any, key: str) -> str:
    kind = draw(st.sampled_from(["drop", "double", "swap", "case", "suffix", "other"]))
    if not key or kind == "other":
        return draw(st.text(min_size=1, max_size=6))
    i = draw(st.integers(0, len(key) - 1))
    if kind == "drop":
        return key[:i] + key[i + 1:] or key + "x"
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and len(key) > 1:
        i = min(i, len(key) - 2)
        swapped = key[:i] + key[i + 1] + key[i] + key[i + 2:]
        return swapped if swapped != key else key + "_"
    if kind == "case":
        return key.upper() if key.upper() != key else key.lower() + "X"
    return key + "_s"


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


@st.composite
def mutated(draw: Any, tree: Any, values: st.SearchStrategy[Any] = json_scalars,
            most: int = 3) -> Any:
    """``tree`` (a scenario's JSON form) with 1 to ``most`` mutations."""
    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, most))):
        paths = list(_paths(tree))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "drop", "rename", "add", "scale",
                                   "empty", "nest"]))
        parent = tree
        for step in path[:-1]:
            parent = parent[step]
        here = parent[path[-1]] if path else tree
        if op == "drop" and path:
            del parent[path[-1]]
        elif op == "rename" and path and isinstance(parent, dict):
            parent[_typo(draw, path[-1])] = parent.pop(path[-1])
        elif op == "add" and isinstance(here, dict):
            here[_typo(draw, draw(st.sampled_from([*list(here), "x"])))] = copy.deepcopy(
                draw(values))
        elif op == "scale" and isinstance(here, int | float) and not isinstance(here, bool):
            factor = draw(st.sampled_from([-1, 0, 1e-9, 0.5, 3, 1e3, 1e9, 1e30]))
            try:
                scaled = here * factor
            except OverflowError:               # an int too large for a float
                scaled = math.inf
            tree = _set(tree, path, scaled)
        elif op == "empty" and isinstance(here, list | dict):
            tree = _set(tree, path, type(here)())
        elif op == "nest":
            tree = _set(tree, path, [here])
        else:
            tree = _set(tree, path, copy.deepcopy(draw(values)))
    return tree


def shipped(prefix: str) -> list[Any]:
    """The JSON forms of the shipped scenarios whose names start with ``prefix``."""
    return [scenario_dict(name) for name in scenario_names(prefix)]
