"""Two-dimensional test functions for optimizers, with analytic gradients and known minima.

Taught in the chapter "Optimization algorithms" (``chapters/optimizers``). Every function
takes points ``xy`` of shape ``(..., 2)`` (a NumPy array or a torch tensor: many starting
points at once) and returns values of shape ``(...)``; its ``*_grad`` returns ``(..., 2)``.
:data:`FUNCTIONS` collects them with a plotting domain, a default start and their minima.

References: Rosenbrock (1960); Beale (1958); Himmelblau (1972); Rastrigin (1974), as
collected in Jamil & Yang, "A literature survey of benchmark functions" (2013).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "FUNCTIONS",
    "TestFunction",
    "beale",
    "beale_grad",
    "himmelblau",
    "himmelblau_grad",
    "mesh",
    "quadratic",
    "quadratic_grad",
    "rastrigin",
    "rastrigin_grad",
    "rosenbrock",
    "rosenbrock_grad",
    "saddle",
    "saddle_grad",
]


def _xy(xy: Any) -> tuple[Any, Any]:
    if not isinstance(xy, (np.ndarray, torch.Tensor)):
        raise TypeError(f"xy must be a numpy array or torch tensor, got {type(xy).__name__}")
    if xy.shape[-1:] != (2,):
        raise ValueError(f"xy must have shape (..., 2), got {tuple(xy.shape)}")
    return xy[..., 0], xy[..., 1]


def _stack(gx: Any, gy: Any) -> Any:
    return torch.stack([gx, gy], -1) if isinstance(gx, torch.Tensor) else np.stack([gx, gy], -1)


def _trig(x: Any) -> Any:
    return torch if isinstance(x, torch.Tensor) else np


def rosenbrock(xy: Any, *, a: float = 1.0, b: float = 100.0) -> Any:
    """:math:`f = (a - x)^2 + b (y - x^2)^2`; minimum 0 at :math:`(a, a^2)`, in a curved valley."""
    x, y = _xy(xy)
    return (a - x) ** 2 + b * (y - x**2) ** 2


def rosenbrock_grad(xy: Any, *, a: float = 1.0, b: float = 100.0) -> Any:
    """:math:`\\nabla f = (-2(a-x) - 4 b x (y - x^2),\\; 2 b (y - x^2))`."""
    x, y = _xy(xy)
    return _stack(-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2))


def beale(xy: Any) -> Any:
    """:math:`f = \\sum_{i=1}^3 (c_i - x + x y^i)^2`, ``c = (1.5, 2.25, 2.625)``; minimum 0 at (3, 0.5)."""
    x, y = _xy(xy)
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale_grad(xy: Any) -> Any:
    """:math:`\\partial_x f = \\sum 2 r_i (y^i - 1)`, :math:`\\partial_y f = \\sum 2 r_i\\, i x y^{i-1}`, :math:`r_i = c_i - x + x y^i`."""
    x, y = _xy(xy)
    r1, r2, r3 = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    gx = 2 * r1 * (y - 1) + 2 * r2 * (y**2 - 1) + 2 * r3 * (y**3 - 1)
    gy = 2 * r1 * x + 2 * r2 * 2 * x * y + 2 * r3 * 3 * x * y**2
    return _stack(gx, gy)


def himmelblau(xy: Any) -> Any:
    """:math:`f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2`; four minima with f = 0 (see :data:`FUNCTIONS`)."""
    x, y = _xy(xy)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def himmelblau_grad(xy: Any) -> Any:
    """:math:`\\nabla f = (4x p + 2q,\\; 2p + 4y q)`, :math:`p = x^2 + y - 11`, :math:`q = x + y^2 - 7`."""
    x, y = _xy(xy)
    p, q = x**2 + y - 11, x + y**2 - 7
    return _stack(4 * x * p + 2 * q, 2 * p + 4 * y * q)


def saddle(xy: Any) -> Any:
    """:math:`f = x^2/2 - y^2/2 + y^4/4`: a strict saddle at 0, minima f = -1/4 at (0, +-1)."""
    x, y = _xy(xy)
    return x**2 / 2 - y**2 / 2 + y**4 / 4


def saddle_grad(xy: Any) -> Any:
    """:math:`\\nabla f = (x,\\; -y + y^3)`; the Hessian at 0 is diag(1, -1)."""
    x, y = _xy(xy)
    return _stack(x, -y + y**3)


def _rotate(xy: Any, angle: float) -> tuple[Any, Any]:
    x, y = _xy(xy)
    c, s = math.cos(angle), math.sin(angle)
    return c * x + s * y, -s * x + c * y  # coordinates along the eigenvectors


def quadratic(xy: Any, *, kappa: float = 10.0, angle: float = 0.0) -> Any:
    """:math:`f = \\tfrac12 (u^2 + \\kappa w^2)`, ``(u, w)`` = ``xy`` rotated by ``-angle``.

    Hessian eigenvalues 1 and ``kappa`` (the condition number); minimum 0 at the origin.
    """
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    u, w = _rotate(xy, angle)
    return (u**2 + kappa * w**2) / 2


def quadratic_grad(xy: Any, *, kappa: float = 10.0, angle: float = 0.0) -> Any:
    """:math:`\\nabla f = R\\,\\mathrm{diag}(1, \\kappa)\\,R^\\top (x, y)`."""
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    u, w = _rotate(xy, angle)
    c, s = math.cos(angle), math.sin(angle)
    return _stack(c * u - s * kappa * w, s * u + c * kappa * w)


def rastrigin(xy: Any, *, A: float = 10.0) -> Any:
    """:math:`f = 2A + \\sum_i (x_i^2 - A\\cos 2\\pi x_i)`; global minimum 0 at 0, many local minima."""
    x, y = _xy(xy)
    cos = _trig(x).cos
    return 2 * A + x**2 - A * cos(2 * math.pi * x) + y**2 - A * cos(2 * math.pi * y)


def rastrigin_grad(xy: Any, *, A: float = 10.0) -> Any:
    """:math:`\\partial_i f = 2 x_i + 2\\pi A \\sin 2\\pi x_i`."""
    x, y = _xy(xy)
    sin = _trig(x).sin
    return _stack(2 * x + 2 * math.pi * A * sin(2 * math.pi * x), 2 * y + 2 * math.pi * A * sin(2 * math.pi * y))


@dataclass(frozen=True)
class TestFunction:
    """A test function with its gradient, a plotting domain, a default start and its minima."""

    name: str
    f: Callable[[Any], Any]
    grad: Callable[[Any], Any]
    domain: tuple[tuple[float, float], tuple[float, float]]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    fmin: float


def _rot_quad(fn: Callable[..., Any]) -> Callable[[Any], Any]:
    return lambda xy: fn(xy, kappa=20.0, angle=math.pi / 6)


#: The registry used by the chapter's explorer (ill-conditioned quadratic: kappa 20, rotated 30 degrees).
FUNCTIONS: dict[str, TestFunction] = {
    "rosenbrock": TestFunction("rosenbrock", rosenbrock, rosenbrock_grad, ((-2.0, 2.0), (-1.0, 3.0)), (-1.5, 2.5), ((1.0, 1.0),), 0.0),
    "beale": TestFunction("beale", beale, beale_grad, ((-4.5, 4.5), (-4.5, 4.5)), (1.0, 1.5), ((3.0, 0.5),), 0.0),
    "himmelblau": TestFunction(
        "himmelblau", himmelblau, himmelblau_grad, ((-5.0, 5.0), (-5.0, 5.0)), (0.0, -0.5),
        ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)), 0.0,
    ),
    "saddle": TestFunction("saddle", saddle, saddle_grad, ((-2.0, 2.0), (-2.0, 2.0)), (1.5, 1e-3), ((0.0, 1.0), (0.0, -1.0)), -0.25),
    "quadratic": TestFunction(
        "quadratic", _rot_quad(quadratic), _rot_quad(quadratic_grad), ((-2.0, 2.0), (-2.0, 2.0)), (-1.5, 1.5), ((0.0, 0.0),), 0.0
    ),
    "rastrigin": TestFunction("rastrigin", rastrigin, rastrigin_grad, ((-5.12, 5.12), (-5.12, 5.12)), (3.2, 3.9), ((0.0, 0.0),), 0.0),
}


def mesh(fn: TestFunction, *, n: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, z)`` on an ``n x n`` grid over ``fn.domain``; ``z.shape == (n, n)`` (rows are y)."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    (x0, x1), (y0, y1) = fn.domain
    x, y = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    xy = np.stack(np.meshgrid(x, y), -1)  # (n, n, 2)
    return x, y, fn.f(xy)
