"""Regularization: penalties, dropout and its structured variants, data augmentation, early
stopping and adversarial examples (the chapter "Regularization and generalization").

Conventions (stated once, used everywhere):

* ``p`` is the probability of **dropping** a unit, as in :func:`torch.nn.functional.dropout`;
  the keep probability is ``1 - p``. Kept units are rescaled during training ("inverted"
  dropout), so evaluation is the identity.
* All randomness comes from an explicit ``generator`` (a :class:`torch.Generator`); ``None``
  falls back to torch's global generator, exactly as torch's own samplers do.
* Penalties follow the gradient convention of ``torch.optim.SGD(weight_decay=lam)``:
  ``l2_penalty(w, lam) = lam/2 * ||w||^2`` so that its gradient is ``lam * w``.
  :func:`elastic_net_penalty` uses scikit-learn's ``alpha``/``l1_ratio`` parametrization.
* Images are float tensors ``(C, H, W)`` or ``(N, C, H, W)`` with values in ``[0, 1]``.

Back-link: chapters/regularization (one notebook per group of sections).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AUGMENTATIONS",
    "EarlyStopping",
    "bias_variance",
    "brightness",
    "contrast",
    "cutmix",
    "drop_path",
    "dropblock",
    "dropout",
    "elastic_net_penalty",
    "fgsm",
    "fit_elastic_net",
    "l1_penalty",
    "l2_penalty",
    "mixup",
    "mosaic",
    "pgd",
    "r_drop_loss",
    "rand_augment",
    "rotate",
    "shear_x",
    "solarize",
    "soft_threshold",
    "survival_probability",
    "symmetric_kl",
    "translate",
]


# -- validation helpers --------------------------------------------------------------------
def _check_p(p: float, name: str = "p") -> None:
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        raise TypeError(f"{name} must be a float, got {type(p).__name__}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def _check_nonneg(value: float, name: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _as_list(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(params, Tensor):
        return [params]
    params = list(params)
    if not all(isinstance(t, Tensor) for t in params):
        raise TypeError("params must be a Tensor or an iterable of Tensors")
    return params


# -- dropout and its structured variants ---------------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True, *, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014, JMLR 15; inverted scaling as in torch).

    .. math:: m_i \\sim \\mathrm{Bernoulli}(1-p), \\qquad y_i = m_i x_i / (1-p)

    so :math:`\\mathbb E[y_i] = x_i` and evaluation (``training=False``) is the identity.
    ``p`` is the probability of *dropping* (torch's convention, not the keep probability).
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    keep = torch.full_like(input, 1.0 - p)
    m = torch.bernoulli(keep, generator=generator)  # m_i ~ Bernoulli(1 - p)
    return input * m / (1.0 - p)  # y_i = m_i x_i / (1 - p)


def drop_path(
    input: Tensor, p: float = 0.0, training: bool = True, *, mode: str = "row", scale_by_keep: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Drop a residual branch: per sample (DropPath) or for the whole batch (stochastic depth).

    ``mode="row"``: one draw per entry of dim 0, :math:`m_n \\sim \\mathrm{Bernoulli}(1-p)`,
    :math:`y_{n,\\dots} = m_n x_{n,\\dots} / (1-p)`. This is DropPath as FractalNet introduced it
    (Larsson, Maire & Shakhnarovich 2017, "FractalNet", sec. 4) and as timm's ``drop_path`` and
    torchvision's ``stochastic_depth(mode="row")`` implement it: different samples of one batch
    lose different blocks.

    ``mode="batch"``: one draw for the whole batch, :math:`y = m x / (1-p)`. This is stochastic
    depth as Huang, Sun, Liu, Sedra & Weinberger (2016, "Deep networks with stochastic depth",
    eq. 2) define it: for each mini-batch, block l is either kept or skipped for every sample,
    with a survival probability that falls linearly with depth (:func:`survival_probability`).
    Huang et al. rescale at *test* time (multiply the branch by its survival probability);
    ``scale_by_keep=True`` divides at training time instead (inverted, torchvision's
    ``mode="batch"``); the expectations agree. Use it on the branch: ``x + drop_path(f(x), p)``.
    """
    _check_p(p)
    if mode not in ("row", "batch"):
        raise ValueError(f"mode must be 'row' or 'batch', got {mode!r}")
    if not training or p == 0.0:
        return input
    shape = (input.shape[0],) + (1,) * (input.dim() - 1) if mode == "row" else (1,) * input.dim()  # (N, 1, ..) or (1, ..)
    m = torch.bernoulli(torch.full(shape, 1.0 - p, dtype=input.dtype, device=input.device), generator=generator)
    scale = 1.0 / (1.0 - p) if scale_by_keep else 1.0
    return input * m * scale


def survival_probability(layer: int, num_layers: int, *, p_last: float = 0.5) -> float:
    """Huang et al.'s (2016, eq. 4) linear decay rule: ``p_l = 1 - (l / L) (1 - p_L)``, ``l = 0..L``.

    The input (l = 0) always survives; the last block survives with ``p_last`` (0.5 in the paper).
    The drop probability to pass to :func:`drop_path` for block l is ``1 - p_l``.
    """
    if not 0 <= layer <= num_layers or num_layers < 1:
        raise ValueError(f"need 0 <= layer <= num_layers and num_layers >= 1, got layer={layer}, num_layers={num_layers}")
    if not 0 < p_last <= 1:
        raise ValueError(f"p_last must be in (0, 1], got {p_last}")
    return 1.0 - layer / num_layers * (1.0 - p_last)


def dropblock(
    input: Tensor, p: float = 0.1, block_size: int = 7, training: bool = True, *, generator: torch.Generator | None = None
) -> Tensor:
    """DropBlock on ``(N, C, H, W)`` feature maps (Ghiasi et al. 2018, NeurIPS, Algorithm 1).

    Seeds are drawn where a whole ``b x b`` block fits, with rate

    .. math:: \\gamma = \\frac{p}{b^2}\\,\\frac{HW}{(H-b+1)(W-b+1)},

    grown into blocks by a stride-1 max-pool, and kept values are rescaled by
    ``numel / number kept`` (not ``1/(1-p)``: overlapping blocks drop a bit less than ``p``).
    ``block_size`` must be odd and at most ``min(H, W)``.
    """
    _check_p(p)
    if input.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), got shape {tuple(input.shape)}")
    b, (H, W) = block_size, input.shape[-2:]
    if not isinstance(b, int) or b < 1 or b % 2 == 0 or b > min(H, W):
        raise ValueError(f"block_size must be an odd int in [1, min(H, W)={min(H, W)}], got {block_size}")
    if not training or p == 0.0:
        return input
    gamma = p / b**2 * (H * W) / ((H - b + 1) * (W - b + 1))
    seeds = torch.bernoulli(torch.full((input.shape[0], input.shape[1], H - b + 1, W - b + 1), gamma, dtype=input.dtype), generator=generator)
    seeds = F.pad(seeds, (b // 2, b // 2, b // 2, b // 2))  # (N, C, H, W): centres only where a block fits
    block = F.max_pool2d(seeds, kernel_size=b, stride=1, padding=b // 2)  # 1 inside a dropped block
    keep = 1.0 - block
    return input * keep * keep.numel() / keep.sum().clamp(min=1.0)


# -- parameter penalties ---------------------------------------------------------------
def l1_penalty(params: Tensor | Iterable[Tensor], lam: float = 1.0) -> Tensor:
    """:math:`\\lambda \\sum_i |w_i|` (lasso; Tibshirani 1996). Subgradient ``lam * sign(w)``."""
    _check_nonneg(lam, "lam")
    return lam * sum(w.abs().sum() for w in _as_list(params))


def l2_penalty(params: Tensor | Iterable[Tensor], lam: float = 1.0) -> Tensor:
    """:math:`\\frac{\\lambda}{2} \\sum_i w_i^2` (ridge; Hoerl & Kennard 1970).

    The factor 1/2 makes the gradient ``lam * w``: the same as ``torch.optim.SGD(weight_decay=lam)``.
    """
    _check_nonneg(lam, "lam")
    return lam / 2 * sum((w**2).sum() for w in _as_list(params))


def elastic_net_penalty(params: Tensor | Iterable[Tensor], alpha: float = 1.0, l1_ratio: float = 0.5) -> Tensor:
    """Elastic net (Zou & Hastie 2005) in scikit-learn's parametrization:

    .. math:: \\alpha\\,\\rho\\,\\|w\\|_1 + \\tfrac{\\alpha(1-\\rho)}{2}\\,\\|w\\|_2^2, \\qquad \\rho = \\text{l1\\_ratio}.
    """
    _check_nonneg(alpha, "alpha")
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}")
    return l1_penalty(params, alpha * l1_ratio) + l2_penalty(params, alpha * (1 - l1_ratio))


def soft_threshold(input: Tensor, threshold: float) -> Tensor:
    """Proximal operator of ``threshold * |x|``: :math:`\\mathrm{sign}(x)\\max(|x| - t, 0)`.

    Equals :func:`torch.nn.functional.softshrink` with ``lambd=threshold``; yields exact zeros.
    """
    _check_nonneg(threshold, "threshold")
    return input.sign() * (input.abs() - threshold).clamp(min=0.0)


def fit_elastic_net(
    X: Tensor, y: Tensor, *, alpha: float = 1.0, l1_ratio: float = 0.5, steps: int = 5000, lr: float | None = None
) -> Tensor:
    """Proximal gradient descent (ISTA; Beck & Teboulle 2009) on scikit-learn's objective

    .. math:: \\frac{1}{2n}\\|y - Xw\\|^2 + \\alpha\\rho\\|w\\|_1 + \\frac{\\alpha(1-\\rho)}{2}\\|w\\|^2

    (no intercept: centre ``X`` and ``y`` first). ``l1_ratio=1`` is sklearn's ``Lasso``,
    ``l1_ratio=0`` is ``Ridge(alpha=n * alpha)`` (Ridge has no 1/(2n)). Step ``lr`` defaults
    to ``1/L`` with ``L = sigma_max(X)^2/n + alpha(1-rho)``. Starts from ``w = 0``.
    """
    _check_nonneg(alpha, "alpha")
    if X.dim() != 2 or y.shape != X.shape[:1]:
        raise ValueError(f"X must be (n, d) and y (n,), got {tuple(X.shape)} and {tuple(y.shape)}")
    n = X.shape[0]
    L = torch.linalg.matrix_norm(X, ord=2) ** 2 / n + alpha * (1 - l1_ratio)
    lr = float(1.0 / L) if lr is None else lr
    w = torch.zeros(X.shape[1], dtype=X.dtype)
    for _ in range(steps):
        grad = X.T @ (X @ w - y) / n + alpha * (1 - l1_ratio) * w  # smooth part
        w = soft_threshold(w - lr * grad, lr * alpha * l1_ratio)  # prox of the L1 part
    return w


# -- bias and variance -----------------------------------------------------------------
def bias_variance(predictions: Tensor, target_mean: Tensor) -> tuple[Tensor, Tensor]:
    """Bias^2 and variance of predictions ``(R, T)`` from R resampled training sets at T inputs.

    .. math:: \\bar f = \\tfrac1R\\sum_r \\hat f_r, \\quad \\mathrm{bias}^2 = \\overline{(\\bar f - f)^2},
       \\quad \\mathrm{var} = \\overline{\\tfrac1R\\sum_r(\\hat f_r - \\bar f)^2}

    averaged over the T inputs (biased 1/R variance, so that bias^2 + var equals the mean
    squared error to ``target_mean`` exactly; Geman, Bienenstock & Doursat 1992).
    """
    if predictions.dim() != 2 or predictions.shape[1:] != target_mean.shape:
        raise ValueError(f"predictions must be (R, T) and target_mean (T,), got {tuple(predictions.shape)}, {tuple(target_mean.shape)}")
    f_bar = predictions.mean(dim=0)  # (T,)
    bias2 = ((f_bar - target_mean) ** 2).mean()
    variance = ((predictions - f_bar) ** 2).mean()
    return bias2, variance


# -- mixing augmentations --------------------------------------------------------------
def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """Beta(alpha, alpha) = G1 / (G1 + G2) with G_i ~ Gamma(alpha); torch's Beta takes no generator."""
    g = torch._standard_gamma(torch.full((2,), float(alpha), dtype=torch.float64), generator=generator)
    return float(g[0] / g.sum())


def _one_hot(target: Tensor, num_classes: int) -> Tensor:
    if target.dim() == 1:
        return F.one_hot(target, num_classes).to(torch.get_default_dtype())
    return target


def mixup(
    input: Tensor, target: Tensor, *, alpha: float = 1.0, num_classes: int | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """Mixup (Zhang et al. 2018, ICLR): pair each example with a random permutation of the batch,

    .. math:: \\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha), \\quad \\tilde x = \\lambda x_a + (1-\\lambda) x_b,
       \\quad \\tilde y = \\lambda y_a + (1-\\lambda) y_b.

    ``target`` is class indices (then ``num_classes`` is needed) or soft targets ``(N, K)``.
    Returns ``(mixed input, mixed soft target, lam)``; cross-entropy with the soft target equals
    ``lam * CE(y_a) + (1 - lam) * CE(y_b)``.
    """
    _check_nonneg(alpha, "alpha")
    if alpha == 0:
        raise ValueError("alpha must be > 0, got 0")
    y = _one_hot(target, num_classes) if target.dim() == 1 else target
    lam = _beta(alpha, generator)
    perm = torch.randperm(input.shape[0], generator=generator)
    x_mix = lam * input + (1 - lam) * input[perm]
    y_mix = lam * y + (1 - lam) * y[perm]
    return x_mix, y_mix, lam


def cutmix(
    input: Tensor, target: Tensor, *, alpha: float = 1.0, num_classes: int | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, float]:
    """CutMix (Yun et al. 2019, ICCV) on ``(N, C, H, W)``: paste a box from a permuted batch.

    Box of area ``(1 - lam0) H W`` with ``lam0 ~ Beta(alpha, alpha)`` at a uniform centre, clipped
    at the border; the label weight is the **exact** kept fraction
    :math:`\\lambda = 1 - \\frac{(y_2-y_1)(x_2-x_1)}{HW}` after clipping (returned as ``lam``).
    """
    _check_nonneg(alpha, "alpha")
    if input.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), got shape {tuple(input.shape)}")
    y = _one_hot(target, num_classes) if target.dim() == 1 else target
    H, W = input.shape[-2:]
    lam0 = _beta(alpha, generator)
    cy = int(torch.randint(0, H, (1,), generator=generator))
    cx = int(torch.randint(0, W, (1,), generator=generator))
    h, w = int(H * math.sqrt(1 - lam0)), int(W * math.sqrt(1 - lam0))
    y1, y2 = max(cy - h // 2, 0), min(cy + h // 2, H)
    x1, x2 = max(cx - w // 2, 0), min(cx + w // 2, W)
    perm = torch.randperm(input.shape[0], generator=generator)
    out = input.clone()
    out[:, :, y1:y2, x1:x2] = input[perm][:, :, y1:y2, x1:x2]
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (H * W)  # exact kept fraction
    return out, lam * y + (1 - lam) * y[perm], lam


def mosaic(
    images: Sequence[Tensor], boxes: Sequence[Tensor], *, output_size: int, center: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Mosaic (YOLOv4, Bochkovskiy et al. 2020): four images resized into the four quadrants
    around a centre ``(cx, cy)`` of an ``S x S`` canvas (uniform in ``[S/4, 3S/4]`` if not given).

    Image ``k`` of size ``H_k x W_k`` fills tile ``(x0, y0, tw, th)``; its ``xyxy`` pixel boxes map as
    :math:`x' = x0 + x\\,tw/W_k,\\; y' = y0 + y\\,th/H_k`. Returns ``(canvas (C, S, S), boxes (M, 4), image index (M,))``.
    """
    if len(images) != 4 or len(boxes) != 4:
        raise ValueError(f"mosaic needs exactly 4 images and 4 box tensors, got {len(images)} and {len(boxes)}")
    S = output_size
    if center is None:
        cx, cy = (int(v) for v in torch.randint(S // 4, 3 * S // 4 + 1, (2,), generator=generator))
    else:
        cx, cy = center
    if not (0 < cx < S and 0 < cy < S):
        raise ValueError(f"center must lie strictly inside the {S}x{S} canvas, got {(cx, cy)}")
    tiles = [(0, 0, cx, cy), (cx, 0, S - cx, cy), (0, cy, cx, S - cy), (cx, cy, S - cx, S - cy)]  # (x0, y0, tw, th)
    canvas = torch.zeros(images[0].shape[0], S, S, dtype=images[0].dtype)
    out_boxes, owner = [], []
    for k, (img, bx, (x0, y0, tw, th)) in enumerate(zip(images, boxes, tiles)):
        H, W = img.shape[-2:]
        canvas[:, y0 : y0 + th, x0 : x0 + tw] = F.interpolate(img[None], size=(th, tw), mode="bilinear", align_corners=False)[0]
        scale = torch.tensor([tw / W, th / H, tw / W, th / H], dtype=bx.dtype)
        offset = torch.tensor([x0, y0, x0, y0], dtype=bx.dtype)
        out_boxes.append(bx * scale + offset)
        owner.append(torch.full((len(bx),), k))
    return canvas, torch.cat(out_boxes), torch.cat(owner)


# -- image augmentations and a RandAugment-style sampler ------------------------------------
def _affine(img: Tensor, theta: Tensor) -> Tensor:
    """Apply a 2x3 affine map (normalized coordinates) with zero fill, bilinear sampling."""
    batch = img if img.dim() == 4 else img[None]
    grid = F.affine_grid(theta.expand(batch.shape[0], 2, 3).to(batch.dtype), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out if img.dim() == 4 else out[0]


def rotate(img: Tensor, angle: float) -> Tensor:
    """Rotate by ``angle`` degrees counter-clockwise as displayed (``rotate(x, 90) == torch.rot90(x, 1, (-2, -1))``
    on a square image) about the centre, bilinear, zero fill."""
    a = math.radians(angle)
    return _affine(img, torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]))


def translate(img: Tensor, dx: float, dy: float) -> Tensor:
    """Shift right by ``dx`` and down by ``dy`` pixels (zero fill)."""
    H, W = img.shape[-2:]
    return _affine(img, torch.tensor([[1.0, 0.0, -2 * dx / W], [0.0, 1.0, -2 * dy / H]]))


def shear_x(img: Tensor, shear: float) -> Tensor:
    """Horizontal shear ``x' = x + shear * y`` (normalized coordinates), zero fill."""
    return _affine(img, torch.tensor([[1.0, shear, 0.0], [0.0, 1.0, 0.0]]))


def brightness(img: Tensor, factor: float) -> Tensor:
    """Multiply intensities by ``factor`` and clip to [0, 1]."""
    return (img * factor).clamp(0.0, 1.0)


def contrast(img: Tensor, factor: float) -> Tensor:
    """Blend with the image mean: ``mean + factor * (img - mean)``, clipped to [0, 1]."""
    mean = img.mean(dim=(-3, -2, -1), keepdim=True)
    return (mean + factor * (img - mean)).clamp(0.0, 1.0)


def solarize(img: Tensor, threshold: float) -> Tensor:
    """Invert pixels at or above ``threshold``: ``1 - x`` where ``x >= threshold``."""
    return torch.where(img >= threshold, 1.0 - img, img)


#: name -> (op(img, v), magnitude m in [0, 1] -> signed value v; the sign is drawn by the sampler)
AUGMENTATIONS: dict[str, tuple[Callable[[Tensor, float], Tensor], Callable[[float], float], bool]] = {
    "identity": (lambda x, v: x, lambda m: 0.0, False),
    "rotate": (rotate, lambda m: 30.0 * m, True),
    "translate_x": (lambda x, v: translate(x, v * x.shape[-1], 0.0), lambda m: 0.3 * m, True),
    "translate_y": (lambda x, v: translate(x, 0.0, v * x.shape[-2]), lambda m: 0.3 * m, True),
    "shear_x": (shear_x, lambda m: 0.3 * m, True),
    "brightness": (brightness, lambda m: 1.0 + 0.9 * m, False),
    "contrast": (contrast, lambda m: 1.0 + 0.9 * m, False),
    "solarize": (solarize, lambda m: 1.0 - m, False),
}


def rand_augment(
    img: Tensor, *, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, generator: torch.Generator | None = None
) -> Tensor:
    """RandAugment (Cubuk et al. 2020, CVPRW): apply ``num_ops`` (N) operations drawn uniformly
    from :data:`AUGMENTATIONS`, each at the shared magnitude ``M = magnitude`` on a scale of
    ``num_magnitude_bins`` bins (``m = M / (bins - 1)``); geometric ops get a random sign.
    The whole search space is the two integers (N, M). Same names as torchvision's RandAugment.
    """
    if not isinstance(num_ops, int) or num_ops < 0:
        raise ValueError(f"num_ops must be an int >= 0, got {num_ops}")
    if not 0 <= magnitude < num_magnitude_bins:
        raise ValueError(f"magnitude must be in [0, num_magnitude_bins={num_magnitude_bins}), got {magnitude}")
    names = list(AUGMENTATIONS)
    m = magnitude / (num_magnitude_bins - 1)
    for _ in range(num_ops):
        op, value, signed = AUGMENTATIONS[names[int(torch.randint(len(names), (1,), generator=generator))]]
        sign = -1.0 if signed and bool(torch.rand(1, generator=generator) < 0.5) else 1.0
        img = op(img, sign * value(m))
    return img


# -- early stopping --------------------------------------------------------------------
class EarlyStopping:
    """Stop when the monitored value has not improved by more than ``min_delta`` for
    ``patience`` consecutive checks (Prechelt 1998, "Early stopping - but when?").

    ``step(value, model)`` records a check and returns ``True`` when training should stop; the
    best ``state_dict`` (a deep copy) is kept and :meth:`restore` loads it back. ``mode="min"``
    for losses, ``"max"`` for accuracies. Improvement means ``value < best - min_delta``.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "min") -> None:
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience}")
        _check_nonneg(min_delta, "min_delta")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta, self.sign = patience, min_delta, 1.0 if mode == "min" else -1.0
        self.best, self.best_step, self.best_state = math.inf, -1, None
        self.bad_steps, self.steps = 0, 0

    def step(self, value: float, model: torch.nn.Module | None = None) -> bool:
        score = self.sign * float(value)
        if score < self.best - self.min_delta:
            self.best, self.best_step, self.bad_steps = score, self.steps, 0
            self.best_state = copy.deepcopy(model.state_dict()) if model is not None else None
        else:
            self.bad_steps += 1
        self.steps += 1
        return self.bad_steps >= self.patience

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    def restore(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.best_state is None:
            raise ValueError("no best state recorded: call step(value, model) with a model first")
        model.load_state_dict(self.best_state)
        return model


# -- adversarial examples ----------------------------------------------------------------
def _input_grad(model: Callable[[Tensor], Tensor], x: Tensor, target: Tensor, loss_fn: Callable) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(model(x), target), x)
    return grad


def fgsm(
    model: Callable[[Tensor], Tensor], input: Tensor, target: Tensor, *, eps: float,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy, clamp: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, ICLR):

    .. math:: x' = \\mathrm{clip}\\big(x + \\epsilon\\, \\mathrm{sign}(\\nabla_x L(f(x), y))\\big)

    (``clamp=None`` skips the clip). Returns a detached tensor.
    """
    _check_nonneg(eps, "eps")
    grad = _input_grad(model, input, target, loss_fn)
    x_adv = input + eps * grad.sign()
    return (x_adv.clamp(*clamp) if clamp is not None else x_adv).detach()


def pgd(
    model: Callable[[Tensor], Tensor], input: Tensor, target: Tensor, *, eps: float, alpha: float | None = None,
    steps: int = 10, random_start: bool = True, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    clamp: tuple[float, float] | None = (0.0, 1.0), generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent, L-infinity ball (Madry et al. 2018, ICLR):

    .. math:: x^{t+1} = \\Pi_{\\|x'-x\\|_\\infty \\le \\epsilon}\\big(x^t + \\alpha\\,\\mathrm{sign}(\\nabla_x L(f(x^t), y))\\big)

    from a uniform random start in the ball (``random_start``); ``alpha`` defaults to
    ``2.5 * eps / steps`` (Madry et al.). Each iterate is clipped to ``clamp``.
    """
    _check_nonneg(eps, "eps")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    _check_nonneg(alpha, "alpha")
    x = input.detach()
    if random_start:
        x = x + eps * (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1)
    for _ in range(steps):
        x = x + alpha * _input_grad(model, x, target, loss_fn).sign()  # ascent step
        x = input + (x - input).clamp(-eps, eps)  # project onto the eps-ball
        x = x.clamp(*clamp) if clamp is not None else x
    return x.detach()


# -- R-Drop ------------------------------------------------------------------------------
def symmetric_kl(logits1: Tensor, logits2: Tensor, *, reduction: str = "mean") -> Tensor:
    """:math:`\\tfrac12[\\mathrm{KL}(P_1\\|P_2) + \\mathrm{KL}(P_2\\|P_1)]` of softmax(logits) over the
    last dim, summed over classes; ``reduction`` over the batch: ``"mean"``, ``"sum"``, ``"none"``."""
    logp1, logp2 = F.log_softmax(logits1, dim=-1), F.log_softmax(logits2, dim=-1)
    kl12 = (logp1.exp() * (logp1 - logp2)).sum(-1)  # KL(P1 || P2)
    kl21 = (logp2.exp() * (logp2 - logp1)).sum(-1)  # KL(P2 || P1)
    per_sample = 0.5 * (kl12 + kl21)
    if reduction == "none":
        return per_sample
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def r_drop_loss(logits1: Tensor, logits2: Tensor, target: Tensor, *, alpha: float = 1.0) -> Tensor:
    """R-Drop (Liang et al. 2021, NeurIPS, Eq. 3) for two dropout passes of the same batch:

    .. math:: L = \\mathrm{CE}(z_1, y) + \\mathrm{CE}(z_2, y) + \\alpha\\cdot\\tfrac12[\\mathrm{KL}(P_1\\|P_2)+\\mathrm{KL}(P_2\\|P_1)]

    (batch means of each term).
    """
    _check_nonneg(alpha, "alpha")
    nll = F.cross_entropy(logits1, target) + F.cross_entropy(logits2, target)
    return nll + alpha * symmetric_kl(logits1, logits2)
