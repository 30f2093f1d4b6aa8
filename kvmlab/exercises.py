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

from collections.abc import Sequence


def problem_text(seed: int, question: str, answer: Sequence[str] | None) -> str:
    """The problem for ``seed``, followed by ``answer`` lines if given (``-c``)."""
    lines = [f"ARG seed {seed}",
             f"(run again with -s {seed} for the same problem, another seed for a new one)",
             "", question, ""]
    lines += (list(answer) if answer is not None
              else ["Work it out, then run again with -c to see the answer."])
    return "\n".join(lines)
