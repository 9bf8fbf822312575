"""Live-update latency and static size of every explorer in the book.

    .venv/bin/python benchmarks/widget_latency.py [notebook ...]

Executes each notebook with DLBOOK_EXPLORER_TIMINGS set: every explorer the notebook displays
times 20 live updates at random grid points (compute + redraw of the persistent figure + PNG
encode: what one slider move costs in Jupyter, before transport) and records the size of its
static HTML. Targets: median <= 16 ms (60 updates a second, on one core: run it with
OMP_NUM_THREADS=1 on a quiet machine), static <= 1.5 MB; rows over either are flagged NO and
listed at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebooks import execute, toc_notebooks  # noqa: E402  (the book's one notebook runner)

TARGET_MS, TARGET_BYTES = 16.0, 1_500_000


def main(paths: list[Path]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            log = Path(tmp) / f"{path.stem}.jsonl"
            execute(path, env={"DLBOOK_EXPLORER_TIMINGS": str(log)}, timeout_s=600)
            for line in log.read_text().splitlines() if log.exists() else []:
                rows.append({"notebook": str(path.relative_to(ROOT)), **json.loads(line)})
            print(f"  ran {path.relative_to(ROOT)}", file=sys.stderr)
    if not rows:
        print("no explorers found")
        return
    print(f"target: median live update <= {TARGET_MS:.0f} ms, static HTML <= {TARGET_BYTES / 1e6:.1f} MB")
    print(f"{'notebook':<44} {'explorer':<40} {'frames':>6} {'median ms':>9} {'p90 ms':>7} {'static kB':>9}  ok")
    over = []
    for r in rows:
        ok = r["median_ms"] <= TARGET_MS and r["static_bytes"] <= TARGET_BYTES
        print(f"{r['notebook'][:44]:<44} {r['title'][:40]:<40} {r['frames']:>6} {r['median_ms']:>9.1f} "
              f"{r['p90_ms']:>7.1f} {r['static_bytes'] / 1000:>9.0f}  {'yes' if ok else 'NO'}")
        if not ok:
            over.append(r)
    print(f"{len(rows) - len(over)} of {len(rows)} explorers meet the target")
    for r in over:
        why = [f"median {r['median_ms']:.1f} ms > {TARGET_MS:.0f} ms"] if r["median_ms"] > TARGET_MS else []
        why += [f"static {r['static_bytes'] / 1e6:.2f} MB > {TARGET_BYTES / 1e6:.1f} MB"] if r["static_bytes"] > TARGET_BYTES else []
        print(f"  OVER: {r['notebook']} / {r['title']}: {', '.join(why)}")

if __name__ == "__main__":
    main([Path(a).resolve() for a in sys.argv[1:]] or toc_notebooks())
