"""dlbook.inference: KV cache, paged attention, batching and speculative decoding."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import inference as I


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return I.TinyDecoder(11, d_model=16, n_heads=2, n_layers=2, max_len=40, **kw).eval()


def test_causal_attention_equals_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(I.causal_attention(q, k, v), ref)
    assert torch.autograd.gradcheck(I.causal_attention, (q, k, v))
    # the last two queries against all six keys: rows 4 and 5 of the full result
    torch.testing.assert_close(I.causal_attention(q[:, :, 4:], k, v), ref[:, :, 4:])


def test_kv_cache_gives_the_same_logits_and_tokens():
    model = _model()
    prompt = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(0))
    t1, l1 = I.generate(model, prompt, 12, use_cache=True)
    t2, l2 = I.generate(model, prompt, 12, use_cache=False)
    assert torch.equal(t1, t2)
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-5)


def test_cache_size_formula():
    model = _model()
    _, past = model(torch.zeros(2, 9, dtype=torch.long))
    nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in past)
    assert nbytes == I.kv_cache_bytes(2, 2, 8, 9, bytes_per_element=4, batch=2)
    assert I.attention_macs_per_token(9, 16, use_cache=True) * 10 == I.attention_macs_per_token(9, 16, use_cache=False)


def test_arithmetic_intensity_about_one_at_batch_one():
    assert abs(I.linear_arithmetic_intensity(1, 4096, 4096) - 1.0) < 1e-3
    values = [I.linear_arithmetic_intensity(n, 1024, 1024) for n in (1, 8, 64, 512)]
    assert values == sorted(values)


def test_train_lm_lowers_loss():
    ids, vocab = I.encode_text("abcabcabcabcabcabcabcabcabcabcabcabc" * 4)
    assert vocab == ["a", "b", "c"]
    torch.manual_seed(0)
    model = I.TinyDecoder(3, d_model=16, n_heads=2, n_layers=1, max_len=16)
    losses = I.train_lm(model, ids, steps=60, batch_size=8, context=12, generator=torch.Generator().manual_seed(0))
    assert losses[-1] < 0.3 * losses[0]


def test_block_allocator_and_copy_on_write():
    alloc = I.BlockAllocator(num_blocks=10, block_size=4)
    alloc.allocate("a", 6)  # 2 blocks
    assert alloc.used_blocks() == 2
    alloc.fork("a", "b")
    assert alloc.used_blocks() == 2  # shared
    alloc.append("a")  # slot 6 in the shared, half-full last block: copy on write
    assert alloc.copies == 1 and alloc.used_blocks() == 3
    assert alloc.tables["a"][0] == alloc.tables["b"][0] and alloc.tables["a"][1] != alloc.tables["b"][1]
    alloc.release("a")
    alloc.release("b")
    assert alloc.used_blocks() == 0
    with pytest.raises(MemoryError):
        alloc.allocate("big", 41)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=4), block_size=st.integers(1, 8), seed=st.integers(0, 999))
def test_paged_attention_equals_contiguous(lengths, block_size, seed):
    g = torch.Generator().manual_seed(seed)
    H, d = 2, 4
    alloc = I.BlockAllocator(num_blocks=64, block_size=block_size)
    k_blocks, v_blocks = torch.zeros(64, block_size, H, d, dtype=torch.float64), torch.zeros(64, block_size, H, d, dtype=torch.float64)
    contiguous = {}
    for s, n in enumerate(lengths):  # interleave the writes so blocks scatter
        alloc.allocate(s, 0)
        contiguous[s] = (torch.randn(n, H, d, generator=g, dtype=torch.float64), torch.randn(n, H, d, generator=g, dtype=torch.float64))
    for t in range(max(lengths)):
        for s, n in enumerate(lengths):
            if t < n:
                block, offset = alloc.append(s)
                k_blocks[block, offset], v_blocks[block, offset] = contiguous[s][0][t], contiguous[s][1][t]
    for s, n in enumerate(lengths):
        q = torch.randn(H, d, generator=g, dtype=torch.float64)
        k, v = contiguous[s]
        ref = torch.nn.functional.scaled_dot_product_attention(q[:, None], k.transpose(0, 1), v.transpose(0, 1))[:, 0]
        torch.testing.assert_close(I.paged_attention(q, k_blocks, v_blocks, alloc.tables[s], n), ref)
        assert I.reserved_slots(n, policy="paged", block_size=block_size) - n <= block_size - 1


def test_batching_simulation():
    lengths = [1, 10, 1, 10, 1, 10, 1, 10]
    static = I.simulate_batching(lengths, max_batch=2, policy="static")
    cont = I.simulate_batching(lengths, max_batch=2, policy="continuous")
    assert static["iterations"] == 40  # four batches, each as long as its longest request
    assert cont["iterations"] < static["iterations"] and cont["utilization"] > static["utilization"]
    assert static["utilization"] == pytest.approx(44 / 80)
    assert sum(cont["latency"]) < sum(static["latency"])
    late = I.simulate_batching([3, 3], max_batch=4, policy="continuous", arrivals=[0, 10])
    assert late["latency"] == [3.0, 3.0] and late["time"] == 13.0


def test_speculative_distribution_is_exact():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        p = torch.rand(7, generator=g, dtype=torch.float64) ** 3
        q = torch.rand(7, generator=g, dtype=torch.float64) ** 3
        p, q = p / p.sum(), q / q.sum()
        torch.testing.assert_close(I.speculative_distribution(p, q), p)
    torch.testing.assert_close(I.speculative_distribution(p, p), p)


def test_speculative_sample_frequencies():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    n = 200_000
    tokens, accepted = I.speculative_sample(p, q, n, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=4).double() / n
    assert float((freq - p).abs().max()) < 5 * math.sqrt(0.25 / n)
    beta = float(torch.minimum(p, q).sum())
    assert abs(float(accepted.double().mean()) - beta) < 5 * math.sqrt(0.25 / n)


def test_speculative_generate_equals_greedy_target():
    target, draft = _model(0), _model(1)
    prompt = torch.tensor([[1, 2, 3]])
    greedy, _ = I.generate(target, prompt, 15)
    tokens, calls = I.speculative_generate(target, draft, prompt, 15, k=3)
    assert torch.equal(tokens, greedy)
    tokens, calls = I.speculative_generate(target, target, prompt, 15, k=3)
    assert torch.equal(tokens, greedy) and calls == math.ceil(15 / 4)


def test_lru_cache_and_che():
    cache = I.LRUCache(2)
    calls = []
    for key in ["a", "b", "a", "c", "b"]:
        cache.get_or_compute(key, lambda key=key: calls.append(key) or key.upper())
    assert calls == ["a", "b", "c", "b"] and cache.hits == 1
    p = torch.ones(10, dtype=torch.float64) / 10
    assert I.che_hit_rate(p, 5) == pytest.approx(0.5, abs=1e-9)


def test_time_interleaved():
    calls = []
    times = I.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and len(times["a"]) == 3 and min(times["b"]) >= 0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="repeats"):
        I.time_interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="block_size"):
        I.BlockAllocator(num_blocks=4, block_size=0)
    with pytest.raises(ValueError, match="block_size"):
        I.reserved_slots(3, policy="paged", block_size=0)
    with pytest.raises(ValueError, match="policy"):
        I.reserved_slots(3, policy="ring")
    with pytest.raises(ValueError, match="max_batch"):
        I.simulate_batching([1], max_batch=0, policy="static")
    with pytest.raises(ValueError, match="output lengths"):
        I.simulate_batching([0], max_batch=1, policy="static")
    with pytest.raises(ValueError, match="n_heads"):
        I.TinyDecoder(5, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="max_len"):
        _model()(torch.zeros(1, 41, dtype=torch.long))
    with pytest.raises(ValueError, match="bytes_per_element"):
        I.kv_cache_bytes(1, 1, 1, 1, bytes_per_element=0)
    with pytest.raises(ValueError, match="k must"):
        I.speculative_generate(_model(), _model(), torch.zeros(1, 2, dtype=torch.long), 3, k=0)
    with pytest.raises(ValueError, match="capacity"):
        I.LRUCache(0)
    with pytest.raises(ValueError, match="same shape"):
        I.speculative_distribution(torch.ones(3), torch.ones(4))
