"""Normalization layers as pure functions: BN, LN, IN, GN, RMSNorm and weight normalization.

Every activation normalizer here computes, for each *group* of elements that share statistics,

    mu = mean(x),   sigma^2 = mean((x - mu)^2)        (biased variance, as in every paper below)
    x_hat = (x - mu) / sqrt(sigma^2 + eps)            (eps INSIDE the square root, as torch)
    y = gamma * x_hat + beta                          (per-channel / per-feature affine)

and the methods differ only in which axes of an ``[N, C, *]`` tensor form a group
(chapter "Normalization", section q-normalization.norm-axes-nchw):

* batch norm: ``(N, H, W)`` per channel  (Ioffe & Szegedy 2015, Algorithm 1)
* layer norm: the trailing ``normalized_shape`` per sample  (Ba et al. 2016, eq. 4)
* instance norm: ``(H, W)`` per sample and channel  (Ulyanov et al. 2016, eq. 2)
* group norm: ``(C/G, H, W)`` per sample and group  (Wu & He 2018, eq. 1-3)

Names, keyword names and defaults follow ``torch.nn.functional``. Functions never mutate their
arguments: :func:`batch_norm` returns the updated running statistics instead of writing them
in place as ``torch.nn.functional.batch_norm`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "batch_norm",
    "fit_scaler",
    "group_norm",
    "instance_norm",
    "layer_norm",
    "rms_norm",
    "standardize",
    "weight_norm",
    "whitening_matrix",
]


def _check_tensor(name: str, x: object) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def _affine(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None, shape: Sequence[int]) -> Tensor:
    """y = gamma * x_hat + beta with gamma, beta reshaped to ``shape`` for broadcasting."""
    y = x_hat
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def standardize(input: Tensor, dim: Sequence[int], *, eps: float = 1e-5) -> Tensor:
    """Standardize ``input`` over the axes ``dim``: (x - mean) / sqrt(biased var + eps).

    The one operation behind every activation normalizer; the methods differ only in ``dim``.
    """
    _check_tensor("input", input)
    dim = tuple(int(d) for d in dim)
    if not dim or any(not -input.ndim <= d < input.ndim for d in dim):
        raise ValueError(f"dim must name axes of a {input.ndim}-D input, got {dim}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mu = input.mean(dim=dim, keepdim=True)  # one mean per group
    var = ((input - mu) ** 2).mean(dim=dim, keepdim=True)  # biased: divide by n
    return (input - mu) / torch.sqrt(var + eps)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Batch normalization of ``input`` of shape ``(N, C, *)``; returns ``(y, running_mean, running_var)``.

    Training (Ioffe & Szegedy 2015, Alg. 1), statistics per channel over ``n = N * prod(*)`` values:
        y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta         (biased sigma_B^2, divide by n)
        running_mean <- (1 - momentum) * running_mean + momentum * mu_B
        running_var  <- (1 - momentum) * running_var + momentum * sigma_B^2 * n / (n - 1)
    Conventions as torch: ``momentum`` weights the NEW batch (Keras/TF's momentum is 1 - this);
    the running variance uses the UNBIASED batch variance while the output uses the biased one.
    Eval (``training=False``): mu, sigma^2 are the running statistics, so y is an affine map of x.
    The running statistics are returned updated, never modified in place.
    """
    _check_tensor("input", input)
    if input.ndim < 2:
        raise ValueError(f"input must have shape (N, C, *), got a {input.ndim}-D tensor of shape {tuple(input.shape)}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    dims = (0, *range(2, input.ndim))  # every axis except the channel axis
    shape = (1, -1) + (1,) * (input.ndim - 2)  # (1, C, 1, ...)
    n = input.numel() // input.shape[1]
    if training:
        if n <= 1:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input of shape {tuple(input.shape)}")
        mu = input.mean(dim=dims)  # (C,)
        var = ((input - mu.reshape(shape)) ** 2).mean(dim=dims)  # (C,), biased
        if running_mean is not None and running_var is not None:
            running_mean = (1 - momentum) * running_mean + momentum * mu.detach()
            running_var = (1 - momentum) * running_var + momentum * var.detach() * n / (n - 1)
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm in eval mode (training=False) needs running_mean and running_var, got None")
    else:
        mu, var = running_mean, running_var
    x_hat = (input - mu.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return _affine(x_hat, weight, bias, shape), running_mean, running_var


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int] | int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes (Ba et al. 2016, eq. 4).

        y = gamma * (x - mu) / sqrt(sigma^2 + eps) + beta,  mu, sigma^2 per sample (biased)
    ``gamma``, ``beta`` have shape ``normalized_shape`` (elementwise, unlike BN's per channel).
    """
    _check_tensor("input", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(input.shape[input.ndim - len(shape):]) != shape or len(shape) > input.ndim:
        raise ValueError(f"normalized_shape {shape} must equal the trailing dims of input of shape {tuple(input.shape)}")
    x_hat = standardize(input, tuple(range(-len(shape), 0)), eps=eps)
    return _affine(x_hat, weight, bias, shape)


def instance_norm(
    input: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    eps: float = 1e-5,
) -> Tensor:
    """Instance normalization of ``(N, C, *spatial)`` (Ulyanov et al. 2016, eq. 2).

    Statistics over the spatial axes, one mean and variance per sample and channel; always
    uses the input's own statistics (torch's ``use_input_stats=True``, no running statistics).
    """
    _check_tensor("input", input)
    if input.ndim < 3:
        raise ValueError(f"input must have shape (N, C, *spatial) with at least one spatial axis, got shape {tuple(input.shape)}")
    if input[0, 0].numel() <= 1:
        raise ValueError(f"instance_norm needs more than 1 spatial element, got input of shape {tuple(input.shape)}")
    x_hat = standardize(input, tuple(range(2, input.ndim)), eps=eps)
    return _affine(x_hat, weight, bias, (1, -1) + (1,) * (input.ndim - 2))


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization of ``(N, C, *)`` with ``num_groups`` groups (Wu & He 2018, eq. 1-3).

    Channels are split into G consecutive groups of C/G; statistics per sample and group over
    ``(C/G, *)``. G = 1 is layer norm over (C, *), G = C is instance norm; gamma, beta are per channel.
    """
    _check_tensor("input", input)
    if input.ndim < 2:
        raise ValueError(f"input must have shape (N, C, *), got shape {tuple(input.shape)}")
    n, c = input.shape[:2]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups != 0:
        raise ValueError(f"num_groups must be a positive divisor of the {c} channels, got num_groups={num_groups}")
    grouped = input.reshape(n, num_groups, -1)  # (N, G, C/G * prod(*))
    x_hat = standardize(grouped, (2,), eps=eps).reshape(input.shape)
    return _affine(x_hat, weight, bias, (1, -1) + (1,) * (input.ndim - 2))


def rms_norm(
    input: Tensor,
    normalized_shape: Sequence[int] | int,
    weight: Tensor | None = None,
    *,
    eps: float | None = None,
) -> Tensor:
    """RMSNorm over the trailing ``normalized_shape`` axes (Zhang & Sennrich 2019, eq. 4).

        y = gamma * x / sqrt(mean(x^2) + eps)     (no mean subtraction, no beta)
    ``eps=None`` means ``torch.finfo(input.dtype).eps``, torch's default (LayerNorm uses 1e-5).
    """
    _check_tensor("input", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or len(shape) > input.ndim or tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"normalized_shape {shape} must equal the trailing dims of input of shape {tuple(input.shape)}")
    eps = torch.finfo(input.dtype).eps if eps is None else eps
    dims = tuple(range(-len(shape), 0))
    rms = torch.sqrt((input**2).mean(dim=dims, keepdim=True) + eps)  # one per sample
    return _affine(input / rms, weight, None, shape)


def weight_norm(v: Tensor, g: Tensor, *, dim: int = 0) -> Tensor:
    """Weight normalization w = g * v / ||v|| (Salimans & Kingma 2016, eq. 2).

    ``||v||`` is the L2 norm over every axis except ``dim`` (one norm per output unit for
    ``dim=0``), and ``g`` has ``v``'s shape with every other axis of size 1, as in
    ``torch.nn.utils.parametrizations.weight_norm``'s ``original0``.
    """
    _check_tensor("v", v)
    _check_tensor("g", g)
    if not -v.ndim <= dim < v.ndim:
        raise ValueError(f"dim must be an axis of v (ndim {v.ndim}), got dim={dim}")
    dim = dim % v.ndim
    other = tuple(d for d in range(v.ndim) if d != dim)
    norm = torch.sqrt((v**2).sum(dim=other, keepdim=True))  # ||v|| per unit
    if g.numel() != v.shape[dim]:
        raise ValueError(f"g must hold one gain per slice of v along dim {dim} ({v.shape[dim]}), got shape {tuple(g.shape)}")
    return g.reshape(norm.shape) * v / norm


# -- input features: per-feature scaling and whitening (section q-normalization.feature-scaling-methods)
_SCALERS = ("standard", "minmax", "maxabs", "robust")


def _check_matrix(name: str, x: object) -> None:
    _check_tensor(name, x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2 samples, got shape {tuple(x.shape)}")


def fit_scaler(input: Tensor, *, method: str = "standard") -> tuple[Tensor, Tensor]:
    """Per-feature ``(center, scale)`` of ``input`` of shape ``(N, D)``, fitted on the training set.

    The scaled features are ``(x - center) / scale``, an affine map per column:
        standard: center = mean,    scale = sqrt(mean((x - mean)^2))      (biased, as sklearn's StandardScaler)
        minmax:   center = min,     scale = max - min                     (to [0, 1], MinMaxScaler)
        maxabs:   center = 0,       scale = max |x|                       (to [-1, 1], keeps zeros, MaxAbsScaler)
        robust:   center = median,  scale = Q3 - Q1                       (quantiles by linear interpolation, RobustScaler)
    A zero scale (a constant column) is replaced by 1, as scikit-learn does, so that column maps to 0.
    Fit on the training split only and reuse ``(center, scale)`` on validation and test data.
    """
    _check_matrix("input", input)
    if method not in _SCALERS:
        raise ValueError(f"method must be one of {_SCALERS}, got {method!r}")
    if method == "standard":
        center = input.mean(dim=0)  # (D,)
        scale = torch.sqrt(((input - center) ** 2).mean(dim=0))
    elif method == "minmax":
        center = input.amin(dim=0)
        scale = input.amax(dim=0) - center
    elif method == "maxabs":
        center = torch.zeros_like(input[0])
        scale = input.abs().amax(dim=0)
    else:  # torch.median returns the LOWER middle value for even N; quantile(0.5) interpolates
        q1, center, q3 = torch.quantile(input, torch.tensor([0.25, 0.5, 0.75], dtype=input.dtype), dim=0)
        scale = q3 - q1
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return center, scale


def whitening_matrix(input: Tensor, *, method: str = "zca", eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """``(mean, W)`` such that ``(x - mean) @ W.T`` is whitened (covariance ~ identity).

    With the covariance Sigma = U diag(lambda) U^T of ``input`` (shape ``(N, D)``, UNBIASED,
    divide by N - 1, as ``numpy.cov`` and sklearn's PCA):
        pca: W = diag(lambda + eps)^(-1/2) U^T        (rotate onto the principal axes, then rescale)
        zca: W = U diag(lambda + eps)^(-1/2) U^T      (= Sigma^(-1/2) for eps = 0; rotate back)
    The whitened covariance is W Sigma W^T = U diag(lambda / (lambda + eps)) U^T (rotated by U^T
    for pca). ``eps`` regularizes small eigenvalues (Krizhevsky 2009, appendix; Kessy et al.
    2018 show ZCA is the whitening closest to the input in mean squared distance).
    """
    _check_matrix("input", input)
    if method not in ("pca", "zca"):
        raise ValueError(f"method must be 'pca' or 'zca', got {method!r}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mean = input.mean(dim=0)  # (D,)
    xc = input - mean  # (N, D)
    sigma = xc.T @ xc / (input.shape[0] - 1)  # (D, D)
    lam, u = torch.linalg.eigh(sigma)  # ascending eigenvalues, columns of u are eigenvectors
    inv_sqrt = 1.0 / torch.sqrt(lam + eps)  # (D,)
    w = inv_sqrt[:, None] * u.T  # diag(.) U^T, (D, D)
    if method == "zca":
        w = u @ w  # U diag(.) U^T
    return mean, w
