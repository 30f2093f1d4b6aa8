"""Teacher and student versions of the notebooks, and the shape every notebook keeps.

The notebooks in ``notebooks/`` are the **teacher's versions**, marked up the way nbgrader
marks an assignment, so a course can hand them to ``nbgrader generate_assignment`` as they
are:

* an *answer cell* (code, :func:`solution_metadata`) holds the answer between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
* the *autograder tests* after it (:func:`autograder_metadata`, with points) check that it is
  answered, in the form asked (visible), and right (between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``, which the student never sees). They are tagged
  ``raises-exception``, so an unanswered exercise fails its tests without stopping the
  notebook;
* a written answer is a Markdown cell graded by hand (:func:`answer_metadata`, with
  points) that holds the answer only: the question, and anything after it, is in cells of
  their own.

:func:`student_version` does the same as nbgrader without it: every solution region
becomes ``# YOUR CODE HERE`` (no ``raise``: the student version runs top to bottom with the
exercises unanswered, and the ``check(...)`` cells say "not yet"), a Markdown answer
becomes a prompt, hidden tests go, and outputs are cleared; every other cell and every
other line stays as it is. ``kvmlab classroom student`` writes them.

:func:`structure_problems` lists what a notebook lacks of the shape every lab keeps: it
opens with what you will learn and what you need, has a ``parameters`` cell, ends with
exercises that carry points and autograder tests, and holds nothing but answers in its
solution cells.

Examples
--------
>>> import nbformat
>>> cell = nbformat.v4.new_code_cell("x = None\\n### BEGIN SOLUTION\\nx = 42\\n"
...                                  "### END SOLUTION\\ncheck(x)",
...                                  metadata={"nbgrader": solution_metadata("q1")})
>>> print(strip_solution(cell).source)
x = None
# YOUR CODE HERE
check(x)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE"
TEXT_STUB = "*Your answers here.* (Your teacher has the worked answers.)"
EXERCISE_HEADING = re.compile(r"^#{2,3} .*(Exercises|Check yourself)", re.M)
CLOSING_SECTIONS = ("Where to go next", "The article says")
TESTS_TAG = "raises-exception"


def solution_metadata(grade_id: str) -> dict[str, Any]:
    """nbgrader's metadata for a code answer cell, graded by the tests after it."""
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
            "solution": True, "task": False}


def answer_metadata(grade_id: str, points: int) -> dict[str, Any]:
    """nbgrader's metadata for an answer graded by hand (a Markdown answer cell)."""
    return {"grade": True, "grade_id": grade_id, "locked": False, "points": points,
            "schema_version": 3, "solution": True, "task": False}


def autograder_metadata(grade_id: str, points: int) -> dict[str, Any]:
    """nbgrader's metadata for a cell of autograder tests worth ``points``."""
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": 3, "solution": False, "task": False}


def _nbgrader(cell: Any) -> dict[str, Any]:
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def is_solution(cell: Any) -> bool:
    """True for a cell nbgrader treats as a solution cell."""
    return bool(_nbgrader(cell).get("solution"))


def is_tests(cell: Any) -> bool:
    """True for a cell of autograder tests (graded, not a solution, code)."""
    meta = _nbgrader(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def points(cell: Any) -> float:
    """The points a grade cell is worth (0 for any other cell)."""
    meta = _nbgrader(cell)
    return float(meta.get("points", 0) or 0) if meta.get("grade") or meta.get("task") else 0.0


def _strip_regions(source: str, begin: str, end: str, stub: str | None) -> str:
    """``source`` with each ``begin``..``end`` region replaced by ``stub`` (or dropped)."""
    kept: list[str] = []
    inside = False
    for line in source.splitlines():
        if begin in line:
            if inside:
                raise ScenarioError(f"a cell opens {begin!r} twice:\n{source}")
            inside = True
            if stub is not None:
                kept.append(line[:len(line) - len(line.lstrip())] + stub)
        elif end in line:
            if not inside:
                raise ScenarioError(f"{end!r} without {begin!r} in:\n{source}")
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise ScenarioError(f"{begin!r} without {end!r} in:\n{source}")
    return "\n".join(kept)


def strip_solution(cell: Any) -> Any:
    """A copy of a solution cell as the student gets it (see the module's docs).

    Raises
    ------
    ScenarioError
        If the cell's solution markers do not pair up.
    """
    out = copy.deepcopy(cell)
    stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    if not any(BEGIN in line or END in line for line in cell.source.splitlines()):
        out.source = stub
    else:
        out.source = _strip_regions(cell.source, BEGIN, END, stub)
    if out.cell_type == "code":
        out.outputs, out.execution_count = [], None
    return out


def strip_hidden_tests(cell: Any) -> Any:
    """A copy of a tests cell without its hidden tests, as nbgrader releases it.

    Examples
    --------
    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("assert x is not None\\n### BEGIN HIDDEN TESTS\\n"
    ...                                  "assert x == 42\\n### END HIDDEN TESTS")
    >>> print(strip_hidden_tests(cell).source)
    assert x is not None
    """
    out = copy.deepcopy(cell)
    out.source = _strip_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None)
    return out


def student_version(nb: Any) -> Any:
    """The student's copy of a teacher's notebook: solutions out, checks and text kept."""
    out = copy.deepcopy(nb)
    out.cells = [strip_solution(c) if is_solution(c)
                 else strip_hidden_tests(c) if is_tests(c) else c for c in out.cells]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def write_student_versions(paths: Iterable[Path], out_dir: Path) -> list[Path]:
    """Write the student version of each notebook into ``out_dir``; the paths written."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / Path(path).name
        nbformat.write(student_version(nb), target)
        written.append(target)
    return written


def structure_problems(nb: Any) -> list[str]:
    """What a notebook lacks of the labs' shape; an empty list when it has it all."""
    problems = []
    first = nb.cells[0].source if nb.cells else ""
    if nb.cells and nb.cells[0].cell_type != "markdown":
        problems.append("the first cell is not a Markdown introduction")
    for phrase in ("What you will learn", "What you need"):
        if phrase not in first:
            problems.append(f"the first cell does not say {phrase!r}")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        problems.append("no cell is tagged 'parameters'")
    headings = [(i, m.group(0)) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                for m in re.finditer(r"^## .*$", c.source, re.M)]
    exercise_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                        and EXERCISE_HEADING.search(c.source)), None)
    if exercise_at is None:
        problems.append("no 'Exercises' or 'Check yourself' section")
    else:
        later = [h for i, h in headings if i > exercise_at
                 and not any(s in h for s in CLOSING_SECTIONS)
                 and not EXERCISE_HEADING.search(h)]
        if later:
            problems.append(f"the exercises are not at the end: {later[0]!r} follows them")
    if not any(is_solution(c) for c in nb.cells):
        problems.append("no solution cell (nbgrader metadata 'solution': true)")
    return problems + grading_problems(nb)


def grading_problems(nb: Any) -> list[str]:
    """What nbgrader would refuse in a notebook, or what would lose the student text.

    Examples
    --------
    >>> import nbformat
    >>> cell = nbformat.v4.new_markdown_cell("Answers.\\n\\n## Where to go next\\n\\nLab 01.",
    ...                                      metadata={"nbgrader": answer_metadata("q", 1)})
    >>> for problem in grading_problems(nbformat.v4.new_notebook(cells=[cell])):
    ...     print(problem[:60])
    solution cell 'q' holds a heading ('## Where to go next'): t
    no autograder tests: no cell has points and tests
    """
    found = []
    ids: set[str] = set()
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if not meta:
            continue
        gid = meta.get("grade_id", "?")
        if gid in ids:
            found.append(f"grade_id {gid!r} is used twice")
        ids.add(gid)
        if is_solution(cell) and cell.cell_type == "markdown" and not meta.get("grade"):
            found.append(f"Markdown solution cell {gid!r} is not a grade cell with points "
                         "(nbgrader refuses it)")
        if (meta.get("grade") or meta.get("task")) and points(cell) <= 0:
            found.append(f"grade cell {gid!r} carries no points")
        if is_solution(cell) and cell.cell_type == "markdown":
            heading = re.search(r"^#{1,6} .*$", cell.source, re.M)
            if heading:
                found.append(f"solution cell {gid!r} holds a heading ({heading.group(0)!r}): "
                             "that section is not an answer, and the student copy would "
                             "lose it")
        if is_solution(cell) and cell.cell_type == "code" and BEGIN not in cell.source:
            found.append(f"code solution cell {gid!r} has no {BEGIN!r} marker: the "
                         "student copy would lose the whole cell")
        if is_tests(cell) and TESTS_TAG not in cell.get("metadata", {}).get("tags", []):
            found.append(f"tests cell {gid!r} is not tagged {TESTS_TAG!r}: an unanswered "
                         "exercise would stop the notebook there")
    if not any(is_tests(c) and points(c) > 0 for c in nb.cells):
        found.append("no autograder tests: no cell has points and tests")
    return found


__all__ = [
    "answer_metadata",
    "autograder_metadata",
    "grading_problems",
    "is_solution",
    "is_tests",
    "points",
    "solution_metadata",
    "strip_hidden_tests",
    "strip_solution",
    "structure_problems",
    "student_version",
    "write_student_versions",
]
