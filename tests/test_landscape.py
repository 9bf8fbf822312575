"""dlbook.landscape: filter normalisation, lines, planes, projections, Hessian eigenvalue."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from dlbook import landscape as L


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    X = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    params = {k: v.detach() for k, v in model.named_parameters()}
    loss_fn = lambda p: nn.functional.cross_entropy(functional_call(model, p, (X,)), y)  # noqa: E731
    return params, loss_fn


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_filter_norms_match_weights_and_biases_are_zero(seed):
    params, _ = _setup()
    d = L.filter_normalized_direction(params, generator=torch.Generator().manual_seed(seed))
    for k, w in params.items():
        if w.dim() <= 1:
            assert torch.count_nonzero(d[k]) == 0
        else:
            torch.testing.assert_close(d[k].norm(dim=1), w.norm(dim=1))


def test_surface_and_line_agree_with_direct_evaluation():
    params, loss_fn = _setup()
    g = torch.Generator().manual_seed(1)
    d1, d2 = L.filter_normalized_direction(params, generator=g), L.filter_normalized_direction(params, generator=g)
    alphas, betas = [-1.0, 0.0, 0.5], [-0.5, 0.25]
    z = L.loss_surface(loss_fn, params, d1, d2, alphas, betas)
    assert z.shape == (2, 3)
    direct = loss_fn({k: params[k] + 0.5 * d1[k] - 0.5 * d2[k] for k in params})
    assert z[0, 2] == pytest.approx(float(direct), rel=1e-12)
    assert z[1, 1] == pytest.approx(float(loss_fn({k: params[k] + 0.25 * d2[k] for k in params})), rel=1e-12)
    other = {k: v + d1[k] for k, v in params.items()}
    line = L.loss_line(loss_fn, params, other, [0.0, 1.0])
    np.testing.assert_allclose(line, [float(loss_fn(params)), float(loss_fn(other))])


def test_project_recovers_coordinates():
    params, _ = _setup()
    g = torch.Generator().manual_seed(2)
    d1, d2 = L.filter_normalized_direction(params, generator=g), L.filter_normalized_direction(params, generator=g)
    coords = np.array([[0.0, 0.0], [0.3, -1.2], [2.0, 0.5]])
    traj = [L.interpolate(params, d1, a, d2, b) for a, b in coords]
    np.testing.assert_allclose(L.project(traj, params, d1, d2), coords, atol=1e-10)


def test_top_eigenvalue_matches_dense_hessian():
    params, loss_fn = _setup()
    names = list(params)
    sizes = [params[k].numel() for k in names]
    flat0 = torch.cat([params[k].reshape(-1) for k in names])

    def flat_loss(v):
        parts = torch.split(v, sizes)
        return loss_fn({k: p.view(params[k].shape) for k, p in zip(names, parts)})

    h = torch.autograd.functional.hessian(flat_loss, flat0)
    eig = torch.linalg.eigvalsh(h)
    top = eig[eig.abs().argmax()].item()
    est = L.top_hessian_eigenvalue(loss_fn, params, iters=300, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(top, rel=1e-3)


def test_bad_input():
    params, loss_fn = _setup()
    d = L.filter_normalized_direction(params)
    bad = dict(d)
    bad.pop(next(iter(bad)))
    with pytest.raises(ValueError, match="direction1"):
        L.interpolate(params, bad, 1.0)
    with pytest.raises(ValueError, match="iters"):
        L.top_hessian_eigenvalue(loss_fn, params, iters=0)
    with pytest.raises(ValueError, match="trajectory"):
        L.project([bad], params, d, d)
