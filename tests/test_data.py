"""dlbook.data: splits against scikit-learn, leakage detectors on planted leaks, seeded loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler
from sklearn.impute import SimpleImputer
from sklearn.utils.class_weight import compute_class_weight

from dlbook import data as D


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 60), min_size=2, max_size=5), test_size=st.floats(0.1, 0.5), seed=st.integers(0, 99))
def test_stratified_split_keeps_proportions(counts, test_size, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    train, test = D.stratified_split(y, test_size=test_size, seed=seed)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    for c, n_c in enumerate(counts):
        assert abs((y[test] == c).sum() - n_c * test_size) <= 0.5 + 1e-9


def test_kfold_unshuffled_equals_sklearn():
    for n, k in [(10, 3), (103, 5), (7, 7)]:
        ours = D.kfold(n, k, shuffle=False)
        theirs = list(KFold(k).split(np.zeros(n)))
        for (a, b), (c, d) in zip(ours, theirs):
            assert np.array_equal(a, c) and np.array_equal(b, d)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=4), k=st.integers(2, 5), seed=st.integers(0, 99))
def test_stratified_kfold_partitions_and_balances(counts, k, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    folds = D.kfold(len(y), k, y=y, seed=seed)
    vals = np.sort(np.concatenate([v for _, v in folds]))
    assert np.array_equal(vals, np.arange(len(y)))
    for c in range(len(counts)):
        per_fold = [(y[v] == c).sum() for _, v in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_class_and_sample_weights_equal_sklearn():
    y = np.array([0] * 90 + [1] * 9 + [2])
    assert np.allclose(D.class_weights(y), compute_class_weight("balanced", classes=np.unique(y), y=y))
    w = D.sample_weights(y)
    assert np.allclose([w[y == c].sum() for c in range(3)], 1.0)


def test_exact_and_near_duplicates_find_planted_rows():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 8))
    B = rng.normal(size=(50, 8))
    B[7] = A[13]
    B[20] = A[99] + 1e-3 * rng.normal(size=8)
    assert D.exact_duplicates(A, B) == [(13, 7)]
    assert sorted(D.near_duplicates(A, B, threshold=0.05)) == [(13, 7), (99, 20)]
    assert D.exact_duplicates(A, rng.normal(size=(50, 8))) == []


def test_suspicious_features_flags_planted_leak_only():
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 6))
    X[:, 2] += 0.8 * y                       # a real but noisy signal
    X[:, 4] = y * 10 + rng.normal(0, 0.1, n)  # the leak
    found = D.suspicious_features(X, y)
    assert list(found) == [4] and found[4] > 0.99


def test_fitted_on_detects_preprocessing_leak():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 4)) * [1, 2, 3, 4] + 5
    train = X[:200]
    assert D.fitted_on(StandardScaler().fit(train), train, X) == "train"
    assert D.fitted_on(StandardScaler().fit(X), train, X) == "all"
    Xn = X.copy()
    Xn[rng.random(X.shape) < 0.1] = np.nan
    assert D.fitted_on(SimpleImputer().fit(Xn), Xn[:200], Xn) == "all"
    assert D.fitted_on(SimpleImputer().fit(Xn[:200]), Xn[:200], Xn) == "train"
    assert D.fitted_on(StandardScaler().fit(X[100:]), train, X) == "neither"


def test_bootstrap_out_of_bag_fraction():
    idx = D.bootstrap(10_000, seed=0)
    oob = 1 - len(np.unique(idx)) / 10_000
    assert abs(oob - np.exp(-1)) < 0.01


class _Noisy(torch.utils.data.Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return torch.tensor(i), torch.tensor(float(np.random.rand()))  # worker-side NumPy randomness


def _epoch(loader):
    idx, noise = zip(*[(a, b) for a, b in loader])
    return torch.cat(idx).tolist(), torch.cat(noise).tolist()


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_loader_repeats(workers):
    a = D.seeded_loader(_Noisy(), batch_size=4, seed=3, num_workers=workers)
    b = D.seeded_loader(_Noisy(), batch_size=4, seed=3, num_workers=workers)
    ia1, na1 = _epoch(a)
    ia2, _ = _epoch(a)
    ib1, nb1 = _epoch(b)
    assert sorted(ia1) == list(range(20)) and ia1 != ia2 and ia1 == ib1
    if workers:
        assert na1 == nb1


def test_errors():
    with pytest.raises(ValueError, match="test_size"):
        D.stratified_split([0, 1, 0, 1], test_size=1.5)
    with pytest.raises(ValueError, match="y must be 1-D"):
        D.stratified_split(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="k must be"):
        D.kfold(10, 11)
    with pytest.raises(ValueError, match="n must be"):
        D.kfold(1, 2)
    with pytest.raises(ValueError, match="same number of features"):
        D.exact_duplicates(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="threshold"):
        D.near_duplicates(np.zeros((2, 3)), np.zeros((2, 3)), threshold=0)
    with pytest.raises(ValueError, match="same length"):
        D.suspicious_features(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="fit it first"):
        D.fitted_on(StandardScaler(), np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        D.seeded_loader(_Noisy(), batch_size=0)
    with pytest.raises(ValueError, match="n must be"):
        D.bootstrap(0)


def test_suspicious_features_constant_column_is_not_flagged():
    y = np.repeat([0, 1], 100)  # sorted by class: ties must not follow the data order
    X = np.column_stack([np.zeros(200), np.arange(200.0)])
    found = D.suspicious_features(X, y)
    assert list(found) == [1]
