"""Two explorers for the storage lab: an image growing write by write, and guest I/O.

A thin :mod:`kvmlab.explorer` layer over pure functions:
:func:`layout_after` and :func:`describe_write` say what the image holds after
some of a scenario's writes, :func:`io_workload` and :func:`io_compare` build and
simulate an I/O workload (kept: going back to a setting is instant);
:func:`draw_clusters` and :func:`draw_io` draw them into a figure. Only
:func:`cluster_slider` and :func:`io_explorer` need ipywidgets.

Examples
--------
>>> s = {"virtual_size": 10485760, "cluster_size": 65536,
...      "writes": [[1048576, 65536], [100, 10]]}
>>> [a.kind for a in layout_after(s, 1)]
['header', 'refcount table', 'refcount block', 'L1', 'L2', 'data']
>>> print(describe_write(s, 2))
write 1: 10 B at guest offset 100 (guest cluster 0). New: cluster 6 (data of guest
cluster 0). The file now ends at 458,752 bytes (7 clusters).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kvmlab.display import human_bytes
from kvmlab.errors import ScenarioError
from kvmlab.explorer import explorer
from kvmlab.storage.model import image_after, model_after, simulate_io
from kvmlab.storage.problems import fill

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from kvmlab.storage.qcow2 import Allocation
from kvmlab.storage.result import IoResult, IoResults
from kvmlab.storage.scenario import (
    DISKS,
    IO_FORMATS,
    IO_PATTERNS,
    IoWorkload,
    StorageScenario,
    as_scenario,
)
from kvmlab.validate import whole_number

OPERATIONS: dict[str, float] = {"write": 0.0, "read": 1.0, "mixed (half reads)": 0.5}
"""The explorer's operations and the read_fraction each stands for."""

REQUEST_SIZES = (512, 4096, 16384, 65536, 262144, 1048576)
MAX_COMPARE_REQUESTS = 1000
"""The most guest requests (``count`` times ``passes``) :func:`io_compare` simulates (the
explorer asks for 256)."""
MAX_COMPARE_WORK = 20_000_000
"""The most requests times clusters of the image :func:`io_compare` simulates: the model
looks over the image's cluster map at every write."""
MAX_COMPARE_PIECES = 100_000
"""The most clusters all requests together may touch in :func:`io_compare` (the model
spends about 5 us on each). With the three bounds, the slowest workload measured (a
prefilled overlay of 65,536 clusters, 195 random writes of 32 MiB) takes 1.2 s."""


def layout_after(scenario: StorageScenario | Mapping[str, Any], n_writes: int
                 ) -> list[Allocation]:
    """The clusters of the image file, in file order, after the first ``n_writes`` writes.

    The file only grows at its end, so ``layout_after(s, n)`` always begins with
    ``layout_after(s, n - 1)``.

    Examples
    --------
    >>> s = {"virtual_size": 1048576, "cluster_size": 4096, "writes": [[0, 512]]}
    >>> len(layout_after(s, 0)), len(layout_after(s, 1))
    (4, 6)
    """
    return model_after(scenario, n_writes).layout()


def _what(a: Allocation) -> str:
    if a.kind == "data":
        return f"data of guest cluster {a.guest_cluster}"
    return f"{a.kind} table" if a.kind in ("L1", "L2") else a.kind


def _clusters(found: list[Allocation]) -> str:
    runs: list[list[Allocation]] = []
    for a in found:
        if runs and runs[-1][-1].kind == a.kind and a.kind != "data":
            runs[-1].append(a)
        else:
            runs.append([a])
    parts = []
    for run in runs:
        where = (f"cluster {run[0].cluster}" if len(run) == 1
                 else f"clusters {run[0].cluster}-{run[-1].cluster}")
        parts.append(f"{where} ({_what(run[0])})")
    return ", ".join(parts)


def describe_write(scenario: StorageScenario | Mapping[str, Any], n_writes: int) -> str:
    """In words: what the last of the first ``n_writes`` writes added to the file.

    Examples
    --------
    >>> s = {"virtual_size": 1048576, "cluster_size": 4096, "writes": [[0, 512], [0, 4096]]}
    >>> print(describe_write(s, 0))
    The empty image: header, refcount table, refcount block and L1 table (4 clusters of
    4.00 KiB). The file ends at 16,384 bytes.
    >>> print(describe_write(s, 2))   # doctest: +ELLIPSIS
    write 1: 4.00 KiB at guest offset 0 (guest cluster 0). Nothing new: ... in place. ...
    """
    s = as_scenario(scenario)
    after = model_after(s, n_writes)
    end = f"{after.image_end_offset:,} bytes ({after.next_free} clusters)"
    if n_writes == 0:
        text = (f"The empty image: header, refcount table, refcount block and L1 table "
                f"({after.next_free} clusters of {human_bytes(s.cluster_size)}). The file ends "
                f"at {after.image_end_offset:,} bytes.")
        return fill(text)
    before = model_after(s, n_writes - 1).next_free
    offset, length = s.writes[n_writes - 1]
    cs = s.cluster_size
    first, last = offset // cs, (offset + length - 1) // cs
    guest = f"guest cluster {first}" if first == last else f"guest clusters {first}-{last}"
    new = [a for a in after.layout() if a.cluster >= before]
    head = (f"write {n_writes - 1}: {human_bytes(length)} at guest offset {offset:,} "
            f"({guest}).")
    if new:
        body = f"New: {_clusters(new)}. The file now ends at {end}."
    else:
        body = (f"Nothing new: every cluster it touches was allocated before, so the data is "
                f"overwritten in place. The file still ends at {end}.")
    return fill(f"{head} {body}")


def draw_clusters(fig: Figure, scenario: StorageScenario | Mapping[str, Any], n: int,
                  columns: int = 16, min_clusters: int = 0) -> str:
    """The cluster slider's view: the image after ``n`` writes drawn into ``fig`` (cleared
    first), laid out as :func:`kvmlab.storage.plot.cluster_map_layout` lays out the image
    after all the writes (so that every ``n`` fits one figure); what write ``n`` added.

    Examples
    --------
    >>> from kvmlab.figures import MIN_TEXT_PT, new_figure, smallest_text_pt
    >>> s = {"virtual_size": 10485760, "cluster_size": 65536,
    ...      "writes": [[1048576, 65536], [100, 10]]}
    >>> fig = new_figure((8, 3), layout=None)
    >>> draw_clusters(fig, s, 1).startswith("write 0: 64.00 KiB")
    True
    >>> len(fig.axes[0].patches), smallest_text_pt(fig) >= MIN_TEXT_PT
    (6, True)
    """
    from kvmlab.storage import plot

    s = as_scenario(scenario)
    _size, rect, room = _slider_layout(s, columns, min_clusters)
    image = image_after(s, n)
    fig.clear()
    plot.cluster_map(image, ax=fig.add_axes(rect), columns=columns, min_clusters=room)
    return describe_write(s, n)


@lru_cache(maxsize=32)
def _slider_layout(s: StorageScenario, columns: int, min_clusters: int
                   ) -> tuple[tuple[float, float], tuple[float, float, float, float], int]:
    """The figure size and grid of the image after all of ``s``'s writes, and its room."""
    from kvmlab.storage.plot import cluster_map_layout

    last = image_after(s)
    room = max(min_clusters, last.image.next_free)
    size, rect = cluster_map_layout(last, columns, room)
    return size, rect, room


def cluster_slider(scenario: StorageScenario | Mapping[str, Any], columns: int = 16) -> Any:
    """A slider over the scenario's writes; the cluster map is redrawn as they arrive.

    Returns
    -------
    ipywidgets.VBox
        The slider (``box.children[0]``), the line saying what the write added, the
        cluster map (an ``ipywidgets.Image``); ``box.explorer`` is the
        :class:`kvmlab.explorer.Explorer`.
    """
    import ipywidgets as w

    s = as_scenario(scenario)
    figsize, _rect, room = _slider_layout(s, columns, 0)
    slider = w.IntSlider(value=0, min=0, max=len(s.writes), description="writes applied",
                         style={"description_width": "initial"},
                         layout=w.Layout(width="420px"))
    return explorer({"n": slider},
                    lambda fig, n: draw_clusters(fig, s, n, columns, room),
                    figsize=figsize, layout=None, arrange=lambda controls: next(iter(controls)))


def io_workload(format: str = "qcow2", pattern: str = "sequential", request_size: int = 65536,
                operation: str = "write", disk: str = "ssd", count: int = 256,
                prefill: bool = False, **more: Any) -> IoWorkload:
    """The workload the I/O explorer's controls describe (``more``: other fields).

    Examples
    --------
    >>> w = io_workload("overlay", "random", 4096, "read", "hdd", count=10)
    >>> w.format, w.read_fraction, w.disk.name
    ('overlay', 1.0, 'hdd')
    >>> io_workload(operation="erase")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: operation must be one of ['write', 'read', ...], not 'erase'
    """
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise ScenarioError(f"operation must be one of {list(OPERATIONS)}, not {operation!r}")
    return IoWorkload.from_dict({"format": format, "pattern": pattern,
                                 "request_size": request_size,
                                 "read_fraction": OPERATIONS[operation], "disk": disk,
                                 "count": count, "prefill": prefill, **more})


def io_compare(workload: IoWorkload, seed: int = 0) -> IoResults:
    """The workload on a raw image first (the baseline), then as given (if not raw).

    Within :data:`MAX_COMPARE_REQUESTS`, :data:`MAX_COMPARE_WORK` and
    :data:`MAX_COMPARE_PIECES`, so that the explorer answers at once.

    Examples
    --------
    >>> results = io_compare(io_workload("qcow2", count=16))
    >>> [r.workload.format for r in results]
    ['raw', 'qcow2']
    """
    if not isinstance(workload, IoWorkload):
        raise ScenarioError(f"an IoWorkload (from io_workload) is needed, not "
                            f"{type(workload).__name__}")
    seed = whole_number(seed, "seed")
    requests = workload.count * workload.passes
    raw = workload.format == "raw"
    clusters = 1 if raw else -(-workload.virtual_size // workload.cluster_size)
    pieces = 0 if raw else requests * (workload.request_size // workload.cluster_size + 1)
    if (requests > MAX_COMPARE_REQUESTS or requests * clusters > MAX_COMPARE_WORK
            or pieces > MAX_COMPARE_PIECES):
        raise ScenarioError(
            f"{requests} requests (count x passes) of {human_bytes(workload.request_size)} on "
            f"an image of {clusters} clusters are more than the explorer simulates at once: "
            f"at most {MAX_COMPARE_REQUESTS} requests, requests x clusters of the image at "
            f"most {MAX_COMPARE_WORK:,}, and clusters touched by all requests at most "
            f"{MAX_COMPARE_PIECES:,}; use fewer or smaller requests, larger clusters, or "
            "simulate_io")
    return _compared(workload, seed)


@lru_cache(maxsize=128)
def _compared(workload: IoWorkload, seed: int) -> IoResults:
    """:func:`io_compare` of a checked workload (results are frozen: kept as they are)."""
    results = [_simulated_io(workload.replace(format="raw"), seed)]
    if workload.format != "raw":
        results.append(_simulated_io(workload, seed))
    return IoResults(results)


@lru_cache(maxsize=64)
def _simulated_io(workload: IoWorkload, seed: int) -> IoResult:
    """One simulation, kept: every format of a setting shares its raw baseline."""
    return simulate_io(workload, seed=seed)


def io_summary(result: IoResult) -> str:
    """One line about a simulated result.

    Examples
    --------
    >>> print(io_summary(simulate_io(io_workload("qcow2", count=16))))   # doctest: +ELLIPSIS
    qcow2, sequential write on ssd: 16 requests of 64.00 KiB, ... MB/s, mean latency ...
    """
    if not isinstance(result, IoResult):
        raise ScenarioError(f"an IoResult (from io_compare or simulate_io) is needed, not "
                            f"{type(result).__name__}")
    w = result.workload
    mb_s = result.throughput_bytes_per_s / 1e6
    speed = f"{mb_s:.1f} MB/s" if mb_s != float("inf") else "no disk I/O at all"
    return (f"{w.label} on {w.disk.name}: {len(result.requests)} requests of "
            f"{human_bytes(w.request_size)}, {speed}, mean latency "
            f"{result.mean_latency_s * 1e3:.3f} ms; {result.metadata_reads} metadata reads, "
            f"{result.metadata_writes} metadata writes, {result.cow_bytes:,} copy-on-write "
            f"bytes, {result.allocated_clusters} new clusters")


IO_FIGSIZE = (8.0, 3.8)
"""The I/O explorer's figure (inches)."""


def draw_io(fig: Figure, results: IoResults) -> list[Any]:
    """The I/O explorer's view: ``results`` as throughput bars and latency markers
    (:func:`kvmlab.storage.plot.plot_io`) in ``fig`` (cleared first; axes placed by hand
    for a figure of :data:`IO_FIGSIZE`); a line per result (:func:`io_summary`), then
    their table.

    Examples
    --------
    >>> from kvmlab.figures import new_figure
    >>> fig = new_figure(IO_FIGSIZE, layout=None)
    >>> *lines, table = draw_io(fig, io_compare(io_workload("qcow2", count=16)))
    >>> len(lines), len(fig.axes)                   # raw and qcow2; bars and latency
    (2, 2)
    """
    from kvmlab.storage.plot import plot_io

    if not isinstance(results, IoResults):
        raise ScenarioError(f"IoResults (from io_compare) are needed, not "
                            f"{type(results).__name__}")
    fig.clear()
    width, height = fig.get_size_inches()
    ax = fig.add_axes((0.8 / width, 0.75 / height, (width - 0.8 - 2.7) / width,
                       (height - 0.75 - 0.4) / height))
    plot_io(results, ax=ax)
    return [*(io_summary(r) for r in results), results.table()]


def io_explorer(*, count: int = 256, seed: int = 0, virtual_size: int = 1024 ** 3) -> Any:
    """Menus for format, pattern, request size, operation and disk over :func:`simulate_io`.

    Every change simulates the chosen workload and the same one on a raw image
    (:func:`io_compare`: at once for a setting seen before), and shows both as bars
    (throughput) and markers (latency), with a table (:func:`draw_io`).

    Returns
    -------
    ipywidgets.VBox
        The controls (``box.children[0]``), the lines about each run, the figure (an
        ``ipywidgets.Image``) and the table; ``box.explorer`` is the
        :class:`kvmlab.explorer.Explorer`.
    """
    import ipywidgets as w

    style = {"description_width": "initial"}
    layout = w.Layout(width="260px")
    controls = {
        "format": w.Dropdown(options=list(IO_FORMATS), value="qcow2", description="format",
                             style=style, layout=layout),
        "pattern": w.Dropdown(options=list(IO_PATTERNS), value="sequential",
                              description="pattern", style=style, layout=layout),
        "request_size": w.Dropdown(options=[(human_bytes(n), n) for n in REQUEST_SIZES],
                                   value=65536, description="request size", style=style,
                                   layout=layout),
        "operation": w.Dropdown(options=list(OPERATIONS), value="write",
                                description="operation", style=style, layout=layout),
        "disk": w.Dropdown(options=list(DISKS), value="ssd", description="disk", style=style,
                           layout=layout),
        "prefill": w.Checkbox(value=False, description="image already full", style=style,
                              layout=layout),
    }

    def show(fig: Figure, **values: Any) -> Any:
        workload = io_workload(**values, count=count, virtual_size=virtual_size)
        return draw_io(fig, io_compare(workload, seed=seed))

    def arrange(shown: Any) -> Any:
        shown = list(shown)
        return w.HBox([w.VBox(shown[:3]), w.VBox(shown[3:])])

    return explorer(controls, show, figsize=IO_FIGSIZE, layout=None, arrange=arrange)


__all__ = ["IO_FIGSIZE", "MAX_COMPARE_PIECES", "MAX_COMPARE_REQUESTS", "MAX_COMPARE_WORK",
           "OPERATIONS", "REQUEST_SIZES", "cluster_slider", "describe_write", "draw_clusters",
           "draw_io", "io_compare", "io_explorer", "io_summary", "io_workload",
           "layout_after"]
