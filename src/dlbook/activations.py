r"""Activation functions, each written beside its derivative.

The Activation functions chapter (``chapters/activations``) teaches these. Every function
``f(x)`` named like its ``torch.nn.functional`` counterpart (same keyword names and defaults)
has a derivative ``f_grad(x)`` $= f'(x)$, elementwise, so the chapter can plot and assert it.
Conventions that could differ: at a kink the derivative takes torch's value (``relu_grad(0) =
0``, ``leaky_relu_grad(0) = negative_slope``, ``hardtanh_grad`` is 0 at the end points), so
``f_grad`` equals what ``torch.autograd`` returns for the torch function.

Numerical care (each a named helper or a one-line why): ``sigmoid`` never exponentiates a
positive number; ``softplus`` is $\max(\beta x, 0) + \log(1 + e^{-|\beta x|})$; ``softmax``,
``log_softmax`` and ``logsumexp`` subtract the row maximum (re-exported from
:mod:`dlbook.losses`, where they are defined once); ``softmax_naive`` is the textbook formula,
kept to show how it overflows.

Where each is taught (labels in ``chapters/activations``): sigmoid, tanh in
``q-activations.sigmoid-derivative-saturation`` and ``q-activations.tanh-vs-sigmoid``; relu in
``q-activations.relu-properties``; leaky_relu, prelu, elu in ``q-activations.leaky-prelu-elu``;
gelu, silu in ``q-activations.gelu-silu-swish``; glu, swiglu in ``q-activations.glu-gated-units``;
softmax, log_softmax, logsumexp, softmax_naive in ``q-activations.softmax-overflow``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from dlbook import losses as _losses

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
    "leaky_relu", "leaky_relu_grad", "prelu", "prelu_grad", "elu", "elu_grad", "selu", "selu_grad",
    "gelu", "gelu_grad", "silu", "silu_grad", "softplus", "softplus_grad",
    "hardtanh", "hardtanh_grad", "hardsigmoid", "hardsigmoid_grad", "hardswish", "hardswish_grad",
    "glu", "swiglu", "softmax", "log_softmax", "logsumexp", "softmax_naive",
    "ACTIVATIONS", "get", "SELU_ALPHA", "SELU_SCALE", "train_classifier",
]

#: SELU's constants (Klambauer et al., 2017, eq. 14), as in torch.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check(x: object, name: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")


def _check_finite(**values: float) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")


def _abs(x: Tensor) -> Tensor:
    """|x| whose autograd slope at 0 is +1 (``torch.abs`` gives 0 there, which would zero a kink-free derivative)."""
    return torch.where(x >= 0, x, -x)


# -- sigmoid and tanh ---------------------------------------------------------------------
def sigmoid(input: Tensor) -> Tensor:
    r"""$\sigma(x) = 1/(1 + e^{-x})$, range $(0, 1)$.

    Stable form: with $e = e^{-|x|} \le 1$, $\sigma(x) = 1/(1+e)$ for $x \ge 0$ and $e/(1+e)$
    for $x < 0$; no exponent is ever positive, so nothing overflows (not even its gradient).
    """
    x = _check(input)
    e = torch.exp(-_abs(x))
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(input: Tensor) -> Tensor:
    r"""$\sigma'(x) = \sigma(x)(1 - \sigma(x)) \le 1/4$, the maximum at $x = 0$."""
    s = sigmoid(input)
    return s * (1 - s)


def tanh(input: Tensor) -> Tensor:
    r"""$\tanh(x) = 2\sigma(2x) - 1$, range $(-1, 1)$.

    Computed as $\operatorname{sign}(x)\,(1 - e^{-2|x|})/(1 + e^{-2|x|})$ with ``expm1`` (the
    form $2\sigma(2x) - 1$ loses relative precision near 0); tested equal to $2\sigma(2x) - 1$.
    """
    x = _check(input)
    pos = x.clamp(min=0)  # each branch sees only a non-negative argument: no overflow
    neg = (-x).clamp(min=0)
    t_pos = -torch.expm1(-2 * pos) / (1 + torch.exp(-2 * pos))
    t_neg = -torch.expm1(-2 * neg) / (1 + torch.exp(-2 * neg))
    return torch.where(x >= 0, t_pos, -t_neg)


def tanh_grad(input: Tensor) -> Tensor:
    r"""$\tanh'(x) = 1 - \tanh^2(x) \le 1$, the maximum at $x = 0$ (four times the sigmoid's)."""
    t = tanh(input)
    return 1 - t**2


# -- the ReLU family ----------------------------------------------------------------------
def relu(input: Tensor) -> Tensor:
    r"""$\mathrm{ReLU}(x) = \max(x, 0)$ (Nair & Hinton, 2010; Glorot et al., 2011)."""
    x = _check(input)
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_grad(input: Tensor) -> Tensor:
    r"""$\mathrm{ReLU}'(x) = [x > 0]$: exactly 1 or 0 (0 at $x = 0$, torch's choice)."""
    x = _check(input)
    return (x > 0).to(x.dtype)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""$x$ for $x > 0$, $a x$ otherwise, with the fixed slope $a$ = ``negative_slope`` (Maas et al., 2013)."""
    x = _check(input)
    _check_finite(negative_slope=negative_slope)
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""1 for $x > 0$, $a$ otherwise (including $x = 0$, as torch)."""
    x = _check(input)
    _check_finite(negative_slope=negative_slope)
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, negative_slope))


def _prelu_weight(x: Tensor, weight: Tensor) -> Tensor:
    """``weight`` of shape (1,) or (C,) with C = x.shape[1], viewed to broadcast over dim 1."""
    _check(weight, "weight")
    if weight.ndim != 1 or (weight.numel() != 1 and (x.ndim < 2 or weight.numel() != x.shape[1])):
        raise ValueError(f"weight must have shape (1,) or (C,) with C = input.shape[1], got {tuple(weight.shape)} for input {tuple(x.shape)}")
    if weight.numel() == 1:
        return weight.reshape(())
    return weight.reshape(-1, *([1] * (x.ndim - 2)))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    r"""PReLU (He et al., 2015): $x$ for $x > 0$, $a_c x$ otherwise, $a_c$ *learned* per channel (dim 1)."""
    x = _check(input)
    a = _prelu_weight(x, weight)
    return torch.where(x > 0, x, a * x)


def prelu_grad(input: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    r"""$(\partial y/\partial x, \partial y/\partial a)$ elementwise: $([x>0] + a[x\le 0],\ x[x \le 0])$.

    The slope's gradient is summed over the elements of its channel by the chain rule.
    """
    x = _check(input)
    a = _prelu_weight(x, weight)
    dx = torch.where(x > 0, torch.ones_like(x), a.expand_as(x))
    da = torch.where(x > 0, torch.zeros_like(x), x)
    return dx, da


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    r"""ELU (Clevert et al., 2016): $x$ for $x > 0$, $\alpha(e^x - 1)$ otherwise; tends to $-\alpha$."""
    x = _check(input)
    _check_positive(alpha=alpha)
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0)))


def elu_grad(input: Tensor, alpha: float = 1.0) -> Tensor:
    r"""1 for $x > 0$, $\alpha e^x$ otherwise."""
    x = _check(input)
    _check_positive(alpha=alpha)
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(x.clamp(max=0)))


def selu(input: Tensor) -> Tensor:
    r"""SELU (Klambauer et al., 2017): $\lambda\,\mathrm{ELU}_\alpha(x)$ with $\lambda \approx 1.0507$, $\alpha \approx 1.6733$."""
    return SELU_SCALE * elu(input, SELU_ALPHA)


def selu_grad(input: Tensor) -> Tensor:
    r"""$\lambda$ for $x > 0$, $\lambda\alpha e^x$ otherwise."""
    return SELU_SCALE * elu_grad(input, SELU_ALPHA)


# -- smooth gates: GELU, SiLU/Swish, softplus ----------------------------------------------
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_C = 0.044715


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def _normal_cdf(x: Tensor) -> Tensor:
    r"""$\Phi(x) = \tfrac12(1 + \operatorname{erf}(x/\sqrt2))$."""
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    r"""GELU (Hendrycks & Gimpel, 2016): $x\,\Phi(x)$, $\Phi$ the standard normal CDF.

    ``approximate="tanh"``: $\tfrac12 x\,(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715 x^3)))$ (their eq. 2).
    Reading: $x\,\Phi(x) = \mathbb E[x\,m]$ with the mask $m \sim \mathrm{Bernoulli}(\Phi(x))$.
    """
    x = _check(input)
    _check_approximate(approximate)
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + _GELU_C * x**3)
        return 0.5 * x * (1 + torch.tanh(u))
    return x * _normal_cdf(x)


def gelu_grad(input: Tensor, approximate: str = "none") -> Tensor:
    r"""$\Phi(x) + x\,\varphi(x)$; for the tanh form $\tfrac12(1+t) + \tfrac12 x (1 - t^2) u'$, $t = \tanh u$."""
    x = _check(input)
    _check_approximate(approximate)
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + _GELU_C * x**3)
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x**2)
        t = torch.tanh(u)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du
    phi = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return _normal_cdf(x) + x * phi


def silu(input: Tensor, beta: float = 1.0) -> Tensor:
    r"""SiLU / Swish (Elfwing et al., 2018; Ramachandran et al., 2017): $x\,\sigma(\beta x)$.

    ``beta=1`` is ``F.silu``; as $\beta \to \infty$ it tends to ReLU, at $\beta = 0$ it is $x/2$.
    """
    x = _check(input)
    _check_finite(beta=beta)
    return x * sigmoid(beta * x)


def silu_grad(input: Tensor, beta: float = 1.0) -> Tensor:
    r"""$\sigma(\beta x) + \beta x\,\sigma(\beta x)(1 - \sigma(\beta x))$."""
    x = _check(input)
    _check_finite(beta=beta)
    s = sigmoid(beta * x)
    return s + beta * x * s * (1 - s)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""$\tfrac1\beta\log(1 + e^{\beta x})$, and $x$ where $\beta x >$ ``threshold`` (as torch).

    Stable form: $\tfrac1\beta(\max(\beta x, 0) + \log(1 + e^{-|\beta x|}))$, no positive exponent.
    """
    x = _check(input)
    _check_positive(beta=beta)
    _check_finite(threshold=threshold)
    bx = beta * x
    smooth = (bx.clamp(min=0) + torch.log1p(torch.exp(-_abs(bx)))) / beta
    return torch.where(bx > threshold, x, smooth)


def softplus_grad(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""$\sigma(\beta x)$ (the sigmoid is softplus's derivative), and 1 above the threshold."""
    x = _check(input)
    _check_positive(beta=beta)
    _check_finite(threshold=threshold)
    return torch.where(beta * x > threshold, torch.ones_like(x), sigmoid(beta * x))


# -- hard (piecewise-linear) variants -----------------------------------------------------
def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    r"""$\min(\max(x, a), b)$ with $a$ = ``min_val``, $b$ = ``max_val``."""
    x = _check(input)
    _check_finite(min_val=min_val, max_val=max_val)
    if min_val >= max_val:
        raise ValueError(f"min_val must be below max_val, got min_val={min_val}, max_val={max_val}")
    return torch.where(x <= min_val, torch.full_like(x, min_val), torch.where(x >= max_val, torch.full_like(x, max_val), x))


def hardtanh_grad(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    r"""$[a < x < b]$: 1 strictly inside, 0 on the flat parts and at the kinks (as torch)."""
    x = _check(input)
    _check_finite(min_val=min_val, max_val=max_val)
    return ((x > min_val) & (x < max_val)).to(x.dtype)


def hardsigmoid(input: Tensor) -> Tensor:
    r"""$\min(\max(x + 3, 0), 6)/6$: a piecewise-linear sigmoid (torch's; MobileNetV3)."""
    x = _check(input)
    return hardtanh(x + 3, 0.0, 6.0) / 6


def hardsigmoid_grad(input: Tensor) -> Tensor:
    r"""$1/6$ on $(-3, 3)$, 0 elsewhere."""
    x = _check(input)
    return ((x > -3) & (x < 3)).to(x.dtype) / 6


def hardswish(input: Tensor) -> Tensor:
    r"""$x\,\min(\max(x+3, 0), 6)/6$ (Howard et al., 2019, MobileNetV3): a piecewise Swish."""
    x = _check(input)
    inner = x * (x + 3) / 6
    return torch.where(x <= -3, torch.zeros_like(x), torch.where(x >= 3, x, inner))


def hardswish_grad(input: Tensor) -> Tensor:
    r"""0 for $x \le -3$, $x/3 + 1/2$ on $(-3, 3)$, 1 for $x \ge 3$ (torch's values at the kinks)."""
    x = _check(input)
    return torch.where(x <= -3, torch.zeros_like(x), torch.where(x < 3, x / 3 + 0.5, torch.ones_like(x)))


# -- gated units ----------------------------------------------------------------------------
def _halves(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    if isinstance(dim, bool) or not isinstance(dim, int) or not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"dim must be an int in [{-x.ndim}, {x.ndim}), got {dim!r}")
    if x.shape[dim] % 2:
        raise ValueError(f"the size of dim {dim} must be even, got {x.shape[dim]}")
    a, b = x.chunk(2, dim=dim)
    return a, b


def glu(input: Tensor, dim: int = -1) -> Tensor:
    r"""GLU (Dauphin et al., 2017): split $t = [a, b]$ along ``dim``, return $a \odot \sigma(b)$.

    With $a = xW + c$ and $b = xV + d$ this is $(xW + c) \odot \sigma(xV + d)$; equals ``F.glu``.
    """
    x = _check(input)
    a, b = _halves(x, dim)
    return a * sigmoid(b)


def swiglu(input: Tensor, dim: int = -1) -> Tensor:
    r"""SwiGLU (Shazeer, 2020): split $t = [a, b]$, return $a \odot \mathrm{SiLU}(b)$.

    The gate is the second half, as in ``F.glu``; Shazeer writes $\mathrm{Swish}(xW) \odot xV$,
    the same function with the halves swapped.
    """
    x = _check(input)
    a, b = _halves(x, dim)
    return a * silu(b)


# -- softmax --------------------------------------------------------------------------------
def _check_dim(x: Tensor, dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"dim must be an int in [{-x.ndim}, {x.ndim}), got {dim!r}")


def _shifted(z: Tensor, dim: int) -> Tensor:
    """$z - \\max_j z_j$ along ``dim`` (the max detached: its gradient cancels exactly); every entry <= 0."""
    m = z.amax(dim=dim, keepdim=True).detach()
    return z - torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def logsumexp(input: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""$\log\sum_j e^{z_j} = m + \log\sum_j e^{z_j - m}$, $m = \max_j z_j$ (as :func:`dlbook.losses.logsumexp`).

    Why: after the shift no exponent is positive, so nothing overflows, and the largest term is
    exactly 1, so the sum cannot underflow to 0.
    """
    z = _check(input)
    _check_dim(z, dim)
    return _losses.logsumexp(z, dim=dim, keepdim=keepdim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$\log\mathrm{softmax}(z)_k = (z_k - m) - \log\sum_j e^{z_j - m}$: finite for any finite logits."""
    z = _check(input)
    _check_dim(z, dim)
    s = _shifted(z, dim)
    return s - torch.log(torch.exp(s).sum(dim=dim, keepdim=True))


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$e^{z_k - m}/\sum_j e^{z_j - m}$ with $m = \max_j z_j$: the factor $e^{-m}$ cancels, so this *is* the formula."""
    z = _check(input)
    _check_dim(z, dim)
    e = torch.exp(_shifted(z, dim))
    return e / e.sum(dim=dim, keepdim=True)


def softmax_naive(input: Tensor, dim: int = -1) -> Tensor:
    r"""$e^{z_k}/\sum_j e^{z_j}$ exactly as written: overflows (inf/inf = nan) for large logits.

    Only for showing the failure; use :func:`softmax`, which subtracts $\max_j z_j$ first.
    """
    z = _check(input)
    e = torch.exp(z)
    return e / e.sum(dim=dim, keepdim=True)


# -- registry (for explorers and loops over activations) -----------------------------------
#: name -> (function, derivative), each a one-argument callable with default hyperparameters.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "selu": (selu, selu_grad),
    "gelu": (gelu, gelu_grad),
    "silu": (silu, silu_grad),
    "softplus": (softplus, softplus_grad),
    "hardtanh": (hardtanh, hardtanh_grad),
    "hardsigmoid": (hardsigmoid, hardsigmoid_grad),
    "hardswish": (hardswish, hardswish_grad),
}


def get(name: str) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """``(f, f_grad)`` for an activation's name (a key of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# -- a small training loop (the chapters' experiments; dlbook.train did not exist yet) --------
def train_classifier(
    model: torch.nn.Module, input: Tensor, target: Tensor, *, steps: int, lr: float, optimizer: str = "sgd",
    batch_size: int | None = None, generator: torch.Generator | None = None,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
) -> list[float]:
    r"""Minimize cross-entropy (``target`` integer classes) or BCE-with-logits (``target`` float,
    same shape as the output) with plain SGD or Adam; return the loss of every step.

    Mini-batches of ``batch_size`` are drawn with replacement from ``generator`` (full batch if
    None). ``callback(step, model)`` runs after each step (for measurements during training).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check(input)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    _check_positive(lr=lr)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        if batch_size is None:
            x, y = input, target
        else:
            idx = torch.randint(len(input), (batch_size,), generator=generator)
            x, y = input[idx], target[idx]
        out = model(x)
        if y.is_floating_point():
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(y.shape), y)
        else:
            loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if callback is not None:
            callback(step, model)
    return losses
