"""How fast the notebooks' explorers answer a change, against a plain plot of the same size.

For every explorer, a series of consecutive changes (as a student makes them: a slider
moved, a menu changed, back to an earlier value) is replayed through the explorer's own
pure functions, and each change is timed from the new value to the PNG bytes ready to
show: the computation (the model, its caches), the drawing into the figure, Agg's
``fig.canvas.draw()`` and the PNG encoding. Explorers built on :mod:`kvmlab.explorer`
are timed through :class:`kvmlab.explorer.View` (exactly what a change runs); the others
through their pure functions, their figure rendered the same way.

The **baseline** is a plain plot (one line of 100 points, a title and axis labels) of
the explorer's figure size, rendered and encoded the same way, timed alternately with
the changes. ``ratio`` is the explorer's median over the baseline's median: it carries
over between machines; the absolute times (median and 95th percentile, in ms) are what
a student waits on this one.

Examples
--------
>>> out = bench_widget("walk explorer", rounds=1, quick=True)
>>> out["changes"] > 0, out["median_ms"] > 0, out["ratio"] > 0
(True, True, True)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

from benchmarks.timing import environment, timed
from kvmlab.figures import new_figure, png_bytes

Respond = Callable[[dict[str, Any]], bytes]


def _view(draw: Callable[..., Any], figsize: tuple[float, float]) -> Respond:
    from kvmlab.explorer import View

    view = View(draw, figsize, layout=None)
    return lambda values: view.update(**values)[0]


def _cpu() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.cpu.widgets import DURATION_S, FIGSIZE, draw, explore, summary

    def show(fig: Any, **values: Any) -> Any:     # what the explorer's change runs
        result = explore(**values, duration_s=DURATION_S, seed=0)
        return [summary(result), draw(fig, result)]

    shapes = [(2, 2, 2, "fair"), (3, 2, 2, "fair"), (4, 2, 2, "fair"), (8, 6, 4, "fair"),
              (8, 5, 4, "fair"), (8, 6, 3, "fair"), (2, 2, 2, "round-robin"),
              (3, 2, 2, "linux"), (2, 2, 2, "fair")]
    return _view(show, FIGSIZE), [{"pcpus": p, "vms": v, "vcpus_per_vm": c, "load": 1.0,
                                   "scheduler": sched} for p, v, c, sched in shapes], FIGSIZE


def _walk() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.memory.widgets import draw_walk

    pairs = [("2M", "4K", 4), ("2M", "2M", 4), ("4K", "4K", 5), ("1G", "4K", 4),
             ("4K", "2M", 4), ("4K", "4K", 4)]
    return (_view(draw_walk, (6.5, 4.5)),
            [{"guest_page": g, "host_page": h, "levels": n} for g, h, n in pairs], (6.5, 4.5))


def _tlb() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.memory.widgets import draw_tlb

    settings = [(2048, 64, "4K"), (4096, 64, "4K"), (16384, 64, "4K"), (65536, 64, "4K"),
                (65536, 1536, "4K"), (65536, 64, "2M"), (1024, 64, "4K")]
    return (_view(draw_tlb, (7, 3.6)),
            [{"working_set_kib": w, "tlb_entries": e, "page": p, "pattern": "random"}
             for w, e, p in settings], (7, 3.6))


def _io() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.storage.widgets import IO_FIGSIZE, draw_io, io_compare, io_workload

    def show(fig: Any, **values: Any) -> Any:     # what the explorer's change runs
        return draw_io(fig, io_compare(io_workload(**values, count=256)))

    pairs = [("raw", "sequential"), ("qcow2", "random"), ("raw", "random"),
             ("overlay", "random"), ("qcow2", "sequential"), ("overlay", "sequential")]
    return (_view(show, IO_FIGSIZE), [{"format": f, "pattern": p} for f, p in pairs],
            IO_FIGSIZE)


def _clusters() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.storage import load_scenario
    from kvmlab.storage.model import image_after
    from kvmlab.storage.plot import cluster_map_layout
    from kvmlab.storage.widgets import draw_clusters

    s = load_scenario("storage-several-writes")          # the notebook's slider
    last = image_after(s)
    room = last.image.next_free
    figsize, _rect = cluster_map_layout(last, 16, room)
    return (_view(lambda fig, n: draw_clusters(fig, s, n, 16, room), figsize),
            [{"n": k % (len(s.writes) + 1)} for k in range(1, 9)], figsize)


def _bridge() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    from kvmlab.network.widgets import draw_playground, one_bridge, send_frame

    state = {"t": one_bridge(3)}

    def draw(fig: Any, sender: str, to: str) -> Any:
        state["t"] = send_frame(state["t"], sender, to)
        return draw_playground(fig, state["t"])

    pairs = [("vm1", "vm3"), ("vm3", "vm1"), ("vm2", "broadcast"), ("vm1", "vm2"),
             ("vm2", "vm3")]
    return _view(draw, (7, 4.5)), [{"sender": a, "to": b} for a, b in pairs], (7, 4.5)


def _seeds() -> tuple[Respond, list[dict[str, Any]], tuple[float, float]]:
    import kvmlab
    from kvmlab.experiments.widgets import draw_seeds

    table = kvmlab.sweep("cpu-overcommit", grid={"ratio": [0.5, 1, 1.5, 2, 2.5, 3],
                                                 "load": [0.6], "duration_s": 1.0},
                         seeds=range(4), progress=False)
    return (_view(lambda fig, n: draw_seeds(fig, table, "ratio", "wait_share", n), (6.4, 4)),
            [{"n": n} for n in (3, 4, 2, 3, 4)], (6.4, 4))


WIDGETS: dict[str, Callable[[], tuple[Respond, list[dict[str, Any]], tuple[float, float]]]] = {
    "cpu explorer": _cpu, "walk explorer": _walk, "tlb explorer": _tlb,
    "io explorer": _io, "cluster slider": _clusters, "bridge playground": _bridge,
    "seed explorer": _seeds}
"""Each explorer: a function giving (respond, consecutive changes, figure size)."""


def baseline(figsize: tuple[float, float]) -> bytes:
    """A plain plot of ``figsize``: one line of 100 points, a title and axis labels."""
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    ax.plot(range(100), [x * x for x in range(100)])
    ax.set(title="a plain plot", xlabel="x", ylabel="y")
    return png_bytes(fig)


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def bench_widget(name: str, rounds: int = 3, quick: bool = False,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replay the changes of explorer ``name`` ``rounds`` times, alternating with the
    baseline; the first drawing (the explorer opening) is not timed."""
    respond, changes, figsize = WIDGETS[name]()
    if quick:
        changes = changes[:2]
    respond(changes[-1])
    baseline(figsize)
    times: list[float] = []
    base: list[float] = []
    for n in range(rounds):
        if log is not None:
            log(f"widgets: {name}, round {n + 1} of {rounds} ({len(changes)} changes)")
        for values in changes:
            png, seconds = timed(lambda v=values: respond(v))
            assert png[:4] == b"\x89PNG"
            times.append(seconds)
            base.append(timed(lambda: baseline(figsize))[1])
    median, base_median = statistics.median(times), statistics.median(base)
    return {"widget": name, "changes": len(times), "figsize": list(figsize),
            "median_ms": round(1000 * median, 1), "p95_ms": round(1000 * _p95(times), 1),
            "baseline_ms": round(1000 * base_median, 1),
            "ratio": round(median / base_median, 2),
            "times_ms": [round(1000 * t, 1) for t in times]}


def run(quick: bool = False, sizes: Any = None,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time every explorer (``sizes`` is the CPU benchmark's and is ignored here)."""
    rounds = 1 if quick else 3
    return {"environment": environment(),
            "widgets": [bench_widget(name, rounds, quick, log) for name in WIDGETS]}


def format_table(result: dict[str, Any]) -> str:
    """The result of :func:`run` as a readable table."""
    lines = ["Explorers: time from a changed control to the PNG ready to show",
             "   (model + drawing + Agg draw + PNG encoding; baseline: a plain plot of the "
             "same size)",
             "   widget               changes  median ms  p95 ms  baseline ms   ratio"]
    for w in result["widgets"]:
        lines.append(f"   {w['widget']:<20} {w['changes']:>7} {w['median_ms']:>10.1f} "
                     f"{w['p95_ms']:>7.1f} {w['baseline_ms']:>12.1f} {w['ratio']:>6.2f}x")
    return "\n".join(lines)


__all__ = ["WIDGETS", "baseline", "bench_widget", "format_table", "run"]
