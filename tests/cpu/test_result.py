import pytest

from kvmlab.cpu import CpuResult, VcpuStats, compare, recorded_result, simulate
from kvmlab.cpu.ready import ready_verdict
from kvmlab.errors import ScenarioError
from kvmlab.lab import MEASURED, SIMULATED
from kvmlab.lab import Comparison as LabComparison

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
    assert compare(r, r).max_error == 0
    other = simulate({**SEED, "vms": [{"name": "vm1", "vcpus": 2}, {"name": "vm2", "vcpus": 2}]})
    with pytest.raises(ScenarioError, match="different scenarios"):
        compare(r, other)
    flat = simulate(SEED, scheduler="round-robin")
    c = compare(r, flat)
    assert c.max_error == pytest.approx(0.5 - 1 / 3, abs=0.02)
    assert "largest error" in c.table()


def test_a_comparison_follows_the_lab_contract():
    r = simulate(SEED)
    same = compare(r, r)
    assert isinstance(same, LabComparison)
    assert (same.agrees, same.max_error) == (True, 0.0)
    assert type(same.max_error) is float
    assert list(same.to_dict())[:3] == ["agrees", "max_error", "tolerance"]
    c = compare(r, simulate(SEED, scheduler="round-robin"))
    assert not c.agrees and c.to_dict()["agrees"] is False
    with pytest.raises(ScenarioError, match="compare takes two CpuResult results"):
        compare(r, r.to_dict())


@pytest.mark.parametrize(("accelerator", "tolerance"), [("kvm", 0.05), ("tcg", 0.10),
                                                         (None, 0.10)])
def test_the_tolerance_follows_the_accelerator_that_measured(accelerator, tolerance):
    r = simulate(SEED)
    nudged = tuple(VcpuStats(v.vm, v.vcpu, v.run_s - 0.07 * v.duration_s,
                             v.wait_s + 0.07 * v.duration_s, v.slices, v.duration_s)
                   for v in r.vcpus)
    provenance = {"accelerator": accelerator} if accelerator else {}
    measured = CpuResult(r.scenario, MEASURED, nudged, r.duration_s, provenance=provenance)
    c = compare(r, measured)
    assert c.tolerance == tolerance and c.to_dict()["tolerance"] == tolerance
    assert c.max_error == pytest.approx(0.07, abs=1e-6)
    assert c.agrees is (accelerator != "kvm")
    assert f"tolerance {tolerance:.2f}" in c.table()


def test_a_result_source_is_simulated_or_measured():
    d = simulate(SEED).to_dict()
    assert d["source"] == SIMULATED
    with pytest.raises(ScenarioError, match="source"):
        CpuResult.from_dict({**d, "source": "recorded"})
    assert recorded_result("cpu-seed-example").source == MEASURED


@pytest.mark.parametrize(("pct", "verdict"), [(0, "fine"), (4.99, "fine"), (5, "watch"),
                                              (9.9, "watch"), (10, "problem"), (80, "problem")])
def test_ready_rules_of_thumb(pct, verdict):
    assert ready_verdict(pct) == verdict
