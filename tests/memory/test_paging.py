"""x86-64 walks: one dimension, two dimensions, page sizes and faults."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.memory import PageTables, nested_walk

GiB = 1 << 30


def machine(guest_levels=4, host_levels=4, host_page=4096, guest_page=4096):
    guest = PageTables(guest_levels, base=0x10_0000)
    guest.map(0x4000_0000_0000 if guest_levels == 4 else 0x40_0000_0000_0000, 0x20_0000,
              guest_page)
    host = PageTables(host_levels, base=0x4000_0000)
    for gpa in range(0, 0x40_0000, host_page):           # the guest's first 4 MiB
        host.map(gpa, 0x1_0000_0000 + gpa, host_page)
    return guest, host


@pytest.mark.parametrize(("g", "h", "refs"), [(4, 4, 24), (5, 5, 35), (4, 5, 29), (5, 4, 29)])
def test_a_nested_walk_makes_n_plus_1_times_m_plus_1_minus_1_references(g, h, refs):
    guest, host = machine(g, h)
    va = 0x4000_0000_0000 if g == 4 else 0x40_0000_0000_0000
    w = nested_walk(va + 0x10, guest, host)
    assert w.fault is None and w.address == 0x1_0000_0000 + 0x20_0010
    assert len(w.refs) == refs == (g + 1) * (h + 1) - 1
    assert sum(r.dimension == "guest" for r in w.refs) == g


def test_huge_pages_shorten_both_dimensions():
    guest, host = machine(host_page=2 << 20, guest_page=2 << 20)
    w = nested_walk(0x4000_0000_0000, guest, host)
    assert len(w.refs) == (3 + 1) * (3 + 1) - 1
    assert [r.dimension for r in w.refs[:4]] == ["nested", "nested", "nested", "guest"]


def test_faults_are_results_and_say_which_dimension():
    guest, host = machine()
    assert "guest page fault" in nested_walk(0x1000, guest, host).fault
    empty_host = PageTables(4, base=0x4000_0000)
    w = nested_walk(0x4000_0000_0000, guest, empty_host)
    assert w.address is None and w.fault.startswith("nested fault reading the guest's PML4")
    with pytest.raises(ScenarioError, match="not a canonical 48-bit address: bits 63-47"):
        guest.walk(1 << 48)


@pytest.mark.parametrize(("args", "rule"), [
    ((0x1000, 0x2000, 8192), "4 KiB, 2 MiB or 1 GiB"),
    ((0x1000, 0x20_0000, 2 << 20), "starts on a multiple of its size"),
    ((1 << 48, 0, 4096), "not a canonical 48-bit address"),
    ((0xFFFF_0000_0000_0000, 0, 4096), "not a canonical 48-bit address"),
    ((0, 1 << 52, 4096), "does not fit in 52 bits"),
])
def test_bad_mappings_name_the_rule(args, rule):
    with pytest.raises(ScenarioError, match=rule):
        PageTables(4).map(*args)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, (1 << 35) - 1), st.integers(0, (1 << 20) - 1),
                          st.sampled_from([4096, 2 << 20])), min_size=1, max_size=8),
       st.integers(0, 4095))
def test_the_nested_walk_equals_a_guest_walk_then_a_host_walk(pages, offset):
    guest = PageTables(4, base=0x10_0000)
    host = PageTables(4, base=0x8000_0000)
    mapped = []
    for va_page, pa_page, size in pages:
        va, pa = va_page * size % (1 << 47) // size * size, pa_page * size % GiB // size * size
        try:
            guest.map(va, 0x4000_0000 + pa, size)
            mapped.append(va)
        except ScenarioError:
            continue                                    # overlaps a huge page: skipped
    host.map(0, 0x2_0000_0000, GiB)                      # guest-physical 0-1 GiB
    host.map(GiB, 0x3_0000_0000, GiB)                    # and 1-2 GiB
    for va in mapped:
        direct = guest.walk(va + offset)
        nested = nested_walk(va + offset, guest, host)
        assert nested.address == host.walk(direct.address).address
