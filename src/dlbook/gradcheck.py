"""Gradient checking: compare an analytic gradient with finite differences.

Taught in the Foundations chapter, section q-foundations.gradient-checking.

Forward difference ``(f(x + eps e_i) - f(x)) / eps`` has truncation error ``O(eps)``; central
difference ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` has ``O(eps^2)`` because the
even Taylor terms cancel. Rounding adds about ``u |f| / eps`` (``u`` the unit roundoff:
1.1e-16 in float64, 6e-8 in float32), so float32 checks are far noisier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["numerical_gradient", "relative_error", "GradCheckReport", "gradient_check"]

_METHODS = ("central", "forward")


def numerical_gradient(
    func: Callable[[Tensor], Tensor], input: Tensor, *, eps: float = 1e-6, method: str = "central"
) -> Tensor:
    """Finite-difference gradient of a scalar ``func`` at ``input`` (same shape as ``input``).

    ``method="central"``: ``g_i = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``, error O(eps^2).
    ``method="forward"``: ``g_i = (f(x + eps e_i) - f(x)) / eps``, error O(eps).
    Costs 2n (central) or n + 1 (forward) evaluations for n = input.numel(). Runs under no_grad.
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if not isinstance(input, Tensor) or not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {getattr(input, 'dtype', type(input))}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    x = input.detach().clone().reshape(-1)
    grad = torch.zeros_like(x)
    with torch.no_grad():
        f0 = _scalar(func, x.reshape(input.shape)) if method == "forward" else None
        for i in range(x.numel()):
            step = torch.zeros_like(x)
            step[i] = eps
            f_plus = _scalar(func, (x + step).reshape(input.shape))
            if method == "central":
                grad[i] = (f_plus - _scalar(func, (x - step).reshape(input.shape))) / (2 * eps)
            else:
                grad[i] = (f_plus - f0) / eps
    return grad.reshape(input.shape)


def _scalar(func: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    out = func(x)
    if not isinstance(out, Tensor) or out.numel() != 1:
        raise ValueError(f"func must return a scalar tensor (one element), got {getattr(out, 'shape', out)}")
    return out.reshape(())


def relative_error(actual: Tensor, expected: Tensor, *, eps: float = 1e-12) -> float:
    """``||a - b|| / max(||a|| + ||b||, eps)`` (Euclidean norms over all entries).

    Scale-free, in [0, 1]; ``eps`` only guards 0/0 when both gradients are zero.
    Rule of thumb (CS231n): below 1e-7 in float64 is right; above 1e-4 is usually a bug.
    """
    if actual.shape != expected.shape:
        raise ValueError(f"actual has shape {tuple(actual.shape)} but expected has shape {tuple(expected.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    diff = torch.linalg.vector_norm(actual - expected)
    scale = torch.linalg.vector_norm(actual) + torch.linalg.vector_norm(expected)
    return float(diff / torch.clamp(scale, min=eps))


class GradCheckReport(NamedTuple):
    """Result of :func:`gradient_check`; truthy when ``passed``."""

    relative_error: float
    max_abs_error: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed


def gradient_check(
    func: Callable[[Tensor], Tensor],
    input: Tensor,
    grad: Tensor | None = None,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-7,
) -> GradCheckReport:
    """Compare ``grad`` (default: autograd's) with central differences at ``input``.

    Passes when :func:`relative_error` is below ``rtol``. Use float64: in float32 the rounding
    error ``u |f| / eps`` swamps the comparison (see the module docstring).
    """
    if grad is None:
        x = input.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_scalar(func, x), x)
    if grad.shape != input.shape:
        raise ValueError(f"grad must have the input's shape {tuple(input.shape)}, got {tuple(grad.shape)}")
    numeric = numerical_gradient(func, input, eps=eps, method="central")
    rel = relative_error(grad.detach(), numeric)
    max_abs = float((grad.detach() - numeric).abs().max())
    return GradCheckReport(rel, max_abs, rel < rtol)
