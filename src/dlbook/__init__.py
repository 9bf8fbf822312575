"""dlbook: reference implementations, plots and explorers for the executable deep-learning book.

Each module mirrors a chapter (``dlbook.losses`` <-> the losses chapter, ...). Import the module
you need; this package imports nothing heavy by itself.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "seed"]


def seed(stream: int = 0) -> int:
    """Seed Python, NumPy and torch for ``stream`` under ``DLBOOK_SEED``; see :mod:`dlbook.rng`."""
    from dlbook import rng

    return rng.seed(stream)
