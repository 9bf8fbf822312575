"""Tiled attention with the online softmax (dlbook.flash) against naive attention and torch's SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import flash
from dlbook.memory import saved_tensor_bytes


def _qkv(shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad) for _ in range(3)]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("n,block_q,block_k", [(50, 16, 16), (37, 8, 12), (20, 7, 3), (16, 64, 64)])
def test_forward_and_backward_equal_sdpa(n, block_q, block_k, is_causal):
    q, k, v = _qkv((2, 3, n, 8), requires_grad=True)
    out = flash.flash_attention(q, k, v, block_q=block_q, block_k=block_k, is_causal=is_causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(flash.naive_attention(q, k, v, is_causal=is_causal), ref, rtol=0, atol=1e-10)
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_scale_argument_matches_sdpa():
    q, k, v = _qkv((1, 10, 4), seed=1)
    torch.testing.assert_close(flash.flash_attention(q, k, v, block_q=3, block_k=4, scale=0.3), F.scaled_dot_product_attention(q, k, v, scale=0.3), rtol=0, atol=1e-10)


def test_gradcheck_float64():
    q, k, v = _qkv((1, 12, 4), seed=2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v: flash.flash_attention(q, k, v, block_q=5, block_k=4, is_causal=True), (q, k, v))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 9), block_q=st.integers(1, 20), block_k=st.integers(1, 20), causal=st.booleans())
def test_property_equal_to_sdpa(n, d, block_q, block_k, causal):
    q, k, v = _qkv((2, n, d), seed=n + d)
    out, m, ell, io = flash.flash_attention_forward(q, k, v, block_q=block_q, block_k=block_k, is_causal=causal)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), rtol=0, atol=1e-10)
    lse = torch.logsumexp(q @ k.transpose(-2, -1) / d**0.5 + (torch.ones(n, n).tril().log() if causal else 0), dim=-1)
    torch.testing.assert_close(m + ell.log(), lse, rtol=0, atol=1e-10)  # the saved statistics are the log-sum-exp
    assert io["largest_tile"] <= min(block_q, n) * min(block_k, n)


@pytest.mark.parametrize("n,d,block_q,block_k", [(64, 8, 16, 16), (100, 8, 16, 32), (33, 5, 7, 10)])
def test_io_counter_matches_closed_form(n, d, block_q, block_k):
    q, k, v = _qkv((n, d))
    io = flash.flash_attention_forward(q, k, v, block_q=block_q, block_k=block_k)[3]
    closed = flash.flash_attention_io(n, d, block_q=block_q, block_k=block_k)
    assert (io["reads"], io["writes"]) == (closed["reads"], closed["writes"])
    causal = flash.flash_attention_forward(q, k, v, block_q=block_q, block_k=block_k, is_causal=True)[3]
    assert causal["reads"] < io["reads"]


def test_io_orders_of_growth():
    naive = [flash.naive_attention_io(n, 64)["total"] for n in (1024, 2048)]
    assert naive[1] / naive[0] == pytest.approx(4, rel=0.06)  # Theta(n^2) dominates
    tiled = [flash.flash_attention_io(4096, 64, block_q=64, block_k=b)["total"] for b in (64, 128, 256)]
    assert tiled[0] / tiled[1] == pytest.approx(2, rel=0.05) and tiled[1] / tiled[2] == pytest.approx(2, rel=0.1)
    assert flash.naive_attention_io(64, 8, elementwise_passes=2)["total"] - flash.naive_attention_io(64, 8)["total"] == 4 * 64 * 64
    assert flash.block_sizes_for_sram(4096, 64) == (16, 16)
    assert flash.block_sizes_for_sram(100_000, 64) == (64, 391)


def test_saved_memory_linear_not_quadratic():
    d = 8
    for n in (64, 128):
        q, k, v = _qkv((n, d), requires_grad=True)
        assert saved_tensor_bytes(lambda *a: flash.flash_attention(*a), q, k, v) == 8 * (4 * n * d + 2 * n)  # q, k, v, out, m, l
        assert saved_tensor_bytes(lambda *a: flash.naive_attention(*a), q, k, v) == 8 * (3 * n * d + n * n)  # q, k, v and P


def test_bad_input():
    q, k, v = _qkv((4, 3))
    with pytest.raises(ValueError, match="block_q"):
        flash.flash_attention(q, k, v, block_q=0)
    with pytest.raises(TypeError, match="block_k"):
        flash.flash_attention_forward(q, k, v, block_k=2.5)
    with pytest.raises(ValueError, match="share the last dim"):
        flash.flash_attention(q, k[:, :2], v)
    with pytest.raises(ValueError, match="same length"):
        flash.naive_attention(q, k, v[:3])
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        flash.flash_attention([1.0], k, v)
    with pytest.raises(ValueError, match="n must be >= 1"):
        flash.naive_attention_io(0, 8)
    with pytest.raises(ValueError, match="elementwise_passes"):
        flash.naive_attention_io(8, 8, elementwise_passes=-1)
    with pytest.raises(ValueError, match="sram_elements"):
        flash.block_sizes_for_sram(100, 64)
