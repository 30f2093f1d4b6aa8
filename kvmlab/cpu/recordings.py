"""Recorded real-host runs beside the model: chart points and comparison rows.

The functions here are pure (no plotting, no widgets): they boil results, recordings
and sweeps down to plain dicts and rows that :mod:`kvmlab.cpu.plot` draws and the CPU
notebook tabulates. Sweeps themselves run in :func:`kvmlab.sweep` (the
``cpu-overcommit`` scenario); :func:`overcommit_points` turns its table into points.

A *point* is a dict with at least ``overcommit`` (vCPUs per pCPU), ``wait_share``
(the mean wait share of the vCPUs, 0..1) and ``source`` (:data:`kvmlab.lab.SIMULATED`
or :data:`kvmlab.lab.MEASURED`); :func:`kvmlab.cpu.plot.plot_wait_vs_overcommit` draws
a list of them.

Examples
--------
Busy VMs on 2 pCPUs: no waiting up to one vCPU per pCPU, then each vCPU waits
``1 - 1/ratio`` of the time.

>>> import kvmlab
>>> table = kvmlab.sweep("cpu-overcommit", {"ratio": [1, 2, 3], "duration_s": 1},
...                      executor="serial", progress=False)
>>> [(p["overcommit"], round(p["wait_share"], 2)) for p in overcommit_points(table)]
[(1.0, 0.0), (2.0, 0.5), (3.0, 0.67)]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.noise import NOISE_PREFIX, HostNoise
from kvmlab.cpu.ready import ready_verdict
from kvmlab.cpu.result import Comparison, CpuResult, compare, mean_shares, recorded_result
from kvmlab.cpu.scenario import load_scenario
from kvmlab.data import check_name, recorded_names, save_recorded, scenario_names
from kvmlab.progress import ProgressArg
from kvmlab.validate import whole_number

__all__ = ["NOISE_PREFIX", "OVERCOMMIT_RECORDINGS", "TRACED_PREFIX", "ComparisonRow",
           "compare_recorded", "comparison_rows", "overcommit_points", "record_repetitions",
           "recorded_points", "result_point", "scheduler_fit"]

#: Recordings whose points belong on the wait-versus-overcommit chart (all VMs busy).
OVERCOMMIT_RECORDINGS = ("cpu-no-overcommit", "cpu-overcommit-*", "cpu-seed-example")
TRACED_PREFIX = "trace-"
"""Traced runs of scenario ``NAME`` are recorded as ``trace-NAME``, ``trace-NAME.r2``, ..."""


def result_point(result: CpuResult, name: str = "") -> dict[str, Any]:
    """One point of a wait-versus-overcommit chart, from any result.

    Examples
    --------
    >>> from kvmlab.cpu import busy_scenario
    >>> p = result_point(simulate(busy_scenario(2, 6), record_timeline=False))
    >>> p["overcommit"], round(p["wait_share"], 3), p["verdict"], p["source"]
    (3.0, 0.667, 'problem', 'simulated')
    """
    scenario = result.scenario
    loads = {vm.busy_fraction for vm in scenario.vms}
    shares = mean_shares(result)
    return {
        "name": name or scenario.name,
        "source": result.source,
        "overcommit": scenario.overcommit,
        "pcpus": scenario.pcpus,
        "vcpus": scenario.total_vcpus,
        "load": loads.pop() if len(loads) == 1 else None,
        **shares,
        "verdict": ready_verdict(shares["ready_pct"]),
    }


def overcommit_points(table: Any) -> list[dict[str, Any]]:
    """The points of a ``cpu-overcommit`` sweep: per grid point, the means over its seeds.

    Parameters
    ----------
    table : SweepTable
        What :func:`kvmlab.sweep` (its rows' ``source`` is :data:`kvmlab.lab.SIMULATED`)
        or :func:`kvmlab.sweep_on_host` (:data:`kvmlab.lab.MEASURED`) returned for
        ``'cpu-overcommit'``, or a recorded sweep of it.

    Returns
    -------
    list of dict
        One point per grid point (and source), in grid order: its parameters, ``source``,
        ``overcommit``, the mean ``run_share`` and ``wait_share``, ``ready_pct`` and its
        ``verdict``, and ``seeds`` (how many runs were averaged).

    Examples
    --------
    >>> import kvmlab
    >>> t = kvmlab.sweep("cpu-overcommit", {"ratio": 2, "load": 0.5, "duration_s": 1},
    ...                  seeds=range(2), executor="serial", progress=False)
    >>> [(p["load"], p["seeds"], p["verdict"]) for p in overcommit_points(t)]
    [(0.5, 2, 'problem')]
    """
    points = []
    for row in table.summary(["run_share", "wait_share", "overcommit"]):
        params = {k: v for k, v in row.items() if k in table.parameters}
        ready = round(100 * row["wait_share"], 4)
        points.append({**params, "source": row["source"], "overcommit": row["overcommit"],
                       "load": params.get("load"), "run_share": row["run_share"],
                       "wait_share": row["wait_share"], "ready_pct": ready,
                       "verdict": ready_verdict(ready), "seeds": row["n"]})
    return points


def _matching(patterns: Iterable[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        found = (recorded_names(pattern[:-1]) if pattern.endswith("*")
                 else [n for n in recorded_names(pattern) if n == pattern])
        names.extend(n for n in found if n not in names)
    return names


def recorded_points(names: Iterable[str] = OVERCOMMIT_RECORDINGS) -> list[dict[str, Any]]:
    """Points measured on a real host, from the recordings in ``data/recorded/``.

    Parameters
    ----------
    names : iterable of str
        Recording names; a trailing ``*`` matches every recording with that prefix.
        Names with no recording are skipped, so the list may be empty.

    Examples
    --------
    >>> all(p["source"] == "measured" for p in recorded_points())
    True
    """
    return sorted((result_point(recorded_result(n), n) for n in _matching(names)),
                  key=lambda p: (p["overcommit"], p["name"]))


def compare_recorded(names: Iterable[str] | None = None, seed: int = 0,
                     scheduler: str = "fair") -> dict[str, Comparison]:
    """Simulate each recorded scenario and compare it with its recording.

    Parameters
    ----------
    names : iterable of str, optional
        Recording names (default: every shipped scenario that has a recording).
    seed : int
    scheduler : {'fair', 'linux', 'round-robin'}

    Returns
    -------
    dict
        Recording name to :class:`~kvmlab.cpu.result.Comparison`; empty when
        nothing has been recorded.

    Examples
    --------
    >>> comparisons = compare_recorded()
    >>> all(c.measured.source == "measured" for c in comparisons.values())
    True
    """
    if names is None:
        names = [n for n in scenario_names("cpu-") if n in recorded_names("cpu-")]
    out = {}
    for name in names:
        measured = recorded_result(name)
        simulated = simulate(measured.scenario, seed=seed, scheduler=scheduler,
                             record_timeline=False)
        out[name] = compare(simulated, measured)
    return out


def scheduler_fit(measured: CpuResult, seed: int = 0) -> dict[str, float]:
    """How well each scheduler of the model explains a measurement: its largest error.

    A host that puts each VM in a cgroup of its own should fit ``'fair'`` or
    ``'linux'`` best; a host that does not (no per-VM cgroups) looks more like
    ``'round-robin'``, which treats every thread alike. The error is per vCPU, so a
    chaotic host (where which vCPU loses changes from run to run) is better judged by
    :func:`kvmlab.cpu.agreement.agreement` over repetitions.

    Examples
    --------
    >>> from kvmlab.cpu import busy_scenario
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> scheduler_fit(r)    # the ideal against itself, and one run of the chaotic real host's
    {'fair': 0.0, 'linux': 0.056826, 'round-robin': 0.0}
    """
    return {name: compare(simulate(measured.scenario, seed=seed, scheduler=name,
                                   record_timeline=False), measured).max_error
            for name in SCHEDULERS}


def record_repetitions(names: Iterable[str], repetitions: int = 3, *,
                       duration_s: float | None = None, uri: str | None = None,
                       into: str | Path | None = None,
                       progress: ProgressArg = None, trace: bool = False,
                       noise: HostNoise | None = None) -> list[Path]:
    """Run shipped scenarios on a real host, ``repetitions`` times each, and record them.

    Repetition 1 of scenario ``NAME`` is recorded as ``NAME``, the others as
    ``NAME.r2``, ``NAME.r3``, ... (see :mod:`kvmlab.cpu.agreement`). This is how the
    shipped recordings were made (``kvmlab cpu record``); run it on a KVM host to
    see how a host with hardware virtualization differs from the TCG recordings.

    Parameters
    ----------
    names : iterable of str
        Shipped scenario names (``cpu-...``).
    repetitions : int
        1 to 20.
    duration_s : float, optional
        Measure each run this long instead of the scenario's ``duration_s``.
    uri : str, optional
        The libvirt host (default: the local one).
    into : path, optional
        A folder to write the recordings into (default: the user's recordings,
        see :func:`kvmlab.data.save_recorded`).
    progress : None, bool or a tqdm-like bar
        Passed to each run.
    trace : bool
        Trace the scheduler in each run too (see :func:`kvmlab.cpu.twin.run_on_host`).
        Tracing costs the host about a tenth of a pCPU, so traced runs are recorded
        apart, as ``trace-NAME``, ``trace-NAME.r2``, ...: never as repetitions of
        ``NAME``, which the agreement tables read.
    noise : HostNoise, optional
        Run other work on the host meanwhile (see :mod:`kvmlab.cpu.noise`). Such runs
        are recorded apart too, as ``noise-NAME``, ``noise-NAME.r2``, ...

    Returns
    -------
    list of Path
        The files written.
    """
    from kvmlab.cpu.agreement import repetition_name
    from kvmlab.cpu.twin import run_on_host

    repetitions = whole_number(repetitions, "repetitions", low=1, high=20)
    names = [check_name(n, "scenario") for n in names]
    scenarios = {n: load_scenario(n) for n in names}          # every name checked first
    if duration_s is not None:
        scenarios = {n: s.with_duration(duration_s) for n, s in scenarios.items()}
    written = []
    for name, scenario in scenarios.items():
        for k in range(1, repetitions + 1):
            result = run_on_host(scenario, uri=uri, progress=progress, trace=trace,
                                 noise=noise)
            prefix = ((TRACED_PREFIX if trace else "")
                      + (NOISE_PREFIX if noise is not None and noise.bursts_per_s > 0 else ""))
            target = repetition_name(prefix + name, k)
            if into is None:
                written.append(save_recorded(target, result.to_dict()))
            else:
                path = Path(into) / f"{target}.json"
                path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
                written.append(path)
    return written


@dataclass(frozen=True)
class ComparisonRow:
    """One line of a summary of comparisons (see :func:`comparison_rows`)."""

    scenario: str
    overcommit: float
    simulated_wait: float
    measured_wait: float
    largest_error: float
    accelerator: str
    agrees: bool


def comparison_rows(comparisons: Mapping[str, Comparison]) -> list[ComparisonRow]:
    """One summary row per comparison: mean wait shares, the largest error, the verdict.

    Examples
    --------
    >>> from kvmlab.cpu import busy_scenario
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> row = comparison_rows({"same": compare(r, r)})[0]
    >>> row.largest_error, row.agrees
    (0.0, True)
    """
    rows = []
    for name, c in comparisons.items():
        rows.append(ComparisonRow(
            name, c.simulated.scenario.overcommit,
            round(mean_shares(c.simulated)["wait_share"], 3),
            round(mean_shares(c.measured)["wait_share"], 3),
            round(c.max_error, 3), str(c.measured.provenance.get("accelerator", "-")),
            c.agrees))
    return rows
