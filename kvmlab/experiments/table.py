"""The tidy table a sweep returns: one row per run, and plots with confidence bands.

Each row holds the run's parameters, its ``seed``, its ``source`` (``'simulated'`` or
``'measured'``, as :mod:`kvmlab.lab` says) and the figures it produced.
:meth:`SweepTable.summary` groups the runs that differ only in their seed and gives each
figure's mean with a confidence interval (Student's t: with few seeds the interval is wide,
as it should be); :meth:`SweepTable.plot` draws the means as lines and the intervals as
shaded bands, in one line of code.

Examples
--------
>>> t = SweepTable([{"ratio": 1, "seed": s, "wait": w} for s, w in enumerate([0.1, 0.2, 0.3])]
...                + [{"ratio": 2, "seed": s, "wait": 0.5} for s in range(3)],
...                parameters=["ratio"], figures=["wait"])
>>> [(r["ratio"], r["wait"], r["wait_low"], r["wait_high"]) for r in t.summary("wait")]
[(1, 0.2, -0.048414, 0.448414), (2, 0.5, 0.5, 0.5)]
>>> ax = t.plot("ratio", "wait")           # means as a line, the 95 % band shaded
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvmlab.display import Table
from kvmlab.errors import ScenarioError
from kvmlab.validate import is_real

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

#: Axis labels of the figures the shipped scenarios produce.
LABELS = {
    "wait_share": "wait share of a vCPU (steal time)",
    "run_share": "run share of a vCPU",
    "ready_pct": "CPU ready %",
    "run_share_spread": "largest - smallest vCPU run share",
    "hit_rate": "TLB hit rate",
    "refs_per_access": "translation references per access",
    "ratio": "overcommit ratio (vCPUs per pCPU)",
    "working_set_kib": "working set (KiB)",
}


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom.

    Exact for 1 and 2 degrees of freedom; a Cornish-Fisher expansion around the normal
    quantile above (within 0.5 % of the tables from 3 degrees of freedom on).

    Examples
    --------
    >>> round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 2), 3)
    (12.706, 4.303)
    >>> round(t_quantile(0.975, 10), 2), round(t_quantile(0.975, 1000), 2)
    (2.23, 1.96)
    """
    if not 0 < p < 1:
        raise ScenarioError(f"a quantile's probability lies strictly between 0 and 1, not {p}")
    if df < 1:
        raise ScenarioError(f"Student's t needs at least 1 degree of freedom, not {df}")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = statistics.NormalDist().inv_cdf(p)
    v = float(df)
    return (z + (z**3 + z) / (4 * v)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4))


def mean_band(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """The mean of ``values`` and the ``level`` confidence interval of that mean.

    One value has no spread to go by, so it has no interval (NaN bounds; a plot draws no
    band), which is not the same as a certain one.

    Examples
    --------
    >>> mean_band([1.0, 2.0, 3.0])
    (2.0, -0.484138, 4.484138)
    >>> mean_band([0.5])
    (0.5, nan, nan)
    """
    if not values:
        raise ScenarioError("no values to average")
    if not 0 < level < 1:
        raise ScenarioError(f"a confidence level lies strictly between 0 and 1, not {level}")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return round(mean, 6), math.nan, math.nan
    half = (t_quantile(0.5 + level / 2, len(values) - 1) * statistics.stdev(values)
            / math.sqrt(len(values)))
    return round(mean, 6), round(mean - half, 6), round(mean + half, 6)


class SweepTable:
    """The runs of a sweep: one row per run (parameters, seed, source, figures).

    Parameters
    ----------
    rows : iterable of mapping
    parameters : sequence of str
        The columns that are parameters of the grid.
    figures : sequence of str
        The columns that are results; the rest (``seed``, ``source``) tell the runs apart.
    name : str
        The scenario's name, for titles.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]], parameters: Sequence[str],
                 figures: Sequence[str], name: str = "") -> None:
        self.rows = [dict(r) for r in rows]
        self.parameters = list(parameters)
        self.figures = list(figures)
        self.name = name

    # -- a table ---------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """Parameters, then ``seed`` and ``source`` where the rows have them, then figures."""
        present = {k for r in self.rows for k in r}
        extra = [c for c in ("seed", "source") if c in present]
        return [*self.parameters, *extra, *self.figures]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        """One column as a list, in row order."""
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; the columns are {self.columns}")
        return [r.get(column) for r in self.rows]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SweepTable):
            return NotImplemented
        return (self.rows, self.parameters, self.figures) == (other.rows, other.parameters,
                                                              other.figures)

    def __repr__(self) -> str:
        return (f"<SweepTable {self.name or ''}: {len(self)} runs, parameters "
                f"{self.parameters}, figures {self.figures}>")

    def where(self, **conditions: Any) -> SweepTable:
        """The rows whose columns have the given values.

        Examples
        --------
        >>> t = SweepTable([{"a": 1, "y": 2}, {"a": 2, "y": 3}], ["a"], ["y"])
        >>> t.where(a=2).rows
        [{'a': 2, 'y': 3}]
        """
        for column in conditions:
            self[column]                                  # a clear KeyError if unknown
        rows = [r for r in self.rows if all(r.get(c) == v for c, v in conditions.items())]
        return SweepTable(rows, self.parameters, self.figures, self.name)

    def without(self, *columns: str) -> SweepTable:
        """The table without some parameters (to put runs that differ only in them together,
        such as a model and a host sweep of different durations).

        Examples
        --------
        >>> t = SweepTable([{"a": 1, "b": 2, "y": 3}], ["a", "b"], ["y"])
        >>> t.without("b").rows, t.without("b").parameters
        ([{'a': 1, 'y': 3}], ['a'])
        """
        for column in columns:
            if column not in self.parameters:
                raise ScenarioError(f"{column!r} is not a parameter of this sweep; its "
                                    f"parameters are {self.parameters}")
        return SweepTable([{k: v for k, v in r.items() if k not in columns} for r in self.rows],
                          [p for p in self.parameters if p not in columns], self.figures,
                          self.name)

    @staticmethod
    def concat(tables: Sequence[SweepTable]) -> SweepTable:
        """One table of the rows of several (a model sweep and a host sweep, say)."""
        if not tables:
            raise ScenarioError("nothing to concatenate")
        params = list(dict.fromkeys(p for t in tables for p in t.parameters))
        figures = list(dict.fromkeys(f for t in tables for f in t.figures))
        return SweepTable([r for t in tables for r in t.rows], params, figures,
                          tables[0].name)

    def to_pandas(self) -> Any:
        """A pandas ``DataFrame`` of the rows (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ScenarioError("to_pandas() needs pandas: `pip install pandas`") from None
        return pd.DataFrame(self.rows, columns=self.columns)

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows to a CSV file with a header line; return its path."""
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def _shown(self, rows: Sequence[dict[str, Any]]) -> Table:
        return Table(rows, self.columns, title=f"{self.name}: {len(self)} runs")

    def __str__(self) -> str:
        return str(self._shown(self.rows))

    def head(self, n: int = 10) -> Table:
        """The first ``n`` runs as a :class:`Table` (``print(table)`` shows every run)."""
        return Table(self.rows[:n], self.columns,
                     title=f"{self.name}: the first {min(n, len(self))} of {len(self)} runs")

    def _repr_html_(self, max_rows: int = 8) -> str:
        if len(self) <= max_rows:
            return self._shown(self.rows)._repr_html_()
        return (self.head(max_rows)._repr_html_()
                + f"<p>... and {len(self) - max_rows} more runs: <code>print(table)</code> "
                  "shows them all, <code>table.summary()</code> averages the seeds.</p>")

    # -- statistics across seeds -------------------------------------------------
    def _group_columns(self) -> list[str]:
        """What tells the grid points apart: the parameters, and the source if there is one."""
        return [*self.parameters, *(["source"] if "source" in self.columns else [])]

    def summary(self, y: str | Sequence[str] | None = None,
                level: float = 0.95) -> list[dict[str, Any]]:
        """Per grid point (and source): each figure's mean over seeds and its interval.

        Returns one dict per point, with the parameters, ``n`` (the runs averaged) and for
        each figure ``f``: ``f`` (the mean), ``f_low`` and ``f_high``.
        """
        figures = [y] if isinstance(y, str) else list(y or self.figures)
        for f in figures:
            if f not in self.figures:
                raise ScenarioError(f"{f!r} is not a figure of this sweep; its figures are "
                                    f"{self.figures}")
        keys = self._group_columns()
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in self.rows:
            groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
        out = []
        for key, rows in groups.items():
            entry: dict[str, Any] = dict(zip(keys, key, strict=True))
            entry["n"] = len(rows)
            for f in figures:
                values = [r[f] for r in rows if isinstance(r.get(f), int | float)]
                if values:
                    entry[f], entry[f"{f}_low"], entry[f"{f}_high"] = mean_band(values, level)
            out.append(entry)
        return out

    def plot(self, x: str, y: str, by: str | None = None, *, ax: Axes | None = None,
             level: float = 0.95, logx: bool = False, label: str | None = None) -> Axes:
        """Draw ``y`` against ``x``: the mean over seeds as a line, its interval as a band.

        Parameters
        ----------
        x : str
            A numeric parameter.
        y : str
            A figure.
        by : str, optional
            A parameter (or ``'source'``) with one line per value.
        ax : matplotlib Axes, optional
            Draw into these axes (to put a model and a host sweep side by side).
        level : float
            Confidence level of the band.
        logx : bool
            A logarithmic x axis (working sets, say).
        label : str, optional
            Prefix of the legend entries.

        Raises
        ------
        ScenarioError
            If ``x`` or ``by`` is not a column, ``y`` not a figure, or another parameter
            varies too (its runs would be averaged together): the message says which.
        """
        import matplotlib.pyplot as plt

        for column in (x, by):
            if column is not None and column not in self.columns:
                raise ScenarioError(f"{column!r} is not a column of this sweep; its columns "
                                    f"are {self.columns}")
        if any(not is_real(v) for v in self[x]):
            raise ScenarioError(f"x must be a numeric parameter; {x!r} has the values "
                                f"{sorted(set(map(str, self[x])))}")
        varying = [p for p in self._group_columns()
                   if p not in (x, by) and len({str(r.get(p)) for r in self.rows}) > 1]
        if varying:
            other = varying[0]
            raise ScenarioError(
                f"parameter {other!r} varies too ({sorted(set(map(str, self[other])))}); "
                f"plot one line per value with by={other!r}, or keep one value with "
                f"table.where({other}=...)")
        if ax is None:
            _fig, ax = plt.subplots(figsize=(6.4, 4))
        points = self.summary(y, level)
        lines = sorted({p.get(by) for p in points}, key=str) if by else [None]
        for value in lines:
            mine = sorted((p for p in points if y in p and (by is None or p.get(by) == value)),
                          key=lambda p: p[x])
            name = label or ""
            if by is not None:
                name = f"{name} {by}={value}".strip() if by != "source" else f"{name} {value}"
            xs = [p[x] for p in mine]
            (line,) = ax.plot(xs, [p[y] for p in mine], marker="o", ms=4,
                              label=name.strip() or None)
            ax.fill_between(xs, [p[f"{y}_low"] for p in mine], [p[f"{y}_high"] for p in mine],
                            color=line.get_color(), alpha=0.2, linewidth=0)
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(LABELS.get(x, x))
        ax.set_ylabel(LABELS.get(y, y))
        seeds = max((p["n"] for p in points), default=0)
        band = f"{level:.0%} band" if seeds > 1 else "no band from one seed"
        ax.set_title(f"{self.name}: mean of {seeds} seed(s), {band}", fontsize=10)
        if by is not None or label:
            ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
        return ax
