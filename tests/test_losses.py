"""Tests for dlbook.losses: torch as oracle (forward and backward), float64 gradcheck,
hand-computed values from the papers, Hypothesis properties, and the error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_percentage_error, mean_pinball_loss, mean_squared_log_error

from dlbook import losses as L

SHAPES_CLS = [(5, 3), (8, 7), (4, 3, 6), (2, 4, 3, 3)]


def _rand(*shape, seed=0, dtype=torch.float64, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=dtype)).requires_grad_()


def _targets(shape, n_classes, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_classes, (shape[0], *shape[2:]), generator=g)


def _same_as_torch(ours, theirs, inputs):
    """Forward values and gradients w.r.t. every input agree."""
    a, b = ours(*inputs), theirs(*inputs)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), inputs, allow_unused=True)
    gb = torch.autograd.grad(b.sum(), inputs, allow_unused=True)
    for x, y in zip(ga, gb):
        if y is not None:
            torch.testing.assert_close(x, y)


# -- classification against torch ----------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES_CLS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ls", [0.0, 0.1, 0.3])
def test_cross_entropy_matches_torch(shape, reduction, ls):
    z = _rand(*shape)
    y = _targets(shape, shape[1])
    y.view(-1)[::3] = -100  # some ignored positions
    kw = dict(reduction=reduction, label_smoothing=ls)
    _same_as_torch(lambda z: L.cross_entropy(z, y, **kw), lambda z: F.cross_entropy(z, y, **kw), (z,))


@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_cross_entropy_weight_and_ignore_index_match_torch(ls):
    z = _rand(9, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 1])
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    kw = dict(ignore_index=2, label_smoothing=ls)
    _same_as_torch(lambda z: L.cross_entropy(z, y, w, **kw), lambda z: F.cross_entropy(z, y, w, **kw), (z,))


@pytest.mark.parametrize("shape", SHAPES_CLS)
def test_cross_entropy_soft_targets_match_torch(shape):
    z = _rand(*shape)
    q = torch.softmax(torch.randn(*shape, dtype=torch.float64), dim=1)
    _same_as_torch(lambda z: L.cross_entropy(z, q, label_smoothing=0.1), lambda z: F.cross_entropy(z, q, label_smoothing=0.1), (z,))


def test_cross_entropy_gradient_is_p_minus_y():
    z = _rand(6, 5)
    y = _targets((6, 5), 5)
    (g,) = torch.autograd.grad(L.cross_entropy(z, y, reduction="sum"), z)
    torch.testing.assert_close(g, torch.softmax(z, 1) - F.one_hot(y, 5).double())


@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 4)])
def test_bce_family_matches_torch(shape):
    z = _rand(*shape)
    y = torch.rand(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = torch.rand(*shape, dtype=torch.float64) + 0.5
    pw = torch.rand(shape[-1], dtype=torch.float64) + 0.5
    _same_as_torch(lambda z: L.binary_cross_entropy_with_logits(z, y, w, pos_weight=pw),
                   lambda z: F.binary_cross_entropy_with_logits(z, y, w, pos_weight=pw), (z,))
    p = torch.sigmoid(z.detach()).requires_grad_()
    _same_as_torch(lambda p: L.binary_cross_entropy(p, y, w), lambda p: F.binary_cross_entropy(p, y, w), (p,))


def test_bce_clamps_like_torch_at_saturated_probability():
    p, y = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(L.binary_cross_entropy(p, y), F.binary_cross_entropy(p, y))


def test_multi_margin_loss_matches_torch():
    z = _rand(8, 5)
    y = _targets((8, 5), 5)
    w = torch.rand(5, dtype=torch.float64) + 0.5
    for p, margin in [(1, 1.0), (2, 0.5)]:
        _same_as_torch(lambda z: L.multi_margin_loss(z, y, p, margin, w), lambda z: F.multi_margin_loss(z, y, p, margin, w), (z,))


# -- regression against torch / sklearn ----------------------------------------------------
@pytest.mark.parametrize("shape", [(9,), (3, 4), (2, 3, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_torch(shape, reduction):
    x, t = _rand(*shape, seed=1), _rand(*shape, seed=2).detach()
    pairs = [
        (lambda x: L.mse_loss(x, t, reduction=reduction), lambda x: F.mse_loss(x, t, reduction=reduction)),
        (lambda x: L.l1_loss(x, t, reduction=reduction), lambda x: F.l1_loss(x, t, reduction=reduction)),
        (lambda x: L.huber_loss(x, t, reduction=reduction, delta=0.7), lambda x: F.huber_loss(x, t, reduction=reduction, delta=0.7)),
        (lambda x: L.smooth_l1_loss(x, t, reduction=reduction, beta=0.7), lambda x: F.smooth_l1_loss(x, t, reduction=reduction, beta=0.7)),
        (lambda x: L.smooth_l1_loss(x, t, reduction=reduction, beta=0.0), lambda x: F.smooth_l1_loss(x, t, reduction=reduction, beta=0.0)),
    ]
    for ours, theirs in pairs:
        _same_as_torch(ours, theirs, (x,))


@pytest.mark.filterwarnings("ignore:reduction. 'mean'")
@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    log_q = torch.log_softmax(_rand(5, 4, seed=4), 1).detach().requires_grad_()
    p = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    if not log_target:
        p[0, 1] = 0.0  # a zero-probability entry contributes 0
    t = torch.log(p) if log_target else p
    _same_as_torch(lambda a: L.kl_div(a, t, reduction=reduction, log_target=log_target),
                   lambda a: F.kl_div(a, t, reduction=reduction, log_target=log_target), (log_q,))


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("p", [1, 2])
def test_triplet_matches_torch(swap, p):
    a, pos, neg = _rand(6, 3, seed=1), _rand(6, 3, seed=2), _rand(6, 3, seed=3)
    kw = dict(margin=0.5, p=p, swap=swap)
    _same_as_torch(lambda a, b, c: L.triplet_margin_loss(a, b, c, **kw), lambda a, b, c: F.triplet_margin_loss(a, b, c, **kw), (a, pos, neg))


def test_sklearn_metrics_agree():
    rng = np.random.default_rng(0)
    y, yhat = rng.uniform(0.5, 100, 50), rng.uniform(0.5, 100, 50)
    ty, tyhat = torch.tensor(y), torch.tensor(yhat)
    assert math.isclose(L.msle_loss(tyhat, ty).item(), mean_squared_log_error(y, yhat), rel_tol=1e-12)
    assert math.isclose(L.mape_loss(tyhat, ty).item(), mean_absolute_percentage_error(y, yhat), rel_tol=1e-12)
    for tau in (0.05, 0.5, 0.9):
        assert math.isclose(L.pinball_loss(tyhat, ty, quantile=tau).item(), mean_pinball_loss(y, yhat, alpha=tau), rel_tol=1e-12)


# -- definitions and limiting cases --------------------------------------------------------
def test_focal_reduces_to_cross_entropy_and_matches_eq5():
    z, y = _rand(7, 4), _targets((7, 4), 4)
    torch.testing.assert_close(L.focal_loss(z, y, gamma=0.0, alpha=None), F.cross_entropy(z, y))
    p_t = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    torch.testing.assert_close(L.focal_loss(z, y, gamma=2.0, alpha=alpha, reduction="none"), -alpha[y] * (1 - p_t) ** 2 * torch.log(p_t))


def test_sigmoid_focal_hand_values_and_bce_limit():
    z = torch.tensor([2.0, -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0], dtype=torch.float64)
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    expected = -0.25 * (1 - p) ** 2 * np.log(p)  # Lin et al. eq. 5, positives
    np.testing.assert_allclose(L.sigmoid_focal_loss(z, y).numpy(), expected)
    neg = L.sigmoid_focal_loss(z, 1 - y, alpha=0.25, gamma=2.0)  # negatives: alpha_t = 0.75, p_t = 1 - p
    np.testing.assert_allclose(neg.numpy(), -0.75 * p**2 * np.log(1 - p))
    zz, yy = _rand(10), torch.rand(10, dtype=torch.float64).round()
    torch.testing.assert_close(L.sigmoid_focal_loss(zz, yy, alpha=-1, gamma=0.0), F.binary_cross_entropy_with_logits(zz, yy, reduction="none"))


def test_hinge_zero_beyond_margin():
    f = torch.tensor([2.0, 1.0, 0.5, -1.0], dtype=torch.float64, requires_grad=True)
    y = torch.ones(4, dtype=torch.float64)
    loss = L.hinge_loss(f, y, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.0, 0.5, 2.0], dtype=torch.float64))
    (g,) = torch.autograd.grad(loss.sum(), f)
    assert g[0] == 0 and g[1] == 0 and g[2] == -1  # zero gradient on the margin itself


def _box(*xyxy):
    return torch.tensor([xyxy], dtype=torch.float64)


def test_iou_family_hand_values():
    a, b = _box(0, 0, 2, 2), _box(1, 1, 3, 3)  # inter 1, union 7, enclosure 3x3
    assert math.isclose(L.iou_loss(a, b).item(), 1 - 1 / 7, rel_tol=1e-6)
    assert math.isclose(L.giou_loss(a, b).item(), 1 - (1 / 7 - 2 / 9), rel_tol=1e-6)
    assert math.isclose(L.diou_loss(a, b).item(), 1 - 1 / 7 + 2 / 18, rel_tol=1e-6)
    assert math.isclose(L.ciou_loss(a, b).item(), L.diou_loss(a, b).item(), rel_tol=1e-9)  # same aspect ratio: v = 0
    inner, outer = _box(1, 1, 2, 3), _box(0, 0, 4, 4)  # nested: enclosure = union
    assert math.isclose(L.giou_loss(inner, outer).item(), L.iou_loss(inner, outer).item(), rel_tol=1e-6)
    far = L.giou_loss(_box(0, 0, 1, 1), _box(9, 9, 10, 10)).item()
    assert far > 1.9  # GIoU = 2/100 - 1 < 0
    t = _box(-1, -1, 1, 1)  # CIoU: 2x2 target vs concentric 2x1 box
    v = 4 / math.pi**2 * (math.atan(1) - math.atan(2)) ** 2
    assert math.isclose(L.ciou_loss(_box(-1, -0.5, 1, 0.5), t).item(), 0.5 + v**2 / (0.5 + v), rel_tol=1e-5)


def test_wiou_weight():
    t = _box(0, 0, 2, 2)
    assert math.isclose(L.wiou_v1_loss(_box(0.5, 0.5, 1.5, 1.5), t).item(), L.iou_loss(_box(0.5, 0.5, 1.5, 1.5), t).item(), rel_tol=1e-9)
    assert L.wiou_v1_loss(_box(1, 1, 2, 2), t).item() > L.iou_loss(_box(1, 1, 2, 2), t).item()


def test_iou_against_pycocotools():
    from pycocotools import mask as maskutils

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10, (20, 2))
    wh = rng.uniform(0.5, 6, (20, 2))
    b1 = np.hstack([xy[:10], wh[:10]])
    b2 = np.hstack([xy[10:], wh[10:]])
    ref = np.diag(maskutils.iou(b1.tolist(), b2.tolist(), [0] * 10))
    to_xyxy = lambda b: torch.tensor(np.hstack([b[:, :2], b[:, :2] + b[:, 2:]]))
    np.testing.assert_allclose(L.box_iou_aligned(to_xyxy(b1), to_xyxy(b2)).numpy(), ref, rtol=1e-6, atol=1e-9)


def test_infonce_is_cross_entropy_over_similarities():
    q, k, n = _rand(4, 8, seed=1), _rand(4, 8, seed=2), _rand(6, 8, seed=3)
    cos = lambda a, b: F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    logits = torch.cat([torch.diagonal(cos(q, k))[:, None], cos(q, n)], 1) / 0.2
    torch.testing.assert_close(L.info_nce(q, k, n, temperature=0.2), F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)))
    torch.testing.assert_close(L.info_nce(q, k, temperature=0.2), F.cross_entropy(cos(q, k) / 0.2, torch.arange(4)))


def test_distillation_definition():
    s, t = _rand(5, 6, seed=1), _rand(5, 6, seed=2).detach()
    y = _targets((5, 6), 6)
    T = 3.0
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
    torch.testing.assert_close(L.distillation_loss(s, t, y, temperature=T, alpha=0.7), 0.7 * T**2 * kl + 0.3 * F.cross_entropy(s, y))


def test_dice_is_one_minus_f1_on_hard_masks():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    p, g = (rng.random((1, 64)) < 0.3).astype(float), (rng.random((1, 64)) < 0.3).astype(float)
    assert math.isclose(L.dice_loss(torch.tensor(p), torch.tensor(g)).item(), 1 - f1_score(g[0], p[0]), rel_tol=1e-6)


def test_dice_squared_pred_is_vnet_form():
    g_ = torch.Generator().manual_seed(3)
    p = torch.rand(3, 4, 5, generator=g_, dtype=torch.float64)
    m = (torch.rand(3, 4, 5, generator=g_, dtype=torch.float64) < 0.3).double()
    pf, mf = p.flatten(1), m.flatten(1)
    vnet = 1 - 2 * (pf * mf).sum(1) / ((pf**2).sum(1) + (mf**2).sum(1))  # Milletari et al. 2016, eq. 1
    linear = 1 - 2 * (pf * mf).sum(1) / (pf.sum(1) + mf.sum(1))
    torch.testing.assert_close(L.dice_loss(p, m, squared_pred=True, eps=0.0, reduction="none"), vnet)
    torch.testing.assert_close(L.dice_loss(p, m, eps=0.0, reduction="none"), linear)
    assert not torch.allclose(vnet, linear)  # soft predictions: the variants differ
    hard = (p > 0.5).double()  # hard masks: p^2 = p, they agree
    torch.testing.assert_close(L.dice_loss(hard, m, squared_pred=True), L.dice_loss(hard, m))
    leaf = p.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: L.dice_loss(x, m, squared_pred=True, smooth=1.0), (leaf,))
    with pytest.raises(TypeError, match="squared_pred"):
        L.dice_loss(p, m, squared_pred=1)


def test_hungarian_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        cost = torch.rand(5, 3, generator=g)
        rows, cols = L.hungarian_match(cost)
        assert math.isclose(cost[rows, cols].sum().item(), L.brute_force_match(cost), rel_tol=1e-6)


def test_detr_set_loss_permutation_invariant():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64)
    xy = torch.rand(5, 2, generator=g, dtype=torch.float64)
    boxes = torch.cat([xy, xy + 0.3], 1)
    tl, tb = torch.tensor([0, 2]), boxes[[1, 3]] + 0.05
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(L.detr_set_loss(logits, boxes, tl, tb), L.detr_set_loss(logits[perm], boxes[perm], tl, tb))


# -- stability ---------------------------------------------------------------------------
def test_huge_logits_finite_values_and_gradients():
    z = torch.tensor([[1000.0, -1000.0, 0.0], [-5000.0, 5000.0, 1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0])
    for loss in (L.cross_entropy(z, y), L.focal_loss(z, y), L.cross_entropy(z, y, label_smoothing=0.1)):
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
    assert math.isclose(L.cross_entropy(z, y, reduction="none")[0].item(), 2000.0, rel_tol=1e-12)
    zb = torch.tensor([800.0, -800.0], dtype=torch.float64, requires_grad=True)
    out = L.binary_cross_entropy_with_logits(zb, torch.tensor([0.0, 1.0], dtype=torch.float64), reduction="sum")
    (gb,) = torch.autograd.grad(out, zb)
    assert out.item() == 1600.0 and torch.isfinite(gb).all()
    (gs,) = torch.autograd.grad(L.sigmoid_focal_loss(zb, torch.tensor([0.0, 1.0], dtype=torch.float64)).sum(), zb)
    assert torch.isfinite(gs).all()


# -- gradcheck in float64 ----------------------------------------------------------------
def test_gradcheck_all():
    z, y = _rand(4, 3), _targets((4, 3), 3)
    teacher = _rand(4, 3, seed=9).detach()
    x, t = _rand(6, seed=1), _rand(6, seed=2).detach()
    pos = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 10 + 0.5
    b1 = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 4.0, 2.0]], dtype=torch.float64, requires_grad=True)
    b2 = torch.tensor([[0.5, 0.7, 2.5, 2.0], [5.0, 5.0, 6.0, 7.0]], dtype=torch.float64)
    fns = [
        (lambda z: L.cross_entropy(z, y, label_smoothing=0.1), (z,)),
        (lambda z: L.focal_loss(z, y, gamma=2.0), (z,)),
        (lambda z: L.multi_margin_loss(z, y, 2), (z,)),
        (lambda z: L.distillation_loss(z, teacher, y), (z,)),
        (lambda x: L.sigmoid_focal_loss(x, (t > 0).double()), (x,)),
        (lambda x: L.binary_cross_entropy_with_logits(x, (t > 0).double()), (x,)),
        (lambda x: L.huber_loss(x, t, delta=0.5), (x,)),
        (lambda x: L.smooth_l1_loss(x, t, beta=0.5), (x,)),
        (lambda x: L.pinball_loss(x, t, quantile=0.3), (x,)),
        (lambda p: L.msle_loss(p, pos.flip(0)), (pos.clone().requires_grad_(),)),
        (lambda a, b, c: L.triplet_margin_loss(a, b, c), (_rand(3, 4, seed=1), _rand(3, 4, seed=2), _rand(3, 4, seed=3))),
        (lambda a, b: L.info_nce(a, b, temperature=0.5), (_rand(3, 4, seed=1), _rand(3, 4, seed=2))),
        (lambda b: L.giou_loss(b, b2, reduction="sum"), (b1,)),
        (lambda b: L.diou_loss(b, b2, reduction="sum"), (b1,)),
        (lambda b: L.iou_loss(b, b2, reduction="sum"), (b1,)),
    ]
    for fn, inputs in fns:
        assert torch.autograd.gradcheck(fn, inputs)


# -- properties ---------------------------------------------------------------------------
logit_rows = st.lists(st.floats(-50, 50), min_size=2, max_size=6)


@settings(max_examples=40, deadline=None)
@given(logit_rows, st.floats(0, 1))
def test_property_ce_nonnegative_and_softmax_sums_to_one(row, eps):
    z = torch.tensor([row], dtype=torch.float64)
    assert math.isclose(L.softmax(z).sum().item(), 1.0, rel_tol=1e-12)
    assert L.cross_entropy(z, torch.tensor([0]), label_smoothing=eps).item() >= -1e-12


coords = st.floats(0, 10)


@settings(max_examples=60, deadline=None)
@given(coords, coords, st.floats(0.1, 5), st.floats(0.1, 5), coords, coords, st.floats(0.1, 5), st.floats(0.1, 5))
def test_property_iou_family_ranges(x1, y1, w1, h1, x2, y2, w2, h2):
    a, b = _box(x1, y1, x1 + w1, y1 + h1), _box(x2, y2, x2 + w2, y2 + h2)
    iou = 1 - L.iou_loss(a, b).item()
    giou = 1 - L.giou_loss(a, b).item()
    assert -1e-9 <= iou <= 1 + 1e-9
    assert -1 - 1e-9 <= giou <= iou + 1e-9
    assert L.diou_loss(a, b).item() >= L.iou_loss(a, b).item() - 1e-9
    assert L.ciou_loss(a, b).item() >= L.diou_loss(a, b).item() - 1e-9
    assert math.isclose(L.giou_loss(a, b).item(), L.giou_loss(b, a).item(), abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.floats(-20, 20), st.floats(0.05, 5))
def test_property_huber_is_delta_times_smooth_l1(r, d):
    x, t = torch.tensor([r], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    assert math.isclose(L.huber_loss(x, t, delta=d).item(), d * L.smooth_l1_loss(x, t, beta=d).item(), rel_tol=1e-9, abs_tol=1e-12)


# -- error paths --------------------------------------------------------------------------
def test_errors():
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="out of range"):
        L.cross_entropy(z, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match="out of range"):
        L.focal_loss(z, torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="target shape"):
        L.cross_entropy(z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.cross_entropy(z, torch.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="gamma"):
        L.focal_loss(z, torch.tensor([0, 1, 2]), gamma=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        L.sigmoid_focal_loss(torch.zeros(2), torch.ones(2), gamma=-0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.binary_cross_entropy(torch.tensor([0.5, 1.2]), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="target"):
        L.binary_cross_entropy_with_logits(torch.zeros(2), torch.tensor([2.0, 0.0]))
    with pytest.raises(ValueError, match="same shape"):
        L.mse_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction"):
        L.l1_loss(torch.zeros(3), torch.zeros(3), reduction="avg")
    with pytest.raises(TypeError, match="input"):
        L.mse_loss(np.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="delta"):
        L.huber_loss(torch.zeros(3), torch.zeros(3), delta=0.0)
    with pytest.raises(ValueError, match="quantile"):
        L.pinball_loss(torch.zeros(3), torch.zeros(3), quantile=1.0)
    with pytest.raises(ValueError, match="-1"):
        L.msle_loss(torch.tensor([-2.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="temperature"):
        L.info_nce(torch.ones(2, 3), torch.ones(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        L.distillation_loss(torch.ones(2, 3), torch.ones(2, 3), temperature=-1.0)
    with pytest.raises(ValueError, match="last dim of 4"):
        L.giou_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="x2 >= x1"):
        L.iou_loss(_box(2, 0, 1, 1), _box(0, 0, 1, 1))
    with pytest.raises(ValueError, match="-1 or \\+1"):
        L.hinge_loss(torch.zeros(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="cost"):
        L.hungarian_match(torch.zeros(3))
