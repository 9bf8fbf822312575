"""Live explorers work with ipywidgets 7.7 (what Colab ships) as well as the pinned 8.x.

`make install` puts ipywidgets 7.7.5 in .venv/ipywidgets7; this test runs the explorer tests
in a subprocess with that directory first on the path.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IPYWIDGETS7 = ROOT / ".venv" / "ipywidgets7"


def test_live_mode_under_ipywidgets_7():
    assert IPYWIDGETS7.exists(), f"{IPYWIDGETS7} is missing: run `make install` (part of `make test`)"
    env = {**os.environ, "PYTHONPATH": f"{IPYWIDGETS7}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("7.7"), version
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_widgets.py"),
         "-k", "live or mimebundle"],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
