"""Neurons, perceptrons and multilayer perceptrons, written out by hand.

The Foundations chapter (``chapters/foundations``) teaches these; every function is the formula
of one section, with variables named after its symbols.

Conventions (as in ``torch.nn.Linear``): a batch is a row-major tensor ``input`` of shape
``(N, d)``; a layer's ``weight`` has shape ``(out_features, in_features)``, so the text's
``W h`` is ``h @ W.T`` in code. Losses use ``reduction="mean"`` over the batch, as torch does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "neuron",
    "append_ones",
    "perceptron_train",
    "perceptron_predict",
    "mlp_forward",
    "mlp_num_parameters",
    "two_layer_forward",
    "two_layer_backward",
    "relu_interpolant",
    "sawtooth",
]

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z}


def _check_matrix(name: str, value: Tensor) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got {tuple(value.shape)}")


def neuron(input: Tensor, weight: Tensor, bias: Tensor | float | None = None) -> Tensor:
    """Pre-activation of one neuron for a batch: ``z = w^T x + b``.

    Shapes: ``input`` (N, d), ``weight`` (d,), result (N,). ``bias=None`` is a neuron without
    bias, whose decision boundary ``z = 0`` must pass through the origin. Equal to
    ``torch.nn.functional.linear(input, weight[None], bias)[:, 0]``.
    See the section "What does a single artificial neuron compute" (q-foundations.neuron-weights-bias).
    """
    _check_matrix("input", input)
    if weight.ndim != 1 or weight.shape[0] != input.shape[1]:
        raise ValueError(f"weight must have shape ({input.shape[1]},), got {tuple(weight.shape)}")
    z = input @ weight  # (N,)
    if bias is not None:
        z = z + bias
    return z


def append_ones(input: Tensor) -> Tensor:
    """``[x, 1]``: the input with a constant-1 feature appended, shape (N, d) -> (N, d + 1).

    With it a bias is just one more weight: ``w^T x + b = [w, b]^T [x, 1]``.
    """
    _check_matrix("input", input)
    ones = torch.ones(input.shape[0], 1, dtype=input.dtype, device=input.device)
    return torch.cat([input, ones], dim=1)  # (N, d + 1)


def perceptron_predict(input: Tensor, weight: Tensor, bias: Tensor | float) -> Tensor:
    """Rosenblatt's perceptron output ``sign(w^T x + b)`` in {-1, +1} (0 counts as -1)."""
    z = neuron(input, weight, bias)
    return torch.where(z > 0, 1.0, -1.0).to(input.dtype)


def perceptron_train(
    input: Tensor, target: Tensor, *, epochs: int = 100, lr: float = 1.0
) -> tuple[Tensor, Tensor, list[int]]:
    """Rosenblatt's perceptron learning rule (Rosenblatt 1958), in a fixed order over the data.

    Labels ``y`` are in {-1, +1}. For each example, when ``sign(w^T x + b) != y``:
    ``w <- w + lr * y * x`` and ``b <- b + lr * y``. Starts from ``w = 0, b = 0``.
    Returns ``(weight, bias, errors)`` where ``errors[e]`` counts the mistakes made during
    epoch ``e``; training stops early after an epoch with no mistake (convergence theorem:
    this happens in finitely many steps iff the data are linearly separable, Novikoff 1962).
    """
    _check_matrix("input", input)
    if target.shape != (input.shape[0],) or not torch.all((target == 1) | (target == -1)):
        raise ValueError(f"target must be a ({input.shape[0]},) tensor of -1/+1, got {target}")
    if epochs < 1 or lr <= 0:
        raise ValueError(f"epochs must be >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
    w = torch.zeros(input.shape[1], dtype=input.dtype)
    b = torch.zeros((), dtype=input.dtype)
    errors = []
    for _ in range(epochs):
        mistakes = 0
        for x, y in zip(input, target):
            if perceptron_predict(x[None], w, b)[0] != y:
                w = w + lr * y * x  # w <- w + eta y x
                b = b + lr * y  # b <- b + eta y
                mistakes += 1
        errors.append(mistakes)
        if mistakes == 0:
            break
    return w, b, errors


def mlp_forward(
    input: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], *, activation: str = "relu"
) -> Tensor:
    """Batched MLP forward pass ``h^(l) = sigma(W^(l) h^(l-1) + b^(l))``, ``h^(0) = x``.

    The last layer has no activation (its output is the logits or the regression value), as in
    ``nn.Sequential(Linear, ReLU, ..., Linear)``. ``weights[l]`` has shape (n_l, n_{l-1}),
    ``biases[l]`` shape (n_l,). Row convention: ``h @ W.T + b``.
    """
    _check_matrix("input", input)
    if len(weights) != len(biases) or len(weights) == 0:
        raise ValueError(f"need as many weights as biases (>= 1), got {len(weights)} and {len(biases)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    sigma = _ACTIVATIONS[activation]
    h = input  # (N, n_0)
    for layer, (W, b) in enumerate(zip(weights, biases)):
        if W.ndim != 2 or W.shape[1] != h.shape[1] or b.shape != (W.shape[0],):
            raise ValueError(f"layer {layer}: weight {tuple(W.shape)} / bias {tuple(b.shape)} do not fit input width {h.shape[1]}")
        z = h @ W.T + b  # (N, n_l)
        h = sigma(z) if layer < len(weights) - 1 else z
    return h


def mlp_num_parameters(widths: Sequence[int]) -> int:
    """Number of weights and biases of an MLP with layer widths ``[n_0, n_1, ..., n_L]``.

    ``sum_l (n_{l-1} + 1) * n_l``: each unit of layer ``l`` has ``n_{l-1}`` weights and one bias.
    """
    if len(widths) < 2 or any(not isinstance(n, int) or n < 1 for n in widths):
        raise ValueError(f"widths must be >= 2 positive ints [n_0, ..., n_L], got {widths}")
    return sum((n_in + 1) * n_out for n_in, n_out in zip(widths[:-1], widths[1:]))


def two_layer_forward(
    input: Tensor, target: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Forward pass of ``Linear -> ReLU -> Linear -> softmax cross-entropy`` with its cache.

    ``z1 = x W1^T + b1``, ``h1 = relu(z1)``, ``z2 = h1 W2^T + b2``, ``p = softmax(z2)``,
    ``L = -(1/N) sum_i log p_{i, y_i}`` (torch's ``cross_entropy``, ``reduction="mean"``).
    Returns ``(loss, cache)``; the cache keeps what :func:`two_layer_backward` needs.
    """
    _check_matrix("input", input)
    if target.shape != (input.shape[0],) or target.dtype != torch.long:
        raise ValueError(f"target must be a ({input.shape[0]},) long tensor of classes, got {target.dtype} {tuple(target.shape)}")
    z1 = input @ w1.T + b1  # (N, H)
    h1 = torch.relu(z1)  # (N, H)
    z2 = h1 @ w2.T + b2  # (N, C)
    log_p = z2 - torch.logsumexp(z2, dim=1, keepdim=True)  # (N, C), stable log-softmax
    loss = -log_p[torch.arange(input.shape[0]), target].mean()
    cache = {"x": input, "z1": z1, "h1": h1, "p": log_p.exp(), "y": target, "w2": w2}
    return loss, cache


def two_layer_backward(cache: dict[str, Tensor]) -> dict[str, Tensor]:
    """Hand-derived gradients of :func:`two_layer_forward`'s loss (backpropagation).

    ``dz2 = (p - onehot(y)) / N``, ``dW2 = dz2^T h1``, ``db2 = sum_i dz2``,
    ``dh1 = dz2 W2``, ``dz1 = dh1 * 1[z1 > 0]``, ``dW1 = dz1^T x``, ``db1 = sum_i dz1``.
    Uses only cached values: no recomputation of the forward pass.
    """
    missing = {"x", "z1", "h1", "p", "y", "w2"} - set(cache)
    if missing:
        raise ValueError(f"cache lacks {sorted(missing)}: pass the cache from two_layer_forward")
    x, z1, h1, p, y, w2 = (cache[k] for k in ("x", "z1", "h1", "p", "y", "w2"))
    n = x.shape[0]
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)  # (N, C)
    dz2 = (p - onehot) / n  # (N, C)
    dw2 = dz2.T @ h1  # (C, H)
    db2 = dz2.sum(dim=0)  # (C,)
    dh1 = dz2 @ w2  # (N, H)
    dz1 = dh1 * (z1 > 0).to(dh1.dtype)  # (N, H)
    dw1 = dz1.T @ x  # (H, d)
    db1 = dz1.sum(dim=0)  # (H,)
    return {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2}


def relu_interpolant(knots: Tensor, values: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Weights of a one-hidden-layer ReLU net that linearly interpolates ``(knots, values)``.

    ``f(x) = v_0 + sum_k c_k relu(x - t_k)`` with ``t_k`` the knots but the last and ``c_k``
    the change of slope at ``t_k`` (first slope for ``k = 0``); exact on ``[t_0, t_n]``.
    Returns ``(w1, b1, w2, b2)`` for :func:`mlp_forward` (hidden width ``n = len(knots) - 1``).
    """
    if knots.ndim != 1 or knots.shape != values.shape or knots.numel() < 2:
        raise ValueError(f"knots and values must be 1-D of equal length >= 2, got {tuple(knots.shape)}, {tuple(values.shape)}")
    if not torch.all(knots[1:] > knots[:-1]):
        raise ValueError("knots must be strictly increasing")
    slopes = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])  # (n,)
    c = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])  # (n,) slope changes
    w1 = torch.ones(len(slopes), 1, dtype=knots.dtype)  # (n, 1)
    b1 = -knots[:-1]  # (n,)
    return w1, b1, c[None, :], values[:1].clone()


def sawtooth(input: Tensor, k: int) -> Tensor:
    """The tent map ``g(x) = 2 relu(x) - 4 relu(x - 1/2)`` composed ``k`` times (Telgarsky 2016).

    Each composition is one layer of 2 ReLU units; on [0, 1] the result has ``2^k`` linear
    pieces, which a one-hidden-layer ReLU net needs at least ``2^k - 1`` units to match.
    """
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k}")
    h = input
    for _ in range(k):
        h = 2 * torch.relu(h) - 4 * torch.relu(h - 0.5)
    return h
