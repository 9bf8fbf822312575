"""Repository-wide pytest settings and the notebook runner's options (tests/test_notebooks.py)."""

from __future__ import annotations

import os

# Exercise checks raise on failure, so a wrong solution fails its notebook.
os.environ.setdefault("DLBOOK_STRICT_CHECKS", "1")
# MPLBACKEND is left alone: a notebook kernel then picks matplotlib's inline backend, and
# plain pytest picks Agg by itself on a machine without a display.


def pytest_addoption(parser):
    group = parser.getgroup("dlbook notebooks", "options of tests/test_notebooks.py")
    group.addoption("--nb-chapter", default="", help="comma-separated chapter folders (default: every notebook in _toc.yml)")
    group.addoption("--nb-seeds", default="0", help="comma-separated DLBOOK_SEED offsets (make seeds: 1,2,3)")
    group.addoption("--nb-kernel", default="python3", help="the Jupyter kernel to run them in (make colab-check: colab-like)")
    group.addoption("--nb-timeout", type=float, default=120.0, help="wall-clock budget per notebook, seconds")
    group.addoption("--nb-install-from", default="", help="rewrite the first cell's %%pip URL to this (make colab-check)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After notebook tests: a table notebook x seed -> seconds, or the failing cell and error."""
    rows: dict[str, dict[int, str]] = {}
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            props = dict(getattr(report, "user_properties", []) or [])
            if getattr(report, "when", "") != "call" or "notebook" not in props:
                continue
            cell = props["seconds"] if report.passed else f"FAIL {props.get('failure', '')}"
            rows.setdefault(props["notebook"], {})[int(props["seed"])] = cell
    if not rows:
        return
    seeds = sorted({s for r in rows.values() for s in r})
    tr = terminalreporter
    width = max(len(n) for n in rows)
    tr.write_sep("=", f"notebooks x DLBOOK_SEED ({len(rows)} notebooks)")
    tr.write_line(f"{'notebook':<{width}}  " + "  ".join(f"seed {s:<4}" for s in seeds))
    for name in sorted(rows):
        cells = [rows[name].get(s, "-") for s in seeds]
        tr.write_line(f"{name:<{width}}  " + "  ".join(f"{c:<9}" for c in cells))
    failed = sum(c.startswith("FAIL") for r in rows.values() for c in r.values())
    total = sum(len(r) for r in rows.values())
    tr.write_line(f"{total - failed} of {total} notebook runs passed; times in seconds")
