"""Repository-wide pytest settings, also for `pytest --nbmake chapters` (kernels inherit them)."""

import os

# Exercise checks raise on failure, so a wrong solution fails its notebook.
os.environ.setdefault("DLBOOK_STRICT_CHECKS", "1")
# No display here: every figure renders off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")
