"""dlbook.funcs: analytic gradients against autograd, known minima, numpy/torch agreement."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import funcs as F

NAMES = list(F.FUNCTIONS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2,), (5, 2), (3, 4, 2)])
def test_gradient_matches_autograd(name, shape):
    fn = F.FUNCTIONS[name]
    (x0, x1), (y0, y1) = fn.domain
    u = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xy = (torch.tensor([x0, y0], dtype=torch.float64) + u * torch.tensor([x1 - x0, y1 - y0], dtype=torch.float64)).requires_grad_(True)
    (auto,) = torch.autograd.grad(fn.f(xy).sum(), xy)
    torch.testing.assert_close(fn.grad(xy.detach()), auto)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    xy = torch.tensor([[0.3, -0.7], [1.1, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(F.FUNCTIONS[name].f, (xy,))


@pytest.mark.parametrize("name", NAMES)
def test_minima_are_stationary_with_the_stated_value(name):
    fn = F.FUNCTIONS[name]
    mins = torch.tensor(fn.minima, dtype=torch.float64)
    torch.testing.assert_close(fn.f(mins), torch.full((len(mins),), fn.fmin, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(fn.grad(mins), torch.zeros_like(mins), atol=1e-4, rtol=0)  # Himmelblau's are given to 6 digits
    _, _, z = F.mesh(fn, n=201)
    assert z.min() >= fn.fmin - 1e-12  # no grid point beats the known minimum


def test_saddle_hessian_is_indefinite_at_origin():
    h = torch.autograd.functional.hessian(lambda v: F.saddle(v), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([-1.0, 1.0], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.floats(1.0, 1e3), st.floats(-3.2, 3.2))
def test_quadratic_eigenvalues_are_1_and_kappa(kappa, angle):
    h = torch.autograd.functional.hessian(lambda v: F.quadratic(v, kappa=kappa, angle=angle), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(h), torch.tensor([1.0, kappa], dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-4, 4), min_size=2, max_size=2))
def test_numpy_equals_torch(point):
    for fn in F.FUNCTIONS.values():
        a = np.array(point)
        np.testing.assert_allclose(fn.f(a), fn.f(torch.tensor(point, dtype=torch.float64)).numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fn.grad(a), fn.grad(torch.tensor(point, dtype=torch.float64)).numpy(), rtol=1e-12, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="xy"):
        F.rosenbrock(np.zeros(3))
    with pytest.raises(TypeError, match="xy"):
        F.beale([1.0, 2.0])
    with pytest.raises(ValueError, match="kappa"):
        F.quadratic(np.zeros(2), kappa=0.5)
    with pytest.raises(ValueError, match="n"):
        F.mesh(F.FUNCTIONS["beale"], n=1)
