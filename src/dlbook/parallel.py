"""Training at scale with real ``torch.distributed`` processes on CPU (gloo): data, ZeRO, tensor and
pipeline parallelism at toy size.

Chapter "Training at scale", sections q-scale.dp-vs-ddp, q-scale.ring-allreduce,
q-scale.zero-stages-fsdp and q-scale.tensor-pipeline-parallel.

**The launcher.** :func:`launch` ``(fn, world_size, *args)`` starts ``world_size`` processes, each
running ``fn(rank, world_size, *args)`` inside an initialized gloo process group on 127.0.0.1
(a free TCP port), and returns the list of their return values (saved with ``torch.save``, so a
result is made of tensors, numbers, strings, lists, tuples and dicts). ``fn`` must be importable
from a module (the processes unpickle it by qualified name), which is why every worker of the
chapter lives here and not in a notebook. Processes come from a *forkserver* that preloads this
module and what DDP and FSDP import (``torch._dynamo`` among them): the first launch pays those
imports once (2-4 s of CPU), later ones start in about 0.1 s, where ``torch.multiprocessing.spawn``
re-imports torch in every process of every launch (about 1 s each, 3 s more for DDP).
Every collective has a timeout (``collective_timeout``, passed to ``init_process_group``), the
whole launch has one too (``timeout``: the processes are killed and ``TimeoutError`` raised),
a worker that raises fails the caller with the worker's traceback (:class:`WorkerError`, the
first failure first: the other ranks then fail too, on a closed connection), and every process destroys its group in a
``finally``.

**Ring all-reduce** (Patarasuk & Yuan 2009; Baidu's "ring all-reduce" 2017; Horovod, Sergeev &
Del Balso 2018). N ranks in a ring, each buffer cut into N chunks of M/N values.
Reduce-scatter: in step s = 0..N-2 rank r sends chunk (r-s-1) mod N to rank r+1 and adds the
chunk (r-s-2) mod N it receives from rank r-1; after N-1 steps rank r holds the full sum of
chunk r. All-gather: in step s rank r sends chunk (r-s) mod N and stores chunk (r-s-1) mod N.
Each rank sends 2(N-1) chunks, 2(N-1)/N M values, against (N-1) M for the server of a
parameter server (and for DataParallel's device 0).

**ZeRO** (Rajbhandari et al. 2020): with mixed-precision Adam each parameter costs 2 bytes
(fp16/bf16 weight) + 2 (gradient) + 12 (fp32 master weight, m, v) = 16 bytes. Stage 1 shards the
12, stage 2 also the gradient, stage 3 also the 16-bit weight, so per rank
16 Psi, 4 Psi + 12 Psi/N, 2 Psi + 14 Psi/N, 16 Psi/N bytes (:func:`zero_bytes_per_param`).

**Tensor parallelism** (Megatron-LM, Shoeybi et al. 2019, section 3): Y = GeLU(X A) B with A split
by columns and B by rows gives partial outputs whose sum is Y: one all-reduce per MLP block
forward (operator g) and one backward (operator f).

**Pipeline parallelism** (GPipe, Huang et al. 2019): p stages, a batch in m micro-batches; all
forwards then all backwards; every stage idles for p-1 slots of the m+p-1, a bubble fraction of
(p-1)/(m+p-1) (:func:`bubble_fraction`).
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from dlbook.memory import tensor_bytes

__all__ = [
    "free_port", "launch", "WorkerError", "check_world_size", "shard_range",
    "simulate_ring_all_reduce", "ring_reduce_scatter", "ring_all_gather", "ring_all_reduce",
    "parameter_server_all_reduce", "ring_traffic", "parameter_server_traffic", "all_reduce_time",
    "data_parallel_traffic",
    "tiny_mlp", "train_full_batch", "ddp_train", "all_reduce_worker",
    "zero_bytes_per_param", "flat_mlp_forward", "flat_mlp_init", "zero_train",
    "torch_sharding_worker", "column_shard", "row_shard", "tensor_parallel_mlp",
    "tensor_parallel_worker", "gpipe_schedule", "idle_fraction", "bubble_fraction", "gpipe_worker",
]


# ----------------------------------------------------------------------------- launcher
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_world_size(world_size: Any) -> int:
    """``world_size`` as an int >= 1, else ``ValueError``/``TypeError`` naming it."""
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise TypeError(f"world_size must be an int, got {type(world_size).__name__}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return world_size


def _entry(rank: int, fn: Callable, world_size: int, port: int, out_dir: str,
           collective_timeout: float, args: tuple) -> None:
    """One process: join the gloo group, run ``fn``, save its result, always leave the group."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=collective_timeout))
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(out_dir, f"result{rank}.pt"))
    except BaseException:  # written before the group closes, so the first failure is always on disk
        with open(os.path.join(out_dir, f"error{rank}.txt"), "w") as f:
            f.write(f"{time.time():.6f}\n{traceback.format_exc()}")
        raise
    finally:
        dist.destroy_process_group()


class WorkerError(RuntimeError):
    """A worker process raised; the message holds every failed worker's traceback, the first failure first."""


def _worker_errors(out_dir: str, world_size: int) -> str:
    """The tracebacks left by failed workers, earliest first (later ones are usually its echo: a closed connection)."""
    failures = []
    for rank in range(world_size):
        path = os.path.join(out_dir, f"error{rank}.txt")
        if os.path.exists(path):
            stamp, _, text = open(path).read().partition("\n")
            failures.append((float(stamp), rank, text))
    failures.sort()
    return "\n".join(f"rank {rank} failed{' first' if i == 0 else ''}:\n{text}" for i, (_, rank, text) in enumerate(failures))


def _forkserver_context() -> Any:
    """The forkserver context, preloading this module so a process starts without importing torch."""
    ctx = mp.get_context("forkserver")
    # effective only before the server starts (harmless after): what every worker imports, imported once
    ctx.set_forkserver_preload([__name__, "torch.nn.parallel", "torch.distributed.algorithms.ddp_comm_hooks",
                                "torch.distributed.optim", "torch.distributed.fsdp", "torch._dynamo"])
    return ctx


def launch(fn: Callable, world_size: int, *args: Any, timeout: float = 120.0,
           collective_timeout: float = 30.0) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` gloo processes; return their results by rank.

    ``fn`` must be a module-level function (pickled by name). A worker that raises makes this raise
    :class:`WorkerError` carrying every failed worker's traceback, the first failure first; a collective
    that waits longer than ``collective_timeout`` seconds raises inside its worker; past
    ``timeout`` seconds all processes are killed and ``TimeoutError`` is raised.
    """
    check_world_size(world_size)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if timeout <= 0 or collective_timeout <= 0:
        raise ValueError(f"timeouts must be > 0, got timeout={timeout}, collective_timeout={collective_timeout}")
    _forkserver_context()
    with tempfile.TemporaryDirectory(prefix="dlbook-parallel-") as out_dir:
        context = mp.start_processes(_entry, args=(fn, world_size, free_port(), out_dir, collective_timeout, args),
                                     nprocs=world_size, join=False, start_method="forkserver")
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=0.02):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {world_size} processes running {fn.__name__} did not finish within "
                                       f"timeout={timeout} s; they were killed")
        except ProcessException as error:
            raise WorkerError(_worker_errors(out_dir, world_size) or str(error)) from None
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                process.join()
        return [torch.load(os.path.join(out_dir, f"result{r}.pt")) for r in range(world_size)]


def shard_range(numel: int, world_size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s equal shard of ``numel`` values; ``ValueError`` unless N divides it."""
    check_world_size(world_size)
    if numel % world_size != 0:
        raise ValueError(f"world_size={world_size} must divide the number of values {numel} (pad the buffer)")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    size = numel // world_size
    return rank * size, (rank + 1) * size


# ----------------------------------------------------------------------------- ring all-reduce
def _reduce_scatter_chunks(rank: int, step: int, n: int) -> tuple[int, int]:
    """(chunk sent, chunk received) by ``rank`` at reduce-scatter step ``step``: rank r ends owning chunk r."""
    return (rank - step - 1) % n, (rank - step - 2) % n


def _all_gather_chunks(rank: int, step: int, n: int) -> tuple[int, int]:
    """(chunk sent, chunk received) by ``rank`` at all-gather step ``step``."""
    return (rank - step) % n, (rank - step - 1) % n


def simulate_ring_all_reduce(buffers: Sequence[Tensor]) -> tuple[list[Tensor], list[int]]:
    """The ring schedule run in one process on N buffers: (the N results, values sent by each rank).

    Same chunk indices as :func:`ring_all_reduce`; every result equals ``sum(buffers)`` and each rank
    sends 2(N-1) chunks of M/N values. Messages of one step are all taken before any is applied.
    """
    n = check_world_size(len(buffers))
    shard_range(buffers[0].numel(), n, 0)
    chunks = [list(b.flatten().clone().chunk(n)) for b in buffers]
    sent = [0] * n
    for step in range(n - 1):  # reduce-scatter
        msgs = [chunks[r][_reduce_scatter_chunks(r, step, n)[0]].clone() for r in range(n)]
        for r in range(n):
            sent[r] += msgs[r].numel()
            dst = (r + 1) % n
            c = _reduce_scatter_chunks(dst, step, n)[1]
            chunks[dst][c] = chunks[dst][c] + msgs[r]
    for step in range(n - 1):  # all-gather
        msgs = [chunks[r][_all_gather_chunks(r, step, n)[0]].clone() for r in range(n)]
        for r in range(n):
            sent[r] += msgs[r].numel()
            dst = (r + 1) % n
            chunks[dst][_all_gather_chunks(dst, step, n)[1]] = msgs[r]
    return [torch.cat(c).reshape(buffers[0].shape) for c in chunks], sent


def _ring_exchange(send: Tensor, recv: Tensor, rank: int, n: int) -> int:
    """Send ``send`` to rank+1 while receiving ``recv`` from rank-1; returns bytes sent."""
    request = dist.isend(send.contiguous(), dst=(rank + 1) % n)
    dist.recv(recv, src=(rank - 1) % n)
    request.wait()
    return send.numel() * send.element_size()


def ring_reduce_scatter(tensor: Tensor) -> tuple[Tensor, int]:
    """Ring reduce-scatter over the current group: (the sum of chunk ``rank`` of every rank's tensor, bytes sent).

    N-1 steps, each sending one chunk of M/N values to the next rank: (N-1)/N M values sent.
    """
    n, rank = dist.get_world_size(), dist.get_rank()
    shard_range(tensor.numel(), n, rank)
    chunks = [c.clone() for c in tensor.detach().flatten().chunk(n)]
    sent = 0
    for step in range(n - 1):
        send_c, recv_c = _reduce_scatter_chunks(rank, step, n)
        incoming = torch.empty_like(chunks[recv_c])
        sent += _ring_exchange(chunks[send_c], incoming, rank, n)
        chunks[recv_c] = chunks[recv_c] + incoming
    return chunks[rank], sent


def ring_all_gather(shard: Tensor) -> tuple[Tensor, int]:
    """Ring all-gather over the current group: (the concatenation of every rank's shard, bytes sent)."""
    n, rank = dist.get_world_size(), dist.get_rank()
    chunks = [torch.empty_like(shard) for _ in range(n)]
    chunks[rank] = shard.detach().clone()
    sent = 0
    for step in range(n - 1):
        send_c, recv_c = _all_gather_chunks(rank, step, n)
        sent += _ring_exchange(chunks[send_c], chunks[recv_c], rank, n)
    return torch.cat(chunks), sent


def ring_all_reduce(tensor: Tensor) -> tuple[Tensor, int]:
    """Sum of ``tensor`` over all ranks by reduce-scatter then all-gather with send/recv: (sum, bytes sent).

    Each rank sends 2(N-1)/N of the buffer's bytes; N must divide ``tensor.numel()``.
    """
    shard, sent_rs = ring_reduce_scatter(tensor)
    full, sent_ag = ring_all_gather(shard)
    return full.reshape(tensor.shape), sent_rs + sent_ag


def parameter_server_all_reduce(tensor: Tensor) -> tuple[Tensor, int]:
    """All-reduce through rank 0 as a parameter server: everyone sends to 0, 0 sums and sends back.

    Returns (sum, bytes sent by this rank): (N-1) M on rank 0, M on the others.
    """
    n, rank = dist.get_world_size(), dist.get_rank()
    buf = tensor.detach().clone()
    sent = 0
    if rank == 0:
        for src in range(1, n):
            incoming = torch.empty_like(buf)
            dist.recv(incoming, src=src)
            buf = buf + incoming
        for dst in range(1, n):
            dist.send(buf, dst=dst)
            sent += buf.numel() * buf.element_size()
    else:
        dist.send(buf, dst=0)
        sent += buf.numel() * buf.element_size()
        dist.recv(buf, src=0)
    return buf, sent


def ring_traffic(m: float, n: int) -> float:
    """Values each rank sends in a ring all-reduce of ``m`` values over ``n`` ranks: 2(n-1)/n m."""
    check_world_size(n)
    return 2 * (n - 1) / n * m


def parameter_server_traffic(m: float, n: int) -> float:
    """Values the server sends in a parameter-server all-reduce (it also receives as many): (n-1) m."""
    check_world_size(n)
    return (n - 1) * m


def data_parallel_traffic(m: float, n: int) -> tuple[float, float]:
    """(values sent, values received) by DataParallel's device 0 per step: ((n-1) m, (n-1) m).

    It broadcasts the m weights to n-1 replicas and gathers n-1 gradients of m values (and also the
    outputs, not counted here).
    """
    check_world_size(n)
    return (n - 1) * m, (n - 1) * m


def all_reduce_time(nbytes: float, n: int, *, latency: float, bandwidth: float, algorithm: str = "ring") -> float:
    """The alpha-beta cost (seconds) of all-reducing ``nbytes`` over ``n`` ranks.

    ring: 2(n-1) alpha + 2(n-1)/n nbytes / B (every link busy in parallel);
    server: 2(n-1) alpha + 2(n-1) nbytes / B (the server's one link carries everything);
    alpha = ``latency`` per message, B = ``bandwidth`` in bytes/s (Thakur, Rabenseifner & Gropp 2005).
    """
    check_world_size(n)
    if algorithm == "ring":
        return 2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth
    if algorithm == "server":
        return 2 * (n - 1) * latency + 2 * (n - 1) * nbytes / bandwidth
    raise ValueError(f"algorithm must be 'ring' or 'server', got {algorithm!r}")


def all_reduce_worker(rank: int, world_size: int, buffers: Tensor) -> dict[str, Any]:
    """Worker: all-reduce row ``rank`` of ``buffers`` three ways (ring, parameter server, ``dist.all_reduce``)."""
    mine = buffers[rank]
    ring, ring_sent = ring_all_reduce(mine)
    server, server_sent = parameter_server_all_reduce(mine)
    reference = mine.clone()
    dist.all_reduce(reference)
    return {"ring": ring, "ring_bytes": ring_sent, "server": server, "server_bytes": server_sent,
            "torch": reference}


# ----------------------------------------------------------------------------- DDP
def tiny_mlp(sizes: Sequence[int], seed: int) -> nn.Sequential:
    """Linear-Tanh-...-Linear with widths ``sizes``, initialized from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def train_full_batch(sizes: Sequence[int], x: Tensor, y: Tensor, *, steps: int, lr: float, seed: int,
                     optimizer: str = "sgd") -> list[Tensor]:
    """One process, the whole batch, mean MSE loss: the flat weights after each of ``steps`` steps."""
    model = tiny_mlp(sizes, seed)
    opt = _make_optimizer(optimizer, model.parameters(), lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        history.append(_flat(model))
    return history


def _make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def _counting_allreduce_hook(state, bucket):  # noqa: ANN001, ANN202 (DDP compares annotations literally)
    """DDP communication hook: count the bucket, then do DDP's own all-reduce (mean)."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    buffer = bucket.buffer()
    state["calls"][-1] += 1
    state["bytes"][-1] += buffer.numel() * buffer.element_size()
    return default_hooks.allreduce_hook(None, bucket)


def ddp_train(rank: int, world_size: int, sizes: Sequence[int], x: Tensor, y: Tensor, steps: int, lr: float,
              seed: int, bucket_cap_mb: float = 25.0) -> dict[str, Any]:
    """Worker: ``DistributedDataParallel`` on rank ``rank``'s contiguous 1/N of the batch.

    Returns the flat weights after each step, and per step the number and bytes of bucket all-reduces
    (counted by a communication hook that then runs DDP's default all-reduce).
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    start, stop = shard_range(len(x), world_size, rank)
    model = DDP(tiny_mlp(sizes, seed), bucket_cap_mb=bucket_cap_mb)
    counter: dict[str, list[int]] = {"calls": [], "bytes": []}
    model.register_comm_hook(counter, _counting_allreduce_hook)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    history = []
    for _ in range(steps):
        counter["calls"].append(0)
        counter["bytes"].append(0)
        opt.zero_grad()
        F.mse_loss(model(x[start:stop]), y[start:stop]).backward()  # hooks all-reduce buckets during backward
        opt.step()
        history.append(_flat(model.module))
    return {"weights": history, "all_reduces": counter["calls"], "bytes": counter["bytes"]}


# ----------------------------------------------------------------------------- ZeRO
def zero_bytes_per_param(stage: int, world_size: int, *, weight: int = 2, grad: int = 2, optim: int = 12) -> float:
    """Bytes per parameter on each rank for mixed-precision Adam under ZeRO ``stage`` (0 = plain DDP).

    16, 4 + 12/N, 2 + 14/N, 16/N with the defaults (Rajbhandari et al. 2020, Figure 1).
    """
    check_world_size(world_size)
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage}")
    n = world_size
    sharded = [optim * (stage >= 1), grad * (stage >= 2), weight * (stage >= 3)]
    kept = [optim * (stage < 1), grad * (stage < 2), weight * (stage < 3)]
    return sum(kept) + sum(sharded) / n


def flat_mlp_init(sizes: Sequence[int], seed: int) -> Tensor:
    """The weights of ``tiny_mlp(sizes, seed)`` as one flat fp32 vector (the order of ``parameters()``)."""
    return _flat(tiny_mlp(sizes, seed))


def flat_mlp_forward(flat: Tensor, sizes: Sequence[int], x: Tensor) -> Tensor:
    """``tiny_mlp(sizes)`` evaluated with its weights read from the flat vector ``flat``."""
    expected = sum(b * a + b for a, b in zip(sizes[:-1], sizes[1:]))
    if flat.numel() != expected:
        raise ValueError(f"flat has {flat.numel()} values, sizes {list(sizes)} need {expected}")
    h, offset = x.to(flat.dtype), 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight = flat[offset:offset + a * b].view(b, a)  # (out, in)
        bias = flat[offset + a * b:offset + a * b + b]
        offset += a * b + b
        h = F.linear(h, weight, bias)
        if i < len(sizes) - 2:
            h = torch.tanh(h)
    return h


def _adam(theta: Tensor, g: Tensor, m: Tensor, v: Tensor, t: int, lr: float,
          beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """Adam (Kingma & Ba 2015), elementwise, one rounded op at a time so a shard updates like the full vector."""
    m = beta1 * m + (1 - beta1) * g                    # m_t
    v = beta2 * v + (1 - beta2) * (g * g)              # v_t
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    theta = theta - lr * m_hat / (v_hat.sqrt() + eps)
    return theta, m, v


def zero_train(rank: int, world_size: int, stage: int, sizes: Sequence[int], x: Tensor, y: Tensor, steps: int,
               lr: float, seed: int, dtype: torch.dtype = torch.bfloat16) -> dict[str, Any]:
    """Worker: mixed-precision Adam data parallelism under ZeRO ``stage`` (0 = plain DDP), flat weights.

    Every rank computes a ``dtype`` gradient of the mean MSE on its 1/N of the batch. Stage 0
    all-reduces it (ring) and updates everything; stages >= 1 ring-reduce-scatter it and update
    only their shard of the fp32 master weights and Adam moments, then all-gather the new
    ``dtype`` weights (stages 1, 2) or keep only their shard of them (stage 3, which all-gathers
    them before the next forward). Returns the final fp32 weights (gathered), the bytes of the
    persistent state held by this rank (by tensor storage) and the bytes it sent per step.
    """
    n = world_size
    lo, hi = shard_range(flat_mlp_init(sizes, seed).numel(), n, rank)
    bs, be = shard_range(len(x), n, rank)
    init = flat_mlp_init(sizes, seed)                         # fp32, (Psi,)
    master = init if stage == 0 else init[lo:hi].clone()      # (Psi,) or (Psi/N,)
    m, v = torch.zeros_like(master), torch.zeros_like(master)
    weights16 = init.to(dtype) if stage < 3 else master.to(dtype)  # (Psi,) for stages 0-2, (Psi/N,) for 3
    sent = 0
    for t in range(1, steps + 1):
        full16 = weights16
        if stage == 3:  # gather the weights just before use
            full16, s = ring_all_gather(weights16)
            sent += s
        p = full16.detach().requires_grad_()
        F.mse_loss(flat_mlp_forward(p, sizes, x[bs:be]).float(), y[bs:be]).backward()
        grad_shard, s = ring_reduce_scatter(p.grad)            # sum over ranks of chunk `rank`
        sent += s
        grad16 = p.grad if stage < 2 else grad_shard          # what this rank keeps between steps
        del p, full16
        if stage == 0:
            g_sum, s = ring_all_gather(grad_shard)
            sent += s
            master, m, v = _adam(master, g_sum.float() / n, m, v, t, lr)
            weights16 = master.to(dtype)
        else:
            master, m, v = _adam(master, grad_shard.float() / n, m, v, t, lr)
            weights16 = master.to(dtype)
            if stage < 3:
                weights16, s = ring_all_gather(weights16)
                sent += s
    final = master if stage == 0 else ring_all_gather(master)[0]
    held = {"weights": tensor_bytes([weights16]), "grads": tensor_bytes([grad16]),
            "master": tensor_bytes([master]), "adam": tensor_bytes([m, v])}
    return {"weights": final, "bytes": held, "sent_per_step": sent / steps}


def torch_sharding_worker(rank: int, world_size: int, sizes: Sequence[int], uneven_sizes: Sequence[int],
                          x: Tensor, y: Tensor, steps: int, lr: float, seed: int) -> dict[str, Any]:
    """Worker: torch's own ZeRO-1 (``ZeroRedundancyOptimizer``) and ZeRO-3 (FSDP2 ``fully_shard``) on gloo.

    Returns for each the flat weights after ``steps`` Adam steps on this rank's 1/N of the batch,
    the bytes of Adam state (exp_avg, exp_avg_sq) this rank holds, and for FSDP the local shape of
    each parameter; an operation that fails is reported as its exception's type and message.
    """
    from torch.distributed.optim import ZeroRedundancyOptimizer

    bs, be = shard_range(len(x), world_size, rank)
    out: dict[str, Any] = {}
    for name, layer_sizes in (("zero", sizes), ("zero_uneven", uneven_sizes)):
        model = tiny_mlp(layer_sizes, seed)
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(model(x[bs:be]), y[bs:be]).backward()
            for p in model.parameters():  # ZeroRedundancyOptimizer does not average gradients: DDP would
                dist.all_reduce(p.grad)
                p.grad /= world_size
            opt.step()
        state = [s[k] for s in opt.optim.state.values() for k in ("exp_avg", "exp_avg_sq")]
        out[name] = {"weights": _flat(model), "adam_bytes": tensor_bytes(state) if state else 0}
    out["fsdp"] = _fsdp_run(rank, world_size, sizes, x[bs:be], y[bs:be], steps, lr, seed)
    return out


def _fsdp_run(rank: int, world_size: int, sizes: Sequence[int], x: Tensor, y: Tensor, steps: int, lr: float,
              seed: int) -> dict[str, Any]:
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        model = tiny_mlp(sizes, seed)
        mesh = init_device_mesh("cpu", (world_size,))
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        local_shapes = [tuple(p.to_local().shape) for p in model.parameters()]
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()  # gradients reduce-scattered (averaged) by FSDP
            opt.step()
        weights = torch.cat([p.full_tensor().detach().flatten() for p in model.parameters()])
        return {"ok": True, "weights": weights, "local_shapes": local_shapes}
    except Exception as error:  # reported to the reader verbatim, e.g. a backend without an operation
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


# ----------------------------------------------------------------------------- tensor parallelism
def column_shard(weight: Tensor, bias: Tensor | None, world_size: int, rank: int) -> tuple[Tensor, Tensor | None]:
    """Rank ``rank``'s block of output features of a Linear ``(out, in)``: rows of ``weight`` = columns of A = W^T."""
    lo, hi = shard_range(weight.shape[0], world_size, rank)
    return weight[lo:hi], None if bias is None else bias[lo:hi]


def row_shard(weight: Tensor, world_size: int, rank: int) -> Tensor:
    """Rank ``rank``'s block of input features of a Linear ``(out, in)``: columns of ``weight`` = rows of B."""
    lo, hi = shard_range(weight.shape[1], world_size, rank)
    return weight[:, lo:hi]


class _Counter:
    """Counts all-reduce calls and bytes (passed in, no module state)."""

    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0
        self.bytes = 0


class _ReduceForward(torch.autograd.Function):
    """Megatron's g: all-reduce (sum) in the forward pass, identity in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, counter: _Counter) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        counter.forward += 1
        counter.bytes += out.numel() * out.element_size()
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class _ReduceBackward(torch.autograd.Function):
    """Megatron's f: identity in the forward pass, all-reduce (sum) of the input gradient in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, counter: _Counter) -> Tensor:
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad)
        ctx.counter.backward += 1
        return grad, None


def tensor_parallel_mlp(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, counter: _Counter) -> Tensor:
    """Megatron MLP block on this rank's shards: ``g(gelu(f(x) W1_r^T + b1_r) W2_r^T) + b2``.

    ``w1, b1`` from :func:`column_shard`, ``w2`` from :func:`row_shard`; ``b2`` is added once, after the sum.
    """
    h = F.gelu(F.linear(_ReduceBackward.apply(x, counter), w1, b1))  # (B, hidden/N): no communication
    partial = F.linear(h, w2)                                         # (B, out): a partial sum
    return _ReduceForward.apply(partial, counter) + b2


def tensor_parallel_worker(rank: int, world_size: int, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor,
                           grad_out: Tensor) -> dict[str, Any]:
    """Worker: the Megatron MLP on shard ``rank``; returns output, the gradients of x and the shards, and counts."""
    w1_r, b1_r = (t.detach().clone().requires_grad_() for t in column_shard(w1, b1, world_size, rank))
    w2_r = row_shard(w2, world_size, rank).detach().clone().requires_grad_()
    x_r = x.detach().clone().requires_grad_()
    b2_r = b2.detach().clone().requires_grad_()
    counter = _Counter()
    y = tensor_parallel_mlp(x_r, w1_r, b1_r, w2_r, b2_r, counter)
    y.backward(grad_out)
    return {"y": y.detach(), "grad_x": x_r.grad, "grad_w1": w1_r.grad, "grad_b1": b1_r.grad, "grad_w2": w2_r.grad,
            "grad_b2": b2_r.grad, "forward_all_reduces": counter.forward, "backward_all_reduces": counter.backward,
            "weight_bytes": tensor_bytes([w1_r, b1_r, w2_r])}


# ----------------------------------------------------------------------------- pipeline parallelism
def bubble_fraction(p: int, m: int) -> Fraction:
    """GPipe's idle fraction (p-1)/(m+p-1) for ``p`` stages and ``m`` micro-batches (Huang et al. 2019, section 2.3)."""
    check_world_size(p)
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m (micro-batches) must be an int >= 1, got {m}")
    return Fraction(p - 1, m + p - 1)


def gpipe_schedule(p: int, m: int, *, t_fwd: float = 1, t_bwd: float = 2) -> list[tuple[int, str, int, float, float]]:
    """The GPipe timeline: ``(stage, "F" or "B", micro-batch, start, end)`` for every operation.

    F(s, i) starts when F(s-1, i) and F(s, i-1) are done; after its last forward a stage runs the
    backwards in reverse micro-batch order, B(s, i) waiting for B(s+1, i) and its previous backward.
    """
    bubble_fraction(p, m)
    f_end: dict[tuple[int, int], float] = {}
    b_end: dict[tuple[int, int], float] = {}
    ops = []
    for s in range(p):
        for i in range(m):
            start = max(f_end.get((s - 1, i), 0), f_end.get((s, i - 1), 0))
            f_end[s, i] = start + t_fwd
            ops.append((s, "F", i, start, start + t_fwd))
    for s in reversed(range(p)):
        previous = f_end[s, m - 1]
        for i in reversed(range(m)):
            start = max(previous, b_end.get((s + 1, i), 0))
            b_end[s, i] = previous = start + t_bwd
            ops.append((s, "B", i, start, start + t_bwd))
    return ops


def idle_fraction(ops: Sequence[tuple[int, str, int, float, float]]) -> float:
    """1 - (busy time summed over stages) / (stages x makespan) of a timeline from :func:`gpipe_schedule`."""
    stages = {op[0] for op in ops}
    begin, end = min(op[3] for op in ops), max(op[4] for op in ops)
    busy = sum(op[4] - op[3] for op in ops)
    return 1 - busy / (len(stages) * (end - begin))


def gpipe_worker(rank: int, world_size: int, configs: Sequence[tuple[int, int]], width: int, micro_batch: int,
                 t_fwd: float, t_bwd: float, seed: int) -> list[list[tuple[int, str, int, float, float]]]:
    """Worker: rank ``rank`` is stage ``rank`` of a GPipe pipeline, for each ``(p, m)`` in ``configs``.

    Each stage is a ``Linear(width, width)`` + tanh; activations go forward and their gradients
    backward by send/recv. A device's compute time is modelled by ``time.sleep(t_fwd)`` /
    ``sleep(t_bwd)`` (it costs no CPU, so N processes sharing one core still behave like N
    devices). Returns per config this stage's operations ``(stage, kind, micro-batch, start, end)``
    in ``time.monotonic()`` seconds (one clock for all processes on a machine); ranks >= p idle.
    """
    timelines = []
    for p, m in configs:
        bubble_fraction(p, m)
        if p > world_size:
            raise ValueError(f"a pipeline of p={p} stages needs p <= world_size={world_size}")
        dist.barrier()
        timelines.append(_gpipe_stage(rank, p, m, width, micro_batch, t_fwd, t_bwd, seed) if rank < p else [])
    dist.barrier()
    return timelines


def _gpipe_stage(s: int, p: int, m: int, width: int, micro_batch: int, t_fwd: float, t_bwd: float,
                 seed: int) -> list[tuple[int, str, int, float, float]]:
    layer = tiny_mlp([width, width], seed + s)
    ops, inputs, outputs, pending = [], [], [], []
    gen = torch.Generator().manual_seed(seed)
    for i in range(m):
        x = torch.empty(micro_batch, width)
        if s == 0:
            x = torch.randn(micro_batch, width, generator=gen)
        else:
            dist.recv(x, src=s - 1)
        start = time.monotonic()
        x.requires_grad_(s > 0)
        out = torch.tanh(layer(x))
        time.sleep(t_fwd)
        ops.append((s, "F", i, start, time.monotonic()))
        inputs.append(x)
        outputs.append(out)
        if s < p - 1:
            pending.append(dist.isend(out.detach(), dst=s + 1))
    for i in reversed(range(m)):
        grad = torch.ones(micro_batch, width) / micro_batch
        if s < p - 1:
            dist.recv(grad, src=s + 1)
        start = time.monotonic()
        outputs[i].backward(grad)  # gradients of the stage's weights accumulate over micro-batches
        time.sleep(t_bwd)
        ops.append((s, "B", i, start, time.monotonic()))
        if s > 0:
            pending.append(dist.isend(inputs[i].grad, dst=s - 1))
    for request in pending:
        request.wait()
    return ops
