r"""Affine quantization written out: scale, zero point, calibration, fake quantization.

The deployment chapter (``chapters/deployment``, "Quantization") teaches these. Conventions
follow ``torch.quantize_per_tensor``: a float $x$ maps to the integer

$$q = \mathrm{clamp}\big(\mathrm{round}(x / s) + z,\; q_{\min},\; q_{\max}\big), \qquad
\hat x = s\,(q - z),$$

with round-half-to-even (``torch.round``), scale $s > 0$ and integer zero point $z$. A *symmetric*
scheme fixes $z = 0$ and a range $[-\alpha, \alpha]$; an *asymmetric* one maps $[\beta, \alpha]$
onto the whole integer range. Source: Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", sec. 2.1; Nagel et al. 2021, "A White
Paper on Neural Network Quantization", sec. 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "qrange",
    "choose_qparams",
    "quantize_per_tensor",
    "quantize_per_channel",
    "dequantize",
    "fake_quantize",
    "calibrate",
    "quantization_mse",
    "smooth_quant_scales",
]


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, got {type(bits).__name__}")
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in [2, 16], got {bits}")


def _check_scale(scale: Tensor | float) -> None:
    s = torch.as_tensor(scale)
    if not bool((s > 0).all()):
        raise ValueError(f"scale must be > 0, got {scale}")


def qrange(bits: int = 8, *, signed: bool = True) -> tuple[int, int]:
    """The integer range: ``[-2^(b-1), 2^(b-1) - 1]`` signed, ``[0, 2^b - 1]`` unsigned."""
    _check_bits(bits)
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def choose_qparams(
    x_min: Tensor | float, x_max: Tensor | float, *, bits: int = 8, symmetric: bool = False, signed: bool | None = None
) -> tuple[Tensor, Tensor]:
    r"""Scale and zero point for the float range ``[x_min, x_max]`` (elementwise: per channel too).

    The range is first widened to contain 0 (so that 0, e.g. padding, is exact). Asymmetric:
    $s = (\beta_{\max} - \beta_{\min})/(q_{\max} - q_{\min})$, $z = q_{\min} - \mathrm{round}(\beta_{\min}/s)$,
    clamped into the range. Symmetric: $s = \max(|\beta_{\min}|, |\beta_{\max}|) / ((q_{\max} - q_{\min})/2)$,
    $z = 0$ for a signed range (as torch's ``MinMaxObserver`` with ``qscheme=per_tensor_symmetric``).
    ``signed`` defaults to ``symmetric`` (int8 for symmetric, uint8 for asymmetric, torch's defaults).
    A zero-width range gets scale 1 (nothing to resolve).
    """
    signed = symmetric if signed is None else signed
    qmin, qmax = qrange(bits, signed=signed)
    lo, hi = torch.as_tensor(x_min, dtype=torch.float64), torch.as_tensor(x_max, dtype=torch.float64)
    if bool((lo > hi).any()):
        raise ValueError(f"x_min must be <= x_max, got {x_min} > {x_max}")
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    if symmetric:
        amax = torch.maximum(-lo, hi)
        scale = amax / ((qmax - qmin) / 2)
        zero_point = torch.full_like(scale, (qmin + qmax + 1) // 2, dtype=torch.int64)
    else:
        scale = (hi - lo) / (qmax - qmin)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).to(torch.float32)
    return scale, zero_point


def quantize_per_tensor(x: Tensor, scale: float | Tensor, zero_point: int | Tensor, *, quant_min: int, quant_max: int) -> Tensor:
    """``q = clamp(round(x / s) + z, quant_min, quant_max)`` as an int64 tensor (integer codes).

    Equal, code for code, to ``torch.quantize_per_tensor(x, s, z, dtype).int_repr()`` for float32
    ``x``; torch multiplies by the float32 reciprocal ``1/s``, so we do too.
    """
    _check_scale(scale)
    if quant_min >= quant_max:
        raise ValueError(f"quant_min must be < quant_max, got {quant_min} >= {quant_max}")
    inv_scale = 1.0 / torch.as_tensor(scale, dtype=torch.float32)
    q = torch.round(x.to(torch.float32) * inv_scale) + torch.as_tensor(zero_point)
    return torch.clamp(q, quant_min, quant_max).to(torch.int64)


def quantize_per_channel(
    x: Tensor, scales: Tensor, zero_points: Tensor, axis: int, *, quant_min: int, quant_max: int
) -> Tensor:
    """Per-channel quantization: channel ``c`` along ``axis`` uses ``scales[c]``, ``zero_points[c]``."""
    if scales.ndim != 1 or scales.shape[0] != x.shape[axis]:
        raise ValueError(f"scales must have shape ({x.shape[axis]},), got {tuple(scales.shape)}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return quantize_per_tensor(x, scales.reshape(shape), zero_points.reshape(shape), quant_min=quant_min, quant_max=quant_max)


def dequantize(q: Tensor, scale: float | Tensor, zero_point: int | Tensor, *, axis: int | None = None) -> Tensor:
    r"""$\hat x = s\,(q - z)$; with ``axis``, ``scale`` and ``zero_point`` are per channel along it."""
    _check_scale(scale)
    s, z = torch.as_tensor(scale, dtype=torch.float32), torch.as_tensor(zero_point)
    if axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return (q - z).to(torch.float32) * s


def fake_quantize(x: Tensor, scale: float | Tensor, zero_point: int | Tensor, *, quant_min: int, quant_max: int) -> Tensor:
    r"""Quantize then dequantize in the forward pass; straight-through gradient in the backward pass.

    Forward: $\hat x = s\,(\mathrm{clamp}(\mathrm{round}(x/s) + z) - z)$. Backward (the
    straight-through estimator, Bengio et al. 2013): $\partial\hat x/\partial x = 1$ where $x$ is
    not clamped, $0$ where it is. Equal to ``torch.fake_quantize_per_tensor_affine``.
    """
    q = quantize_per_tensor(x, scale, zero_point, quant_min=quant_min, quant_max=quant_max)
    x_hat = dequantize(q, scale, zero_point).to(x.dtype)
    code = torch.round(x.detach() * (1.0 / torch.as_tensor(scale, dtype=torch.float32))) + torch.as_tensor(zero_point)
    inside = (code >= quant_min) & (code <= quant_max)  # not clamped
    straight_through = x + (x_hat - x).detach()  # value x_hat, gradient 1
    return torch.where(inside, straight_through, x_hat.detach())


def calibrate(x: Tensor, *, method: str = "minmax", percentile: float = 99.9, bits: int = 8, n_grid: int = 100) -> tuple[float, float]:
    r"""A clipping range ``(lo, hi)`` for the observed values ``x``.

    - ``"minmax"``: $[\min x, \max x]$, the whole range, outliers included.
    - ``"percentile"``: the ``100 - percentile`` and ``percentile`` percentiles of ``x``.
    - ``"mse"``: the symmetric range $[-\alpha, \alpha]$, $\alpha$ on a grid of ``n_grid`` fractions
      of $\max|x|$, that minimizes the mean squared quantization error of ``x`` itself at ``bits``
      (Nagel et al. 2021, sec. 3.4; TensorRT's entropy calibration chooses by KL instead).
    """
    _check_bits(bits)
    x = x.detach().flatten().to(torch.float64)
    if method == "minmax":
        return float(x.min()), float(x.max())
    if method == "percentile":
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        q = torch.quantile(x, torch.tensor([1 - percentile / 100, percentile / 100], dtype=torch.float64))
        return float(q[0]), float(q[1])
    if method == "mse":
        amax = float(x.abs().max())
        alphas = amax * torch.arange(1, n_grid + 1, dtype=torch.float64) / n_grid
        errors = [quantization_mse(x, -a, a, bits=bits, symmetric=True) for a in alphas.tolist()]
        best = alphas[int(torch.tensor(errors).argmin())].item()
        return -best, best
    raise ValueError(f"method must be 'minmax', 'percentile' or 'mse', got {method!r}")


def quantization_mse(x: Tensor, lo: float, hi: float, *, bits: int = 8, symmetric: bool = False) -> float:
    """Mean squared error of ``x`` after fake quantization with the range ``[lo, hi]``."""
    scale, zp = choose_qparams(lo, hi, bits=bits, symmetric=symmetric)
    qmin, qmax = qrange(bits, signed=symmetric)
    x32 = x.to(torch.float32)
    x_hat = dequantize(quantize_per_tensor(x32, scale, zp, quant_min=qmin, quant_max=qmax), scale, zp)
    return float(((x_hat - x32) ** 2).mean())


def smooth_quant_scales(act_absmax: Tensor, weight_absmax: Tensor, *, alpha: float = 0.5, eps: float = 1e-8) -> Tensor:
    r"""SmoothQuant's per-input-channel factors (Xiao et al. 2023, eq. 4).

    $s_j = \max|X_j|^{\alpha} / \max|W_j|^{1-\alpha}$; then $Y = (X\,\mathrm{diag}(s)^{-1})
    (\mathrm{diag}(s) W^\top)$ is the same product with the activation outliers moved into the
    weights. ``eps`` keeps an all-zero channel from dividing by zero.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if act_absmax.shape != weight_absmax.shape:
        raise ValueError(f"act_absmax and weight_absmax must have the same shape, got {tuple(act_absmax.shape)} and {tuple(weight_absmax.shape)}")
    return act_absmax.clamp_min(eps) ** alpha / weight_absmax.clamp_min(eps) ** (1 - alpha)
