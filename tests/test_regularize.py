"""Tests for dlbook.regularize: torch and scikit-learn as oracles, gradcheck, properties, errors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from torch.testing import assert_close

from dlbook import regularize as R


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- dropout -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2000,), (40, 50), (8, 5, 7, 7)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_match_torch(shape, p):
    x = torch.ones(shape, dtype=torch.float64)
    ours = R.dropout(x, p, generator=gen(1))
    torch.manual_seed(1)
    ref = F.dropout(x, p)
    for y in (ours, ref):  # values are 0 or 1/(1-p)
        assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / (1 - p), dtype=torch.float64)))
    n = x.numel()
    tol = 4 * math.sqrt(p * (1 - p) / n)  # 4 standard errors of a binomial fraction
    assert abs((ours == 0).double().mean() - p) < tol
    assert abs((ours == 0).double().mean() - (ref == 0).double().mean()) < 2 * tol


def test_dropout_eval_identity_and_same_generator_same_mask():
    x = torch.randn(10, 10)
    assert R.dropout(x, 0.5, training=False) is x
    assert_close(R.dropout(x, 0.3, generator=gen(3)), R.dropout(x, 0.3, generator=gen(3)))


def test_dropout_backward_matches_mask():
    x = torch.randn(30, 20, requires_grad=True)
    y = R.dropout(x, 0.4, generator=gen(0))
    y.sum().backward()
    mask = (y.detach() != 0).float()
    assert_close(x.grad, mask / 0.6)


def test_dropout_gradcheck():
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: R.dropout(t, 0.3, generator=gen(7)), (x,))


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.0, 0.95), seed=st.integers(0, 10**6))
def test_dropout_property_zero_or_scaled(p, seed):
    x = torch.rand(64, dtype=torch.float64) + 0.5
    y = R.dropout(x, p, generator=gen(seed))
    assert torch.all((y == 0) | torch.isclose(y, x / (1 - p)))


# -- drop_path / dropblock ---------------------------------------------------------------
def test_drop_path_whole_samples_and_expectation():
    x = torch.ones(20000, 3, 4, dtype=torch.float64)
    y = R.drop_path(x, 0.3, generator=gen(0))
    per_sample = y.reshape(len(y), -1)
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # all-or-nothing per sample
    assert abs((per_sample[:, 0] == 0).double().mean() - 0.3) < 0.015
    assert abs(y.mean() - 1.0) < 0.03
    assert_close(R.drop_path(x, 0.3, training=False), x)


def test_drop_path_gradcheck():
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: R.drop_path(t, 0.5, generator=gen(2)), (x,))


def test_drop_path_batch_mode_drops_the_whole_batch():
    x = torch.ones(64, 5, dtype=torch.float64)
    outs = torch.stack([R.drop_path(x, 0.25, mode="batch", generator=gen(k)) for k in range(2000)])  # (2000, 64, 5)
    flat = outs.reshape(2000, -1)
    assert torch.all(flat.min(1).values == flat.max(1).values)  # one draw for every sample of the batch
    dropped = (flat[:, 0] == 0).double().mean()
    assert abs(dropped - 0.25) < 0.04 and torch.allclose(flat[flat[:, 0] > 0], torch.full_like(x.ravel(), 1 / 0.75))
    assert abs(outs.mean() - 1.0) < 0.05                           # E[y] = x
    unscaled = R.drop_path(x, 0.25, mode="batch", scale_by_keep=False, generator=gen(3))
    assert set(unscaled.unique().tolist()) <= {0.0, 1.0}


def test_survival_probability_linear_rule():
    # Huang et al. 2016: p_l = 1 - l/L (1 - p_L); input always kept, last block 0.5 by default
    ps = [R.survival_probability(l, 54) for l in range(55)]
    assert ps[0] == 1.0 and ps[-1] == pytest.approx(0.5)
    assert np.allclose(np.diff(ps), -0.5 / 54)
    assert R.survival_probability(3, 6, p_last=0.8) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="layer"):
        R.survival_probability(7, 6)
    with pytest.raises(ValueError, match="p_last"):
        R.survival_probability(1, 6, p_last=0.0)
    with pytest.raises(ValueError, match="mode"):
        R.drop_path(torch.ones(2, 2), 0.5, mode="sample")


@pytest.mark.parametrize("p,low,high", [(0.1, 0.08, 0.12), (0.3, 0.22, 0.29)])
def test_dropblock_fraction_and_scaling(p, low, high):
    x = torch.ones(16, 8, 32, 32)
    y = R.dropblock(x, p, block_size=3, generator=gen(0))
    dropped = (y == 0).float().mean().item()
    assert low < dropped < high  # overlapping blocks drop less than p at larger p
    kept = y[y != 0]
    assert_close(kept, torch.full_like(kept, 1 / (1 - dropped)), rtol=1e-4, atol=1e-4)


def test_dropblock_blocks_are_contiguous():
    x = torch.ones(1, 1, 21, 21)
    y = R.dropblock(x, 0.05, block_size=5, generator=gen(4))
    zeros = (y == 0).float()
    # every zero belongs to some fully-zero 5x5 window
    covered = F.max_pool2d(-F.max_pool2d(-zeros, 5, 1, 2), 5, 1, 2)  # closing-by-opening: erode then dilate
    assert_close(covered, zeros)


def test_dropblock_gradcheck():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: R.dropblock(t, 0.2, block_size=3, generator=gen(1)), (x,))


# -- penalties -----------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", [[(5,)], [(3, 4), (4,)], [(2, 3, 4)]])
def test_l2_gradient_equals_sgd_weight_decay(shapes):
    torch.manual_seed(0)
    ws = [torch.randn(s, requires_grad=True) for s in shapes]
    lam = 0.3
    R.l2_penalty(ws, lam).backward()
    for w in ws:
        assert_close(w.grad, lam * w.detach())
    # and one SGD step on the penalty alone equals SGD(weight_decay) on a zero loss
    w_ref = [w.detach().clone().requires_grad_(True) for w in ws]
    opt = torch.optim.SGD(w_ref, lr=0.1, weight_decay=lam)
    opt.zero_grad()
    sum((0 * w).sum() for w in w_ref).backward()
    opt.step()
    for w, r in zip(ws, w_ref):
        assert_close(w.detach() - 0.1 * w.grad, r.detach())


def test_penalty_values_and_gradcheck():
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    assert_close(R.l1_penalty(w, 2.0), torch.tensor(7.0, dtype=torch.float64))
    assert_close(R.l2_penalty(w, 2.0), torch.tensor(5.25, dtype=torch.float64))
    assert_close(R.elastic_net_penalty(w, 2.0, 1.0), R.l1_penalty(w, 2.0))
    assert_close(R.elastic_net_penalty(w, 2.0, 0.0), R.l2_penalty(w, 2.0))
    for f in (lambda t: R.l2_penalty(t, 0.7), lambda t: R.elastic_net_penalty(t, 0.7, 0.3), lambda t: R.l1_penalty(t, 0.7)):
        assert torch.autograd.gradcheck(f, (w,))


def test_soft_threshold_equals_softshrink():
    x = torch.randn(200, dtype=torch.float64, requires_grad=True)
    assert_close(R.soft_threshold(x, 0.4), F.softshrink(x, 0.4))
    assert torch.autograd.gradcheck(lambda t: R.soft_threshold(t, 0.4), (x,))


def _regression(seed=0, n=80, d=8):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = np.zeros(d)
    w[:3] = [2.0, -1.0, 0.5]
    y = X @ w + 0.3 * rng.normal(size=n)
    return X - X.mean(0), y - y.mean()


@pytest.mark.parametrize("alpha,l1_ratio", [(0.05, 1.0), (0.2, 1.0), (0.1, 0.5), (0.3, 0.2)])
def test_fit_elastic_net_matches_sklearn(alpha, l1_ratio):
    X, y = _regression()
    ours = R.fit_elastic_net(torch.tensor(X), torch.tensor(y), alpha=alpha, l1_ratio=l1_ratio, steps=3000).numpy()
    model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100000) if l1_ratio == 1.0 else ElasticNet(
        alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-12, max_iter=100000
    )
    ref = model.fit(X, y).coef_
    np.testing.assert_allclose(ours, ref, atol=1e-6)  # tolerance: both solvers converged to 1e-6
    assert np.array_equal(ours == 0, ref == 0)  # the same exact zeros


def test_fit_ridge_matches_sklearn_with_scaling():
    X, y = _regression(1)
    n, alpha = len(y), 0.1
    ours = R.fit_elastic_net(torch.tensor(X), torch.tensor(y), alpha=alpha, l1_ratio=0.0, steps=3000).numpy()
    ref = Ridge(alpha=n * alpha, fit_intercept=False).fit(X, y).coef_  # Ridge has no 1/(2n)
    np.testing.assert_allclose(ours, ref, atol=1e-8)


# -- bias / variance -----------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_bias_variance_sum_to_mse(seed):
    g = gen(seed)
    preds, f = torch.randn(7, 11, generator=g, dtype=torch.float64), torch.randn(11, generator=g, dtype=torch.float64)
    b2, var = R.bias_variance(preds, f)
    assert_close(b2 + var, ((preds - f) ** 2).mean())
    assert b2 >= 0 and var >= 0


# -- mixup / cutmix / mosaic ---------------------------------------------------------------
def test_mixup_loss_is_mixture_of_losses():
    x, y = torch.randn(16, 5), torch.randint(0, 4, (16,))
    logits_fn = torch.nn.Linear(5, 4)
    xm, ym, lam = R.mixup(x, y, alpha=0.4, num_classes=4, generator=gen(1))
    perm = torch.randperm(16, generator=_advance_beta(gen(1), 0.4))
    assert_close(xm, lam * x + (1 - lam) * x[perm])
    z = logits_fn(xm)
    assert_close(F.cross_entropy(z, ym), lam * F.cross_entropy(z, y) + (1 - lam) * F.cross_entropy(z, y[perm]))
    assert_close(ym.sum(1), torch.ones(16))


def _advance_beta(g, alpha):
    torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=g)
    return g


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), alpha=st.floats(0.1, 5.0))
def test_cutmix_weight_is_exact_pixel_fraction(seed, alpha):
    x = torch.zeros(4, 1, 12, 10)
    x[:, :, :, :] = torch.arange(4.0)[:, None, None, None] + 1  # image k has constant value k+1
    y = torch.arange(4)
    out, ym, lam = R.cutmix(x, y, alpha=alpha, num_classes=4, generator=gen(seed))
    kept = (out == x).float().mean(dim=(1, 2, 3))
    same = ym.argmax(1) == y  # images paired with themselves keep everything
    assert torch.allclose(kept[~same], torch.full_like(kept[~same], lam)) or (~same).sum() == 0
    assert_close(ym.sum(1), torch.ones(4))


def test_mosaic_box_mapping():
    imgs = [torch.rand(3, 40, 60) for _ in range(4)]
    boxes = [torch.tensor([[0.0, 0.0, 60.0, 40.0], [10.0, 5.0, 20.0, 25.0]]) for _ in range(4)]
    canvas, out, owner = R.mosaic(imgs, boxes, output_size=100, center=(30, 60))
    assert canvas.shape == (3, 100, 100)
    assert_close(out[0], torch.tensor([0.0, 0.0, 30.0, 60.0]))  # full box = tile 0
    assert_close(out[7], torch.tensor([30 + 10 * 70 / 60, 60 + 5.0, 30 + 20 * 70 / 60, 60 + 25.0]))
    assert_close(out[3], torch.tensor([30 + 10 * 70 / 60, 5 * 60 / 40, 30 + 20 * 70 / 60, 25 * 60 / 40]))
    assert owner.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


# -- augmentations -------------------------------------------------------------------------
def test_geometric_ops_exact_cases():
    x = torch.rand(2, 9, 9)
    assert_close(R.rotate(x, 90.0), torch.rot90(x, 1, (-2, -1)))
    t = R.translate(x, 2, 1)
    assert_close(t[:, 1:, 2:], x[:, :-1, :-2])
    assert t[:, 0].abs().max() == 0 and t[:, :, :2].abs().max() == 0
    assert_close(R.shear_x(x, 0.0), x)
    assert_close(R.solarize(x, 1.01), x)
    assert_close(R.solarize(x, 0.0), 1 - x)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 3), m=st.integers(0, 30))
def test_rand_augment_in_range_and_deterministic(seed, n, m):
    x = torch.rand(1, 8, 8)
    a = R.rand_augment(x, num_ops=n, magnitude=m, generator=gen(seed))
    b = R.rand_augment(x, num_ops=n, magnitude=m, generator=gen(seed))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert_close(a, b)


# -- early stopping ------------------------------------------------------------------------
def test_early_stopping_patience_and_restore():
    model = torch.nn.Linear(1, 1)
    es = R.EarlyStopping(patience=2, min_delta=0.05)
    losses = [1.0, 0.8, 0.78, 0.5, 0.52, 0.49, 0.6]
    stops = []
    for i, v in enumerate(losses):
        with torch.no_grad():
            model.weight.fill_(float(i))
        stops.append(es.step(v, model))
    # 0.78 is not an improvement of > 0.05 over 0.8; 0.5 is; 0.52, 0.49 are not -> stop at index 5
    assert stops == [False, False, False, False, False, True, True]
    assert es.best_value == 0.5 and es.best_step == 3
    es.restore(model)
    assert model.weight.item() == 3.0


# -- adversarial -------------------------------------------------------------------------
def test_fgsm_logistic_closed_form():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 1).double()
    x, s = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 2, (10,)).double() * 2 - 1
    loss = lambda z, t: F.softplus(-t * z.squeeze(-1)).sum()
    eps = 0.2
    xa = R.fgsm(lin, x, s, eps=eps, loss_fn=loss, clamp=None)
    w, b = lin.weight.detach()[0], lin.bias.detach()
    assert_close(F.softplus(-s * (xa @ w + b)), F.softplus(-s * (x @ w + b) + eps * w.abs().sum()))


def test_pgd_stays_in_ball_and_beats_fgsm_loss():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.rand(32, 8), torch.randint(0, 3, (32,))
    xa = R.pgd(net, x, y, eps=0.1, steps=20, alpha=0.02, generator=gen(0))
    assert (xa - x).abs().max() <= 0.1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    xf = R.fgsm(net, x, y, eps=0.1)
    assert (xf - x).abs().max() <= 0.1 + 1e-6
    assert F.cross_entropy(net(xa), y) >= F.cross_entropy(net(x), y)


# -- R-Drop --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (9, 6)])
def test_symmetric_kl_matches_torch_kl_div(shape):
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    ref = 0.5 * (F.kl_div(lb, la, log_target=True, reduction="batchmean") + F.kl_div(la, lb, log_target=True, reduction="batchmean"))
    ours = R.symmetric_kl(a, b)
    assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours, a)
    (g2,) = torch.autograd.grad(ref, a)
    assert_close(g1, g2)
    assert torch.autograd.gradcheck(lambda s, t: R.r_drop_loss(s, t, torch.zeros(shape[0], dtype=torch.long), alpha=0.5), (a, b))
    assert_close(R.symmetric_kl(a, a), torch.tensor(0.0, dtype=torch.float64))


# -- error paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_p(p):
    x = torch.ones(1, 1, 8, 8)
    for f in (R.dropout, R.drop_path, R.dropblock):
        with pytest.raises(ValueError, match="p must be in"):
            f(x, p)


def test_bad_inputs_named():
    w = torch.ones(3)
    with pytest.raises(ValueError, match="lam"):
        R.l1_penalty(w, -1.0)
    with pytest.raises(ValueError, match="lam"):
        R.l2_penalty(w, -0.1)
    with pytest.raises(ValueError, match="alpha"):
        R.elastic_net_penalty(w, -1.0)
    with pytest.raises(ValueError, match="l1_ratio"):
        R.elastic_net_penalty(w, 1.0, 1.5)
    with pytest.raises(ValueError, match="patience"):
        R.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        R.EarlyStopping(min_delta=-1.0)
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="eps"):
        R.fgsm(net, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        R.pgd(net, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), eps=-0.1)
    with pytest.raises(ValueError, match="block_size"):
        R.dropblock(torch.ones(1, 1, 8, 8), 0.1, block_size=4)
    with pytest.raises(ValueError, match="alpha"):
        R.mixup(torch.ones(2, 2), torch.zeros(2, dtype=torch.long), alpha=-1.0, num_classes=2)
    with pytest.raises(ValueError, match="magnitude"):
        R.rand_augment(torch.ones(1, 4, 4), magnitude=31)
    with pytest.raises(ValueError, match="threshold"):
        R.soft_threshold(w, -1.0)
    with pytest.raises(TypeError, match="p must be a float"):
        R.dropout(w, "0.5")
