"""dlbook.norm against torch (forward and backward), float64 gradcheck, properties, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from dlbook.norm import batch_norm, group_norm, instance_norm, layer_norm, rms_norm, standardize, weight_norm

SHAPES = [(4, 6), (3, 6, 5), (2, 6, 4, 3), (2, 6, 2, 3, 2)]
SPATIAL_SHAPES = [s for s in SHAPES if len(s) >= 3]


def _pair(shape, seed=0, dtype=torch.float32):
    """The same random input twice, as leaves, plus a random upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 3 + 1).requires_grad_()
    return x, x.detach().clone().requires_grad_(), torch.randn(shape, generator=g, dtype=dtype)


def _affine_params(c, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(c, generator=g, dtype=dtype), torch.randn(c, generator=g, dtype=dtype)
    return (w.clone().requires_grad_(), b.clone().requires_grad_()), (w.clone().requires_grad_(), b.clone().requires_grad_())


def _same_forward_backward(ours, theirs, inputs_ours, inputs_theirs, upstream):
    y1, y2 = ours(*inputs_ours), theirs(*inputs_theirs)
    assert_close(y1, y2, rtol=1e-4, atol=1e-5)
    (y1 * upstream).sum().backward()
    (y2 * upstream).sum().backward()
    for a, b in zip(inputs_ours, inputs_theirs):
        assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4)


# -- forward and backward against torch ------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_matches_torch(shape):
    x1, x2, up = _pair(shape)
    (w1, b1), (w2, b2) = _affine_params(shape[1])
    rm, rv = torch.randn(shape[1]), torch.rand(shape[1]) + 0.5
    rm_t, rv_t = rm.clone(), rv.clone()
    y, rm_new, rv_new = batch_norm(x1, rm, rv, w1, b1, training=True, momentum=0.3)
    _same_forward_backward(
        lambda x, w, b: batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)[0],
        lambda x, w, b: F.batch_norm(x, rm_t, rv_t, w, b, training=True, momentum=0.3),
        (x1, w1, b1), (x2, w2, b2), up,
    )
    assert_close(rm_new, rm_t)  # torch updated its buffers in place; ours are returned
    assert_close(rv_new, rv_t)


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_eval_matches_torch(shape):
    x1, x2, up = _pair(shape)
    (w1, b1), (w2, b2) = _affine_params(shape[1])
    rm, rv = torch.randn(shape[1]), torch.rand(shape[1]) + 0.5
    _same_forward_backward(
        lambda x, w, b: batch_norm(x, rm, rv, w, b, training=False)[0],
        lambda x, w, b: F.batch_norm(x, rm.clone(), rv.clone(), w, b, training=False),
        (x1, w1, b1), (x2, w2, b2), up,
    )


def test_batch_norm_running_stats_over_steps_match_module():
    bn = torch.nn.BatchNorm2d(3, momentum=0.2)
    rm, rv = torch.zeros(3), torch.ones(3)
    for step in range(5):
        x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(step)) * (step + 1)
        bn(x)
        _, rm, rv = batch_norm(x, rm, rv, training=True, momentum=0.2)
    assert_close(rm, bn.running_mean)
    assert_close(rv, bn.running_var)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_matches_torch(shape):
    x1, x2, up = _pair(shape)
    ns = shape[1:]
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(ns, generator=g), torch.randn(ns, generator=g)
    w1, b1, w2, b2 = (t.clone().requires_grad_() for t in (w, b, w, b))
    _same_forward_backward(
        lambda x, w, b: layer_norm(x, ns, w, b), lambda x, w, b: F.layer_norm(x, ns, w, b),
        (x1, w1, b1), (x2, w2, b2), up,
    )


@pytest.mark.parametrize("shape", SPATIAL_SHAPES)
def test_instance_norm_matches_torch(shape):
    x1, x2, up = _pair(shape)
    (w1, b1), (w2, b2) = _affine_params(shape[1])
    _same_forward_backward(
        lambda x, w, b: instance_norm(x, w, b), lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
        (x1, w1, b1), (x2, w2, b2), up,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_torch(shape, groups):
    if len(shape) == 2 and groups == shape[1]:
        pytest.skip("one element per group: the output is 0 and the gradients are rounding noise")
    x1, x2, up = _pair(shape)
    (w1, b1), (w2, b2) = _affine_params(shape[1])
    _same_forward_backward(
        lambda x, w, b: group_norm(x, groups, w, b), lambda x, w, b: F.group_norm(x, groups, w, b),
        (x1, w1, b1), (x2, w2, b2), up,
    )


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8), (2, 3, 4, 5)])
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rms_norm_matches_torch(shape, eps):
    x1, x2, up = _pair(shape)
    ns = shape[-1:]
    w = torch.randn(ns, generator=torch.Generator().manual_seed(3))
    w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
    _same_forward_backward(
        lambda x, w: rms_norm(x, ns, w, eps=eps), lambda x, w: F.rms_norm(x, ns, w, eps=eps),
        (x1, w1), (x2, w2), up,
    )


@pytest.mark.parametrize("shape,dim", [((4, 3), 0), ((5, 3, 2, 2), 0), ((3, 4), 1)])
def test_weight_norm_matches_torch_parametrization(shape, dim):
    layer = torch.nn.Linear(2, 2)
    layer.weight = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(4)))
    torch.nn.utils.parametrizations.weight_norm(layer, name="weight", dim=dim)
    g, v = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
    ours = weight_norm(v, g, dim=dim)
    assert_close(ours, layer.weight)
    up = torch.randn(shape)
    (layer.weight * up).sum().backward()
    g2, v2 = g.detach().clone().requires_grad_(), v.detach().clone().requires_grad_()
    (weight_norm(v2, g2, dim=dim) * up).sum().backward()
    assert_close(g2.grad, g.grad)
    assert_close(v2.grad, v.grad)


# -- float64 gradcheck ----------------------------------------------------------------------
def test_gradcheck_all():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, rm, rv, w, b, training=True)[0], (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, rm, rv, w, b, training=False)[0], (x, w, b))
    assert torch.autograd.gradcheck(lambda x: layer_norm(x, (4, 2, 3)), (x,))
    assert torch.autograd.gradcheck(lambda x, w, b: instance_norm(x, w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: group_norm(x, 2, w, b), (x, w, b))
    wr = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: rms_norm(x, 3, w, eps=1e-6), (x, wr))
    v = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    gain = torch.randn(4, 1, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, gain: weight_norm(v, gain), (v, gain))


# -- Hypothesis properties ------------------------------------------------------------------
@st.composite
def nchw(draw):
    """(tensor of shape (N, C, H, W), a divisor G of C) with non-degenerate groups."""
    n, g, per, h, w = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                       draw(st.integers(2, 4)), draw(st.integers(1, 4)))
    seed, scale, shift = draw(st.integers(0, 2**16)), draw(st.floats(0.1, 100)), draw(st.floats(-50, 50))
    x = torch.randn(n, g * per, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x * scale + shift, g


@settings(max_examples=40, deadline=None)
@given(nchw())
def test_groups_are_standardized(case):
    x, groups = case
    n, c = x.shape[:2]
    for y, dims in [
        (group_norm(x, groups, eps=0.0).reshape(n, groups, -1), (2,)),
        (instance_norm(x, eps=0.0), (2, 3)),
        (layer_norm(x, x.shape[1:], eps=0.0), (1, 2, 3)),
    ]:
        assert_close(y.mean(dim=dims), torch.zeros_like(y.mean(dim=dims)), atol=1e-9, rtol=0)
        assert_close(y.var(dim=dims, unbiased=False), torch.ones_like(y.mean(dim=dims)), atol=1e-6, rtol=0)
    if n * x[0, 0].numel() > 1:
        y, _, _ = batch_norm(x, None, None, training=True, eps=0.0)
        assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(c, dtype=x.dtype), atol=1e-9, rtol=0)
        assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(c, dtype=x.dtype), atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(nchw())
def test_group_norm_limits_are_layer_and_instance_norm(case):
    x, _ = case
    c = x.shape[1]
    assert_close(group_norm(x, 1), layer_norm(x, x.shape[1:]))
    assert_close(group_norm(x, c), instance_norm(x))
    assert_close(group_norm(x, 1), standardize(x, (1, 2, 3)))


@settings(max_examples=30, deadline=None)
@given(nchw(), st.floats(0.01, 100))
def test_rms_norm_scale_invariant(case, a):
    x, _ = case
    assert_close(rms_norm(a * x, x.shape[-1], eps=0.0), rms_norm(x, x.shape[-1], eps=0.0))


# -- bad input --------------------------------------------------------------------------------
def test_errors():
    x = torch.randn(2, 6, 3, 3)
    with pytest.raises(ValueError, match="num_groups"):
        group_norm(x, 4)
    with pytest.raises(ValueError, match="num_groups"):
        group_norm(x, 0)
    with pytest.raises(ValueError, match="input"):
        group_norm(torch.randn(6), 2)
    with pytest.raises(ValueError, match="input"):
        batch_norm(torch.randn(5), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(torch.randn(1, 6), None, None, training=True)
    with pytest.raises(ValueError, match="running_mean"):
        batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(x, None, None, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="input"):
        instance_norm(torch.randn(2, 6))
    with pytest.raises(ValueError, match="spatial"):
        instance_norm(torch.randn(2, 6, 1))
    with pytest.raises(ValueError, match="normalized_shape"):
        layer_norm(x, (4, 3))
    with pytest.raises(ValueError, match="normalized_shape"):
        rms_norm(x, 5)
    with pytest.raises(ValueError, match="dim"):
        weight_norm(x, torch.ones(2, 1, 1, 1), dim=4)
    with pytest.raises(ValueError, match="g must"):
        weight_norm(x, torch.ones(3))
    with pytest.raises(ValueError, match="dim"):
        standardize(x, (5,))
    with pytest.raises(ValueError, match="eps"):
        standardize(x, (1,), eps=-1.0)
    with pytest.raises(TypeError, match="input"):
        layer_norm([1.0, 2.0], 2)


# -- input features: fit_scaler and whitening_matrix against scikit-learn / scipy -------------
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler  # noqa: E402

from dlbook.norm import fit_scaler, whitening_matrix  # noqa: E402

SKLEARN_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "maxabs": MaxAbsScaler, "robust": RobustScaler}


def _feature_matrices():
    rng = np.random.default_rng(0)
    wine = load_wine().data
    yield wine
    yield rng.lognormal(size=(50, 3)) * np.array([1.0, 100.0, 0.01])
    yield np.column_stack([rng.normal(size=8), np.full(8, 3.0), rng.integers(-5, 5, size=8)]).astype(float)


@pytest.mark.parametrize("method", list(SKLEARN_SCALERS))
def test_fit_scaler_matches_sklearn(method):
    for x in _feature_matrices():
        center, scale = fit_scaler(torch.tensor(x), method=method)
        ours = (torch.tensor(x) - center) / scale
        theirs = SKLEARN_SCALERS[method]().fit_transform(x)
        assert_close(ours, torch.tensor(theirs), rtol=1e-10, atol=1e-10)
        half = len(x) // 2  # fit on one split, apply to another, as sklearn's transform
        c2, s2 = fit_scaler(torch.tensor(x[:half]), method=method)
        theirs2 = SKLEARN_SCALERS[method]().fit(x[:half]).transform(x[half:])
        assert_close((torch.tensor(x[half:]) - c2) / s2, torch.tensor(theirs2), rtol=1e-10, atol=1e-10)


def test_whitening_matches_scipy_and_sklearn():
    x = load_wine().data[:, :6]
    xt = torch.tensor(x)
    mean, w_zca = whitening_matrix(xt, method="zca", eps=0.0)
    inv_sqrt = scipy.linalg.fractional_matrix_power(np.cov(x, rowvar=False), -0.5)
    assert_close(w_zca, torch.tensor(inv_sqrt.real), rtol=1e-8, atol=1e-8)
    _, w_pca = whitening_matrix(xt, method="pca", eps=0.0)
    ours = ((xt - mean) @ w_pca.T).flip(1).numpy()  # eigh is ascending, PCA descending
    theirs = PCA(whiten=True).fit_transform(x)
    signs = np.sign((ours * theirs).sum(0))  # eigenvectors are defined up to sign
    np.testing.assert_allclose(ours * signs, theirs, rtol=1e-7, atol=1e-7)


def test_whitening_covariance_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    eps = 0.3
    lam, u = torch.linalg.eigh(torch.cov(x.T))
    for method, rot in (("zca", u), ("pca", torch.eye(4, dtype=torch.float64))):
        mean, w = whitening_matrix(x, method=method, eps=eps)
        y = (x - mean) @ w.T
        expected = rot @ torch.diag(lam / (lam + eps)) @ rot.T
        assert_close(torch.cov(y.T), expected, rtol=1e-9, atol=1e-9)


def test_gradcheck_input_features():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    for method in ("standard", "minmax", "maxabs", "robust"):
        assert torch.autograd.gradcheck(lambda x: (x - fit_scaler(x, method=method)[0]) / fit_scaler(x, method=method)[1], (x,))
    assert torch.autograd.gradcheck(lambda x: whitening_matrix(x, method="zca")[1], (x,))
    assert torch.autograd.gradcheck(lambda x: whitening_matrix(x, method="pca")[1].abs(), (x,))  # sign-free


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.01, 100), st.floats(-100, 100))
def test_scalers_are_invariant_to_affine_input(seed, a, b):
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for method in ("standard", "minmax", "robust"):
        c1, s1 = fit_scaler(x, method=method)
        c2, s2 = fit_scaler(a * x + b, method=method)
        assert_close((a * x + b - c2) / s2, (x - c1) / s1, rtol=1e-7, atol=1e-7)
    mean, w = whitening_matrix(a * x + b, method="zca", eps=0.0)
    assert_close(torch.cov(((a * x + b - mean) @ w.T).T), torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-8)


def test_input_feature_errors():
    with pytest.raises(ValueError, match="method"):
        fit_scaler(torch.randn(5, 2), method="zscore")
    with pytest.raises(ValueError, match="input"):
        fit_scaler(torch.randn(5), method="standard")
    with pytest.raises(ValueError, match="input"):
        whitening_matrix(torch.randn(1, 3))
    with pytest.raises(ValueError, match="method"):
        whitening_matrix(torch.randn(5, 2), method="pcs")
    with pytest.raises(ValueError, match="eps"):
        whitening_matrix(torch.randn(5, 2), eps=-1.0)
    with pytest.raises(TypeError, match="input"):
        fit_scaler(np.ones((3, 2)))
