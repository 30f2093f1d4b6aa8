"""Experiment problems: every seed's answer checks, and the usual slips are named."""

from __future__ import annotations

import math
import statistics

from hypothesis import given
from hypothesis import strategies as st

from kvmlab.experiments import sweep
from kvmlab.experiments.problems import Problem, check, generate


@given(st.integers(0, 10_000))
def test_every_problem_accepts_its_own_answer_and_repeats(seed):
    problem = generate(seed)
    assert problem == generate(seed)
    assert check(problem, problem.solve()).correct
    right = problem.solve()
    numbers = right.values() if isinstance(right, dict) else [right]
    for n in numbers:                       # the worked answer arrives at the answer
        assert str(n) in problem.explain() or f"{n:.4f}" in problem.explain() or (
            n == 0 and "waits 0" in problem.explain())


def test_the_wait_answer_is_what_the_model_simulates():
    for pcpus, vcpus in [(2, 6), (4, 4), (1, 3), (2, 1)]:
        p = Problem(0, "wait", {"pcpus": pcpus, "vcpus": vcpus})
        simulated = sweep("cpu-overcommit", {"ratio": vcpus / pcpus, "pcpus": pcpus,
                                             "vcpus_per_vm": 1, "duration_s": 1},
                          executor="serial", progress=False).rows[0]["wait_share"]
        assert abs(p.solve() - simulated) < 1e-3


def test_the_run_count_matches_a_real_sweep():
    grid = {"ratio": [1, 2, 3], "load": [1.0, 0.5]}
    p = Problem(0, "runs", {"grid": grid, "seeds": 2, "run_s": 1.0, "cores": 4})
    table = sweep("cpu-overcommit", {**grid, "duration_s": 0.2}, seeds=range(2),
                  executor="serial", progress=False)
    assert p.solve()["runs"] == len(table) == 12 and p.solve()["seconds"] == 3.0


def test_slips_are_named():
    runs = Problem(0, "runs", {"grid": {"a": [1, 2, 3], "b": [1, 2]}, "seeds": 5,
                               "run_s": 2.0, "cores": 4})
    assert check(runs, {"runs": 6, "seconds": 4.0}).hint == "seeds"
    assert check(runs, {"runs": 30, "seconds": 15.0}).hint == "rounds"
    assert check(runs, "30").hint == "type"
    values = [0.2, 0.25, 0.31, 0.4]
    band = Problem(0, "band", {"values": values, "t": 3.182})
    mean, s, n = statistics.fmean(values), statistics.stdev(values), len(values)
    assert check(band, {"mean": mean, "half_width": 1.96 * s / math.sqrt(n)}).hint == "z"
    assert check(band, {"mean": mean, "half_width": 3.182 * s / n}).hint == "sqrt-n"
    pop = 3.182 * statistics.pstdev(values) / math.sqrt(n)
    assert check(band, {"mean": mean, "half_width": pop}).hint == "population"
    assert check(band, {"mean": mean + 0.1, "half_width": 0.1}).hint == "mean"
    wait = Problem(0, "wait", {"pcpus": 2, "vcpus": 8})
    assert check(wait, 0.25).hint == "run-share" and check(wait, 0.75).correct
    assert check(wait, None).hint == "type"
