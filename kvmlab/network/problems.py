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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kvmlab.exercises import Feedback, check_answer, problem_text
from kvmlab.network.generate import random_topology
from kvmlab.network.model import simulate
from kvmlab.network.result import NetworkResult
from kvmlab.network.scenario import Topology
from kvmlab.network.vlan import explain_port_vlans


@dataclass(frozen=True)
class Problem:
    """A topology; the question is about its last frame (and, with VLANs, its tags)."""

    seed: int
    topology: Topology
    vlans: bool = False

    def result(self) -> NetworkResult:
        return simulate(self.topology)

    def solve(self) -> tuple[str, ...]:
        """The NICs the last frame reaches, sorted."""
        return self.result().receivers[-1]

    def solve_tags(self) -> dict[str, int | None]:
        """Each receiving NIC's tag on arrival (None: untagged)."""
        return dict(sorted(self.result().tags[-1].items()))

    @property
    def question(self) -> str:
        t = self.topology
        lines = ["A network of Linux bridges (no STP, every bridge freshly started):", ""]
        for b in t.bridges:
            ports = []
            for p in b.ports:
                odd = [f"{k} {'on' if v else 'off'}" for k, v in p.flags.items()
                       if v != (k != "hairpin")]
                if p.vlans is not None:
                    odd.insert(0, explain_port_vlans(p.vlans))
                ports.append(p.name + (f" ({', '.join(odd)})" if odd else ""))
            age = "ageing 0 s: learns nothing" if b.ageing_s == 0 else f"ageing {b.ageing_s:g} s"
            lines.append(f"  bridge {b.name} [{age}], ports: {', '.join(ports)}")
        lines.append("  links: " + ", ".join(f"{a} - {b}" for a, b in t.links))
        lines.append("  NICs: " + ", ".join(f"{n.id} = {n.mac}" for n in t.nics))
        lines += ["", "The hosts send, in this order (0.1 s apart):"]
        for i, f in enumerate(t.frames):
            src = "" if f.src == t.nic(f.sender).mac else f" (source address {f.src})"
            tag = "" if f.vlan is None else f", tagged {f.vlan}"
            what = f"ARP: who has {f.arp_target}?" if f.arp_target else f"to {f.dst}"
            lines.append(f"  frame {i}: from {f.sender} {what}{src}{tag}")
        last = len(t.frames) - 1
        if self.vlans:
            lines += ["", f"Which NICs receive frame {last}, and with which tag? Answer with "
                          'a dict like {"h0:eth0": None, "h2:eth0": 2} (None: untagged).']
        else:
            lines += ["", f"Which NICs receive frame {last}? Answer with a list of "
                          "host:nic names (an empty list if none)."]
        return "\n".join(lines)

    def explain(self) -> str:
        """The model's steps for the last frame."""
        last = len(self.topology.frames) - 1
        return "\n".join(str(e) for e in self.result().events if e.frame == last)


def generate(seed: int, vlans: bool = False) -> Problem:
    """The problem for ``seed``: a small network whose last frame is worth asking about
    (with ``vlans``, VLAN-aware switches, and the question asks for tags too)."""
    for attempt in range(50):
        t = random_topology(seed * 50 + attempt, max_bridges=2, max_hosts=4, max_frames=5,
                            vlans=vlans)
        if len(t.frames) >= 2 and (not vlans or simulate(t).receivers[-1]):
            return Problem(seed, t, vlans)
    return Problem(seed, t, vlans)  # pragma: no cover - nearly always found


def check(problem: Problem, answer: Iterable[str] | Mapping[str, int | None] | None
          ) -> Feedback:
    """Friendly feedback on a list of NICs (with VLANs: a dict of NIC to tag).

    ``None`` is no answer yet (an empty list is an answer: no NIC receives the frame).
    """
    if answer is None:
        return check_answer(check, problem, None)
    if isinstance(answer, Mapping):
        return _check_tags(problem, dict(answer))
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


def _check_tags(problem: Problem, answer: dict[str, int | None]) -> Feedback:
    right = problem.solve_tags()
    first = check(problem, list(answer))                # the right NICs first
    if not first.correct:
        return first
    wrong = {nic: tag for nic, tag in answer.items() if right[nic] != tag}
    if not wrong:
        return Feedback(True, "Right: " + ", ".join(f"{n} {_tag(t)}" for n, t in right.items())
                        + ".")
    nic = next(iter(wrong))
    return Feedback(False, f"The right NICs, but {nic} receives it {_tag(right[nic])}, not "
                           f"{_tag(wrong[nic])}: a port sends a VLAN untagged only where that "
                           "VLAN is marked untagged (an access port, or a trunk's native "
                           "VLAN). Try again.", "tag")


def _tag(tag: int | None) -> str:
    return "untagged" if tag is None else f"tagged {tag}"


def main_problem(seed: int, show_answer: bool, vlans: bool = False) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer)."""
    p = generate(seed, vlans)
    if not show_answer:
        return problem_text(seed, p.question, None)
    right = p.solve()
    shown = (", ".join(f"{n} {_tag(t)}" for n, t in p.solve_tags().items()) if vlans
             else ", ".join(right))
    return problem_text(seed, p.question, [
        f"Answer: {shown or 'no NIC'}", "", "Worked answer, step by step:",
        p.explain(), "", "Check it: kvmlab.network.problems.generate("
        f"{seed}{', vlans=True' if vlans else ''}).result().steps()"])


__all__ = ["Problem", "check", "generate", "main_problem"]
