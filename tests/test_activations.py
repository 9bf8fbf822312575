"""Tests for dlbook.activations: torch as oracle (forward and backward, several shapes, extreme
inputs, float32 and float64), each derivative function equal to autograd, float64 gradcheck,
Hypothesis properties, and the error paths."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlbook import activations as A

SHAPES = [(7,), (4, 5), (2, 3, 4)]
DTYPES = [torch.float32, torch.float64]

# (ours, our derivative, torch's function, kwargs)
PAIRS = {
    "sigmoid": (A.sigmoid, A.sigmoid_grad, torch.sigmoid, {}),
    "tanh": (A.tanh, A.tanh_grad, torch.tanh, {}),
    "relu": (A.relu, A.relu_grad, F.relu, {}),
    "leaky_relu": (A.leaky_relu, A.leaky_relu_grad, F.leaky_relu, {"negative_slope": 0.1}),
    "elu": (A.elu, A.elu_grad, F.elu, {"alpha": 1.3}),
    "selu": (A.selu, A.selu_grad, F.selu, {}),
    "gelu": (A.gelu, A.gelu_grad, F.gelu, {}),
    "gelu_tanh": (A.gelu, A.gelu_grad, F.gelu, {"approximate": "tanh"}),
    "silu": (A.silu, A.silu_grad, F.silu, {}),
    "softplus": (A.softplus, A.softplus_grad, F.softplus, {"beta": 2.0, "threshold": 15.0}),
    "hardtanh": (A.hardtanh, A.hardtanh_grad, F.hardtanh, {"min_val": -2.0, "max_val": 0.5}),
    "hardsigmoid": (A.hardsigmoid, A.hardsigmoid_grad, F.hardsigmoid, {}),
    "hardswish": (A.hardswish, A.hardswish_grad, F.hardswish, {}),
}
EXTREMES = [-1e4, -50.0, -3.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 50.0, 1e4]


def _x(shape, dtype, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()


def _forward_backward_match(ours, theirs, x):
    a, b = ours(x), theirs(x)
    torch.testing.assert_close(a, b)
    ga, = torch.autograd.grad(a.sum(), x)
    gb, = torch.autograd.grad(b.sum(), x)
    torch.testing.assert_close(ga, gb)
    return gb


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_backward_and_derivative_match_torch(name, shape, dtype):
    f, df, tf, kw = PAIRS[name]
    x = _x(shape, dtype)
    g = _forward_backward_match(lambda t: f(t, **kw), lambda t: tf(t, **kw), x)
    torch.testing.assert_close(df(x.detach(), **kw), g)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_match_torch_and_stay_finite(name, dtype):
    f, df, tf, kw = PAIRS[name]
    x = torch.tensor(EXTREMES, dtype=dtype, requires_grad=True)
    g = _forward_backward_match(lambda t: f(t, **kw), lambda t: tf(t, **kw), x)
    assert torch.isfinite(f(x, **kw)).all()
    assert torch.isfinite(g).all()
    torch.testing.assert_close(df(x.detach(), **kw), g)


@pytest.mark.parametrize("name", PAIRS)
def test_gradcheck_float64(name):
    f, _, _, kw = PAIRS[name]
    x = torch.tensor([-4.1, -2.2, -0.7, 0.3, 1.1, 2.6, 3.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: f(t, **kw), (x,))


@pytest.mark.parametrize("name", PAIRS)
def test_derivative_function_is_the_derivative_float64(name):
    """f_grad is checked against central differences too (not only against torch's autograd)."""
    f, df, _, kw = PAIRS[name]
    x = torch.linspace(-5.03, 5.03, 56, dtype=torch.float64)
    h = 1e-6
    numeric = (f(x + h, **kw) - f(x - h, **kw)) / (2 * h)
    torch.testing.assert_close(df(x, **kw), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,channels", [((5, 3), 3), ((2, 4, 6), 4), ((2, 3, 2, 2), 1)])
def test_prelu_matches_torch_for_input_and_slope(shape, channels):
    x = _x(shape, torch.float64)
    w = torch.linspace(0.1, 0.4, channels, dtype=torch.float64).requires_grad_()
    a, b = A.prelu(x, w), F.prelu(x, w)
    torch.testing.assert_close(a, b)
    gx_a, gw_a = torch.autograd.grad(a.sum(), (x, w))
    gx_b, gw_b = torch.autograd.grad(b.sum(), (x, w))
    torch.testing.assert_close(gx_a, gx_b)
    torch.testing.assert_close(gw_a, gw_b)
    dx, da = A.prelu_grad(x.detach(), w.detach())
    torch.testing.assert_close(dx, gx_b)
    summed = da.sum(dim=[d for d in range(da.ndim) if d != 1]) if channels > 1 else da.sum().reshape(1)
    torch.testing.assert_close(summed, gw_b)
    assert torch.autograd.gradcheck(A.prelu, (x[:2].detach().clone().requires_grad_(), w))


@pytest.mark.parametrize("shape,dim", [((4, 6), -1), ((6, 3), 0), ((2, 4, 5), 1)])
def test_glu_matches_torch_and_swiglu_is_silu_gated(shape, dim):
    x = _x(shape, torch.float64)
    _forward_backward_match(lambda t: A.glu(t, dim), lambda t: F.glu(t, dim), x)
    a, b = x.chunk(2, dim=dim)
    torch.testing.assert_close(A.swiglu(x, dim), a * F.silu(b))
    assert torch.autograd.gradcheck(lambda t: A.swiglu(t, dim), (x,))


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
def test_silu_beta_is_x_sigmoid_beta_x_and_tends_to_relu(beta):
    x = _x((50,), torch.float64)
    torch.testing.assert_close(A.silu(x, beta), x * torch.sigmoid(beta * x))
    xs = torch.linspace(-5, 5, 101, dtype=torch.float64)
    assert (A.silu(xs, 1e3) - F.relu(xs)).abs().max() < 1e-3


@pytest.mark.parametrize("shape,dim", [((5,), -1), ((3, 7), -1), ((3, 7), 0), ((2, 3, 4), 1)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_log_softmax_logsumexp_match_torch(shape, dim, dtype):
    x = _x(shape, dtype, scale=10.0)
    _forward_backward_match(lambda t: A.softmax(t, dim), lambda t: torch.softmax(t, dim), x)
    _forward_backward_match(lambda t: A.log_softmax(t, dim), lambda t: torch.log_softmax(t, dim), x)
    _forward_backward_match(lambda t: A.logsumexp(t, dim), lambda t: torch.logsumexp(t, dim), x)


def test_softmax_stable_where_naive_overflows():
    z = torch.tensor([1000.0, 1001.0])
    assert torch.isnan(A.softmax_naive(z)).all()
    torch.testing.assert_close(A.softmax(z), torch.softmax(z, -1))
    big = torch.tensor([1e4, -1e4, 0.0], dtype=torch.float64)
    assert torch.isfinite(A.log_softmax(big)).all()
    torch.testing.assert_close(A.log_softmax(big), torch.log_softmax(big, -1))
    torch.testing.assert_close(A.softmax_naive(torch.tensor([0.1, 0.2])), torch.softmax(torch.tensor([0.1, 0.2]), -1))


def test_gradcheck_softmax_family():
    x = _x((3, 4), torch.float64)
    for f in (A.softmax, A.log_softmax, A.logsumexp):
        assert torch.autograd.gradcheck(f, (x,))


finite = st.floats(-30, 30, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(arrays("float64", st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite), st.floats(-1e3, 1e3))
def test_softmax_rows_sum_to_one_and_shift_invariant(z, c):
    z = torch.from_numpy(z)
    p = A.softmax(z)
    torch.testing.assert_close(p.sum(-1), torch.ones(z.shape[0], dtype=torch.float64))
    torch.testing.assert_close(A.softmax(z + c), p, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(arrays("float64", st.integers(1, 20), elements=st.floats(-700, 700, allow_nan=False)))
def test_sigmoid_symmetry_and_tanh_identity(x):
    x = torch.from_numpy(x)
    torch.testing.assert_close(A.sigmoid(-x), 1 - A.sigmoid(x), rtol=0, atol=1e-15)
    torch.testing.assert_close(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, rtol=0, atol=1e-15)
    assert (A.sigmoid_grad(x) <= 0.25).all() and (A.tanh_grad(x) <= 1).all()


@settings(max_examples=40, deadline=None)
@given(arrays("float64", st.integers(1, 20), elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_ranges(x):
    x = torch.from_numpy(x)
    assert ((A.sigmoid(x) >= 0) & (A.sigmoid(x) <= 1)).all()
    assert (A.tanh(x).abs() <= 1).all()
    assert (A.elu(x) >= -1).all() and (A.relu(x) >= 0).all()
    assert (A.gelu(x) >= -0.17).all() and (A.silu(x) >= -0.28).all()


def test_registry():
    assert set(A.ACTIVATIONS) >= {"sigmoid", "tanh", "relu", "gelu", "silu"}
    f, df = A.get("tanh")
    assert f is A.tanh and df is A.tanh_grad
    with pytest.raises(ValueError, match="swishy"):
        A.get("swishy")


@pytest.mark.parametrize("name", PAIRS)
def test_bad_input_types(name):
    f, df, _, kw = PAIRS[name]
    with pytest.raises(TypeError, match="list"):
        f([1.0, 2.0], **kw)
    with pytest.raises(ValueError, match="int64"):
        df(torch.arange(3), **kw)


def test_bad_hyperparameters():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="alpha"):
        A.elu(x, alpha=-1.0)
    with pytest.raises(ValueError, match="negative_slope"):
        A.leaky_relu(x, negative_slope=math.nan)
    with pytest.raises(ValueError, match="approximate"):
        A.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="beta"):
        A.softplus(x, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        A.silu_grad(x, beta=math.inf)
    with pytest.raises(ValueError, match="min_val"):
        A.hardtanh(x, min_val=1.0, max_val=-1.0)
    with pytest.raises(ValueError, match="even"):
        A.glu(torch.randn(4, 5))
    with pytest.raises(ValueError, match="dim"):
        A.swiglu(x, dim=5)
    with pytest.raises(ValueError, match="dim"):
        A.softmax(x, dim=2)
    with pytest.raises(TypeError, match="ndarray"):
        A.log_softmax(x.numpy())
    with pytest.raises(ValueError, match="weight"):
        A.prelu(x, torch.ones(5))
    with pytest.raises(TypeError, match="weight"):
        A.prelu_grad(x, 0.25)
    with pytest.raises(ValueError, match="int64"):
        A.logsumexp(torch.arange(4))
    with pytest.raises(ValueError, match="int64"):
        A.softmax_naive(torch.arange(4))


def test_train_classifier_reduces_loss_and_matches_a_manual_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    m1 = torch.nn.Linear(3, 2)
    m2 = torch.nn.Linear(3, 2)
    m2.load_state_dict(m1.state_dict())
    losses = A.train_classifier(m1, x, y, steps=20, lr=0.5)
    opt = torch.optim.SGD(m2.parameters(), lr=0.5)
    for _ in range(20):
        loss = F.cross_entropy(m2(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(m1.weight, m2.weight)
    assert losses[-1] < losses[0]
    seen = []
    yb = y.float()
    lb = A.train_classifier(torch.nn.Linear(3, 1), x, yb, steps=5, lr=0.1, optimizer="adam", batch_size=8,
                            generator=g, callback=lambda s, m: seen.append(s))
    assert seen == list(range(5)) and len(lb) == 5
    with pytest.raises(ValueError, match="rmsprop"):
        A.train_classifier(m1, x, y, steps=1, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps"):
        A.train_classifier(m1, x, y, steps=-1, lr=0.1)
    with pytest.raises(TypeError, match="model"):
        A.train_classifier(lambda t: t, x, y, steps=1, lr=0.1)
