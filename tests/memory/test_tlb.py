"""The TLB and page-walk cache model over traces."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.memory.machine import identity_machine
from kvmlab.memory.tlb import PAGE, run, trace

PAGES = 32
GUEST, HOST = identity_machine(PAGES * PAGE)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["sequential", "random", "strided"]), st.integers(1, 600),
       st.integers(0, 10**6))
def test_a_tlb_that_holds_every_page_misses_once_per_page(pattern, n, seed):
    addresses = trace(pattern, n, PAGES * PAGE, seed=seed)
    r = run(addresses, GUEST, HOST, tlb_entries=PAGES)
    assert r.tlb_misses == len({a // PAGE for a in addresses})
    assert r.faults == 0 and r.walk_refs <= 24 * r.tlb_misses


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 64))
def test_caches_only_ever_help(seed, entries):
    addresses = trace("random", 300, PAGES * PAGE, seed=seed)
    small = run(addresses, GUEST, HOST, tlb_entries=entries, pwc_entries=0)
    with_pwc = run(addresses, GUEST, HOST, tlb_entries=entries, pwc_entries=32)
    assert with_pwc.tlb_misses == small.tlb_misses
    assert with_pwc.walk_refs <= small.walk_refs
    assert small.walk_refs == 24 * small.tlb_misses           # no cache: every walk is 24


def test_a_working_set_beyond_the_tlb_lowers_the_hit_rate():
    rates = []
    for pages in (8, 32, 128):
        g, h = identity_machine(pages * PAGE)
        rates.append(run(trace("random", 2000, pages * PAGE, seed=1), g, h,
                         tlb_entries=16).hit_rate)
    assert rates[0] > rates[1] > rates[2]


def test_huge_pages_reach_further():
    small = identity_machine(8 << 20)                          # 8 MiB in 4 KiB pages
    huge = identity_machine(8 << 20, page=2 << 20, host_page=2 << 20)
    addresses = trace("random", 1000, 8 << 20, seed=3)
    with_huge, with_small = run(addresses, *huge, pwc_entries=0), run(addresses, *small,
                                                                     pwc_entries=0)
    assert with_huge.tlb_misses == 4                             # four 2 MiB entries
    assert with_small.tlb_misses > 900                           # 2048 pages, 64 entries
    assert with_huge.walk_refs == 4 * 15 and with_small.walk_refs == 24 * with_small.tlb_misses


def test_a_huge_guest_page_over_small_host_pages_fills_a_small_entry():
    guest, host = identity_machine(8 << 20, page=2 << 20, host_page=4096)
    addresses = trace("strided", 512, 2 << 20, stride=4096)        # one 2 MiB guest page
    assert run(addresses, guest, host, tlb_entries=1024).tlb_misses == 512


@pytest.mark.parametrize(("args", "rule"), [
    (("zigzag", 10, 4096), "pattern must be one of"), (("random", 0, 4096), "at least one"),
])
def test_bad_traces_name_the_rule(args, rule):
    with pytest.raises(ScenarioError, match=rule):
        trace(*args)
