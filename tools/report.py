"""Print what `make test` did: a table per phase (seconds, notebook executions) and the book's size.

    python tools/report.py            # after make test / make book

Reads _build/phases.tsv (tools/timed), _build/executions.tsv (tools/notebooks.py) and
_build/jb-build.log (the Jupyter Book build's log: "Executing notebook" lines are executions the
build did itself, which should be none after the notebook phase filled the cache).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebooks as runner  # noqa: E402

ROOT = runner.ROOT
BUILD = ROOT / "_build"
LABEL = re.compile(r"^\(q-[A-Za-z0-9_.\-]+\)=\s*$", re.M)
ASSERT = re.compile(r"^\s*assert\b", re.M)
CHECK = re.compile(r"\bcheck_(?:close|function|true)\(")
EXERCISE = re.compile(r"```\{exercise\}")


def _rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def book_size() -> dict[str, int]:
    """Notebooks in the TOC, and in them: asserts, exercise checks, exercises, syllabus labels."""
    size = Counter()
    for nb in runner.toc_notebooks():
        size["notebooks"] += 1
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code":
                size["asserts"] += len(ASSERT.findall(src))
                size["checks"] += len(CHECK.findall(src))
            else:
                size["exercises"] += len(EXERCISE.findall(src))
                size["labels"] += len(LABEL.findall(src))
    return dict(size)


def main() -> int:
    phases = _rows(BUILD / "phases.tsv")
    executions = _rows(BUILD / "executions.tsv")
    jb_log = BUILD / "jb-build.log"
    jb_executed = len(re.findall(r"Executing notebook using", jb_log.read_text(errors="replace"))) if jb_log.exists() else 0
    jb_cached = len(re.findall(r"Using cached notebook", jb_log.read_text(errors="replace"))) if jb_log.exists() else 0
    per_phase = Counter(row[0] for row in executions)
    install = BUILD / "install-phase.tsv"

    print("\n== make test: phases")
    print(f"{'phase':<16} {'seconds':>8}  {'status':<6}  notebook executions")
    total = 0.0
    if install.exists():
        for row in _rows(install):
            print(f"{row[0]:<16} {float(row[1]):8.1f}  {row[2]:<6}  -")
            total += float(row[1])
    else:
        print(f"{'install':<16} {0.0:8.1f}  {'ok':<6}  - (already installed)")
    for name, seconds, status in phases:
        if name == "HTML build":
            note = f"{per_phase.get('book', 0) + jb_executed} (fill {per_phase.get('book', 0)}, build {jb_executed}; {jb_cached} pages from the cache)"
        else:
            n = per_phase.get(name, 0)
            note = str(n) if n else "-"
        print(f"{name:<16} {float(seconds):8.1f}  {status:<6}  {note}")
        total += float(seconds)
    print(f"{'total':<16} {total:8.1f}")

    runs = Counter(row[1] for row in executions if row[2] == "0") + Counter()
    if runs:
        most = max(runs.values()) + (1 if jb_executed else 0)
        print(f"each notebook executed at most {most} time(s) at the default seed "
              f"({len(runs)} notebooks, slowest {max(float(r[3]) for r in executions):.1f} s)")
    size = book_size()
    html = BUILD / "html" / "index.html"
    print("\n== the book")
    print(f"HTML: file://{html}" + ("" if html.exists() else " (not built)"))
    print(f"notebooks: {size.get('notebooks', 0)}")
    print(f"asserts: {size.get('asserts', 0)} (plus {size.get('checks', 0)} exercise checks)")
    print(f"exercises: {size.get('exercises', 0)}")
    print(f"syllabus labels: {size.get('labels', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
