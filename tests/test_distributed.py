"""SyncBN with two real gloo processes equals single-process BN on the whole batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from dlbook.distributed import run_sync_batch_norm


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
