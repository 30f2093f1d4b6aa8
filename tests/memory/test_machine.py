"""Worst-case walks: (n+1)(m+1)-1 references for every combination of page sizes."""

import pytest

from kvmlab.errors import ScenarioError
from kvmlab.memory.machine import (
    BASE_VA,
    MACHINE,
    expected_references,
    identity_machine,
    page_size,
    worst_case_walk,
)
from kvmlab.memory.paging import nested_walk


@pytest.mark.parametrize(("guest", "host", "levels", "refs"), [
    ("4K", "4K", 4, 24), ("2M", "4K", 4, 19), ("4K", "2M", 4, 19), ("2M", "2M", 4, 15),
    ("1G", "1G", 4, 8), ("4K", "4K", 5, 35), ("1G", "4K", 4, 14), ("4K", "1G", 5, 23)])
def test_the_worst_case_walk_makes_n_plus_1_times_m_plus_1_minus_1_references(
        guest, host, levels, refs):
    w = worst_case_walk(guest, host, levels)
    assert w.fault is None and len(w.refs) == refs == expected_references(guest, host, levels)
    guest_refs = [r for r in w.refs if r.dimension == "guest"]
    assert len(guest_refs) == levels - {"4K": 0, "2M": 1, "1G": 2}[guest]


@pytest.mark.parametrize("guest", ["4K", "2M", "1G"])
@pytest.mark.parametrize("host", ["4K", "2M", "1G"])
def test_every_byte_of_the_working_set_lands_where_the_tables_say(guest, host):
    g, h = identity_machine(3 * page_size(guest), guest, host)
    for offset in (0, page_size(guest) - 1, 2 * page_size(guest) + 12345 % page_size(guest)):
        w = nested_walk(BASE_VA + offset, g, h)
        assert w.address == MACHINE + g.walk(BASE_VA + offset).address


@pytest.mark.parametrize("bad", ["8K", "4M", 8192, "huge"])
def test_bad_page_sizes_name_the_rule(bad):
    with pytest.raises(ScenarioError, match="x86-64 pages are 4K, 2M or 1G"):
        worst_case_walk(bad, "4K")


def test_bad_levels_name_the_rule():
    with pytest.raises(ScenarioError, match="4 or 5 levels"):
        worst_case_walk("4K", "4K", levels=3)
