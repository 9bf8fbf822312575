"""Synchronized batch normalization with real ``torch.distributed`` processes (CPU, gloo).

SyncBN (Peng et al. 2018, "MegDet", section 4; ``torch.nn.SyncBatchNorm``) makes every
process normalize with the statistics of the *global* batch. Each of the P processes holds a
shard x_p of its batch and computes per channel

    s_p = sum(x_p),   q_p = sum(x_p^2),   n_p = count(x_p)

then one ``all_reduce`` (sum) gives every process S = sum_p s_p, Q = sum_p q_p, n = sum_p n_p, and

    mu = S / n,   sigma^2 = Q / n - mu^2          (biased, as single-process BN)
    y_p = (x_p - mu) / sqrt(sigma^2 + eps)

which equals batch norm on the concatenated batch. The worker lives in this importable module
(not in a notebook) because ``torch.multiprocessing.spawn`` pickles it by qualified name.
Chapter "Normalization", section q-normalization.syncbn-and-frozen-bn.
"""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

__all__ = ["sync_batch_norm_stats", "run_sync_batch_norm"]


def sync_batch_norm_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Global per-channel (mean, biased var, count) of ``x`` of shape ``(N_p, C, *)`` across the group.

    Must be called by every process of an initialized ``torch.distributed`` group.
    """
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C, *), got shape {tuple(x.shape)}")
    dims = (0, *range(2, x.ndim))
    local = torch.stack([
        x.sum(dim=dims),  # s_p, (C,)
        (x**2).sum(dim=dims),  # q_p, (C,)
        torch.full((x.shape[1],), x.numel() / x.shape[1], dtype=x.dtype),  # n_p
    ])  # (3, C): one all_reduce carries all three
    dist.all_reduce(local, op=dist.ReduceOp.SUM)
    total, total_sq, n = local
    mu = total / n
    var = total_sq / n - mu**2
    return mu, var, n


def _worker(rank: int, world_size: int, store_path: str, out_dir: str, eps: float) -> None:
    """One process: normalize its shard with the all-reduced statistics and save the result."""
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    try:
        shard = torch.load(os.path.join(out_dir, f"in{rank}.pt"))
        mu, var, _ = sync_batch_norm_stats(shard)
        shape = (1, -1) + (1,) * (shard.ndim - 2)
        y = (shard - mu.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
        torch.save({"y": y, "mean": mu, "var": var}, os.path.join(out_dir, f"out{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_sync_batch_norm(x: Tensor, world_size: int = 2, *, eps: float = 1e-5) -> dict[str, Tensor]:
    """Split ``x`` (N, C, *) into ``world_size`` shards, SyncBN them in that many processes.

    Returns ``{"y": concatenated outputs, "mean": (world_size, C), "var": (world_size, C)}``
    (the statistics each process saw; identical across processes when synchronized).
    """
    if not isinstance(world_size, int) or world_size < 1 or x.shape[0] % world_size != 0:
        raise ValueError(f"world_size must divide the batch size {x.shape[0]}, got world_size={world_size}")
    with tempfile.TemporaryDirectory() as out_dir:
        for rank, shard in enumerate(x.chunk(world_size)):
            torch.save(shard.clone(), os.path.join(out_dir, f"in{rank}.pt"))
        store_path = os.path.join(out_dir, "store")
        mp.spawn(_worker, args=(world_size, store_path, out_dir, eps), nprocs=world_size, join=True)
        outs = [torch.load(os.path.join(out_dir, f"out{r}.pt")) for r in range(world_size)]
    return {
        "y": torch.cat([o["y"] for o in outs]),
        "mean": torch.stack([o["mean"] for o in outs]),
        "var": torch.stack([o["var"] for o in outs]),
    }
