"""How much faster a sweep runs on every local core than one run at a time.

One measurement, against a baseline timed in the same run:

sweep
    ``kvmlab.sweep('cpu-overcommit', ...)`` over a 200-run grid (10 overcommit ratios x
    2 loads x 10 seeds), run *serially* in this process (``executor='serial'``: the
    baseline), on the default executor (one process per local core), and, when
    dask.distributed is installed, on a local dask cluster with a worker process per core
    (started before the clock starts). The **speed-up** is the serial time divided by the
    parallel time; the **efficiency** is the speed-up divided by the number of workers (1.0
    would be perfect). Every executor must give the same table, which is checked.

Timing is that of :mod:`benchmarks.timing`: best of a few alternating repeats.

Examples
--------
>>> out = bench_sweep(grid=QUICK_GRID, seeds=range(2), repeats=Repeats(times=1, min_total_s=0),
...                   use_dask=False)
>>> out["runs"], out["same_results"], out["speedup"] > 0
(8, True, True)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from benchmarks.timing import Repeats, Timing, environment, timed
from kvmlab.experiments import sweep

SCENARIO = "cpu-overcommit"
GRID: dict[str, Any] = {"ratio": [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5], "load": [1.0, 0.6],
                        "duration_s": 20.0}
SEEDS = range(10)
QUICK_GRID: dict[str, Any] = {"ratio": [1, 2], "load": [1.0, 0.6], "duration_s": 0.2}
ROUNDS = Repeats(times=3, budget_s=180.0, min_total_s=0.0)


@contextlib.contextmanager
def _dask_client(workers: int) -> Iterator[Any]:
    """A local dask cluster with one single-threaded worker process per core, or None."""
    try:
        import distributed
    except ImportError:
        yield None
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def bench_sweep(grid: dict[str, Any] = GRID, seeds: Iterable[int] = SEEDS,
                repeats: Repeats = ROUNDS, use_dask: bool = True,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the same sweep serially, on local processes and on dask, alternating."""
    seeds = list(seeds)
    workers = os.cpu_count() or 1
    times: dict[str, list[float]] = {"serial": [], "processes": [], "dask": []}
    tables: dict[str, Any] = {}
    with (_dask_client(workers) if use_dask else contextlib.nullcontext()) as client:
        executors: dict[str, Any] = {"serial": "serial", "processes": None}
        if client is not None:
            executors["dask"] = client
        while not times["serial"] or repeats.more(len(times["serial"]),
                                                  sum(map(sum, times.values()))):
            for name, executor in executors.items():
                if log is not None:
                    log(f"sweep: round {len(times['serial']) + 1}, {name}")
                tables[name], seconds = timed(lambda executor=executor: sweep(
                    SCENARIO, grid, seeds, executor=executor, progress=False))
                times[name].append(seconds)
    runs = len(tables["serial"])
    out: dict[str, Any] = {"scenario": SCENARIO, "grid": grid, "seeds": len(seeds),
                           "runs": runs, "workers": workers,
                           "same_results": all(t == tables["serial"] for t in tables.values())}
    serial = Timing(runs, tuple(times["serial"]))
    for name in executors:
        timing = Timing(runs, tuple(times[name]))
        out[name] = {**timing.to_dict(), "speedup": round(serial.best_s / timing.best_s, 3)}
    out["speedup"] = out["processes"]["speedup"]
    out["efficiency"] = round(out["speedup"] / min(workers, runs), 3)
    return out


def run(quick: bool = False, sizes: Any = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the sweep benchmark (``sizes`` is the CPU benchmark's and is ignored here)."""
    if quick:
        out = bench_sweep(QUICK_GRID, range(2), Repeats(times=1, min_total_s=0.0),
                          use_dask=False, log=log)
    else:
        out = bench_sweep(log=log)
    return {"environment": environment(), "sweep": out}


def format_table(result: dict[str, Any]) -> str:
    """The result of :func:`run` as a readable table."""
    s = result["sweep"]
    lines = [
        "A sweep on every local core against the same sweep run serially",
        f"   {s['runs']} runs of {s['scenario']} ({len(s['grid']['ratio'])} ratios x "
        f"{len(s['grid']['load'])} loads x {s['seeds']} seeds), {s['workers']} cores; "
        f"same results on every executor: {s['same_results']}",
        "                        best s  median s   runs/s  speed-up",
    ]
    for name, label in (("serial", "serial (baseline)"), ("processes", "processes"),
                        ("dask", "dask LocalCluster")):
        if name in s:
            t = s[name]
            lines.append(f"   {label:<18} {t['best_s']:>8.2f} {t['median_s']:>9.2f} "
                         f"{t['events_per_s']:>8.1f} {t['speedup']:>8.2f}x")
    lines.append(f"   speed-up on processes: {s['speedup']}x (efficiency {s['efficiency']} "
                 "of the cores)")
    return "\n".join(lines)


__all__ = ["bench_sweep", "format_table", "run"]
