"""Rate sweeps of the starvation reproducer: recorded, simulated on the ``linux`` model, drawn.

:func:`kvmlab.cpu.repro.rate_sweep` measures the reproducer on this host. Its
processes are simple enough to put into the model exactly: per VM, busy "vCPU"
processes that never sleep, and one "emulator" process that sleeps in a loop and
wakes ``rate`` times a second for a few microseconds of work. So a sweep can be
drawn twice, measured and simulated, on one figure (:func:`plot_rate_sweep`);
:func:`recorded_sweep` is the measured sweep shipped with kvmlab.

Examples
--------
>>> rows = simulate_sweep([0, 2000], ["none", "nested"], window_s=1, seeds=2)
>>> [(r["layout"], r["rate"], r["spread"] < 0.1) for r in rows]
[('none', 0.0, True), ('none', 2000.0, True), ('nested', 0.0, True), ('nested', 2000.0, False)]
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kvmlab.cpu.agreement import spread
from kvmlab.cpu.eevdf import Kernel
from kvmlab.cpu.linux import LAYOUTS, QemuThreads, simulate_linux
from kvmlab.cpu.probe import cpu_controller
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.data import load_recorded
from kvmlab.errors import ExperimentFailed, ScenarioError
from kvmlab.progress import ProgressArg, progress_bar
from kvmlab.validate import list_of, real_number, whole_number

__all__ = ["EMULATOR_RUN_US", "RECORDED_SWEEP", "can_measure", "plot_rate_sweep",
           "recorded_sweep", "simulate_sweep"]

RECORDED_SWEEP = "repro-cpu-sweep"
"""The recording of a measured sweep (``kvmlab cpu repro --layout none,flat,nested ...``)."""
EMULATOR_RUN_US = 15.0
"""CPU time of one wake-up of the reproducer's emulator process (a Python sleep loop)."""


def simulate_sweep(rates: Sequence[float], layouts: Sequence[str] = LAYOUTS, *,
                   vms: int = 3, vcpus: int = 2, pcpus: int = 2, window_s: float = 5.0,
                   seeds: int = 3, kernel: Kernel | None = None,
                   progress: ProgressArg = None) -> list[dict[str, Any]]:
    """The reproducer's rate sweep on the ``linux`` model: rows like :func:`rate_sweep`'s.

    Parameters
    ----------
    rates : sequence of float
        Emulator wake-ups per second (0: no emulator).
    layouts : sequence of {'none', 'flat', 'nested'}
    vms, vcpus, pcpus : int
        VMs, busy processes per VM, and CPUs.
    window_s : float
        Simulated seconds per run (after one second of warm-up).
    seeds : int
        Runs per point, seeds ``0 .. seeds-1`` (the measured sweep's repetitions).
    kernel : Kernel, optional
        ``Kernel(reweight_places=False)`` for a corrected kernel.
    progress : None, bool or a tqdm-like bar
        One step per run.

    Returns
    -------
    list of dict
        ``layout``, ``rate``, ``spread`` (mean), ``spread_min``, ``spread_max``,
        ``spreads``, ``fair_share`` and ``source`` ``'simulated'``.
    """
    rates = [real_number(r, "a rate", low=0, high=20_000) for r in list_of(rates, "rates",
                                                                             low=1, high=100)]
    layouts = list_of(layouts, "layouts", low=1, high=len(LAYOUTS))
    seeds = whole_number(seeds, "seeds", low=1, high=100)
    scenario = CpuScenario.from_dict({
        "pcpus": whole_number(pcpus, "pcpus", low=1, high=64),
        "duration_s": real_number(window_s, "window_s", low=0.1, high=120, unit="s"),
        "vms": [{"name": f"vm{i + 1}", "vcpus": whole_number(vcpus, "vcpus", low=1, high=8)}
                for i in range(whole_number(vms, "vms", low=1, high=16))]})
    rows = []
    with progress_bar(progress, total=len(rates) * len(layouts) * seeds,
                      desc="simulated rate sweep", unit="run") as bar:
        for layout in layouts:
            for rate in rates:
                # plain processes: a clock wakes the "emulator", and no lock ties it to
                # the busy ones
                qemu = QemuThreads(main_loop_wakes_per_s=rate, main_loop_run_us=EMULATOR_RUN_US,
                                   vcpu_sleeps_per_cpu_s=0, lock_contention=0, woken_by_vcpu=0)
                spreads = []
                for seed in range(seeds):
                    result = simulate_linux(scenario, seed=seed, layout=layout, qemu=qemu,
                                            kernel=kernel)
                    spreads.append(spread(result))
                    bar.update(1)
                rows.append({"layout": layout, "rate": rate, "source": "simulated",
                             "spread": round(statistics.fmean(spreads), 4),
                             "spread_min": min(spreads), "spread_max": max(spreads),
                             "spreads": spreads,
                             "fair_share": round(scenario.pcpus / scenario.total_vcpus, 4)})
    return rows


def can_measure() -> bool:
    """Whether this process may run the reproducer here (root and a ``cpu`` controller).

    >>> isinstance(can_measure(), bool)
    True
    """
    try:
        cpu_controller()
    except ExperimentFailed:
        return False
    return hasattr(os, "geteuid") and os.geteuid() == 0


def recorded_sweep(name: str = RECORDED_SWEEP) -> list[dict[str, Any]]:
    """The rows of a recorded (measured) rate sweep, each with ``source`` ``'measured'``.

    >>> rows = recorded_sweep()
    >>> sorted({r["layout"] for r in rows}), rows[0]["source"]
    (['flat', 'nested', 'none'], 'measured')
    """
    data = load_recorded(name)
    rows = data.get("rows") if isinstance(data, Mapping) else None
    if not isinstance(rows, list) or not rows:
        raise ScenarioError(f"recording {name!r} is not a rate sweep (no 'rows')")
    return [{**row, "source": "measured"} for row in rows]


def plot_rate_sweep(table: Sequence[Mapping[str, Any]], ax: Any = None, *,
                    linestyle: str = "-", suffix: str = "") -> Any:
    """Spread against emulator wake-up rate, one line per layout; returns the Axes.

    Draw a measured and a simulated sweep on one Axes with ``ax=`` and another
    ``linestyle`` and ``suffix`` (added to each layout's label) for the second.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> rows = [{"layout": "none", "rate": r, "spread": 0.02, "spread_min": 0.01,
    ...          "spread_max": 0.03} for r in (0, 1000)]
    >>> ax = plot_rate_sweep(rows + [{"layout": "nested", "rate": 1000, "spread": 0.6}])
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['none', 'nested']
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for layout in dict.fromkeys(row["layout"] for row in table):
        rows = sorted((r for r in table if r["layout"] == layout), key=lambda r: r["rate"])
        ys = [r["spread"] for r in rows]
        errors = [[max(0.0, y - r.get("spread_min", y)) for y, r in zip(ys, rows, strict=True)],
                  [max(0.0, r.get("spread_max", y) - y) for y, r in zip(ys, rows, strict=True)]]
        ax.errorbar([r["rate"] for r in rows], ys, yerr=errors, marker="o", capsize=3,
                    label=layout + suffix, linestyle=linestyle)
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlabel("emulator wake-ups per second")
    ax.set_ylabel("spread of the VMs' vCPU run shares")
    ax.set_ylim(bottom=0)
    ax.set_title("Unfairness between VMs against the emulator's wake-ups")
    ax.legend(title="cgroup layout")
    return ax

