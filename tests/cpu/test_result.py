import pytest

from kvmlab.cpu import CpuResult, compare, simulate
from kvmlab.cpu.result import ready_verdict
from kvmlab.errors import ScenarioError

SEED = {"pcpus": 2, "duration_s": 1, "vms": [{"name": "vm1", "vcpus": 2},
                                             {"name": "vm2", "vcpus": 4}]}


def test_json_form_has_the_documented_fields_and_round_trips():
    r = simulate(SEED)
    d = r.to_dict()
    assert set(d["vcpus"][0]) >= {"vm", "vcpu", "run_share", "wait_share"}
    again = CpuResult.from_dict(d)
    assert again.to_dict() == d


def test_compare_gives_zero_error_against_itself_and_names_the_largest():
    r = simulate(SEED)
    assert compare(r, r).max_abs_error == 0
    other = simulate({**SEED, "vms": [{"name": "vm1", "vcpus": 2}, {"name": "vm2", "vcpus": 2}]})
    with pytest.raises(ScenarioError, match="different scenarios"):
        compare(r, other)
    flat = simulate(SEED, scheduler="round-robin")
    c = compare(r, flat)
    assert c.max_abs_error == pytest.approx(0.5 - 1 / 3, abs=0.02)
    assert "largest error" in c.table()


@pytest.mark.parametrize(("pct", "verdict"), [(0, "fine"), (4.99, "fine"), (5, "watch"),
                                              (9.9, "watch"), (10, "problem"), (80, "problem")])
def test_ready_rules_of_thumb(pct, verdict):
    assert ready_verdict(pct) == verdict
