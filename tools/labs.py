"""Labs from the chapters: a student notebook and an otter-grader autograder, and grading.

    python tools/labs.py make  [--chapter losses] [--out _build/labs]
    python tools/labs.py grade --lab _build/labs/losses/01-classification --submissions DIR [--out DIR]

The exercises are written once, in the chapter (CONTRIBUTING.md: an ``{exercise}`` directive,
a starter cell, the solution between gated ``solution-start``/``solution-end`` directives, and
a check cell). ``make`` turns each notebook that has exercises into otter-grader's assignment
format and runs ``otter assign`` on it:

* the starter cell becomes the student's prompt and the solution cells the instructor's answer
  (``# BEGIN SOLUTION NO PROMPT`` ... a ``BEGIN PROMPT`` string), inside raw ``# BEGIN SOLUTION``
  / ``# END SOLUTION`` cells, so no solution reaches the student notebook;
* the check cell stays in the student notebook as it is (students see pass/fail and a hint),
  and a hidden copy, strict, becomes the question's autograder test: a wrong answer raises the
  check's message, which is the feedback;
* ``otter assign`` runs the solution notebook against those tests (full marks, or it fails).

``grade`` runs ``otter run`` on every submission (two at a time), after giving each a first
cell that limits every cell to ``CELL_TIMEOUT_S`` seconds (a loop that never ends fails its own
question, not the whole grading), and writes ``grades.csv`` (student, question, points,
max_points, total) and one ``<student>.feedback.txt`` per student.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as runner  # noqa: E402

CELL_TIMEOUT_S = int(os.environ.get("DLBOOK_LAB_CELL_TIMEOUT", "60"))
EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label: (\S+)")
SOLUTION_START = re.compile(r"\{solution-start\} (\S+)")
OTTER = [sys.executable, "-m", "otter"]
TIME_LIMIT_CELL = '''# Added by the grader: every cell may run at most {limit} s.
import signal as _signal


def _dlbook_cell_timeout(signum, frame):
    raise TimeoutError("this cell ran over the grader's {limit} s limit")


def _dlbook_arm(*args):
    _signal.signal(_signal.SIGALRM, _dlbook_cell_timeout)
    _signal.alarm({limit})


get_ipython().events.register("pre_run_cell", _dlbook_arm)
get_ipython().events.register("post_run_cell", lambda *args: _signal.alarm(0))'''


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


@dataclass
class Exercise:
    """One exercise of a chapter notebook: where its cells are."""

    label: str
    prompt: int  # the markdown cell with the {exercise} directive
    starter: list[int] = field(default_factory=list)
    solution: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)


def find_exercises(nb: dict) -> list[Exercise]:
    """The exercises of a notebook, in order; a malformed one raises ``ValueError``."""
    cells, found = nb["cells"], []
    i = 0
    while i < len(cells):
        m = EXERCISE.search(_src(cells[i])) if cells[i]["cell_type"] == "markdown" else None
        if not m:
            i += 1
            continue
        ex = Exercise(m.group(1), i)
        i += 1
        while i < len(cells) and cells[i]["cell_type"] == "code":
            ex.starter.append(i)
            i += 1
        if i >= len(cells) or SOLUTION_START.search(_src(cells[i])) is None:
            raise ValueError(f"exercise {ex.label}: expected a solution-start after its starter cell")
        i += 1
        while i < len(cells) and "{solution-end}" not in _src(cells[i]):
            if cells[i]["cell_type"] == "code":
                ex.solution.append(i)
            i += 1
        i += 1
        while i < len(cells) and cells[i]["cell_type"] == "code":
            ex.checks.append(i)
            i += 1
        if not ex.solution or not ex.checks:
            raise ValueError(f"exercise {ex.label}: needs solution code and a check cell")
        found.append(ex)
    return found


def _strict_test(code: str) -> str:
    """The check cell as a hidden test: strict, and silent (its result assigned, not shown)."""
    tree = ast.parse(code)
    lines = code.splitlines()
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        start = last.lineno - 1
        lines[start] = "_dlbook_check_result = " + lines[start]
    return "# HIDDEN\nimport os\nos.environ['DLBOOK_STRICT_CHECKS'] = '1'\n" + "\n".join(lines)


def to_assignment(nb: dict, name: str) -> dict:
    """A chapter notebook in otter-grader's assignment format (solutions and hidden tests)."""
    exercises = find_exercises(nb)
    by_start = {ex.prompt: ex for ex in exercises}
    cells, out = nb["cells"], []

    def raw(text: str) -> dict:
        return {"cell_type": "raw", "metadata": {}, "source": text}

    def code(text: str) -> dict:
        return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}

    config = (f"# ASSIGNMENT CONFIG\nname: {name}\ninit_cell: false\ncheck_all_cell: false\n"
              "export_cell: false\nsolutions_pdf: false\nrun_tests: true\n")
    out.append(raw(config))
    skip: set[int] = set()
    for i, cell in enumerate(cells):
        if i in skip:
            continue
        ex = by_start.get(i)
        if ex is None:
            out.append({**cell, "outputs": []} if cell["cell_type"] == "code" else cell)
            continue
        solution = "\n\n".join(_src(cells[j]) for j in ex.solution)
        starter = "\n\n".join(_src(cells[j]) for j in ex.starter)
        out += [raw(f"# BEGIN QUESTION\nname: {ex.label}\npoints: 1"), cell, raw("# BEGIN SOLUTION"),
                code(f"# BEGIN SOLUTION NO PROMPT\n{solution}\n# END SOLUTION\n"
                     f'""" # BEGIN PROMPT\n{starter}\n""" # END PROMPT'),
                raw("# END SOLUTION"), raw("# BEGIN TESTS")]
        out += [code(_strict_test(_src(cells[j]))) for j in ex.checks]
        out += [raw("# END TESTS"), raw("# END QUESTION")]
        out += [code(_src(cells[j])) for j in ex.checks]  # the public check the student runs
        last = max(ex.checks)
        skip.update(range(i, last + 1))
    return {**nb, "cells": out}


def make_lab(notebook: Path, out: Path, run_tests: bool = True) -> Path:
    """``otter assign`` one chapter notebook into ``out/<chapter>/<notebook>/{student,autograder}``."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    if not find_exercises(nb):
        raise ValueError(f"{notebook.name} has no exercises")
    chapter = notebook.parent.name if notebook.parent.name != "chapters" else notebook.stem
    dest = out.resolve() / chapter / notebook.stem  # otter assign runs in the chapter's folder
    shutil.rmtree(dest, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        master = Path(tmp) / notebook.name
        master.write_text(json.dumps(to_assignment(nb, f"{chapter}-{notebook.stem}"), indent=1))
        cmd = OTTER + ["assign", str(master), str(dest)] + ([] if run_tests else ["--no-run-tests"])
        env = {**os.environ, "DLBOOK_STRICT_CHECKS": "1", "DLBOOK_EXPLORER_MODE": "static"}
        done = subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"otter assign failed for {notebook.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    student = dest / "student" / notebook.name
    _drop_otter_calls(student)
    leaked = solution_leaks(json.loads(notebook.read_text()), json.loads(student.read_text()))
    if leaked:
        raise RuntimeError(f"{student}: solution text leaked into the student notebook: {leaked[:3]}")
    return dest


def _drop_otter_calls(student: Path) -> None:
    """The student edition keeps dlbook's own check cells; otter's ``grader.check`` cells need an
    otter install and an init cell, so they go (the autograder runs the hidden tests anyway)."""
    nb = json.loads(student.read_text())
    nb["cells"] = [c for c in nb["cells"] if not re.fullmatch(r"\s*grader\.check\([^)]*\)\s*", _src(c))]
    student.write_text(json.dumps(nb, indent=1, ensure_ascii=False))


def solution_leaks(chapter: dict, student: dict) -> list[str]:
    """Lines of solution code (longer than 20 characters) that appear in the student notebook."""
    text = "\n".join(_src(c) for c in student["cells"])
    leaks = []
    for ex in find_exercises(chapter):
        starter = "\n".join(_src(chapter["cells"][j]) for j in ex.starter)
        for j in ex.solution:
            for line in _src(chapter["cells"][j]).splitlines():
                line = line.strip()
                if len(line) > 20 and line in text and line not in starter:
                    leaks.append(line)
    return leaks


def _reason(output: str, score: float, max_score: float) -> str:
    """One line a student can act on: the check's own message, else the error that stopped it."""
    if score >= max_score:
        return "correct."
    for pattern in (r"CheckFailed: \[FAIL\] (.+)", r"^\s*(\w+(?:Error|Exception): .+)$"):
        found = re.findall(pattern, output, re.M)
        if found:
            return found[-1].strip()
    return "the test did not pass (see the grader's output)."


def _autograder_zip(lab: Path) -> Path:
    zips = sorted((lab / "autograder").glob("*.zip"))
    if not zips:
        raise FileNotFoundError(f"no autograder zip under {lab}/autograder: run `make labs` first")
    return zips[-1]


def grade_one(zip_path: Path, submission: Path, out: Path) -> dict:
    """Grade one submission; never raises for a bad submission (its questions score 0)."""
    out.mkdir(parents=True, exist_ok=True)
    nb = json.loads(submission.read_text(encoding="utf-8"))
    guarded = out / submission.name
    nb["cells"].insert(0, {"cell_type": "code", "metadata": {}, "source": TIME_LIMIT_CELL.format(limit=CELL_TIMEOUT_S),
                           "outputs": [], "execution_count": None})
    guarded.write_text(json.dumps(nb))
    env = {**os.environ, "DLBOOK_EXPLORER_MODE": "static", "DLBOOK_STRICT_CHECKS": "0"}
    done = subprocess.run(OTTER + ["run", "-a", str(zip_path), "-o", str(out), "--no-logo", str(guarded)],
                          env=env, capture_output=True, text=True, cwd=out,
                          timeout=CELL_TIMEOUT_S * 40)
    results = out / "results.json"
    if done.returncode != 0 or not results.exists():
        return {"error": (done.stdout + done.stderr)[-2000:], "tests": []}
    return json.loads(results.read_text())


def grade(lab: Path, submissions: Path, out: Path, jobs: int = 2) -> list[dict]:
    """Grade every ``*.ipynb`` in ``submissions``; write grades.csv and feedback files to ``out``."""
    zip_path = _autograder_zip(lab.resolve())
    out = out.resolve()
    subs = sorted(submissions.resolve().glob("*.ipynb"))
    if not subs:
        raise ValueError(f"no .ipynb submissions in {submissions}")
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda s: (s, grade_one(zip_path, s, out / "work" / s.stem)), subs))
    rows = []
    for sub, res in results:
        student = sub.stem
        tests = [t for t in res.get("tests", []) if "max_score" in t]
        total = sum(float(t.get("score") or 0) for t in tests)
        lines = [f"Feedback for {student}: {total:g} / {sum(float(t['max_score']) for t in tests):g}"]
        if res.get("error"):
            lines.append(f"The grader could not run this submission:\n{res['error']}")
        for t in tests:
            score = float(t.get("score") or 0)
            rows.append({"student": student, "question": t["name"], "points": score,
                         "max_points": float(t["max_score"]), "total": total})
            lines.append(f"\n[{t['name']}] {score:g} / {float(t['max_score']):g}: {_reason(t.get('output', ''), score, float(t['max_score']))}")
        if not tests:
            rows.append({"student": student, "question": "(none graded)", "points": 0.0, "max_points": 0.0, "total": 0.0})
        (out / f"{student}.feedback.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "question", "points", "max_points", "total"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--chapter", default="")
    mk.add_argument("--out", default=str(ROOT / "_build" / "labs"))
    gr = sub.add_parser("grade")
    gr.add_argument("--lab", required=True)
    gr.add_argument("--submissions", required=True)
    gr.add_argument("--out", default="")
    args = parser.parse_args(argv)
    if args.command == "make":
        notebooks = runner.toc_notebooks([c for c in args.chapter.split(",") if c] or None)
        made = 0
        for nb in notebooks:
            if not find_exercises(json.loads(nb.read_text(encoding="utf-8"))):
                continue
            dest = make_lab(nb, Path(args.out))
            made += 1
            print(f"{nb.relative_to(ROOT)} -> {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        print(f"{made} labs in {args.out}")
        return 0
    lab = Path(args.lab)
    out = Path(args.out) if args.out else lab / "graded"
    rows = grade(lab, Path(args.submissions), out)
    students = sorted({r["student"] for r in rows})
    for s in students:
        total = next(r["total"] for r in rows if r["student"] == s)
        print(f"{s}: {total:g}")
    print(f"grades: {out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
