"""Memory practice problems: seeded, solvable, and checked with a helpful word."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.memory.paging import nested_walk
from kvmlab.memory.problems import check, generate, main_problem


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32))
def test_every_problem_s_answer_is_what_the_walks_find(seed):
    p = generate(seed)
    assert generate(seed).solve() == p.solve()
    answer = p.solve()
    guest = p.guest.walk(p.va)
    assert answer["pa"] == guest.address
    w = nested_walk(p.va, p.guest, p.host)
    assert answer["ma"] == (None if guest.address is None else guest.address + p.machine_base)
    assert answer["ma"] == w.address and answer["references"] == len(w.refs)
    assert check(p, answer).correct
    assert str(answer["references"]) in p.explain().splitlines()[-1]


def first_seed(predicate):
    return next(s for s in range(500) if predicate(generate(s)))


@pytest.mark.parametrize(("change", "hint"), [
    (lambda p, a: {**a, "references": len(p.guest.walk(p.va).refs)}, "guest-only"),
    (lambda p, a: {**a, "references": a["references"] + 1}, "counted-data"),
    (lambda p, a: {**a, "pa": a["pa"] ^ 0x10}, "offset"),
    (lambda p, a: {**a, "pa": None, "ma": None}, "false-fault"),
    (lambda p, a: {**a, "ma": a["pa"]}, "ma"),
    (lambda p, a: {"pa": a["pa"]}, "incomplete"),
])
def test_slips_on_a_mapped_address_get_their_hint(change, hint):
    p = generate(first_seed(lambda p: p.solve()["pa"] is not None))
    feedback = check(p, change(p, p.solve()))
    assert not feedback.correct and feedback.hint == hint, feedback.message


def test_an_answer_for_an_address_that_faults_is_told_so():
    p = generate(first_seed(lambda p: p.solve()["pa"] is None))
    feedback = check(p, {"pa": 0x1000, "ma": 0x1_0000_1000, "references": 24})
    assert not feedback.correct and feedback.hint == "missed-fault"
    assert "present bit" in feedback.message


def test_the_command_line_text_hides_the_answer_until_asked():
    hidden, shown = main_problem(7, show_answer=False), main_problem(7, show_answer=True)
    assert "ARG seed 7" in hidden and "Answer:" not in hidden
    right = generate(7).solve()
    assert f"references = {right['references']}" in shown and "Worked answer" in shown


@pytest.mark.parametrize("answer", [None, 24, "0x1234"])
def test_an_answer_that_is_not_a_dict_says_what_to_give(answer):
    feedback = check(generate(1), answer)
    assert not feedback.correct and feedback.hint == "incomplete" and "dict" in feedback.message
