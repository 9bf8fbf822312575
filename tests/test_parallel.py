"""dlbook.parallel: ring all-reduce, DDP, ZeRO, tensor and pipeline parallelism on real gloo processes.

Process-spawning tests are few (each launch costs ~0.1-1 s after the forkserver's first start);
the schedules and formulas are tested in one process.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from dlbook import parallel as P
from dlbook.memory import tensor_bytes


# ---------------------------------------------------------------- workers for the launcher's failure paths
def _raising_worker(rank: int, world_size: int) -> None:
    if rank == 1:
        raise ValueError("worker-one-failed-on-purpose")
    dist.barrier()


def _stuck_collective_worker(rank: int, world_size: int) -> None:
    if rank == 0:
        dist.barrier()  # rank 1 never joins: must time out, not hang
    else:
        time.sleep(30)


# ---------------------------------------------------------------- pure functions
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), per=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_simulated_ring_sums_and_sends_2_n_minus_1_over_n(n, per, seed):
    g = torch.Generator().manual_seed(seed)
    buffers = [torch.randint(-50, 50, (n * per,), generator=g).double() for _ in range(n)]
    outs, sent = P.simulate_ring_all_reduce(buffers)
    total = torch.stack(buffers).sum(0)
    for out in outs:
        assert torch.equal(out, total)  # small integers: exact in any order
    assert sent == [2 * (n - 1) * per] * n
    assert all(s == P.ring_traffic(n * per, n) for s in sent)


def test_traffic_formulas():
    for n in (2, 4, 8):
        assert P.ring_traffic(1000, n) == 2 * (n - 1) / n * 1000 <= 2000
        assert P.parameter_server_traffic(1000, n) == (n - 1) * 1000
        assert P.data_parallel_traffic(1000, n) == ((n - 1) * 1000, (n - 1) * 1000)
    ring = [P.all_reduce_time(1e8, n, latency=1e-5, bandwidth=1e10) for n in (2, 8, 64)]
    server = [P.all_reduce_time(1e8, n, latency=1e-5, bandwidth=1e10, algorithm="server") for n in (2, 8, 64)]
    assert ring[-1] < 2 * 1e8 / 1e10 + 2 * 63 * 1e-5 + 1e-12 and server[-1] > 30 * server[0]
    with pytest.raises(ValueError, match="algorithm"):
        P.all_reduce_time(1.0, 2, latency=0.0, bandwidth=1.0, algorithm="tree")


def test_zero_bytes_per_param_paper_numbers():
    psi, n = 7.5e9, 64
    gb = [P.zero_bytes_per_param(s, n) * psi / 1e9 for s in range(4)]
    assert [round(x, 1) for x in gb] == [120.0, 31.4, 16.6, 1.9]
    assert P.zero_bytes_per_param(3, 1) == 16
    with pytest.raises(ValueError, match="stage"):
        P.zero_bytes_per_param(4, 2)


def test_bad_world_sizes_and_shards_are_rejected():
    with pytest.raises(ValueError, match="world_size must be >= 1, got 0"):
        P.launch(_raising_worker, 0)
    with pytest.raises(TypeError, match="world_size must be an int"):
        P.check_world_size(2.0)
    with pytest.raises(ValueError, match="must divide the number of values 10"):
        P.shard_range(10, 3, 0)
    with pytest.raises(ValueError, match="must divide"):
        P.simulate_ring_all_reduce([torch.ones(5), torch.ones(5)])
    with pytest.raises(ValueError, match="must divide"):
        P.column_shard(torch.ones(6, 4), None, 4, 0)
    with pytest.raises(ValueError, match="rank"):
        P.shard_range(12, 3, 3)
    with pytest.raises(ValueError, match="micro-batches"):
        P.bubble_fraction(4, 0)
    with pytest.raises(ValueError, match="sizes"):
        P.flat_mlp_forward(torch.zeros(3), [2, 2], torch.zeros(1, 2))


def test_column_row_shards_reassemble_the_mlp():
    g = torch.Generator().manual_seed(0)
    w1, b1, w2 = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((8, 5), (8,), (5, 8)))
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    full = F.linear(F.gelu(F.linear(x, w1, b1)), w2)
    parts = []
    for r in range(4):
        a, b = P.column_shard(w1, b1, 4, r)
        parts.append(F.linear(F.gelu(F.linear(x, a, b)), P.row_shard(w2, 4, r)))
    assert_close(sum(parts), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p,m", [(1, 1), (2, 1), (4, 8), (3, 5), (8, 32)])
def test_gpipe_schedule_idle_fraction_is_the_bubble_formula(p, m):
    ops = P.gpipe_schedule(p, m)
    assert len(ops) == 2 * p * m
    assert math.isclose(P.idle_fraction(ops), float(P.bubble_fraction(p, m)), abs_tol=1e-12)
    assert max(op[4] for op in ops) == (m + p - 1) * 3  # t_fwd + t_bwd = 3 per slot
    assert P.bubble_fraction(4, 8) == P.bubble_fraction(4, 8).__class__(3, 11)


def test_flat_mlp_forward_equals_the_module():
    model = P.tiny_mlp([3, 6, 2], seed=4)
    x = torch.randn(5, 3)
    assert_close(P.flat_mlp_forward(P.flat_mlp_init([3, 6, 2], 4), [3, 6, 2], x), model(x))
    assert tensor_bytes([torch.zeros(10)[2:5], torch.zeros(3, dtype=torch.bfloat16)]) == 46


# ---------------------------------------------------------------- real processes
def test_ring_and_server_all_reduce_equal_torch_on_three_processes():
    buffers = torch.randn(3, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = P.launch(P.all_reduce_worker, 3, buffers)
    for rank, r in enumerate(out):
        assert_close(r["ring"], buffers.sum(0))
        assert_close(r["torch"], buffers.sum(0))
        assert_close(r["server"], buffers.sum(0))
        assert r["ring_bytes"] == 2 * 2 / 3 * 12 * 8
        assert r["server_bytes"] == (2 * 12 * 8 if rank == 0 else 12 * 8)


def test_a_crashing_worker_fails_the_caller_with_its_traceback():
    with pytest.raises(P.WorkerError, match="rank 1 failed first:\n(.|\n)*worker-one-failed-on-purpose"):
        P.launch(_raising_worker, 2, collective_timeout=10)


def test_a_stuck_collective_times_out_instead_of_hanging():
    start = time.monotonic()
    with pytest.raises((P.WorkerError, TimeoutError)):
        P.launch(_stuck_collective_worker, 2, timeout=8, collective_timeout=1)
    assert time.monotonic() - start < 8 + 5
    with pytest.raises(TimeoutError, match="timeout=1"):
        P.launch(_stuck_collective_worker, 2, timeout=1, collective_timeout=20)


def test_ddp_equals_single_process_large_batch_every_step():
    sizes, g = [4, 8, 2], torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)
    out = P.launch(P.ddp_train, 2, sizes, x, y, 3, 0.1, 0)
    reference = P.train_full_batch(sizes, x, y, steps=3, lr=0.1, seed=0)
    for step in range(3):
        assert torch.equal(out[0]["weights"][step], out[1]["weights"][step])
        assert_close(out[0]["weights"][step], reference[step], rtol=0, atol=1e-6)
    assert out[0]["bytes"] == [P.flat_mlp_init(sizes, 0).numel() * 4] * 3


def test_zero_stages_equal_ddp_and_hold_the_predicted_bytes():
    sizes, g = [4, 8, 2], torch.Generator().manual_seed(3)  # 58 parameters
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)
    psi = P.flat_mlp_init(sizes, 0).numel()
    results = [P.launch(P.zero_train, 2, stage, sizes, x, y, 3, 0.01, 0) for stage in range(4)]
    for stage, out in enumerate(results):
        assert sum(out[0]["bytes"].values()) == P.zero_bytes_per_param(stage, 2) * psi
        for r in out:
            assert torch.equal(r["weights"], results[0][0]["weights"])
    with pytest.raises(P.WorkerError, match="must divide"):
        P.launch(P.zero_train, 3, 1, sizes, x[:6], y[:6], 1, 0.01, 0)  # 58 not divisible by 3


def test_tensor_parallel_mlp_equals_unsplit_forward_and_backward():
    g = torch.Generator().manual_seed(4)
    w1, b1, w2, b2 = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((8, 6), (8,), (6, 8), (6,)))
    x, grad_out = torch.randn(3, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    out = P.launch(P.tensor_parallel_worker, 2, x, w1, b1, w2, b2, grad_out)
    leaves = [t.clone().requires_grad_() for t in (x, w1, b1, w2, b2)]
    y = F.linear(F.gelu(F.linear(leaves[0], leaves[1], leaves[2])), leaves[3], leaves[4])
    y.backward(grad_out)
    for rank, r in enumerate(out):
        assert_close(r["y"], y.detach(), rtol=0, atol=1e-12)
        assert_close(r["grad_x"], leaves[0].grad, rtol=0, atol=1e-12)
        assert_close(r["grad_w1"], leaves[1].grad[4 * rank:4 * rank + 4], rtol=0, atol=1e-12)
        assert_close(r["grad_w2"], leaves[3].grad[:, 4 * rank:4 * rank + 4], rtol=0, atol=1e-12)
        assert (r["forward_all_reduces"], r["backward_all_reduces"]) == (1, 1)


def test_gpipe_worker_runs_every_operation_once():
    out = P.launch(P.gpipe_worker, 2, [(2, 3), (1, 2)], 4, 2, 0.0, 0.0, 0)
    assert sorted((op[1], op[2]) for op in out[1][0]) == sorted([("F", i) for i in range(3)] + [("B", i) for i in range(3)])
    assert len(out[0][1]) == 4 and out[1][1] == []


def test_torch_zero_redundancy_optimizer_and_fsdp_on_gloo():
    sizes, g = [4, 8, 8, 2], torch.Generator().manual_seed(5)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)
    out = P.launch(P.torch_sharding_worker, 2, sizes, [4, 16, 2], x, y, 2, 0.01, 0)
    reference = P.train_full_batch(sizes, x, y, steps=2, lr=0.01, seed=0, optimizer="adam")[-1]
    psi = reference.numel()
    assert sum(r["zero"]["adam_bytes"] for r in out) == 2 * 4 * psi  # the two moments, split
    for r in out:
        assert_close(r["zero"]["weights"], reference, rtol=0, atol=1e-5)
        assert r["fsdp"]["ok"], r["fsdp"].get("error")
        assert_close(r["fsdp"]["weights"], reference, rtol=0, atol=1e-5)
