"""Seeds for the book: every random number a notebook draws comes from here.

A notebook asks for a *stream* ``k`` (0, 1, 2, ...: one per independent experiment or per repeat
of one) and gets an integer seed, a ``torch.Generator`` or a NumPy ``Generator`` for it::

    from dlbook import rng
    rng.seed(0)                       # Python, NumPy's and torch's global generators, stream 0
    g = rng.torch_generator(3)        # an explicit torch generator for stream 3
    r = rng.numpy_generator(3)        # the same for NumPy
    train_test_split(..., random_state=rng.seed_value(1))

The seed of stream ``k`` is ``k + OFFSET_STRIDE * offset``, where ``offset`` is read from the
environment variable ``DLBOOK_SEED`` (default 0, so the book builds identically run to run).
``make seeds`` executes every notebook again with ``DLBOOK_SEED=1, 2, 3``: a claim about a
training outcome must hold under all of them (see CONTRIBUTING.md, "Claims that hold for other
seeds"). The stride keeps the streams of one offset disjoint from those of the next, so stream 1
under offset 0 is not stream 0 under offset 1.
"""

from __future__ import annotations

import os
import random

__all__ = ["OFFSET_STRIDE", "offset", "seed_value", "seed", "torch_generator", "numpy_generator"]

OFFSET_STRIDE = 1000
ENV_VAR = "DLBOOK_SEED"


def offset() -> int:
    """The seed offset from ``DLBOOK_SEED`` (0 when unset); a non-integer or negative value raises."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{ENV_VAR} must be a non-negative integer, got {raw!r}")
    return value


def seed_value(stream: int = 0) -> int:
    """The integer seed of ``stream`` under the current offset: ``stream + 1000 * offset``."""
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"stream must be an int, got {type(stream).__name__}")
    if not 0 <= stream < OFFSET_STRIDE:
        raise ValueError(f"stream must be in [0, {OFFSET_STRIDE}), got {stream}")
    return stream + OFFSET_STRIDE * offset()


def seed(stream: int = 0) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch's for ``stream``; return the seed.

    Returns the integer (not torch's Generator object), so a cell that ends with ``rng.seed(0)``
    shows a number, not ``<torch._C.Generator at 0x...>``.
    """
    value = seed_value(stream)
    random.seed(value)
    import numpy as np
    import torch

    np.random.seed(value)
    torch.manual_seed(value)
    return value


def torch_generator(stream: int = 0, device: str = "cpu"):
    """A new ``torch.Generator`` seeded for ``stream`` (independent of the global one)."""
    import torch

    return torch.Generator(device=device).manual_seed(seed_value(stream))


def numpy_generator(stream: int = 0):
    """A new ``numpy.random.Generator`` (PCG64) seeded for ``stream``."""
    import numpy as np

    return np.random.default_rng(seed_value(stream))
