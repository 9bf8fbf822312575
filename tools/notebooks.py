"""The book's one notebook runner: find the chapters' notebooks, execute each once, cache the result.

Every path that executes a notebook goes through :func:`execute`: the notebook tests
(``tests/test_notebooks.py``, run by ``make test``, ``make chapter``, ``make seeds`` and
``make colab-check`` under pytest-xdist on both cores), ``make book`` (:func:`fill_cache` via
``python tools/notebooks.py fill``) and ``benchmarks/chapter_times.py``.

Why not nbmake: nbmake executes a notebook in memory and throws the outputs away (or overwrites
the committed source with ``--overwrite``), so the HTML build had to execute every notebook a
second time. Here a successful default-seed execution is stored in Jupyter Book's own
jupyter-cache (``_build/.jupyter_cache``), keyed as MyST-NB keys it (the code cells and the
kernelspec), so ``jupyter-book build`` renders from the cache and executes nothing. The cache
record also carries a hash of the ``src/dlbook`` modules the notebook imports (transitively):
a change to one of them makes ``make book`` execute that notebook again (MyST-NB's key alone
would miss it), and a change elsewhere in the package leaves it alone.

A failure names the notebook, the failing cell (its index and first line) and the traceback;
each notebook has a wall-clock budget (``NOTEBOOK_TIMEOUT_S``) so a runaway loop fails fast.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
LOG = ROOT / "_build" / "executions.tsv"
NOTEBOOK_TIMEOUT_S = 120
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --- which notebooks ----------------------------------------------------------------------------
def toc_files() -> list[str]:
    """Every file listed in _toc.yml (without suffix), in reading order."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return found


def toc_notebooks(chapters: Iterable[str] | None = None) -> list[Path]:
    """The notebooks of _toc.yml in reading order; ``chapters`` keeps those under chapters/<name>.

    A chapter name that matches no folder raises ``ValueError`` (a typo must not test nothing).
    """
    notebooks = [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]
    if not chapters:
        return notebooks
    wanted = [c.strip().strip("/") for c in chapters if c.strip()]
    unknown = [c for c in wanted if not (ROOT / "chapters" / c).is_dir() and not (ROOT / "chapters" / f"{c}.ipynb").exists()]
    if unknown:
        known = sorted(p.name for p in (ROOT / "chapters").iterdir() if p.is_dir())
        raise ValueError(f"unknown chapter(s) {unknown}; chapters are {known}")
    keep = []
    for nb in notebooks:
        rel = nb.relative_to(ROOT / "chapters")
        if rel.parts[0] in wanted or rel.stem in wanted:
            keep.append(nb)
    return keep


def chapter_modules(notebooks: Iterable[Path]) -> list[str]:
    """The ``dlbook`` modules the notebooks import (``from dlbook import x``, ``dlbook.x``)."""
    import json

    mods: set[str] = set()
    pattern = re.compile(r"(?:from\s+dlbook\s+import\s+([\w, ]+))|(?:\bdlbook\.(\w+))")
    for nb in notebooks:
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            for m in pattern.finditer("".join(cell["source"])):
                names = m.group(1).split(",") if m.group(1) else [m.group(2)]
                mods.update(n.strip().split(" as ")[0].strip() for n in names)
    package = ROOT / "src" / "dlbook"
    return sorted(m for m in mods if (package / f"{m}.py").exists())


# --- the package hash ---------------------------------------------------------------------------
PACKAGE = ROOT / "src" / "dlbook"
# build-time only (the Sphinx extension, plotting style is imported by every notebook anyway)
NOT_NOTEBOOK_CODE = {"sphinxext"}
_IMPORT = re.compile(r"^\s*(?:from\s+(?:dlbook|\.)\s+import\s+([\w, ()]+)|from\s+(?:dlbook)?\.(\w+)\s+import|import\s+dlbook\.(\w+))", re.M)


def _imports(text: str) -> set[str]:
    found: set[str] = set()
    for names, mod1, mod2 in _IMPORT.findall(text):
        if names:
            found.update(n.strip(" ()").split(" as ")[0].strip() for n in names.split(","))
        found.update(m for m in (mod1, mod2) if m)
    found.update(re.findall(r"\bdlbook\.(\w+)", text))
    return {m for m in found if (PACKAGE / f"{m}.py").exists()}


def dependencies(path: Path) -> list[Path]:
    """The package files a notebook's outputs depend on: the dlbook modules it imports,
    transitively, plus ``__init__.py`` and the bundled data."""
    import json

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    todo = _imports("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or mod in NOT_NOTEBOOK_CODE:
            continue
        seen.add(mod)
        todo |= _imports((PACKAGE / f"{mod}.py").read_text(encoding="utf-8")) - seen
    files = [PACKAGE / f"{m}.py" for m in sorted(seen)] + [PACKAGE / "__init__.py"]
    files += sorted(p for p in (PACKAGE / "data").rglob("*") if p.is_file())
    return files


def package_hash(path: Path) -> str:
    """md5 over the package files the notebook at ``path`` depends on: cached outputs made with
    other package code are stale."""
    h = hashlib.md5()
    for file in dependencies(path):
        h.update(str(file.relative_to(ROOT)).encode())
        h.update(file.read_bytes())
    return h.hexdigest()


# --- execution ----------------------------------------------------------------------------------
@dataclass
class Result:
    """One execution: ``ok``, seconds, and on failure where and why."""

    path: Path
    ok: bool
    seconds: float
    seed: int = 0
    cell_index: int | None = None
    cell_first_line: str = ""
    error: str = ""
    traceback: str = ""
    executed: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def report(self) -> str:
        """A failure as the reader of a CI log needs it: notebook, cell, error, traceback."""
        if self.ok:
            return f"{self.name}: ok in {self.seconds:.1f} s"
        where = f"code cell {self.cell_index}" if self.cell_index is not None else "set-up"
        return (f"{self.name} (DLBOOK_SEED={self.seed}) failed in {where} "
                f"[{self.cell_first_line}]: {self.error}\n{self.traceback}")


def _environment(seed: int, static: bool) -> dict[str, str]:
    env = {"DLBOOK_SEED": str(seed), "DLBOOK_STRICT_CHECKS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if static:
        env["DLBOOK_EXPLORER_MODE"] = "static"
    return env


@functools.lru_cache(maxsize=1)
def _budget_client_class():  # built on first use: importing this module stays cheap
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    class BudgetClient(NotebookClient):
        """nbclient with one wall-clock budget for the whole notebook (each cell gets what is left)."""

        budget_s: float = NOTEBOOK_TIMEOUT_S
        started: float = 0.0
        current: tuple | None = None
        _code_seen: int = 0

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type == "code":
                left = self.budget_s - (time.perf_counter() - self.started)
                if left <= 0:
                    raise CellTimeoutError(f"no time left for code cell {self._code_seen}")
                self.timeout = max(1, int(left) + 1)
                self.current = (self._code_seen, cell)
                self._code_seen += 1
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    return BudgetClient


def execute(path: Path, *, seed: int = 0, static: bool = True, kernel_name: str = "python3",
            timeout_s: float = NOTEBOOK_TIMEOUT_S, rewrite_install: str | None = None,
            env: dict[str, str] | None = None) -> Result:
    """Execute ``path`` top to bottom in a fresh kernel (cwd = its folder) within ``timeout_s``.

    ``seed`` becomes ``DLBOOK_SEED``; ``static`` sets ``DLBOOK_EXPLORER_MODE=static`` (what the
    HTML book shows, so the outputs can be cached for it). ``rewrite_install`` replaces the
    repository URL in the first cell's ``%pip install`` (the Colab-like check installs from this
    checkout). ``env`` adds variables (e.g. the explorer timing log of the latency benchmark).
    The kernel inherits this process's environment plus those variables.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    nb = nbformat.read(path, as_version=4)
    run_nb = copy.deepcopy(nb)
    if rewrite_install:
        for cell in run_nb.cells:
            if cell.cell_type == "code":
                cell.source = re.sub(r'@ git\+\S+"', f'@ {rewrite_install}"', cell.source)
                break
    env = {**_environment(seed, static), **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    client = _budget_client_class()(run_nb, timeout=int(timeout_s), kernel_name=kernel_name,
                                    resources={"metadata": {"path": str(path.parent)}},
                                    # ipykernel 7 warns about TCP on every start: errors only
                                    extra_arguments=["--IPKernelApp.log_level=ERROR"])
    client.budget_s = timeout_s
    start = client.started = time.perf_counter()
    try:
        client.execute()
        ok, error, tb = True, "", ""
    except CellExecutionError as exc:
        ok = False
        error = f"{exc.ename}: {exc.evalue}"
        tb = ANSI.sub("", str(exc))
    except (CellTimeoutError, TimeoutError) as exc:
        ok = False
        error = f"timeout: over the {timeout_s:.0f} s budget per notebook ({exc})"
        tb = ""
    except DeadKernelError as exc:
        ok = False
        error, tb = f"the kernel died: {exc}", ""
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    first_line, code_index = "", None
    if not ok and client.current is not None:
        code_index, cell = client.current
        first_line = next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:80]
    if rewrite_install is None:  # the outputs belong to the committed source, not the rewrite
        for src_cell, run_cell in zip(nb.cells, run_nb.cells):
            if src_cell.cell_type == "code":
                src_cell.outputs = run_cell.get("outputs", [])
                src_cell.execution_count = run_cell.get("execution_count")
        nb.metadata = run_nb.metadata
    return Result(path=path, ok=ok, seconds=seconds, seed=seed,
                  cell_index=code_index, cell_first_line=first_line,
                  error=error, traceback=tb, executed=nb if ok else None)


# --- the cache the HTML build reads -------------------------------------------------------------
def _lock(cache: Path):
    from filelock import FileLock

    cache.mkdir(parents=True, exist_ok=True)
    return FileLock(str(cache) + ".lock", timeout=120)


def store(result: Result, cache: Path = CACHE) -> None:
    """Put a successful default-seed execution into jupyter-cache, as MyST-NB would."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    if not result.ok or result.seed != 0 or result.executed is None:
        raise ValueError(f"only a successful DLBOOK_SEED=0 execution is cached, got {result.name}")
    with _lock(cache):
        jc = get_cache(str(cache))
        record = jc.add_nb_to_project(str(result.path))
        jc.cache_notebook_bundle(
            CacheBundleIn(result.executed, record.uri,
                          data={"execution_seconds": result.seconds,
                                "dlbook_hash": package_hash(result.path)}),
            check_validity=False, overwrite=True)


def is_fresh(path: Path, cache: Path = CACHE) -> bool:
    """Whether the cache holds this notebook's current code, run with the current package."""
    import nbformat
    from jupyter_cache import get_cache

    if not cache.exists():
        return False
    with _lock(cache):
        jc = get_cache(str(cache))
        try:
            record = jc.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            return False
    return record.data.get("dlbook_hash") == package_hash(path)


def log_execution(result: Result, phase: str) -> None:
    """Append one line to _build/executions.tsv (the phase table counts executions from it)."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(f"{phase}\t{result.name}\t{result.seed}\t{result.seconds:.2f}\t{'ok' if result.ok else 'FAIL'}\n")


def _fill_one(args: tuple[str, str]) -> Result:
    path, phase = Path(args[0]), args[1]
    result = execute(path)
    log_execution(result, phase)
    if result.ok:
        store(result)
    result.executed = None  # not needed by the parent; keeps the pickle small
    return result


def fill_cache(notebooks: list[Path], jobs: int = 2, phase: str = "book") -> list[Result]:
    """Execute (``jobs`` at a time) the notebooks whose cached outputs are missing or stale."""
    from concurrent.futures import ProcessPoolExecutor

    stale = [nb for nb in notebooks if not is_fresh(nb)]
    print(f"notebooks: {len(notebooks)} in the book, {len(notebooks) - len(stale)} fresh in the "
          f"cache, {len(stale)} to execute", flush=True)
    if not stale:
        return []
    results = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(_fill_one, [(str(nb), phase) for nb in stale]):
            print(("  " if result.ok else "") + result.report(), flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fill = sub.add_parser("fill", help="execute the notebooks whose cached outputs are stale")
    fill.add_argument("--chapter", default="", help="comma-separated chapter folders (default: all)")
    fill.add_argument("--jobs", type=int, default=2)
    lst = sub.add_parser("list", help="print the notebooks (and with --modules, their dlbook modules)")
    lst.add_argument("--chapter", default="")
    lst.add_argument("--modules", action="store_true")
    toc = sub.add_parser("toc", help="write a _toc.yml holding only the given chapters")
    toc.add_argument("--chapter", required=True)
    toc.add_argument("--output", required=True)
    toc.add_argument("--config-output", default="", help="also write a _config.yml that reads the book's cache")
    cfg = sub.add_parser("config", help="write a _config.yml that reads the book's cache")
    cfg.add_argument("--output", required=True)
    cfg.add_argument("--hide-solutions", action="store_true", help="the student edition")
    args = parser.parse_args(argv)
    if args.command == "config":
        write_chapter_config(Path(args.output), hide_solutions=args.hide_solutions)
        return 0
    chapters = [c for c in args.chapter.split(",") if c] if args.chapter else None
    if args.command == "fill":
        failed = [r for r in fill_cache(toc_notebooks(chapters), jobs=args.jobs) if not r.ok]
        if failed:
            print(f"\n{len(failed)} notebook(s) failed:", file=sys.stderr)
            for r in failed:
                print(r.report(), file=sys.stderr)
            return 1
        return 0
    if args.command == "list":
        notebooks = toc_notebooks(chapters)
        if args.modules:
            print(" ".join(chapter_modules(notebooks)))
        else:
            print("\n".join(str(nb.relative_to(ROOT)) for nb in notebooks))
        return 0
    if args.command == "toc":
        write_chapter_toc(chapters or [], Path(args.output))
        if args.config_output:
            write_chapter_config(Path(args.config_output))
        return 0
    return 2


def write_chapter_toc(chapters: list[str], output: Path) -> None:
    """A _toc.yml with the root page and only the named chapters (for ``make chapter``)."""
    import yaml

    toc_notebooks(chapters)  # validates the names
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = []
    for part in toc.get("parts", []):
        keep = [c for c in part.get("chapters", [])
                if any(c["file"].startswith(f"chapters/{name}/") or c["file"] == f"chapters/{name}"
                       for name in chapters)]
        if keep:
            parts.append({**part, "chapters": keep})
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(yaml.safe_dump({**toc, "parts": parts}, sort_keys=False, allow_unicode=True))


def write_chapter_config(output: Path, hide_solutions: bool = False) -> None:
    """_config.yml with the book's jupyter-cache path made absolute (a build elsewhere reuses it);
    ``hide_solutions`` makes the student edition (sphinx-exercise drops every solution)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["cache"] = str(CACHE)
    if hide_solutions:
        config["sphinx"]["config"]["hide_solutions"] = True
        config["title"] = config["title"] + " (student edition)"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    sys.exit(main())
