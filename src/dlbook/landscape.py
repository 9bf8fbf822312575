"""Loss landscapes of real networks: filter-normalised directions, lines, planes, projections.

Taught in the chapter "Optimization algorithms" (``chapters/optimizers``), following Li, Xu,
Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets" (NeurIPS 2018).

Parameters are handled as a ``dict`` name -> tensor (``dict(model.named_parameters())``,
detached), and a loss as a function ``loss_fn(params) -> scalar tensor``, typically
``lambda p: F.cross_entropy(torch.func.functional_call(model, p, (X,)), y)``. No function
modifies a model or its parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "filter_normalized_direction",
    "interpolate",
    "loss_line",
    "loss_surface",
    "project",
    "top_hessian_eigenvalue",
]

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params], torch.Tensor]


def _check_like(a: Params, b: Params, name: str) -> None:
    if a.keys() != b.keys():
        raise ValueError(f"{name} has keys {sorted(b)} but params has {sorted(a)}")
    for k in a:
        if a[k].shape != b[k].shape:
            raise ValueError(f"{name}[{k!r}] has shape {tuple(b[k].shape)} but params[{k!r}] has {tuple(a[k].shape)}")


def filter_normalized_direction(params: Params, *, generator: torch.Generator | None = None) -> Params:
    """A random direction with each filter rescaled to the norm of the matching weight filter.

    For a weight ``W`` with ``dim >= 2`` draw ``D ~ N(0, I)`` of the same shape and, for every
    filter ``i`` (output row of a ``Linear``, output channel of a ``Conv``):

    .. math:: D_i \\leftarrow \\frac{D_i}{\\lVert D_i \\rVert} \\lVert W_i \\rVert

    Biases and normalisation parameters (``dim <= 1``) get a zero direction (Li et al. 2018,
    sec. 4). This removes the scale invariance that makes un-normalised plots misleading.
    """
    direction = {}
    for name, w in params.items():
        if w.dim() <= 1:
            direction[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)  # (filters,)
        w_norm = w.detach().flatten(1).norm(dim=1)  # (filters,)
        shape = (-1,) + (1,) * (w.dim() - 1)
        direction[name] = d / d_norm.view(shape) * w_norm.view(shape)
    return direction


def interpolate(params: Params, direction1: Params, alpha: float, direction2: Params | None = None, beta: float = 0.0) -> Params:
    """The point ``theta + alpha * d1 + beta * d2`` (one dict)."""
    _check_like(params, direction1, "direction1")
    if direction2 is None:
        return {k: params[k] + alpha * direction1[k] for k in params}
    _check_like(params, direction2, "direction2")
    return {k: params[k] + alpha * direction1[k] + beta * direction2[k] for k in params}


@torch.no_grad()
def loss_line(loss_fn: LossFn, params_a: Params, params_b: Params, alphas: Sequence[float]) -> np.ndarray:
    """Loss along the segment ``(1 - a) theta_a + a theta_b`` (Goodfellow et al. 2015) for each ``a``."""
    _check_like(params_a, params_b, "params_b")
    delta = {k: params_b[k] - params_a[k] for k in params_a}
    return np.array([float(loss_fn(interpolate(params_a, delta, float(a)))) for a in alphas])


@torch.no_grad()
def loss_surface(
    loss_fn: LossFn, params: Params, direction1: Params, direction2: Params, alphas: Sequence[float], betas: Sequence[float]
) -> np.ndarray:
    """Loss on the plane ``theta + a d1 + b d2``; returns shape ``(len(betas), len(alphas))`` (rows are b)."""
    surface = np.empty((len(betas), len(alphas)))
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            surface[i, j] = float(loss_fn(interpolate(params, direction1, float(a), direction2, float(b))))
    return surface


def _flat(p: Params) -> torch.Tensor:
    return torch.cat([v.detach().reshape(-1) for v in p.values()])


def project(trajectory: Sequence[Params], params: Params, direction1: Params, direction2: Params) -> np.ndarray:
    """Coordinates ``(a, b)`` of each ``theta_t - theta`` in the plane of ``d1, d2``; shape ``(T, 2)``.

    Least squares: ``min ||a d1 + b d2 - (theta_t - theta)||``, which is the orthogonal
    projection even when the two directions are not orthogonal.
    """
    for i, p in enumerate(trajectory):
        _check_like(params, p, f"trajectory[{i}]")
    basis = torch.stack([_flat(direction1), _flat(direction2)], 1)  # (n, 2)
    deltas = torch.stack([_flat(p) - _flat(params) for p in trajectory], 1)  # (n, T)
    coords = torch.linalg.lstsq(basis.double(), deltas.double()).solution  # (2, T)
    return coords.T.numpy()


def top_hessian_eigenvalue(
    loss_fn: LossFn, params: Params, *, iters: int = 50, generator: torch.Generator | None = None
) -> float:
    """Largest Hessian eigenvalue by power iteration on Hessian-vector products (a sharpness number).

    Each product is a double backward (Pearlmutter 1994): ``H v = d/dtheta (g . v)``; the
    Hessian is never formed. Assumes the top eigenvalue is the largest in magnitude, as it is
    near a minimum.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    grads = torch.autograd.grad(loss_fn(theta), list(theta.values()), create_graph=True)
    v = [torch.randn(g.shape, generator=generator, dtype=g.dtype) for g in grads]
    eig = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        hv = torch.autograd.grad(grads, list(theta.values()), grad_outputs=v, retain_graph=True)
        eig = float(sum((a * b).sum() for a, b in zip(hv, v)))  # Rayleigh quotient v.Hv
        v = [h.detach() for h in hv]
    return eig
