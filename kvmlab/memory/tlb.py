"""A TLB and a page-walk cache in front of the two-dimensional walk, over an access trace.

The TLB remembers whole translations (guest-virtual page to machine page): a hit costs no
memory reference. An entry covers a page of the smaller size of the two dimensions (a 2 MiB
guest page over 4 KiB host pages gives a 4 KiB entry), so huge pages in *both* dimensions
let the same number of entries reach 512 times further. On a miss the MMU walks; the
*page-walk cache* remembers recently read table entries of either dimension, so a walk
that shares upper levels with a recent one skips those references. Both are
least-recently-used caches of a fixed number of entries (real ones are set-associative
and split by page size: this is the teaching version).

Examples
--------
>>> from kvmlab.memory.machine import identity_machine
>>> guest, host = identity_machine(working_set=64 * 4096)     # 64 pages of 4 KiB
>>> r = run(trace("sequential", 4096, working_set=64 * 4096), guest, host, tlb_entries=64)
>>> r.tlb_misses, r.hit_rate                 # one miss per page, then 63 hits on each
(64, 0.984375)
>>> jumps = trace("strided", 128, working_set=64 * 4096, stride=4096)   # a new page each time
>>> run(jumps, guest, host, tlb_entries=16, pwc_entries=0).refs_per_access   # every one walks
24.0
>>> run(jumps, guest, host, tlb_entries=16, pwc_entries=32).refs_per_access  # upper levels cached
2.09375
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass

from kvmlab.errors import ScenarioError
from kvmlab.memory.machine import BASE_VA
from kvmlab.memory.paging import PAGE, PAGE_SIZES, PageTables, nested_walk

PATTERNS = ("sequential", "random", "strided")


def trace(pattern: str, n: int, working_set: int, stride: int = 8 * PAGE,
          seed: int = 0) -> list[int]:
    """``n`` guest-virtual addresses touching ``working_set`` bytes from ``BASE_VA``.

    ``sequential`` walks through the set 64 bytes at a time, ``strided`` jumps ``stride``
    bytes, ``random`` picks 64-byte lines at random (seeded).

    Examples
    --------
    >>> [hex(a - BASE_VA) for a in trace("strided", 3, 1 << 20, stride=8192)]
    ['0x0', '0x2000', '0x4000']
    """
    if pattern not in PATTERNS:
        raise ScenarioError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
    if working_set < 64 or n < 1:
        raise ScenarioError("a trace needs at least one access and a working set of 64 bytes")
    rng = random.Random(seed)
    lines = working_set // 64
    if pattern == "sequential":
        return [BASE_VA + (i % lines) * 64 for i in range(n)]
    if pattern == "strided":
        return [BASE_VA + (i * stride) % working_set for i in range(n)]
    return [BASE_VA + rng.randrange(lines) * 64 for _ in range(n)]


class Lru:
    """A least-recently-used cache of ``size`` keys."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ScenarioError(f"a cache has 0 or more entries, not {size}")
        self.size = size
        self.keys: OrderedDict[object, None] = OrderedDict()

    def touch(self, key: object) -> bool:
        """Look ``key`` up (a hit makes it the most recent); nothing is added."""
        if key in self.keys:
            self.keys.move_to_end(key)
            return True
        return False

    def add(self, key: object) -> None:
        """Remember ``key``, evicting the least recently used key when full."""
        if self.size:
            self.keys[key] = None
            if len(self.keys) > self.size:
                self.keys.popitem(last=False)

    def hit(self, key: object) -> bool:
        """Look ``key`` up; on a miss, remember it."""
        if self.touch(key):
            return True
        self.add(key)
        return False


@dataclass(frozen=True)
class TraceResult:
    """What a trace cost: TLB hits and misses, and memory references for translation."""

    accesses: int
    tlb_misses: int
    walk_refs: int
    faults: int

    @property
    def hit_rate(self) -> float:
        return round(1 - self.tlb_misses / self.accesses, 6)

    @property
    def refs_per_access(self) -> float:
        """Translation references per access (the data reference itself not counted)."""
        return round(self.walk_refs / self.accesses, 6)


def run(addresses: list[int], guest: PageTables, host: PageTables, tlb_entries: int = 64,
        pwc_entries: int = 32) -> TraceResult:
    """Translate every address of the trace through a TLB, a page-walk cache and the walk.

    The tables do not change during a trace, so each 4 KiB page is walked once: its TLB
    entry (the page size the walk found and the page number at that size) and its walk's
    table entries, each numbered once per trace, are kept, and on every later miss the
    entries are replayed through the page-walk cache. Every address of a page has the
    same translation, and one TLB entry covers a page only if the walk of any of its
    addresses would have made that entry (huge pages are aligned in both dimensions), so
    the one entry a page can be covered by is the only one looked up.
    """
    if tlb_entries < 0 or pwc_entries < 0:
        raise ScenarioError(f"a cache has 0 or more entries, not "
                            f"{min(tlb_entries, pwc_entries)}")
    tlb: OrderedDict[int, None] = OrderedDict()
    pwc: OrderedDict[int, None] = OrderedDict()
    tlb_seen, tlb_move, tlb_evict = tlb.__contains__, tlb.move_to_end, tlb.popitem
    pwc_move, pwc_evict = pwc.move_to_end, pwc.popitem
    pages: dict[int, tuple[int | None, tuple[int, ...], int]] = {}
    numbers: dict[tuple[str, int, int], int] = {}
    misses = refs = faults = 0
    for va in addresses:
        known = pages.get(va >> 12)        # its 4 KiB page (PAGE)
        if known is None:
            known = pages[va >> 12] = _page_walk(va, guest, host, numbers)
        entry, upper, leaf = known
        if entry is not None and tlb_seen(entry):
            tlb_move(entry)
            continue
        misses += 1
        if entry is None:
            faults += 1                    # a fault leaves nothing in the TLB
        elif tlb_entries:
            tlb[entry] = None
            if len(tlb) > tlb_entries:
                tlb_evict(last=False)
        refs += leaf                       # the leaf (the last reference) is never cached
        if not pwc_entries:
            refs += len(upper)
            continue
        for key in upper:
            if key in pwc:
                pwc_move(key)
            else:
                refs += 1
                pwc[key] = None
                if len(pwc) > pwc_entries:
                    pwc_evict(last=False)
    return TraceResult(len(addresses), misses, refs, faults)


def _page_walk(va: int, guest: PageTables, host: PageTables,
               numbers: dict[tuple[str, int, int], int]
               ) -> tuple[int | None, tuple[int, ...], int]:
    """The TLB entry of ``va``'s page (None for a fault), the numbers of its walk's table
    entries but the last, and 1 if the walk read any (the leaf), else 0."""
    walk = nested_walk(va, guest, host)
    keys = [numbers.setdefault((r.dimension, r.table, r.index), len(numbers))
            for r in walk.refs]
    size = walk.page_size
    entry = None if size is None else (va // size) * 4 + PAGE_SIZES[size]
    return entry, tuple(keys[:-1]), 1 if keys else 0
