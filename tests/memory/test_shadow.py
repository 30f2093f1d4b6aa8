"""Shadow against nested paging: the model agrees with its own arithmetic, both ways round."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.memory.shadow import Costs, Workload, break_even_writes_per_m, compare_modes, run_mode


def test_the_nested_walk_costs_24_references_with_4_levels_each():
    assert Costs().nested_refs == 24 and Costs(guest_levels=5, host_levels=5).nested_refs == 35


@settings(max_examples=40, deadline=None)
@given(st.floats(50, 5000), st.floats(0.2, 5.0))
def test_the_winner_flips_at_the_break_even_write_rate(misses, factor):
    even = break_even_writes_per_m(misses)
    writes = even * factor
    if abs(factor - 1) < 0.3:                  # too close to call with random arrivals
        return
    r = compare_modes(Workload(misses, writes), instructions=3_000_000, seed=2)
    winner = min(r, key=lambda m: r[m].overhead_ns)
    assert winner == ("shadow" if factor < 1 else "nested")


def test_the_counts_follow_the_rates():
    r = run_mode("nested", Workload(1000, 0), instructions=2_000_000, seed=0)
    assert 1800 < r.tlb_misses < 2200 and r.pt_writes == 0
    assert r.overhead_ns == r.tlb_misses * 24 * Costs().memory_ref_ns
    assert r.overhead_pct > 0


@pytest.mark.parametrize(("call", "rule"), [
    (lambda: Workload(-1, 0), "per million instructions"),
    (lambda: run_mode("hybrid", Workload(1, 1)), "'shadow' or 'nested'"),
    (lambda: run_mode("shadow", Workload(1, 1), instructions=0), "at least one"),
])
def test_bad_input_names_the_rule(call, rule):
    with pytest.raises(ScenarioError, match=rule):
        call()
