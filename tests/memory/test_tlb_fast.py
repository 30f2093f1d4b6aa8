"""The fast TLB model counts exactly what a plain, one-lookup-per-page-size model counts."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.memory.machine import BASE_VA, identity_machine
from kvmlab.memory.paging import PAGE, PAGE_SIZES, PageTables, nested_walk
from kvmlab.memory.tlb import TraceResult, run


def _lru_hit(cache: OrderedDict, key: object, size: int, add: bool = True) -> bool:
    if key in cache:
        cache.move_to_end(key)
        return True
    if add and size:
        cache[key] = None
        if len(cache) > size:
            cache.popitem(last=False)
    return False


def reference(addresses: list[int], guest: PageTables, host: PageTables, tlb_entries: int,
              pwc_entries: int) -> TraceResult:
    """The model as first written: every page size looked up, every walk made anew."""
    tlb: OrderedDict = OrderedDict()
    pwc: OrderedDict = OrderedDict()
    misses = refs = faults = 0
    for va in addresses:
        if any(_lru_hit(tlb, (size, va // size), tlb_entries, add=False)
               for size in PAGE_SIZES):
            continue
        misses += 1
        walk = nested_walk(va, guest, host)
        keys = [(r.dimension, r.table, r.index) for r in walk.refs]
        if walk.page_size is None:
            faults += 1
        else:
            _lru_hit(tlb, (walk.page_size, va // walk.page_size), tlb_entries)
        refs += sum(not _lru_hit(pwc, k, pwc_entries) for k in keys[:-1]) + bool(keys)
    return TraceResult(len(addresses), misses, refs, faults)


MACHINES = {(g, h): identity_machine(3 << 21, g, h) for g in ("4K", "2M") for h in ("4K", "2M")}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(MACHINES)),
       st.lists(st.integers(0, (4 << 21) // 64 - 1), min_size=1, max_size=300),
       st.integers(0, 12), st.integers(0, 12))
def test_fast_model_equals_the_reference(pair, lines, tlb_entries, pwc_entries):
    """Mixed page sizes, addresses past the working set (faults), tiny and empty caches."""
    guest, host = MACHINES[pair]
    addresses = [BASE_VA + 64 * line for line in lines]
    assert run(addresses, guest, host, tlb_entries, pwc_entries) == reference(
        addresses, guest, host, tlb_entries, pwc_entries)


def test_a_huge_page_entry_covers_its_small_pages() -> None:
    guest, host = MACHINES[("2M", "2M")]
    addresses = [BASE_VA + k * PAGE for k in range(512)]
    r = run(addresses, guest, host, tlb_entries=1, pwc_entries=0)
    assert (r.tlb_misses, r.faults) == (1, 0)
