r"""Large language models at toy scale: parameter counts, scaling laws, preference alignment, in-context learning.

The formulas of the chapter "Frontiers" (``chapters/frontiers``, notebooks 01 and 02), each a
small function the notebooks run and assert:

- size: :func:`decoder_num_parameters` ($12 L d^2 + 13 L d + V d + \dots$; Kaplan et al. 2020,
  "Scaling Laws for Neural Language Models", Table 1);
- scaling laws: :func:`fit_power_law` (log-log regression with a confidence interval),
  :func:`scaling_law`, :func:`fit_scaling_law` ($L(N, D) = E + A/N^\alpha + B/D^\beta$,
  Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", eq. 2) and
  :func:`compute_optimal` (its minimum under $C = 6ND$, eq. 4);
- long context: :func:`forward_flops_per_token` (Kaplan et al. 2020, Table 1) and
  :func:`long_context_costs` (attention scores and the KV cache,
  :func:`dlbook.inference.kv_cache_bytes`);
- alignment: :func:`bradley_terry_loss`, :func:`fit_bradley_terry` (Bradley & Terry 1952;
  Ouyang et al. 2022, eq. 1), :func:`dpo_loss` (Rafailov et al. 2023, eq. 7),
  :func:`kl_regularized_optimum` and :func:`kl_regularized_objective` (Rafailov et al. 2023, eq. 4);
- in-context learning: :func:`linear_regression_prompts`, the baselines
  :func:`least_squares_predictions` and :func:`knn_predictions` (Garg et al. 2022, "What Can
  Transformers Learn In-Context?"), :func:`linear_self_attention` (von Oswald et al. 2023) and
  :class:`PromptRegressor`, a small causal Transformer reading $(x_1, y_1, \dots, x_k)$ prompts.

Conventions: losses are natural-log (nats); log-probabilities are summed over a response's tokens;
rewards and log-ratios are per response. Prediction $i$ of a prompt uses points $0, \dots, i-1$ only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbook.inference import kv_cache_bytes

__all__ = [
    "decoder_num_parameters",
    "fit_power_law",
    "PowerLawFit",
    "scaling_law",
    "fit_scaling_law",
    "ScalingLawFit",
    "compute_optimal",
    "forward_flops_per_token",
    "long_context_costs",
    "bradley_terry_loss",
    "fit_bradley_terry",
    "dpo_loss",
    "kl_regularized_optimum",
    "kl_regularized_objective",
    "linear_regression_prompts",
    "least_squares_predictions",
    "knn_predictions",
    "linear_self_attention",
    "PromptRegressor",
]


def _positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return int(value)


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


# ----------------------------------------------------------------------------- size
def decoder_num_parameters(
    n_layers: int, d_model: int, vocab_size: int, *, d_ff: int | None = None, max_len: int = 0,
    tie_weights: bool = True, bias: bool = True, final_norm: bool = True,
) -> int:
    r"""Parameters of a GPT-style decoder from depth $L$, width $d$ and vocabulary $V$.

    Per block: attention $W_Q, W_K, W_V, W_O$ ($4d^2$, biases $4d$), the MLP $d \to d_{ff} \to d$
    ($2 d\,d_{ff}$, biases $d_{ff} + d$), two LayerNorms ($4d$). With $d_{ff} = 4d$ and biases a
    block has $12d^2 + 13d$, so

    .. math:: N = L\,(12 d^2 + 13 d) + V d\,[\times 2 \text{ untied}] + T_{\max} d + 2d.

    ``max_len`` counts a learned position table (0 for RoPE or sinusoids), ``final_norm`` the
    last LayerNorm. GPT-2 small ($L=12$, $d=768$, $V=50257$, $T_{\max}=1024$, tied) is 124,439,808.
    Kaplan et al. (2020) count only $12 L d^2$, the "non-embedding" parameters.
    """
    n_layers, d_model, vocab_size = (_positive_int(n, v) for n, v in (("n_layers", n_layers), ("d_model", d_model), ("vocab_size", vocab_size)))
    d_ff = 4 * d_model if d_ff is None else _positive_int("d_ff", d_ff)
    max_len = _positive_int("max_len", max_len, allow_zero=True)
    d = d_model
    attention = 4 * d * d + (4 * d if bias else 0)
    mlp = 2 * d * d_ff + ((d_ff + d) if bias else 0)
    norms = 2 * 2 * d
    embeddings = vocab_size * d * (1 if tie_weights else 2) + max_len * d
    return n_layers * (attention + mlp + norms) + embeddings + (2 * d if final_norm else 0)


# ----------------------------------------------------------------------------- scaling laws
@dataclass(frozen=True)
class PowerLawFit:
    """``y = coefficient * x ** exponent``, fitted in log-log space; ``ci`` is the exponent's interval."""

    exponent: float
    coefficient: float
    stderr: float
    ci: tuple[float, float]


def fit_power_law(x, y, *, confidence: float = 0.95) -> PowerLawFit:
    r"""Least squares of $\log y = \log c + k \log x$; the interval is $k \pm t_{n-2}\,\mathrm{se}(k)$.

    ``scipy.stats.linregress`` on the logs; needs at least 3 positive points.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x and y must be 1-D of the same length >= 3, got shapes {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be positive for a log-log fit")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    fit = stats.linregress(np.log(x), np.log(y))
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 2) * fit.stderr
    return PowerLawFit(float(fit.slope), float(np.exp(fit.intercept)), float(fit.stderr), (float(fit.slope - half), float(fit.slope + half)))


def scaling_law(n, d, *, E: float, A: float, alpha: float, B: float, beta: float):
    r"""$L(N, D) = E + A / N^\alpha + B / D^\beta$ (Hoffmann et al. 2022, eq. 2), elementwise."""
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    return E + A / n**alpha + B / d**beta


_NAMES = ("E", "A", "alpha", "B", "beta")


@dataclass(frozen=True)
class ScalingLawFit:
    """Fitted $E, A, \\alpha, B, \\beta$ with standard errors and confidence intervals (dicts by name)."""

    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    residual_std: float

    def predict(self, n, d):
        return scaling_law(n, d, **self.params)


def _log_law(X, log_E, log_A, alpha, log_B, beta):
    n, d = X
    return np.log(np.exp(log_E) + np.exp(log_A) * n**-alpha + np.exp(log_B) * d**-beta)


def fit_scaling_law(n, d, loss, *, confidence: float = 0.95, p0=(0.1, 1.0, 0.5, 1.0, 0.5)) -> ScalingLawFit:
    r"""Fit $\log L = \log(E + A N^{-\alpha} + B D^{-\beta})$ by nonlinear least squares.

    The fit is in log space (Hoffmann et al. 2022 fit a Huber loss on the logs) over
    $(\log E, \log A, \alpha, \log B, \beta)$, so $E, A, B$ stay positive. Intervals come from the
    Gauss-Newton covariance (``scipy.optimize.curve_fit``) with a Student-$t$ quantile on
    $m - 5$ degrees of freedom; those of $E, A, B$ are the exponentiated log-intervals.
    ``p0`` is the start $(E, A, \alpha, B, \beta)$.
    """
    from scipy import optimize, stats

    n, d, loss = (np.asarray(a, dtype=float).ravel() for a in (n, d, loss))
    if not (len(n) == len(d) == len(loss)):
        raise ValueError(f"n, d and loss must have the same length, got {len(n)}, {len(d)}, {len(loss)}")
    if len(n) < 6:
        raise ValueError(f"need at least 6 points to fit 5 parameters, got {len(n)}")
    if (n <= 0).any() or (d <= 0).any() or (loss <= 0).any():
        raise ValueError("n, d and loss must be positive")
    start = [math.log(p0[0]), math.log(p0[1]), p0[2], math.log(p0[3]), p0[4]]
    p, cov = optimize.curve_fit(_log_law, (n, d), np.log(loss), p0=start, maxfev=20000)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    half = stats.t.ppf(0.5 + confidence / 2, len(n) - 5) * se
    lo, hi = p - half, p + half
    logged = (True, True, False, True, False)
    params = {k: float(np.exp(v) if lg else v) for k, v, lg in zip(_NAMES, p, logged)}
    ci = {k: (float(np.exp(a)), float(np.exp(b))) if lg else (float(a), float(b)) for k, a, b, lg in zip(_NAMES, lo, hi, logged)}
    residual = np.log(loss) - _log_law((n, d), *p)
    return ScalingLawFit(params, ci, float(residual.std(ddof=5)))


def compute_optimal(compute, *, A: float, alpha: float, B: float, beta: float, flops_per_param_token: float = 6.0):
    r"""The $(N^*, D^*)$ minimising $A/N^\alpha + B/D^\beta$ subject to $C = 6 N D$.

    Substituting $D = C / (6N)$ and setting the derivative to zero (Hoffmann et al. 2022, eq. 4):

    .. math:: N^* = G\,(C/6)^{\beta/(\alpha+\beta)}, \quad D^* = G^{-1} (C/6)^{\alpha/(\alpha+\beta)},
              \quad G = \Big(\frac{\alpha A}{\beta B}\Big)^{1/(\alpha+\beta)}.

    $E$ does not move the optimum. ``compute`` in FLOPs (array or scalar); returns ``(N*, D*)``.
    """
    compute = np.asarray(compute, dtype=float)
    if (compute <= 0).any():
        raise ValueError("compute must be > 0")
    for name, value in (("A", A), ("alpha", alpha), ("B", B), ("beta", beta), ("flops_per_param_token", flops_per_param_token)):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    nd = compute / flops_per_param_token  # N * D
    n_opt = G * nd ** (beta / (alpha + beta))
    return n_opt, nd / n_opt


# ----------------------------------------------------------------------------- long context
def forward_flops_per_token(n_params: int, n_layers: int, context: int, d_model: int) -> int:
    r"""$2N + 2\,L\,T\,d$ FLOPs per token of a forward pass (Kaplan et al. 2020, Table 1).

    $2N$ for the weights (a multiply and an add per parameter), $2 L T d$ for the attention scores
    and the weighted sum over a context of $T$; training costs about three times this ($C \approx 6N$
    per token while $T \ll 12 d$). The attention term equals the weight term at $T = N / (L d)$,
    about $12 d$.
    """
    for name, v in (("n_params", n_params), ("n_layers", n_layers), ("d_model", d_model)):
        _positive_int(name, v)
    _positive_int("context", context, allow_zero=True)
    return 2 * n_params + 2 * n_layers * context * d_model


def long_context_costs(context: int, *, n_layers: int, n_heads: int, head_dim: int, bytes_per_element: int = 2) -> dict[str, int]:
    r"""Memory that grows with the context length $T$, for one sequence.

    ``scores_bytes``: one layer's attention matrices, $H T^2$ elements (what FlashAttention avoids
    storing); ``kv_cache_bytes``: $2 L H d_h T$ elements (:func:`dlbook.inference.kv_cache_bytes`);
    ``attention_flops``: $4 L H d_h T^2$ for $QK^\top$ and the weighted sum over the whole sequence.
    """
    context = _positive_int("context", context)
    return {
        "scores_bytes": n_heads * context * context * bytes_per_element,
        "kv_cache_bytes": kv_cache_bytes(n_layers, n_heads, head_dim, context, bytes_per_element=bytes_per_element),
        "attention_flops": 4 * n_layers * n_heads * head_dim * context * context,
    }


# ----------------------------------------------------------------------------- alignment
def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""$-\log \sigma(r_w - r_l)$: the negative log-likelihood of "$w$ beats $l$" under Bradley-Terry.

    $P(w \succ l) = \sigma(r_w - r_l)$ (Bradley & Terry 1952); the reward-model loss of Ouyang et al.
    (2022, eq. 1). ``logsigmoid`` keeps large margins finite. Equals
    ``binary_cross_entropy_with_logits(r_w - r_l, ones)``.
    """
    _check_tensor("r_chosen", r_chosen)
    _check_tensor("r_rejected", r_rejected)
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen and r_rejected must have the same shape, got {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    loss = -F.logsigmoid(r_chosen - r_rejected)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def fit_bradley_terry(winners: Tensor, losers: Tensor, n_items: int, *, weight_decay: float = 0.0, max_iter: int = 500) -> Tensor:
    r"""One scalar reward per item by maximum likelihood: $\min_r \frac1m\sum \ell(r_{w} - r_{l}) + \frac{\lambda}{2}\|r\|^2$.

    Full-batch L-BFGS in float64 on :func:`bradley_terry_loss`. Rewards are identifiable only up to
    a constant, so the result is centred (mean 0). With ``weight_decay = 0`` an item that never
    loses has no finite MLE; pass a small ``weight_decay`` then. It is logistic regression without
    intercept on rows $e_w - e_l$ (scikit-learn's ``C`` $= 1 / (\lambda m)$).
    """
    _check_tensor("winners", winners)
    _check_tensor("losers", losers)
    n_items = _positive_int("n_items", n_items)
    if winners.shape != losers.shape or winners.ndim != 1:
        raise ValueError(f"winners and losers must be 1-D of the same length, got {tuple(winners.shape)} and {tuple(losers.shape)}")
    if len(winners) and (min(winners.min(), losers.min()) < 0 or max(winners.max(), losers.max()) >= n_items):
        raise ValueError(f"item indices must be in [0, {n_items})")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    r = torch.zeros(n_items, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([r], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = bradley_terry_loss(r[winners], r[losers]) + weight_decay / 2 * (r**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    r = r.detach()
    return r - r.mean()


def dpo_loss(
    policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, reference_chosen_logps: Tensor, reference_rejected_logps: Tensor,
    *, beta: float = 0.1, reduction: str = "mean",
) -> Tensor:
    r"""Direct Preference Optimization (Rafailov et al. 2023, eq. 7).

    .. math:: -\log\sigma\Big(\beta \log\frac{\pi_\theta(y_w)}{\pi_{\mathrm{ref}}(y_w)} - \beta \log\frac{\pi_\theta(y_l)}{\pi_{\mathrm{ref}}(y_l)}\Big)

    It is :func:`bradley_terry_loss` with the implicit reward $\hat r = \beta \log(\pi_\theta / \pi_{\mathrm{ref}})$.
    Inputs are log-probabilities of whole responses (summed over their tokens), one per pair.
    """
    for name, t in (("policy_chosen_logps", policy_chosen_logps), ("policy_rejected_logps", policy_rejected_logps),
                    ("reference_chosen_logps", reference_chosen_logps), ("reference_rejected_logps", reference_rejected_logps)):
        _check_tensor(name, t)
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    reward_chosen = beta * (policy_chosen_logps - reference_chosen_logps)
    reward_rejected = beta * (policy_rejected_logps - reference_rejected_logps)
    return bradley_terry_loss(reward_chosen, reward_rejected, reduction=reduction)


def _check_policy(ref_probs: Tensor, reward: Tensor, beta: float) -> None:
    _check_tensor("ref_probs", ref_probs)
    _check_tensor("reward", reward)
    if ref_probs.shape != reward.shape:
        raise ValueError(f"ref_probs and reward must have the same shape, got {tuple(ref_probs.shape)} and {tuple(reward.shape)}")
    if (ref_probs <= 0).any():
        raise ValueError("ref_probs must be > 0 everywhere (the optimum is zero where the reference is)")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")


def kl_regularized_optimum(ref_probs: Tensor, reward: Tensor, *, beta: float) -> Tensor:
    r"""$\pi^*(y) = \pi_{\mathrm{ref}}(y)\,e^{r(y)/\beta} / Z$, the maximiser of :func:`kl_regularized_objective`.

    Computed as ``softmax(log ref + r / beta)`` over the last dimension (no overflow for small
    $\beta$). Rafailov et al. (2023, eq. 4); Peters & Schaal (2007) for the general result.
    """
    _check_policy(ref_probs, reward, beta)
    return torch.softmax(ref_probs.log() + reward / beta, dim=-1)


def kl_regularized_objective(probs: Tensor, ref_probs: Tensor, reward: Tensor, *, beta: float) -> Tensor:
    r"""$J(\pi) = \mathbb{E}_{y\sim\pi}[r(y)] - \beta\,\mathrm{KL}(\pi \,\|\, \pi_{\mathrm{ref}})$ over the last dimension.

    Its maximum is $\beta \log Z = \beta \log \sum_y \pi_{\mathrm{ref}}(y) e^{r(y)/\beta}$, reached at
    :func:`kl_regularized_optimum`. Terms with $\pi(y) = 0$ contribute 0 to the KL.
    """
    _check_policy(ref_probs, reward, beta)
    _check_tensor("probs", probs)
    if probs.shape != ref_probs.shape:
        raise ValueError(f"probs and ref_probs must have the same shape, got {tuple(probs.shape)} and {tuple(ref_probs.shape)}")
    kl = (torch.special.xlogy(probs, probs) - probs * ref_probs.log()).sum(-1)  # 0 log 0 = 0
    return (probs * reward).sum(-1) - beta * kl


# ----------------------------------------------------------------------------- in-context learning
def linear_regression_prompts(n_prompts: int, n_points: int, dim: int, *, noise_std: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Prompts of a fresh linear task each: $w \sim \mathcal N(0, I_d)$, $x_i \sim \mathcal N(0, I_d)$, $y_i = w^\top x_i + \sigma\varepsilon_i$.

    Returns ``x`` ``(B, k, d)`` and ``y`` ``(B, k)``; the setting of Garg et al. (2022, Section 3),
    where $\mathbb E[y^2] = d$, so errors are reported divided by $d$.
    """
    n_prompts, n_points, dim = (_positive_int(n, v) for n, v in (("n_prompts", n_prompts), ("n_points", n_points), ("dim", dim)))
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    x = torch.randn(n_prompts, n_points, dim, generator=generator)
    w = torch.randn(n_prompts, dim, 1, generator=generator)
    y = (x @ w)[..., 0] + noise_std * torch.randn(n_prompts, n_points, generator=generator)  # (B, k)
    return x, y


def _check_prompts(x: Tensor, y: Tensor) -> None:
    _check_tensor("x", x)
    _check_tensor("y", y)
    if x.ndim != 3 or y.shape != x.shape[:2]:
        raise ValueError(f"x must be (B, k, d) and y (B, k), got {tuple(x.shape)} and {tuple(y.shape)}")


def least_squares_predictions(x: Tensor, y: Tensor) -> Tensor:
    r"""For each $i$: $\hat y_i = x_i^\top \hat w_i$ with $\hat w_i = X_{<i}^{+} y_{<i}$ (minimum-norm least squares).

    $\hat y_0 = 0$ (no examples yet: the prior mean). With $i \ge d$ noiseless points it is exact.
    Output ``(B, k)``.
    """
    _check_prompts(x, y)
    preds = [torch.zeros_like(y[:, 0])]
    for i in range(1, x.shape[1]):
        w = torch.linalg.pinv(x[:, :i]) @ y[:, :i, None]  # (B, d, 1)
        preds.append((x[:, i : i + 1] @ w)[:, 0, 0])
    return torch.stack(preds, dim=1)


def knn_predictions(x: Tensor, y: Tensor, *, k: int = 3) -> Tensor:
    r"""For each $i$: the mean of $y_j$ over the $\min(k, i)$ nearest $x_j$, $j < i$ (Euclidean); $\hat y_0 = 0$."""
    _check_prompts(x, y)
    k = _positive_int("k", k)
    preds = [torch.zeros_like(y[:, 0])]
    for i in range(1, x.shape[1]):
        dist = ((x[:, :i] - x[:, i : i + 1]) ** 2).sum(-1)  # (B, i)
        nearest = dist.topk(min(k, i), largest=False).indices
        preds.append(y[:, :i].gather(1, nearest).mean(1))
    return torch.stack(preds, dim=1)


def linear_self_attention(context: Tensor, queries: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor) -> Tensor:
    r"""Linear (softmax-free) attention of ``queries`` over ``context``: $\frac1n \sum_j W_V c_j\,(W_K c_j)^\top W_Q q$.

    ``context`` ``(B, n, m)``, ``queries`` ``(B, q, m)``, weights ``(m', m)``; output ``(B, q, m_v)``.
    With $c_j = (x_j, y_j)$, $q = (x, 0)$, $W_K = W_Q = \mathrm{diag}(I_d, 0)$ and $W_V$ mapping
    $y_j$ to $\eta y_j$ in the last coordinate, the output is $\frac{\eta}{n} \sum_j y_j x_j^\top x$:
    the prediction after one gradient step from $w = 0$ on $\frac{1}{2n}\sum_j (w^\top x_j - y_j)^2$
    (von Oswald et al. 2023, Proposition 1).
    """
    for name, t in (("context", context), ("queries", queries), ("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        _check_tensor(name, t)
    if context.ndim != 3 or queries.ndim != 3:
        raise ValueError(f"context and queries must be (B, n, m), got {tuple(context.shape)} and {tuple(queries.shape)}")
    k = context @ w_k.T  # (B, n, m')
    v = context @ w_v.T  # (B, n, m_v)
    q = queries @ w_q.T  # (B, q, m')
    return q @ k.transpose(1, 2) @ v / context.shape[1]  # (B, q, m_v)


class PromptRegressor(nn.Module):
    r"""A causal Transformer that reads $(x_1, y_1, x_2, y_2, \dots, x_k, y_k)$ and predicts $y_i$ at $x_i$.

    Tokens are $(x_i, 0)$ and $(0, y_i)$ in $\mathbb R^{d+1}$ (Garg et al. 2022), a linear read-in
    plus a learned position table, ``num_layers`` Pre-LN ``torch.nn.TransformerEncoderLayer`` under a
    causal mask, a linear read-out at the $x$ positions. ``forward(x, y)`` ``(B, k, d), (B, k) ->
    (B, k)``: prediction $i$ sees $x_{\le i}$ and $y_{<i}$ only.
    """

    def __init__(self, dim: int, max_points: int, *, d_model: int = 32, nhead: int = 4, num_layers: int = 2) -> None:
        super().__init__()
        self.dim, self.max_points = _positive_int("dim", dim), _positive_int("max_points", max_points)
        self.read_in = nn.Linear(dim + 1, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(2 * max_points, d_model))
        layer = nn.TransformerEncoderLayer(d_model, nhead, 2 * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.read_out = nn.Linear(d_model, 1)

    def tokens(self, x: Tensor, y: Tensor) -> Tensor:
        """The interleaved sequence ``(B, 2k, d + 1)``: $(x_1, 0), (0, y_1), \\dots$."""
        _check_prompts(x, y)
        B, k, d = x.shape
        x_tok = torch.cat([x, x.new_zeros(B, k, 1)], dim=-1)  # (B, k, d + 1)
        y_tok = torch.cat([x.new_zeros(B, k, d), y[..., None]], dim=-1)  # (B, k, d + 1)
        return torch.stack([x_tok, y_tok], dim=2).reshape(B, 2 * k, d + 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[-1] != self.dim or x.shape[1] > self.max_points:
            raise ValueError(f"x must be (B, k <= {self.max_points}, {self.dim}), got {tuple(x.shape)}")
        T = 2 * x.shape[1]
        h = self.read_in(self.tokens(x, y)) + self.pos[:T]  # (B, 2k, d_model)
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        h = self.encoder(h, mask=mask, is_causal=True)
        return self.read_out(h[:, 0::2])[..., 0]  # (B, k): the x positions
