r"""LLM inference written out: a tiny decoder with a KV cache, paged KV blocks, batching, speculation.

The deployment chapter (``chapters/deployment``, "LLM inference") teaches these. Everything runs on
the CPU; the paged allocator and the batching schedulers are simulations of what vLLM
(Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with
PagedAttention") and Orca (Yu et al. 2022, iteration-level scheduling) do on a GPU.

Shapes: a batch of token ids is ``(B, T)``; keys and values per layer are ``(B, H, T, d_h)``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = [
    "causal_attention",
    "TinyDecoder",
    "encode_text",
    "train_lm",
    "generate",
    "kv_cache_bytes",
    "attention_macs_per_token",
    "linear_arithmetic_intensity",
    "BlockAllocator",
    "paged_attention",
    "reserved_slots",
    "simulate_batching",
    "speculative_distribution",
    "speculative_sample",
    "speculative_generate",
    "LRUCache",
    "che_hit_rate",
    "time_interleaved",
]

KVCache = list[tuple[Tensor, Tensor]]


def causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    r"""$\mathrm{softmax}(QK^\top/\sqrt{d_h} + M)V$ where query $i$ sees keys $j \le i + (T_k - T_q)$.

    The offset lets ``T_q`` new queries attend to ``T_k - T_q`` cached positions before them;
    with ``T_q = T_k`` it is the usual causal mask. Shapes ``(B, H, T_q, d_h)``, ``(B, H, T_k, d_h)``.
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    if t_q > t_k:
        raise ValueError(f"more queries than keys: T_q={t_q} > T_k={t_k}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T_q, T_k)
    i = torch.arange(t_q)[:, None] + (t_k - t_q)
    j = torch.arange(t_k)[None, :]
    scores = scores.masked_fill(j > i, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (B, H, T_q, d_h)


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, d_h)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, T_past + T, d_h)
            v = torch.cat([past[1], v], dim=2)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class TinyDecoder(nn.Module):
    """A pre-LayerNorm decoder-only Transformer (GPT-2 layout, learned positions), with a KV cache.

    ``forward(idx, past=None)`` returns ``(logits, present)``: ``logits`` ``(B, T, V)`` for the new
    tokens ``idx`` ``(B, T)``, ``present`` the per-layer ``(K, V)`` of all positions so far. Passing
    ``present`` back as ``past`` with the next token computes only that token's row.
    """

    def __init__(self, vocab_size: int, *, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, max_len: int = 128) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.max_len, self.n_layers, self.n_heads, self.head_dim = max_len, n_layers, n_heads, d_model // n_heads
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, idx: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        start = 0 if past is None else past[0][0].shape[2]
        if start + idx.shape[1] > self.max_len:
            raise ValueError(f"sequence length {start + idx.shape[1]} exceeds max_len={self.max_len}")
        x = self.tok(idx) + self.pos(torch.arange(start, start + idx.shape[1]))  # (B, T, D)
        present = []
        for layer, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[layer])
            present.append(kv)
        return self.head(self.ln_f(x)), present


def encode_text(text: str) -> tuple[Tensor, list[str]]:
    """Character-level tokens: ``(ids, vocab)`` with ``vocab`` the sorted distinct characters."""
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text]), vocab


def train_lm(
    model: TinyDecoder, tokens: Tensor, *, steps: int = 200, batch_size: int = 32, context: int = 64, lr: float = 3e-3, generator: torch.Generator | None = None
) -> list[float]:
    """Next-token cross-entropy with AdamW on random windows of ``tokens``; returns the losses."""
    if context + 1 > len(tokens):
        raise ValueError(f"context ({context}) must be shorter than the text ({len(tokens)} tokens)")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - context - 1, (batch_size,), generator=generator)
        window = torch.stack([tokens[s : s + context + 1] for s in starts.tolist()])  # (B, context + 1)
        logits, _ = model(window[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.inference_mode()
def generate(model: TinyDecoder, prompt: Tensor, n_new: int, *, use_cache: bool = True) -> tuple[Tensor, Tensor]:
    """Greedy decoding of ``n_new`` tokens after ``prompt`` ``(B, T)``; returns ``(tokens, step_logits)``.

    With ``use_cache`` each step feeds one token and the cache; without it, each step recomputes
    the whole prefix. ``step_logits`` ``(n_new, B, V)`` are the logits each new token was chosen from.
    """
    tokens, past, step_logits = prompt, None, []
    for _ in range(n_new):
        if use_cache:
            logits, past = model(tokens if past is None else tokens[:, -1:], past)
        else:
            logits, _ = model(tokens)
        step_logits.append(logits[:, -1])
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens, torch.stack(step_logits)


def kv_cache_bytes(n_layers: int, n_heads: int, head_dim: int, tokens: int, *, bytes_per_element: int = 2, batch: int = 1) -> int:
    """``2 x layers x heads x head_dim x tokens x bytes`` per sequence (the 2: keys and values)."""
    for name, value in (("n_layers", n_layers), ("n_heads", n_heads), ("head_dim", head_dim), ("bytes_per_element", bytes_per_element)):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return 2 * n_layers * n_heads * head_dim * tokens * bytes_per_element * batch


def attention_macs_per_token(prefix_len: int, d_model: int, *, use_cache: bool) -> int:
    r"""Attention multiply-adds (scores $QK^\top$ and weights times $V$) to produce token ``prefix_len + 1``.

    With a cache only the new query row is computed: $2\,(t+1)\,d$. Without one, all $t+1$ rows
    are recomputed: $2\,(t+1)^2 d$ (per layer; the causal mask's skipped half is counted, as dense kernels do).
    """
    if prefix_len < 0:
        raise ValueError(f"prefix_len must be >= 0, got {prefix_len}")
    t = prefix_len + 1
    return 2 * t * d_model if use_cache else 2 * t * t * d_model


def linear_arithmetic_intensity(n_tokens: int, d_in: int, d_out: int, *, bytes_per_element: int = 2) -> float:
    r"""FLOPs per byte moved by ``Y = X W^T`` for ``n_tokens`` rows: $\frac{2 n d_i d_o}{b\,(d_i d_o + n d_i + n d_o)}$.

    Prefill has $n$ = prompt length; a batch of $b$ decode steps has $n = b$. At $n = 1$ in fp16 it is
    about 1 FLOP/byte: the weight matrix is read once for one row (Williams et al. 2009, roofline).
    """
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be > 0, got {n_tokens}")
    flops = 2 * n_tokens * d_in * d_out
    moved = bytes_per_element * (d_in * d_out + n_tokens * d_in + n_tokens * d_out)
    return flops / moved


@dataclass
class BlockAllocator:
    """A PagedAttention-style KV block manager: fixed-size blocks, a block table per sequence.

    Blocks are reference-counted: :meth:`fork` shares a parent's blocks with a child (a common
    prompt), and :meth:`append` copies a shared last block before writing to it (copy on write).
    """

    num_blocks: int
    block_size: int
    free: list[int] = field(init=False)
    refcount: list[int] = field(init=False)
    tables: dict[Hashable, list[int]] = field(init=False, default_factory=dict)
    lengths: dict[Hashable, int] = field(init=False, default_factory=dict)
    copies: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {self.block_size}")
        if self.num_blocks <= 0:
            raise ValueError(f"num_blocks must be > 0, got {self.num_blocks}")
        self.free = list(range(self.num_blocks - 1, -1, -1))
        self.refcount = [0] * self.num_blocks

    def _take(self) -> int:
        if not self.free:
            raise MemoryError("out of KV blocks")
        block = self.free.pop()
        self.refcount[block] = 1
        return block

    def can_allocate(self, n_tokens: int) -> bool:
        return -(-n_tokens // self.block_size) <= len(self.free)

    def allocate(self, seq: Hashable, n_tokens: int) -> list[int]:
        """Blocks for a new sequence of ``n_tokens`` (its prompt): ``ceil(n / block_size)`` of them."""
        if seq in self.tables:
            raise ValueError(f"sequence {seq!r} already allocated")
        if not self.can_allocate(n_tokens):
            raise MemoryError(f"not enough free blocks for {n_tokens} tokens")
        self.tables[seq] = [self._take() for _ in range(-(-n_tokens // self.block_size))]
        self.lengths[seq] = n_tokens
        return self.tables[seq]

    def append(self, seq: Hashable) -> tuple[int, int]:
        """Reserve the slot of one new token; returns its ``(block, offset)``. Copies a shared last block."""
        table, n = self.tables[seq], self.lengths[seq]
        if n % self.block_size == 0:
            table.append(self._take())
        elif self.refcount[table[-1]] > 1:  # copy on write
            self.refcount[table[-1]] -= 1
            table[-1] = self._take()
            self.copies += 1
        self.lengths[seq] = n + 1
        return table[-1], n % self.block_size

    def fork(self, parent: Hashable, child: Hashable) -> None:
        """``child`` starts as ``parent``: same blocks, reference counts raised, nothing copied."""
        self.tables[child] = list(self.tables[parent])
        self.lengths[child] = self.lengths[parent]
        for block in self.tables[child]:
            self.refcount[block] += 1

    def release(self, seq: Hashable) -> None:
        """Drop ``seq``; blocks whose reference count reaches 0 go back to the free list."""
        for block in self.tables.pop(seq):
            self.refcount[block] -= 1
            if self.refcount[block] == 0:
                self.free.append(block)
        del self.lengths[seq]

    def used_blocks(self) -> int:
        return self.num_blocks - len(self.free)


def paged_attention(q: Tensor, k_blocks: Tensor, v_blocks: Tensor, block_table: Sequence[int], seq_len: int) -> Tensor:
    r"""Attention of one query per head over a sequence whose K/V live in scattered blocks.

    ``q`` ``(H, d_h)``; ``k_blocks``, ``v_blocks`` ``(num_blocks, block_size, H, d_h)``; the
    sequence's keys are ``k_blocks[block_table]`` flattened, first ``seq_len`` slots.
    """
    if seq_len <= 0 or seq_len > len(block_table) * k_blocks.shape[1]:
        raise ValueError(f"seq_len must be in [1, {len(block_table) * k_blocks.shape[1]}], got {seq_len}")
    idx = torch.as_tensor(list(block_table))
    k = k_blocks[idx].flatten(0, 1)[:seq_len]  # (T, H, d_h)
    v = v_blocks[idx].flatten(0, 1)[:seq_len]
    scores = torch.einsum("hd,thd->ht", q, k) / math.sqrt(q.shape[-1])  # (H, T)
    return torch.einsum("ht,thd->hd", torch.softmax(scores, dim=-1), v)  # (H, d_h)


def reserved_slots(length: int, *, policy: str, max_len: int = 0, block_size: int = 16) -> int:
    """KV slots a sequence of ``length`` tokens holds: ``max_len`` contiguous, or whole blocks paged."""
    if policy == "contiguous":
        if length > max_len:
            raise ValueError(f"length {length} exceeds max_len={max_len}")
        return max_len
    if policy == "paged":
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {block_size}")
        return -(-length // block_size) * block_size
    raise ValueError(f"policy must be 'contiguous' or 'paged', got {policy!r}")


def simulate_batching(
    output_lengths: Sequence[int],
    *,
    max_batch: int,
    policy: str,
    arrivals: Sequence[float] | None = None,
    step_time: Callable[[int], float] | None = None,
) -> dict[str, float | list[float]]:
    """Decode ``output_lengths`` tokens for a stream of requests with ``max_batch`` slots.

    ``"static"``: the next ``max_batch`` requests start together and the batch holds its slots until
    its longest request ends. ``"continuous"``: after every iteration finished requests leave and
    waiting ones take their slots (Orca). One iteration with ``b`` active sequences costs
    ``step_time(b)`` (default 1). Returns iterations, total time, slot utilization (useful token
    slots over ``iterations x max_batch``) and per-request latency (finish minus arrival).
    """
    if max_batch <= 0:
        raise ValueError(f"max_batch must be > 0, got {max_batch}")
    if policy not in ("static", "continuous"):
        raise ValueError(f"policy must be 'static' or 'continuous', got {policy!r}")
    if any(length < 1 for length in output_lengths):
        raise ValueError(f"output lengths must be >= 1, got {min(output_lengths)}")
    n = len(output_lengths)
    arrivals = [0.0] * n if arrivals is None else list(arrivals)
    step_time = (lambda b: 1.0) if step_time is None else step_time
    remaining, finish = list(output_lengths), [0.0] * n
    waiting, active, now, iterations, next_req, width = [], [], 0.0, 0, 0, 0
    while next_req < n or waiting or active:
        while next_req < n and arrivals[next_req] <= now:
            waiting.append(next_req)
            next_req += 1
        if policy == "continuous" or not active:
            batch_ready = policy == "continuous" or len(waiting) >= max_batch or next_req == n
            while waiting and len(active) < max_batch and batch_ready:
                active.append(waiting.pop(0))
            width = len(active)  # a static batch computes all its rows until the longest ends
        if not active:
            now = max(now, arrivals[next_req]) if next_req < n else now
            continue
        now += step_time(len(active) if policy == "continuous" else width)
        iterations += 1
        for r in active:
            remaining[r] -= 1
            if remaining[r] == 0:
                finish[r] = now
        active = [r for r in active if remaining[r] > 0]
    latency = [finish[r] - arrivals[r] for r in range(n)]
    return {"iterations": iterations, "time": now, "utilization": sum(output_lengths) / (iterations * max_batch), "latency": latency}


def speculative_distribution(p: Tensor, q: Tensor) -> Tensor:
    r"""The exact distribution of one speculative-sampling step (Leviathan et al. 2023, Chen et al. 2023).

    Draw $x \sim q$, accept with $\min(1, p_x/q_x)$, else draw from $r = \max(0, p - q)/\sum\max(0, p - q)$:
    $P(x) = q_x \min(1, p_x/q_x) + (1 - \beta)\,r_x$ with $\beta = \sum_x \min(p_x, q_x)$. It equals $p$.
    """
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    accept = torch.minimum(p, q)  # q_x min(1, p_x / q_x)
    beta = accept.sum(-1, keepdim=True)
    residual = torch.clamp(p - q, min=0)
    residual = residual / residual.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return accept + (1 - beta) * residual


def speculative_sample(p: Tensor, q: Tensor, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``n`` independent speculative-sampling steps for target ``p`` and draft ``q`` (both ``(V,)``).

    Returns ``(tokens, accepted)``: the emitted token of each step and whether the draft's was kept.
    """
    if p.ndim != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must be 1-D of the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    draft = torch.multinomial(q, n, replacement=True, generator=generator)  # (n,)
    u = torch.rand(n, generator=generator, dtype=p.dtype)
    accepted = u * q[draft] < p[draft]  # u < p/q without dividing by q
    residual = torch.clamp(p - q, min=0)
    if residual.sum() > 0:
        resampled = torch.multinomial(residual / residual.sum(), n, replacement=True, generator=generator)
    else:
        resampled = draft
    return torch.where(accepted, draft, resampled), accepted


@torch.inference_mode()
def speculative_generate(target: TinyDecoder, draft: TinyDecoder, prompt: Tensor, n_new: int, *, k: int = 4) -> tuple[Tensor, int]:
    """Greedy speculative decoding of one sequence ``prompt`` ``(1, T)``; returns ``(tokens, target_calls)``.

    Each round the draft proposes ``k`` tokens greedily; one target forward pass over the prefix plus
    the proposals scores them all; the longest prefix where the target's argmax agrees is kept, plus
    the target's own next token (a correction or a bonus). The output equals greedy target decoding.
    """
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k}")
    tokens, calls, goal = prompt, 0, prompt.shape[1] + n_new
    while tokens.shape[1] < goal:
        proposal = tokens
        for _ in range(min(k, goal - tokens.shape[1])):
            logits, _ = draft(proposal)
            proposal = torch.cat([proposal, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        logits, _ = target(proposal)
        calls += 1
        choice = logits[0, tokens.shape[1] - 1 :].argmax(-1)  # target's token after each prefix
        proposed = proposal[0, tokens.shape[1] :]
        agree = int((choice[: len(proposed)] == proposed).long().cumprod(0).sum())
        tokens = torch.cat([tokens, proposed[None, :agree], choice[None, agree : agree + 1]], dim=1)[:, :goal]
    return tokens, calls


class LRUCache:
    """A least-recently-used cache of model answers on ``collections.OrderedDict``; counts hits."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity, self.store, self.hits, self.misses = capacity, OrderedDict(), 0, 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], object]) -> object:
        if key in self.store:
            self.store.move_to_end(key)
            self.hits += 1
            return self.store[key]
        self.misses += 1
        value = compute()
        self.store[key] = value
        if len(self.store) > self.capacity:
            self.store.popitem(last=False)
        return value


def che_hit_rate(p: Tensor, capacity: int) -> float:
    r"""Che's approximation of an LRU cache's hit rate under independent requests (Che et al. 2002).

    The characteristic time $t_C$ solves $\sum_i (1 - e^{-p_i t_C}) = C$; the hit rate is
    $\sum_i p_i (1 - e^{-p_i t_C})$. Solved by bisection on $t_C$.
    """
    if not 0 < capacity < len(p):
        raise ValueError(f"capacity must be in (0, {len(p)}), got {capacity}")
    p = p.to(torch.float64)
    lo, hi = 0.0, 1.0
    while float((1 - torch.exp(-p * hi)).sum()) < capacity:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float((1 - torch.exp(-p * mid)).sum()) < capacity else (lo, mid)
    return float((p * (1 - torch.exp(-p * hi))).sum())


def time_interleaved(fns: dict[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 1) -> dict[str, list[float]]:
    """Wall-clock seconds of each call, the functions run in turn (a, b, a, b, ...) after ``warmup`` rounds.

    Interleaving exposes every candidate to the same background load, so ratios of their minima
    (or medians) are comparable within one run even on a busy machine; absolute times are not.
    """
    if repeats <= 0:
        raise ValueError(f"repeats must be > 0, got {repeats}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times
