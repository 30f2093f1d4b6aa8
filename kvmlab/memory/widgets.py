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

from typing import Any

import matplotlib.pyplot as plt

from kvmlab.errors import ScenarioError
from kvmlab.memory.machine import identity_machine, page_size, worst_case_walk
from kvmlab.memory.paging import PAGE_SIZES, Walk
from kvmlab.memory.plot import walk_grid
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
pattern that misses every time, the whole call takes about 0.8 s."""
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
    size = working_set_kib * 1024
    guest, host = identity_machine(size, page, page)
    r = run(trace(pattern, accesses, size, seed=seed), guest, host, tlb_entries, pwc_entries)
    reach = tlb_entries * page_size(page)
    return r, (f"hit rate {r.hit_rate:.1%}, {r.refs_per_access:.2f} translation references "
               f"per access; the TLB reaches {reach // 1024} KiB of a {working_set_kib} KiB "
               "working set")


def walk_explorer() -> Any:
    """Menus for the guest's and the host's page size and the levels: the walk's grid."""
    import ipywidgets as w
    from IPython.display import display

    guest = w.Dropdown(options=SIZES, value="4K", description="guest page")
    host = w.Dropdown(options=SIZES, value="4K", description="host page")
    levels = w.Dropdown(options=(4, 5), value=4, description="levels")

    def show(guest_page: str, host_page: str, levels: int) -> None:
        walk, text = walk_view(guest_page, host_page, levels)
        print(text)
        fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
        walk_grid(walk, ax=ax)
        display(fig)
        plt.close(fig)

    out = w.interactive_output(show, {"guest_page": guest, "host_page": host,
                                      "levels": levels})
    return w.VBox([w.HBox([guest, host, levels]), out])


def tlb_explorer(accesses: int = 2000) -> Any:
    """Sliders for the working set and the TLB's size, menus for the page size and the
    access pattern: the hit rate and the cost per access."""
    import ipywidgets as w

    ws = w.IntSlider(value=1024, min=64, max=65536, step=64, description="working set KiB")
    entries = w.IntSlider(value=64, min=4, max=1536, step=4, description="TLB entries")
    page = w.Dropdown(options=("4K", "2M"), value="4K", description="page")
    pattern = w.Dropdown(options=PATTERNS, value="random", description="pattern")

    def show(working_set_kib: int, tlb_entries: int, page: str, pattern: str) -> None:
        print(tlb_view(working_set_kib, tlb_entries, page, pattern, accesses=accesses)[1])

    out = w.interactive_output(show, {"working_set_kib": ws, "tlb_entries": entries,
                                      "page": page, "pattern": pattern})
    return w.VBox([w.HBox([ws, entries]), w.HBox([page, pattern]), out])
