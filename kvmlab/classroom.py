"""Teacher and student versions of the notebooks, and the shape every notebook keeps.

The notebooks in ``notebooks/`` are the **teacher's versions**: their exercise answers are
in *solution cells*, marked the way nbgrader marks them (cell metadata
``nbgrader.solution = true``; in code, the answer between ``### BEGIN SOLUTION`` and
``### END SOLUTION``), so a course can hand them to ``nbgrader generate_assignment`` as
they are. :func:`student_version` does the same without nbgrader: every solution region
becomes ``# YOUR CODE HERE`` (no ``raise``: the student version runs top to bottom with
the exercises unanswered, and the ``check(...)`` cells say "not yet"), a Markdown
solution cell becomes a prompt, and outputs are cleared. ``kvmlab classroom student``
writes them.

:func:`structure_problems` lists what a notebook lacks of the shape every lab keeps: it
opens with what you will learn and what you need, has a ``parameters`` cell, ends with
exercises that have checks, and marks its answers as solutions.

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
CODE_STUB = "# YOUR CODE HERE"
TEXT_STUB = "*Your answers here.* (Your teacher has the worked answers.)"
EXERCISE_HEADING = re.compile(r"^#{2,3} .*(Exercises|Check yourself)", re.M)
CLOSING_SECTIONS = ("Where to go next", "The article says")


def solution_metadata(grade_id: str) -> dict[str, Any]:
    """nbgrader's metadata for a solution cell that is not graded automatically."""
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3,
            "solution": True, "task": False}


def is_solution(cell: Any) -> bool:
    """True for a cell nbgrader treats as a solution cell."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def strip_solution(cell: Any) -> Any:
    """A copy of a solution cell as the student gets it (see the module's docs).

    Raises
    ------
    ScenarioError
        If the cell's solution markers do not pair up.
    """
    out = copy.deepcopy(cell)
    lines = cell.source.splitlines()
    if not any(BEGIN in line or END in line for line in lines):
        out.source = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    else:
        kept: list[str] = []
        inside = False
        for line in lines:
            if BEGIN in line:
                if inside:
                    raise ScenarioError(f"a solution cell opens {BEGIN!r} twice:\n{cell.source}")
                inside = True
                indent = line[:len(line) - len(line.lstrip())]
                kept.append(indent + (CODE_STUB if cell.cell_type == "code" else TEXT_STUB))
            elif END in line:
                if not inside:
                    raise ScenarioError(f"{END!r} without {BEGIN!r} in:\n{cell.source}")
                inside = False
            elif not inside:
                kept.append(line)
        if inside:
            raise ScenarioError(f"{BEGIN!r} without {END!r} in:\n{cell.source}")
        out.source = "\n".join(kept)
    if out.cell_type == "code":
        out.outputs, out.execution_count = [], None
    return out


def student_version(nb: Any) -> Any:
    """The student's copy of a teacher's notebook: solutions out, checks and text kept."""
    out = copy.deepcopy(nb)
    out.cells = [strip_solution(c) if is_solution(c) else c for c in out.cells]
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
    return problems


__all__ = ["solution_metadata", "strip_solution", "structure_problems", "student_version",
           "write_student_versions"]
