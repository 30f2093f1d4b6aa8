"""Practice problems for the network lab: which NICs does this frame reach?

A problem is a small random network (from a seed) and its frames; the question
asks about the last frame, once the others have taught the bridges what they
know. :func:`check` says which NICs were missed or added, and why, from the
model's own steps.

Examples
--------
>>> p = generate(4)
>>> right = p.solve()
>>> check(p, right).correct
True
>>> print(main_problem(4, show_answer=False).splitlines()[0])
ARG seed 4
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvmlab.exercises import Feedback, problem_text
from kvmlab.network.generate import random_topology
from kvmlab.network.model import simulate
from kvmlab.network.result import NetworkResult
from kvmlab.network.topology import Topology


@dataclass(frozen=True)
class Problem:
    """A topology; the question is about its last frame."""

    seed: int
    topology: Topology

    def result(self) -> NetworkResult:
        return simulate(self.topology)

    def solve(self) -> tuple[str, ...]:
        """The NICs the last frame reaches, sorted."""
        return self.result().receivers[-1]

    @property
    def question(self) -> str:
        t = self.topology
        lines = ["A network of Linux bridges (no STP, every bridge freshly started):", ""]
        for b in t.bridges:
            ports = []
            for p in b.ports:
                odd = [f"{k} {'on' if v else 'off'}" for k, v in p.flags.items()
                       if v != (k != "hairpin")]
                ports.append(p.name + (f" ({', '.join(odd)})" if odd else ""))
            age = "ageing 0 s: learns nothing" if b.ageing_s == 0 else f"ageing {b.ageing_s:g} s"
            lines.append(f"  bridge {b.name} [{age}], ports: {', '.join(ports)}")
        lines.append("  links: " + ", ".join(f"{a} - {b}" for a, b in t.links))
        lines.append("  NICs: " + ", ".join(f"{n.id} = {n.mac}" for n in t.nics))
        lines += ["", "The hosts send, in this order (0.1 s apart):"]
        for i, f in enumerate(t.frames):
            src = "" if f.src == t.nic(f.sender).mac else f" (source address {f.src})"
            lines.append(f"  frame {i}: from {f.sender} to {f.dst}{src}")
        lines += ["", f"Which NICs receive frame {len(t.frames) - 1}? Answer with a list of "
                      "host:nic names (an empty list if none)."]
        return "\n".join(lines)

    def explain(self) -> str:
        """The model's steps for the last frame."""
        last = len(self.topology.frames) - 1
        return "\n".join(str(e) for e in self.result().events if e.frame == last)


def generate(seed: int) -> Problem:
    """The problem for ``seed``: a small network whose last frame is worth asking about."""
    for attempt in range(50):
        t = random_topology(seed * 50 + attempt, max_bridges=2, max_hosts=4, max_frames=5)
        if len(t.frames) >= 2:
            return Problem(seed, t)
    return Problem(seed, t)  # pragma: no cover - the generator nearly always gives 2 frames


def check(problem: Problem, answer: Iterable[str]) -> Feedback:
    """Friendly feedback on a list of NICs."""
    if isinstance(answer, str):
        answer = [a.strip() for a in answer.replace(",", " ").split()]
    given = set(answer)
    right = set(problem.solve())
    known = {n.id for n in problem.topology.nics}
    if unknown := sorted(given - known):
        return Feedback(False, f"There is no NIC {unknown[0]!r}; the NICs are "
                               f"{', '.join(sorted(known))}.", "unknown-nic")
    if given == right:
        return Feedback(True, "Right: " + (", ".join(sorted(right)) or "no NIC") + ".")
    frame = problem.topology.frames[-1]
    missed, extra = sorted(right - given), sorted(given - right)
    parts = []
    if missed:
        parts.append(f"{', '.join(missed)} also receive{'s' if len(missed) == 1 else ''} it")
    if extra:
        parts.append(f"{', '.join(extra)} do{'es' if len(extra) == 1 else ''} not")
    hint = None
    if frame.sender in extra:
        hint = "own-frame"
        parts.append("a bridge never sends a frame back out of the port it came in on, "
                     "unless that port is in hairpin mode")
    elif extra and not missed:
        hint = "flooded-too-much"
        parts.append("did a bridge already know where the destination is, or is a port's "
                     "flood flag off?")
    elif missed and not extra:
        hint = "flooded-too-little"
        parts.append("is the destination unknown to a bridge on the way (never heard "
                     "from, or learning off on its port), so that the frame is flooded?")
    return Feedback(False, "Not quite: " + "; ".join(parts) + ". Try again, or read "
                           "problem.explain().", hint)


def main_problem(seed: int, show_answer: bool) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer)."""
    p = generate(seed)
    if not show_answer:
        return problem_text(seed, p.question, None)
    right = p.solve()
    return problem_text(seed, p.question, [
        f"Answer: {', '.join(right) or 'no NIC'}", "", "Worked answer, step by step:",
        p.explain(), "", f"Check it: kvmlab.network.problems.generate({seed}).result().steps()"])


__all__ = ["Problem", "check", "generate", "main_problem"]
