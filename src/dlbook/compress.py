r"""Model compression written out: pruning masks, conv-BN folding, low-rank factorization, sizes.

The deployment chapter (``chapters/deployment``) teaches these; the oracles are
``torch.nn.utils.prune`` (masks), ``torch.nn.utils.fusion.fuse_conv_bn_eval`` (folding) and
``torch.linalg.svd`` (Eckart-Young). ``fit_classifier`` is the one small training loop the
chapter's MLP experiments share (full-batch-free minibatch Adam with an explicit generator).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "state_dict_bytes",
    "count_parameters",
    "l1_unstructured_mask",
    "prune_hidden_units",
    "fold_conv_bn",
    "fuse_conv_bn",
    "low_rank_factors",
    "low_rank_linear",
    "fit_classifier",
    "accuracy",
]


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())``: what a checkpoint on disk costs."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (``weight_orig`` counts while a prune mask is attached)."""
    return sum(p.numel() for p in module.parameters())


def l1_unstructured_mask(weight: Tensor, amount: float) -> Tensor:
    r"""Magnitude pruning mask: zero the ``round(amount * n)`` entries of smallest $|w|$.

    Equal to the mask ``torch.nn.utils.prune.l1_unstructured`` attaches (ties broken the same way,
    by ``torch.topk`` on $|w|$). Han et al. 2015, "Learning both Weights and Connections".
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    n_prune = round(amount * weight.numel())
    mask = torch.ones_like(weight)
    if n_prune > 0:
        idx = torch.topk(weight.abs().flatten(), k=n_prune, largest=False).indices
        mask.view(-1)[idx] = 0
    return mask


def prune_hidden_units(first: nn.Linear, second: nn.Linear, keep: int) -> tuple[nn.Linear, nn.Linear]:
    r"""Structured pruning of a hidden layer: keep the ``keep`` units of largest weight norm.

    Unit $j$ is scored by $\|W^{(1)}_{j,:}\|_2$ (its incoming weights, Li et al. 2017 use the
    same L-norm filter criterion); rows of ``first`` and columns of ``second`` that belong to
    the other units are removed, giving physically smaller dense layers.
    """
    if first.out_features != second.in_features:
        raise ValueError(f"first.out_features ({first.out_features}) must equal second.in_features ({second.in_features})")
    if not 1 <= keep <= first.out_features:
        raise ValueError(f"keep must be in [1, {first.out_features}], got {keep}")
    scores = first.weight.detach().norm(dim=1)  # (H,)
    kept = torch.topk(scores, keep).indices.sort().values
    dtype = first.weight.dtype
    new_first = nn.Linear(first.in_features, keep, bias=first.bias is not None, dtype=dtype)
    new_second = nn.Linear(keep, second.out_features, bias=second.bias is not None, dtype=dtype)
    with torch.no_grad():
        new_first.weight.copy_(first.weight[kept])
        if first.bias is not None:
            new_first.bias.copy_(first.bias[kept])
        new_second.weight.copy_(second.weight[:, kept])
        if second.bias is not None:
            new_second.bias.copy_(second.bias)
    return new_first, new_second


def fold_conv_bn(
    weight: Tensor, bias: Tensor | None, running_mean: Tensor, running_var: Tensor, gamma: Tensor, beta: Tensor, *, eps: float = 1e-5
) -> tuple[Tensor, Tensor]:
    r"""Fold an eval-mode BatchNorm into the convolution before it.

    $W' = W \cdot \gamma / \sqrt{\sigma^2 + \epsilon}$ (per output channel),
    $b' = (b - \mu)\,\gamma / \sqrt{\sigma^2 + \epsilon} + \beta$. Exact in real arithmetic,
    because eval-mode BN is a fixed affine map per channel (Ioffe & Szegedy 2015; Jacob et al. 2018, sec. 3.2).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if running_mean.shape != (weight.shape[0],):
        raise ValueError(f"running_mean must have shape ({weight.shape[0]},), got {tuple(running_mean.shape)}")
    b = torch.zeros_like(running_mean) if bias is None else bias
    factor = gamma / torch.sqrt(running_var + eps)  # (C_out,)
    weight_folded = weight * factor.reshape(-1, *([1] * (weight.ndim - 1)))
    bias_folded = (b - running_mean) * factor + beta
    return weight_folded, bias_folded


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` in eval mode (see :func:`fold_conv_bn`)."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, bias=True)
    w, b = fold_conv_bn(conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach(), eps=bn.eps)
    with torch.no_grad():
        fused.weight.copy_(w)
        fused.bias.copy_(b)
    return fused


def low_rank_factors(weight: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    r"""Truncated SVD: $W \approx A B$ with $A = U_r \Sigma_r$ (m x r) and $B = V_r^\top$ (r x n).

    By Eckart-Young (1936), $\|W - AB\|_F^2 = \sum_{i>r} \sigma_i^2$, the smallest possible for rank r.
    Parameters drop from $mn$ to $r(m + n)$.
    """
    if weight.ndim != 2:
        raise ValueError(f"weight must be a matrix, got shape {tuple(weight.shape)}")
    if not 1 <= rank <= min(weight.shape):
        raise ValueError(f"rank must be in [1, {min(weight.shape)}], got {rank}")
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
    return U[:, :rank] * S[:rank], Vh[:rank]


def low_rank_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """Replace ``linear`` by two thin layers ``x -> B x -> A (B x) + b`` (see :func:`low_rank_factors`)."""
    A, B = low_rank_factors(linear.weight.detach(), rank)
    dtype = linear.weight.dtype
    thin = nn.Linear(linear.in_features, rank, bias=False, dtype=dtype)
    wide = nn.Linear(rank, linear.out_features, bias=linear.bias is not None, dtype=dtype)
    with torch.no_grad():
        thin.weight.copy_(B)
        wide.weight.copy_(A)
        if linear.bias is not None:
            wide.bias.copy_(linear.bias)
    return nn.Sequential(thin, wide)


def accuracy(model: Callable[[Tensor], Tensor], X: Tensor, y: Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(X, y)`` without building a graph."""
    with torch.inference_mode():
        return float((model(X).argmax(dim=1) == y).float().mean())


def fit_classifier(
    model: nn.Module,
    X: Tensor,
    y: Tensor | None = None,
    *,
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    targets: Tensor | None = None,
) -> nn.Module:
    """Minibatch Adam on ``loss_fn(model(X_batch), targets_batch)``; returns the trained ``model``.

    ``targets`` defaults to ``y`` and ``loss_fn`` to cross-entropy; pass teacher logits as
    ``targets`` with a distillation ``loss_fn`` to train a student. Shuffling uses ``generator``.
    """
    targets = y if targets is None else targets
    if targets is None:
        raise ValueError("fit_classifier needs y or targets, got neither")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    loss_fn = nn.functional.cross_entropy if loss_fn is None else loss_fn
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(X[idx]), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    return model
