"""Loss functions: reference implementations taught in the chapter ``chapters/losses``.

Where torch has the loss, the function carries torch's name, argument order, keyword names and
defaults (``cross_entropy``, ``binary_cross_entropy_with_logits``, ``mse_loss``, ``l1_loss``,
``huber_loss``, ``smooth_l1_loss``, ``kl_div``, ``triplet_margin_loss``, ``multi_margin_loss``),
so a test can pass the same arguments to both. The others (focal, MSLE, pinball, MAPE, hinge,
the IoU family, InfoNCE, distillation, Dice, DETR's Hungarian matching) follow the paper that
defines them; each docstring names it.

Conventions shared by every function:

* ``input`` holds logits unless the name says probabilities; classes are on dim 1.
* ``reduction`` is ``"none" | "mean" | "sum"`` (``kl_div`` also takes ``"batchmean"``).
* Numerically stable by construction: probabilities are never formed and then logged; the
  log-probabilities come from :func:`logsumexp` and :func:`log_sigmoid`.
* Bad input raises ``ValueError``/``TypeError`` naming the offending value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")


# -- helpers -------------------------------------------------------------------------------
def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction`` to elementwise losses."""
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_tensor(name: str, x: object) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def _check_same_shape(input: Tensor, target: Tensor) -> None:
    _check_tensor("input", input)
    _check_tensor("target", target)
    if input.shape != target.shape:
        raise ValueError(f"input and target must have the same shape, got input {tuple(input.shape)} and target {tuple(target.shape)}")


def _check_unit_interval(name: str, x: Tensor) -> None:
    if x.numel() and (torch.isnan(x).any() or x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]")


def logsumexp(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""$\log\sum_j e^{x_j}$ computed as $m + \log\sum_j e^{x_j - m}$ with $m = \max_j x_j$.

    Why: subtracting the maximum first makes every exponent $\le 0$, so ``exp`` cannot overflow
    and the largest term is exactly 1, so the sum cannot underflow to 0 either.
    """
    m = x.amax(dim=dim, keepdim=True).detach()  # the shift; its gradient cancels exactly
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf row: no shift
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$\log \mathrm{softmax}(z)_k = z_k - \log\sum_j e^{z_j}$, through :func:`logsumexp`."""
    return input - logsumexp(input, dim=dim, keepdim=True)


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    r"""$\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}$, as ``exp(log_softmax)`` (stable)."""
    return torch.exp(log_softmax(input, dim=dim))


def log_sigmoid(x: Tensor) -> Tensor:
    r"""$\log\sigma(x) = \min(x, 0) - \log(1 + e^{-|x|})$: the exponent is $\le 0$, no overflow."""
    return torch.clamp(x, max=0) - torch.log1p(torch.exp(-x.abs()))


# -- classification ------------------------------------------------------------------------
def _class_indices(input: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Validate integer targets for ``input`` of shape (N, C, ...); return (safe target, mask)."""
    n_classes = input.shape[1]
    if target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)} (expected {tuple(input.shape[:1] + input.shape[2:])})")
    mask = target != ignore_index
    real = target[mask]
    if real.numel() and (real.min() < 0 or real.max() >= n_classes):
        raise ValueError(f"target class index out of range [0, {n_classes - 1}]: got values in [{real.min().item()}, {real.max().item()}]")
    return torch.where(mask, target, torch.zeros_like(target)), mask


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Softmax cross-entropy (交叉熵) from logits, as ``torch.nn.functional.cross_entropy``.

    $\ell_i = -\sum_k q_{ik} \log \mathrm{softmax}(z_i)_k$ with the smoothed target
    $q = (1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon / C$ (Szegedy et al. 2016, sec. 7).
    Its gradient is $\partial \ell / \partial z = \mathrm{softmax}(z) - q$.
    ``input``: (N, C, ...) logits. ``target``: (N, ...) class indices, or (N, C, ...)
    probabilities. With class indices, ``weight`` $w$ scales each term and ``"mean"`` divides
    by $\sum_i w_{y_i}$ over non-ignored positions (torch's convention).
    Taught in ``chapters/losses/01-classification`` (q-losses.softmax-cross-entropy-gradient).
    """
    _check_tensor("input", input)
    _check_tensor("target", target)
    if input.dim() < 2:
        raise ValueError(f"input must have shape (N, C, ...), got {tuple(input.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    C = input.shape[1]
    w = torch.ones(C, dtype=input.dtype) if weight is None else weight.to(input.dtype)
    w_c = w.view(1, C, *([1] * (input.dim() - 2)))  # broadcast over (N, C, ...)
    logp = log_softmax(input, dim=1)  # (N, C, ...)
    if target.is_floating_point():
        _check_same_shape(input, target)
        q = (1 - label_smoothing) * target + label_smoothing / C
        return _reduce(-(w_c * q * logp).sum(1), reduction)
    y, mask = _class_indices(input, target, ignore_index)
    nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1) * w[y] * mask  # (N, ...)
    smooth = -(w_c * logp).sum(1) * mask / C  # (N, ...): the uniform part of q
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    if reduction == "mean":
        return loss.sum() / (w[y] * mask).sum()
    return _reduce(loss, reduction)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, *, reduction: str = "mean"
) -> Tensor:
    r"""BCE on probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    $\ell = -w\,[y \log p + (1-y) \log(1-p)]$, each log clamped at $-100$ as torch does so
    that $p \in \{0, 1\}$ gives a finite (but wrong) value: prefer
    :func:`binary_cross_entropy_with_logits`.
    """
    _check_same_shape(input, target)
    _check_unit_interval("input", input)
    _check_unit_interval("target", target)
    log_p = torch.clamp(torch.log(input), min=-100)
    log_1mp = torch.clamp(torch.log(1 - input), min=-100)
    loss = -(target * log_p + (1 - target) * log_1mp)
    return _reduce(loss if weight is None else weight * loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Binary cross-entropy (二元交叉熵) from logits, as torch's function of that name.

    $\ell = -w\,[\,p_w\, y \log\sigma(z) + (1-y)\log\sigma(-z)\,]$, with both logs from the
    stable :func:`log_sigmoid`; the gradient is $\partial\ell/\partial z = \sigma(z) - y$
    (for $w = p_w = 1$). ``target`` holds probabilities in [0, 1].
    """
    _check_same_shape(input, target)
    _check_unit_interval("target", target)
    p_w = 1.0 if pos_weight is None else pos_weight
    loss = -(p_w * target * log_sigmoid(input) + (1 - target) * log_sigmoid(-input))
    return _reduce(loss if weight is None else weight * loss, reduction)


def focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class focal loss (Lin et al. 2017, eq. 5, with softmax instead of sigmoid).

    $\ell_i = -\alpha_{y_i} (1 - p_{t})^\gamma \log p_{t}$ with $p_t = \mathrm{softmax}(z_i)_{y_i}$.
    $\gamma = 0$ and ``alpha=None`` give :func:`cross_entropy` exactly. ``input``: (N, C, ...),
    ``target``: (N, ...) class indices; ``alpha``: (C,) class weights or None.
    Taught in ``chapters/losses/02-imbalance-and-geometry`` (q-losses.focal-loss-gamma-alpha).
    """
    _check_tensor("input", input)
    _check_tensor("target", target)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    y, _ = _class_indices(input, target, ignore_index=-(10**9))
    log_pt = log_softmax(input, dim=1).gather(1, y.unsqueeze(1)).squeeze(1)  # (N, ...)
    p_t = torch.exp(log_pt)
    loss = -((1 - p_t) ** gamma) * log_pt
    return _reduce(loss if alpha is None else alpha.to(input.dtype)[y] * loss, reduction)


def sigmoid_focal_loss(
    inputs: Tensor, targets: Tensor, *, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> Tensor:
    r"""Binary focal loss, torchvision's ``sigmoid_focal_loss`` convention (Lin et al. 2017, eq. 5).

    $\ell = -\alpha_t (1-p_t)^\gamma \log p_t$, $p_t = p$ if $y=1$ else $1-p$,
    $\alpha_t = \alpha$ if $y = 1$ else $1 - \alpha$; a negative ``alpha`` disables weighting.
    Both the positive and the negative term are kept; $\log p_t$ comes from the stable BCE.
    """
    _check_same_shape(inputs, targets)
    _check_unit_interval("targets", targets)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    p = torch.sigmoid(inputs)
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")  # -log p_t
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def hinge_loss(input: Tensor, target: Tensor, *, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    r"""Binary hinge loss (Hinge损失) $\max(0, m - y f)$ with labels $y \in \{-1, +1\}$ (Cortes & Vapnik 1995)."""
    _check_same_shape(input, target)
    if not torch.all((target == 1) | (target == -1)):
        raise ValueError(f"target must hold labels -1 or +1, got values {torch.unique(target).tolist()}")
    return _reduce(torch.relu(margin - target * input), reduction)  # relu: gradient 0 at y f = m too


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class hinge (Weston & Watkins 1999 / Crammer-Singer style sum), as torch's ``multi_margin_loss``.

    $\ell_i = \frac{1}{C}\sum_{j \ne y_i} w_{y_i}\max(0, m - z_{i,y_i} + z_{ij})^p$.
    ``input``: (N, C) scores; ``target``: (N,) class indices.
    """
    _check_tensor("input", input)
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    y, _ = _class_indices(input, target, ignore_index=-(10**9))
    z_y = input.gather(1, y.unsqueeze(1))  # (N, 1)
    hinge = torch.clamp(margin - z_y + input, min=0) ** p  # (N, C)
    hinge = hinge.scatter(1, y.unsqueeze(1), 0.0)  # drop j = y_i
    if weight is not None:
        hinge = hinge * weight.to(input.dtype)[y].unsqueeze(1)
    return _reduce(hinge.sum(1) / input.shape[1], reduction)


# -- regression ----------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Mean squared error $(\hat y - y)^2$, as ``torch.nn.functional.mse_loss``."""
    _check_same_shape(input, target)
    return _reduce((input - target) ** 2, reduction)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Mean absolute error $|\hat y - y|$, as ``torch.nn.functional.l1_loss`` (subgradient 0 at 0)."""
    _check_same_shape(input, target)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    r"""Huber loss (Huber 1964): $\frac12 r^2$ if $|r| \le \delta$ else $\delta(|r| - \frac12\delta)$.

    Its gradient is $r$ clipped to $[-\delta, \delta]$. ``huber_loss(delta=d) ==
    d * smooth_l1_loss(beta=d)``.
    """
    _check_same_shape(input, target)
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    r = (input - target).abs()
    loss = torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    r"""Smooth L1 (Girshick 2015, eq. 3): $\frac{0.5 r^2}{\beta}$ if $|r| < \beta$ else $|r| - \frac{\beta}{2}$.

    Its gradient is $r/\beta$ clipped to $[-1, 1]$; ``beta=0`` is plain L1, as in torch.
    """
    _check_same_shape(input, target)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    r = (input - target).abs()
    loss = torch.where(r < beta, 0.5 * r**2 / beta, r - 0.5 * beta)
    return _reduce(loss, reduction)


def msle_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Mean squared logarithmic error (对数均方误差): $(\log(1+\hat y) - \log(1+y))^2$.

    As scikit-learn's ``mean_squared_log_error`` (with ``reduction="mean"``); both need
    $\hat y, y > -1$.
    """
    _check_same_shape(input, target)
    if input.numel() and (input.min() <= -1 or target.min() <= -1):
        raise ValueError(f"msle_loss needs input and target > -1, got minima {input.min().item():.4g} and {target.min().item():.4g}")
    return _reduce((torch.log1p(input) - torch.log1p(target)) ** 2, reduction)


def pinball_loss(input: Tensor, target: Tensor, *, quantile: float = 0.5, reduction: str = "mean") -> Tensor:
    r"""Quantile (pinball) loss (分位数损失; Koenker & Bassett 1978).

    $\ell_\tau(r) = \max(\tau r, (\tau - 1) r)$ with $r = y - \hat y$; its minimiser over a
    constant is the $\tau$-quantile of $y$. Equals scikit-learn's ``mean_pinball_loss(alpha=tau)``.
    """
    _check_same_shape(input, target)
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    r = target - input
    return _reduce(torch.maximum(quantile * r, (quantile - 1) * r), reduction)


def mape_loss(input: Tensor, target: Tensor, *, eps: float = float(np.finfo(np.float64).eps), reduction: str = "mean") -> Tensor:
    r"""Mean absolute percentage error $|\hat y - y| / \max(|y|, \epsilon)$, scikit-learn's convention (a fraction, not %)."""
    _check_same_shape(input, target)
    return _reduce((input - target).abs() / torch.clamp(target.abs(), min=eps), reduction)


# -- divergences, embeddings, distillation --------------------------------------------------
def kl_div(input: Tensor, target: Tensor, *, reduction: str = "mean", log_target: bool = False) -> Tensor:
    r"""KL divergence (KL散度) as ``torch.nn.functional.kl_div``: ``input`` is $\log q$.

    Pointwise $p (\log p - \log q)$ (0 where $p = 0$), so the sum is $\mathrm{KL}(p \,\|\, q)$.
    ``"batchmean"`` divides the sum by the batch size (the true KL per sample); ``"mean"``
    divides by the number of elements, as torch does.
    """
    _check_same_shape(input, target)
    if log_target:
        loss = torch.exp(target) * (target - input)
    else:
        loss = torch.where(target > 0, target * (torch.log(torch.where(target > 0, target, 1.0)) - input), 0.0)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Triplet loss (三元组损失): $\max(0, d(a,p) - d(a,n) + m)$, as ``torch.nn.TripletMarginLoss``.

    FaceNet (Schroff et al. 2015, eq. 1) uses *squared* distances between L2-normalized
    embeddings, $\max(0, \|a-p\|_2^2 - \|a-n\|_2^2 + \alpha)$; this function, like torch, uses the
    plain distance (the form Hermans et al. 2017 recommend); for FaceNet's form, normalize the
    embeddings and compute the squared distances directly.
    $d(x, y) = \|x - y + \epsilon\|_p$ as torch (eps added to the difference);
    ``swap=True`` uses $\min(d(a,n), d(p,n))$ (Balntas et al. 2016).
    """
    _check_same_shape(anchor, positive)
    _check_same_shape(anchor, negative)
    d_ap = torch.linalg.vector_norm(anchor - positive + eps, ord=p, dim=-1)
    d_an = torch.linalg.vector_norm(anchor - negative + eps, ord=p, dim=-1)
    if swap:
        d_an = torch.minimum(d_an, torch.linalg.vector_norm(positive - negative + eps, ord=p, dim=-1))
    return _reduce(torch.clamp(d_ap - d_an + margin, min=0), reduction)


def contrastive_loss(x1: Tensor, x2: Tensor, label: Tensor, *, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    r"""Pairwise contrastive loss (对比损失; Hadsell, Chopra & LeCun 2006).

    $\ell = \frac12\, y\, d^2 + \frac12 (1-y) \max(0, m - d)^2$ with $d = \|x_1 - x_2\|_2$ and
    $y = 1$ for a similar pair (the paper writes $Y = 0$ for similar: the roles are swapped here).
    """
    _check_same_shape(x1, x2)
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)
    if label.shape != d.shape:
        raise ValueError(f"label shape {tuple(label.shape)} must be {tuple(d.shape)}")
    return _reduce(0.5 * label * d**2 + 0.5 * (1 - label) * torch.clamp(margin - d, min=0) ** 2, reduction)


def info_nce(
    query: Tensor, positive_key: Tensor, negative_keys: Tensor | None = None, *, temperature: float = 0.1, reduction: str = "mean"
) -> Tensor:
    r"""InfoNCE / NT-Xent (van den Oord et al. 2018; Chen et al. 2020, eq. 1).

    $\ell_i = -\log \frac{e^{s_{i+}/\tau}}{e^{s_{i+}/\tau} + \sum_j e^{s_{ij}/\tau}}$ with cosine
    similarities $s$: :func:`cross_entropy` over logits $[s_{i+}, s_{i1}, \dots] / \tau$, target 0.
    ``query``, ``positive_key``: (N, D); ``negative_keys``: (M, D) shared negatives, or None for
    in-batch negatives (the other rows' positives).
    """
    _check_same_shape(query, positive_key)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = query / torch.linalg.vector_norm(query, dim=-1, keepdim=True)
    k = positive_key / torch.linalg.vector_norm(positive_key, dim=-1, keepdim=True)
    if negative_keys is None:
        logits = q @ k.T / temperature  # (N, N): positives on the diagonal
        return cross_entropy(logits, torch.arange(len(q)), reduction=reduction)
    n = negative_keys / torch.linalg.vector_norm(negative_keys, dim=-1, keepdim=True)
    s_pos = (q * k).sum(-1, keepdim=True)  # (N, 1)
    logits = torch.cat([s_pos, q @ n.T], dim=1) / temperature  # (N, 1 + M)
    return cross_entropy(logits, torch.zeros(len(q), dtype=torch.long), reduction=reduction)


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    target: Tensor | None = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> Tensor:
    r"""Knowledge-distillation loss (知识蒸馏损失; Hinton, Vinyals & Dean 2015, sec. 2).

    $L = \alpha\,T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)) + (1-\alpha)\,\mathrm{CE}(s, y)$,
    KL averaged over the batch. The temperature divides the *logits*; $T^2$ keeps the soft
    term's gradient at the same scale as $T$ changes. ``target=None`` keeps only the soft term.
    """
    _check_same_shape(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    T = temperature
    log_q = log_softmax(student_logits / T, dim=1)
    log_p = log_softmax(teacher_logits / T, dim=1)
    soft = T**2 * kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    if target is None:
        return soft
    return alpha * soft + (1 - alpha) * cross_entropy(student_logits, target)


def dice_loss(
    input: Tensor, target: Tensor, *, smooth: float = 0.0, eps: float = 1e-7, squared_pred: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft Dice loss (Dice损失): $1 - \frac{2\sum p g + s}{\sum p + \sum g + s + \epsilon}$.

    Two variants are in use. The default is the linear form (Sudre et al. 2017 without class
    weights; MONAI's ``DiceLoss`` default): on hard masks with $s = 0$ it is $1 - F_1$.
    ``squared_pred=True`` is V-Net's form (Milletari et al. 2016, eq. 1), squares in the
    denominator, $1 - \frac{2\sum p g + s}{\sum p^2 + \sum g^2 + s + \epsilon}$ (MONAI's
    ``squared_pred=True``). The two agree on hard masks ($p^2 = p$) and differ on soft ones.

    ``input``: (N, ...) foreground probabilities, ``target``: (N, ...) masks; sums run over
    all dims but the first, one loss per sample.
    """
    _check_same_shape(input, target)
    _check_unit_interval("input", input)
    if not isinstance(squared_pred, bool):
        raise TypeError(f"squared_pred must be a bool, got {type(squared_pred).__name__}")
    p, g = input.flatten(1), target.flatten(1)
    denom = (p**2).sum(1) + (g**2).sum(1) if squared_pred else p.sum(1) + g.sum(1)
    dice = (2 * (p * g).sum(1) + smooth) / (denom + smooth + eps)
    return _reduce(1 - dice, reduction)


# -- boxes: aligned (elementwise) IoU family on xyxy boxes ----------------------------------
def _check_boxes(boxes1: Tensor, boxes2: Tensor) -> None:
    _check_tensor("boxes1", boxes1)
    _check_tensor("boxes2", boxes2)
    if boxes1.shape[-1] != 4 or boxes2.shape[-1] != 4:
        raise ValueError(f"boxes must have a last dim of 4 (x1, y1, x2, y2), got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if (b[..., 2] < b[..., 0]).any() or (b[..., 3] < b[..., 1]).any():
            raise ValueError(f"{name} must be xyxy with x2 >= x1 and y2 >= y1")


def _iou_and_enclosure(b1: Tensor, b2: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """IoU, union, and the enclosing box's width and height for broadcastable (..., 4) boxes."""
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    iw = torch.clamp(torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0]), min=0)
    ih = torch.clamp(torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1]), min=0)
    inter = iw * ih
    union = area1 + area2 - inter
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])
    return inter / (union + eps), union, cw, ch


def box_iou_aligned(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    r"""IoU of box ``i`` in ``boxes1`` with box ``i`` in ``boxes2`` (xyxy, broadcastable (..., 4)).

    $\mathrm{IoU} = |A \cap B| / (|A \cup B| + \epsilon)$. For the (N, M) pairwise matrix see
    ``dlbook.boxes``; here ``boxes1[:, None]`` with ``boxes2[None]`` broadcasts to it.
    """
    _check_boxes(boxes1, boxes2)
    return _iou_and_enclosure(boxes1, boxes2, eps)[0]


def iou_loss(boxes1: Tensor, boxes2: Tensor, *, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    r"""IoU loss $1 - \mathrm{IoU}$ (Yu et al. 2016 use $-\ln \mathrm{IoU}$; this is the linear form)."""
    return _reduce(1 - box_iou_aligned(boxes1, boxes2, eps=eps), reduction)


def giou_loss(boxes1: Tensor, boxes2: Tensor, *, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    r"""GIoU loss (Rezatofighi et al. 2019, Alg. 1): $1 - \mathrm{IoU} + \frac{|C| - |A\cup B|}{|C|}$.

    $C$ is the smallest enclosing box; GIoU $\in (-1, 1]$, equals IoU when $C = A \cup B$
    (e.g. nested boxes) and is negative for distant boxes. As torchvision's
    ``generalized_box_iou_loss``.
    """
    _check_boxes(boxes1, boxes2)
    iou, union, cw, ch = _iou_and_enclosure(boxes1, boxes2, eps)
    area_c = cw * ch
    giou = iou - (area_c - union) / (area_c + eps)
    return _reduce(1 - giou, reduction)


def _centre_term(b1: Tensor, b2: Tensor, cw: Tensor, ch: Tensor, eps: float) -> Tensor:
    r"""$\rho^2(b, b^{gt}) / c^2$: squared centre distance over the enclosing box's squared diagonal."""
    dx = (b1[..., 0] + b1[..., 2] - b2[..., 0] - b2[..., 2]) / 2
    dy = (b1[..., 1] + b1[..., 3] - b2[..., 1] - b2[..., 3]) / 2
    return (dx**2 + dy**2) / (cw**2 + ch**2 + eps)


def diou_loss(boxes1: Tensor, boxes2: Tensor, *, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    r"""DIoU loss (Zheng et al. 2020, eq. 6): $1 - \mathrm{IoU} + \rho^2(b, b^{gt}) / c^2$."""
    _check_boxes(boxes1, boxes2)
    iou, _, cw, ch = _iou_and_enclosure(boxes1, boxes2, eps)
    return _reduce(1 - iou + _centre_term(boxes1, boxes2, cw, ch, eps), reduction)


def ciou_loss(boxes1: Tensor, boxes2: Tensor, *, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    r"""CIoU loss (Zheng et al. 2020, eqs. 8-11): DIoU loss $+ \alpha v$.

    $v = \frac{4}{\pi^2}(\arctan\frac{w^{gt}}{h^{gt}} - \arctan\frac{w}{h})^2$,
    $\alpha = v / ((1 - \mathrm{IoU}) + v)$, treated as a constant in the gradient (detached),
    as the paper specifies. ``boxes2`` is the target.
    """
    _check_boxes(boxes1, boxes2)
    iou, _, cw, ch = _iou_and_enclosure(boxes1, boxes2, eps)
    w, h = boxes1[..., 2] - boxes1[..., 0], boxes1[..., 3] - boxes1[..., 1]
    w_gt, h_gt = boxes2[..., 2] - boxes2[..., 0], boxes2[..., 3] - boxes2[..., 1]
    v = (4 / math.pi**2) * (torch.atan(w_gt / (h_gt + eps)) - torch.atan(w / (h + eps))) ** 2
    alpha = (v / (1 - iou + v + eps)).detach()
    return _reduce(1 - iou + _centre_term(boxes1, boxes2, cw, ch, eps) + alpha * v, reduction)


def wiou_v1_loss(boxes1: Tensor, boxes2: Tensor, *, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    r"""Wise-IoU v1 (Tong et al. 2023, eq. 8): $R_{WIoU}\,(1 - \mathrm{IoU})$.

    $R_{WIoU} = \exp\big(\rho^2(b, b^{gt}) / (W_g^2 + H_g^2)^*\big) \ge 1$, where $^*$ means the
    enclosing box's size is detached from the graph (the paper's convention).
    """
    _check_boxes(boxes1, boxes2)
    iou, _, cw, ch = _iou_and_enclosure(boxes1, boxes2, eps)
    r_wiou = torch.exp(_centre_term(boxes1, boxes2, cw.detach(), ch.detach(), eps))
    return _reduce(r_wiou * (1 - iou), reduction)


# -- set prediction: DETR's Hungarian matching ---------------------------------------------
def detr_matching_cost(
    pred_logits: Tensor, pred_boxes: Tensor, tgt_labels: Tensor, tgt_boxes: Tensor,
    *, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
) -> Tensor:
    r"""DETR's matching cost (Carion et al. 2020, sec. 3.1), shape (Q, G) for Q queries, G objects.

    $C_{ij} = -\lambda_c\,\hat p_i(c_j) + \lambda_{L1}\|\hat b_i - b_j\|_1 - \lambda_g\,\mathrm{GIoU}(\hat b_i, b_j)$.
    ``pred_logits``: (Q, K+1) with the last class "no object"; boxes are xyxy.
    """
    prob = softmax(pred_logits, dim=-1)  # (Q, K+1)
    c_class = -prob[:, tgt_labels]  # (Q, G)
    c_bbox = (pred_boxes[:, None, :] - tgt_boxes[None, :, :]).abs().sum(-1)  # (Q, G)
    c_giou = giou_loss(pred_boxes[:, None, :], tgt_boxes[None, :, :]) - 1  # -GIoU, (Q, G)
    return cost_class * c_class + cost_bbox * c_bbox + cost_giou * c_giou


def hungarian_match(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-cost one-to-one assignment (Kuhn 1955) via ``scipy.optimize.linear_sum_assignment``.

    Returns (rows, cols) index tensors; with Q >= G every column (object) gets one row (query).
    """
    if cost.dim() != 2:
        raise ValueError(f"cost must be a 2-D (queries, objects) matrix, got shape {tuple(cost.shape)}")
    from scipy.optimize import linear_sum_assignment  # here, not at import: scipy.optimize costs ~0.35 s

    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def brute_force_match(cost: Tensor) -> float:
    """The minimum assignment cost by trying every injective map objects -> queries (tiny sets only)."""
    Q, G = cost.shape
    return min(sum(cost[q, g].item() for g, q in enumerate(perm)) for perm in itertools.permutations(range(Q), G))


def detr_set_loss(
    pred_logits: Tensor, pred_boxes: Tensor, tgt_labels: Tensor, tgt_boxes: Tensor,
    *, eos_coef: float = 0.1, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
) -> Tensor:
    r"""DETR's Hungarian set loss (二分图匹配损失; Carion et al. 2020, eq. 2) for one image.

    Match with :func:`hungarian_match`; unmatched queries are trained towards "no object"
    (class K, weight ``eos_coef``); matched ones add $\lambda_{L1}$ L1 and $\lambda_g$ GIoU box
    losses, normalised by the number of objects G.
    """
    K = pred_logits.shape[1] - 1
    rows, cols = hungarian_match(detr_matching_cost(pred_logits, pred_boxes, tgt_labels, tgt_boxes,
                                                    cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou))
    classes = torch.full((pred_logits.shape[0],), K, dtype=torch.long)
    classes[rows] = tgt_labels[cols]  # matched queries get their object's class
    weight = torch.ones(K + 1, dtype=pred_logits.dtype)
    weight[K] = eos_coef
    loss_class = cross_entropy(pred_logits, classes, weight)
    G = max(len(tgt_labels), 1)
    loss_l1 = (pred_boxes[rows] - tgt_boxes[cols]).abs().sum() / G
    loss_giou = giou_loss(pred_boxes[rows], tgt_boxes[cols]).sum() / G
    return loss_class + cost_bbox * loss_l1 + cost_giou * loss_giou
