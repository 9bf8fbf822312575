r"""Self-supervised, contrastive and multimodal learning at toy scale (the chapter "Frontiers").

The pieces the notebooks ``frontiers/03-self-supervised`` and ``frontiers/04-multimodal-and-nas``
share, each a pure function:

* views: :func:`random_views` (random rotation + shift + pixel noise of 8x8 digits, built on
  :mod:`dlbook.regularize`'s affine warp), :func:`mask_pixels`, :func:`bert_mask` (BERT's
  80/10/10 rule with ``-100`` labels);
* losses: :func:`masked_mse` (MAE's loss on the masked positions only), :func:`nt_xent`
  (SimCLR's loss over 2N views), :func:`clip_loss` (CLIP's symmetric InfoNCE),
  :func:`variance_loss` / :func:`covariance_loss` (VICReg's anti-collapse terms),
  :func:`momentum_update` and :func:`enqueue` (MoCo's key encoder and queue);
* measurements: :func:`effective_rank`, :func:`linear_probe`;
* multimodal and NAS sketches: :func:`patchify`, :func:`mixed_op`, :func:`pareto_front`.

Taught in the sections ``q-frontiers.self-supervised-masked-prediction`` (masks),
``q-frontiers.contrastive-pretraining-simclr-moco`` (views, NT-Xent, MoCo),
``q-frontiers.representation-collapse`` (VICReg terms, effective rank),
``q-frontiers.clip-contrastive-multimodal``, ``q-frontiers.multimodal-fusion`` (patches) and
``q-frontiers.neural-architecture-search`` (DARTS, Pareto front).

Conventions that could differ from other code: embeddings are rows; cosine similarity is
computed on rows normalized with an ``eps`` floor (as ``torch.nn.functional.normalize``);
``temperature`` divides similarities (CLIP's ``logit_scale`` is ``1 / temperature``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dlbook.regularize import _affine

__all__ = [
    "bert_mask",
    "clip_loss",
    "covariance_loss",
    "effective_rank",
    "enqueue",
    "linear_probe",
    "mask_pixels",
    "masked_mse",
    "mixed_op",
    "momentum_update",
    "nt_xent",
    "pareto_front",
    "patchify",
    "random_views",
    "variance_loss",
]


def _check_tensor(name: str, x: object, ndim: int | None = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


# -- views and masks -----------------------------------------------------------------------
def random_views(
    images: Tensor, *, max_angle: float = 15.0, max_shift: float = 1.0, noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""One random view per image (SimCLR's $t \sim \mathcal T$, Chen et al. 2020, sec. 2.1).

    Each image gets its own rotation $\theta \sim U(-a, a)$ degrees about the centre, then a shift
    $(d_x, d_y) \sim U(-s, s)^2$ pixels (bilinear, zero fill: the warp of
    :func:`dlbook.regularize.rotate` / :func:`~dlbook.regularize.translate`, one matrix per
    image), then Gaussian pixel noise $\mathcal N(0, \sigma^2)$. ``images``: (N, H, W) or
    (N, 1, H, W), returned in the same shape. With ``max_angle=max_shift=noise=0`` the view is the
    image itself.
    """
    _check_tensor("images", images)
    if images.dim() not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {tuple(images.shape)}")
    for name, value in (("max_angle", max_angle), ("max_shift", max_shift), ("noise", noise)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    x = images[:, None] if images.dim() == 3 else images  # (N, 1, H, W)
    n, (h, w) = x.shape[0], x.shape[-2:]
    angle = (2 * torch.rand(n, generator=generator, dtype=x.dtype) - 1) * math.radians(max_angle)
    shift = (2 * torch.rand(n, 2, generator=generator, dtype=x.dtype) - 1) * max_shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    tx, ty = -2 * shift[:, 0] / w, -2 * shift[:, 1] / h  # pixels -> normalized coordinates
    theta = torch.stack([torch.stack([cos, -sin, cos * tx - sin * ty], 1),
                         torch.stack([sin, cos, sin * tx + cos * ty], 1)], 1)  # (N, 2, 3): translate(rotate(x))
    out = _affine(x, theta)
    out = out + noise * torch.randn(out.shape, generator=generator, dtype=x.dtype)
    return out[:, 0] if images.dim() == 3 else out


def mask_pixels(x: Tensor, *, mask_ratio: float = 0.5, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Hide a random ``mask_ratio`` of each row's features (MAE, He et al. 2022, at pixel level).

    Returns ``(x_masked, mask)`` with ``mask`` boolean (True = hidden) and hidden entries set to 0;
    exactly ``round(mask_ratio * D)`` entries of each row of ``x`` (N, D) are hidden.
    """
    _check_tensor("x", x, 2)
    _check_prob("mask_ratio", mask_ratio)
    n, d = x.shape
    k = round(mask_ratio * d)
    order = torch.rand(n, d, generator=generator).argsort(dim=1)  # a random permutation per row
    mask = order < k  # (N, D): the k smallest ranks are hidden
    return x.masked_fill(mask, 0.0), mask


def masked_mse(input: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    r"""MAE's reconstruction loss: the mean squared error over the hidden entries only,
    $\frac{1}{|M|}\sum_{(i,j) \in M} (\hat x_{ij} - x_{ij})^2$ (He et al. 2022, sec. 3)."""
    _check_tensor("input", input)
    if input.shape != target.shape or mask.shape != input.shape:
        raise ValueError(f"input, target and mask must share a shape, got {tuple(input.shape)}, "
                         f"{tuple(target.shape)}, {tuple(mask.shape)}")
    if mask.dtype != torch.bool or not bool(mask.any()):
        raise ValueError("mask must be a boolean tensor with at least one True entry")
    return ((input - target)[mask] ** 2).mean()


def bert_mask(
    tokens: Tensor, *, vocab_size: int, mask_token_id: int, mask_prob: float = 0.15,
    replace_probs: Sequence[float] = (0.8, 0.1, 0.1), ignore_index: int = -100,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""BERT's masked-language-model corruption (Devlin et al. 2019, sec. 3.1).

    Each token is selected with probability ``mask_prob`` (15 %); a selected token becomes
    ``[MASK]`` with probability 0.8, a uniformly random token with 0.1, and stays with 0.1.
    Returns ``(inputs, labels)``: ``labels`` holds the original token at selected positions and
    ``ignore_index`` elsewhere, so ``cross_entropy(..., ignore_index=-100)`` scores selected
    positions only (Hugging Face's ``DataCollatorForLanguageModeling`` convention).
    """
    _check_tensor("tokens", tokens)
    _check_prob("mask_prob", mask_prob)
    if len(replace_probs) != 3 or abs(sum(replace_probs) - 1) > 1e-9 or min(replace_probs) < 0:
        raise ValueError(f"replace_probs must be three probabilities summing to 1, got {tuple(replace_probs)}")
    selected = torch.rand(tokens.shape, generator=generator) < mask_prob
    labels = torch.where(selected, tokens, torch.full_like(tokens, ignore_index))
    u = torch.rand(tokens.shape, generator=generator)  # one draw decides mask / random / keep
    to_mask = selected & (u < replace_probs[0])
    to_random = selected & (u >= replace_probs[0]) & (u < replace_probs[0] + replace_probs[1])
    random_tokens = torch.randint(vocab_size, tokens.shape, generator=generator, dtype=tokens.dtype)
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_token_id), tokens)
    inputs = torch.where(to_random, random_tokens, inputs)
    return inputs, labels


# -- contrastive losses ------------------------------------------------------------------
def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.5, eps: float = 1e-12) -> Tensor:
    r"""SimCLR's NT-Xent loss over the 2N views of N images (Chen et al. 2020, eq. 1 and alg. 1).

    With $u_k = z_k / \lVert z_k \rVert$ for the 2N rows of $[z_1; z_2]$ and $s_{kl} = u_k^\top u_l$,

    $$\ell_k = -\log \frac{\exp(s_{k,p(k)}/\tau)}{\sum_{l \ne k} \exp(s_{kl}/\tau)}, \qquad
    \mathcal L = \frac{1}{2N} \sum_{k=1}^{2N} \ell_k,$$

    where $p(k)$ is the other view of the same image: each view has one positive and $2N-2$
    negatives (both views of every other image). ``z1``, ``z2``: (N, D), row i of each is a view of
    image i. Cross-entropy with the self-similarity masked to $-\infty$.
    """
    _check_tensor("z1", z1, 2)
    _check_tensor("z2", z2, 2)
    if z1.shape != z2.shape or len(z1) < 2:
        raise ValueError(f"z1 and z2 must share a shape (N >= 2, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    _check_positive("temperature", temperature)
    n = len(z1)
    u = F.normalize(torch.cat([z1, z2]), dim=1, eps=eps)  # (2N, D)
    logits = u @ u.T / temperature  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))  # l != k
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # p(k)
    return F.cross_entropy(logits, positive)


def clip_loss(image_features: Tensor, text_features: Tensor, *, logit_scale: Tensor | float = 1 / 0.07,
              eps: float = 1e-12) -> Tensor:
    r"""CLIP's symmetric InfoNCE loss (Radford et al. 2021, fig. 3 pseudocode).

    With normalized rows $u_i$ (images), $v_j$ (texts) and $S_{ij} = e^{t}\, u_i^\top v_j$
    ($e^{t}$ = ``logit_scale``, a learnable $1/\tau$ in CLIP),

    $$\mathcal L = \tfrac12\Big[\tfrac1N \sum_i \mathrm{CE}(S_{i,:}, i)
    + \tfrac1N \sum_j \mathrm{CE}(S_{:,j}, j)\Big]:$$

    the mean of cross-entropy over the rows (image -> text) and over the columns (text -> image).
    Pair i is the positive of row i and column i; the other N - 1 entries are its negatives.
    """
    _check_tensor("image_features", image_features, 2)
    _check_tensor("text_features", text_features, 2)
    if image_features.shape != text_features.shape:
        raise ValueError(f"image_features and text_features must share a shape, got "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    scale = float(logit_scale.detach()) if isinstance(logit_scale, Tensor) else float(logit_scale)
    if not scale > 0:
        raise ValueError(f"logit_scale must be > 0, got {scale}")
    u = F.normalize(image_features, dim=1, eps=eps)
    v = F.normalize(text_features, dim=1, eps=eps)
    logits = logit_scale * u @ v.T  # (N, N): row i = image i against every text
    target = torch.arange(len(u))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def variance_loss(z: Tensor, *, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    r"""VICReg's variance term (Bardes, Ponce & LeCun 2022, eq. 1):
    $v(Z) = \frac1D \sum_j \max(0, \gamma - \sqrt{\mathrm{Var}(z_{:,j}) + \epsilon})$, unbiased variance.
    It is zero once every dimension's standard deviation reaches $\gamma$: no complete collapse."""
    _check_tensor("z", z, 2)
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: Tensor) -> Tensor:
    r"""VICReg's covariance term (Bardes et al. 2022, eq. 3): $c(Z) = \frac1D \sum_{i \ne j} C_{ij}^2$
    with $C$ the unbiased covariance of the columns of ``z`` (N, D). Decorrelating the dimensions
    stops them all carrying the same signal (dimensional collapse)."""
    _check_tensor("z", z, 2)
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)  # (D, D)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return (off_diagonal**2).sum() / d


@torch.no_grad()
def momentum_update(key_params: Sequence[Tensor], query_params: Sequence[Tensor], *, m: float = 0.999) -> list[Tensor]:
    r"""MoCo's key-encoder update $\theta_k \leftarrow m\,\theta_k + (1 - m)\,\theta_q$
    (He et al. 2020, eq. 2); returns new tensors (no in-place change), no gradient flows."""
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"m must be in [0, 1], got {m}")
    key_params, query_params = list(key_params), list(query_params)
    if len(key_params) != len(query_params):
        raise ValueError(f"need as many key as query parameters, got {len(key_params)} and {len(query_params)}")
    return [m * k + (1 - m) * q for k, q in zip(key_params, query_params)]


def enqueue(queue: Tensor, keys: Tensor) -> Tensor:
    """MoCo's dictionary (He et al. 2020, sec. 3.2): append the newest ``keys`` (B, D) to the
    ``queue`` (K, D) and drop the oldest B, so the number of negatives K never depends on B."""
    _check_tensor("queue", queue, 2)
    _check_tensor("keys", keys, 2)
    if keys.shape[1] != queue.shape[1] or len(keys) > len(queue):
        raise ValueError(f"keys {tuple(keys.shape)} must have the queue's width and at most its "
                         f"{len(queue)} rows")
    return torch.cat([queue[len(keys):], keys.detach()])


# -- measurements --------------------------------------------------------------------------
def effective_rank(z: Tensor, *, center: bool = True, eps: float = 1e-12) -> float:
    r"""Effective rank (Roy & Vetterli 2007): $\exp\!\big(-\sum_k p_k \log p_k\big)$ with
    $p_k = \sigma_k / \sum_l \sigma_l$ the normalized singular values of ``z`` (N, D), its columns
    centred first when ``center``. Between 1 (all rows on one line) and $\min(N, D)$ (equal
    singular values); unchanged by rescaling ``z``."""
    _check_tensor("z", z, 2)
    z = z.detach().double()
    if center:
        z = z - z.mean(dim=0)
    sigma = torch.linalg.svdvals(z)
    if not float(sigma.sum()) > eps:
        raise ValueError("z has no variance (all singular values are zero): effective rank undefined")
    p = sigma / sigma.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def linear_probe(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                 test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, *, C: float = 1.0) -> float:
    """Test accuracy of a logistic regression trained on frozen features (the linear-probe
    protocol of Chen et al. 2020, sec. B.6): standardized features, scikit-learn's
    ``LogisticRegression(C=C, max_iter=2000)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_positive("C", C)
    arrays = [np.asarray(a.detach() if isinstance(a, Tensor) else a) for a in
              (train_features, train_labels, test_features, test_labels)]
    if len(arrays[0]) != len(arrays[1]) or len(arrays[2]) != len(arrays[3]):
        raise ValueError("features and labels must have the same number of rows")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    probe.fit(arrays[0], arrays[1])
    return float(probe.score(arrays[2], arrays[3]))


# -- multimodal and NAS sketches -------------------------------------------------------------
def patchify(images: Tensor, patch_size: int) -> Tensor:
    r"""ViT's patch tokens (Dosovitskiy et al. 2021, sec. 3.1): (B, C, H, W) ->
    (B, HW/P^2, C P^2), patches in row-major order, each flattened channel-first like
    ``torch.nn.functional.unfold``."""
    _check_tensor("images", images, 4)
    b, c, h, w = images.shape
    if not isinstance(patch_size, int) or patch_size < 1 or h % patch_size or w % patch_size:
        raise ValueError(f"patch_size must be a positive int dividing H={h} and W={w}, got {patch_size}")
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def mixed_op(x: Tensor, ops: Sequence[Callable[[Tensor], Tensor]], alpha: Tensor) -> Tensor:
    r"""DARTS's continuous relaxation (Liu, Simonyan & Yang 2019, eq. 2):
    $\bar o(x) = \sum_k \mathrm{softmax}(\alpha)_k\, o_k(x)$, differentiable in $\alpha$."""
    _check_tensor("alpha", alpha, 1)
    if len(ops) != len(alpha) or len(ops) == 0:
        raise ValueError(f"need one architecture logit per op, got {len(alpha)} logits for {len(ops)} ops")
    weights = torch.softmax(alpha, dim=0)
    return sum(w * op(x) for w, op in zip(weights, ops))


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices of the non-dominated rows of ``points`` (n, k), every objective to be *minimized*
    (negate one to maximize it): row i is dominated when some row is <= in every objective and <
    in at least one. Returned in increasing index order; O(n^2 k)."""
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"points must be a non-empty (n, k) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points must be finite")
    dominated = [bool(np.any(np.all(p <= p[i], axis=1) & np.any(p < p[i], axis=1))) for i in range(len(p))]
    return [i for i, d in enumerate(dominated) if not d]
