"""The book's promises about its own sources: checked without executing anything."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
LABEL = re.compile(r"^\(q-([A-Za-z0-9_.\-]+)\)=\s*$", re.M)


def _notebooks() -> list[Path]:
    return sorted(p for p in CHAPTERS.rglob("*.ipynb") if not {".ipynb_checkpoints", "_build"} & set(p.parts))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _toc_files() -> list[str]:
    """Every file _toc.yml lists, from the book's runner (one reader of the TOC)."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from notebooks import toc_files

    return toc_files()


def _syllabus() -> list[dict]:
    """The syllabus items; skips the calling test when no syllabus sits beside the checkout."""
    path = Path(os.environ.get("DLBOOK_SYLLABUS", ROOT.parent / "shared" / "syllabus.yml"))
    if not path.exists():
        pytest.skip("no ../shared/syllabus.yml beside this checkout (set DLBOOK_SYLLABUS)")
    return yaml.safe_load(path.read_text())


def _labels() -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {}
    for nb in _notebooks():
        for cell in _load(nb)["cells"]:
            if cell["cell_type"] == "markdown":
                for m in LABEL.finditer(_source(cell)):
                    labels.setdefault(m.group(1), []).append(str(nb.relative_to(ROOT)))
    for md in CHAPTERS.rglob("*.md"):
        for m in LABEL.finditer(md.read_text(encoding="utf-8")):
            labels.setdefault(m.group(1), []).append(str(md.relative_to(ROOT)))
    return labels


NOTEBOOKS = _notebooks()
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_without_outputs(nb):
    cells = [c for c in _load(nb)["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{nb.name}: code cells {dirty} have outputs; clear them before committing"


def test_every_notebook_and_page_is_in_the_toc():
    listed = set(_toc_files())
    pages = [p for p in NOTEBOOKS] + [p for p in CHAPTERS.rglob("*.md")]
    missing = [str(p.relative_to(ROOT)) for p in pages if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not missing, f"not in _toc.yml (so never built): {missing}"


def test_every_toc_entry_exists():
    for entry in _toc_files():
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"


def test_labels_name_syllabus_ids():
    ids = {item["id"] for item in _syllabus()}
    unknown = {label: where for label, where in _labels().items() if label not in ids}
    assert not unknown, f"(q-...)= labels that name no syllabus id: {unknown}"


def test_labels_are_unique():
    dup = {label: where for label, where in _labels().items() if len(where) > 1}
    assert not dup, f"syllabus ids answered twice: {dup}"


def test_labels_sit_directly_above_a_heading():
    for nb in NOTEBOOKS:
        for cell in _load(nb)["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            lines = _source(cell).splitlines()
            for i, line in enumerate(lines):
                if LABEL.match(line):
                    nxt = next((l for l in lines[i + 1 :] if l.strip()), "")
                    assert nxt.startswith("#"), f"{nb.name}: {line} is not followed by a heading"


def _repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_first_code_cell_installs_dlbook_only_when_missing(nb):
    first = next(_source(c) for c in _load(nb)["cells"] if c["cell_type"] == "code")
    assert re.search(r"^try:\n\s+import dlbook\nexcept ImportError", first, re.M), first
    # the magic must be live code, not a comment (jupytext writes "# %pip" unless told otherwise)
    pip = re.search(r'^[ \t]+%pip install --quiet "dlbook\[notebooks\] @ git\+(\S+)"', first, re.M)
    assert pip, f"{nb.name}: the first cell must %pip install dlbook[notebooks] from the repository"
    assert pip.group(1) == _repository_url(), f"{nb.name}: URL differs from _config.yml repository.url"
    assert "dlbook.__version__" in first, f"{nb.name}: the first cell must show dlbook.__version__"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_notebook_uses_the_python3_kernel(nb):
    assert _load(nb)["metadata"]["kernelspec"]["name"] == "python3"


def test_exercise_labels_are_unique_and_solutions_match():
    exercises, solutions = {}, []
    for nb in NOTEBOOKS:
        for cell in _load(nb)["cells"]:
            src = _source(cell)
            for m in re.finditer(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label: (\S+)", src):
                assert m.group(1) not in exercises, f"exercise label {m.group(1)} used twice"
                exercises[m.group(1)] = nb.name
            solutions += re.findall(r"\{solution(?:-start)?\} (\S+)", src)
    orphans = [s for s in solutions if s not in exercises]
    assert not orphans, f"solutions for unknown exercises: {orphans}"


def test_gated_solutions_are_closed():
    for nb in NOTEBOOKS:
        text = "\n".join(_source(c) for c in _load(nb)["cells"] if c["cell_type"] == "markdown")
        assert text.count("{solution-start}") == text.count("{solution-end}"), nb.name


def test_version_is_single_sourced():
    import dlbook

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "dlbook.__version__"' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", dlbook.__version__)


def test_math_modules_do_not_import_matplotlib():
    allowed = {"plot.py", "widgets.py"}
    for module in (ROOT / "src" / "dlbook").glob("*.py"):
        if module.name not in allowed:
            assert not re.search(r"^\s*(import|from) matplotlib", module.read_text(), re.M), module.name


def test_each_answer_names_its_chinese_term():
    """Readers come from Chinese notes: each answered section carries the syllabus's zh term."""
    zh = {item["id"]: item["zh"] for item in _syllabus()}
    missing = []
    for nb in NOTEBOOKS:
        text = "\n".join(_source(c) for c in _load(nb)["cells"] if c["cell_type"] == "markdown")
        parts = re.split(r"^\(q-([A-Za-z0-9_.\-]+)\)=\s*$", text, flags=re.M)
        for label, body in zip(parts[1::2], parts[2::2]):
            if label in zh and zh[label] not in body:
                missing.append(f"{nb.name}: {label} ({zh[label]})")
    assert not missing, f"sections without their Chinese term: {missing}"


def _requirement_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    return {re.sub(r"[-_.]+", "-", Requirement(r).name).lower() for r in requirements}


def _with_dependencies(names: set[str]) -> set[str]:
    """The distributions and, transitively, what they require (markers and extras aside)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in requires:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(re.sub(r"[-_.]+", "-", req.name).lower())
    return seen


def test_notebook_imports_are_installed_by_the_first_cell():
    """On Colab the first cell installs dlbook[notebooks]: every module a notebook imports must
    come from the standard library, dlbook, dlbook's dependencies or the `notebooks` extra."""
    import ast
    import sys
    import tomllib
    from importlib import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provided = _with_dependencies(
        _requirement_names(project["dependencies"]) | _requirement_names(project["optional-dependencies"]["notebooks"]))
    module_to_dists = metadata.packages_distributions()
    missing = []
    for nb in NOTEBOOKS:
        for cell in _load(nb)["cells"]:
            if cell["cell_type"] != "code":
                continue
            code = "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                tree = ast.parse(code)
            except SyntaxError as exc:
                raise AssertionError(f"{nb.name}: a code cell does not parse: {exc}") from None
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in sys.stdlib_module_names or top == "dlbook":
                        continue
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in module_to_dists.get(top, [])}
                    if not dists & provided:
                        missing.append(f"{nb.relative_to(ROOT)}: {top} ({', '.join(sorted(dists)) or 'not installed'})")
    assert not missing, ("imported by a notebook but not installed by its first cell on Colab "
                         f"(add it to the `notebooks` extra in pyproject.toml): {sorted(set(missing))}")


def test_publishing_workflow_builds_with_make_book_and_deploys_the_html():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "publish.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    runs = [step.get("run", "") for step in steps]
    assert any(r.strip() == "make book" for r in runs), f"the workflow must build with `make book`: {runs}"
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "_build/html"
    assert any(str(s.get("uses", "")).startswith("actions/deploy-pages") for s in steps)
    assert "github.com/" not in (ROOT / ".github" / "workflows" / "publish.yml").read_text(), \
        "the repository URL lives in _config.yml only"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_install_cell_is_collapsed_in_the_html(nb):
    """The first cell (the Colab install) is noise on the page: the hide-cell tag folds it."""
    first = next(c for c in _load(nb)["cells"] if c["cell_type"] == "code")
    assert "hide-cell" in first.get("metadata", {}).get("tags", []), f"{nb.name}: tag the first cell hide-cell"


def test_display_math_is_its_own_paragraph():
    """A `$$` display inside a paragraph makes MyST's dollarmath pair the wrong dollars, and the
    page shows raw TeX: every display has a blank line (or the cell's edge) before and after."""
    bad = []
    for nb in NOTEBOOKS:
        for cell in _load(nb)["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            lines, in_code, i = _source(cell).split("\n"), False, 0
            while i < len(lines):
                line = lines[i]
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                if in_code or not line.lstrip().startswith("$$"):
                    i += 1
                    continue
                j = i
                body = line.strip()
                if not (len(body) > 2 and body.endswith("$$")):
                    j = i + 1
                    while j < len(lines) and not lines[j].rstrip().endswith("$$"):
                        j += 1
                if (i > 0 and lines[i - 1].strip()) or (j + 1 < len(lines) and lines[j + 1].strip()):
                    bad.append(f"{nb.name}: {line[:50]}")
                i = j + 1
    assert not bad, f"display math not set off by blank lines: {bad[:10]}"


def test_inline_math_never_starts_a_line_with_markdown_syntax():
    """Inline `$...$` math wrapped over a line break must not start the new line with `+ `, `- `,
    `* `, `1. `, `#` or `>`: Markdown reads it as a list item, heading or quote, closes the
    paragraph, and the page shows raw TeX (found on the mathematics appendix by the browser test)."""
    block_start = re.compile(r"^\s*([+*-]\s|\d+[.)]\s|#|>)")
    bad = []
    for nb in NOTEBOOKS:
        for cell in _load(nb)["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            in_code, open_inline = False, False
            for line in _source(cell).split("\n"):
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                if in_code or line.lstrip().startswith("$$") or line.rstrip().endswith("$$"):
                    open_inline = False
                    continue
                if open_inline and block_start.match(line):
                    bad.append(f"{nb.name}: {line[:60]}")
                singles = re.sub(r"\\\$", "", line.replace("$$", "")).count("$")
                open_inline = open_inline ^ (singles % 2 == 1)
                if not line.strip():
                    open_inline = False
    assert not bad, f"a line inside inline math starts with Markdown block syntax: {bad[:10]}"
