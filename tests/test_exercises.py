"""Every lab has a seeded problem generator with -s/-c, and its checker tells a right answer
from a wrong one."""

from __future__ import annotations

import pytest

from kvmlab.cli import main
from kvmlab.cpu import problems as cpu
from kvmlab.experiments import problems as experiments
from kvmlab.memory import problems as memory
from kvmlab.network import problems as network
from kvmlab.storage import problems as storage


def _wrong_cpu(p):
    right = p.solve()
    return {vm: share + 0.2 for vm, share in right.items()} if isinstance(right, dict) \
        else right + 0.2


def _wrong_experiment(p):
    right = p.solve()
    return {k: v * 2 + 1 for k, v in right.items()} if isinstance(right, dict) else right + 0.2


LABS = {
    "experiments": (experiments.generate, lambda p: p.solve(), _wrong_experiment,
                    experiments.check),
    "cpu": (cpu.generate, lambda p: p.solve(), _wrong_cpu, cpu.check),
    "memory": (memory.generate, lambda p: p.solve(),
               lambda p: {**p.solve(), "references": p.solve()["references"] + 1},
               memory.check),
    "storage": (storage.generate, lambda p: p.solve(), lambda p: "not a number at all",
                storage.check),
    "network": (network.generate, lambda p: list(p.solve()),
                lambda p: [*p.solve(), "nobody:eth9"], network.check),
    "vlan": (lambda s: network.generate(s, vlans=True), lambda p: p.solve_tags(),
             lambda p: {**p.solve_tags(), "nobody:eth9": None}, network.check),
}


@pytest.mark.parametrize("lab", sorted(LABS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_checker_accepts_the_right_answer_and_refuses_a_wrong_one(lab, seed):
    generate, right, wrong, check = LABS[lab]
    problem = generate(seed)
    assert check(problem, right(problem)).correct
    feedback = check(problem, wrong(problem))
    assert not feedback.correct and str(feedback)


@pytest.mark.parametrize("lab", sorted(LABS))
def test_each_lab_prints_a_seeded_problem_and_with_c_its_answer(lab, capsys):
    assert main(["problems", lab, "-s", "5"]) == 0
    hidden = capsys.readouterr().out
    assert main(["problems", lab, "-s", "5", "-c"]) == 0
    shown = capsys.readouterr().out
    assert hidden.startswith("ARG seed 5") and shown.startswith(hidden.split("\n\n")[0])
    assert len(shown) > len(hidden)
    assert main(["problems", lab, "-s", "5"]) == 0
    assert capsys.readouterr().out == hidden                 # the same seed, the same problem



def test_compare_refuses_a_recording_of_another_scenario(capsys):
    assert main(["cpu", "compare", "cpu-seed-example", "--recorded", "cpu-overcommit-2x"]) == 2
    err = capsys.readouterr().err
    assert "'cpu-overcommit-2x'" in err and "not 'cpu-seed-example'" in err
    assert main(["cpu", "compare", "cpu-overcommit-2x", "--recorded", "cpu-overcommit-2x"]) == 0
    assert '"agrees"' in capsys.readouterr().out


@pytest.mark.parametrize("lab", sorted(LABS))
def test_an_unanswered_exercise_is_not_yet_whatever_the_lab(lab):
    from kvmlab.exercises import check_answer

    generate, right, _, check = LABS[lab]
    problem = generate(0)
    unanswered = check_answer(check, problem, None)
    assert not unanswered.correct and unanswered.hint == "unanswered"
    assert check_answer(check, problem, right(problem)).correct
