"""Synchronized batch normalization with real ``torch.distributed`` processes (CPU, gloo).

SyncBN (Peng et al. 2018, "MegDet", section 4; ``torch.nn.SyncBatchNorm``) makes every
process normalize with the statistics of the *global* batch. Each of the P processes holds a
shard x_p of its batch and computes per channel its count, mean and sum of squared deviations

    n_p = count(x_p),   m_p = mean(x_p),   M2_p = sum((x_p - m_p)^2)

then one ``all_gather`` gives every process all P triples, which it merges with Chan, Golub &
LeVeque's (1979) parallel formula, pairwise (as ``torch.batch_norm_gather_stats_with_counts``):

    n = n_a + n_b,   d = m_b - m_a,   m = m_a + d n_b / n,   M2 = M2_a + M2_b + d^2 n_a n_b / n
    mu = m,   sigma^2 = M2 / n          (biased, as single-process BN)
    y_p = (x_p - mu) / sqrt(sigma^2 + eps)

which equals batch norm on the concatenated batch. The textbook shortcut, all-reducing
S = sum x and Q = sum x^2 and taking Q/n - (S/n)^2, cancels catastrophically when the mean is
large against the spread: in float32 with mean 100 and std 0.01, Q/n and mu^2 agree in all
their ~7 significant digits, and the difference (the variance, 1e-4) is rounding noise
(``naive_sync_batch_norm_stats`` keeps that version for the book to show the failure).
The worker lives in this importable module
(not in a notebook) because the processes unpickle it by qualified name.
Chapter "Normalization", section q-normalization.syncbn-and-frozen-bn.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["sync_batch_norm_stats", "naive_sync_batch_norm_stats", "combine_moments", "run_sync_batch_norm"]


def _check_shape(x: Tensor) -> tuple[int, ...]:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C, *), got shape {tuple(x.shape)}")
    return (0, *range(2, x.ndim))


def combine_moments(n: Tensor, mean: Tensor, m2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Merge per-shard (count, mean, M2) of shape ``(P, C)`` into global ``(n, mean, M2)`` of shape ``(C,)``.

    Chan, Golub & LeVeque (1979), pairwise update, for shards a and b:
    ``n = n_a + n_b``, ``d = m_b - m_a``, ``m = m_a + d n_b / n``, ``M2 = M2_a + M2_b + d^2 n_a n_b / n``.
    No large sums of squares are ever subtracted, so the variance ``M2 / n`` keeps its
    relative precision whatever the mean. Shards with ``n_p = 0`` are skipped.
    """
    if not (n.shape == mean.shape == m2.shape) or n.ndim != 2:
        raise ValueError(f"n, mean, m2 must share a shape (P, C), got {tuple(n.shape)}, {tuple(mean.shape)}, {tuple(m2.shape)}")
    n_acc, mean_acc, m2_acc = n[0], mean[0], m2[0]
    for n_b, mean_b, m2_b in zip(n[1:], mean[1:], m2[1:]):
        n_tot = n_acc + n_b
        safe = torch.where(n_tot > 0, n_tot, torch.ones_like(n_tot))
        delta = mean_b - mean_acc
        mean_acc = torch.where(n_tot > 0, mean_acc + delta * n_b / safe, mean_acc)
        m2_acc = m2_acc + m2_b + delta**2 * n_acc * n_b / safe
        n_acc = n_tot
    return n_acc, mean_acc, m2_acc


def sync_batch_norm_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Global per-channel (mean, biased var, count) of ``x`` of shape ``(N_p, C, *)`` across the group.

    Each process computes its shard's (n_p, m_p, M2_p) in two passes, ``all_gather`` shares them,
    and :func:`combine_moments` merges them (Chan's parallel formula), as ``torch.nn.SyncBatchNorm``
    does. Must be called by every process of an initialized ``torch.distributed`` group.
    """
    dims = _check_shape(x)
    count = x.numel() // x.shape[1]
    mean_p = x.mean(dim=dims)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m2_p = ((x - mean_p.reshape(shape)) ** 2).sum(dim=dims)
    local = torch.stack([torch.full_like(mean_p, float(count)), mean_p, m2_p])  # (3, C)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    allstats = torch.stack(gathered)  # (P, 3, C)
    n, mu, m2 = combine_moments(allstats[:, 0], allstats[:, 1], allstats[:, 2])
    return mu, m2 / n, n


def naive_sync_batch_norm_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The cancelling shortcut: all-reduce (sum x, sum x^2, n), var = E[x^2] - mu^2. For demonstration only.

    Loses all precision when |mean| >> std (float32, mean 100, std 0.01: var comes out 0 or
    ~1e-3 instead of 1e-4). Use :func:`sync_batch_norm_stats`.
    """
    dims = _check_shape(x)
    local = torch.stack([
        x.sum(dim=dims),
        (x**2).sum(dim=dims),
        torch.full((x.shape[1],), x.numel() / x.shape[1], dtype=x.dtype),
    ])
    dist.all_reduce(local, op=dist.ReduceOp.SUM)
    total, total_sq, n = local
    mu = total / n
    return mu, total_sq / n - mu**2, n


def _worker(rank: int, world_size: int, shards: list[Tensor], eps: float, naive: bool) -> dict[str, Tensor]:
    """One process: normalize its shard with the all-reduced statistics."""
    shard = shards[rank]
    mu, var, _ = (naive_sync_batch_norm_stats if naive else sync_batch_norm_stats)(shard)
    shape = (1, -1) + (1,) * (shard.ndim - 2)
    y = (shard - mu.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return {"y": y, "mean": mu, "var": var}


def run_sync_batch_norm(x: Tensor, world_size: int = 2, *, eps: float = 1e-5, naive: bool = False) -> dict[str, Tensor]:
    """Split ``x`` (N, C, *) into ``world_size`` shards, SyncBN them in that many processes
    (started by :func:`dlbook.parallel.launch`: timeouts, worker tracebacks, group always destroyed).

    ``naive=True`` uses :func:`naive_sync_batch_norm_stats` (E[x^2] - mu^2) instead of Chan's merge.

    Returns ``{"y": concatenated outputs, "mean": (world_size, C), "var": (world_size, C)}``
    (the statistics each process saw; identical across processes when synchronized).
    """
    from dlbook.parallel import launch

    _check_shape(x)
    if not isinstance(world_size, int) or world_size < 1 or x.shape[0] % world_size != 0:
        raise ValueError(f"world_size must divide the batch size {x.shape[0]}, got world_size={world_size}")
    shards = [shard.clone() for shard in x.chunk(world_size)]
    outs = launch(_worker, world_size, shards, eps, naive)
    return {
        "y": torch.cat([o["y"] for o in outs]),
        "mean": torch.stack([o["mean"] for o in outs]),
        "var": torch.stack([o["var"] for o in outs]),
    }
