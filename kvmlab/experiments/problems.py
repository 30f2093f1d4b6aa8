"""OSTEP-style exercises on experiments: how big is a sweep, and how sure is its mean?

:func:`generate` makes a problem from a seed (the same seed, the same problem), of one of
three kinds:

``runs``
    A grid and some seeds: how many runs, and how long on ``cores`` cores if each run
    takes ``run_s`` seconds (the runs are spread evenly: ``ceil(runs / cores)`` rounds)?
``band``
    The wait shares a few seeds gave at one grid point: the mean and the half-width of its
    95 % confidence interval, ``t * s / sqrt(n)`` (``t`` is given, ``s`` is the sample
    standard deviation, with ``n - 1``).
``wait``
    Busy VMs on a host: the mean wait (steal) share of a vCPU, ``1 - pcpus / vcpus`` when
    the vCPUs outnumber the pCPUs, else 0.

:meth:`Problem.solve` answers, :func:`check` names the usual slips, and
:func:`main_problem` is the text ``kvmlab problems experiments -s SEED [-c]`` prints.

Examples
--------
>>> p = generate(4)
>>> p == generate(4), check(p, p.solve()).correct
(True, True)
>>> print(check(Problem(0, "wait", {"pcpus": 2, "vcpus": 6}), 0.5))
Not yet: 0.5. 6 busy vCPUs share 2 pCPUs: each runs at most 2/6 of the time and waits the rest.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kvmlab.exercises import Feedback, problem_text
from kvmlab.experiments.table import t_quantile
from kvmlab.validate import is_real

KINDS = ("runs", "band", "wait")
#: Values a grid of a ``runs`` problem picks from, per parameter.
POOLS: dict[str, list[Any]] = {
    "ratio": [0.5, 1, 1.5, 2, 3, 4], "load": [0.25, 0.5, 0.75, 1.0], "pcpus": [1, 2, 4, 8],
    "working_set_kib": [64, 256, 1024, 4096, 16384], "page": ["4K", "2M", "1G"]}
TOLERANCE = 0.005


def _close(got: float, right: float) -> bool:
    """Equal up to rounding: within 1 % of the answer (and 0.0001 near zero)."""
    return abs(got - right) <= max(1e-4, 0.01 * abs(right))


@dataclass(frozen=True)
class Problem:
    """One exercise: its seed, its kind and the numbers it gives."""

    seed: int
    kind: str
    given: Mapping[str, Any] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """The problem as a student reads it."""
        g = self.given
        if self.kind == "runs":
            grid = ", ".join(f"{k}: {len(v)} values {v}" for k, v in g["grid"].items())
            return (f"A sweep has the grid {{{grid}}} and {g['seeds']} seeds. Each run takes "
                    f"{g['run_s']} s.\nHow many runs are there, and how many seconds does "
                    f"the sweep take on {g['cores']} cores?\n"
                    "Answer with a dict: {'runs': N, 'seconds': S}.")
        if self.kind == "band":
            return (f"{len(g['values'])} seeds gave these wait shares at one grid point: "
                    f"{g['values']}.\nWhat is their mean, and the half-width of the 95 % "
                    f"confidence interval of the mean? (t for {len(g['values']) - 1} degrees "
                    f"of freedom is {g['t']:.3f}.)\nAnswer with a dict: "
                    "{'mean': M, 'half_width': H}.")
        return (f"Every vCPU is busy. A host has {g['pcpus']} pCPU(s) and its VMs have "
                f"{g['vcpus']} vCPU(s) in all.\nWhat share of the time does a vCPU wait, on "
                "average? Answer with a number from 0 to 1.")

    def solve(self) -> Any:
        """The answer.

        Examples
        --------
        >>> Problem(0, "runs", {"grid": {"a": [1, 2, 3], "b": [0, 1]}, "seeds": 5,
        ...                     "run_s": 2.0, "cores": 4}).solve()
        {'runs': 30, 'seconds': 16.0}
        >>> Problem(0, "band", {"values": [0.2, 0.3, 0.4], "t": 4.303}).solve()
        {'mean': 0.3, 'half_width': 0.248434}
        """
        g = self.given
        if self.kind == "runs":
            runs = math.prod(len(v) for v in g["grid"].values()) * g["seeds"]
            return {"runs": runs, "seconds": math.ceil(runs / g["cores"]) * g["run_s"]}
        if self.kind == "band":
            values = g["values"]
            half = g["t"] * statistics.stdev(values) / math.sqrt(len(values))
            return {"mean": round(statistics.fmean(values), 6), "half_width": round(half, 6)}
        return round(max(0.0, 1 - g["pcpus"] / g["vcpus"]), 6)

    def explain(self) -> str:
        """The worked answer."""
        g, right = self.given, self.solve()
        if self.kind == "runs":
            sizes = " x ".join(str(len(v)) for v in g["grid"].values())
            return (f"Every combination of the grid runs once per seed: {sizes} x "
                    f"{g['seeds']} = {right['runs']} runs. {g['cores']} cores take them "
                    f"{g['cores']} at a time: ceil({right['runs']} / {g['cores']}) = "
                    f"{math.ceil(right['runs'] / g['cores'])} rounds of {g['run_s']} s = "
                    f"{right['seconds']} s.")
        if self.kind == "band":
            v = g["values"]
            return (f"mean = {sum(v):.4g} / {len(v)} = {right['mean']}; s = "
                    f"{statistics.stdev(v):.6f} (divide by n - 1 = {len(v) - 1}); "
                    f"half-width = t * s / sqrt(n) = {g['t']:.3f} * "
                    f"{statistics.stdev(v):.6f} / sqrt({len(v)}) = {right['half_width']}.")
        if g["vcpus"] <= g["pcpus"]:
            return "No more vCPUs than pCPUs: each vCPU can have a pCPU of its own; it waits 0."
        return (f"{g['vcpus']} busy vCPUs share {g['pcpus']} pCPUs, so each runs "
                f"{g['pcpus']}/{g['vcpus']} of the time and waits 1 - {g['pcpus']}/"
                f"{g['vcpus']} = {right:.4f}.")

    def __str__(self) -> str:
        return self.question


def generate(seed: int) -> Problem:
    """The problem of ``seed``."""
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    if kind == "runs":
        names = rng.sample(sorted(POOLS), rng.randint(2, 3))
        grid = {}
        for name in names:
            pool = POOLS[name]
            chosen = rng.sample(range(len(pool)), rng.randint(2, min(4, len(pool))))
            grid[name] = [pool[i] for i in sorted(chosen)]
        return Problem(seed, kind, {"grid": grid, "seeds": rng.choice([3, 5, 10]),
                                    "run_s": rng.choice([0.5, 2.0, 10.0]),
                                    "cores": rng.choice([2, 4, 8])})
    if kind == "band":
        n = rng.randint(3, 6)
        values = [round(rng.uniform(0.15, 0.35), 2) for _ in range(n)]
        return Problem(seed, kind, {"values": values,
                                    "t": round(t_quantile(0.975, n - 1), 3)})
    pcpus = rng.choice([1, 2, 4, 8])
    return Problem(seed, kind, {"pcpus": pcpus, "vcpus": rng.randint(1, 4 * pcpus)})


def check(problem: Problem, answer: Any) -> Feedback:
    """Is ``answer`` right? If not, which slip does it look like?"""
    right, g = problem.solve(), problem.given
    if problem.kind == "wait":
        if not is_real(answer):
            return Feedback(False, "Answer with a number from 0 to 1.", "type")
        got = float(answer)
        if abs(got - right) <= TOLERANCE:
            return Feedback(True, f"Right: {right:.4f}.")
        if g["vcpus"] > g["pcpus"] and abs(got - g["pcpus"] / g["vcpus"]) <= TOLERANCE:
            return Feedback(False, f"Not yet: {got:g} is the share a vCPU *runs*; the question "
                                   "asks how long it waits.", "run-share")
        return Feedback(False, f"Not yet: {got:g}. {g['vcpus']} busy vCPUs share "
                               f"{g['pcpus']} pCPUs: each runs at most {g['pcpus']}/"
                               f"{g['vcpus']} of the time and waits the rest.", "other")
    if not isinstance(answer, Mapping) or set(answer) != set(right) or any(
            not is_real(answer[k]) for k in right):
        return Feedback(False, f"Answer with a dict of numbers with the keys {sorted(right)}.",
                        "type")
    if problem.kind == "runs":
        if answer["runs"] != right["runs"]:
            no_seeds = right["runs"] // g["seeds"]
            slip = ("you left out the seeds: each combination runs once per seed"
                    if answer["runs"] == no_seeds else
                    "multiply the numbers of values of every parameter, then the seeds")
            return Feedback(False, f"Not yet: runs = {answer['runs']}; {slip}.",
                            "seeds" if answer["runs"] == no_seeds else "runs")
        if abs(answer["seconds"] - right["seconds"]) > 1e-9:
            if abs(answer["seconds"] - right["runs"] * g["run_s"] / g["cores"]) < 1e-9:
                return Feedback(False, "Not yet: a core runs whole runs, so count the rounds: "
                                       "ceil(runs / cores).", "rounds")
            return Feedback(False, f"Not yet: {answer['seconds']} s; the cores take "
                                   f"{g['cores']} runs at a time.", "seconds")
        return Feedback(True, f"Right: {right['runs']} runs, {right['seconds']} s.")
    if abs(answer["mean"] - right["mean"]) > TOLERANCE:
        return Feedback(False, f"Not yet: the mean is off ({answer['mean']}).", "mean")
    half = answer["half_width"]
    if _close(half, right["half_width"]):
        return Feedback(True, f"Right: {right['mean']} \u00b1 {right['half_width']}.")
    values = g["values"]
    n, s = len(values), statistics.stdev(values)
    slips = {"z": 1.96 * s / math.sqrt(n), "sqrt-n": g["t"] * s / n,
             "population": g["t"] * statistics.pstdev(values) / math.sqrt(n)}
    words = {"z": "1.96 is for large samples; with few seeds use the t given",
             "sqrt-n": "divide the standard deviation by sqrt(n), not n",
             "population": "the sample standard deviation divides by n - 1, not n"}
    for slip, value in slips.items():
        if _close(half, value):
            return Feedback(False, f"Not yet: {words[slip]}.", slip)
    return Feedback(False, f"Not yet: the half-width is t * s / sqrt(n), not {half}.", "band")


def main_problem(seed: int, show_answer: bool) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer)."""
    p = generate(seed)
    if not show_answer:
        return problem_text(seed, p.question, None)
    return problem_text(seed, p.question, [f"Answer: {p.solve()}", "", "Worked answer:",
                                           p.explain()])


__all__ = ["Problem", "check", "generate", "main_problem"]
