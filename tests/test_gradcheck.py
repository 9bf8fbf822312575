"""Tests for dlbook.gradcheck against torch.autograd and analytic derivatives."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import gradcheck as gc


def f_smooth(x):
    return (torch.sin(x) * x.square()).sum() + x.prod()


@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4), (2, 2, 3)])
def test_numerical_gradient_matches_autograd(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f_smooth(x), x)
    num = gc.numerical_gradient(f_smooth, x)
    torch.testing.assert_close(num, g, rtol=1e-7, atol=1e-8)
    assert gc.relative_error(g, num) < 1e-8
    assert num.shape == x.shape and not num.requires_grad


def test_gradient_check_passes_and_catches_bug():
    x = torch.randn(6, dtype=torch.float64)
    report = gc.gradient_check(f_smooth, x)
    assert report and report.relative_error < 1e-8
    # A gradient missing a factor of 2 must fail.
    f = lambda x: x.square().sum()
    assert not gc.gradient_check(f, x, grad=x.clone())
    assert gc.gradient_check(f, x, grad=2 * x)


def test_forward_vs_central_orders():
    x = torch.tensor([0.7], dtype=torch.float64)
    f = lambda x: torch.exp(x).sum()
    exact = math.exp(0.7)
    err = {}
    for method in ("forward", "central"):
        err[method] = [abs(float(gc.numerical_gradient(f, x, eps=h, method=method)) - exact) for h in (1e-2, 1e-3)]
    assert 8 < err["forward"][0] / err["forward"][1] < 12  # O(eps)
    assert 80 < err["central"][0] / err["central"][1] < 120  # O(eps^2)


def test_float32_much_worse_than_float64():
    torch.manual_seed(1)
    x = torch.randn(10, dtype=torch.float64)
    f = lambda x: (torch.tanh(x) * x).sum()
    e64 = gc.gradient_check(f, x).relative_error
    e32 = gc.gradient_check(f, x.float(), eps=1e-3).relative_error
    assert e32 > 1e3 * e64


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=6), st.lists(st.floats(-10, 10), min_size=1, max_size=6))
def test_relative_error_properties(a, b):
    n = min(len(a), len(b))
    ta, tb = torch.tensor(a[:n], dtype=torch.float64), torch.tensor(b[:n], dtype=torch.float64)
    r = gc.relative_error(ta, tb)
    assert 0 <= r <= 1 + 1e-12
    assert r == pytest.approx(gc.relative_error(tb, ta))
    assert gc.relative_error(ta, ta) == 0
    assert gc.relative_error(3 * ta, 3 * tb) == pytest.approx(r, abs=1e-12) or float(ta.norm() + tb.norm()) < 1e-11


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=1, max_size=5))
def test_quadratic_central_difference_exact(values):
    # Central differences are exact (up to rounding) on quadratics: the third derivative is 0.
    x = torch.tensor(values, dtype=torch.float64)
    a = torch.arange(1, len(values) + 1, dtype=torch.float64)
    f = lambda x: (a * x.square()).sum() + x.sum()
    torch.testing.assert_close(gc.numerical_gradient(f, x, eps=1e-3), 2 * a * x + 1, rtol=1e-7, atol=1e-7)


def test_error_paths():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="func"):
        gc.numerical_gradient(3, x)
    with pytest.raises(TypeError, match="input"):
        gc.numerical_gradient(torch.sum, torch.arange(3))
    with pytest.raises(ValueError, match="method"):
        gc.numerical_gradient(torch.sum, x, method="backward")
    with pytest.raises(ValueError, match="eps"):
        gc.numerical_gradient(torch.sum, x, eps=0.0)
    with pytest.raises(ValueError, match="scalar"):
        gc.numerical_gradient(lambda x: x * 2, x)
    with pytest.raises(ValueError, match="shape"):
        gc.relative_error(x, x[:2])
    with pytest.raises(ValueError, match="grad"):
        gc.gradient_check(torch.sum, x, grad=x[:2])
