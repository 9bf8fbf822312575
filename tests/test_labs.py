"""A chapter becomes a lab by stripping its solutions; its check cells must still run."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dlbook.check import strip_solutions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "chapters" / "how-to-use.ipynb"


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text):
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}


def test_strip_removes_exactly_the_gated_cells():
    nb = {"cells": [_md("task"), _code("stub"), _md("````{solution-start} ex\n:class: dropdown\n````"),
                    _code("answer"), _md("````{solution-end}\n````"), _code("check")], "metadata": {}}
    assert ["".join(c["source"]) for c in strip_solutions(nb)["cells"]] == ["task", "stub", "check"]
    assert len(nb["cells"]) == 6  # the input is not modified


@pytest.mark.parametrize("cells, match", [
    ([_md("{solution-start} a"), _md("{solution-start} b")], "inside another"),
    ([_md("{solution-end}")], "without a solution-start"),
    ([_md("{solution-start} a")], "has no solution-end"),
])
def test_strip_rejects_unbalanced_gates(cells, match):
    with pytest.raises(ValueError, match=match):
        strip_solutions({"cells": cells})


def test_strip_rejects_non_notebooks():
    with pytest.raises(TypeError, match="cells"):
        strip_solutions(["not", "a", "notebook"])


def test_a_stripped_chapter_runs_and_its_checks_say_not_yet(monkeypatch):
    lab = strip_solutions(json.loads(EXAMPLE.read_text()))
    assert len(lab["cells"]) < len(json.loads(EXAMPLE.read_text())["cells"])
    monkeypatch.setenv("DLBOOK_STRICT_CHECKS", "0")  # a student's run: feedback, not a traceback
    nb = nbformat.reads(json.dumps(lab), as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLE.parent)}}).execute()
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "not answered yet" in outputs and "NotImplementedError" in outputs
    assert '"output_type": "error"' not in outputs


# -- otter-grader labs (tools/labs.py): a small chapter with two exercises in the book's format --
import copy  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
import labs  # noqa: E402

FIRST_CELL = ('try:\n    import dlbook\nexcept ImportError:\n'
              '    %pip install --quiet "dlbook[notebooks] @ git+https://github.com/dlbook/dlbook"\n'
              '    import dlbook\nimport numpy as np')


def _exercise(label, task, starter, solution, check):
    return [_md(f"```{{exercise}}\n:label: {label}\n\n{task}\n```"), _code(starter),
            _md(f"````{{solution-start}} {label}\n:class: dropdown\n````"), _code(solution),
            _md("````{solution-end}\n````"), _code(check)]


def _chapter() -> dict:
    cells = [_md("# A small lab"), _code(FIRST_CELL)]
    cells += _exercise("ex-lab-square", "Write `square(x)`.",
                       "def square(x):\n    raise NotImplementedError", "def square(x):\n    return x * x",
                       "from dlbook.check import check_function\n\n"
                       "check_function('square', square, lambda x: x**2, cases=[(np.arange(4.0),), (-2.5,)])")
    cells += _exercise("ex-lab-mean", "Write `mean(v)` with NumPy.",
                       "def mean(v):\n    raise NotImplementedError", "def mean(v):\n    return np.asarray(v).sum() / len(v)",
                       "from dlbook.check import check_function\n\n"
                       "check_function('mean', mean, lambda v: float(np.mean(v)), cases=[([1.0, 2.0, 6.0],)], hint='sum / count')")
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _answer(nb: dict, name: str, code: str, before: str | None = None) -> dict:
    """The student notebook with the answer cell of `name` replaced (and a cell put before it)."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        if "otter_answer_cell" in cell["metadata"].get("tags", []) and f"def {name}(" in "".join(cell["source"]):
            cell["source"] = code
            if before is not None:
                nb["cells"].insert(i, _code(before))
            return nb
    raise AssertionError(f"no answer cell for {name}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    chapter = root / "chapters" / "demo"
    chapter.mkdir(parents=True)
    source = chapter / "01-lab.ipynb"
    source.write_text(json.dumps(_chapter()))
    return source, labs.make_lab(source, root / "out")  # otter assign runs the solutions: full marks


def test_student_notebook_has_prompts_and_checks_but_no_solution(lab):
    source, dest = lab
    student = json.loads((dest / "student" / source.name).read_text())
    text = "\n".join("".join(c["source"]) for c in student["cells"])
    assert "raise NotImplementedError" in text and "check_function('mean'" in text
    assert "return x * x" not in text and "sum() / len(v)" not in text
    assert "grader.check" not in text and "BEGIN SOLUTION" not in text
    assert labs.solution_leaks(_chapter(), student) == []


def test_grading_scores_each_question_and_never_crashes(lab, tmp_path, monkeypatch):
    source, dest = lab
    monkeypatch.setenv("DLBOOK_LAB_CELL_TIMEOUT", "8")
    monkeypatch.setattr(labs, "CELL_TIMEOUT_S", 8)
    student = json.loads((dest / "student" / source.name).read_text())
    solved = json.loads((dest / "autograder" / source.name).read_text())
    subs = tmp_path / "submissions"
    subs.mkdir()
    cases = {
        "solution": solved,
        "blank": student,
        "wrong_first": _answer(_answer(student, "square", "def square(x):\n    return 2 * x"),
                               "mean", "def mean(v):\n    return np.asarray(v).sum() / len(v)"),
        "raises_then_loops": _answer(_answer(student, "square", "def square(x):\n    raise ValueError('oops')"),
                                     "mean", "def mean(v):\n    while True:\n        pass"),
        "deletes_numpy": _answer(_answer(student, "square", "def square(x):\n    return x * x"),
                                 "mean", "def mean(v):\n    return np.asarray(v).sum() / len(v)", before="del np"),
    }
    for name, nb in cases.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb))
    rows = labs.grade(dest, subs, tmp_path / "graded")
    points = {(r["student"], r["question"]): r["points"] for r in rows}
    assert points[("solution", "ex-lab-square")] == 1 and points[("solution", "ex-lab-mean")] == 1
    assert points[("blank", "ex-lab-square")] == 0 and points[("blank", "ex-lab-mean")] == 0
    assert points[("wrong_first", "ex-lab-square")] == 0 and points[("wrong_first", "ex-lab-mean")] == 1
    assert points[("raises_then_loops", "ex-lab-square")] == 0 and points[("raises_then_loops", "ex-lab-mean")] == 0
    assert points[("deletes_numpy", "ex-lab-square")] == 1 and points[("deletes_numpy", "ex-lab-mean")] == 0
    feedback = {p.stem.removesuffix(".feedback"): p.read_text() for p in (tmp_path / "graded").glob("*.feedback.txt")}
    assert "values differ" in feedback["wrong_first"] and "got 0, expected 0" not in feedback["wrong_first"]
    assert "not answered yet" in feedback["blank"]
    assert "ValueError: oops" in feedback["raises_then_loops"] and "8 s limit" in feedback["raises_then_loops"]
    assert "NameError" in feedback["deletes_numpy"]
    header = (tmp_path / "graded" / "grades.csv").read_text().splitlines()[0]
    assert header == "student,question,points,max_points,total"
