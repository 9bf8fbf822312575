"""dlbook.lora against peft (LoRA, merge_and_unload) and bitsandbytes (NF4, double quantization)."""

import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook import lora as L
from dlbook.nn import TinyTransformer

logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)  # optional CPU kernel hub notice
bnbF = pytest.importorskip("bitsandbytes.functional")
peft = pytest.importorskip("peft")


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 6))


def test_lora_equals_base_at_init_and_counts_parameters():
    base = nn.Linear(32, 24)
    layer = L.LoRALinear(base, 4, lora_alpha=8.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 32)
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)
    assert L.num_trainable(layer) == 4 * (32 + 24)
    assert not layer.weight.requires_grad and not layer.bias.requires_grad


def test_lora_equals_peft_before_and_after_merge():
    from peft import LoraConfig, get_peft_model

    ours, theirs = _mlp(), _mlp()
    theirs = get_peft_model(theirs, LoraConfig(r=3, lora_alpha=6, target_modules=["0", "2"], init_lora_weights=False))
    L.apply_lora(ours, 3, lora_alpha=6.0)
    g = torch.Generator().manual_seed(1)
    for name in ("0", "2"):
        mine, peft_layer = ours.get_submodule(name), theirs.base_model.model.get_submodule(name)
        with torch.no_grad():
            mine.lora_A.copy_(torch.randn(mine.lora_A.shape, generator=g))
            mine.lora_B.copy_(torch.randn(mine.lora_B.shape, generator=g))  # non-zero B: a real comparison
            peft_layer.lora_A["default"].weight.copy_(mine.lora_A)
            peft_layer.lora_B["default"].weight.copy_(mine.lora_B)
    x = torch.randn(7, 12, generator=g)
    torch.testing.assert_close(ours(x), theirs(x))
    assert L.num_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    merged_ours, merged_theirs = L.merge_lora(ours), theirs.merge_and_unload()
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Sequential) for m in merged_ours.modules())
    torch.testing.assert_close(merged_ours(x), merged_theirs(x), rtol=1e-5, atol=1e-5)


def test_merge_unmerge_and_gradients():
    layer = L.LoRALinear(nn.Linear(16, 8, dtype=torch.float64), 2, lora_alpha=4.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    w0, x = layer.weight.clone(), torch.randn(3, 16, dtype=torch.float64)
    y = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), y)
    layer.unmerge()
    torch.testing.assert_close(layer.weight, w0, rtol=0, atol=1e-14)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer(x).sum().backward()
    assert layer.weight.grad is None and layer.lora_A.grad is not None and layer.lora_B.grad is not None
    a, b = layer.lora_A.detach().requires_grad_(), layer.lora_B.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a_, b_: x @ L.lora_delta(a_, b_, lora_alpha=4.0).T, (a, b))


@pytest.mark.parametrize("r", [0, -1, 9])
def test_bad_rank(r):
    with pytest.raises(ValueError, match="rank r"):
        L.LoRALinear(nn.Linear(16, 8), r)


def test_bad_target_and_types():
    with pytest.raises(ValueError, match="not nn.Linear"):
        L.apply_lora(_mlp(), 2, target=("1",))
    with pytest.raises(TypeError, match="int"):
        L.LoRALinear(nn.Linear(4, 4), 2.0)


@pytest.mark.parametrize("method", L.PEFTTransformer.METHODS)
def test_peft_transformer_only_new_parameters_train(method):
    torch.manual_seed(0)
    bb = TinyTransformer(10, d_model=16, nhead=2, num_layers=2, dim_feedforward=32)
    tokens = torch.randint(0, 10, (4, 6))
    if method == "head":  # the re-implemented forward equals the backbone's own
        model = L.PEFTTransformer(bb, 3, method)
        torch.testing.assert_close(model.features(tokens), bb.norm(_hidden(bb, tokens)))
    frozen = {n: p.clone() for n, p in bb.named_parameters()}
    model = L.PEFTTransformer(bb, 3, method, r=2, bottleneck=4, n_virtual=3)
    model(tokens).sum().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert all(not p.requires_grad for n, p in bb.named_parameters() if "lora_" not in n)
    assert all(torch.equal(frozen[n], p) for n, p in bb.named_parameters() if n in frozen)


def _hidden(bb, tokens):
    h = bb.embed(tokens) + bb.pos(tokens.shape[1])
    for layer in bb.layers:
        h = layer(h)
    return h


def test_peft_transformer_rejects_bad_method():
    with pytest.raises(ValueError, match="method"):
        L.PEFTTransformer(TinyTransformer(5), 2, "ia3")


def test_nf4_levels_equal_bitsandbytes():
    levels = L.nf4_levels()
    assert torch.equal(levels, bnbF.get_4bit_type("nf4", device="cpu"))
    assert levels[7] == 0 and levels[0] == -1 and levels[-1] == 1
    assert torch.equal(L.dynamic_map(), bnbF.create_dynamic_map(signed=True))


@pytest.mark.parametrize("shape", [(64,), (128, 64), (96, 200)])
def test_nf4_round_trip_equals_bitsandbytes(shape):
    w = 0.05 * torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    packed, state = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4")
    ours = L.nf4_quantize(w, blocksize=64)
    assert torch.equal(ours.packed, packed) and torch.equal(ours.absmax, state.absmax)
    assert torch.equal(L.nf4_dequantize(ours).reshape(-1), bnbF.dequantize_4bit(packed, state).reshape(-1))


def test_double_quant_equals_bitsandbytes_reference_kernel():
    w = 0.05 * torch.randn(256, 512, generator=torch.Generator().manual_seed(1))
    packed, state = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    ours = L.nf4_quantize(w, blocksize=64, double_quant=True)
    assert torch.equal(ours.packed, packed) and torch.equal(ours.offset, state.offset)
    assert torch.equal(ours.state2[0], state.state2.absmax)
    # bitsandbytes' pure-PyTorch kernel (nearest level, ties down) equals ours code for code;
    # its compiled CPU kernel's binary search differs only on a few near-ties.
    raw = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4")[1].absmax
    ks = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)
    ref_codes, ref_absmax2 = torch.ops.bitsandbytes.quantize_blockwise.default.redispatch(
        ks, raw - raw.mean(), bnbF.create_dynamic_map(signed=True), 256)
    assert torch.equal(ours.absmax, ref_codes) and torch.equal(ours.state2[0], ref_absmax2)
    assert (ours.absmax != state.absmax).float().mean() < 0.01
    torch.testing.assert_close(L.nf4_dequantize(ours).reshape(-1), bnbF.dequantize_4bit(packed, state).reshape(-1), rtol=0, atol=5e-3)


def test_bits_per_parameter():
    assert L.bits_per_parameter(blocksize=64) == 4.5
    assert abs(L.bits_per_parameter(blocksize=64, double_quant=True) - 4.127) < 1e-3
    q = L.nf4_quantize(torch.randn(1024, 1024), double_quant=True)
    assert abs(8 * q.nbytes() / 1024**2 - L.bits_per_parameter(double_quant=True)) < 1e-4


@pytest.mark.parametrize("blocksize", [0, -64, 48])
def test_bad_blocksize(blocksize):
    with pytest.raises(ValueError, match="blocksize"):
        L.blockwise_quantize(torch.randn(128), L.nf4_levels(), blocksize=blocksize)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.floats(1e-3, 1e3), st.integers(0, 2**16))
def test_quantization_error_is_at_most_half_a_gap(n_blocks, scale, seed):
    x = scale * torch.randn(n_blocks * 64, generator=torch.Generator().manual_seed(seed))
    levels = L.nf4_levels()
    codes, absmax = L.blockwise_quantize(x, levels)
    err = (L.blockwise_dequantize(codes, absmax, levels) - x).abs().reshape(-1, 64)
    half_gap = (levels[1:] - levels[:-1]).max() / 2
    assert (err <= half_gap * absmax[:, None] * (1 + 1e-5)).all()
    assert (codes.reshape(-1, 64).max(1).values == 15).any() or (codes.reshape(-1, 64).min(1).values == 0).any()


def test_pack_unpack():
    codes = torch.randint(0, 16, (40,), dtype=torch.uint8)
    assert torch.equal(L.unpack_4bit(L.pack_4bit(codes)), codes)
    with pytest.raises(ValueError, match="even"):
        L.pack_4bit(codes[:3])


def test_qlora_layer_gradients_and_memory():
    base = nn.Linear(256, 128)
    layer = L.QLoRALinear(base, 8, lora_alpha=16.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 256, requires_grad=True)
    torch.testing.assert_close(layer(x), nn.functional.linear(x, L.nf4_dequantize(layer.q), base.bias))
    layer(x).pow(2).sum().backward()
    assert {n for n, p in layer.named_parameters() if p.grad is not None} == {"lora_A", "lora_B"}
    assert x.grad is not None and layer.lora_A.grad.abs().sum() == 0  # B = 0: A's gradient is zero at first
    assert layer.lora_B.grad.abs().sum() > 0
    expected = 256 * 128 // 2 + 256 * 128 // 64 + 4 * 2 + 4 + 128 * 4 + 8 * (256 + 128) * 4
    assert layer.nbytes() == expected


def test_response_only_labels_and_loss():
    ids = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 4, 0]])
    labels = L.response_only_labels(ids, torch.tensor([2, 3]), pad_mask=ids == 0)
    assert labels.tolist() == [[-100, -100, 7, 8, 9], [-100, -100, -100, 4, -100]]
    logits = torch.randn(2, 5, 10)
    per_token = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 10), ids[:, 1:].reshape(-1), reduction="none")
    keep = (labels[:, 1:] != -100).reshape(-1)
    torch.testing.assert_close(L.causal_lm_loss(logits, labels), per_token[keep].mean())
    with pytest.raises(ValueError, match="prompt_lengths"):
        L.response_only_labels(ids, torch.tensor([2, 9]))
