import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmlab.cli import main
from kvmlab.network import problems


@settings(max_examples=100)
@given(st.integers(0, 10**6))
def test_the_right_answer_is_right_and_a_wrong_one_is_explained(seed):
    p = problems.generate(seed)
    right = p.solve()
    assert problems.check(p, right).correct
    assert problems.check(p, ", ".join(right)).correct
    sender = p.topology.frames[-1].sender
    if sender not in right:
        wrong = problems.check(p, [*right, sender])
        assert not wrong.correct and wrong.hint == "own-frame"
    if right:
        missed = problems.check(p, right[1:])
        assert not missed.correct and "also receive" in missed.message


def test_an_unknown_nic_is_named():
    feedback = problems.check(problems.generate(1), ["nobody:eth9"])
    assert not feedback.correct and "There is no NIC 'nobody:eth9'" in feedback.message


@pytest.mark.parametrize("seed", [0, 7])
def test_the_command_line_prints_the_problem_then_the_answer(seed, capsys):
    assert main(["problems", "network", "-s", str(seed)]) == 0
    question = capsys.readouterr().out
    assert question.startswith(f"ARG seed {seed}") and "Which NICs receive frame" in question
    assert main(["problems", "network", "-s", str(seed), "-c"]) == 0
    answer = capsys.readouterr().out
    assert "Answer:" in answer and "send" in answer


def test_the_stepper_view_names_a_step_that_does_not_exist():
    from kvmlab.data import scenario_dict
    from kvmlab.errors import ScenarioError
    from kvmlab.network import simulate
    from kvmlab.network.widgets import event_view

    r = simulate(scenario_dict("net-hub"))
    assert "forwarding table of br0: empty" in event_view(r, 0)
    with pytest.raises(ScenarioError, match="there are 12 steps"):
        event_view(r, 99)


@settings(max_examples=60)
@given(st.integers(0, 10**6))
def test_vlan_problems_check_the_tags_too(seed):
    p = problems.generate(seed, vlans=True)
    tags = p.solve_tags()
    assert tags and problems.check(p, tags).correct
    nic = next(iter(tags))
    flipped = {**tags, nic: 7 if tags[nic] is None else None}
    wrong = problems.check(p, flipped)
    assert not wrong.correct and wrong.hint == "tag"


def test_the_command_line_asks_vlan_problems(capsys):
    assert main(["problems", "vlan", "-s", "3", "-c"]) == 0
    out = capsys.readouterr().out
    assert "with which tag?" in out and "vlans=True" in out


def test_no_answer_yet_is_not_an_empty_answer():
    from kvmlab.network.problems import check, generate

    problem = generate(0)
    unanswered = check(problem, None)
    assert not unanswered.correct and "not answered yet" in str(unanswered).lower()
    empty = check(problem, [])
    assert "not answered" not in str(empty).lower()
