"""OSTEP-style storage exercises: seeded problems, answers from the model, named hints."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.storage import StorageScenario, simulate
from kvmlab.storage.problems import (
    KINDS,
    NOWHERE,
    Feedback,
    Problem,
    check,
    generate,
    main_problem,
    parse_answer,
    worked_answer,
)

seeds = st.integers(0, 2**32)
KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
CS = 65536
SCENARIO = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": CS,
                                      "writes": [[MiB, CS], [100, 10], [600 * MiB, 4096]]})
# the file: 0 header, 1 refcount table, 2 refcount block, 3 L1, 4 L2 (0-512 MiB),
# 5 data g16, 6 data g0, 7 L2 (512 MiB-1 GiB), 8 data g9600


def offset_problem(x: int) -> Problem:
    return Problem(0, SCENARIO, "offset", x)


# -- generating ----------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_problem():
    assert generate(42) == generate(42)
    assert generate(42).question == generate(42).question
    assert len({(generate(s).scenario, generate(s).kind) for s in range(40)}) > 30
    assert {generate(s).kind for s in range(40)} == set(KINDS)


def test_problems_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        generate(1).kind = "end"  # type: ignore[misc]


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_every_problem_is_solvable_and_agrees_with_simulate(seed):
    p = generate(seed)
    answer = p.solve()
    result = simulate(p.scenario)
    if p.kind == "end":
        assert answer == result.image_end_offset
    elif p.kind == "clusters":
        assert answer * p.scenario.cluster_size == result.image_end_offset
    else:
        entry = next(e for e in result.map
                     if e["start"] <= p.guest_offset < e["start"] + e["length"])
        want = entry["offset"] + p.guest_offset - entry["start"] if entry["data"] else NOWHERE
        assert answer == want
    assert check(p, answer).correct
    assert check(p, str(answer)).correct


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_every_wrong_answer_is_rejected_with_a_reason(seed):
    p = generate(seed)
    right = p.solve()
    wrong = 12345 if right == NOWHERE else right + 512
    feedback = check(p, wrong)
    assert not feedback.correct
    assert len(feedback.message) > 40


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_the_question_gives_what_is_needed(seed):
    p = generate(seed)
    q = p.question
    assert f"cluster_size={p.scenario.cluster_size}" in q
    assert q.count("  write ") == len(p.scenario.writes)
    if p.kind == "offset":
        assert f"{p.guest_offset:,}" in q and NOWHERE in q


# -- solving -------------------------------------------------------------------------------
def test_solve_follows_the_layout():
    assert offset_problem(MiB + 1424).solve() == 5 * CS + 1424
    assert offset_problem(100).solve() == 6 * CS + 100
    assert offset_problem(600 * MiB + 4000).solve() == 8 * CS + 4000
    assert offset_problem(5000).solve() == 6 * CS + 5000      # unwritten byte, written cluster
    assert offset_problem(2 * MiB).solve() == NOWHERE
    assert Problem(0, SCENARIO, "clusters").solve() == 9
    assert Problem(0, SCENARIO, "end").solve() == 9 * CS


def test_worked_answer_walks_through_every_write():
    text = " ".join(worked_answer(offset_problem(600 * MiB + 4000)).split())
    assert "cluster 7: L2 table for guest bytes 512.00 MiB to 1.00 GiB" in text
    assert "8 x 65,536 + 4,000 = 528,288" in text
    assert "nowhere" in worked_answer(offset_problem(2 * MiB))
    again = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": CS,
                                       "writes": [[0, 10], [0, 10]]})
    assert "overwritten in place" in worked_answer(Problem(0, again, "clusters"))


# -- checking ------------------------------------------------------------------------------
@pytest.mark.parametrize("x, answer, hint", [
    (MiB + 1424, 4 * CS + 1424, "forgot-l2"),             # L2 table not counted
    (MiB + 1424, CS + 1424, "forgot-empty-image"),        # header, refcount, L1 not counted
    (MiB + 1424, 1424, "forgot-metadata"),                # neither counted
    (MiB + 1424, MiB + 1424, "raw-offset"),
    (MiB + 1424, 5, "cluster-number"),
    (MiB + 1424, 5 * CS, "cluster-start"),
    (MiB + 1424, NOWHERE, "written-cluster"),
    (MiB + 1024, (5 * CS + 1024) // KiB, "kib"),
    (100, 7 * CS + 100, "off-by-one"),
])
def test_offset_slips_are_named(x, answer, hint):
    feedback = check(offset_problem(x), answer)
    assert not feedback.correct
    assert feedback.hint == hint


def test_write_order_not_guest_order():
    two = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": CS,
                                     "writes": [[MiB, CS], [100, 10]]})
    p = Problem(0, two, "offset", MiB + 1424)     # g16 written first, at cluster 5
    feedback = check(p, 6 * CS + 1424)            # as if the writes came in guest order
    assert (feedback.correct, feedback.hint) == (False, "guest-order")
    assert "order the writes arrive" in feedback.message


def test_an_answer_two_slips_explain_names_both():
    feedback = check(offset_problem(100), 5 * CS + 100)   # no L2, or guest order: both fit
    assert feedback.hint == "forgot-l2"
    assert "fits two slips" in feedback.message and "order the writes arrive" in feedback.message


@pytest.mark.parametrize("answer, hint", [
    (9 * CS, "bytes-not-clusters"),
    (3, "only-data"),
    (7, "forgot-l2"),
    (5, "forgot-empty-image"),
    (8, "off-by-one"),
])
def test_cluster_count_slips_are_named(answer, hint):
    feedback = check(Problem(0, SCENARIO, "clusters"), answer)
    assert (feedback.correct, feedback.hint) == (False, hint)


@pytest.mark.parametrize("answer, hint", [
    (9, "clusters-not-bytes"),
    (GiB, "virtual-size"),
    (4 * CS + CS + 10 + 4096, "bytes-written"),
    (8 * CS, "last-cluster-start"),
])
def test_end_offset_slips_are_named(answer, hint):
    feedback = check(Problem(0, SCENARIO, "end"), answer)
    assert (feedback.correct, feedback.hint) == (False, hint)


def test_a_rewritten_cluster_counted_twice():
    again = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": CS,
                                       "writes": [[0, 10], [0, 10]]})
    feedback = check(Problem(0, again, "clusters"), 7)
    assert (feedback.correct, feedback.hint) == (False, "counted-rewrite")


def test_an_unallocated_byte_lives_nowhere():
    p = offset_problem(2 * MiB)
    assert check(p, "nowhere").correct
    assert "reads zeros" in check(p, "Nowhere").message
    feedback = check(p, 2 * MiB)
    assert (feedback.correct, feedback.hint) == (False, "unallocated")


def test_answers_in_other_spellings():
    p = Problem(0, SCENARIO, "end")
    for spelling in (9 * CS, "589824", "0x90000", "576 KiB", "576K", "589,824", 589824.0):
        assert check(p, spelling).correct, spelling
    assert parse_answer("1.5 MiB") == 1572864
    assert parse_answer(2.5) is None


def test_unreadable_or_missing_answers_are_explained():
    p = Problem(0, SCENARIO, "clusters")
    assert "No answer yet" in check(p, None).message
    assert "cannot read" in check(p, "lots").message
    assert "asks for a number" in check(p, NOWHERE).message
    assert "negative" in check(p, -3).message
    assert isinstance(check(p, None), Feedback)


def test_right_answers_say_why():
    assert check(offset_problem(MiB + 1424), 5 * CS + 1424).message == (
        "Right: guest byte 1,050,000 lives at file offset 329,104 (cluster 5 of the file).")
    assert "whatever the virtual size (1.00 GiB)" in check(Problem(0, SCENARIO, "end"),
                                                              9 * CS).message


# -- the command line's text ----------------------------------------------------------------
def test_main_problem_prints_settings_and_hides_the_answer_unless_asked():
    text = main_problem(3, show_answer=False)
    assert text.splitlines()[0] == "ARG seed 3"
    assert generate(3).question in text and "Answer:" not in text
    shown = main_problem(3, show_answer=True)
    right = generate(3).solve()
    assert f"Answer: {right if isinstance(right, str) else f'{right:,}'}" in shown
    assert "qemu-img" in shown and "Worked answer" in shown
