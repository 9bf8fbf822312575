"""Seconds per notebook, each run alone in a fresh kernel (target: <= 30 s on 2 cores).

    .venv/bin/python benchmarks/chapter_times.py [notebook ...]

Prints a table; exits 0 whatever the times are (timing belongs in a benchmark, not a test).
"""

from __future__ import annotations

import sys
from pathlib import Path

from _notebooks import ROOT, execute, toc_notebooks

TARGET_S = 30.0


def main(paths: list[Path]) -> None:
    rows = []
    for path in paths:
        seconds = execute(path, env={"DLBOOK_STRICT_CHECKS": "1"})
        rows.append((str(path.relative_to(ROOT)), seconds))
        print(f"  ran {rows[-1][0]}: {seconds:.1f} s", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"{'notebook':<{width}}  seconds  <= {TARGET_S:.0f} s")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.1f}  {'yes' if seconds <= TARGET_S else 'NO'}")
    total = sum(s for _, s in rows)
    print(f"{'total':<{width}}  {total:7.1f}  (max {max(s for _, s in rows):.1f} s)")


if __name__ == "__main__":
    main([Path(a).resolve() for a in sys.argv[1:]] or toc_notebooks())
