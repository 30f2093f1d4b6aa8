"""What every lab's practice problems share: the text the command line prints.

In the style of the OSTEP homework simulators, a problem is made from a seed, its
settings are printed first so that it can be repeated, and the answer is shown
only when asked for (``-c``).

Examples
--------
>>> print(problem_text(3, "How many?", None))
ARG seed 3
(run again with -s 3 for the same problem, another seed for a new one)
<BLANKLINE>
How many?
<BLANKLINE>
Work it out, then run again with -c to see the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feedback:
    """What a lab's ``check`` thinks of an answer. Prints as its message.

    ``hint`` names the slip recognised, if the lab names them (``'forgot-l2'``...).

    Examples
    --------
    >>> print(Feedback(False, "Not yet: too high.", "percent"))
    Not yet: too high.
    """

    correct: bool
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return self.message

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.message)

    def _repr_markdown_(self) -> str:  # pragma: no cover - Jupyter
        mark = "**right:**" if self.correct else "**not yet:**"
        return f"{mark} {self.message.replace(chr(10), '  ' + chr(10))}"


def problem_text(seed: int, question: str, answer: Sequence[str] | None) -> str:
    """The problem for ``seed``, followed by ``answer`` lines if given (``-c``)."""
    lines = [f"ARG seed {seed}",
             f"(run again with -s {seed} for the same problem, another seed for a new one)",
             "", question, ""]
    lines += (list(answer) if answer is not None
              else ["Work it out, then run again with -c to see the answer."])
    return "\n".join(lines)


def check_answer(check: Callable[[Any, Any], Feedback], problem: Any, answer: Any) -> Feedback:
    """``check(problem, answer)``, or "not answered yet" while ``answer`` is None.

    An exercise's answer starts as None, so that an empty answer is never taken for one
    that happens to be right (an empty list of NICs, say) and the feedback gives nothing
    away before the student has tried.

    Examples
    --------
    >>> print(check_answer(lambda p, a: Feedback(a == p, "Right."), 3, None))
    Not answered yet: fill in my_answer above, then run this cell again.
    >>> print(check_answer(lambda p, a: Feedback(a == p, "Right."), 3, 3))
    Right.
    """
    if answer is None:
        return Feedback(False, "Not answered yet: fill in my_answer above, then run this cell "
                               "again.", "unanswered")
    return check(problem, answer)
