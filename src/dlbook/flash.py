r"""FlashAttention as a faithful CPU model: tiled attention with the online softmax, and its IO counts.

The chapter ``chapters/scale`` ("FlashAttention") teaches this. Exact attention

$$O = \mathrm{softmax}(S)\,V, \qquad S = s\,Q K^\top + M, \qquad s = 1/\sqrt{d},$$

for ``(..., n, d)`` inputs, computed the way Dao et al. 2022 ("FlashAttention: Fast and
Memory-Efficient Exact Attention with IO-Awareness", Algorithm 1 forward, Algorithm 4 backward
without dropout) compute it: $K, V$ are cut into column blocks of ``block_k`` rows ($B_c$) and
$Q$ into row blocks of ``block_q`` rows ($B_r$); for each key block $j$ (outer loop) and query
block $i$ (inner loop) the score tile $S_{ij}$ ($B_r \times B_c$) is formed "in SRAM" and the
running row maximum $m_i$, the running sum $\ell_i$ and the normalized output $O_i$ are
updated with the online softmax (Milakov & Gimelshein 2018)

$$m^{\rm new} = \max(m_i, \tilde m_{ij}), \quad
\ell^{\rm new} = e^{m_i - m^{\rm new}}\ell_i + e^{\tilde m_{ij} - m^{\rm new}}\tilde\ell_{ij}, \quad
O_i \leftarrow \frac{\ell_i e^{m_i - m^{\rm new}} O_i + e^{\tilde m_{ij} - m^{\rm new}}\tilde P_{ij} V_j}{\ell^{\rm new}},$$

with $\tilde m_{ij} = \mathrm{rowmax}(S_{ij})$, $\tilde P_{ij} = e^{S_{ij} - \tilde m_{ij}}$,
$\tilde\ell_{ij} = \mathrm{rowsum}(\tilde P_{ij})$. The $n \times n$ matrix never exists: only
$O$ and the statistics $(m, \ell)$, $O(n)$ numbers per row block, are kept for the backward pass,
which recomputes each $P_{ij} = e^{S_{ij} - m_i}/\ell_i$ tile.

"Main memory" (HBM) is the full tensors; every tile copied from or to them is counted in
elements, so :func:`flash_attention_forward` reports its own reads and writes, and
:func:`flash_attention_io` / :func:`naive_attention_io` give the same counts in closed form
(the IO-complexity analysis, Dao et al. 2022 sec. 3.2, Theorem 2: $\Theta(nd + n^2)$ for the
standard kernel, $\Theta(n^2 d^2 / M)$ for SRAM of $M$ elements).

Conventions: ``is_causal`` lets query $t$ see keys $\le t$ (torch's SDPA, equal lengths); key
blocks entirely above the diagonal are skipped (neither read nor computed). Bad input raises
``ValueError``/``TypeError`` naming the value.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "naive_attention",
    "flash_attention_forward",
    "flash_attention_backward",
    "flash_attention",
    "naive_attention_io",
    "flash_attention_io",
    "block_sizes_for_sram",
]


def _check_qkv(q: object, k: object, v: object) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ValueError(f"{name} must have shape (..., n, d), got {tuple(x.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dim d, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length, got {k.shape[-2]} and {v.shape[-2]}")


def _check_block(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def naive_attention(q: Tensor, k: Tensor, v: Tensor, *, is_causal: bool = False, scale: float | None = None) -> Tensor:
    r"""The standard kernel (Dao et al. 2022, Algorithm 0): $S = sQK^\top$, $P = \mathrm{softmax}(S)$, $O = PV$.

    Materializes the $n \times n$ matrices $S$ and $P$ (autograd keeps $P$ for the backward pass).
    """
    _check_qkv(q, k, v)
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = s * q @ k.transpose(-2, -1)  # (..., n, n_k)
    if is_causal:
        n, n_k = scores.shape[-2:]
        allowed = torch.ones(n, n_k, dtype=torch.bool).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (..., n, d_v)


def _tile_scores(q_i: Tensor, k_j: Tensor, s: float, rows: range, cols: range, is_causal: bool) -> Tensor:
    """$S_{ij} = s Q_i K_j^\top$, with $-\\infty$ where a key lies after its query (causal)."""
    scores = s * q_i @ k_j.transpose(-2, -1)  # (..., B_r, B_c)
    if is_causal:
        r = torch.arange(rows.start, rows.stop)[:, None]
        c = torch.arange(cols.start, cols.stop)[None, :]
        scores = scores.masked_fill(c > r, float("-inf"))
    return scores


def _blocks(n: int, size: int) -> list[range]:
    return [range(a, min(a + size, n)) for a in range(0, n, size)]


def _safe(m: Tensor) -> Tensor:
    """A row with every score masked so far has max $-\\infty$; shift it by 0 instead (exp gives 0, not nan)."""
    return torch.where(torch.isinf(m) & (m < 0), torch.zeros_like(m), m)


def flash_attention_forward(
    q: Tensor, k: Tensor, v: Tensor, *, block_q: int = 16, block_k: int = 16, is_causal: bool = False, scale: float | None = None
) -> tuple[Tensor, Tensor, Tensor, dict[str, int]]:
    r"""Dao et al. 2022, Algorithm 1 (no dropout): returns $O$, $m$, $\ell$ and the counted IO.

    Outer loop over key/value blocks $j$ (load $K_j, V_j$ once), inner loop over query blocks $i$
    (load $Q_i, O_i, \ell_i, m_i$; write back $O_i, \ell_i, m_i$). ``io`` holds ``reads`` and
    ``writes`` of main memory in elements, and ``largest_tile``, the most elements of one
    intermediate ($B_r B_c$, never $n^2$).
    """
    _check_qkv(q, k, v)
    block_q, block_k = _check_block("block_q", block_q), _check_block("block_k", block_k)
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    n, n_k = q.shape[-2], k.shape[-2]
    batch = math.prod(q.shape[:-2])
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)  # O = 0 in HBM
    m = torch.full(q.shape[:-1], float("-inf"), dtype=q.dtype)  # running row max
    ell = torch.zeros(q.shape[:-1], dtype=q.dtype)  # running row sum
    io = {"reads": 0, "writes": 0, "largest_tile": 0}
    for cols in _blocks(n_k, block_k):
        k_j, v_j = k[..., cols, :], v[..., cols, :]  # load K_j, V_j
        io["reads"] += batch * len(cols) * (k.shape[-1] + v.shape[-1])
        for rows in _blocks(n, block_q):
            if is_causal and cols.start > rows.stop - 1:
                continue  # the whole tile lies above the diagonal
            q_i, o_i, m_i, l_i = q[..., rows, :], out[..., rows, :], m[..., rows], ell[..., rows]
            io["reads"] += batch * len(rows) * (q.shape[-1] + v.shape[-1] + 2)
            scores = _tile_scores(q_i, k_j, s, rows, cols, is_causal)  # (..., B_r, B_c)
            io["largest_tile"] = max(io["largest_tile"], scores[0].numel() if scores.ndim > 2 else scores.numel())
            m_tilde = scores.amax(dim=-1)  # rowmax of the tile
            m_new = torch.maximum(m_i, m_tilde)
            p_tilde = torch.exp(scores - _safe(m_new)[..., None])  # e^{S - m_new}
            l_new = torch.exp(m_i - _safe(m_new)) * l_i + p_tilde.sum(dim=-1)
            acc = (l_i * torch.exp(m_i - _safe(m_new)))[..., None] * o_i + p_tilde @ v_j  # (..., B_r, d_v)
            out[..., rows, :] = acc / torch.where(l_new > 0, l_new, torch.ones_like(l_new))[..., None]
            m[..., rows], ell[..., rows] = m_new, l_new
            io["writes"] += batch * len(rows) * (v.shape[-1] + 2)
    return out, m, ell, io


def flash_attention_backward(
    q: Tensor, k: Tensor, v: Tensor, out: Tensor, m: Tensor, ell: Tensor, grad_out: Tensor, *,
    block_q: int = 16, block_k: int = 16, is_causal: bool = False, scale: float | None = None,
) -> tuple[Tensor, Tensor, Tensor, dict[str, int]]:
    r"""Dao et al. 2022, Algorithm 4 (no dropout): $dQ, dK, dV$ from recomputed tiles.

    With $P_{ij} = e^{S_{ij} - m_i}/\ell_i$ recomputed, $D_i = \mathrm{rowsum}(dO_i \circ O_i)$:
    $dV_j \mathrel{+}= P_{ij}^\top dO_i$, $dP_{ij} = dO_i V_j^\top$,
    $dS_{ij} = P_{ij} \circ (dP_{ij} - D_i)$, $dQ_i \mathrel{+}= s\,dS_{ij} K_j$,
    $dK_j \mathrel{+}= s\,dS_{ij}^\top Q_i$.
    """
    _check_qkv(q, k, v)
    block_q, block_k = _check_block("block_q", block_q), _check_block("block_k", block_k)
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    n, n_k, batch = q.shape[-2], k.shape[-2], math.prod(q.shape[:-2])
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    big_d = (grad_out * out).sum(dim=-1)  # D = rowsum(dO o O), (..., n)
    io = {"reads": 0, "writes": 0, "largest_tile": 0}
    for cols in _blocks(n_k, block_k):
        k_j, v_j = k[..., cols, :], v[..., cols, :]
        dk_j, dv_j = torch.zeros_like(k_j), torch.zeros_like(v_j)
        io["reads"] += batch * len(cols) * (k.shape[-1] + v.shape[-1])
        for rows in _blocks(n, block_q):
            if is_causal and cols.start > rows.stop - 1:
                continue
            q_i, do_i, m_i, l_i = q[..., rows, :], grad_out[..., rows, :], m[..., rows], ell[..., rows]
            io["reads"] += batch * len(rows) * (2 * q.shape[-1] + 2 * v.shape[-1] + 3)  # Q_i, dQ_i, O_i, dO_i, m, l, D
            scores = _tile_scores(q_i, k_j, s, rows, cols, is_causal)
            io["largest_tile"] = max(io["largest_tile"], scores[0].numel() if scores.ndim > 2 else scores.numel())
            p = torch.exp(scores - _safe(m_i)[..., None]) / torch.where(l_i > 0, l_i, torch.ones_like(l_i))[..., None]
            dv_j = dv_j + p.transpose(-2, -1) @ do_i
            dp = do_i @ v_j.transpose(-2, -1)  # (..., B_r, B_c)
            ds = p * (dp - big_d[..., rows, None])
            dq[..., rows, :] = dq[..., rows, :] + s * ds @ k_j
            dk_j = dk_j + s * ds.transpose(-2, -1) @ q_i
            io["writes"] += batch * len(rows) * q.shape[-1]
        dk[..., cols, :], dv[..., cols, :] = dk_j, dv_j
        io["writes"] += batch * len(cols) * (k.shape[-1] + v.shape[-1])
    return dq, dk, dv, io


class _FlashAttention(torch.autograd.Function):
    """Saves $Q, K, V, O, m, \\ell$ (O(n) beyond the inputs) instead of the $n \\times n$ matrix $P$."""

    @staticmethod
    def forward(ctx, q, k, v, block_q, block_k, is_causal, scale):
        out, m, ell, _ = flash_attention_forward(q, k, v, block_q=block_q, block_k=block_k, is_causal=is_causal, scale=scale)
        ctx.save_for_backward(q, k, v, out, m, ell)
        ctx.opts = dict(block_q=block_q, block_k=block_k, is_causal=is_causal, scale=scale)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, m, ell = ctx.saved_tensors
        dq, dk, dv, _ = flash_attention_backward(q, k, v, out, m, ell, grad_out, **ctx.opts)
        return dq, dk, dv, None, None, None, None


def flash_attention(
    q: Tensor, k: Tensor, v: Tensor, *, block_q: int = 16, block_k: int = 16, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    r"""Exact attention $\mathrm{softmax}(sQK^\top)V$ by tiles, differentiable (tiled backward).

    Equal to ``F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale)``.
    """
    _check_qkv(q, k, v)
    return _FlashAttention.apply(q, k, v, _check_block("block_q", block_q), _check_block("block_k", block_k), is_causal, scale)


def naive_attention_io(n: int, d: int, *, elementwise_passes: int = 0) -> dict[str, int]:
    r"""Main-memory elements moved by the standard kernel, one head, forward (Dao et al. 2022, Algorithm 0).

    Read $Q, K$, write $S$ ($n^2$); read $S$, write $P$ ($n^2$); read $P, V$, write $O$:
    reads $3nd + 2n^2$, writes $nd + 2n^2$, $\Theta(nd + n^2)$. Each extra elementwise pass over
    the scores (masking, dropout) reads and writes $n^2$ more.
    """
    _check_sizes(n=n, d=d)
    if isinstance(elementwise_passes, bool) or not isinstance(elementwise_passes, int) or elementwise_passes < 0:
        raise ValueError(f"elementwise_passes must be an int >= 0, got {elementwise_passes!r}")
    reads = 3 * n * d + (2 + elementwise_passes) * n * n
    writes = n * d + (2 + elementwise_passes) * n * n
    return {"reads": reads, "writes": writes, "total": reads + writes}


def flash_attention_io(n: int, d: int, *, block_q: int, block_k: int) -> dict[str, int]:
    r"""Main-memory elements moved by :func:`flash_attention_forward`, one head, non-causal.

    With $T_c = \lceil n / B_c \rceil$ key blocks: $K, V$ are read once ($2nd$); $Q_i, O_i, \ell_i,
    m_i$ are read and $O_i, \ell_i, m_i$ written once per key block:
    reads $2nd + T_c(2nd + 2n)$, writes $T_c(nd + 2n)$, i.e. $\Theta(n^2 d / B_c)$, which is
    $\Theta(n^2 d^2 / M)$ with $B_c = \lceil M / 4d \rceil$ (Theorem 2).
    """
    _check_sizes(n=n, d=d)
    _check_block("block_q", block_q)
    t_c = -(-n // _check_block("block_k", block_k))
    reads = 2 * n * d + t_c * (2 * n * d + 2 * n)
    writes = t_c * (n * d + 2 * n)
    return {"reads": reads, "writes": writes, "total": reads + writes}


def block_sizes_for_sram(sram_elements: int, d: int) -> tuple[int, int]:
    r"""Dao et al. 2022, Algorithm 1 line 1: $B_c = \lceil M/4d \rceil$, $B_r = \min(\lceil M/4d \rceil, d)$.

    Returns ``(block_q, block_k)`` $= (B_r, B_c)$ for an SRAM of $M$ elements.
    """
    _check_sizes(sram_elements=sram_elements, d=d)
    if sram_elements < 4 * d:
        raise ValueError(f"sram_elements must be >= 4 d = {4 * d} to hold one row of Q, K, V and O, got {sram_elements}")
    b_c = -(-sram_elements // (4 * d))
    return min(b_c, d), b_c


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
