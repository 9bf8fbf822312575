"""Tests for dlbook.selfsup: direct formulas and torch/numpy/sklearn as oracles, float64 gradcheck,
Hypothesis properties, and the error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import losses, regularize, selfsup


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# -- views and masks -------------------------------------------------------------------------
def test_random_views_identity_without_augmentation():
    x = torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(0))
    out = selfsup.random_views(x, max_angle=0.0, max_shift=0.0, noise=0.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x)


def test_random_views_matches_regularize_rotate_and_translate():
    """With the shift off, each view is dlbook.regularize.rotate by its own angle; with the
    rotation off, dlbook.regularize.translate by its own shift (one warp matrix per image)."""
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    zero_shift = selfsup.random_views(x, max_angle=20.0, max_shift=0.0, noise=0.0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    angle = (2 * torch.rand(4, generator=g, dtype=torch.float64) - 1) * 20.0
    for i in range(4):
        torch.testing.assert_close(zero_shift[i], regularize.rotate(x[i], float(angle[i])))
    zero_angle = selfsup.random_views(x, max_angle=0.0, max_shift=1.5, noise=0.0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.rand(4, generator=g, dtype=torch.float64)
    shift = (2 * torch.rand(4, 2, generator=g, dtype=torch.float64) - 1) * 1.5
    for i in range(4):
        torch.testing.assert_close(zero_angle[i], regularize.translate(x[i], float(shift[i, 0]), float(shift[i, 1])))


def test_random_views_shape_and_noise():
    x = torch.zeros(300, 8, 8)
    out = selfsup.random_views(x, noise=0.1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert abs(float(out.std()) - 0.1) < 0.005


def test_random_views_errors():
    with pytest.raises(TypeError, match="images"):
        selfsup.random_views(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="images"):
        selfsup.random_views(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="noise"):
        selfsup.random_views(torch.zeros(2, 8, 8), noise=-1.0)


@given(st.integers(1, 20), st.integers(1, 40), st.floats(0.0, 1.0))
@settings(max_examples=30, deadline=None)
def test_mask_pixels_hides_exact_count(n, d, ratio):
    x = torch.rand(n, d) + 1.0  # no zeros before masking
    xm, mask = selfsup.mask_pixels(x, mask_ratio=ratio, generator=torch.Generator().manual_seed(0))
    assert (mask.sum(dim=1) == round(ratio * d)).all()
    assert bool((xm[mask] == 0).all()) and torch.equal(xm[~mask], x[~mask])


def test_masked_mse_only_counts_masked_entries():
    x, pred = _rand(6, 10, seed=0), _rand(6, 10, seed=1)
    mask = _rand(6, 10, seed=2) > 0
    expected = F.mse_loss(pred[mask], x[mask])
    torch.testing.assert_close(selfsup.masked_mse(pred, x, mask), expected)
    pred2 = torch.where(mask, pred, pred + 100.0)
    torch.testing.assert_close(selfsup.masked_mse(pred2, x, mask), expected)
    with pytest.raises(ValueError, match="shape"):
        selfsup.masked_mse(pred, x[:, :5], mask)
    with pytest.raises(ValueError, match="mask"):
        selfsup.masked_mse(pred, x, torch.zeros(6, 10, dtype=torch.bool))


def test_bert_mask_proportions_and_labels():
    tokens = torch.randint(0, 999, (200, 1000), generator=torch.Generator().manual_seed(0))
    inputs, labels = selfsup.bert_mask(tokens, vocab_size=999, mask_token_id=999, generator=torch.Generator().manual_seed(1))
    sel = labels != -100
    assert abs(float(sel.float().mean()) - 0.15) < 0.005
    assert abs(float((inputs[sel] == 999).float().mean()) - 0.8) < 0.01
    assert abs(float((inputs[sel] == tokens[sel]).float().mean()) - 0.1) < 0.01
    assert torch.equal(labels[sel], tokens[sel]) and torch.equal(inputs[~sel], tokens[~sel])


def test_bert_mask_errors():
    t = torch.zeros(3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="mask_prob"):
        selfsup.bert_mask(t, vocab_size=5, mask_token_id=5, mask_prob=1.5)
    with pytest.raises(ValueError, match="replace_probs"):
        selfsup.bert_mask(t, vocab_size=5, mask_token_id=5, replace_probs=(0.5, 0.5, 0.5))


# -- losses ----------------------------------------------------------------------------------
def _nt_xent_direct(z1, z2, tau):
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = len(u)
    total = 0.0
    for k in range(n2):
        p = (k + n2 // 2) % n2
        den = sum(math.exp(float(u[k] @ u[l]) / tau) for l in range(n2) if l != k)
        total += -math.log(math.exp(float(u[k] @ u[p]) / tau) / den)
    return total / n2


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (5, 8, 0.1), (7, 4, 1.0)])
def test_nt_xent_matches_direct_formula(n, d, tau):
    z1, z2 = _rand(n, d, seed=n), _rand(n, d, seed=n + 1)
    assert math.isclose(float(selfsup.nt_xent(z1, z2, temperature=tau)), _nt_xent_direct(z1, z2, tau), rel_tol=1e-10)


def test_nt_xent_is_symmetric_info_nce_over_both_views_when_n_is_2():
    """With N = 2 every view has 1 positive and 2 negatives; chance is log(2N - 1)."""
    z = torch.ones(4, 3, dtype=torch.float64)
    assert math.isclose(float(selfsup.nt_xent(z, z)), math.log(7), rel_tol=1e-12)


def test_nt_xent_gradcheck():
    z1, z2 = _rand(4, 5, seed=0).requires_grad_(), _rand(4, 5, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: selfsup.nt_xent(a, b, temperature=0.3), (z1, z2))


def test_nt_xent_errors():
    with pytest.raises(ValueError, match="temperature"):
        selfsup.nt_xent(_rand(3, 2), _rand(3, 2), temperature=0.0)
    with pytest.raises(ValueError, match="share a shape"):
        selfsup.nt_xent(_rand(3, 2), _rand(4, 2))
    with pytest.raises(TypeError, match="z1"):
        selfsup.nt_xent([[1.0]], _rand(1, 1))


@pytest.mark.parametrize("n,d", [(3, 4), (8, 16)])
def test_clip_loss_is_mean_of_row_and_column_cross_entropy(n, d):
    u, v = _rand(n, d, seed=0), _rand(n, d, seed=1)
    scale = 7.0
    S = scale * F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
    t = torch.arange(n)
    expected = 0.5 * (F.cross_entropy(S, t) + F.cross_entropy(S.T, t))
    torch.testing.assert_close(selfsup.clip_loss(u, v, logit_scale=scale), expected)
    # each direction is dlbook.losses.info_nce with in-batch negatives at temperature 1 / scale
    both = 0.5 * (losses.info_nce(u, v, temperature=1 / scale) + losses.info_nce(v, u, temperature=1 / scale))
    torch.testing.assert_close(selfsup.clip_loss(u, v, logit_scale=scale), both)


def test_clip_loss_gradcheck_including_the_temperature():
    u, v = _rand(4, 3, seed=0).requires_grad_(), _rand(4, 3, seed=1).requires_grad_()
    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, s: selfsup.clip_loss(a, b, logit_scale=s.exp()), (u, v, t))


def test_clip_loss_errors():
    with pytest.raises(ValueError, match="logit_scale"):
        selfsup.clip_loss(_rand(3, 2), _rand(3, 2), logit_scale=-1.0)
    with pytest.raises(ValueError, match="share a shape"):
        selfsup.clip_loss(_rand(3, 2), _rand(3, 3))


def test_variance_and_covariance_loss():
    z = _rand(200, 4, seed=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    torch.testing.assert_close(selfsup.variance_loss(z), F.relu(1 - std).mean())
    assert float(selfsup.variance_loss(torch.zeros(10, 3, dtype=torch.float64))) == pytest.approx(1 - 0.01)
    cov = torch.cov(z.T)
    torch.testing.assert_close(selfsup.covariance_loss(z), ((cov - torch.diag(torch.diag(cov))) ** 2).sum() / 4)
    assert float(selfsup.covariance_loss(z * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[None])) > 0
    a = _rand(8, 3, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(selfsup.covariance_loss, (a,))
    assert torch.autograd.gradcheck(lambda x: selfsup.variance_loss(x, gamma=5.0), (a,))


def test_momentum_update_is_lerp_and_enqueue_keeps_size():
    k, q = [_rand(3, 2, seed=0), _rand(4, seed=1)], [_rand(3, 2, seed=2), _rand(4, seed=3)]
    for new, a, b in zip(selfsup.momentum_update(k, q, m=0.9), k, q):
        torch.testing.assert_close(new, torch.lerp(a, b, 0.1))
    with pytest.raises(ValueError, match="m must"):
        selfsup.momentum_update(k, q, m=1.5)
    with pytest.raises(ValueError, match="as many"):
        selfsup.momentum_update(k, q[:1])
    queue = _rand(10, 3, seed=0)
    keys = _rand(4, 3, seed=1)
    new = selfsup.enqueue(queue, keys)
    assert new.shape == queue.shape
    torch.testing.assert_close(new[:6], queue[4:])
    torch.testing.assert_close(new[6:], keys)
    with pytest.raises(ValueError, match="width"):
        selfsup.enqueue(queue, _rand(2, 4))


# -- measurements ---------------------------------------------------------------------------
def test_effective_rank_limits_and_numpy_oracle():
    basis = torch.linalg.qr(_rand(6, 6, seed=0))[0]
    z = torch.cat([torch.eye(3, dtype=torch.float64), -torch.eye(3, dtype=torch.float64)]) @ basis[:3]  # 3 equal singular values
    assert selfsup.effective_rank(z) == pytest.approx(3.0)
    line = _rand(20, 1, seed=1) * _rand(1, 5, seed=2)
    assert selfsup.effective_rank(line) == pytest.approx(1.0)
    w = _rand(30, 7, seed=3)
    s = np.linalg.svd(w.numpy() - w.numpy().mean(0), compute_uv=False)
    p = s / s.sum()
    assert selfsup.effective_rank(w) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert selfsup.effective_rank(w, center=False) != pytest.approx(selfsup.effective_rank(w))
    with pytest.raises(ValueError, match="no variance"):
        selfsup.effective_rank(torch.ones(5, 3))


@given(st.floats(0.01, 100.0), st.integers(2, 6))
@settings(max_examples=25, deadline=None)
def test_effective_rank_scale_invariant_and_bounded(scale, d):
    z = _rand(12, d, seed=d)
    r = selfsup.effective_rank(z)
    assert 1.0 - 1e-9 <= r <= d + 1e-9
    assert selfsup.effective_rank(scale * z) == pytest.approx(r, rel=1e-9)


def test_linear_probe_matches_sklearn():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:100], idx[100:]
    scaler = StandardScaler().fit(X[tr])
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(X[tr]), y[tr]).score(scaler.transform(X[te]), y[te])
    assert selfsup.linear_probe(torch.tensor(X[tr]), torch.tensor(y[tr]), X[te], y[te], C=0.5) == pytest.approx(ref)
    with pytest.raises(ValueError, match="C must"):
        selfsup.linear_probe(X[tr], y[tr], X[te], y[te], C=0.0)
    with pytest.raises(ValueError, match="same number"):
        selfsup.linear_probe(X[tr], y[:5], X[te], y[te])


# -- multimodal and NAS sketches ------------------------------------------------------------
@pytest.mark.parametrize("shape,p", [((2, 1, 28, 28), 7), ((1, 3, 8, 12), 4), ((3, 2, 6, 6), 1)])
def test_patchify_matches_unfold(shape, p):
    x = _rand(*shape, seed=0)
    torch.testing.assert_close(selfsup.patchify(x, p), F.unfold(x, kernel_size=p, stride=p).transpose(1, 2))


def test_patchify_errors():
    with pytest.raises(ValueError, match="patch_size"):
        selfsup.patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="images"):
        selfsup.patchify(torch.zeros(28, 28), 7)


def test_mixed_op_weighted_sum_and_gradients():
    x = _rand(3, 4, seed=0)
    ops = [torch.relu, torch.tanh, lambda t: 2 * t]
    alpha = _rand(3, seed=1).requires_grad_()
    w = torch.softmax(alpha, 0)
    torch.testing.assert_close(selfsup.mixed_op(x, ops, alpha), w[0] * x.relu() + w[1] * x.tanh() + w[2] * 2 * x)
    assert torch.autograd.gradcheck(lambda a: selfsup.mixed_op(x, ops, a), (alpha,))
    with pytest.raises(ValueError, match="one architecture logit per op"):
        selfsup.mixed_op(x, ops, alpha[:2])


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=25))
@settings(max_examples=60, deadline=None)
def test_pareto_front_is_exactly_the_non_dominated_set(points):
    front = selfsup.pareto_front(points)

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    for i, p in enumerate(points):
        dominated = any(dominates(q, p) for q in points)
        assert (i in front) == (not dominated)
    assert front == sorted(front) and len(front) >= 1


def test_pareto_front_errors():
    with pytest.raises(ValueError, match="non-empty"):
        selfsup.pareto_front([])
    with pytest.raises(ValueError, match="finite"):
        selfsup.pareto_front([[0.0, float("nan")]])
