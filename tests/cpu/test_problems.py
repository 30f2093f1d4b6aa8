"""OSTEP-style exercises: seeded problems, their answers, and friendly checking."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cpu import fair_shares, flat_shares, load_scenario, simulate
from kvmlab.cpu.problems import (
    TOLERANCE,
    Feedback,
    Problem,
    check,
    generate,
    main_problem,
    worked_answer,
)

seeds = st.integers(0, 2**32)


def seed_problem(vm: str = "vm2") -> Problem:
    return Problem(0, load_scenario("cpu-seed-example"), vm)


# -- generating --------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_problem():
    assert generate(42) == generate(42)
    assert generate(42).question == generate(42).question
    assert len({generate(s).scenario for s in range(40)}) > 20


def test_problems_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        generate(1).vm = "vm9"  # type: ignore[misc]


@settings(max_examples=200)
@given(seed=seeds)
def test_generated_problems_stay_in_the_promised_ranges(seed):
    p = generate(seed)
    s = p.scenario
    assert 1 <= s.pcpus <= 4
    assert 1 <= len(s.vms) <= 3
    assert all(1 <= vm.vcpus <= 4 for vm in s.vms)
    assert all(vm.load == 1.0 and vm.pin is None and vm.trace is None for vm in s.vms)
    assert p.vm in [vm.name for vm in s.vms]
    assert f"each vCPU of {p.vm} run" in p.question
    assert str(p) == p.question


def test_some_problems_have_unequal_shares():
    assert any(len({vm.shares for vm in generate(s).scenario.vms}) > 1 for s in range(60))


# -- solving -----------------------------------------------------------------------------
@settings(max_examples=200)
@given(seed=seeds)
def test_solve_is_the_closed_form_and_uses_at_most_every_pcpu(seed):
    p = generate(seed)
    answer = p.solve()
    assert answer == fair_shares(p.scenario)
    assert all(0 < share <= 1 for share in answer.values())
    used = sum(answer[vm.name] * vm.vcpus for vm in p.scenario.vms)
    assert used == pytest.approx(min(p.scenario.pcpus, p.scenario.total_vcpus), abs=1e-5)


@settings(max_examples=12, deadline=None)
@given(seed=seeds)
def test_the_model_agrees_with_the_answer(seed):
    p = generate(seed)
    result = simulate(p.scenario.with_duration(2.0), seed=seed % 1000, record_timeline=False)
    answer = p.solve()
    for v in result.vcpus:
        assert v.run_share == pytest.approx(answer[v.vm], abs=TOLERANCE)


def test_worked_answer_walks_through_the_cap():
    s = load_scenario("cpu-unequal-shares-unpinned")
    text = worked_answer(s)
    assert "2 x 2048/3072" in text
    assert "vm1: 2 vCPUs, 0.667 each" in text
    capped = Problem(0, s.from_dict({"pcpus": 3, "duration_s": 1, "vms": [
        {"name": "big", "vcpus": 1, "shares": 4096},
        {"name": "small", "vcpus": 2, "shares": 1024}]}), "small")
    assert capped.solve() == {"big": 1.0, "small": 1.0}
    assert "big cannot use 2.4 pCPUs with only 1 vCPU" in capped.explain()


# -- checking ----------------------------------------------------------------------------
def test_check_accepts_the_right_answer_in_either_form():
    p = seed_problem("vm2")
    for answer in (0.25, 0.25 + TOLERANCE * 0.9, {"vm2": 0.25}, {"vm1": 0.5, "vm2": 0.25}):
        feedback = check(p, answer)
        assert feedback.correct, feedback.message
        assert feedback.message.startswith("Right")


def test_check_names_the_vm_that_is_off():
    p = seed_problem("vm2")
    feedback = check(p, {"vm1": 0.5, "vm2": 0.3})
    assert not feedback.correct
    assert "vm2" in feedback.message and "too high" in feedback.message
    assert "vm1" not in feedback.message.split(".")[0]
    assert not check(p, 0.25 + 2 * TOLERANCE).correct


def test_check_recognises_flat_shares():
    p = seed_problem("vm1")
    flat = flat_shares(p.scenario)
    feedback = check(p, flat)
    assert not feedback.correct
    assert "ignores VMs" in feedback.message and "cgroup" in feedback.message
    assert "too low for vm1" in feedback.message and "too high for vm2" in feedback.message
    assert "ignores VMs" in check(p, flat["vm1"]).message


def test_check_gives_targeted_hints():
    p = seed_problem("vm2")
    assert "percentages" in check(p, 25).message
    assert "divide the VM's part" in check(p, {"vm1": 1.0, "vm2": 1.0}).message
    assert "between 0 and 1" in check(p, -0.2).message
    capped = Problem(0, load_scenario("cpu-seed-example").from_dict({
        "pcpus": 3, "duration_s": 1, "vms": [{"name": "big", "vcpus": 1, "shares": 4096},
                                             {"name": "small", "vcpus": 2, "shares": 512},
                                             {"name": "other", "vcpus": 2, "shares": 512}]}),
        "small")
    assert "cannot use more pCPUs" in check(capped, {"big": 2.4, "small": 0.15}).message
    assert "not wasted" in check(capped, {"big": 1.0, "small": 0.15}).message
    unequal = Problem(0, load_scenario("cpu-unequal-shares-unpinned"), "vm2")
    assert "do not have equal shares" in check(unequal, {"vm1": 0.5, "vm2": 0.5}).message


def test_check_is_kind_about_malformed_answers():
    p = seed_problem("vm2")
    assert "No answer yet" in check(p, None).message
    assert "No answer yet" in check(p, {}).message
    assert "no VM 'vm7'" in check(p, {"vm7": 0.5}).message
    assert "should be a number" in check(p, "a quarter").message  # type: ignore[arg-type]
    assert "include it" in check(p, {"vm1": 0.5}).message


@settings(max_examples=150)
@given(seed=seeds, delta=st.floats(2.5 * TOLERANCE, 0.5), sign=st.sampled_from([-1, 1]))
def test_check_property_right_passes_and_off_names_the_vm(seed, delta, sign):
    p = generate(seed)
    answer = p.solve()
    assert check(p, answer).correct
    assert check(p, answer[p.vm]).correct
    wrong = {**answer, p.vm: answer[p.vm] + sign * delta}
    feedback = check(p, wrong)
    assert not feedback.correct
    assert p.vm in feedback.message


def test_feedback_prints_as_its_message():
    feedback = check(seed_problem(), 0.25)
    assert isinstance(feedback, Feedback)
    assert str(feedback) == feedback.message


# -- the command line's text ----------------------------------------------------------------
def test_main_problem_prints_settings_problem_and_maybe_the_answer():
    hidden = main_problem(17, show_answer=False)
    shown = main_problem(17, show_answer=True)
    p = generate(17)
    assert hidden.splitlines()[0] == "ARG seed 17"
    assert "-s 17" in hidden
    assert p.question in hidden and p.question in shown
    assert "-c" in hidden and "Answer (" not in hidden and "Worked" not in hidden
    assert "Answer" in shown and p.explain() in shown
    for vm, share in p.solve().items():
        assert f"{vm}: {share:.4g}" in shown
    assert main_problem(17, show_answer=True) == shown
