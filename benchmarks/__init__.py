"""Benchmarks of kvmlab's simulation models (run them with ``python -m benchmarks``).

These are not timed tests: nothing here passes or fails on speed. Each benchmark
measures the model *and a baseline in the same run* (for the CPU model, a bare
simpy loop doing the same number of events), so the numbers to read are ratios
and growth rates, which carry over between machines, not absolute times, which
do not.

Each benchmark module has ``run(quick=False, sizes=None, log=None) -> dict`` (a JSON-ready
result) and ``format_table(result) -> str`` (the same result as a readable table).
``BENCHMARKS`` maps a benchmark's name on the command line to its module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BENCHMARKS: dict[str, str] = {
    "cpu": "benchmarks.bench_cpu",
    "memory": "benchmarks.bench_memory",
    "experiments": "benchmarks.bench_experiments",
    "widgets": "benchmarks.bench_widgets",
    "storage": "benchmarks.bench_storage",
}


def load(name: str) -> ModuleType:
    """Import the module of benchmark ``name``.

    Parameters
    ----------
    name : str
        A key of ``BENCHMARKS``, such as ``"cpu"``.

    Returns
    -------
    module
        The benchmark module, with ``run`` and ``format_table``.

    Raises
    ------
    KeyError
        If there is no benchmark of that name.
    """
    if name not in BENCHMARKS:
        raise KeyError(f"no benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name])


__all__ = ["BENCHMARKS", "load"]
