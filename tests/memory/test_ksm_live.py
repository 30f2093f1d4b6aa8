"""KSM in a real kernel against the model (marked live): the same final counts, merging
only from the second full scan, and the timing once the scan cost is measured."""

import pytest

from kvmlab.memory import compare, run_on_host, simulate
from kvmlab.memory.model import fit_scan_cost, simulate_ksm
from kvmlab.memory.scenario import KsmScenario

pytestmark = [pytest.mark.live, pytest.mark.alone]


@pytest.mark.parametrize("scenario", [
    KsmScenario(1000, 10, pages_to_scan=100, sleep_ms=20),
    KsmScenario(600, 1, pages_to_scan=50, sleep_ms=10),        # past max_page_sharing
    KsmScenario(257, 1, pages_to_scan=64, sleep_ms=10),        # one copy left alone
], ids=["ten-contents", "one-content-600", "one-content-257"])
def test_real_ksm_merges_what_the_model_predicts(scenario, live_uri, guest_image,
                                                  no_leftovers):
    real = run_on_host(scenario, uri=live_uri)
    assert real.source == "measured"
    fitted = fit_scan_cost(scenario, real.full_scan_s())
    model = simulate_ksm(fitted)
    print(f"\n{scenario}: real {real.final()} merged at {real.merged_at_s()} s; model "
          f"{model.final()} at {model.merged_at_s()} s")
    assert real.final() == model.final() == scenario.expected_final()
    assert real.full_scans_when_merged() == model.full_scans_when_merged() == 1
    first_real_merge = next(s for s in real.samples if s.pages_sharing)
    assert first_real_merge.t_s >= real.full_scan_s()
    # The model leaves out what a merge itself costs (write-protecting the page and
    # flushing TLBs: dear under TCG) and the timer's tick; allow 10 % and one wake-up.
    wakeup_s = (fitted.pages_to_scan * fitted.scan_page_us / 1e6 + fitted.sleep_ms / 1000)
    slack = 0.10 * real.merged_at_s() + wakeup_s
    assert abs(model.merged_at_s() - real.merged_at_s()) <= slack, (model.merged_at_s(),
                                                                     real.merged_at_s(), slack)
    # the lab's comparison judges it the same way
    comparison = compare(simulate(scenario), real)
    assert comparison.agrees and comparison.model == model, comparison.table()
    assert comparison.tolerance_s == pytest.approx(slack)
