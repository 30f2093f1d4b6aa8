"""An interactive explorer: move sliders, watch vCPUs share (or fight over) pCPUs.

A thin ``ipywidgets.interactive_output`` layer over pure functions:
:func:`explore` simulates, :func:`render` draws, and
:func:`~kvmlab.cpu.result.ready_rows` judges CPU ready %. Only :func:`explorer`
needs ipywidgets.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> result = explore(pcpus=2, vms=2, vcpus_per_vm=2, load=1.0, scheduler="fair",
...                  duration_s=0.5)
>>> fig, table = render(result)
>>> len(fig.axes) >= 2, [row.verdict for row in table]
(True, ['problem', 'problem'])
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.plot import gantt, plot_shares
from kvmlab.cpu.result import CpuResult, ready_rows
from kvmlab.cpu.scenario import busy_scenario
from kvmlab.display import Table
from kvmlab.validate import whole_number

GANTT_S = 0.1
LIMITS = {"pcpus": (1, 8), "vms": (1, 6), "vcpus_per_vm": (1, 4)}


def explore(pcpus: int, vms: int, vcpus_per_vm: int, load: float, scheduler: str,
            duration_s: float = 2.0, seed: int = 0) -> CpuResult:
    """Simulate ``vms`` alike VMs of ``vcpus_per_vm`` vCPUs each on ``pcpus`` pCPUs.

    This is what the explorer widget (:func:`explorer`) runs each time a slider moves.

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
    vms = whole_number(vms, "vms", low=1)
    scenario = busy_scenario(pcpus, vms * vcpus_per_vm, vcpus_per_vm, load=load,
                             duration_s=duration_s,
                             name=f"{vms}x{vcpus_per_vm}-vcpus-on-{pcpus}")
    return simulate(scenario, seed=seed, scheduler=scheduler)


def summary(result: CpuResult) -> str:
    """One line about a result: vCPUs, pCPUs, overcommit, host utilisation.

    Examples
    --------
    >>> r = explore(2, 3, 2, 1.0, "fair", duration_s=0.5)
    >>> summary(r)
    '6 vCPUs on 2 pCPUs (overcommit 3x), fair scheduler: pCPUs busy 100% of the time'
    """
    s = result.scenario
    return (f"{s.total_vcpus} vCPUs on {s.pcpus} pCPUs (overcommit {s.overcommit:.3g}x), "
            f"{result.provenance.get('scheduler', 'fair')} scheduler: pCPUs busy "
            f"{result.host_utilisation():.0%} of the time")


def render(result: CpuResult, gantt_s: float = GANTT_S) -> tuple[Figure, Table]:
    """The explorer's view of a result: a Gantt chart of the first ``gantt_s`` seconds
    above the run/wait share bars, and a table of CPU ready % per VM.

    Returns
    -------
    (Figure, Table)
        The figure (made with pyplot; close it when done) and the per-VM table.
    """
    pcpus = result.scenario.pcpus
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 1.6 + 0.45 * pcpus + 3.2), layout="constrained",
        height_ratios=[0.6 + 0.45 * pcpus, 3.0])
    gantt(result, ax=top, until_s=gantt_s)
    plot_shares(result, ax=bottom)
    bottom.set_title("over the whole run", loc="left", fontsize=10)
    rows = ready_rows(result)
    return fig, Table(rows, title="CPU ready % per vCPU (mean per VM): below 5 % fine, "
                                  "5-10 % watch, 10 % and more a problem")


def explorer(*, duration_s: float = 2.0, seed: int = 0, gantt_s: float = GANTT_S) -> Any:
    """Sliders for pCPUs, VMs, vCPUs per VM and load, and a scheduler menu.

    Every change re-runs :func:`explore` and shows the Gantt
    chart, the share bars and a CPU ready table.

    Parameters
    ----------
    duration_s : float
        Simulated seconds per run (short keeps the sliders snappy).
    seed : int
    gantt_s : float
        How much of the run the Gantt chart shows.

    Returns
    -------
    ipywidgets.VBox
        The controls (``box.children[0]``) above the output (``box.children[1]``).
    """
    import ipywidgets as w
    from IPython.display import display

    style = {"description_width": "initial"}
    layout = w.Layout(width="260px")
    controls = {
        "pcpus": w.IntSlider(2, *LIMITS["pcpus"], description="pCPUs", style=style,
                             layout=layout),
        "vms": w.IntSlider(2, *LIMITS["vms"], description="VMs", style=style, layout=layout),
        "vcpus_per_vm": w.IntSlider(2, *LIMITS["vcpus_per_vm"], description="vCPUs per VM",
                                    style=style, layout=layout),
        "load": w.FloatSlider(1.0, min=0.0, max=1.0, step=0.05, description="load (busy)",
                              readout_format=".0%", style=style, layout=layout),
        "scheduler": w.Dropdown(options=list(SCHEDULERS), value="fair",
                                description="scheduler", style=style, layout=layout),
    }

    def show(**values: Any) -> None:
        result = explore(**values, duration_s=duration_s, seed=seed)
        fig, table = render(result, gantt_s)
        print(summary(result))
        display(fig)
        plt.close(fig)
        display(table)

    out = w.interactive_output(show, controls)
    names = list(controls)
    box = w.HBox([w.VBox([controls[n] for n in names[:3]]),
                  w.VBox([controls[n] for n in names[3:]])])
    return w.VBox([box, out])


__all__ = ["explore", "explorer", "ready_rows", "render", "summary"]
