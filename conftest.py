"""Repository-wide pytest settings, also for `pytest --nbmake chapters` (kernels inherit them)."""

import os

# Exercise checks raise on failure, so a wrong solution fails its notebook.
os.environ.setdefault("DLBOOK_STRICT_CHECKS", "1")
# MPLBACKEND is left alone: a notebook kernel then picks matplotlib's inline backend, and
# plain pytest picks Agg by itself on a machine without a display.
