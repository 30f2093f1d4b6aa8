"""Teacher and student versions, and the shape every notebook keeps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from kvmlab.classroom import (  # noqa: E402
    CODE_STUB,
    TEXT_STUB,
    is_solution,
    solution_metadata,
    strip_solution,
    structure_problems,
    student_version,
    write_student_versions,
)
from kvmlab.cli import main  # noqa: E402
from kvmlab.errors import ScenarioError  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def solution_cell(source, kind="code"):
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": solution_metadata("q")})


def test_a_solution_region_becomes_a_stub_with_its_indentation():
    cell = solution_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                         "    ### END SOLUTION\nf(1)")
    assert strip_solution(cell).source == f"def f(x):\n    {CODE_STUB}\nf(1)"


@pytest.mark.parametrize(("kind", "stub"), [("code", CODE_STUB), ("markdown", TEXT_STUB)])
def test_a_solution_cell_without_markers_is_replaced_whole(kind, stub):
    assert strip_solution(solution_cell("the answer is 42", kind)).source == stub


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1",
                                    "x = 1\n### END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unpaired_markers_name_the_rule(source):
    with pytest.raises(ScenarioError, match=r"(BEGIN|END) SOLUTION"):
        strip_solution(solution_cell(source))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_keeps_the_labs_shape(path):
    assert structure_problems(nbformat.read(path, as_version=4)) == []


def test_a_notebook_without_the_shape_is_told_what_it_lacks():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_markdown_cell("## 8. Exercises"),
                                         nbformat.v4.new_markdown_cell("## 9. More")])
    found = structure_problems(nb)
    assert "the first cell is not a Markdown introduction" in found
    assert "no cell is tagged 'parameters'" in found
    assert "the exercises are not at the end: '## 9. More' follows them" in found
    assert "no solution cell (nbgrader metadata 'solution': true)" in found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_version_drops_solutions_and_keeps_everything_else(path):
    teacher = nbformat.read(path, as_version=4)
    student = student_version(teacher)
    assert len(student.cells) == len(teacher.cells)
    for t, s in zip(teacher.cells, student.cells, strict=True):
        if is_solution(t):
            assert "SOLUTION" not in s.source and (CODE_STUB in s.source
                                                   or TEXT_STUB in s.source)
        else:
            assert s.source == t.source
    text = "\n".join(c.source for c in student.cells)
    checks = len(re.findall(r"\bcheck\(", "\n".join(c.source for c in teacher.cells
                                                   if not is_solution(c))))
    assert len(re.findall(r"\bcheck\(", text)) >= checks
    if path.stem != "00-start-here":
        assert "problems.check(problem, my_answer)" in text     # the student's check stays


def test_the_command_line_writes_student_versions_and_checks_shape(tmp_path, capsys):
    assert main(["classroom", "student", *map(str, NOTEBOOKS), "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert main(["classroom", "check", *map(str, NOTEBOOKS)]) == 0
    assert capsys.readouterr().out.count(": ok") == len(NOTEBOOKS)


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_version_runs_headless_with_the_exercises_unanswered(path, tmp_path,
                                                                         monkeypatch):
    from tests.test_notebooks import run_notebook

    monkeypatch.delenv("KVMLAB_URI", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")
    (student,) = write_student_versions([path], tmp_path)
    run_notebook(student)
