"""Many CPU runs at once: overcommit sweeps, explorer runs, and recorded comparisons.

The functions here are pure (no plotting, no widgets): they build scenarios,
simulate them, and boil the results down to plain dicts and rows that
:mod:`kvmlab.cpu.plot` draws and :mod:`kvmlab.cpu.widgets` shows.

A *point* is a dict with at least ``overcommit`` (vCPUs per pCPU),
``wait_share`` (the mean wait share of the vCPUs, 0..1) and ``source``
(``'simulated'`` or ``'measured'``); :func:`kvmlab.cpu.plot.plot_wait_vs_overcommit`
draws a list of them.

Examples
--------
Busy VMs on 2 pCPUs: no waiting up to one vCPU per pCPU, then each vCPU waits
``1 - 1/ratio`` of the time.

>>> points = overcommit_sweep(ratios=(1, 2, 3), duration_s=1)
>>> [(p["overcommit"], round(p["wait_share"], 2)) for p in points]
[(1.0, 0.0), (2.0, 0.5), (3.0, 0.67)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.result import Comparison, CpuResult, compare, ready_verdict
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.data import recorded_names, scenario_names
from kvmlab.errors import ScenarioError

#: Recordings whose points belong on the wait-versus-overcommit chart (all VMs busy).
OVERCOMMIT_RECORDINGS = ("cpu-no-overcommit", "cpu-overcommit-*", "cpu-seed-example")


def busy_scenario(pcpus: int, total_vcpus: int, vcpus_per_vm: int = 2, *, load: float = 1.0,
                  duration_s: float = 2.0, name: str = "") -> CpuScenario:
    """A host with ``pcpus`` pCPUs and ``total_vcpus`` vCPUs in VMs of ``vcpus_per_vm``.

    The VMs are named ``vm1``, ``vm2``, ...; the last one is smaller when
    ``total_vcpus`` is not a multiple of ``vcpus_per_vm``. Every vCPU has the same
    ``load`` (1.0 is a busy loop).

    Examples
    --------
    >>> s = busy_scenario(2, 5, 2)
    >>> [(vm.name, vm.vcpus) for vm in s.vms], s.overcommit
    ([('vm1', 2), ('vm2', 2), ('vm3', 1)], 2.5)
    """
    if isinstance(total_vcpus, bool) or not isinstance(total_vcpus, int) or total_vcpus < 1:
        raise ScenarioError(f"a scenario needs at least one vCPU, not {total_vcpus!r}")
    if isinstance(vcpus_per_vm, bool) or not isinstance(vcpus_per_vm, int) or vcpus_per_vm < 1:
        raise ScenarioError(f"vcpus_per_vm must be a whole number of at least 1, "
                            f"not {vcpus_per_vm!r}")
    sizes = [vcpus_per_vm] * (total_vcpus // vcpus_per_vm)
    if total_vcpus % vcpus_per_vm:
        sizes.append(total_vcpus % vcpus_per_vm)
    vms = [{"name": f"vm{i + 1}", "vcpus": n, "load": load} for i, n in enumerate(sizes)]
    return CpuScenario.from_dict({"name": name, "pcpus": pcpus, "duration_s": duration_s,
                                  "vms": vms})


def mean_shares(result: CpuResult) -> dict[str, float]:
    """The mean run share, wait share and CPU ready % of the vCPUs of a result.

    Examples
    --------
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> mean_shares(r)
    {'run_share': 0.5, 'wait_share': 0.5, 'ready_pct': 50.0}
    """
    n = len(result.vcpus)
    run = sum(v.run_share for v in result.vcpus) / n
    wait = sum(v.wait_share for v in result.vcpus) / n
    return {"run_share": round(run, 6), "wait_share": round(wait, 6),
            "ready_pct": round(100 * wait, 4)}


def result_point(result: CpuResult, name: str = "") -> dict[str, Any]:
    """One point of a wait-versus-overcommit chart, from any result.

    Examples
    --------
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


def overcommit_sweep(pcpus: int = 2, ratios: Sequence[float] = (0.5, 1, 1.5, 2, 2.5, 3),
                     vcpus_per_vm: int = 2, duration_s: float = 2.0, seed: int = 0,
                     scheduler: str = "fair", *, load: float = 1.0,
                     repeats: int = 1) -> list[dict[str, Any]]:
    """Simulate VMs at increasing overcommit ratios and measure how long vCPUs wait.

    For each ratio, the scenario has ``round(ratio * pcpus)`` vCPUs, in VMs of
    ``vcpus_per_vm`` (see :func:`busy_scenario`), all with the same ``load``.

    Parameters
    ----------
    pcpus : int
        Physical CPUs of the host.
    ratios : sequence of float
        vCPUs per pCPU to try. ``ratio * pcpus`` is rounded to whole vCPUs, so
        the ``overcommit`` of a point is the ratio really simulated.
    vcpus_per_vm : int
        vCPUs of each VM (the last VM may have fewer).
    duration_s : float
        Simulated seconds per ratio.
    seed : int
        Seed of every simulation.
    scheduler : {'fair', 'round-robin'}
    load : float
        The busy fraction of every vCPU (1.0: a busy loop, the worst case).
    repeats : int
        Simulate each ratio with seeds ``seed .. seed + repeats - 1`` and average
        the shares (partly busy vCPUs depend on how their busy phases happen to
        line up, so one short run is noisy).

    Returns
    -------
    list of dict
        One point per ratio (see :func:`result_point`), plus ``ratio``,
        ``scheduler``, ``seed`` and ``repeats``.

    Examples
    --------
    >>> [p["vcpus"] for p in overcommit_sweep(ratios=(0.5, 1.5), duration_s=0.5)]
    [1, 3]
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ScenarioError(f"repeats must be a whole number of at least 1, not {repeats!r}")
    points = []
    for ratio in ratios:
        total = round(ratio * pcpus)
        if total < 1:
            raise ScenarioError(f"overcommit ratio {ratio:g} on {pcpus} pCPU(s) gives no "
                                "vCPU at all; use a larger ratio")
        scenario = busy_scenario(pcpus, total, vcpus_per_vm, load=load, duration_s=duration_s,
                                 name=f"sweep-{total}-on-{pcpus}")
        runs = [result_point(simulate(scenario, seed=seed + k, scheduler=scheduler,
                                      record_timeline=False)) for k in range(repeats)]
        point = runs[0]
        for key in ("run_share", "wait_share"):
            point[key] = round(sum(r[key] for r in runs) / repeats, 6)
        point["ready_pct"] = round(100 * point["wait_share"], 4)
        point["verdict"] = ready_verdict(point["ready_pct"])
        points.append({**point, "ratio": ratio, "scheduler": scheduler, "seed": seed,
                       "repeats": repeats})
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
    from kvmlab.cpu import recorded_result

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
    scheduler : {'fair', 'round-robin'}

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
    from kvmlab.cpu import recorded_result

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

    A host that puts each VM in a cgroup of its own should fit ``'fair'`` best; a
    host that does not (no per-VM cgroups) looks more like ``'round-robin'``, which
    treats every thread alike.

    Examples
    --------
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> scheduler_fit(r)
    {'fair': 0.0, 'round-robin': 0.0}
    """
    return {name: compare(simulate(measured.scenario, seed=seed, scheduler=name,
                                   record_timeline=False), measured).max_abs_error
            for name in SCHEDULERS}


@dataclass(frozen=True)
class ComparisonRow:
    """One line of a summary of comparisons (see :func:`comparison_rows`)."""

    scenario: str
    overcommit: float
    simulated_wait: float
    measured_wait: float
    largest_error: float
    accelerator: str


def comparison_rows(comparisons: dict[str, Comparison]) -> list[ComparisonRow]:
    """One summary row per comparison: mean wait shares and the largest error.

    Examples
    --------
    >>> r = simulate(busy_scenario(2, 4), record_timeline=False)
    >>> comparison_rows({"same": compare(r, r)})[0].largest_error
    0.0
    """
    rows = []
    for name, c in comparisons.items():
        rows.append(ComparisonRow(
            name, c.simulated.scenario.overcommit,
            round(mean_shares(c.simulated)["wait_share"], 3),
            round(mean_shares(c.measured)["wait_share"], 3),
            round(c.max_abs_error, 3), str(c.measured.provenance.get("accelerator", "-"))))
    return rows


def explore(pcpus: int, vms: int, vcpus_per_vm: int, load: float, scheduler: str,
            duration_s: float = 2.0, seed: int = 0) -> CpuResult:
    """Simulate ``vms`` alike VMs of ``vcpus_per_vm`` vCPUs each on ``pcpus`` pCPUs.

    This is what the explorer widget (:func:`kvmlab.cpu.widgets.explorer`) runs
    each time a slider moves.

    Parameters
    ----------
    pcpus, vms, vcpus_per_vm : int
    load : float
        The busy fraction of every vCPU, 0..1.
    scheduler : {'fair', 'round-robin'}
    duration_s : float
    seed : int

    Returns
    -------
    CpuResult
        With a timeline, for a Gantt chart.

    Examples
    --------
    >>> r = explore(pcpus=2, vms=3, vcpus_per_vm=1, load=1.0, scheduler="fair", duration_s=1)
    >>> [round(v.run_share, 2) for v in r.vcpus]
    [0.67, 0.67, 0.67]
    """
    if isinstance(vms, bool) or not isinstance(vms, int) or vms < 1:
        raise ScenarioError(f"vms must be a whole number of at least 1, not {vms!r}")
    scenario = busy_scenario(pcpus, vms * vcpus_per_vm, vcpus_per_vm, load=load,
                             duration_s=duration_s,
                             name=f"{vms}x{vcpus_per_vm}-vcpus-on-{pcpus}")
    return simulate(scenario, seed=seed, scheduler=scheduler)


@dataclass(frozen=True)
class ReadyRow:
    """Per VM: mean run share and CPU ready % of its vCPUs, and the rule-of-thumb verdict."""

    vm: str
    vcpus: int
    run_share: float
    ready_pct: float
    verdict: str


def ready_rows(result: CpuResult) -> list[ReadyRow]:
    """Per VM, the mean CPU ready % of its vCPUs judged by the 5 % / 10 % rules of thumb.

    Examples
    --------
    >>> r = simulate(busy_scenario(2, 6, 3), record_timeline=False)
    >>> [(row.vm, row.ready_pct, row.verdict) for row in ready_rows(r)]
    [('vm1', 66.6667, 'problem'), ('vm2', 66.6667, 'problem')]
    """
    rows = []
    for spec in result.scenario.vms:
        stats = [v for v in result.vcpus if v.vm == spec.name]
        run = sum(v.run_share for v in stats) / len(stats)
        ready = round(sum(v.ready_pct for v in stats) / len(stats), 4)
        rows.append(ReadyRow(spec.name, len(stats), round(run, 4), ready, ready_verdict(ready)))
    return rows
