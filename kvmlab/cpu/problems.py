"""Exercises in the style of OSTEP's homework simulators: infinite problems, by seed.

:func:`generate` makes a problem from a seed (the same seed always gives the same
problem), :meth:`Problem.solve` answers it, :func:`check` gives friendly feedback
on an answer, and :func:`main_problem` is the text the command line prints.

Every problem is a host with busy, unpinned vCPUs, so the answer has a closed
form (:func:`kvmlab.cpu.theory.fair_shares`): split the pCPUs between the VMs in
proportion to their shares, never giving a VM more pCPUs than it has vCPUs,
then split each VM's part equally between its vCPUs.

Examples
--------
>>> p = generate(7)
>>> p == generate(7)
True
>>> check(p, p.solve()).correct
True
>>> feedback = check(p, {vm: 0.0 for vm in p.solve()})
>>> feedback.correct, p.vm in feedback.message
(False, True)
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kvmlab.cpu.ready import ready_verdict
from kvmlab.cpu.scenario import DEFAULT_SHARES, CpuScenario
from kvmlab.cpu.theory import fair_shares, flat_shares, water_fill
from kvmlab.exercises import Feedback, problem_text
from kvmlab.validate import is_real

TOLERANCE = 0.02
SHARE_CHOICES = (512, 1024, 2048, 4096)


@dataclass(frozen=True)
class Problem:
    """A host, some busy VMs, and a question about one of them.

    Attributes
    ----------
    seed : int
        The seed it was generated from (``generate(seed)`` makes it again).
    scenario : CpuScenario
        The host and VMs (every vCPU busy, none pinned). Simulate it to check.
    vm : str
        The VM the question is about.
    """

    seed: int
    scenario: CpuScenario
    vm: str

    @property
    def question(self) -> str:
        """The problem as a student reads it."""
        s = self.scenario
        lines = [_fill(f"A Linux host with libvirt has {_count(s.pcpus, 'physical CPU')} "
                       f"({'pCPU' if s.pcpus == 1 else 'pCPUs'}). It runs "
                       f"{_count(len(s.vms), 'VM')}; every vCPU runs a busy loop and none "
                       "is pinned:")]
        width = max(len(vm.name) for vm in s.vms)
        for vm in s.vms:
            lines.append(f"  {vm.name:<{width}}  {_count(vm.vcpus, 'vCPU'):>7}, "
                         f"shares {vm.shares}")
        lines.append("")
        lines.append(f"What share of the time does each vCPU of {self.vm} run?")
        lines.append("Answer with a fraction (0.25 for 25 %), or with a dict for every VM:")
        lines.append("  {" + ", ".join(f"'{vm.name}': ..." for vm in s.vms) + "}")
        return "\n".join(lines)

    def solve(self) -> dict[str, float]:
        """Per VM, the share of the time each of its vCPUs runs (the closed form).

        Examples
        --------
        >>> generate(0).solve() == fair_shares(generate(0).scenario)
        True
        """
        return fair_shares(self.scenario)

    def explain(self) -> str:
        """The worked answer, step by step."""
        return worked_answer(self.scenario)

    def __str__(self) -> str:
        return self.question

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.question)


def _count(n: float, word: str) -> str:
    return f"{n:.3g} {word}{'' if n == 1 else 's'}"


def _fill(text: str) -> str:
    return textwrap.fill(text, width=88, subsequent_indent="  " if text[:1] == " " else "")


def generate(seed: int) -> Problem:
    """A random problem: 1-4 pCPUs, 1-3 busy VMs of 1-4 vCPUs, sometimes unequal shares.

    Examples
    --------
    >>> p = generate(3)
    >>> 1 <= p.scenario.pcpus <= 4 and 1 <= len(p.scenario.vms) <= 3
    True
    >>> print(generate(1).question.splitlines()[0])  # doctest: +ELLIPSIS
    A Linux host with libvirt has ... (pCPUs). It runs ...
    """
    rng = random.Random(seed)
    pcpus = rng.randint(1, 4)
    n_vms = rng.randint(1, 3)
    unequal = n_vms > 1 and rng.random() < 0.4
    vms = []
    for i in range(n_vms):
        vm: dict[str, Any] = {"name": f"vm{i + 1}", "vcpus": rng.randint(1, 4)}
        if unequal:
            vm["shares"] = rng.choice(SHARE_CHOICES)
        vms.append(vm)
    scenario = CpuScenario.from_dict({"name": f"problem-{seed}", "pcpus": pcpus,
                                      "duration_s": 10, "vms": vms})
    return Problem(seed, scenario, rng.choice([vm["name"] for vm in vms]))


def _water_fill(scenario: CpuScenario) -> list[str]:
    """The steps of fair_shares in words."""
    steps = []
    left = {vm.name: vm for vm in scenario.vms}
    cpus = float(min(scenario.pcpus, scenario.total_vcpus))
    if scenario.total_vcpus < scenario.pcpus:
        steps.append(f"Only {_count(scenario.total_vcpus, 'vCPU')} want to run, so only "
                     f"{scenario.total_vcpus} of the {scenario.pcpus} pCPUs can be used.")
    if len(left) == 1:
        (name, vm), = left.items()
        steps.append(f"{name} is the only VM: it gets {_count(cpus, 'pCPU')}.")
        return steps
    for r in water_fill(scenario):
        described = "; ".join(
            f"{n}: {r.cpus:g} x {scenario.vm(n).shares}/{r.weight} = {_count(part, 'pCPU')}"
            for n, part in r.parts.items())
        steps.append(f"Split {_count(r.cpus, 'pCPU')} between {', '.join(r.parts)} in "
                     f"proportion to their shares: {described}.")
        for n in r.capped:
            vm = scenario.vm(n)
            spare = r.parts[n] - vm.vcpus
            if spare > 1e-9:
                steps.append(f"{n} cannot use {_count(r.parts[n], 'pCPU')} with only "
                             f"{_count(vm.vcpus, 'vCPU')}: it keeps {vm.vcpus}, and the "
                             f"{spare:.3g} it cannot use go to the others.")
            else:
                steps.append(f"{n} gets one pCPU per vCPU: its vCPUs run all the time.")
    return steps


def worked_answer(scenario: CpuScenario) -> str:
    """How the closed form answers a scenario of busy, unpinned VMs, step by step.

    Examples
    --------
    >>> from kvmlab.cpu import load_scenario
    >>> print(worked_answer(load_scenario("cpu-seed-example")))  # doctest: +ELLIPSIS
    Split 2 pCPUs between vm1, vm2 in proportion to their shares: vm1: 2 x 1024/2048 = 1 pCPU;
    ...
    Each VM's part is split equally between its vCPUs:
      vm1: 2 vCPUs, 0.5 each: run 50.0 % of the time, wait 50.0 % (CPU ready: problem)
      vm2: 4 vCPUs, 0.25 each: run 25.0 % of the time, wait 75.0 % (CPU ready: problem)
    """
    shares = fair_shares(scenario)
    lines = [_fill(step) for step in _water_fill(scenario)]
    lines.append("Each VM's part is split equally between its vCPUs:")
    for vm in scenario.vms:
        run = shares[vm.name]
        wait = 1 - run
        lines.append(f"  {vm.name}: {_count(vm.vcpus, 'vCPU')}, {run:.3g} each: run "
                     f"{100 * run:.1f} % of the time, wait {100 * wait:.1f} % "
                     f"(CPU ready: {ready_verdict(100 * wait)})")
    return "\n".join(lines)


def _close(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return all(abs(a[k] - b[k]) <= TOLERANCE for k in a)


def _uncapped(scenario: CpuScenario) -> dict[str, float]:
    """Shares by weight with no cap at one pCPU per vCPU (a common slip)."""
    weight = sum(vm.shares for vm in scenario.vms)
    return {vm.name: scenario.pcpus * vm.shares / weight / vm.vcpus for vm in scenario.vms}


def _capped_not_refilled(scenario: CpuScenario) -> dict[str, float]:
    """Shares by weight, capped at 1 per vCPU, with the spare time thrown away."""
    return {vm: min(1.0, share) for vm, share in _uncapped(scenario).items()}


def _ignoring_shares(scenario: CpuScenario) -> dict[str, float]:
    equal = CpuScenario.from_dict({**scenario.to_dict(), "vms": [
        {**vm.to_dict(), "shares": DEFAULT_SHARES} for vm in scenario.vms]})
    return fair_shares(equal)


def _per_vm(scenario: CpuScenario) -> dict[str, float]:
    """The pCPUs each VM gets, not yet divided between its vCPUs."""
    shares = fair_shares(scenario)
    return {vm.name: shares[vm.name] * vm.vcpus for vm in scenario.vms}


def _hint(problem: Problem, given: dict[str, float]) -> str:
    s = problem.scenario
    right = problem.solve()
    if any(v > 1 for v in given.values()) and _close(
            {k: v / 100 for k, v in given.items()}, right):
        return ("Those look like percentages. Give fractions of the time instead: 0.25 for "
                "25 %.")
    if _close(given, _uncapped(s)) and not _close(given, right):
        return ("Close: you split the pCPUs by shares. But a VM cannot use more pCPUs than it "
                "has vCPUs (a vCPU is one thread, so it runs at most 100 % of the time); what "
                "a small VM cannot use goes to the others.")
    if _close(given, _capped_not_refilled(s)) and not _close(given, right):
        return ("Close: you capped each VM at one pCPU per vCPU. But the pCPU time a capped VM "
                "cannot use is not wasted: the host hands it to the other VMs, again in "
                "proportion to their shares.")
    if any(v < 0 or v > 1 for v in given.values()):
        return ("A share is a fraction of the wall-clock time, so it lies between 0 and 1; a "
                "vCPU is one thread and can never run on two pCPUs at once.")
    if len({vm.shares for vm in s.vms}) > 1 and _close(given, _ignoring_shares(s)):
        return ("The VMs do not have equal shares: "
                + ", ".join(f"{vm.name} has {vm.shares}" for vm in s.vms)
                + ". A VM's cgroup weight sets its part of the pCPUs, in proportion.")
    flat = flat_shares(s)
    if _close(given, flat) and not _close(given, right):
        return ("That is what a scheduler that ignores VMs would give: every vCPU thread "
                "treated alike, each getting pCPUs / all vCPUs. libvirt puts each VM in its "
                "own cgroup, so the host first divides the pCPUs between the VMs (by their "
                "shares), and only then between the vCPUs of each VM.")
    if _close(given, _per_vm(s)) and not _close(given, right):
        return ("That is each VM's part in pCPUs. The question asks about one vCPU: divide "
                "the VM's part between its vCPUs.")
    return ("Start from the pCPUs: divide them between the VMs in proportion to their shares, "
            "give no VM more pCPUs than it has vCPUs (hand the rest to the others), then "
            "divide each VM's part equally between its vCPUs.")


def check(problem: Problem, answer: float | Mapping[str, float] | None) -> Feedback:
    """Is ``answer`` right (within 0.02)? Say which VM is off, and hint why.

    Parameters
    ----------
    problem : Problem
    answer : float or dict
        The share of the time each vCPU of ``problem.vm`` runs, or a dict of
        such shares for several (or all) VMs.

    Returns
    -------
    Feedback
        ``.correct`` and a friendly ``.message``.

    Examples
    --------
    >>> from kvmlab.cpu import load_scenario
    >>> p = Problem(0, load_scenario("cpu-seed-example"), "vm2")
    >>> print(check(p, 0.25))
    Right: each vCPU of vm2 runs 25 % of the time (and waits the other 75 %). That much CPU
    ready time is a problem by the usual rule of thumb.
    >>> print(check(p, {"vm1": 1/3, "vm2": 1/3}))  # doctest: +ELLIPSIS
    Not yet: too low for vm1, too high for vm2. That is what a scheduler that ignores VMs ...
    """
    s = problem.scenario
    names = [vm.name for vm in s.vms]
    right = problem.solve()
    if answer is None or (isinstance(answer, Mapping) and not answer):
        return Feedback(False, f"No answer yet: give the share of the time each vCPU of "
                               f"{problem.vm} runs, for example 0.5.")
    raw = dict(answer) if isinstance(answer, Mapping) else {problem.vm: answer}
    if unknown := [k for k in raw if k not in names]:
        return Feedback(False, f"This host has no VM {', '.join(map(repr, unknown))}; its VMs "
                               f"are {', '.join(names)}.")
    given: dict[str, float] = {}
    for vm, value in raw.items():
        if not is_real(value):
            return Feedback(False, f"The answer for {vm} should be a number such as 0.5, "
                                   f"not {value!r}.")
        given[vm] = float(value)
    if problem.vm not in given:
        return Feedback(False, f"The question is about {problem.vm}: include it in your "
                               "answer.")
    wrong = [vm for vm in names if vm in given and abs(given[vm] - right[vm]) > TOLERANCE]
    if not wrong:
        run = right[problem.vm]
        extra = ("" if len(given) == 1 else
                 f" All {len(given)} VMs you gave are right.")
        wait = 1 - run
        note = {"problem": " That much CPU ready time is a problem by the usual rule of thumb.",
                "watch": " That CPU ready time is worth watching.",
                "fine": ""}[ready_verdict(100 * wait)]
        return Feedback(True, f"Right: each vCPU of {problem.vm} runs {100 * run:.3g} % of the "
                              f"time (and waits the other {100 * wait:.3g} %).{extra}{note}")
    verdicts = ", ".join(f"too {'high' if given[vm] > right[vm] else 'low'} for {vm}"
                         for vm in wrong)
    return Feedback(False, f"Not yet: {verdicts}. {_hint(problem, given)}")


def main_problem(seed: int, show_answer: bool) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer).

    Examples
    --------
    >>> text = main_problem(5, show_answer=False)
    >>> text.splitlines()[0]
    'ARG seed 5'
    >>> "Answer" in main_problem(5, show_answer=True)
    True
    """
    p = generate(seed)
    if not show_answer:
        return problem_text(seed, p.question, None)
    answer = ", ".join(f"{vm}: {share:.4g}" for vm, share in p.solve().items())
    return problem_text(seed, p.question, [
        "Answer (share of the time each vCPU runs):", f"  {answer}", "",
        "Worked answer:", p.explain(), "", "Check it with a simulation:",
        f"  kvmlab.cpu.simulate(kvmlab.cpu.problems.generate({seed}).scenario)"])
