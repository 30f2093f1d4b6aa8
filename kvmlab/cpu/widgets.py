"""An interactive explorer: move sliders, watch vCPUs share (or fight over) pCPUs.

A thin :mod:`kvmlab.explorer` layer over pure functions: :func:`explore` simulates (and
keeps what it simulated, so that going back to a setting is instant), :func:`draw` draws
a result into a figure, :func:`render` into a new one, and
:func:`~kvmlab.cpu.result.ready_rows` judges CPU ready %. Only :func:`explorer` needs
ipywidgets.

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

from functools import lru_cache
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kvmlab.cpu.model import SCHEDULERS, simulate
from kvmlab.cpu.plot import gantt, plot_shares
from kvmlab.cpu.result import CpuResult, ready_rows
from kvmlab.cpu.scenario import busy_scenario
from kvmlab.display import Table
from kvmlab.errors import ScenarioError
from kvmlab.explorer import explorer as make_explorer
from kvmlab.validate import real_number, text, whole_number

GANTT_S = 0.1
DURATION_S = 0.5
"""Simulated seconds per explorer run: the share bars of busy vCPUs settle within it, and
the ``linux`` scheduler's model answers in about half a second at the largest settings."""
FIGSIZE = (10.0, 6.0)
"""The explorer's figure (inches): one size for every setting, so the page never jumps."""
LIMITS = {"pcpus": (1, 8), "vms": (1, 6), "vcpus_per_vm": (1, 4)}
"""The sliders' ranges, which :func:`explore` keeps to."""
MAX_EXPLORE_S = 3.0
"""The longest run :func:`explore` simulates: at the largest slider settings (8 pCPUs, six
VMs of 4 vCPUs) the ``linux`` scheduler's model takes about 1.1 s of CPU for it (``fair`` and
``round-robin`` 0.1 s)."""
MAX_GANTT_SLICES = 1000
"""The most time slices :func:`render` draws in its Gantt chart (one collection of
rectangles per vCPU, so slices cost little; the bound keeps the chart readable)."""
MAX_RENDER_CPUS = 64
"""The most pCPUs (rows of the Gantt chart) and vCPUs (bars) :func:`render` draws."""


def explore(pcpus: int, vms: int, vcpus_per_vm: int, load: float, scheduler: str,
            duration_s: float = DURATION_S, seed: int = 0) -> CpuResult:
    """Simulate ``vms`` alike VMs of ``vcpus_per_vm`` vCPUs each on ``pcpus`` pCPUs.

    This is what the explorer widget (:func:`explorer`) runs each time a slider moves.
    The last results are kept (the model is deterministic for a seed): asking for a
    setting again returns the same result at once.

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

    Raises
    ------
    ScenarioError
        For a value outside its slider's range (:data:`LIMITS`), a load outside 0..1, an
        unknown scheduler, or a duration above :data:`MAX_EXPLORE_S`.

    Examples
    --------
    >>> r = explore(pcpus=2, vms=3, vcpus_per_vm=1, load=1.0, scheduler="fair", duration_s=1)
    >>> [round(v.run_share, 2) for v in r.vcpus]
    [0.67, 0.67, 0.67]
    >>> explore(pcpus=64, vms=1, vcpus_per_vm=1, load=1.0, scheduler="fair")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: pcpus must be from 1 to 8, not 64
    """
    pcpus, vms, vcpus_per_vm = (whole_number(value, name, low=LIMITS[name][0],
                                             high=LIMITS[name][1])
                                for name, value in (("pcpus", pcpus), ("vms", vms),
                                                    ("vcpus_per_vm", vcpus_per_vm)))
    load = real_number(load, "load", low=0, high=1)
    if text(scheduler, "scheduler") not in SCHEDULERS:
        raise ScenarioError(f"scheduler must be one of {list(SCHEDULERS)}, not {scheduler!r}")
    duration_s = real_number(duration_s, "duration_s", high=MAX_EXPLORE_S, unit="s")
    seed = whole_number(seed, "seed")
    return _simulated(pcpus, vms, vcpus_per_vm, float(load), scheduler, float(duration_s),
                      seed)


@lru_cache(maxsize=256)
def _simulated(pcpus: int, vms: int, vcpus_per_vm: int, load: float, scheduler: str,
               duration_s: float, seed: int) -> CpuResult:
    """:func:`explore`'s simulation of checked values (a result is frozen: kept as is)."""
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
    s = _result(result).scenario
    return (f"{s.total_vcpus} vCPUs on {s.pcpus} pCPUs (overcommit {s.overcommit:.3g}x), "
            f"{result.provenance.get('scheduler', 'fair')} scheduler: pCPUs busy "
            f"{result.host_utilisation():.0%} of the time")


def render(result: CpuResult, gantt_s: float = GANTT_S) -> tuple[Figure, Table]:
    """The explorer's view of a result in a new figure: :func:`draw` into a pyplot figure.

    Returns
    -------
    (Figure, Table)
        The figure (made with pyplot; close it when done) and the per-VM table.

    Raises
    ------
    ScenarioError
        As :func:`draw` (no figure is left open then).

    Examples
    --------
    >>> r = explore(2, 3, 2, 1.0, "fair", duration_s=0.5)
    >>> render(r, gantt_s=0)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: gantt_s must be positive, not 0
    """
    _checked(result, gantt_s)
    fig = plt.figure(figsize=FIGSIZE)
    try:
        table = draw(fig, result, gantt_s)
    except BaseException:
        plt.close(fig)
        raise
    return fig, table


def _checked(result: Any, gantt_s: Any) -> tuple[CpuResult, float, bool]:
    """The result and Gantt window :func:`draw` can draw, and whether no vCPU ever ran."""
    result = _result(result)
    gantt_s = real_number(gantt_s, "gantt_s", unit="s")
    if gantt_s <= 0:
        raise ScenarioError(f"gantt_s must be positive, not {gantt_s:g}")
    most = max(result.scenario.pcpus, result.scenario.total_vcpus)
    if most > MAX_RENDER_CPUS:
        raise ScenarioError(f"the explorer draws at most {MAX_RENDER_CPUS} pCPUs and vCPUs, "
                            f"not {most}; plot a larger result with kvmlab.cpu.plot_shares")
    drawn = sum(1 for piece in result.timeline if piece.start_s < gantt_s)
    if drawn > MAX_GANTT_SLICES:
        raise ScenarioError(f"the first {gantt_s:g} s hold {drawn} time slices; the Gantt "
                            f"chart draws at most {MAX_GANTT_SLICES}: choose a shorter gantt_s")
    idle = not result.timeline and all(v.run_share == 0 for v in result.vcpus)
    if not result.timeline and not idle:
        raise ScenarioError("this result has no timeline to draw (a measured result, or one "
                            "simulated with record_timeline=False); use explore() or "
                            "simulate(scenario) for a Gantt chart")
    return result, gantt_s, idle


def _inches(fig: Figure, left: float, bottom: float, width: float, height: float) -> Any:
    """Axes placed in inches from the figure's bottom-left corner (no layout engine)."""
    w, h = fig.get_size_inches()
    return fig.add_axes((left / w, bottom / h, width / w, height / h))


def draw(fig: Figure, result: CpuResult, gantt_s: float = GANTT_S) -> Table:
    """Draw the explorer's view of a result into ``fig`` (cleared first): a Gantt chart of
    the first ``gantt_s`` seconds above the run/wait share bars; return the table of CPU
    ready % per VM.

    The axes are placed by hand for a figure of :data:`FIGSIZE` (no layout engine: it
    would cost more than the drawing), the compact forms of
    :func:`~kvmlab.cpu.plot.gantt` and :func:`~kvmlab.cpu.plot.plot_shares`.

    Raises
    ------
    ScenarioError
        If ``result`` is not a CPU result with a timeline and at most
        :data:`MAX_RENDER_CPUS` pCPUs and vCPUs, or ``gantt_s`` is not a positive number
        of seconds whose Gantt chart holds at most :data:`MAX_GANTT_SLICES` slices.

    Examples
    --------
    >>> from kvmlab.figures import MIN_TEXT_PT, new_figure, smallest_text_pt
    >>> fig = new_figure(FIGSIZE, layout=None)
    >>> table = draw(fig, explore(2, 3, 2, 1.0, "fair"))
    >>> len(fig.axes), [row.vm for row in table], smallest_text_pt(fig) >= MIN_TEXT_PT
    (2, ['vm1', 'vm2', 'vm3'], True)
    """
    result, gantt_s, idle = _checked(result, gantt_s)
    fig.clear()
    width, height = fig.get_size_inches()
    plot_w = width - 0.85 - 2.0                    # room for the legends on the right
    room = height - 0.4 - 0.6 - 0.4 - 0.45         # titles, the time axis, the VM names
    top = _inches(fig, 0.85, height - 0.4 - 0.6 * room, plot_w, 0.6 * room)
    bottom = _inches(fig, 0.85, 0.45, plot_w, 0.4 * room)
    if idle:                              # load 0: no vCPU ever ran, nothing to draw
        top.set_axis_off()
        top.text(0.5, 0.5, "no vCPU ran (load 0): the pCPUs stayed idle", ha="center",
                 va="center", transform=top.transAxes)
    else:
        gantt(result, ax=top, until_s=gantt_s, compact=True)
    plot_shares(result, ax=bottom, compact=True)
    bottom.set_title("the whole run: each vCPU's run and wait share", loc="left",
                     fontsize=10)
    return Table(ready_rows(result), title="CPU ready % per vCPU (mean per VM): below 5 % "
                                           "fine, 5-10 % watch, 10 % and more a problem")


def _result(result: Any) -> CpuResult:
    if not isinstance(result, CpuResult):
        raise ScenarioError(f"a CPU result (from explore or simulate) is needed, not "
                            f"{type(result).__name__}")
    return result


def explorer(*, duration_s: float = DURATION_S, seed: int = 0,
             gantt_s: float = GANTT_S) -> Any:
    """Sliders for pCPUs, VMs, vCPUs per VM and load, and a scheduler menu.

    Every change runs :func:`explore` (at once for a setting seen before) and shows the
    Gantt chart, the share bars and a CPU ready table (:func:`draw`, through
    :func:`kvmlab.explorer.explorer`: each change replaces one image).

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
        The controls (``box.children[0]``), the summary line, the figure (an
        ``ipywidgets.Image``) and the table; ``box.explorer`` is the
        :class:`kvmlab.explorer.Explorer`.
    """
    import ipywidgets as w

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

    def show(fig: Figure, **values: Any) -> list[Any]:
        result = explore(**values, duration_s=duration_s, seed=seed)
        table = draw(fig, result, gantt_s)
        return [summary(result), table]

    def arrange(shown: Any) -> Any:
        shown = list(shown)
        return w.HBox([w.VBox(shown[:3]), w.VBox(shown[3:])])

    return make_explorer(controls, show, figsize=FIGSIZE, layout=None, arrange=arrange)


__all__ = ["DURATION_S", "FIGSIZE", "draw", "explore", "explorer", "ready_rows", "render",
           "summary"]
