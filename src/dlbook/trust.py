"""Trustworthy ML: attributions, adversarial attacks, privacy, backdoors and verification (the
chapter "Frontiers", notebooks 05-explainability and 06-robustness-and-privacy).

Conventions (stated once, used everywhere):

* ``forward`` is any callable mapping a batch ``(N, ...)`` to outputs ``(N, K)`` (or ``(N,)``
  when ``target`` is ``None``); ``target`` is an int or an ``(N,)`` long tensor of the output
  column explained, as in captum. Attributions have the input's shape.
* Attribution functions follow captum 0.9's definitions and defaults (``Saliency``,
  ``NoiseTunnel(Saliency)``, ``IntegratedGradients``, ``Occlusion``, ``ShapleyValues``), so a
  test passes the same keyword arguments to both; ``abs`` is spelled ``absolute`` here (never
  shadow a builtin).
* DP-SGD follows opacus 1.6's ``DPOptimizer``: clip factor ``min(1, C / (||g_i|| + 1e-6))``
  over the concatenation of all parameters' per-sample gradients, noise ``N(0, sigma^2 C^2)`` on
  the summed gradient, then division by ``expected_batch_size`` (``loss_reduction="mean"``).
* All randomness comes from an explicit ``generator``; ``None`` falls back to torch's global one.
* Images for the trigger helpers are flattened rows of ``image_shape`` pixels with values in
  ``[0, 1]`` (``load_digits / 16``).

Back-link: chapters/frontiers/05-explainability.ipynb, chapters/frontiers/06-robustness-and-privacy.ipynb.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbook.train import per_sample_gradients  # noqa: F401  (part of this module's API: DP-SGD clips these)

__all__ = [
    "add_trigger",
    "additive_shares",
    "carlini_wagner_l2",
    "certified_margin",
    "deletion_curve",
    "dp_sgd_gradient",
    "fed_avg",
    "integrated_gradients",
    "interval_bounds",
    "membership_scores",
    "occlusion",
    "per_sample_gradients",
    "poison",
    "saliency",
    "shapley_values",
    "smooth_grad",
]

Forward = Callable[[Tensor], Tensor]


# -- helpers ---------------------------------------------------------------------------------
def _check_positive_int(value: int, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_nonneg(value: float, name: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _select(output: Tensor, target: int | Tensor | None) -> Tensor:
    """The explained scalar per example: ``output[n, target[n]]`` (or ``output`` itself if 1-D)."""
    if target is None:
        if output.dim() != 1:
            raise ValueError(f"target=None needs a forward with 1-D output, got shape {tuple(output.shape)}")
        return output
    index = torch.as_tensor(target, device=output.device).long().expand(output.shape[0])
    return output.gather(1, index[:, None])[:, 0]


def _input_gradient(forward: Forward, input: Tensor, target: int | Tensor | None) -> Tensor:
    """``d f_target(x) / dx`` for every row (rows are independent, so one backward of the sum)."""
    x = input.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_select(forward(x), target).sum(), x)
    return grad


def _repeat_target(target: int | Tensor | None, repeats: int, n: int) -> int | Tensor | None:
    if target is None or isinstance(target, int):
        return target
    return torch.as_tensor(target).expand(n).repeat(repeats)


# -- gradient attributions -------------------------------------------------------------------
def saliency(forward: Forward, input: Tensor, target: int | Tensor | None = None, *,
             absolute: bool = True) -> Tensor:
    """Saliency map (Simonyan, Vedaldi & Zisserman 2014): :math:`|\\partial f_c(x) / \\partial x|`.

    ``absolute=False`` returns the signed gradient. Equals ``captum.attr.Saliency(forward)
    .attribute(input, target, abs=absolute)``.
    """
    grad = _input_gradient(forward, input, target)
    return grad.abs() if absolute else grad


def smooth_grad(forward: Forward, input: Tensor, target: int | Tensor | None = None, *,
                nt_samples: int = 5, stdevs: float = 1.0, absolute: bool = True,
                generator: torch.Generator | None = None) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017): the saliency averaged over noisy copies of the input,

    .. math:: \\hat M(x) = \\frac1n \\sum_{k=1}^n M(x + \\epsilon_k),\\qquad \\epsilon_k \\sim \\mathcal N(0, \\sigma^2 I)

    with :math:`M` = :func:`saliency` (``absolute`` as there). ``stdevs`` is the absolute sigma
    (Smilkov et al. use 10-20% of the input range). Noise is drawn as one ``(N * n, ...)`` tensor
    with each input repeated ``n`` times in a row, as captum's ``NoiseTunnel(Saliency)`` with
    ``nt_type="smoothgrad"`` does, so the same seed gives the same noise.
    """
    _check_positive_int(nt_samples, "nt_samples")
    _check_nonneg(stdevs, "stdevs")
    n = input.shape[0]
    repeated = input.detach().repeat_interleave(nt_samples, dim=0)  # (N * n, ...)
    noise = stdevs * torch.randn(repeated.shape, generator=generator, dtype=input.dtype)
    target_rep = target if target is None or isinstance(target, int) else \
        torch.as_tensor(target).expand(n).repeat_interleave(nt_samples)
    maps = saliency(forward, repeated + noise, target_rep, absolute=absolute)
    return maps.reshape(n, nt_samples, *input.shape[1:]).mean(dim=1)


def _ig_nodes(n_steps: int, method: str) -> tuple[Tensor, Tensor]:
    """Quadrature nodes ``alpha_k`` in [0, 1] and weights ``w_k`` (summing to 1) on the path."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)  # on [-1, 1]
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    riemann = {"riemann_left": (0.0, 1 - 1 / n_steps), "riemann_right": (1 / n_steps, 1.0),
               "riemann_middle": (1 / (2 * n_steps), 1 - 1 / (2 * n_steps)), "riemann_trapezoid": (0.0, 1.0)}
    if method not in riemann:
        raise ValueError(f"method must be 'gausslegendre' or one of {sorted(riemann)}, got {method!r}")
    alphas = torch.linspace(*riemann[method], n_steps, dtype=torch.float64)
    weights = torch.full((n_steps,), 1 / n_steps, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[0], weights[-1] = weights[0] / 2, weights[-1] / 2
    return alphas, weights


def integrated_gradients(forward: Forward, input: Tensor, target: int | Tensor | None = None, *,
                         baselines: Tensor | float | None = None, n_steps: int = 50,
                         method: str = "gausslegendre") -> Tensor:
    """Integrated Gradients (Sundararajan, Taly & Yan 2017, Eq. 1), by quadrature on the path:

    .. math:: \\mathrm{IG}_i(x) = (x_i - x'_i)\\int_0^1 \\frac{\\partial f(x' + \\alpha (x - x'))}{\\partial x_i}\\,d\\alpha
              \\approx (x_i - x'_i) \\sum_k w_k\\, \\partial_i f(x' + \\alpha_k (x - x'))

    ``baselines`` :math:`x'` defaults to zero. Completeness: :math:`\\sum_i \\mathrm{IG}_i = f(x) - f(x')`
    up to the quadrature error. ``method`` and its nodes are captum's (Gauss-Legendre by default;
    ``"riemann_trapezoid"``, ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``).
    """
    _check_positive_int(n_steps, "n_steps", minimum=2)
    alphas, weights = _ig_nodes(n_steps, method)
    x = input.detach()
    x0 = torch.zeros_like(x) if baselines is None else torch.as_tensor(baselines, dtype=x.dtype).expand_as(x)
    shape = (n_steps,) + (1,) * x.dim()
    a = alphas.to(x.dtype).reshape(shape)
    path = (x0 + a * (x - x0)).reshape(n_steps * x.shape[0], *x.shape[1:])  # (n_steps * N, ...)
    grads = _input_gradient(forward, path, _repeat_target(target, n_steps, x.shape[0]))
    avg_grad = (weights.to(x.dtype).reshape(shape) * grads.reshape(n_steps, *x.shape)).sum(0)
    return (x - x0) * avg_grad


# -- perturbation attributions ---------------------------------------------------------------
def occlusion(forward: Forward, input: Tensor, target: int | Tensor | None = None, *,
              sliding_window_shapes: Sequence[int], strides: int | Sequence[int] = 1,
              baselines: float | Tensor = 0.0) -> Tensor:
    """Occlusion (Zeiler & Fergus 2014): slide a window of ``baselines`` over the input; each
    feature's attribution is the mean, over the windows covering it, of :math:`f(x) - f(x_{\\text{occluded}})`.

    Window corners sit at ``k * stride`` for ``k = 0 .. ceil((S - W) / stride)`` along every
    axis of the per-example shape ``S``, as in ``captum.attr.Occlusion``.
    """
    dims = tuple(input.shape[1:])
    window = tuple(sliding_window_shapes)
    stride = (strides,) * len(dims) if isinstance(strides, int) else tuple(strides)
    if len(window) != len(dims) or len(stride) != len(dims):
        raise ValueError(f"sliding_window_shapes {window} and strides {stride} must have {len(dims)} entries")
    if any(w < 1 or w > s for w, s in zip(window, dims)) or any(t < 1 for t in stride):
        raise ValueError(f"sliding_window_shapes {window} must fit in {dims}, strides {stride} must be >= 1")
    x = input.detach()
    with torch.no_grad():
        base_out = _select(forward(x), target)
        total, count = torch.zeros_like(x), torch.zeros(dims, dtype=x.dtype)
        starts = [range(0, math.ceil((s - w) / t) * t + 1, t) for s, w, t in zip(dims, window, stride)]
        for corner in itertools.product(*starts):
            mask = torch.zeros(dims, dtype=x.dtype)
            mask[tuple(slice(c, c + w) for c, w in zip(corner, window))] = 1
            occluded = x * (1 - mask) + mask * torch.as_tensor(baselines, dtype=x.dtype)
            drop = base_out - _select(forward(occluded), target)  # (N,)
            total += drop.reshape(-1, *(1,) * len(dims)) * mask
            count += mask
    return total / count


def _subset_values(forward: Forward, x: Tensor, target: int | Tensor | None, background: Tensor) -> Tensor:
    """``v(S) = E_b f(x_S, b_{~S})`` for all 2^d subsets ``S`` (bit ``i`` of the index = feature i)."""
    d = x.shape[0]
    masks = ((torch.arange(2**d)[:, None] >> torch.arange(d)) & 1).to(x.dtype)  # (2^d, d)
    mixed = masks[:, None, :] * x + (1 - masks[:, None, :]) * background  # (2^d, M, d)
    out = _select(forward(mixed.reshape(-1, d)), target)
    return out.reshape(2**d, background.shape[0]).mean(1)


def shapley_values(forward: Forward, input: Tensor, target: int | Tensor | None = None, *,
                   baselines: Tensor) -> Tensor:
    """Exact Shapley values (Shapley 1953; SHAP: Lundberg & Lee 2017) of each feature of rows ``(N, d)``:

    .. math:: \\phi_i = \\sum_{S \\subseteq F\\setminus\\{i\\}} \\frac{|S|!\\,(d-|S|-1)!}{d!}\\,[v(S\\cup\\{i\\}) - v(S)],
              \\qquad v(S) = \\mathbb E_{b}\\, f(x_S, b_{\\bar S})

    where the absent features take the values of the background rows ``baselines`` (``(d,)`` or
    ``(M, d)``; the "interventional" value function). Efficiency: :math:`\\sum_i \\phi_i = f(x) - \\mathbb E_b f(b)`.
    Enumerates all :math:`2^d` subsets, so ``d <= 16``. With one baseline row it equals
    ``captum.attr.ShapleyValues``.
    """
    if input.dim() != 2 or input.shape[1] > 16:
        raise ValueError(f"input must be (N, d) with d <= 16, got shape {tuple(input.shape)}")
    d = input.shape[1]
    background = torch.as_tensor(baselines, dtype=input.dtype).reshape(-1, d)
    weight = torch.tensor([math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)],
                          dtype=input.dtype)
    index = torch.arange(2**d)
    size = ((index[:, None] >> torch.arange(d)) & 1).sum(1)  # |S| of every subset
    phi = torch.zeros_like(input)
    with torch.no_grad():
        for n, x in enumerate(input.detach()):
            t = target if target is None or isinstance(target, int) else int(torch.as_tensor(target).expand(len(input))[n])
            v = _subset_values(forward, x, t, background)
            for i in range(d):
                without = index[(index >> i) & 1 == 0]  # subsets S not containing i
                phi[n, i] = (weight[size[without]] * (v[without | (1 << i)] - v[without])).sum()
    return phi


def deletion_curve(forward: Forward, input: Tensor, target: int | Tensor | None, order: Tensor, *,
                   baselines: float | Tensor = 0.0) -> Tensor:
    """Deletion curve (Petsiuk, Das & Saenko 2018, RISE): ``f`` after replacing the first ``k``
    features of ``order`` (``(N, d)`` feature indices per row, most important first) by
    ``baselines``, for ``k = 0 .. d``. Returns ``(N, d + 1)``; a faithful attribution drops fast.
    """
    if order.shape != input.shape or input.dim() != 2:
        raise ValueError(f"order must be (N, d) like input, got {tuple(order.shape)} and {tuple(input.shape)}")
    x = input.detach().clone()
    base = torch.as_tensor(baselines, dtype=x.dtype).expand_as(x)
    rows = torch.arange(x.shape[0])
    curve = []
    with torch.no_grad():
        for k in range(x.shape[1] + 1):
            curve.append(_select(forward(x), target))
            if k < x.shape[1]:
                x[rows, order[:, k]] = base[rows, order[:, k]]
    return torch.stack(curve, dim=1)


# -- adversarial attacks ---------------------------------------------------------------------
def carlini_wagner_l2(model: Forward, input: Tensor, target: Tensor, *, c: float = 1.0, kappa: float = 0.0,
                      steps: int = 100, lr: float = 0.01) -> Tensor:
    """Carlini & Wagner (2017, IEEE S&P) untargeted L2 attack with a fixed constant ``c``:

    .. math:: \\min_w \\|x'(w) - x\\|_2^2 + c\\,\\max\\big(Z_y(x') - \\max_{j\\ne y} Z_j(x'),\\, -\\kappa\\big),
              \\qquad x'(w) = \\tfrac12(\\tanh w + 1) \\in [0, 1]

    by Adam on ``w`` (the tanh change of variables keeps pixels in the box without clipping).
    Returns, per example, the closest successful iterate, or the last iterate if none succeeded.
    (The paper also binary-searches ``c``; here it is fixed.)
    """
    _check_positive_int(steps, "steps")
    _check_nonneg(c, "c")
    x = input.detach()
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best, best_dist = x.clone(), torch.full((x.shape[0],), float("inf"), dtype=x.dtype)
    for _ in range(steps):
        x_adv = 0.5 * (torch.tanh(w) + 1)
        z = model(x_adv)                                                   # (N, K)
        z_true = z.gather(1, target[:, None])[:, 0]
        z_other = z.masked_fill(F.one_hot(target, z.shape[1]).bool(), -float("inf")).amax(1)
        dist = ((x_adv - x) ** 2).flatten(1).sum(1)                        # ||x' - x||^2
        better = (z_other > z_true) & (dist < best_dist)
        best[better], best_dist[better] = x_adv.detach()[better], dist.detach()[better]
        loss = (dist + c * (z_true - z_other).clamp(min=-kappa)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    never = torch.isinf(best_dist)
    best[never] = (0.5 * (torch.tanh(w) + 1)).detach()[never]
    return best


# -- differential privacy --------------------------------------------------------------------
def dp_sgd_gradient(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], input: Tensor,
                    target: Tensor, *, max_grad_norm: float, noise_multiplier: float,
                    expected_batch_size: int | None = None, eps: float = 1e-6,
                    generator: torch.Generator | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """The privatized gradient of one DP-SGD step (Abadi et al. 2016, Algorithm 1):

    .. math:: \\tilde g = \\frac1B\\Big(\\sum_i g_i \\min\\big(1, \\tfrac{C}{\\|g_i\\| + \\varepsilon}\\big)
              + \\mathcal N(0, \\sigma^2 C^2 I)\\Big)

    with :math:`\\|g_i\\|` the norm over *all* parameters, :math:`C` = ``max_grad_norm``,
    :math:`\\sigma` = ``noise_multiplier``, :math:`B` = ``expected_batch_size`` (default: the
    batch size) and :math:`\\varepsilon` = ``eps`` (opacus's 1e-6). Returns ``(grads, norms)``:
    a dict of gradients per parameter name and the ``(B,)`` per-sample norms before clipping.
    """
    if not (isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0):
        raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm!r}")
    _check_nonneg(noise_multiplier, "noise_multiplier")
    batch = expected_batch_size if expected_batch_size is not None else input.shape[0]
    _check_positive_int(batch, "expected_batch_size")
    g = per_sample_gradients(model, loss_fn, input, target)
    norms = torch.stack([v.flatten(1).norm(dim=1) for v in g.values()], 1).norm(dim=1)  # ||g_i||
    factor = (max_grad_norm / (norms + eps)).clamp(max=1.0)                          # min(1, C / ||g_i||)
    grads = {}
    for name, gi in g.items():
        clipped_sum = torch.einsum("i,i...->...", factor, gi)                         # sum_i clip(g_i)
        noise = noise_multiplier * max_grad_norm * torch.randn(gi.shape[1:], generator=generator, dtype=gi.dtype)
        grads[name] = (clipped_sum + noise) / batch
    return grads, norms


def membership_scores(model: Forward, input: Tensor, target: Tensor) -> Tensor:
    """Loss-threshold membership score (Yeom et al. 2018): :math:`s(x, y) = -\\ell(f(x), y)`;
    training members tend to have lower loss, so a higher score means "member"."""
    with torch.no_grad():
        return -F.cross_entropy(model(input), target, reduction="none")


def fed_avg(client_states: Sequence[dict[str, Tensor]], weights: Sequence[float]) -> dict[str, Tensor]:
    """FedAvg aggregation (McMahan et al. 2017): :math:`\\theta = \\sum_k \\frac{n_k}{n} \\theta_k`,
    ``weights`` = the clients' example counts :math:`n_k`."""
    if len(client_states) != len(weights) or not client_states or min(weights) <= 0:
        raise ValueError(f"need one positive weight per client state, got {list(weights)} for {len(client_states)}")
    total = float(sum(weights))
    return {k: sum(w / total * s[k] for s, w in zip(client_states, weights)) for k in client_states[0]}


def additive_shares(secret: Tensor, n: int, *, scale: float = 1e3,
                    generator: torch.Generator | None = None) -> list[Tensor]:
    """Additive secret sharing (secure aggregation, Bonawitz et al. 2017, in its simplest form):
    ``n - 1`` random masks of std ``scale`` and a last share ``secret - sum(masks)``; any ``n - 1``
    shares look like noise, all ``n`` sum to the secret. Real protocols work in a finite field."""
    _check_positive_int(n, "n", minimum=2)
    masks = [scale * torch.randn(secret.shape, generator=generator, dtype=secret.dtype) for _ in range(n - 1)]
    return masks + [secret - sum(masks)]


# -- backdoors -------------------------------------------------------------------------------
def add_trigger(images: Tensor, *, size: int = 2, value: float = 1.0,
                image_shape: tuple[int, int] = (8, 8)) -> Tensor:
    """BadNets-style trigger (Gu, Dolan-Gavitt & Garg 2017): the bottom-right ``size x size``
    pixels of each flattened ``image_shape`` image set to ``value``. Returns a new tensor."""
    h, w = image_shape
    if images.shape[-1] != h * w or not 1 <= size <= min(h, w):
        raise ValueError(f"images must end in {h * w} pixels and 1 <= size <= {min(h, w)}, "
                         f"got shape {tuple(images.shape)} and size {size}")
    out = images.clone().reshape(*images.shape[:-1], h, w)
    out[..., h - size:, w - size:] = value
    return out.reshape(images.shape)


def poison(input: Tensor, target: Tensor, *, fraction: float, target_class: int,
           generator: torch.Generator | None = None, **trigger) -> tuple[Tensor, Tensor, Tensor]:
    """Backdoor poisoning: stamp :func:`add_trigger` (keyword ``trigger`` arguments) on a random
    ``fraction`` of the rows and relabel them ``target_class``. Returns ``(input, target, index)``,
    the poisoned copies and the indices of the poisoned rows."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    n_poison = round(fraction * input.shape[0])
    index = torch.randperm(input.shape[0], generator=generator)[:n_poison]
    x, y = input.clone(), target.clone()
    x[index] = add_trigger(x[index], **trigger)
    y[index] = target_class
    return x, y, index


# -- verification ----------------------------------------------------------------------------
def _layers(model: nn.Module) -> list[nn.Module]:
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    for layer in layers:
        if not isinstance(layer, (nn.Linear, nn.ReLU, nn.Flatten)):
            raise TypeError(f"interval bounds support Linear, ReLU and Flatten layers, got {type(layer).__name__}")
    return layers


def interval_bounds(model: nn.Module, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Interval bound propagation (Gowal et al. 2018; Mirman et al. 2018) through a Sequential of
    Linear/ReLU/Flatten layers, in centre-radius form:

    .. math:: \\mu' = W\\mu + b,\\quad r' = |W|\\,r \\quad\\text{(Linear)};\\qquad
              [l, u] \\mapsto [\\max(l, 0), \\max(u, 0)] \\quad\\text{(ReLU)}

    with :math:`\\mu = (u + l)/2`, :math:`r = (u - l)/2`. Sound: every input in the box maps into
    the returned box. Exact for one Linear layer; looser with depth (the box forgets correlations).
    """
    if lower.shape != upper.shape or bool((lower > upper).any()):
        raise ValueError(f"need lower <= upper of one shape, got {tuple(lower.shape)} and {tuple(upper.shape)}")
    lo, hi = lower, upper
    with torch.no_grad():
        for layer in _layers(model):
            if isinstance(layer, nn.Linear):
                mu, r = (hi + lo) / 2, (hi - lo) / 2
                mu, r = F.linear(mu, layer.weight, layer.bias), F.linear(r, layer.weight.abs())
                lo, hi = mu - r, mu + r
            elif isinstance(layer, nn.ReLU):
                lo, hi = lo.clamp(min=0), hi.clamp(min=0)
            else:
                lo, hi = layer(lo), layer(hi)
    return lo, hi


def certified_margin(model: nn.Module, input: Tensor, target: Tensor, *, eps: float,
                     clamp: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """A lower bound, over the box :math:`\\|x' - x\\|_\\infty \\le \\epsilon` (intersected with ``clamp``), of
    :math:`\\min_{j \\ne y} z_y(x') - z_j(x')`, by IBP with the specification folded into the last
    Linear layer (rows :math:`W_y - W_j`; Gowal et al. 2018, Sec. 3). Positive = certified: no
    perturbation in the box can change the prediction."""
    _check_nonneg(eps, "eps")
    layers = _layers(model)
    if not isinstance(layers[-1], nn.Linear):
        raise TypeError(f"the last layer must be Linear, got {type(layers[-1]).__name__}")
    lo, hi = input - eps, input + eps
    if clamp is not None:
        lo, hi = lo.clamp(*clamp), hi.clamp(*clamp)
    lo, hi = interval_bounds(nn.Sequential(*layers[:-1]), lo, hi)
    W, b = layers[-1].weight.detach(), layers[-1].bias.detach()
    C = W[target][:, None, :] - W[None, :, :]                                   # (N, K, hidden): W_y - W_j
    d = b[target][:, None] - b[None, :]                                         # (N, K)
    mu, r = (hi + lo) / 2, (hi - lo) / 2
    low = torch.einsum("nkh,nh->nk", C, mu) + d - torch.einsum("nkh,nh->nk", C.abs(), r)
    low = low.masked_fill(F.one_hot(target, W.shape[0]).bool(), float("inf"))   # skip j = y
    return low.amin(dim=1)
