"""Figures of the CPU lab: each function takes results and returns a matplotlib Axes.

Pass ``ax`` to draw into a figure of your own; without it a new figure is made.
Every VM has a colour of its own and each of its vCPUs a shade of it, the same
in every figure (see :func:`vcpu_colors`).

The functions draw a :class:`~kvmlab.cpu.result.CpuResult` or a
:class:`~kvmlab.cpu.result.Comparison`; they never run a model. The result module
imports this one (for :meth:`~kvmlab.cpu.result.Comparison.plot`), so this one does
not import it back: its hints name the contract's types (:class:`kvmlab.lab.LabResult`,
:class:`kvmlab.lab.Comparison`). matplotlib is imported when a figure is drawn, so
importing the lab stays quick.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from kvmlab.cpu import load_scenario, simulate
>>> result = simulate(load_scenario("cpu-seed-example").with_duration(1))
>>> ax = gantt(result, until_s=0.05)
>>> [label.get_text() for label in ax.get_yticklabels()]
['pCPU 0', 'pCPU 1']
>>> ax = plot_shares(result)
>>> [float(round(bar.get_height(), 2)) for bar in ax.containers[0]]
[0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kvmlab.cpu.ready import READY_PROBLEM_PCT, READY_WATCH_PCT
from kvmlab.cpu.scenario import CpuScenario
from kvmlab.cpu.theory import fair_shares, flat_shares
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SIMULATED, LabResult
from kvmlab.lab import Comparison as LabComparison

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["gantt", "plot_comparison", "plot_shares", "plot_wait_vs_overcommit",
           "side_by_side", "vcpu_colors", "vcpu_label"]


_VM_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
               "tab:olive", "tab:cyan", "tab:gray", "tab:red")
_WAIT_COLOUR = "#d62728"
_SIMULATED_COLOUR = "tab:blue"
_MEASURED_COLOUR = "tab:orange"


def _shade(colour: str, t: float) -> tuple[float, float, float]:
    """Darken (t < 0) or lighten (t > 0) a colour; t in -1..1."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    if t < 0:
        return (r * (1 + t), g * (1 + t), b * (1 + t))
    return (r + (1 - r) * t, g + (1 - g) * t, b + (1 - b) * t)


def _luminance(rgb: tuple[float, float, float]) -> float:
    r, g, b = rgb
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def vcpu_colors(scenario: CpuScenario) -> dict[tuple[str, int], tuple[float, float, float]]:
    """A colour per vCPU: one hue per VM, from darker (vCPU 0) to lighter shades.

    Examples
    --------
    >>> from kvmlab.cpu import load_scenario
    >>> colours = vcpu_colors(load_scenario("cpu-seed-example"))
    >>> len(colours), colours["vm1", 0] != colours["vm1", 1] != colours["vm2", 0]
    (6, True)
    """
    out = {}
    for i, vm in enumerate(scenario.vms):
        base = _VM_COLOURS[i % len(_VM_COLOURS)]
        for j in range(vm.vcpus):
            t = -0.25 + 0.75 * j / (vm.vcpus - 1) if vm.vcpus > 1 else 0.0
            out[vm.name, j] = _shade(base, t)
    return out


def vcpu_label(vm: str, vcpu: int) -> str:
    """The label of a vCPU in every figure: ``'vm1/0'``."""
    return f"{vm}/{vcpu}"


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _fig, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _title(result: LabResult) -> str:
    name = result.scenario.name or "scenario"
    if result.source == SIMULATED:
        how = f"simulated, {result.provenance.get('scheduler', 'fair')} scheduler"
    else:
        how = f"measured on {result.provenance.get('host', 'a host')}"
        if accel := result.provenance.get("accelerator"):
            how += f" ({accel})"
    return f"{name}: {how}"


LABEL_PT = 9.0
"""The size of the text written in a Gantt chart's bars (the smallest text of the lab's
figures, :data:`kvmlab.figures.MIN_TEXT_PT`)."""


def _text_fits(ax: Axes, width_data: float, span: float, text: str, fontsize: float,
               rows: int = 1) -> str | None:
    """'h' if ``text`` fits across a bar, 'v' if only upright, None if not at all.

    A bar is ``width_data`` of the ``span`` across the axes and 0.8 of one of ``rows``
    rows high; a text fits where it is narrower than the bar and shorter than its height.
    """
    fig = ax.get_figure()
    width_in, height_in = fig.get_size_inches()
    position = ax.get_position()
    bar_pt = 72 * width_in * position.width * width_data / span
    bar_high_pt = 72 * height_in * position.height * 0.8 / max(rows, 1)
    long_pt = 0.62 * fontsize * len(text) + 2
    if bar_pt >= long_pt and bar_high_pt >= 1.3 * fontsize:
        return "h"
    if bar_pt >= 1.3 * fontsize and bar_high_pt >= long_pt:
        return "v"
    return None


def gantt(result: LabResult, ax: Axes | None = None, until_s: float | None = None,
          compact: bool = False) -> Axes:
    """Who ran where and when: one row per pCPU, one bar per time slice.

    Each vCPU's label is written once, in its widest slice where it fits at
    :data:`LABEL_PT`; the legend names every vCPU's colour. ``compact`` (what the CPU
    explorer draws, with far fewer letters to render): a bar's label is its vCPU's
    number, the legend names the VMs (each vCPU a shade of its VM's colour, vCPU 0
    the darkest), the rows are numbered, the title says only what the chart shows, and
    every slice is in one collection (its colours in the order of the VMs' vCPUs).

    Parameters
    ----------
    result : CpuResult
        A simulated result with a timeline (``simulate(..., record_timeline=True)``).
    ax : matplotlib Axes, optional
    until_s : float, optional
        Show only the first ``until_s`` seconds (default: the whole run). A slice
        that runs past it is cut at ``until_s``.

    Returns
    -------
    matplotlib Axes
        Its bars are drawn as one collection of rectangles per vCPU (``ax.collections``,
        labelled ``'vm1/0'``...; one collection draws much faster than a bar per slice).

    Raises
    ------
    ScenarioError
        If the result has no timeline: a measured result holds only totals.
    """
    if not result.timeline:
        why = ("a measured result holds only each vCPU's run and wait totals"
               if result.source == MEASURED
               else "it was simulated with record_timeline=False")
        raise ScenarioError(f"this result has no timeline to draw ({why}); use "
                            "simulate(scenario) for a Gantt chart, or plot_shares(result)")
    scenario = result.scenario
    end = result.duration_s if until_s is None else min(until_s, result.duration_s)
    if end <= 0:
        raise ScenarioError(f"until_s must be positive, not {until_s!r}")
    from matplotlib.collections import PolyCollection

    ax = _new_axes(ax, (10, 1.2 + 0.55 * scenario.pcpus))
    colours = vcpu_colors(scenario)
    fontsize = LABEL_PT
    slices: dict[tuple[str, int], list[Any]] = {}
    for piece in result.timeline:
        if piece.start_s < end:
            slices.setdefault((piece.vm, piece.vcpu), []).append(piece)
    boxes: list[list[tuple[float, float]]] = []       # compact: every slice, one collection
    faces: list[tuple[float, float, float]] = []
    for vm in scenario.vms:
        for j in range(vm.vcpus):
            mine = slices.get((vm.name, j), [])
            label = vcpu_label(vm.name, j)
            ink = "white" if _luminance(colours[vm.name, j]) < 0.6 else "black"
            widths = [min(s.end_s, end) - s.start_s for s in mine]
            mine_boxes = [[(s.start_s, s.pcpu - 0.4), (s.start_s + w, s.pcpu - 0.4),
                           (s.start_s + w, s.pcpu + 0.4), (s.start_s, s.pcpu + 0.4)]
                          for s, w in zip(mine, widths, strict=True)]
            if compact:
                boxes += mine_boxes
                faces += [colours[vm.name, j]] * len(mine_boxes)
            else:
                ax.add_collection(PolyCollection(
                    mine_boxes, facecolors=[colours[vm.name, j]], edgecolors="white",
                    linewidths=0.4, label=label), autolim=False)
            if not mine:
                continue
            widest = max(range(len(mine)), key=widths.__getitem__)     # labelled once
            s, width = mine[widest], widths[widest]
            text = str(j) if compact else label
            how = _text_fits(ax, width, end, text, fontsize, scenario.pcpus)
            if how is not None:
                ax.text(s.start_s + width / 2, s.pcpu, text, ha="center", va="center",
                        fontsize=fontsize, color=ink, rotation=0 if how == "h" else 90)
    ax.set_xlim(0, end)
    ax.set_ylim(scenario.pcpus - 0.5, -0.5)
    if compact:
        from matplotlib.patches import Patch

        ax.add_collection(PolyCollection(boxes, facecolors=faces, edgecolors="white",
                                         linewidths=0.4, label="time slices"), autolim=False)
        ax.set_yticks(range(scenario.pcpus), [str(p) for p in range(scenario.pcpus)])
        ax.set_ylabel("pCPU")
        ax.set_xlabel("time (s); a gap: an idle pCPU")
        ax.set_title(f"the first {end:g} s: which vCPU ran on which pCPU", loc="left",
                     fontsize=10)
        ax.legend(handles=[Patch(color=colours[vm.name, 0], label=vm.name)
                           for vm in scenario.vms], loc="upper left",
                  bbox_to_anchor=(1.005, 1), fontsize=fontsize, title="VM",
                  title_fontsize=fontsize, frameon=False)
        return ax
    ax.set_yticks(range(scenario.pcpus), [f"pCPU {p}" for p in range(scenario.pcpus)])
    ax.set_xlabel("time (s); a gap is an idle pCPU")
    ax.set_title(_title(result), loc="left", fontsize=10)
    n = scenario.total_vcpus
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=9, frameon=False,
              ncols=math.ceil(n / max(4, 2 * scenario.pcpus + 2)), title="vCPU",
              title_fontsize=9)
    return ax


def _expected_run(result: LabResult) -> dict[str, float] | None:
    try:
        if result.provenance.get("scheduler") == "round-robin":
            return flat_shares(result.scenario)
        return fair_shares(result.scenario)
    except ScenarioError:
        return None


def _positions(result: LabResult) -> list[float]:
    """x positions of the vCPUs, with a gap between VMs."""
    xs, x, last = [], 0.0, None
    for v in result.vcpus:
        if last is not None and v.vm != last:
            x += 0.5
        xs.append(x)
        x += 1
        last = v.vm
    return xs


def _shares_width(result: LabResult) -> float:
    """Inches for a share chart: room for each vCPU's label, plus the legend (at most
    :data:`kvmlab.figures.NOTEBOOK_WIDTH_IN`: a notebook would scale a wider one down)."""
    return min(10.0, 3.0 + 0.62 * (len(result.vcpus) + 0.5 * (len(result.scenario.vms) - 1)))


def _bars(ax: Axes, xs: Sequence[float], heights: Sequence[float],
          bottoms: Sequence[float], label: str, styles: Sequence[dict[str, Any]]) -> Any:
    """Upright bars 0.8 wide, as ``ax.bar`` draws them (a :class:`BarContainer` in
    ``ax.containers``, its rectangles in ``ax.patches``) without updating the data
    limits bar by bar, which costs more than drawing them: the caller sets the limits."""
    from matplotlib.container import BarContainer
    from matplotlib.patches import Rectangle

    patches = []
    for x, h, b, style in zip(xs, heights, bottoms, styles, strict=True):
        patch = Rectangle((x - 0.4, b), 0.8, h, label="_nolegend_", **style)
        patch.sticky_edges.y.append(b)
        ax.add_artist(patch)
        patches.append(patch)
    return ax.add_container(BarContainer(patches, label=label))


def plot_shares(result: LabResult, ax: Axes | None = None, compact: bool = False) -> Axes:
    """Stacked bars per vCPU: the share of time it ran, and on top the share it waited.

    What is left up to 100 % is time the vCPU did not want the CPU (idle). Where
    the closed form applies (busy, unpinned vCPUs), a black tick marks the run
    share it predicts.

    ``compact`` (what the CPU explorer draws): one label per VM under its group of bars
    (its vCPUs, 0 on the left, in shades of its colour) instead of one per vCPU, and
    plain wait bars instead of hatched ones; a figure with far fewer texts draws faster.

    Returns
    -------
    matplotlib Axes
        ``ax.containers[0]`` holds the run bars and ``ax.containers[1]`` the wait
        bars, one per vCPU in the result's order.
    """
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    ax = _new_axes(ax, (_shares_width(result), 3.6))
    xs = _positions(result)
    colours = vcpu_colors(result.scenario)
    runs = [v.run_share for v in result.vcpus]
    waits = [v.wait_share for v in result.vcpus]
    _bars(ax, xs, runs, [0.0] * len(xs), "running",
          [{"facecolor": colours[v.vm, v.vcpu], "edgecolor": "none"} for v in result.vcpus])
    hatch = None if compact else "///"
    _bars(ax, xs, waits, runs, "waiting for a pCPU",
          [{"facecolor": _shade(_WAIT_COLOUR, 0.55), "edgecolor": _WAIT_COLOUR,
            "hatch": hatch, "linewidth": 0.5}] * len(xs))
    handles = [Patch(color="0.45", label="running"),
               Patch(facecolor=_shade(_WAIT_COLOUR, 0.55), edgecolor=_WAIT_COLOUR, hatch=hatch,
                     label="waiting (ready)")]
    expected = _expected_run(result)
    if expected is not None:
        ys = [expected[v.vm] for v in result.vcpus]
        ticks = ax.hlines(ys, [x - 0.45 for x in xs], [x + 0.45 for x in xs], color="black",
                          linewidth=2, zorder=3, label="closed form")
        handles.append(ticks)
    many = len(xs) > 10
    ax.set_xlim(min(xs, default=0) - 0.6, max(xs, default=0) + 0.6)
    if compact:
        groups: dict[str, list[float]] = {}
        for x, v in zip(xs, result.vcpus, strict=True):
            groups.setdefault(v.vm, []).append(x)
        ax.set_xticks([sum(g) / len(g) for g in groups.values()], list(groups))
    else:
        ax.set_xticks(xs, [vcpu_label(v.vm, v.vcpu) for v in result.vcpus],
                      rotation=45 if many else 0, ha="right" if many else "center",
                      rotation_mode="anchor" if many else "default")
    ax.set_ylim(0, 1.0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("share of the time")
    ax.set_title(_title(result), loc="left", fontsize=10)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=9,
              frameon=False)
    return ax


def plot_comparison(comparison: LabComparison, ax: Axes | None = None) -> Axes:
    """Simulated against measured run and wait shares, per vCPU, with the errors written on.

    Returns
    -------
    matplotlib Axes
        Its four bar containers are labelled ``'simulated run'``, ``'measured run'``,
        ``'simulated wait'`` and ``'measured wait'``, one bar per vCPU each.
    """
    from matplotlib.ticker import PercentFormatter

    rows = comparison.rows
    ax = _new_axes(ax, (min(10.0, max(5.0, 2.6 + 1.2 * len(rows))), 3.8))
    xs = list(range(len(rows)))
    w = 0.2
    series = [("simulated run", -1.5, [r.simulated_run for r in rows], _SIMULATED_COLOUR, ""),
              ("measured run", -0.5, [r.measured_run for r in rows], _MEASURED_COLOUR, ""),
              ("simulated wait", 0.5, [r.simulated_wait for r in rows], _SIMULATED_COLOUR,
               "///"),
              ("measured wait", 1.5, [r.measured_wait for r in rows], _MEASURED_COLOUR, "///")]
    for label, offset, heights, colour, hatch in series:
        face = _shade(colour, 0.45) if hatch else colour
        ax.bar([x + offset * w for x in xs], heights, width=w, color=face, edgecolor=colour,
               hatch=hatch, linewidth=0.6, label=label)
    top = max([*(h for *_, hs, _c, _h in series for h in hs), 0.01])
    for x, r in zip(xs, rows, strict=True):
        for offset, err, height in ((-w, r.run_error, max(r.simulated_run, r.measured_run)),
                                    (w, r.wait_error, max(r.simulated_wait, r.measured_wait))):
            ax.annotate(f"{err:+.3f}", (x + offset, height), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=9,
                        color="0.25", rotation=90)
    ax.set_xticks(xs, [vcpu_label(r.vm, r.vcpu) for r in rows])
    ax.set_ylim(0, min(1.0, top) * 1.3 if top < 0.95 else 1.25)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("share of the time")
    ax.set_xlabel("vCPU (numbers: simulated − measured)")
    name = comparison.simulated.scenario.name or "scenario"
    ax.set_title(f"{name}: simulated vs measured, largest error "
                 f"{comparison.max_error:.3f} (tolerance {comparison.tolerance:.2f})",
                 loc="left", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=9, frameon=False)
    return ax


def _field(point: Any, name: str, default: Any = None) -> Any:
    if isinstance(point, Mapping):
        return point.get(name, default)
    return getattr(point, name, default)


def plot_wait_vs_overcommit(points: Iterable[Any], ax: Axes | None = None) -> Axes:
    """Mean wait share per vCPU against the overcommit ratio, one line per source.

    Parameters
    ----------
    points : iterable of dict or record
        Each with ``overcommit`` (vCPUs per pCPU), ``wait_share`` (0..1) and
        ``source`` (:data:`~kvmlab.lab.SIMULATED` or :data:`~kvmlab.lab.MEASURED`);
        an optional ``load`` (the vCPUs' busy fraction) splits a source into one line
        per load. See :func:`kvmlab.cpu.recordings.overcommit_points` (the points of a
        ``cpu-overcommit`` sweep) and :func:`kvmlab.cpu.recordings.recorded_points`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        With one line per source (and load), labelled, plus the 5 % and 10 %
        CPU-ready lines and the closed form ``1 - 1/ratio`` for busy vCPUs.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> pts = [{"overcommit": 1, "wait_share": 0.0, "source": "simulated"},
    ...        {"overcommit": 2, "wait_share": 0.5, "source": "simulated"},
    ...        {"overcommit": 2, "wait_share": 0.48, "source": "measured"}]
    >>> ax = plot_wait_vs_overcommit(pts)
    >>> [line.get_label() for line in ax.get_lines()][:2]
    ['simulated', 'measured']
    """
    from matplotlib.ticker import PercentFormatter

    points = list(points)
    ax = _new_axes(ax, (7.5, 4.2))
    groups: dict[tuple[str, float | None], list[tuple[float, float]]] = {}
    for p in points:
        source = str(_field(p, "source", SIMULATED))
        load = _field(p, "load")
        key = (source, None if load is None or load >= 1 else float(load))
        groups.setdefault(key, []).append((float(_field(p, "overcommit")),
                                           float(_field(p, "wait_share"))))
    styles = {SIMULATED: ("o", "-", _SIMULATED_COLOUR), MEASURED: ("s", "--", _MEASURED_COLOUR)}
    more = iter(("tab:green", "tab:purple", "tab:cyan", "tab:olive", "tab:pink", "tab:brown"))
    order = sorted(groups, key=lambda k: (k[0] != SIMULATED, -(k[1] or 1.0)))
    for source, load in order:
        xy = sorted(groups[source, load])
        marker, style, colour = styles.get(source, ("^", ":", "tab:gray"))
        if load is not None:
            colour = next(more, "tab:gray")
        label = source
        if sum(k[0] == source for k in groups) > 1:
            label = f"{source}, vCPUs busy {1.0 if load is None else load:.0%}"
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker=marker, linestyle=style,
                color=colour, label=label, markersize=6)
    xmax = max([2.0, *(_field(p, "overcommit") for p in points)]) * 1.05
    xs = [1 + i * (xmax - 1) / 100 for i in range(101)]
    ax.plot([0, 1, *xs], [0, 0, *(1 - 1 / x for x in xs)], color="0.6", linewidth=1,
            linestyle=":", label="closed form, all busy: 1 − 1/ratio", zorder=1)
    for pct, word, colour in ((READY_WATCH_PCT, "watch", "goldenrod"),
                              (READY_PROBLEM_PCT, "problem", _WAIT_COLOUR)):
        ax.axhline(pct / 100, color=colour, linewidth=1, alpha=0.8)
        ax.annotate(f"{pct:g} % ready: {word}", (0.01, pct / 100), xycoords=("axes fraction",
                    "data"), xytext=(0, 2), textcoords="offset points", fontsize=9,
                    color=colour, va="bottom")
    ax.axvline(1, color="0.3", linewidth=0.8, linestyle="-.")
    ax.annotate("1 vCPU per pCPU", (1, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                textcoords="offset points", fontsize=9, color="0.3", va="top")
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, max([0.2, *(y for g in groups.values() for _, y in g)]) * 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("overcommit: vCPUs per pCPU")
    ax.set_ylabel("mean wait share per vCPU\n(CPU ready %)")
    ax.set_title("How long a vCPU waits for a pCPU", loc="left", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=9, frameon=False)
    return ax


def side_by_side(results: Sequence[LabResult], kind: str = "shares",
                 until_s: float | None = None) -> list[Axes]:
    """Draw several results next to each other (``kind``: ``'shares'`` or ``'gantt'``).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from kvmlab.cpu import load_scenario, simulate
    >>> s = load_scenario("cpu-seed-example").with_duration(0.2)
    >>> axes = side_by_side([simulate(s), simulate(s, scheduler="round-robin")])
    >>> len(axes), axes[0].get_ylim() == axes[1].get_ylim()
    (2, True)
    """
    import matplotlib.pyplot as plt

    if kind not in ("shares", "gantt"):
        raise ScenarioError(f"kind must be 'shares' or 'gantt', not {kind!r}")
    n = len(results)
    if kind == "shares":
        width = max(_shares_width(r) for r in results) - 1.8
        _fig, axes = plt.subplots(1, n, figsize=(min(10.0, width * n + 1.8), 3.6),
                                  layout="constrained",
                                  sharey=True, squeeze=False)
        for r, ax in zip(results, axes[0], strict=True):
            plot_shares(r, ax=ax)
        for ax in axes[0][:-1]:
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
    else:
        rows = sum(r.scenario.pcpus for r in results)
        _fig, axes = plt.subplots(n, 1, figsize=(10, 1.0 * n + 0.55 * rows),
                                  layout="constrained", sharex=True, squeeze=False,
                                  height_ratios=[r.scenario.pcpus for r in results])
        for r, ax in zip(results, axes[:, 0], strict=True):
            gantt(r, ax=ax, until_s=until_s)
        axes = axes.T
    return list(axes[0])
