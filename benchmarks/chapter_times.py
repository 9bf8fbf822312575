"""Seconds per notebook (target: <= 30 s on one core, median <= 10 s), and the budget table.

    .venv/bin/python benchmarks/chapter_times.py [--chapter losses] [notebook ...]
        executes each notebook alone, one at a time, one thread (the book's runner)
    .venv/bin/python benchmarks/chapter_times.py --log
        reads the times of the last `make test` (_build/executions.tsv: two notebooks ran at
        once there, so these are a little slower than alone) and its phase table

Prints tables; exits 0 whatever the times are (timing belongs in a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as runner  # noqa: E402

TARGET_S, MEDIAN_TARGET_S = 30.0, 10.0


def table(rows: list[tuple[str, float]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'notebook':<{width}}  seconds  <= {TARGET_S:.0f} s")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.1f}  {'yes' if seconds <= TARGET_S else 'NO: over budget'}")
    times = [s for _, s in rows]
    median = statistics.median(times)
    print(f"{'total':<{width}}  {sum(times):7.1f}  ({len(times)} notebooks, max {max(times):.1f} s, "
          f"median {median:.1f} s: {'meets' if median <= MEDIAN_TARGET_S else 'misses'} the {MEDIAN_TARGET_S:.0f} s median target)")
    over = [n for n, s in rows if s > TARGET_S]
    if over:
        print(f"over {TARGET_S:.0f} s: {', '.join(over)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--chapter", default="")
    parser.add_argument("--log", action="store_true", help="times of the last make test instead of new runs")
    args = parser.parse_args()
    if args.log:
        log = runner.LOG
        if not log.exists():
            sys.exit(f"no {log}: run make test first")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
        table([(r[1], float(r[3])) for r in rows if r[0] == "notebooks" and r[2] == "0"])
        subprocess.run([sys.executable, str(ROOT / "tools" / "report.py")], check=False)
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    paths = [Path(a).resolve() for a in args.notebooks] or runner.toc_notebooks(
        [c for c in args.chapter.split(",") if c] or None)
    rows = []
    for path in paths:
        result = runner.execute(path)
        name = str(path.relative_to(ROOT))
        rows.append((name, result.seconds))
        print(f"  ran {name}: {result.seconds:.1f} s{'' if result.ok else ' (FAILED: ' + result.error[:80] + ')'}", file=sys.stderr)
    table(rows)


if __name__ == "__main__":
    main()
