"""KSM on simpy and the balloon's arithmetic: the model, its scenarios and its results."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.errors import ScenarioError
from kvmlab.memory.model import balloon_plan, fit_scan_cost, simulate_ksm
from kvmlab.memory.result import KsmResult
from kvmlab.memory.scenario import BalloonGuest, KsmScenario


@st.composite
def scenarios(draw):
    pages, to_scan = draw(st.integers(1, 700)), draw(st.integers(1, 300))
    sleep_ms, scan_us = draw(st.sampled_from([0, 5, 20])), draw(st.sampled_from([1.0, 50.0]))
    full_scan_s = pages * scan_us / 1e6 + -(-pages // to_scan) * sleep_ms / 1000
    return KsmScenario(pages=pages, distinct=draw(st.integers(1, pages)),
                       pages_to_scan=to_scan, sleep_ms=sleep_ms, scan_page_us=scan_us,
                       max_page_sharing=draw(st.sampled_from([2, 3, 256])),
                       duration_s=3 * full_scan_s)     # room for three full scans


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_ksm_merges_everything_mergeable_and_only_from_the_second_full_scan(s):
    r = simulate_ksm(s)
    assert r.final() == s.expected_final()
    shared, sharing = r.final()
    assert shared + sharing <= s.pages
    if shared:
        assert r.full_scans_when_merged() == 1          # during the second full scan
        first_merge = next(x for x in r.samples if x.pages_sharing)
        assert first_merge.t_s >= r.full_scan_s()
    counts = [(x.pages_shared, x.pages_sharing) for x in r.samples]
    assert counts == sorted(counts)                      # nothing is ever unmerged here


def test_a_lone_copy_beyond_max_page_sharing_stays_unmerged():
    assert KsmScenario(257, 1).expected_final() == (1, 255)
    assert KsmScenario(258, 1).expected_final() == (2, 256)


def test_the_fitted_scan_cost_reproduces_the_first_full_scan():
    s = KsmScenario(1000, 10, pages_to_scan=100, sleep_ms=20)
    fitted = fit_scan_cost(s, 0.3)
    assert simulate_ksm(fitted).full_scan_s() == pytest.approx(0.3, abs=1e-6)
    assert fit_scan_cost(s, 0.01).scan_page_us == 0           # faster than sleeping allows


def test_merging_costs_time_when_asked():
    cheap = simulate_ksm(KsmScenario(1000, 10, scan_page_us=10))
    dear = simulate_ksm(KsmScenario(1000, 10, scan_page_us=10, merge_us=100))
    assert dear.merged_at_s() > cheap.merged_at_s() and dear.final() == cheap.final()


def test_results_survive_json():
    r = simulate_ksm(KsmScenario(50, 5, pages_to_scan=10))
    assert KsmResult.from_dict(r.to_dict()) == r


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"pages": 0, "distinct": 1}, "at least 1 mergeable page"),
    ({"pages": 5, "distinct": 6}, "distinct contents must be 1-5"),
    ({"pages": 5, "distinct": 1, "pages_to_scan": 0}, "pages_to_scan must be at least 1"),
    ({"pages": 5, "distinct": 1, "sleep_ms": -1}, "sleep_ms must be a finite number"),
    ({"pages": 5, "distinct": 1, "max_page_sharing": 1}, "max_page_sharing must be at least 2"),
])
def test_bad_ksm_scenarios_name_the_rule(kwargs, rule):
    with pytest.raises(ScenarioError, match=rule):
        KsmScenario(**kwargs)


@settings(max_examples=100)
@given(st.integers(1, 1 << 16), st.lists(st.tuples(st.integers(1, 8192), st.integers(0, 8192),
                                                    st.integers(0, 8192)), max_size=6))
def test_the_balloon_gives_back_exactly_what_it_holds(host, specs):
    guests = [BalloonGuest(f"g{i}", m, min(b, m - 1), min(u, m)) for i, (m, b, u)
              in enumerate(specs)]
    plan = balloon_plan(host, guests)
    assert plan.promised_mib - plan.needed_mib == sum(g.balloon_mib for g in guests)
    assert plan.fits == (plan.needed_mib <= host)
    for g in guests:
        assert g.squeezed_mib == max(0, g.used_mib - (g.memory_mib - g.balloon_mib))


@pytest.mark.parametrize(("guest", "rule"), [
    (lambda: BalloonGuest("a", 0), "at least 1 MiB"),
    (lambda: BalloonGuest("a", 100, balloon_mib=100), "the balloon holds 0 to less than"),
    (lambda: BalloonGuest("a", 100, used_mib=101), "used memory is 0-100 MiB"),
    (lambda: balloon_plan(100, [BalloonGuest("a", 10), BalloonGuest("a", 10)]), "must differ"),
])
def test_bad_balloons_name_the_rule(guest, rule):
    with pytest.raises(ScenarioError, match=rule):
        guest()
