"""Teacher and student versions, and the shape every notebook keeps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kvmlab.classroom import (  # noqa: E402
    CODE_STUB,
    TEXT_STUB,
    answer_metadata,
    autograder_metadata,
    grading_problems,
    is_solution,
    is_tests,
    solution_metadata,
    strip_hidden_tests,
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
        elif is_tests(t):
            assert "HIDDEN" not in s.source and s.source == strip_hidden_tests(t).source
            assert "assert" in s.source                  # the visible tests stay
        else:
            assert s.source == t.source
    text = "\n".join(c.source for c in student.cells)
    checks = len(re.findall(r"\bcheck\(", "\n".join("\n".join(kept_lines(c))
                                                   for c in teacher.cells)))
    assert len(re.findall(r"\bcheck\(", text)) >= checks
    if path.stem != "00-start-here":                        # the student's check stays
        assert ("problems.check(problem, my_answer)" in text
                or "check_answer(problems.check, problem, my_answer)" in text), path.name


def kept_lines(cell):
    """The lines of a teacher's cell that the student must get, in order."""
    if is_solution(cell) and "BEGIN SOLUTION" not in cell.source:
        return []
    begin, end = (("BEGIN SOLUTION", "END SOLUTION") if is_solution(cell)
                  else ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS") if is_tests(cell)
                  else (None, None))
    kept, inside = [], False
    for line in cell.source.splitlines():
        if begin and begin in line:
            inside = True
        elif end and end in line:
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def is_subsequence(part, whole):
    rest = iter(whole)
    return all(any(line == other for other in rest) for line in part)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_student_version_keeps_every_line_that_is_not_an_answer(path):
    teacher = nbformat.read(path, as_version=4)
    student = student_version(teacher)
    for t, s in zip(teacher.cells, student.cells, strict=True):
        assert is_subsequence(kept_lines(t), s.source.splitlines()), t.source[:80]


# Lines of text (not empty: an empty first or last line is not text that can go missing).
line = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
               max_size=20).filter(
    lambda text: "SOLUTION" not in text and "HIDDEN" not in text)


@given(before=st.lists(line, max_size=4), answer=st.lists(line, max_size=4),
       after=st.lists(line, max_size=4), kind=st.sampled_from(["code", "markdown"]))
def test_every_line_outside_the_markers_survives(before, answer, after, kind):
    source = "\n".join([*before, "### BEGIN SOLUTION", *answer, "### END SOLUTION", *after])
    cell = solution_cell(source, kind)
    got = strip_solution(cell).source.splitlines()
    stub = CODE_STUB if kind == "code" else TEXT_STUB
    assert got == [*before, stub, *after]
    tests = nbformat.v4.new_code_cell(
        source.replace("SOLUTION", "HIDDEN TESTS"),
        metadata={"nbgrader": autograder_metadata("t", 1)})
    assert strip_hidden_tests(tests).source.splitlines() == [*before, *after]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_check_refuses_text_hidden_in_a_solution_cell(path, tmp_path, capsys):
    nb = nbformat.read(path, as_version=4)
    answers = max(i for i, c in enumerate(nb.cells)
                  if is_solution(c) and c.cell_type == "markdown")
    nb.cells[answers].source += "\n\n## Where to go next\n\nThe next lab."
    bad = tmp_path / path.name
    nbformat.write(nb, bad)
    assert main(["classroom", "check", str(bad)]) == 1
    assert "holds a heading ('## Where to go next')" in capsys.readouterr().out


def test_what_nbgrader_refuses_is_named():
    plain_answer = nbformat.v4.new_markdown_cell(
        "An answer.", metadata={"nbgrader": solution_metadata("a")})
    no_points = nbformat.v4.new_markdown_cell(
        "An answer.", metadata={"nbgrader": answer_metadata("b", 0)})
    untagged = nbformat.v4.new_code_cell("assert x", metadata={
        "nbgrader": autograder_metadata("c", 1)})
    whole = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": solution_metadata("a")})
    found = grading_problems(nbformat.v4.new_notebook(
        cells=[plain_answer, no_points, untagged, whole]))
    assert "Markdown solution cell 'a' is not a grade cell with points (nbgrader refuses it)" \
        in found
    assert "grade cell 'b' carries no points" in found
    assert any("tests cell 'c' is not tagged 'raises-exception'" in f for f in found)
    assert "grade_id 'a' is used twice" in found
    assert any("code solution cell 'a' has no 'BEGIN SOLUTION' marker" in f for f in found)


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
