"""A slider over the number of seeds: watch a confidence band narrow as runs are added.

A thin ``ipywidgets`` layer over pure functions: :func:`first_seeds` keeps the runs of
the first ``n`` seeds of a table, :func:`band_widths` measures each point's band, and
:meth:`~kvmlab.experiments.table.SweepTable.plot` draws. Only :func:`seed_explorer` needs
ipywidgets.

Examples
--------
>>> from kvmlab.experiments import sweep
>>> t = sweep("cpu-overcommit", {"ratio": [2], "load": 0.6, "duration_s": 1}, range(6),
...           executor="serial", progress=False)
>>> [round(band_widths(first_seeds(t, n), "ratio", "wait_share")[2], 3) for n in (2, 6)]
[0.066, 0.042]
"""

from __future__ import annotations

from typing import Any

from kvmlab.errors import ScenarioError
from kvmlab.experiments.table import SweepTable
from kvmlab.validate import is_whole, real_number, text


def first_seeds(table: SweepTable, n: int) -> SweepTable:
    """The runs of the ``n`` smallest seeds of ``table``.

    Examples
    --------
    >>> t = SweepTable([{"x": 1, "seed": s, "y": s} for s in (4, 0, 2)], ["x"], ["y"])
    >>> first_seeds(t, 2)["seed"]
    [0, 2]
    """
    table = _table(table)
    if "seed" not in table.columns:
        raise ScenarioError(f"the table has no seed column; its columns are {table.columns}")
    seeds = sorted(set(table["seed"]))
    if not (is_whole(n) and 1 <= n <= len(seeds)):
        raise ScenarioError(f"n is a number of seeds from 1 to {len(seeds)}, not {n!r}")
    keep = set(seeds[:n])
    return SweepTable([r for r in table.rows if r["seed"] in keep], table.parameters,
                      table.figures, table.name)


def band_widths(table: SweepTable, x: str, y: str, level: float = 0.95) -> dict[Any, float]:
    """For each value of ``x``: the width of the ``level`` band of ``y``'s mean.

    Examples
    --------
    >>> t = SweepTable([{"x": 1, "seed": s, "y": v} for s, v in enumerate([1.0, 3.0])],
    ...                ["x"], ["y"])
    >>> band_widths(t, "x", "y")
    {1: 25.41241}
    >>> band_widths(t, "y", "x")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: x must be a parameter of the sweep (['x']), not 'y'
    """
    table = _table(table)
    if text(x, "x") not in table.parameters:
        raise ScenarioError(f"x must be a parameter of the sweep ({table.parameters}), not {x!r}")
    if text(y, "y") not in table.figures:
        raise ScenarioError(f"y must be a figure of the sweep ({table.figures}), not {y!r}")
    level = real_number(level, "level")
    if not 0 < level < 1:
        raise ScenarioError(f"level is a confidence level between 0 and 1 (0.95), not {level:g}")
    return {p[x]: round(p[f"{y}_high"] - p[f"{y}_low"], 6) for p in table.summary(y, level)
            if f"{y}_high" in p}


def _table(table: object) -> SweepTable:
    if not isinstance(table, SweepTable):
        raise ScenarioError(f"a SweepTable (from sweep or recorded_sweep) is needed, not "
                            f"{type(table).__name__}")
    return table


def draw_seeds(fig: Any, table: SweepTable, x: str, y: str, n: int,
               by: str | None = None) -> str | None:
    """The seed explorer's view: the first ``n`` seeds of ``table`` drawn into ``fig``
    (cleared first); a line about the widest band (None with ``by``)."""
    part = first_seeds(table, n)
    fig.clear()
    part.plot(x, y, by=by, ax=fig.add_subplot())
    widths = band_widths(part, x, y) if by is None else {}
    if widths:
        return f"The widest band with {n} seeds: {max(widths.values()):.3f}."
    return None


def seed_explorer(table: SweepTable, x: str, y: str, by: str | None = None) -> Any:
    """A slider for how many of the table's seeds to use, above the plot it redraws.

    Returns
    -------
    ipywidgets.VBox
        The slider (``box.children[0]``) above the output (``box.children[1]``: a line
        about the bands, the figure).
    """
    import ipywidgets as w

    from kvmlab.explorer import Explorer

    most = len(set(table["seed"]))
    if most < 2:
        raise ScenarioError("a band needs at least two seeds; sweep with more seeds")
    slider = w.IntSlider(2, min=2, max=most, description="seeds", continuous_update=False)
    made = Explorer({"n": slider}, lambda fig, n: draw_seeds(fig, table, x, y, n, by),
                    figsize=(6.4, 4), arrange=lambda _controls: slider)
    box = w.VBox([slider, w.VBox([made.above, made.image, made.below])])
    box.explorer = made
    return box
