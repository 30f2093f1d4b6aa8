"""Explorers for the memory lab: a thin ``ipywidgets`` layer over pure functions.

:func:`walk_view` and :func:`tlb_view` compute what an explorer shows; only
:func:`walk_explorer` and :func:`tlb_explorer` need ipywidgets.

Examples
--------
>>> walk, text = walk_view("2M", "4K", levels=4)
>>> text
'guest 2M pages (3 levels walked) over host 4K pages (4 levels): (3+1)(4+1)-1 = 19 references'
>>> result, text = tlb_view(working_set_kib=512, tlb_entries=64, page="4K", pattern="random")
>>> result.accesses, text.startswith("hit rate")
(2000, True)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from matplotlib.figure import Figure

from kvmlab.errors import ScenarioError
from kvmlab.explorer import explorer
from kvmlab.memory.machine import identity_machine, page_size, worst_case_walk
from kvmlab.memory.paging import PAGE_SIZES, PageTables, Walk
from kvmlab.memory.plot import tlb_point, walk_grid
from kvmlab.memory.tlb import PATTERNS, TraceResult, run, trace
from kvmlab.validate import text, whole_number

SIZES = ("4K", "2M", "1G")
LEVELS = (4, 5)
"""x86-64 page tables have 4 levels, or 5 with LA57."""
MAX_WORKING_SET_KIB = 1 << 30
"""The largest working set :func:`tlb_view` maps (1 TiB: it starts at 64 TiB, and 4-level
tables reach 128 TiB)."""
MAX_TLB_PAGES = 32768
"""The most pages :func:`tlb_view` maps for the working set (128 MiB of 4 KiB pages)."""
MAX_ACCESSES = 10_000
"""The longest trace :func:`tlb_view` runs: with the largest working set and a random
pattern that misses every time, the whole call takes about 0.4 s (the first time; the
explorer keeps the machines and the results it has computed)."""
WORKING_SETS_KIB = tuple(64 << k for k in range(11))
"""The TLB explorer's working sets: 64 KiB to 64 MiB, each twice the one before."""
MAX_ENTRIES = 1 << 16
"""The most entries of a TLB or a page-walk cache :func:`tlb_view` models."""


def _page(value: Any, what: str) -> int:
    """A page size given as ``"4K"``, ``"2M"`` or ``"1G"``, in bytes."""
    if text(value, what).upper() not in SIZES:
        raise ScenarioError(f"{what} must be one of {list(SIZES)}, not {value!r}")
    return page_size(value)


def _levels(levels: Any) -> int:
    if whole_number(levels, "levels") not in LEVELS:
        raise ScenarioError(f"levels must be 4 or 5 (x86-64 page tables), not {levels}")
    return levels


def walk_view(guest_page: str, host_page: str, levels: int = 4) -> tuple[Walk, str]:
    """The worst-case walk for a pair of page sizes, and a line that counts it.

    Examples
    --------
    >>> walk_view("4K", "8K")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: host_page must be one of ['4K', '2M', '1G'], not '8K'
    """
    _page(guest_page, "guest_page")
    _page(host_page, "host_page")
    levels = _levels(levels)
    w = worst_case_walk(guest_page, host_page, levels)
    n = levels - PAGE_SIZES[page_size(guest_page)] + 1
    m = levels - PAGE_SIZES[page_size(host_page)] + 1
    return w, (f"guest {guest_page} pages ({n} levels walked) over host {host_page} pages "
               f"({m} levels): ({n}+1)({m}+1)-1 = {len(w.refs)} references")


def tlb_view(working_set_kib: int, tlb_entries: int, page: str = "4K",
             pattern: str = "random", pwc_entries: int = 32, accesses: int = 2000,
             seed: int = 0) -> tuple[TraceResult, str]:
    """Run a trace through the TLB for one setting; the result and a line about it.

    Raises
    ------
    ScenarioError
        For a working set of more than :data:`MAX_TLB_PAGES` pages (or
        :data:`MAX_WORKING_SET_KIB`), more than :data:`MAX_ACCESSES` accesses, more than
        :data:`MAX_ENTRIES` entries, or a page size or pattern the model does not know.

    Examples
    --------
    >>> tlb_view(working_set_kib=1 << 20, tlb_entries=64, page="4K")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a working set of 1048576 KiB is 262144 pages of 4K; ...
    """
    working_set_kib = whole_number(working_set_kib, "working_set_kib", low=1,
                                   high=MAX_WORKING_SET_KIB, unit="KiB")
    tlb_entries = whole_number(tlb_entries, "tlb_entries", low=1, high=MAX_ENTRIES)
    pwc_entries = whole_number(pwc_entries, "pwc_entries", low=0, high=MAX_ENTRIES)
    accesses = whole_number(accesses, "accesses", low=1, high=MAX_ACCESSES)
    seed = whole_number(seed, "seed")
    if text(pattern, "pattern") not in PATTERNS:
        raise ScenarioError(f"pattern must be one of {list(PATTERNS)}, not {pattern!r}")
    pages = -(-working_set_kib * 1024 // _page(page, "page"))
    if pages > MAX_TLB_PAGES:
        raise ScenarioError(f"a working set of {working_set_kib} KiB is {pages} pages of "
                            f"{page}; the explorer maps at most {MAX_TLB_PAGES}: use a smaller "
                            "working set or larger pages")
    r = _trace_result(working_set_kib * 1024, page_size(page), pattern, tlb_entries,
                      pwc_entries, accesses, seed)
    reach = tlb_entries * page_size(page)
    return r, (f"hit rate {r.hit_rate:.1%}, {r.refs_per_access:.2f} translation references "
               f"per access; the TLB reaches {reach // 1024} KiB of a {working_set_kib} KiB "
               "working set")


@lru_cache(maxsize=16)
def _machine(size: int, page: int) -> tuple[PageTables, PageTables]:
    """The identity machine of a working set (kept: the explorer comes back to them)."""
    return identity_machine(size, page, page)


@lru_cache(maxsize=512)
def _trace_result(size: int, page: int, pattern: str, tlb_entries: int, pwc_entries: int,
                  accesses: int, seed: int) -> TraceResult:
    guest, host = _machine(size, page)
    return run(trace(pattern, accesses, size, seed=seed), guest, host, tlb_entries,
               pwc_entries)


def _kib(kib: int) -> str:
    return f"{kib >> 10} MiB" if kib >= 1024 and kib % 1024 == 0 else f"{kib} KiB"


def draw_walk(fig: Figure, guest_page: str, host_page: str, levels: int) -> str:
    """The walk explorer's view: :func:`walk_view`'s grid drawn into ``fig``; its line."""
    walk, line = walk_view(guest_page, host_page, levels)
    fig.clear()
    walk_grid(walk, ax=fig.add_subplot())
    return line


def draw_tlb(fig: Figure, working_set_kib: int, tlb_entries: int, page: str, pattern: str,
             accesses: int = 2000, tried: dict[int, float] | None = None) -> str:
    """The TLB explorer's view: this setting's hit rate against the working set, with the
    TLB's reach and the hit rates of working sets ``tried`` before (KiB to hit rate) with
    the same TLB; :func:`tlb_view`'s line."""
    result, line = tlb_view(working_set_kib, tlb_entries, page, pattern, accesses=accesses)
    seen = {**(tried or {}), working_set_kib: result.hit_rate}
    tlb_point(fig, working_set_kib, seen, tlb_entries * page_size(page) // 1024,
              f"{tlb_entries} entries of {page} pages, {pattern} accesses")
    return line


def walk_explorer() -> Any:
    """Menus for the guest's and the host's page size and the levels: the walk's grid.

    Returns
    -------
    ipywidgets.VBox
        The menus (``box.children[0]``), the line counting the walk, the grid.
    """
    import ipywidgets as w

    guest = w.Dropdown(options=SIZES, value="4K", description="guest page")
    host = w.Dropdown(options=SIZES, value="4K", description="host page")
    levels = w.Dropdown(options=LEVELS, value=4, description="levels")
    return explorer({"guest_page": guest, "host_page": host, "levels": levels},
                    lambda fig, **v: draw_walk(fig, v["guest_page"], v["host_page"],
                                               v["levels"]),
                    figsize=(6.5, 4.5))


def tlb_explorer(accesses: int = 2000) -> Any:
    """A slider for the working set (64 KiB to 64 MiB, doubling), one for the TLB's
    entries, menus for the page size and the access pattern: the hit rate and the cost
    per access, drawn against the working set.

    Returns
    -------
    ipywidgets.VBox
        The controls (``box.children[0]``), the line about the run, the figure.
    """
    import ipywidgets as w

    style = {"description_width": "initial"}
    ws = w.SelectionSlider(options=[(_kib(k), k) for k in WORKING_SETS_KIB], value=1024,
                           description="working set", continuous_update=False,
                           style=style, layout=w.Layout(width="420px"))
    entries = w.IntSlider(value=64, min=4, max=1536, step=4, description="TLB entries",
                          continuous_update=False, style=style,
                          layout=w.Layout(width="420px"))
    page = w.Dropdown(options=("4K", "2M"), value="4K", description="page")
    pattern = w.Dropdown(options=PATTERNS, value="random", description="pattern")

    tried: dict[tuple[int, str, str], dict[int, float]] = {}

    def draw(fig: Figure, working_set_kib: int, tlb_entries: int, page: str,
             pattern: str) -> str:
        mine = tried.setdefault((tlb_entries, page, pattern), {})
        line = draw_tlb(fig, working_set_kib, tlb_entries, page, pattern, accesses, mine)
        mine[working_set_kib] = _trace_result(working_set_kib * 1024, page_size(page),
                                              pattern, tlb_entries, 32, accesses, 0).hit_rate
        return line

    return explorer({"working_set_kib": ws, "tlb_entries": entries, "page": page,
                     "pattern": pattern}, draw, figsize=(7, 3.6),
                    arrange=lambda cs: w.VBox([w.HBox(list(cs)[:2]), w.HBox(list(cs)[2:])]))
