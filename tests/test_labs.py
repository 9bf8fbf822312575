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
