r"""Parameter initialization: the schemes, and the deep-stack measurements that motivate them.

The Parameter initialization chapter (``chapters/init``) teaches these. Each scheme returns a
*new* tensor of the given ``shape`` drawn from an explicit ``generator`` (no hidden global
state); the name is torch's without the trailing underscore (``xavier_uniform`` for
``torch.nn.init.xavier_uniform_``), with torch's keywords and defaults.

Conventions, as torch: a weight has shape ``(fan_out, fan_in, *kernel)``; fan_in =
``shape[1] * prod(kernel)``, fan_out = ``shape[0] * prod(kernel)``. A layer computes
$z = W h$ (``h @ W.T`` in code). Variances are of the distribution, not of a sample.

Measurements: :func:`mlp_weights` builds the weight matrices of a deep bias-free MLP under a
named scheme, and :func:`signal_stats` runs one forward and backward pass (loss = the sum of
the outputs) and returns per-layer activation statistics and gradient norms.

Where each is taught (labels in ``chapters/init``): the variance formula in
``q-init.variance-propagation``; xavier_* in ``q-init.xavier-glorot``; kaiming_* and
calculate_gain in ``q-init.he-kaiming``; orthogonal in ``q-init.orthogonal-init``; lsuv and
signal_stats in ``q-init.bad-init-vanishing-exploding``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "calculate_gain", "fan_in_and_fan_out", "uniform", "normal", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "lsuv", "mlp_weights", "signal_stats", "SCHEMES",
]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")


def _check_number(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The gain $g$ with $\mathrm{Var}(W) = g^2 / \text{fan}$ that keeps the signal's scale through ``nonlinearity``.

    As ``torch.nn.init.calculate_gain``: 1 for linear/conv layers and the sigmoid, $5/3$ for
    tanh, $\sqrt 2$ for ReLU (He et al., 2015: $\mathbb E[\mathrm{ReLU}(z)^2] = \mathrm{Var}(z)/2$),
    $\sqrt{2/(1 + a^2)}$ for Leaky ReLU with slope $a$ (default 0.01), $3/4$ for SELU.
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity must be a str, got {type(nonlinearity).__name__}")
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else _check_number("param", param)
        return math.sqrt(2.0 / (1 + a**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; known: {[*_LINEAR, 'tanh', 'relu', 'leaky_relu', 'selu']}")


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, int) or not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
    if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must have at least 2 positive int dimensions (fan_out, fan_in, ...), got {tuple(shape)}")
    return tuple(shape)


def fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) = (shape[1] * receptive field, shape[0] * receptive field), as torch."""
    shape = _check_shape(shape)
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: Sequence[int], mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform(shape: Sequence[int], a: float, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""$U(-a, a)$, whose variance is $a^2/3$."""
    a = _check_number("a", a, positive=True)
    shape = _check_shape(shape)
    u = torch.rand(shape, generator=generator, dtype=dtype)  # U(0, 1)
    return (2 * u - 1) * a


def normal(shape: Sequence[int], std: float, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""$\mathcal N(0, \sigma^2)$ with $\sigma$ = ``std`` (``std=0`` gives the all-zero init)."""
    std = _check_number("std", std)
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std}")
    shape = _check_shape(shape)
    return torch.randn(shape, generator=generator, dtype=dtype) * std


def xavier_uniform(shape: Sequence[int], *, gain: float = 1.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Glorot & Bengio (2010, eq. 16): $U(-a, a)$, $a = g\sqrt{6/(n_\text{in} + n_\text{out})}$, so $\mathrm{Var}(W) = g^2\,2/(n_\text{in} + n_\text{out})$."""
    gain = _check_number("gain", gain, positive=True)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, a, generator=generator, dtype=dtype)


def xavier_normal(shape: Sequence[int], *, gain: float = 1.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""$\mathcal N(0, \sigma^2)$ with $\sigma = g\sqrt{2/(n_\text{in} + n_\text{out})}$: the same variance as :func:`xavier_uniform`."""
    gain = _check_number("gain", gain, positive=True)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator, dtype=dtype)


def _kaiming_std(shape: Sequence[int], a: float, mode: str, nonlinearity: str) -> float:
    fan = _fan(shape, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(
    shape: Sequence[int], *, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""He et al. (2015, eq. 10): $U(-b, b)$, $b = \sqrt3\,g/\sqrt{n}$, $n$ = fan_in (or fan_out), so $\mathrm{Var}(W) = g^2/n$ ($2/n$ for ReLU)."""
    std = _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, math.sqrt(3.0) * std, generator=generator, dtype=dtype)


def kaiming_normal(
    shape: Sequence[int], *, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""$\mathcal N(0, g^2/n)$, $n$ = fan_in (or fan_out); with ReLU, $\sigma = \sqrt{2/n_\text{in}}$."""
    std = _kaiming_std(shape, a, mode, nonlinearity)
    return normal(shape, std, generator=generator, dtype=dtype)


def orthogonal(shape: Sequence[int], *, gain: float = 1.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Saxe et al. (2014): a (semi-)orthogonal matrix, uniform (Haar) over the orthogonal group.

    As torch: flatten to rows x cols, QR-factor a standard normal matrix (of the taller shape),
    and multiply $Q$'s columns by $\operatorname{sign}(\operatorname{diag} R)$, which makes the
    distribution exactly Haar (Mezzadri, 2007). Then $Q^\top Q = I$ (or $QQ^\top = I$), times ``gain``.
    """
    gain = _check_number("gain", gain, positive=True)
    shape = _check_shape(shape)
    rows, cols = shape[0], math.prod(shape[1:])
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)  # q: (max, min)
    q = q * torch.sign(torch.diagonal(r))  # fix the signs: Haar distributed
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).to(dtype)


def lsuv(
    weights: Sequence[Tensor], input: Tensor, activation: Callable[[Tensor], Tensor], *,
    target_std: float = 1.0, tol: float = 0.01, max_iter: int = 10,
) -> list[Tensor]:
    r"""Layer-sequential unit-variance scaling (Mishkin & Matas, 2016, algorithm 1), data driven.

    Layer by layer, on the batch ``input``: compute $z_l = W_l h_{l-1}$ and rescale
    $W_l \leftarrow W_l \cdot \sigma_\text{target}/\mathrm{std}(z_l)$ until
    $|\mathrm{std}(z_l) - \sigma_\text{target}| <$ ``tol`` (or ``max_iter``); then $h_l = f(z_l)$.
    (The paper starts from orthogonal matrices; pass those in.) Returns new weights.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    _check_number("target_std", target_std, positive=True)
    _check_number("tol", tol, positive=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    h, out = input, []
    for W in _check_weights(weights, input):
        for _ in range(max_iter):
            z = h @ W.T  # (N, fan_out)
            s = z.std()
            if abs(s.item() - target_std) < tol:
                break
            W = W * (target_std / s)
        out.append(W)
        h = activation(h @ W.T)
    return out


def _check_weights(weights: Sequence[Tensor], input: Tensor) -> list[Tensor]:
    if isinstance(weights, Tensor) or not isinstance(weights, Sequence) or not weights:
        raise TypeError(f"weights must be a non-empty list of 2-D tensors, got {type(weights).__name__}")
    width = input.shape[-1]
    for i, W in enumerate(weights):
        if not isinstance(W, Tensor) or W.ndim != 2 or W.shape[1] != width:
            got = tuple(W.shape) if isinstance(W, Tensor) else type(W).__name__
            raise ValueError(f"weights[{i}] must be a 2-D tensor with {width} columns, got {got}")
        width = W.shape[0]
    return list(weights)


#: scheme name -> function(shape, generator, dtype) for :func:`mlp_weights`.
SCHEMES: dict[str, Callable[..., Tensor]] = {
    "xavier_uniform": lambda s, g, d: xavier_uniform(s, generator=g, dtype=d),
    "xavier_normal": lambda s, g, d: xavier_normal(s, generator=g, dtype=d),
    "kaiming_normal": lambda s, g, d: kaiming_normal(s, nonlinearity="relu", generator=g, dtype=d),
    "kaiming_uniform": lambda s, g, d: kaiming_uniform(s, nonlinearity="relu", generator=g, dtype=d),
    "orthogonal": lambda s, g, d: orthogonal(s, generator=g, dtype=d),
    "normal_1": lambda s, g, d: normal(s, 1.0, generator=g, dtype=d),
    "normal_0.01": lambda s, g, d: normal(s, 0.01, generator=g, dtype=d),
}


def mlp_weights(
    scheme: str, width: int, depth: int, *, scale: float = 1.0, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> list[Tensor]:
    """``depth`` square ``(width, width)`` weight matrices drawn by ``scheme`` (a key of :data:`SCHEMES`), each times ``scale``."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; known: {sorted(SCHEMES)}")
    for name, v in (("width", width), ("depth", depth)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    scale = _check_number("scale", scale, positive=True)
    return [scale * SCHEMES[scheme]((width, width), generator, dtype) for _ in range(depth)]


def signal_stats(
    weights: Sequence[Tensor], input: Tensor, activation: Callable[[Tensor], Tensor], *, layer_norm: bool = False,
) -> dict[str, Tensor]:
    r"""One forward and backward pass of the bias-free MLP $h_l = f(W_l \tilde h_{l-1})$, loss $= \sum h_L$.

    $\tilde h = \mathrm{LayerNorm}(h)$ (no affine) if ``layer_norm`` else $h$. Returns, per layer
    $l = 1..L$ (tensors of length L): ``act_std`` (std of $h_l$), ``act_rms``
    ($\sqrt{\mathbb E[h_l^2]}$), ``act_mean``, ``signal_norm`` ($\lVert\partial L/\partial z_l\rVert$,
    the backpropagated signal) and ``grad_norm`` ($\lVert\partial L/\partial W_l\rVert$).
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    Ws = [W.detach().clone().requires_grad_() for W in _check_weights(weights, input)]
    h, zs, hs = input, [], []
    for W in Ws:
        if layer_norm:
            h = torch.nn.functional.layer_norm(h, h.shape[-1:])
        z = h @ W.T  # (N, width)
        z.retain_grad()
        h = activation(z)
        zs.append(z)
        hs.append(h)
    h.sum().backward()
    with torch.no_grad():
        return {
            "act_std": torch.stack([a.std() for a in hs]),
            "act_rms": torch.stack([a.pow(2).mean().sqrt() for a in hs]),
            "act_mean": torch.stack([a.mean() for a in hs]),
            "signal_norm": torch.stack([z.grad.norm() for z in zs]),
            "grad_norm": torch.stack([W.grad.norm() for W in Ws]),
        }
