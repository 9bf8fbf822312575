"""Splits, folds, leakage detectors and seeded loaders (the chapter "The training pipeline").

* :func:`stratified_split`, :func:`kfold`: index splits (NumPy integer arrays) that keep class
  proportions (stratified) or reproduce scikit-learn's ``KFold`` fold sizes exactly.
* :func:`class_weights` (scikit-learn's ``"balanced"``: ``n / (K n_c)``) and
  :func:`sample_weights` (one weight per sample, for ``WeightedRandomSampler``).
* Leakage detectors, each returning what it found (empty when clean):
  :func:`exact_duplicates` and :func:`near_duplicates` (rows shared across two splits),
  :func:`suspicious_features` (a single feature that predicts the target too well), and
  :func:`fitted_on` (was a preprocessing step fitted on the training split or on all data?).
* :func:`seed_worker` and :func:`seeded_loader`: a ``DataLoader`` whose shuffling and worker
  randomness repeat exactly (PyTorch's "Reproducibility" notes), and
  :func:`dlbook.train.tensor_loader` re-exported for tensors in memory.

Randomness comes only from an explicit ``seed`` (an int: pass ``dlbook.rng.seed_value(k)``).
Back-link: chapters/training.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from dlbook.train import tensor_loader

__all__ = [
    "bootstrap",
    "class_weights",
    "exact_duplicates",
    "fitted_on",
    "kfold",
    "near_duplicates",
    "sample_weights",
    "seed_worker",
    "seeded_loader",
    "stratified_split",
    "suspicious_features",
    "tensor_loader",
]


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    return y


def _check_fraction(test_size: float) -> None:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")


# -- splits ---------------------------------------------------------------------------------
def stratified_split(y: Any, *, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, test_idx)`` with ``round(n_c * test_size)`` test samples from every class
    ``c``, so each class's share in either split is its overall share up to rounding."""
    y = _labels(y)
    _check_fraction(test_size)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test.append(members[: int(round(len(members) * test_size))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return train_idx, test_idx


def kfold(n: int, k: int = 5, *, y: Any = None, shuffle: bool = True, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` pairs ``(train_idx, val_idx)``; every sample is validated exactly once.

    Without ``y``: contiguous folds of sizes ``n // k + 1`` (the first ``n % k``) and ``n // k``,
    after a permutation if ``shuffle`` (with ``shuffle=False`` identical to scikit-learn's
    ``KFold``). With ``y`` (stratified): each class is dealt round-robin over the folds after
    shuffling, so every fold's class counts differ by at most one across folds.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n}")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n:
        raise ValueError(f"k must be an int in [2, n={n}], got {k}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=int)
    if y is None:
        order = rng.permutation(n) if shuffle else np.arange(n)
        sizes = np.full(k, n // k) + (np.arange(k) < n % k)
        fold_of[order] = np.repeat(np.arange(k), sizes)
    else:
        y = _labels(y)
        if len(y) != n:
            raise ValueError(f"y must have length n={n}, got {len(y)}")
        offset = 0
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            members = rng.permutation(members) if shuffle else members
            fold_of[members] = (offset + np.arange(len(members))) % k
            offset += len(members)
    return [(np.flatnonzero(fold_of != i), np.flatnonzero(fold_of == i)) for i in range(k)]


def class_weights(y: Any) -> np.ndarray:
    """Balanced class weights ``w_c = n / (K n_c)`` for the sorted classes (scikit-learn's
    ``compute_class_weight("balanced")``): every class then carries the same total weight."""
    y = _labels(y)
    classes, counts = np.unique(y, return_counts=True)
    return len(y) / (len(classes) * counts)


def sample_weights(y: Any) -> np.ndarray:
    """Per-sample inverse class frequency ``1 / n_{y_i}``: with ``WeightedRandomSampler`` each
    class is drawn equally often in expectation."""
    y = _labels(y)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


# -- leakage detectors -----------------------------------------------------------------------
def _rows(X: Any, name: str) -> np.ndarray:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {X.shape}")
    return X


def exact_duplicates(A: Any, B: Any) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` with row ``A[i]`` bit-for-bit equal to row ``B[j]`` (hashing the bytes)."""
    A, B = _rows(A, "A"), _rows(B, "B")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A and B need the same number of features, got {A.shape[1]} and {B.shape[1]}")
    seen: dict[bytes, list[int]] = {}
    for i, row in enumerate(A):
        seen.setdefault(row.tobytes(), []).append(i)
    return [(i, j) for j, row in enumerate(B) for i in seen.get(row.tobytes(), [])]


def near_duplicates(A: Any, B: Any, *, threshold: float = 0.05) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` whose distance, after standardizing every feature with the statistics
    of ``A`` and dividing by ``sqrt(d)``, is below ``threshold``: ``||a - b|| / sqrt(d) < t``
    (a per-feature root-mean-square difference, in standard deviations)."""
    A, B = _rows(A, "A"), _rows(B, "B")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    mean, std = A.mean(0), A.std(0)
    std[std == 0] = 1.0
    a, b = (A - mean) / std, (B - mean) / std
    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T   # (nA, nB)
    close = np.sqrt(np.maximum(d2, 0) / A.shape[1]) < threshold
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(close))]


def _neighbour_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy using the single feature ``x``."""
    tie_break = np.random.default_rng(0).permutation(len(x))   # ties in random, not data, order
    order = np.lexsort((tie_break, x))
    xs, ys = x[order], y[order]
    gap = np.diff(xs)                                            # (n-1,)
    left = np.concatenate([[np.inf], gap])                       # distance to the left neighbour
    right = np.concatenate([gap, [np.inf]])
    neighbour = np.where(left <= right, np.arange(len(xs)) - 1, np.arange(len(xs)) + 1)
    return float(np.mean(ys[neighbour] == ys))


def suspicious_features(X: Any, y: Any, *, threshold: float = 0.98) -> dict[int, float]:
    """Features that alone predict the target too well: ``{feature: accuracy}`` for each column
    whose leave-one-out 1-nearest-neighbour accuracy *on that column alone* reaches ``threshold``.

    A real signal rarely makes one feature near-perfect; a leaked copy of the label (an ID
    sorted by class, a field filled in after the outcome) does. Tied values are put in a fixed
    random order first, so a constant column scores about ``sum_c p_c^2`` (chance), not 1.
    """
    X, y = _rows(X, "X"), _labels(y)
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    if len(y) < 2:
        raise ValueError(f"need at least 2 rows, got {len(y)}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    scores = {j: _neighbour_accuracy(X[:, j], y) for j in range(X.shape[1])}
    return {j: s for j, s in scores.items() if s >= threshold}


def _fitted_arrays(estimator: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for k, v in sorted(vars(estimator).items())
            if k.endswith("_") and not k.startswith("_") and isinstance(v, (np.ndarray, float, int))
            and not isinstance(v, bool)]


def fitted_on(transformer: Any, X_train: Any, X_all: Any) -> str:
    """``"train"``, ``"all"`` or ``"neither"``: which data a fitted scikit-learn transformer's
    learned statistics (its ``*_`` attributes: ``mean_``, ``scale_``, ``statistics_``, ...) come
    from, found by refitting clones on both and comparing (``np.allclose``)."""
    from sklearn.base import clone

    learned = _fitted_arrays(transformer)
    if not learned:
        raise ValueError(f"{type(transformer).__name__} has no fitted *_ attributes: fit it first")
    for name, data in (("train", X_train), ("all", X_all)):
        reference = _fitted_arrays(clone(transformer).fit(data))
        if len(reference) == len(learned) and all(
                a.shape == b.shape and np.allclose(a, b, equal_nan=True) for a, b in zip(learned, reference)):
            return name
    return "neither"


# -- seeded loading --------------------------------------------------------------------------
def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that seeds Python's and NumPy's generators in each worker from torch's
    per-worker seed (``base_seed + worker_id``, itself drawn from the loader's generator), as in
    PyTorch's reproducibility notes; torch's own generator is already seeded per worker."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def seeded_loader(dataset: torch.utils.data.Dataset, *, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                  num_workers: int = 0, drop_last: bool = False, **kwargs: Any) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` with its own ``torch.Generator`` seeded with ``seed`` and
    :func:`seed_worker`, so shuffling order and worker-side randomness (augmentations) repeat
    run to run, independent of the global generators and of ``num_workers``'s scheduling."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                       drop_last=drop_last, generator=generator, worker_init_fn=seed_worker, **kwargs)


def bootstrap(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` indices drawn uniformly with replacement (Efron 1979); about ``(1 - 1/n)^n -> 1/e``
    of the points are left out (the out-of-bag set)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n}")
    return np.random.default_rng(seed).integers(0, n, size=n)

