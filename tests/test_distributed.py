"""SyncBN with two real gloo processes equals single-process BN on the whole batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from dlbook.distributed import combine_moments, run_sync_batch_norm


def test_sync_batch_norm_two_processes_equals_full_batch():
    x = torch.randn(6, 3, 4, 2, generator=torch.Generator().manual_seed(0)) * 2 + 1
    x[3:] += 5.0  # the two shards have very different statistics
    out = run_sync_batch_norm(x, world_size=2)
    assert_close(out["y"], F.batch_norm(x, None, None, training=True), rtol=1e-4, atol=1e-5)
    assert_close(out["mean"][0], out["mean"][1])  # both processes saw the same statistics
    assert_close(out["mean"][0], x.mean(dim=(0, 2, 3)))
    assert_close(out["var"][0], x.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4, atol=1e-5)


def test_world_size_must_divide_batch():
    with pytest.raises(ValueError, match="world_size"):
        run_sync_batch_norm(torch.randn(5, 3, 2), world_size=2)


def test_large_mean_small_std_float32_keeps_variance():
    """Mean 100, std 0.01 in float32: E[x^2] - mu^2 cancels, Chan's merge keeps var ~ 1e-4."""
    g = torch.Generator().manual_seed(1)
    x = (100.0 + 0.01 * torch.randn(64, 2, 16, generator=g, dtype=torch.float64)).float()
    true_var = x.double().var(dim=(0, 2), unbiased=False)
    good = run_sync_batch_norm(x, world_size=2)
    naive = run_sync_batch_norm(x, world_size=2, naive=True)
    assert_close(good["var"][0].double(), true_var, rtol=1e-3, atol=0.0)
    assert_close(good["var"][0], good["var"][1])
    assert_close(good["mean"][0].double(), x.double().mean(dim=(0, 2)), rtol=1e-6, atol=0.0)
    # the shortcut is off by far more than the variance itself (0 or ~1e-3 instead of ~1e-4)
    assert ((naive["var"][0].double() - true_var).abs() > 0.5 * true_var).all()
    # torch's single-process batch norm (Welford) agrees with the synchronized result
    assert_close(good["y"], F.batch_norm(x, None, None, training=True, eps=1e-5), rtol=1e-3, atol=1e-3)


def test_combine_moments_matches_full_batch_with_uneven_and_empty_shards():
    g = torch.Generator().manual_seed(2)
    parts = [torch.randn(k, 3, generator=g, dtype=torch.float64) * (i + 1) + 10 * i for i, k in enumerate((1, 7, 0, 20))]
    n = torch.tensor([[float(len(p))] * 3 for p in parts], dtype=torch.float64)
    mean = torch.stack([p.mean(0) if len(p) else torch.zeros(3, dtype=torch.float64) for p in parts])
    m2 = torch.stack([((p - p.mean(0)) ** 2).sum(0) if len(p) else torch.zeros(3, dtype=torch.float64) for p in parts])
    n_all, mu, m2_all = combine_moments(n, mean, m2)
    full = torch.cat(parts)
    assert_close(n_all, torch.full((3,), 28.0, dtype=torch.float64))
    assert_close(mu, full.mean(0))
    assert_close(m2_all / n_all, full.var(0, unbiased=False))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"shape \(N, C"):
        run_sync_batch_norm(torch.randn(4), world_size=2)
    with pytest.raises(TypeError, match="list"):
        run_sync_batch_norm([1.0, 2.0], world_size=1)
    with pytest.raises(ValueError, match="share a shape"):
        combine_moments(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3))
