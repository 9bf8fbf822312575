"""Transfer learning and fine-tuning: freezing, discriminative learning rates, EWC and
domain similarity (the chapter "Pre-training and fine-tuning", notebooks 01 and 02).

* :func:`freeze`, :func:`unfreeze`, :func:`trainable_parameters`, :func:`num_trainable`: which
  parameters an optimizer may move (``requires_grad``); BatchNorm buffers are *not* parameters,
  so a frozen backbone must also be put in ``eval()`` to keep its running statistics.
* :func:`discriminative_param_groups`: one optimizer parameter group per layer, the learning rate
  divided by ``decay`` per layer below the top (Howard & Ruder 2018, ULMFiT, Sec. 3.2).
* :func:`relative_change`: :math:`\\|W_{\\text{after}} - W_{\\text{before}}\\| / \\|W_{\\text{before}}\\|` per tensor.
* :func:`load_backbone`: load a pretrained ``state_dict`` except the keys of a new head.
* :func:`adapt_batchnorm`: AdaBN (Li et al. 2017): re-estimate BatchNorm statistics on unlabeled
  target inputs.
* :func:`per_sample_grads`, :func:`fisher_diagonal`, :func:`fisher_full`, :func:`ewc_penalty`:
  Elastic Weight Consolidation (Kirkpatrick et al. 2017) with the empirical Fisher.
* :func:`knn_accuracy` (a cheap transferability proxy) and :func:`mmd2` (a feature-space distance
  between two domains, Gretton et al. 2012).
* :class:`TensorBatches`: a fast in-memory loader for :func:`dlbook.train.fit`.

Back-links: ``chapters/finetuning/01-transfer-learning`` and ``02-forgetting-and-ewc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from dlbook.train import per_sample_gradients

__all__ = [
    "TensorBatches",
    "adapt_batchnorm",
    "discriminative_param_groups",
    "ewc_penalty",
    "fisher_diagonal",
    "fisher_full",
    "freeze",
    "knn_accuracy",
    "load_backbone",
    "mmd2",
    "num_trainable",
    "per_sample_grads",
    "relative_change",
    "trainable_parameters",
    "unfreeze",
]


class TensorBatches:
    """An in-memory loader for :func:`dlbook.train.fit`: yields ``(X[idx], y[idx])`` slices of
    ``batch_size`` rows, in a new order each pass when ``generator`` is given (a seeded
    ``torch.Generator``), in the stored order otherwise. It slices whole tensors, so it is
    several times faster than a ``DataLoader`` over a ``TensorDataset`` (which indexes and
    collates sample by sample) for the tiny models of this chapter. ``batch_size=None``: one
    full batch."""

    def __init__(self, X: Tensor, y: Tensor, *, batch_size: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        if len(X) != len(y) or len(X) == 0:
            raise ValueError(f"X and y must have the same non-zero length, got {len(X)} and {len(y)}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size}")
        self.X, self.y, self.generator = X, y, generator
        self.batch_size = len(X) if batch_size is None else batch_size

    def __len__(self) -> int:
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator) if self.generator is not None else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.X[idx], self.y[idx]


def _check_module(module: object) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")


# -- freezing ------------------------------------------------------------------------------
def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter of ``module``; return it.

    Only *parameters* are frozen: BatchNorm's ``running_mean``/``running_var`` are buffers
    updated by every forward pass in ``train()`` mode, so call ``module.eval()`` as well to keep
    a frozen backbone bit-identical.
    """
    _check_module(module)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=True`` on every parameter of ``module``; return it."""
    _check_module(module)
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad=True``, in ``module.parameters()`` order (what an
    optimizer for fine-tuning should hold)."""
    _check_module(module)
    return [p for p in module.parameters() if p.requires_grad]


def num_trainable(module: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad=True``."""
    return sum(p.numel() for p in trainable_parameters(module))


def discriminative_param_groups(layers: Sequence[nn.Module], *, lr: float, decay: float = 2.6) -> list[dict]:
    """Optimizer parameter groups with a learning rate per layer, largest at the top:

    .. math:: \\eta_l = \\eta \\,/\\, \\text{decay}^{\\,L-1-l}, \\qquad l = 0, \\dots, L-1,

    so the last layer (the new head) gets ``lr`` and each layer below it ``decay`` times less
    (ULMFiT's "discriminative fine-tuning", Howard & Ruder 2018, Sec. 3.2, uses 2.6). Frozen
    parameters are left out; a layer with none trainable gives no group.
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not decay >= 1:
        raise ValueError(f"decay must be >= 1, got {decay}")
    if len(layers) == 0:
        raise ValueError("layers must not be empty")
    groups = []
    for l, layer in enumerate(layers):
        params = trainable_parameters(layer)
        if params:
            groups.append({"params": params, "lr": lr / decay ** (len(layers) - 1 - l)})
    return groups


def relative_change(before: Mapping[str, Tensor], after: Mapping[str, Tensor]) -> dict[str, float]:
    """``{name: ||after - before|| / ||before||}`` (Frobenius norms) for every floating tensor in
    both state dicts with the same shape (a re-initialized head of another shape is skipped)."""
    out = {}
    for name, w0 in before.items():
        if name in after and after[name].shape == w0.shape and w0.is_floating_point():
            norm = torch.linalg.vector_norm(w0)
            if norm > 0:
                out[name] = float(torch.linalg.vector_norm(after[name] - w0) / norm)
    return out


def load_backbone(model: nn.Module, state_dict: Mapping[str, Tensor], *, exclude: Sequence[str]) -> list[str]:
    """Load ``state_dict`` into ``model`` except keys starting with a prefix in ``exclude`` (the
    old head); return the keys left at their fresh initialization. A plain ``load_state_dict``
    raises on a head of another size; this loads everything else strictly."""
    _check_module(model)
    if isinstance(exclude, str):
        raise TypeError("exclude must be a sequence of prefixes, not a str")
    kept = {k: v for k, v in state_dict.items() if not any(k.startswith(p) for p in exclude)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected:
        raise ValueError(f"state_dict has keys the model lacks: {unexpected}")
    bad = [k for k in missing if not any(k.startswith(p) for p in exclude)]
    if bad:
        raise ValueError(f"state_dict lacks backbone keys: {bad}")
    return list(missing)


def adapt_batchnorm(model: nn.Module, inputs: Tensor) -> nn.Module:
    """AdaBN (Li et al. 2017, "Revisiting batch normalization for practical domain adaptation"):
    reset every BatchNorm's running statistics, set ``momentum=None`` (a cumulative average),
    run one forward pass on the unlabeled target ``inputs`` in train mode, and return the model
    in eval mode. No parameter changes; only the buffers :math:`\\mu, \\sigma^2` become the target's."""
    _check_module(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ValueError("model has no BatchNorm layer to adapt")
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(inputs)
    return model.eval()


# -- Fisher information and EWC -------------------------------------------------------------
def _check_xy(inputs: Tensor, target: Tensor) -> None:
    if not isinstance(inputs, Tensor) or not isinstance(target, Tensor):
        raise TypeError("inputs and target must be tensors")
    if len(inputs) != len(target) or len(inputs) == 0:
        raise ValueError(f"inputs and target must have the same non-zero length, got {len(inputs)} and {len(target)}")


def per_sample_grads(model: nn.Module, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
    """:math:`g_n = \\nabla_\\theta \\log p_\\theta(y_n \\mid x_n)` for every sample, as
    ``{name: (N, *param.shape)}`` over the trainable parameters (``torch.func``: ``vmap`` over
    ``grad``). The model must not couple samples (no BatchNorm in train mode); it is evaluated
    with its buffers as they are."""
    _check_module(model)
    _check_xy(inputs, target)
    grads = per_sample_gradients(model, nn.functional.cross_entropy, inputs, target, trainable_only=True)
    return {name: -g for name, g in grads.items()}  # the gradient of log p = -cross-entropy


def fisher_diagonal(model: nn.Module, inputs: Tensor, target: Tensor) -> dict[str, Tensor]:
    """The diagonal empirical Fisher, per parameter tensor:

    .. math:: F_i = \\frac1N \\sum_{n=1}^N \\Big(\\frac{\\partial \\log p_\\theta(y_n \\mid x_n)}{\\partial \\theta_i}\\Big)^2

    at the observed labels ``target`` (the *empirical* Fisher; the true Fisher samples
    :math:`y \\sim p_\\theta(\\cdot \\mid x)` instead). Kirkpatrick et al. 2017, EWC, Eq. 3 and
    its supplement. Equals ``fisher_full(...).diagonal()`` reshaped.
    """
    grads = per_sample_grads(model, inputs, target)
    return {k: (g**2).mean(dim=0) for k, g in grads.items()}


def fisher_full(model: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
    """The full empirical Fisher :math:`F = \\frac1N \\sum_n g_n g_n^\\top`, shape ``(P, P)``
    with ``P`` the number of trainable scalars, flattened in ``named_parameters()`` order.
    Memory grows as :math:`P^2`: for small models only."""
    grads = per_sample_grads(model, inputs, target)
    G = torch.cat([g.reshape(len(inputs), -1) for g in grads.values()], dim=1)  # (N, P)
    return G.T @ G / len(inputs)                                               # (P, P)


def ewc_penalty(model: nn.Module, fisher: Mapping[str, Tensor], anchor: Mapping[str, Tensor], *,
                lam: float) -> Tensor:
    """The EWC penalty (Kirkpatrick et al. 2017, Eq. 3):

    .. math:: \\Omega(\\theta) = \\frac{\\lambda}{2} \\sum_i F_i \\,(\\theta_i - \\theta^*_i)^2

    with ``fisher`` the diagonal Fisher and ``anchor`` the old-task weights :math:`\\theta^*`,
    both keyed like ``model.named_parameters()`` (parameters missing from ``fisher`` are free).
    Add it to the new task's mean loss.
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    params = dict(model.named_parameters())
    unknown = [k for k in fisher if k not in params]
    if unknown:
        raise ValueError(f"fisher has keys the model lacks: {unknown}")
    total = torch.zeros((), dtype=next(iter(params.values())).dtype)
    for name, F_i in fisher.items():
        total = total + (F_i * (params[name] - anchor[name]) ** 2).sum()
    return lam / 2 * total


# -- transferability and domain distance ----------------------------------------------------
def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *, k: int = 1) -> float:
    """Accuracy of a k-nearest-neighbour classifier (Euclidean, majority vote, ties to the
    smallest label, as scikit-learn's ``KNeighborsClassifier``) fitted on ``(train_x, train_y)``.
    On a pretrained model's features it is a training-free proxy for how well they transfer."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(train_x):
        raise ValueError(f"k must be an int in [1, {len(train_x)}], got {k}")
    _check_xy(train_x, train_y)
    _check_xy(test_x, test_y)
    d = torch.cdist(test_x.double(), train_x.double())             # (M, N)
    idx = d.topk(k, dim=1, largest=False).indices                   # (M, k)
    votes = nn.functional.one_hot(train_y[idx], int(train_y.max()) + 1).sum(dim=1)  # (M, C)
    pred = votes.argmax(dim=1)
    return float((pred == test_y).double().mean())


def mmd2(x: Tensor, y: Tensor, *, sigma: float) -> Tensor:
    """Squared maximum mean discrepancy with a Gaussian kernel
    :math:`k(a, b) = \\exp(-\\|a - b\\|^2 / 2\\sigma^2)`, the biased (V-statistic) estimate
    (Gretton et al. 2012, JMLR, Eq. 5):

    .. math:: \\mathrm{MMD}^2 = \\overline{k(x, x')} + \\overline{k(y, y')} - 2\\,\\overline{k(x, y)}

    zero for identical samples, larger the further apart the two feature distributions are.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}")

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * sigma**2))

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
