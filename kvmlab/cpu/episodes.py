"""Which VM gets the pCPUs, moment by moment: run shares over time, measured and modelled.

A run's shares are means over its whole window, and a mean hides *how* a VM came by
its share: a steady third of the time, or all of it for a second and nothing the next.
The measured runs keep each QEMU thread's run share between consecutive readings
(``run_series`` of :class:`kvmlab.cpu.threads.ThreadTimes`, recordings made since it
exists), and so does the ``linux`` model (:mod:`kvmlab.cpu.linux_readings`); any
simulation with ``record_timeline=True`` keeps who ran where and when. Each becomes a
:class:`VmSeries`: each VM's run share per vCPU, interval by interval.

A *starved spell* is a stretch of consecutive intervals in which a VM's vCPUs ran less
than ``below`` (5 % by default) of the time: :meth:`VmSeries.spells`.

The readings also keep the pCPU every thread was on at each one, which tells
whether a vCPU ran better on the pCPU where its VM's QEMU main loop was than on the
other one: :func:`main_loop_hold`.

Examples
--------
>>> s = VmSeries(step_s=0.5, shares={"vm1": (0.5, 0.0, 0.0, 0.5), "vm2": (0.5,) * 4},
...              source="simulated")
>>> s.spells()
{'vm1': [1.0], 'vm2': []}
>>> s.duration_s
2.0
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvmlab.cpu.result import CpuResult
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SIMULATED
from kvmlab.validate import real_number

__all__ = ["STARVED_BELOW", "VmSeries", "main_loop_hold", "plot_vm_series", "vm_series"]

STARVED_BELOW = 0.05
"""A VM whose vCPUs ran less than this share of an interval was starved in it."""


@dataclass(frozen=True)
class VmSeries:
    """Each VM's run share per vCPU in consecutive intervals of ``step_s`` seconds."""

    step_s: float
    shares: Mapping[str, tuple[float, ...]]
    source: str

    @property
    def duration_s(self) -> float:
        """The time the intervals cover."""
        return self.step_s * max((len(s) for s in self.shares.values()), default=0)

    def spells(self, below: float = STARVED_BELOW) -> dict[str, list[float]]:
        """Per VM, the length in seconds of each starved spell, in time order.

        A spell still going on at the window's end counts with the part inside it.
        """
        below = real_number(below, "below", low=0, high=1)
        out: dict[str, list[float]] = {}
        for vm, series in self.shares.items():
            spells, run = [], 0
            for share in series:
                if share < below:
                    run += 1
                elif run:
                    spells.append(round(run * self.step_s, 3))
                    run = 0
            if run:
                spells.append(round(run * self.step_s, 3))
            out[vm] = spells
        return out

    def summary(self, below: float = STARVED_BELOW) -> dict[str, Any]:
        """``spells`` (how many), ``longest_s``, ``starved_share`` (the part of all VMs'
        time spent starved) and ``starving_vms`` (how many VMs were starved at some point).

        >>> VmSeries(0.5, {"a": (0.0, 0.0), "b": (0.9, 0.9)}, "measured").summary()
        {'spells': 1, 'longest_s': 1.0, 'starved_share': 0.5, 'starving_vms': 1}
        """
        spells = self.spells(below)
        every = [s for vm in spells.values() for s in vm]
        intervals = [x for series in self.shares.values() for x in series]
        starved = sum(1 for x in intervals if x < below)
        return {"spells": len(every), "longest_s": max(every, default=0.0),
                "starved_share": round(starved / len(intervals), 4) if intervals else 0.0,
                "starving_vms": sum(1 for s in spells.values() if s)}


def _threads(result: CpuResult, missing: str) -> Mapping[str, list[dict[str, Any]]]:
    """The run's per-thread readings by VM; a ScenarioError saying ``missing`` if none."""
    threads = result.provenance.get("threads")
    if not isinstance(threads, Mapping):
        raise ScenarioError(missing)
    return threads


def _vcpu_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if str(row.get("role", "")).startswith("vcpu")]


def _from_readings(result: CpuResult) -> VmSeries:
    shares: dict[str, tuple[float, ...]] = {}
    step = 0.0
    no_readings = ("this run has no per-thread readings (a recording older than "
                   "kvmlab.cpu.threads, or a model other than linux); record it again, or "
                   "simulate with record_timeline=True")
    for vm, rows in _threads(result, no_readings).items():
        series = [row.get("run_series") or () for row in _vcpu_rows(rows)]
        if not series or not all(series):
            raise ScenarioError(f"the run keeps no run share over time for {vm!r}'s "
                                "vCPUs (a recording made before run_series was kept); "
                                "record it again with kvmlab cpu record")
        n = min(len(s) for s in series)
        shares[vm] = tuple(round(statistics.fmean(s[k] for s in series), 4) for k in range(n))
        step = float(rows[0].get("window_s", result.duration_s)) / n
    return VmSeries(step_s=step, shares=shares, source=result.source)


def _from_timeline(result: CpuResult, step_s: float) -> VmSeries:
    n = max(1, round(result.duration_s / step_s))
    step = result.duration_s / n
    ran = {vm.name: [0.0] * n for vm in result.scenario.vms}
    for piece in result.timeline:
        start, end = piece.start_s, min(piece.end_s, result.duration_s)
        k = min(n - 1, int(start / step))
        while start < end:                  # bin by bin; the last one ends at ``end``, as
            stop = end if k == n - 1 else min(end, (k + 1) * step)   # k * step may round
            ran[piece.vm][k] += max(0.0, stop - start)
            start, k = max(start, stop), k + 1
    vcpus = {vm.name: vm.vcpus for vm in result.scenario.vms}
    shares = {vm: tuple(round(x / step / vcpus[vm], 4) for x in row) for vm, row in ran.items()}
    return VmSeries(step_s=step, shares=shares, source=SIMULATED)


def vm_series(result: CpuResult, step_s: float = 0.3) -> VmSeries:
    """Each VM's run share per vCPU over time, from a measured run or a simulation.

    Parameters
    ----------
    result : CpuResult
        A measured run with per-thread readings, or a simulation with a timeline or
        readings (the ``linux`` model keeps them).
    step_s : float
        The interval of a series from a timeline (readings keep their own).

    Returns
    -------
    VmSeries

    Raises
    ------
    ScenarioError
        For a run with neither readings over time nor a timeline.

    Examples
    --------
    >>> from kvmlab.cpu.linux import simulate_linux
    >>> from kvmlab.cpu.scenario import CpuScenario
    >>> s = CpuScenario.from_dict({"pcpus": 1, "duration_s": 0.6, "vms": [
    ...     {"name": "a", "vcpus": 1}, {"name": "b", "vcpus": 1, "pin": [0]}]})
    >>> series = vm_series(simulate_linux(s, record_timeline=True), step_s=0.3)
    >>> len(series.shares["a"]), series.source
    (2, 'simulated')
    """
    step_s = real_number(step_s, "step_s", low=0.001, high=3600, unit="s")
    if result.source != MEASURED and result.timeline:
        return _from_timeline(result, step_s)
    return _from_readings(result)


def main_loop_hold(result: CpuResult) -> dict[str, Any]:
    """How much vCPUs ran on their main loop's pCPU, and how much on another.

    Only intervals in which the main loop and the vCPU stayed on one pCPU each count
    (the CPU read at both readings is the same).

    Parameters
    ----------
    result : CpuResult
        A measured run whose threads kept ``cpu_series`` and ``run_series``, or a run
        of the ``linux`` model.

    Returns
    -------
    dict
        ``with_main_loop`` and ``apart``: the mean run share of a vCPU thread in such
        intervals, on its main loop's pCPU and on another; ``intervals_with`` and
        ``intervals_apart``: how many intervals each mean has; ``run_on_main_loop_cpu``:
        the part of the vCPUs' run time in those intervals that was on the main
        loop's pCPU.

    Raises
    ------
    ScenarioError
        For a run whose readings kept no CPUs.

    Examples
    --------
    >>> from kvmlab.cpu.agreement import recorded_repetitions
    >>> hold = main_loop_hold(recorded_repetitions("cpu-overcommit-3x")[-1])
    >>> hold["with_main_loop"] > hold["apart"]
    True
    """
    found: dict[str, list[float]] = {"with": [], "apart": []}
    no_readings = ("main_loop_hold needs per-thread readings: a measured run, or one of the "
                   "linux model")
    for vm, rows in _threads(result, no_readings).items():
        main = next((r for r in rows if r.get("role") == "main-loop"), None)
        vcpus = _vcpu_rows(rows)
        if main is None or not main.get("cpu_series") or not all(
                v.get("cpu_series") and v.get("run_series") for v in vcpus):
            raise ScenarioError(f"the readings of {vm!r} kept no CPUs (a recording made "
                                "before cpu_series was kept); record it again")
        at = main["cpu_series"]
        for k in range(len(at) - 1):
            if at[k] < 0 or at[k] != at[k + 1]:
                continue
            for v in vcpus:
                cpu, run = v["cpu_series"], v["run_series"]
                if k < len(run) and k + 1 < len(cpu) and 0 <= cpu[k] == cpu[k + 1]:
                    found["with" if cpu[k] == at[k] else "apart"].append(run[k])
    ran = sum(found["with"]) + sum(found["apart"])
    return {"with_main_loop": round(statistics.fmean(found["with"]), 3) if found["with"] else None,
            "apart": round(statistics.fmean(found["apart"]), 3) if found["apart"] else None,
            "intervals_with": len(found["with"]), "intervals_apart": len(found["apart"]),
            "run_on_main_loop_cpu": round(sum(found["with"]) / ran, 3) if ran else None}


def plot_vm_series(series: list[VmSeries], titles: list[str] | None = None,
                   axes: Any = None) -> Any:
    """One panel per series: each VM's run share per vCPU over time, as lines.

    Parameters
    ----------
    series : list of VmSeries
    titles : list of str, optional
        One per panel (default: the source).
    axes : sequence of matplotlib Axes, optional
        One per series; new ones (stacked, sharing the time axis) otherwise.

    Returns
    -------
    list of matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> s = VmSeries(0.5, {"vm1": (0.5, 0.0), "vm2": (0.5, 1.0)}, "measured")
    >>> [ax.get_title() for ax in plot_vm_series([s], ["real host"])]
    ['real host']
    """
    import matplotlib.pyplot as plt

    if not series:
        raise ScenarioError("plot_vm_series needs at least one series")
    if titles is not None and len(titles) != len(series):
        raise ScenarioError(f"{len(titles)} titles for {len(series)} series")
    if axes is None:
        _fig, made = plt.subplots(len(series), 1, figsize=(8, 1.9 * len(series) + 0.6),
                                  sharex=True, squeeze=False, layout="constrained")
        axes = [row[0] for row in made]
    highest = max((x for s in series for v in s.shares.values() for x in v), default=1.0)
    top = min(1.02, max(0.6, highest + 0.15))          # room for the legend above the lines
    for k, (s, ax) in enumerate(zip(series, axes, strict=True)):
        for vm, shares in s.shares.items():
            times = [s.step_s * (i + 0.5) for i in range(len(shares))]
            ax.plot(times, shares, marker=".", label=vm)
        ax.axhspan(0, STARVED_BELOW, color="0.85", zorder=0)
        ax.set_ylim(-0.02, top)
        ax.set_ylabel("run share\nper vCPU")
        ax.set_title(titles[k] if titles is not None else s.source)
        ax.legend(loc="upper right", fontsize="small", ncol=len(s.shares))
    axes[-1].set_xlabel("time in the measured window (s); grey: starved")
    return list(axes)
