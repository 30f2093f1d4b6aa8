"""Figures of the storage lab: each function takes an image or results and returns an Axes.

They only draw what they are given: build the image with
:func:`kvmlab.storage.model.image_after` (or :meth:`Qcow2Model.from_scenario
<kvmlab.storage.qcow2.Qcow2Model.from_scenario>`), the results with ``simulate``,
``run_on_host`` or ``simulate_io``. Pass ``ax`` to draw into a figure of your own;
without it a new figure is made.
The colours mean the same in every figure: metadata clusters in greys, browns and
purples (:data:`KIND_COLOURS`), data clusters in the colour of the write that
allocated them (:func:`write_colour`), guest bytes by the depth of the image
that holds them (:func:`depth_colour`).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from kvmlab.storage.model import image_after, simulate
>>> s = {"virtual_size": 10485760, "cluster_size": 65536,
...      "writes": [[1048576, 65536], [100, 10]]}
>>> ax = cluster_map(image_after(s))
>>> len(ax.patches)                     # 4 empty-image clusters, 1 L2 table, 2 data
7
>>> ax = guest_map(simulate(s))
>>> len(ax.patches)                     # one patch per map entry
4
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch, Rectangle

from kvmlab.display import human_bytes
from kvmlab.errors import ScenarioError
from kvmlab.storage.qcow2 import Allocation, Qcow2Model
from kvmlab.validate import whole_number

__all__ = ["CELL_IN", "DIFFER_COLOUR", "KIND_COLOURS", "KIND_LABELS", "LABEL_PT",
           "UNALLOCATED_COLOUR", "allocation_colour", "cluster_map", "cluster_map_layout",
           "depth_colour", "guest_map", "map_pair", "plot_io", "write_colour"]

KIND_COLOURS: dict[str, str] = {
    "header": "#3b3b3b",
    "refcount table": "#8c6d31",
    "refcount block": "#d6b26b",
    "L1": "#6a3d9a",
    "L2": "#b294c7",
    "snapshot L1": "#2d6a4f",
    "snapshot table": "#74c69d",
}
"""The colour of each kind of metadata cluster."""

KIND_LABELS: dict[str, str] = {"header": "H", "refcount table": "RT", "refcount block": "RB",
                               "L1": "L1", "L2": "L2", "snapshot L1": "S1",
                               "snapshot table": "ST"}
"""The short text written in a metadata cluster's cell."""

_WRITE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:cyan", "tab:olive",
                  "tab:pink", "#1f9e89", "#e6550d", "#3182bd")
_DEPTH_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:cyan")
UNALLOCATED_COLOUR = "#e8e8e8"
_FORMAT_COLOURS = {"raw": "tab:gray", "qcow2": "tab:blue", "overlay": "tab:orange"}
_LEGEND_WRITES = 8


def write_colour(index: int | None) -> str:
    """The colour of data clusters allocated by write ``index`` (``None``: not known).

    Examples
    --------
    >>> write_colour(0), write_colour(10) == write_colour(0), write_colour(None)
    ('tab:blue', True, 'tab:blue')
    """
    return _WRITE_COLOURS[(index or 0) % len(_WRITE_COLOURS)]


def depth_colour(depth: int) -> str:
    """The colour of guest bytes held at ``depth`` (0: this image, 1: its backing file...).

    Examples
    --------
    >>> depth_colour(0), depth_colour(1)
    ('tab:blue', 'tab:orange')
    """
    return _DEPTH_COLOURS[depth % len(_DEPTH_COLOURS)]


def allocation_colour(a: Allocation) -> str:
    """The colour of one cluster of the file in :func:`cluster_map`."""
    return write_colour(a.write) if a.kind == "data" else KIND_COLOURS[a.kind]


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _fig, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _ink(colour: str) -> str:
    r, g, b = to_rgb(colour)
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.55 else "black"


LABEL_PT = 9.0
"""The size of the smallest texts of the storage figures (cell labels, ticks, legends):
:data:`kvmlab.figures.MIN_TEXT_PT`."""
CELL_IN = 0.45
"""The widest a cluster's cell is drawn (inches): narrower when many columns must fit."""
_TEXT_IN = 0.55 * LABEL_PT / 72
"""About how wide a character of a label is, in inches."""


def _image_parts(image: Any) -> tuple[Qcow2Model, Any, int | None, frozenset[int]]:
    """(model, scenario, writes applied, clusters the last write added) of what
    :func:`cluster_map` draws."""
    if isinstance(image, Qcow2Model):
        return image, None, None, frozenset()
    if isinstance(getattr(image, "image", None), Qcow2Model):
        return image.image, image.scenario, image.writes_applied, image.new_clusters
    raise ScenarioError("cluster_map draws a qcow2 image: an ImageLayout (from "
                        "kvmlab.storage.image_after(scenario, n_writes), which replays a "
                        "scenario's writes) or a Qcow2Model, not "
                        f"{type(image).__name__}")


def _cluster_handles(model: Qcow2Model, scenario: Any, upto_write: int | None,
                     fresh: frozenset[int]) -> list[Patch]:
    """The legend of a cluster map: metadata kinds, shared clusters, writes, the last one."""
    layout = model.layout()
    kinds = [k for k in KIND_COLOURS
             if not k.startswith("snapshot") or any(a.kind == k for a in layout)]
    handles = [Patch(facecolor=KIND_COLOURS[k], label=f"{KIND_LABELS[k]}: {k}"
                     if k not in ("L1", "L2") else f"{k} table")
               for k in kinds]
    if any(model.refcount(a.cluster) > 1 for a in layout):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="shared with a snapshot: copied on a write"))
    writes = sorted({a.write for a in layout if a.kind == "data"},
                    key=lambda w: -1 if w is None else w)
    for w in writes[:_LEGEND_WRITES]:
        where = ""
        if scenario is not None and w is not None:
            offset, length = scenario.writes[w]
            where = f": {human_bytes(length)} at {human_bytes(offset)}"
        handles.append(Patch(facecolor=write_colour(w),
                             label="data" if w is None else f"data of write {w}{where}"))
    if len(writes) > _LEGEND_WRITES:
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label=f"... {len(writes) - _LEGEND_WRITES} more writes"))
    if fresh and upto_write:
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2,
                             label=f"added by write {upto_write - 1}"))
    return handles


def cluster_map_layout(image: Any, columns: int = 16, min_clusters: int = 0
                       ) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """The size of the figure :func:`cluster_map` makes for ``image`` (inches, at most
    :data:`kvmlab.figures.NOTEBOOK_WIDTH_IN` wide, so that nothing is scaled down), and
    where its grid goes in it (left, bottom, width, height, as fractions of the figure).

    Cells are at most :data:`CELL_IN` wide; the legend, one entry a line, sits on the
    right, and the figure is as tall as the grid or the legend needs. To draw an image at
    several moments into one figure, lay it out for its last moment (the most clusters
    and legend entries), as :func:`kvmlab.storage.widgets.cluster_slider` does.

    Examples
    --------
    >>> from kvmlab.storage.model import image_after
    >>> s = {"virtual_size": 10485760, "cluster_size": 65536, "writes": [[0, 512]]}
    >>> (width, height), rect = cluster_map_layout(image_after(s), columns=16)
    >>> width <= 10, 0 < rect[0] < rect[0] + rect[2] < 1
    (True, True)
    """
    model, scenario, upto_write, fresh = _image_parts(image)
    if whole_number(columns, "columns") < 1:
        raise ScenarioError(f"columns must be a whole number of at least 1, not {columns!r}")
    if whole_number(min_clusters, "min_clusters") < 0:
        raise ScenarioError(f"min_clusters must be a whole number, not {min_clusters!r}")
    from kvmlab.figures import NOTEBOOK_WIDTH_IN

    room = max(model.next_free, min_clusters, 1)
    columns = min(columns, room)
    rows = math.ceil(room / columns)
    labels = [h.get_label() for h in _cluster_handles(model, scenario, upto_write, fresh)]
    legend_in = 0.6 + _TEXT_IN * max(len(label) for label in labels)
    left, gap, top, bottom = 1.15, 0.2, 0.45, 0.65
    cell = min(CELL_IN, (NOTEBOOK_WIDTH_IN - left - gap - legend_in) / columns)
    grid_w, grid_h = cell * columns, cell * rows
    width = left + grid_w + gap + legend_in
    height = max(top + grid_h + bottom, top + 0.15 + 0.2 * len(labels))
    return ((round(width, 2), round(height, 2)),
            (left / width, (height - top - grid_h) / height, grid_w / width, grid_h / height))


def _fits(ax: Axes, columns: int, text: str) -> bool:
    """Whether ``text`` at :data:`LABEL_PT` fits across one of ``columns`` cells of ``ax``."""
    cell_pt = 72 * ax.get_figure().get_size_inches()[0] * ax.get_position().width / columns
    return cell_pt >= 0.68 * LABEL_PT * len(text) + 2


def cluster_map(image: Any, ax: Axes | None = None, columns: int = 16,
                min_clusters: int = 0) -> Axes:
    """The image file as a grid of clusters, in file order, coloured by what each holds.

    Metadata cells are marked H (header), RT (refcount table), RB (refcount
    block), L1 and L2, S1 (a snapshot's copy of the L1 table) and ST (the snapshot
    table); a data cell shows ``gN``: it holds guest cluster N (just ``N`` where
    ``gN`` does not fit), and its colour says which write allocated it. Hatched cells
    are shared with a snapshot (refcount 2 or more): the next write to them copies them
    first. A gap is a free cluster.
    Every text is at least :data:`LABEL_PT`: a label that does not fit in its cell
    (many columns, a long guest cluster number) is left out; the colour still says it.

    Parameters
    ----------
    image : ImageLayout or Qcow2Model
        The image after some of a scenario's writes
        (:func:`kvmlab.storage.model.image_after`: the clusters its last write added are
        outlined in black, and the legend says where each write went), or an image.
    ax : matplotlib Axes, optional
        Without it, a figure laid out by :func:`cluster_map_layout` is made.
    columns : int
        Clusters per row; each row starts at the file offset shown on the left.
    min_clusters : int
        Leave room for at least this many clusters (so that pictures of one image
        at several moments have the same size).

    Returns
    -------
    matplotlib Axes
        ``ax.patches`` holds one rectangle per cluster, in file order.
    """
    model, scenario, upto_write, fresh = _image_parts(image)
    if ax is None:
        figsize, rect = cluster_map_layout(image, columns, min_clusters)
        ax = plt.figure(figsize=figsize).add_axes(rect)
    if whole_number(columns, "columns") < 1:
        raise ScenarioError(f"columns must be a whole number of at least 1, not {columns!r}")
    if whole_number(min_clusters, "min_clusters") < 0:
        raise ScenarioError(f"min_clusters must be a whole number, not {min_clusters!r}")
    layout = model.layout()
    n = len(layout)
    room = max(model.next_free, min_clusters, 1)
    columns = min(columns, room)
    rows = math.ceil(room / columns)
    cs = model.cluster_size
    text = n <= 512
    for a in layout:
        row, col = divmod(a.cluster, columns)
        colour = allocation_colour(a)
        new = a.cluster in fresh
        refs = model.refcount(a.cluster)
        ax.add_patch(Rectangle((col, row), 1, 1, facecolor=colour,
                               edgecolor="black" if new else "white",
                               linewidth=2.0 if new else 1.0, zorder=3 if new else 2,
                               hatch="///" if refs > 1 else None,
                               gid=f"cluster {a.cluster}: {a.kind}"
                               + (f" (refcount {refs})" if refs > 1 else "")))
        if text:
            label = f"g{a.guest_cluster}" if a.kind == "data" else KIND_LABELS[a.kind]
            if a.kind == "data" and not _fits(ax, columns, label):
                label = str(a.guest_cluster)
            if _fits(ax, columns, label):
                ax.text(col + 0.5, row + 0.5, label, ha="center", va="center",
                        fontsize=LABEL_PT, color=_ink(colour), zorder=4)
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    step = next(k for k in range(1, columns + 1) if _fits(ax, columns / k, str(columns - 1)))
    ax.set_xticks([c + 0.5 for c in range(0, columns, step)],
                  [str(c) for c in range(0, columns, step)], fontsize=LABEL_PT)
    ax.set_yticks([r + 0.5 for r in range(rows)],
                  [human_bytes(r * columns * cs) for r in range(rows)], fontsize=LABEL_PT)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(f"cluster within the row ({human_bytes(cs)} each)", fontsize=LABEL_PT)
    ax.set_ylabel("file offset", fontsize=LABEL_PT)
    title = (f"image file: {n} clusters of {human_bytes(cs)} in use, ends at "
             f"{model.image_end_offset:,} bytes")
    if model.snapshots:
        title += f"; snapshots: {', '.join(model.snapshots)}"
    if scenario is not None:
        title += f" (after {upto_write} of {len(scenario.writes)} writes)"
    ax.set_title(title, loc="left", fontsize=10)
    ax.legend(handles=_cluster_handles(model, scenario, upto_write, fresh), loc="upper left",
              bbox_to_anchor=(1.0 + 0.2 / _axes_width_in(ax), 1), fontsize=LABEL_PT,
              frameon=False, borderaxespad=0)
    return ax


def _axes_width_in(ax: Axes) -> float:
    return max(float(ax.get_figure().get_size_inches()[0] * ax.get_position().width), 0.1)


def _map_of(result_or_map: Any) -> list[Mapping[str, Any]]:
    if isinstance(result_or_map, Qcow2Model):
        return result_or_map.map()
    if hasattr(result_or_map, "map") and not isinstance(result_or_map, Sequence):
        return list(result_or_map.map)
    if isinstance(result_or_map, Sequence) and all(isinstance(e, Mapping)
                                                    for e in result_or_map):
        return list(result_or_map)
    raise ScenarioError("guest_map draws a map: a StorageResult, a Qcow2Model, or a list of "
                        "qemu-img map entries (dicts with start, length, depth, data)")


def guest_map(result_or_map: Any, ax: Axes | None = None) -> Axes:
    """The guest disk from byte 0 to its end, coloured by where each byte is read from.

    Parameters
    ----------
    result_or_map : StorageResult, Qcow2Model or list of dict
        A map in ``qemu-img map --output=json`` form: entries with ``start``,
        ``length``, ``depth``, ``data`` (and ``zero``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        ``ax.patches`` holds one rectangle per map entry: coloured by depth where
        there is data (0: this image, 1: its backing file...), light grey where no
        image holds the bytes (they read as zeros).
    """
    entries = _map_of(result_or_map)
    if not entries:
        raise ScenarioError("the map is empty: there is nothing to draw")
    end = max(e["start"] + e["length"] for e in entries)
    ax = _new_axes(ax, (10, 1.9))
    depths: set[int] = set()
    unallocated = False
    for e in entries:
        if e.get("data"):
            colour = depth_colour(e["depth"])
            depths.add(e["depth"])
        else:
            colour = UNALLOCATED_COLOUR
            unallocated = True
        ax.add_patch(Rectangle((e["start"], 0), e["length"], 1, facecolor=colour,
                               edgecolor=colour, linewidth=0.8,
                               gid=f"{e['start']}+{e['length']} depth {e['depth']}"))
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    _guest_axis(ax, end)
    ax.legend(handles=_map_legend(depths, unallocated), loc="upper left",
              bbox_to_anchor=(1.01, 1), fontsize=LABEL_PT, frameon=False)
    held = sum(e["length"] for e in entries if e.get("data"))
    ax.set_title(f"guest disk of {human_bytes(end)}: {held / end:.1%} of it held by an image",
                 loc="left", fontsize=10)
    return ax


def _guest_axis(ax: Axes, end: int) -> None:
    """Guest offsets from 0 to ``end`` on the x axis, in eighths, in one binary unit."""
    ax.set_xlim(0, end)
    power = next(p for p in (4, 3, 2, 1, 0) if end >= 1024 ** p)
    unit = ("B", "KiB", "MiB", "GiB", "TiB")[power]
    ticks = [end * i / 8 for i in range(9)]
    ax.set_xticks(ticks, [f"{t / 1024 ** power:.4g} {unit}" if t else "0" for t in ticks],
                  fontsize=LABEL_PT)
    ax.set_xlabel("guest offset (a thin stripe is a small range: zoom in with set_xlim)",
                  fontsize=LABEL_PT)


def _map_legend(depths: set[int], unallocated: bool) -> list[Any]:
    names = {0: "this image (depth 0)", 1: "backing file (depth 1)"}
    handles: list[Any] = [Patch(facecolor=depth_colour(d), label=names.get(d, f"depth {d}"))
                          for d in sorted(depths)]
    if unallocated:
        handles.append(Patch(facecolor=UNALLOCATED_COLOUR, edgecolor="0.6",
                             label="in no image: reads as zeros"))
    return handles


DIFFER_COLOUR = "tab:red"
"""The outline of a map entry that the other map does not have (:func:`map_pair`)."""


def map_pair(first: Sequence[Mapping[str, Any]], second: Sequence[Mapping[str, Any]],
             ax: Axes | None = None, labels: tuple[str, str] = ("simulated", "measured")
             ) -> Axes:
    """Two maps as strips, ``first`` above ``second``, entries that differ outlined in red.

    Entries are paired in order, as :func:`kvmlab.storage.compare` pairs them (give it
    maps as the image format sees them: :func:`kvmlab.storage.result.image_view`).

    Parameters
    ----------
    first, second : list of dict
        Maps in ``qemu-img map --output=json`` form.
    ax : matplotlib Axes, optional
    labels : (str, str)
        What each strip is (``'simulated'``, ``'measured'``).

    Returns
    -------
    matplotlib Axes
        ``ax.patches`` holds one rectangle per entry of ``first``, then of ``second``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> a = [{"start": 0, "length": 4096, "depth": 0, "zero": False, "data": True,
    ...       "offset": 0}]
    >>> ax = map_pair(a, [{**a[0], "offset": 8192}])
    >>> len(ax.patches), ax.get_title(loc="left")
    (2, 'simulated and measured maps: 1 of 1 entries differ')
    """
    maps = (list(first), list(second))
    if not maps[0] and not maps[1]:
        raise ScenarioError("both maps are empty: there is nothing to draw")
    pairs = max(len(maps[0]), len(maps[1]))
    differ = [i for i in range(pairs)
              if i >= len(maps[0]) or i >= len(maps[1]) or maps[0][i] != maps[1][i]]
    end = max(e["start"] + e["length"] for m in maps for e in m)
    ax = _new_axes(ax, (10, 2.6))
    depths: set[int] = set()
    unallocated = False
    for row, (entries, bottom) in enumerate(zip(maps, (1.15, 0.0), strict=True)):
        for i, e in enumerate(entries):
            if e.get("data"):
                colour = depth_colour(e["depth"])
                depths.add(e["depth"])
            else:
                colour = UNALLOCATED_COLOUR
                unallocated = True
            odd = i in differ
            ax.add_patch(Rectangle((e["start"], bottom), e["length"], 0.85,
                                   facecolor=colour,
                                   edgecolor=DIFFER_COLOUR if odd else colour,
                                   linewidth=2.0 if odd else 0.8, zorder=3 if odd else 2,
                                   gid=f"{labels[row]} {e['start']}+{e['length']}"
                                   + (" differs" if odd else "")))
    ax.set_ylim(0, 2.0)
    ax.set_yticks([0.425, 1.575], [labels[1], labels[0]], fontsize=LABEL_PT)
    _guest_axis(ax, end)
    handles = _map_legend(depths, unallocated)
    if differ:
        handles.append(Patch(facecolor="white", edgecolor=DIFFER_COLOUR, linewidth=2,
                             label="differs from the other map"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=LABEL_PT,
              frameon=False)
    verdict = f"{len(differ)} of {pairs} entries differ" if differ else "the same"
    ax.set_title(f"{labels[0]} and {labels[1]} maps: {verdict}", loc="left", fontsize=10)
    return ax


def _unit(seconds: list[float]) -> tuple[float, str]:
    top = max([*seconds, 0.0])
    return (1e3, "ms") if top >= 1e-3 else (1e6, "µs")


def plot_io(results: Sequence[Any] | Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """Throughput bars (left axis) and latency markers (right axis) for several results.

    Bars are coloured by format (raw grey, qcow2 blue, overlay orange) and
    hatched for random patterns. On the right axis a diamond marks the mean
    latency and a line reaches up to the 95th percentile.

    Parameters
    ----------
    results : list of IoResult, or dict of label to IoResult
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        The throughput axes: ``ax.containers[0]`` holds one bar per result, in
        MB/s. The latency axes is its twin, the last axes of the figure.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from kvmlab.storage.model import simulate_io
    >>> from kvmlab.storage.scenario import IoWorkload
    >>> w = IoWorkload(count=32)
    >>> ax = plot_io([simulate_io(w.replace(format="raw")), simulate_io(w)])
    >>> [round(bar.get_height()) for bar in ax.containers[0]]
    [493, 114]
    """
    if isinstance(results, Mapping):
        labels, values = list(results), list(results.values())
    else:
        values = list(results)
        labels = [r.label.replace(", ", "\n") for r in values]
    if not values:
        raise ScenarioError("plot_io needs at least one IoResult")
    ax = _new_axes(ax, (min(10.0, max(5.0, 4.6 + 1.1 * len(values))), 3.8))
    xs = list(range(len(values)))
    heights = [r.throughput_bytes_per_s / 1e6 if math.isfinite(r.throughput_bytes_per_s)
               else 0.0 for r in values]
    colours = [_FORMAT_COLOURS[r.workload.format] for r in values]
    hatches = ["//" if r.workload.pattern == "random" else "" for r in values]
    bars = ax.bar(xs, heights, width=0.6, color=colours, edgecolor="white",
                  label="throughput (MB/s)")
    for bar, hatch, r in zip(bars, hatches, values, strict=True):
        bar.set_hatch(hatch)
        if not math.isfinite(r.throughput_bytes_per_s):
            ax.annotate("no disk I/O", (bar.get_x() + bar.get_width() / 2, 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=LABEL_PT, rotation=90)
    ax.set_xticks(xs, labels, fontsize=LABEL_PT)
    ax.set_ylabel("throughput (MB/s, bars)")
    ax.set_ylim(0, max([*heights, 1e-9]) * 1.15)
    right = ax.twinx()
    scale, unit = _unit([r.p95_latency_s for r in values])
    means = [r.mean_latency_s * scale for r in values]
    p95s = [r.p95_latency_s * scale for r in values]
    right.vlines(xs, means, p95s, color="black", linewidth=1.2)
    right.plot(xs, means, linestyle="none", marker="D", color="black", markersize=5,
               label="mean latency")
    right.plot(xs, p95s, linestyle="none", marker="_", color="black", markersize=12,
               label="95th percentile")
    right.set_ylim(0, max([*p95s, *means, 1e-9]) * 1.15)
    right.set_ylabel(f"latency ({unit}, black)")
    disks = sorted({r.workload.disk.name for r in values})
    ax.set_title(f"simulated I/O on {', '.join(disks)} (a teaching model, not a measurement)",
                 loc="left", fontsize=10)
    handles = [Patch(facecolor=c, label=f) for f, c in _FORMAT_COLOURS.items()
               if any(r.workload.format == f for r in values)]
    if any(hatches):
        handles.append(Patch(facecolor="white", edgecolor="0.3", hatch="//", label="random"))
    handles += right.get_lines()
    ax.legend(handles=handles, loc="upper left",
              bbox_to_anchor=(1 + 0.85 / _axes_width_in(ax), 1), fontsize=LABEL_PT,
              frameon=False, borderaxespad=0)
    return ax
