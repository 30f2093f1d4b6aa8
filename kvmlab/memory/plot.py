"""Pictures for the memory lab. Every function takes results and returns matplotlib Axes.

Nothing here runs a model: the functions draw what they are given (results of
:mod:`kvmlab.memory.result`, walks, or figures already computed).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from kvmlab.memory.machine import worst_case_walk
>>> ax = walk_grid(worst_case_walk("4K", "4K"))
>>> ax.get_title()
'the 2D walk: 24 memory references (4K guest pages, 4K host pages)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from kvmlab.memory.machine import SIZE_NAMES
from kvmlab.memory.paging import LEVEL_NAMES, Walk, level_size

SIZE_LABEL = {size: name for name, size in SIZE_NAMES.items()}
COLOURS = {"guest": "#4c72b0", "nested": "#dd8452", "data": "#55a868", "host": "#8172b2"}


class KsmRun(Protocol):
    """What :func:`ksm_timeline` draws: a :class:`~kvmlab.memory.result.KsmResult`."""

    source: str
    samples: Sequence[Any]


class TracedAddress(Protocol):
    """What :func:`chain` draws: a :class:`~kvmlab.memory.result.Translation`."""

    va: int
    kind: str
    model_pa: int | None
    hva: int | None
    ma: int | None
    page_size: int | None
    refs: tuple[tuple[int, int, int], ...]


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def walk_grid(walk: Walk, ax: Axes | None = None) -> Axes:
    """The two-dimensional walk as a grid: one row per guest level (and the final PA), one
    column per nested level (and the guest entry read); each cell numbered in the order
    the MMU makes its references.
    """
    ax = _axes(ax, (6.5, 4.5))
    guest_levels = [r.level for r in walk.refs if r.dimension == "guest"]
    rows = [LEVEL_NAMES[lv] for lv in guest_levels] + ["data PA"]
    nested_levels = sorted({r.level for r in walk.refs if r.dimension == "nested"},
                           reverse=True)
    cols = [f"n{LEVEL_NAMES[lv]}" for lv in nested_levels] + ["guest entry"]
    row, col_of = 0, {lv: i for i, lv in enumerate(nested_levels)}
    for n, ref in enumerate(walk.refs, 1):
        col = len(cols) - 1 if ref.dimension == "guest" else col_of[ref.level]
        colour = COLOURS[ref.dimension]
        ax.add_patch(FancyBboxPatch((col + 0.08, row + 0.08), 0.84, 0.84,
                                    boxstyle="round,pad=0.02", fc=colour, ec="white"))
        ax.text(col + 0.5, row + 0.5, str(n), ha="center", va="center", color="white",
                fontsize=11, fontweight="bold")
        if ref.dimension == "guest":
            row += 1
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([i + 0.5 for i in range(len(cols))], cols)
    ax.set_yticks([i + 0.5 for i in range(len(rows))], rows)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("nested (EPT/NPT) walk of the guest-physical address, then the read")
    ax.set_ylabel("guest table being read")
    guest_page = SIZE_LABEL.get(level_size(min(guest_levels, default=1)), "?")
    host_page = SIZE_LABEL.get(level_size(min(nested_levels, default=1)), "?")
    ax.set_title(f"the 2D walk: {len(walk.refs)} memory references ({guest_page} guest "
                 f"pages, {host_page} host pages)")
    return ax


def reference_counts(counts: Mapping[tuple[str, str], int], ax: Axes | None = None) -> Axes:
    """A heat map of references per TLB miss for each pair (guest page, host page)."""
    ax = _axes(ax, (4.8, 3.8))
    sizes = ["4K", "2M", "1G"]
    grid = [[counts.get((g, h), 0) for h in sizes] for g in sizes]
    ax.imshow(grid, cmap="Oranges", vmin=0, vmax=max(max(r) for r in grid) * 1.2)
    for i, row in enumerate(grid):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=13)
    ax.set_xticks(range(3), [f"host {s}" for s in sizes])
    ax.set_yticks(range(3), [f"guest {s}" for s in sizes])
    ax.set_title("memory references per TLB miss (cold caches)")
    return ax


def chain(t: TracedAddress, ax: Axes | None = None, origin: str = "a guest") -> Axes:
    """The seed's picture, VA → PA → MA, drawn from one traced address (with QEMU's
    virtual address in between, where the PA lives in the QEMU process); ``origin`` says
    where the trace comes from in the title (``"a live guest"``, ``"a recorded trace"``)."""
    ax = _axes(ax, (10, 2.8))
    boxes = [("guest-virtual (VA)", t.va, "the program's pointer", COLOURS["guest"]),
             ("guest-physical (PA)", t.model_pa, "the guest's page tables", COLOURS["guest"]),
             ("QEMU's virtual (HVA)", t.hva, "QEMU's memory map (gpa2hva)", COLOURS["nested"]),
             ("machine (MA)", t.ma, "the host's page tables (pagemap)", COLOURS["host"])]
    for i, (title, value, how, colour) in enumerate(boxes):
        x = i * 2.6
        ax.add_patch(FancyBboxPatch((x, 0.3), 2.0, 1.2, boxstyle="round,pad=0.05", fc=colour,
                                    ec="none", alpha=0.9))
        ax.text(x + 1.0, 1.15, title, ha="center", color="white", fontsize=10,
                fontweight="bold")
        shown = "fault" if value is None else f"{value:#x}"
        ax.text(x + 1.0, 0.7, shown, ha="center", color="white", family="monospace",
                fontsize=10)
        if i:
            ax.annotate("", xy=(x - 0.05, 0.9), xytext=(x - 0.55, 0.9),
                        arrowprops={"arrowstyle": "->", "lw": 2})
            ax.text(x - 0.3, 0.0 if i % 2 else -0.3, how, ha="center", fontsize=9,
                    style="italic")
    ax.set_xlim(-0.2, 10.2)
    ax.set_ylim(-0.4, 1.7)
    ax.axis("off")
    page = SIZE_LABEL.get(t.page_size or 0, "?")
    ax.set_title(f"one {t.kind} address of {origin} ({page} page, {len(t.refs)} table "
                 "entries read)", loc="left")
    return ax


def hit_rates(working_sets: Sequence[int], curves: Mapping[str, Sequence[float]],
              ax: Axes | None = None, tlb_reach: Mapping[str, int] | None = None) -> Axes:
    """TLB hit rate against working-set size, one curve per configuration; the dashed
    lines mark each configuration's *reach* (entries x page size), if given."""
    ax = _axes(ax, (7, 4))
    for label, rates in curves.items():
        line, = ax.plot([w / 2**20 for w in working_sets], rates, marker="o", label=label)
        if tlb_reach and label in tlb_reach:
            ax.axvline(tlb_reach[label] / 2**20, color=line.get_color(), ls="--", lw=1,
                       alpha=0.7, label=f"its reach ({_size(tlb_reach[label])})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("working set (MiB)")
    ax.set_ylabel("TLB hit rate")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title("a TLB covers entries x page size; past that, misses climb", loc="left")
    return ax


def _size(size_bytes: int) -> str:
    """``262144`` -> ``'256 KiB'``, ``4194304`` -> ``'4 MiB'``."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if size_bytes >= 1 << shift:
            return f"{size_bytes / (1 << shift):g} {unit}"
    return f"{size_bytes / 1024:g} KiB"


def tlb_point(fig: Figure, working_set_kib: int, tried: Mapping[int, float], reach_kib: int,
              label: str) -> Axes:
    """The TLB explorer's picture, drawn into ``fig`` (cleared first): hit rate against
    working set (KiB, doubling), the working sets ``tried`` (KiB to hit rate) as dots,
    ``working_set_kib`` highlighted, the TLB's reach dashed."""
    fig.clear()
    ax = fig.add_subplot()
    xs = sorted(tried)
    ax.plot(xs, [tried[x] for x in xs], marker="o", color=COLOURS["guest"], alpha=0.5,
            label="working sets tried")
    ax.plot([working_set_kib], [tried[working_set_kib]], marker="o", ms=11, ls="",
            color=COLOURS["nested"], label=f"this one: {tried[working_set_kib]:.0%} hits")
    ax.axvline(reach_kib, color="grey", ls="--", lw=1,
               label=f"TLB reach ({_size(reach_kib * 1024)})")
    ax.set_xscale("log", base=2)
    ax.set_xlim(32, 1 << 17)
    ticks = [64 << k for k in range(0, 11, 2)]
    ax.set_xticks(ticks, [_size(k * 1024) for k in ticks])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("working set")
    ax.set_ylabel("TLB hit rate")
    ax.legend(loc="lower left")
    ax.set_title(label, loc="left", fontsize=11)
    return ax


def shadow_vs_nested(write_rates: Sequence[float], overhead: Mapping[str, Sequence[float]],
                     break_even: float | None = None, ax: Axes | None = None) -> Axes:
    """Translation overhead of shadow and nested paging against the guest's rate of page-
    table writes (per million instructions)."""
    ax = _axes(ax, (7, 4))
    for mode, values in overhead.items():
        ax.plot(write_rates, values, marker="o", label=mode,
                color=COLOURS["nested"] if mode == "nested" else COLOURS["guest"])
    if break_even is not None:
        ax.axvline(break_even, color="grey", ls=":", label=f"break-even {break_even:.0f}")
    ax.set_xlabel("guest page-table writes per million instructions")
    ax.set_ylabel("translation time, % of the\ninstructions' own time")
    ax.legend()
    ax.set_title("shadow paging pays per table write, nested paging per TLB miss\n"
                 "(100 %: translating takes as long as the work itself)", loc="left",
                 fontsize=11)
    return ax


def ksm_timeline(results: Sequence[KsmRun], ax: Axes | None = None) -> Axes:
    """``pages_sharing`` over time for each result (model and real kernel), with the end of
    every full scan marked."""
    ax = _axes(ax, (8, 4))
    for r in results:
        ts = [s.t_s for s in r.samples]
        line, = ax.step(ts, [s.pages_sharing for s in r.samples], where="post",
                        label=f"{r.source}: pages_sharing")
        scans = sorted({next(s.t_s for s in r.samples if s.full_scans >= n)
                        for n in range(1, r.samples[-1].full_scans + 1)})
        for t in scans:
            ax.axvline(t, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("seconds since ksmd started (dotted: a full scan ends)")
    ax.set_ylabel("pages saved (pages_sharing)")
    ax.legend(loc="lower right")
    ax.set_title("KSM merges nothing in its first full scan", loc="left")
    return ax


def prediction_bars(by_kind: Mapping[str, tuple[int, int]], ax: Axes | None = None) -> Axes:
    """Per kind of address, the model's predictions that held and those QEMU contradicted
    (``by_kind``: kind to (held, predictions), as a trace comparison counts them)."""
    ax = _axes(ax, (7, 3.5))
    kinds = list(by_kind)
    held = [by_kind[k][0] for k in kinds]
    wrong = [by_kind[k][1] - by_kind[k][0] for k in kinds]
    ax.bar(kinds, held, color=COLOURS["data"], label="held")
    ax.bar(kinds, wrong, bottom=held, color="#c44e52", label="contradicted")
    ax.set_ylabel("addresses")
    ax.legend(loc="lower right")
    ax.set_title("the memory layout's predictions against QEMU's answers", loc="left")
    return ax


def balloon_bars(usable: Mapping[str, tuple[int, int]], ax: Axes | None = None) -> Axes:
    """Per guest, the usable memory (MiB) the balloon leaves: planned and measured."""
    ax = _axes(ax, (7, 3.5))
    names = list(usable)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [usable[n][0] for n in names], width=0.4,
           color=COLOURS["guest"], label="model")
    ax.bar([x + 0.2 for x in xs], [usable[n][1] for n in names], width=0.4,
           color=COLOURS["nested"], label="measured")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("usable memory (MiB)")
    ax.legend()
    ax.set_title("what each guest may still use once its balloon is inflated", loc="left")
    return ax


def balloon_run_lines(simulated: Any, measured: Any, ax: Axes | None = None) -> Axes:
    """A balloon run, step by step (MiB): the guest's ``MemTotal`` and ``MemAvailable`` and
    the host's RSS of QEMU, the model's as lines (its RSS as a band) and the measured as
    dots. Both runs have a ``start`` and ``steps`` of
    :class:`kvmlab.memory.balloonrun.BalloonStep`; a run without measured numbers (a
    second model) is drawn as the model.
    """
    ax = _axes(ax, (7.5, 4))
    model = [simulated.start, *simulated.steps]
    real = [measured.start, *measured.steps]
    xs = list(range(len(model)))
    labels = [f"{s.target_mib}" for s in model]
    for name, colour, what in (("memtotal_mib", COLOURS["guest"], "MemTotal"),
                               ("memavailable_mib", COLOURS["nested"], "MemAvailable")):
        ax.plot(xs, [getattr(s, name) for s in model], color=colour, label=f"{what} (model)")
        ax.plot(xs, [getattr(s, name) for s in real], "o", color=colour,
                label=f"{what} (measured)")
    high = [s.rss_high_mib if s.rss_mib is None else s.rss_mib for s in model]
    low = [(s.rss_low_mib if s.rss_low_mib is not None else 0.0)
           if s.rss_mib is None else s.rss_mib for s in model]
    ax.fill_between(xs, low, high, color=COLOURS["data"], alpha=0.25,
                    label="QEMU's RSS on the host (model: a range)")
    rss = [s.rss_mib for s in real]
    if all(r is not None for r in rss):
        ax.plot(xs, rss, "s", color=COLOURS["data"], label="QEMU's RSS (measured)")
    ax.set_xticks(xs, labels)
    ax.set_xlabel("the guest's memory target (MiB), step by step; first: balloon empty")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("a real balloon: what the guest and the host see", loc="left")
    return ax
