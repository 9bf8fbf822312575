"""Every notebook of the book, executed once, by the book's one runner (tools/notebooks.py).

`make test` runs each notebook of _toc.yml once at DLBOOK_SEED=0 (both cores, pytest-xdist) and
stores the outputs in Jupyter Book's cache, so the HTML build that follows executes nothing.
`make seeds` runs them under DLBOOK_SEED=1,2,3 (--nb-seeds), `make chapter` one chapter
(--nb-chapter), `make colab-check` in a Colab-like kernel (--nb-kernel, --nb-install-from).
A failure names the notebook, the failing cell and the traceback; the others still run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as runner  # noqa: E402


def pytest_generate_tests(metafunc):
    if "notebook_path" not in metafunc.fixturenames:
        return
    config = metafunc.config
    chapters = [c for c in config.getoption("--nb-chapter").split(",") if c]
    notebooks = runner.toc_notebooks(chapters or None)
    seeds = [int(s) for s in config.getoption("--nb-seeds").split(",") if s.strip()]
    params = [pytest.param(nb, seed, id=f"{nb.relative_to(ROOT / 'chapters')}-seed{seed}")
              for nb in notebooks for seed in seeds]
    metafunc.parametrize(("notebook_path", "seed"), params)


@pytest.mark.notebook
def test_notebook(notebook_path, seed, request):
    config = request.config
    kernel = config.getoption("--nb-kernel")
    install_from = config.getoption("--nb-install-from") or None
    result = runner.execute(notebook_path, seed=seed, kernel_name=kernel, rewrite_install=install_from,
                            timeout_s=config.getoption("--nb-timeout"))
    runner.log_execution(result, os.environ.get("DLBOOK_PHASE", "notebooks"))
    request.node.user_properties += [
        ("notebook", result.name), ("seed", seed), ("seconds", f"{result.seconds:.1f}"),
        ("failure", "" if result.ok else f"cell {result.cell_index}: {result.error}"[:160]),
    ]
    if result.ok and seed == 0 and kernel == "python3" and install_from is None:
        runner.store(result)  # the HTML build renders these outputs instead of executing again
    if not result.ok:
        pytest.fail(result.report(), pytrace=False)
