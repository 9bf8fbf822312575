"""Tests for dlbook.nn: torch as oracle (forward and backward, weights copied in, float64),
gradcheck, Hypothesis properties, and the error paths."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlbook import nn as N

D = torch.float64


def _rand(*shape, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D).requires_grad_(requires_grad)


def _same(ours, theirs, inputs, atol=1e-10, rtol=1e-8):
    """Forward values and gradients w.r.t. every input agree."""
    a, b = ours(*inputs), theirs(*inputs)
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
    w = torch.randn(a.shape, generator=torch.Generator().manual_seed(9), dtype=a.dtype)
    ga = torch.autograd.grad((a * w).sum(), inputs)
    gb = torch.autograd.grad((b * w).sum(), inputs)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)


# -- convolution -----------------------------------------------------------------------------
CONV_CASES = [
    # (B, C_in, H, W, C_out, k, stride, padding, dilation, groups)
    (2, 3, 7, 9, 4, 3, 1, 0, 1, 1),
    (1, 4, 8, 8, 6, 3, 2, 1, 1, 2),
    (2, 2, 10, 7, 2, (3, 2), (2, 1), (1, 0), (2, 1), 1),
    (1, 6, 6, 6, 6, 3, 1, 1, 1, 6),  # depthwise
    (2, 4, 9, 9, 8, 1, 1, 0, 1, 1),  # 1x1
    (1, 2, 11, 11, 3, 5, 3, 2, 2, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case):
    B, C, H, W, O, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = _rand(B, C, H, W)
    w = _rand(O, C // g, kh, kw, seed=1)
    b = _rand(O, seed=2)
    kw_ = dict(stride=s, padding=p, dilation=d, groups=g)
    _same(lambda x, w, b: N.conv2d(x, w, b, **kw_), lambda x, w, b: F.conv2d(x, w, b, **kw_), (x, w, b))


def test_conv2d_gradcheck_and_im2col_equals_unfold():
    x, w = _rand(1, 2, 5, 5), _rand(3, 2, 3, 3, seed=1)
    assert torch.autograd.gradcheck(lambda x, w: N.conv2d(x, w, stride=2, padding=1), (x, w))
    torch.testing.assert_close(N.im2col(x, 3, dilation=2, padding=1, stride=1), F.unfold(x, 3, dilation=2, padding=1, stride=1))


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), (1, 1))])
def test_pooling_matches_torch(k, s, p):
    x = _rand(2, 3, 8, 9)
    _same(lambda x: N.max_pool2d(x, k, s, p), lambda x: F.max_pool2d(x, k, s, p), (x,))
    _same(lambda x: N.avg_pool2d(x, k, s, p), lambda x: F.avg_pool2d(x, k, s, p), (x,))
    assert torch.autograd.gradcheck(lambda x: N.avg_pool2d(x, k, s, p), (x,))
    assert torch.autograd.gradcheck(lambda x: N.max_pool2d(x, k, s, p), (x,))


def test_conv_output_size_matches_torch_over_a_grid():
    for H, K, P, S, Dl in itertools.product([5, 8, 13], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2]):
        if H + 2 * P < Dl * (K - 1) + 1:
            continue
        out = nn.Conv2d(1, 1, K, S, P, Dl)(torch.zeros(1, 1, H, H)).shape[-1]
        assert N.conv_output_size(H, K, stride=S, padding=P, dilation=Dl) == out


@pytest.mark.parametrize("layers", [[(3, 1, 1)] * 2, [(3, 1, 1)] * 3, [(3, 2, 1), (3, 1, 1)], [(3, 1, 2), (3, 1, 4)], [(5, 2, 1), (3, 2, 1), (3, 1, 2)]])
def test_receptive_field_matches_gradient(layers):
    model = nn.Sequential(*[nn.Conv2d(1, 1, k, s, dilation=d, bias=False) for k, s, d in layers]).double()
    for m in model:
        nn.init.constant_(m.weight, 1.0)
    r, _ = N.receptive_field(layers)
    assert N.empirical_receptive_field(model, (1, 1, 64, 64)) == (r, r)


def test_conv2d_flops_matches_counter():
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False)
    with FlopCounterMode(display=False) as fc:
        conv(torch.randn(1, 8, 10, 10))
    assert fc.get_total_flops() == N.conv2d_flops(8, 16, 3, 10, 10, groups=4)


def test_resnet_blocks_shapes_and_counts():
    x = torch.randn(2, 64, 8, 8)
    assert N.BasicBlock(64, 64)(x).shape == (2, 64, 8, 8)
    assert N.BasicBlock(64, 128, stride=2)(x).shape == (2, 128, 4, 4)
    blk = N.Bottleneck(256, 64)
    assert blk(torch.randn(2, 256, 4, 4)).shape == (2, 256, 4, 4)
    convs = sum(m.weight.numel() for m in blk.modules() if isinstance(m, nn.Conv2d))
    assert convs == N.bottleneck_weights(256, 64) == 69_632


def test_mlp_stack_residual_identity_at_zero_weights():
    net = N.MLPStack(4, 8, 5, residual=True)
    for layer in net.layers:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
    x = torch.randn(3, 4)
    torch.testing.assert_close(net(x), net.out(torch.relu(net.inp(x))))


# -- recurrent -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,mode", [(nn.RNN, "RNN_TANH"), (nn.LSTM, "LSTM"), (nn.GRU, "GRU")])
@pytest.mark.parametrize("layers,bidir", [(1, False), (2, False), (1, True), (2, True)])
def test_rnn_layers_match_torch(cls, mode, layers, bidir):
    torch.manual_seed(0)
    m = cls(3, 5, num_layers=layers, bidirectional=bidir, batch_first=True).double()
    x = _rand(2, 6, 3)
    p = dict(m.named_parameters())
    out, st = N.rnn(x, p, mode=mode, num_layers=layers, bidirectional=bidir)
    ref, rst = m(x)
    torch.testing.assert_close(out, ref)
    for a, b in zip(st if mode == "LSTM" else (st,), rst if mode == "LSTM" else (rst,)):
        torch.testing.assert_close(a, b)
    g1 = torch.autograd.grad(out.square().sum(), [x, *p.values()])
    g2 = torch.autograd.grad(ref.square().sum(), [x, *p.values()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_rnn_relu_and_initial_state():
    torch.manual_seed(1)
    m = nn.RNN(2, 4, nonlinearity="relu", batch_first=True).double()
    x, h0 = _rand(3, 5, 2), _rand(1, 3, 4, seed=3)
    torch.testing.assert_close(N.rnn(x, dict(m.named_parameters()), mode="RNN_RELU", hx=h0)[0], m(x, h0)[0])


def test_cells_gradcheck():
    x, h, c = _rand(2, 3), _rand(2, 4, seed=1), _rand(2, 4, seed=2)
    w4, u4, w3, u3 = _rand(16, 3, seed=3), _rand(16, 4, seed=4), _rand(12, 3, seed=5), _rand(12, 4, seed=6)
    assert torch.autograd.gradcheck(lambda x, h, c, w, u: N.lstm_cell(x, (h, c), w, u), (x, h, c, w4, u4))
    assert torch.autograd.gradcheck(lambda x, h, w, u: N.gru_cell(x, h, w, u), (x, h, w3, u3))
    assert torch.autograd.gradcheck(lambda x, h: N.rnn_cell(x, h, w3[:4], u3[:4]), (x, h))


# -- attention -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [((2, 5, 4), (2, 7, 4), (2, 7, 3)), ((2, 3, 6, 8), (2, 3, 6, 8), (2, 3, 6, 5))])
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_torch(shape, causal):
    q, k, v = _rand(*shape[0]), _rand(*shape[1], seed=1), _rand(*shape[2], seed=2)
    _same(lambda q, k, v: N.scaled_dot_product_attention(q, k, v, is_causal=causal), lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), (q, k, v))
    assert torch.autograd.gradcheck(lambda q, k, v: N.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3), (q, k, v))


def test_sdpa_masks_match_torch():
    q, k, v = _rand(2, 4, 8), _rand(2, 6, 8, seed=1), _rand(2, 6, 8, seed=2)
    allowed = ~N.padding_mask([4, 6], 6)[:, None, :].expand(2, 4, 6)  # True = attend
    _same(lambda q, k, v: N.scaled_dot_product_attention(q, k, v, allowed), lambda q, k, v: F.scaled_dot_product_attention(q, k, v, allowed), (q, k, v))
    add = torch.zeros(4, 6, dtype=D).masked_fill(~N.sliding_window_mask(6, 2)[:4], float("-inf"))
    _same(lambda q, k, v: N.scaled_dot_product_attention(q, k, v, add), lambda q, k, v: F.scaled_dot_product_attention(q, k, v, add), (q, k, v))


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.booleans())
@settings(max_examples=30, deadline=None)
def test_attention_rows_sum_to_one(t, s, d, causal):
    q, k = _rand(t, d, requires_grad=False), _rand(s, d, seed=1, requires_grad=False)
    w = N.attention_weights(q, k, is_causal=causal and t <= s)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(t, dtype=D))


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("masks", ["none", "pad", "causal", "both"])
def test_multi_head_attention_matches_torch(heads, masks):
    torch.manual_seed(heads)
    d, T, S = 8, 5, 6
    m = nn.MultiheadAttention(d, heads, batch_first=True).double()
    q, kv = _rand(3, T, d), _rand(3, S, d, seed=1)
    kpm = N.padding_mask([6, 4, 5], S) if masks in ("pad", "both") else None
    am = N.causal_mask(max(T, S), dtype=D)[:T, :S] if masks in ("causal", "both") else None
    p = dict(m.named_parameters())
    out, w = N.multi_head_attention(q, kv, kv, p, num_heads=heads, key_padding_mask=kpm, attn_mask=am)
    kpm_t = None if kpm is None else torch.zeros(kpm.shape, dtype=D).masked_fill(kpm, float("-inf"))  # same type as attn_mask
    ref, rw = m(q, kv, kv, key_padding_mask=kpm_t, attn_mask=am, average_attn_weights=False)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, rw)
    g1 = torch.autograd.grad(out.sum(), [q, kv, *p.values()])
    g2 = torch.autograd.grad(ref.sum(), [q, kv, *p.values()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_multi_head_bool_attn_mask_and_split_merge():
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = _rand(2, 4, 8)
    blocked = torch.triu(torch.ones(4, 4, dtype=torch.bool), 1)
    torch.testing.assert_close(N.multi_head_attention(x, x, x, dict(m.named_parameters()), num_heads=2, attn_mask=blocked)[0], m(x, x, x, attn_mask=blocked)[0])
    torch.testing.assert_close(N.merge_heads(N.split_heads(x, 4)), x)


def test_masks_match_torch():
    torch.testing.assert_close(N.causal_mask(5), nn.Transformer.generate_square_subsequent_mask(5))
    assert N.padding_mask([2, 3]).tolist() == [[False, False, True], [False, False, False]]
    assert int(N.sliding_window_mask(10, 3).sum()) == 3 * 10 - 3


def test_additive_attention_is_a_distribution():
    w = N.additive_attention(_rand(2, 3), _rand(2, 5, 4, seed=1), _rand(6, 3, seed=2), _rand(6, 4, seed=3), _rand(6, seed=4))
    assert (w > 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=D))


# -- positions -------------------------------------------------------------------------------
def test_sinusoidal_shift_is_a_rotation():
    pe = N.sinusoidal_positional_encoding(50, 16, dtype=D)
    k = 7
    omega = 10000 ** (-torch.arange(0, 16, 2, dtype=D) / 16)
    for i, w in enumerate(omega):
        c, s = torch.cos(k * w), torch.sin(k * w)
        M = torch.stack([torch.stack([c, s]), torch.stack([-s, c])])  # acts on (sin, cos)
        pair = pe[:, 2 * i : 2 * i + 2]
        torch.testing.assert_close(pair[k:], pair[:-k] @ M.T)


def test_rope_relative_and_gradcheck():
    q, k = _rand(1, 16, requires_grad=False), _rand(1, 16, seed=1, requires_grad=False)
    def score(m, n):
        return float(N.rope(q, torch.tensor([m])) @ N.rope(k, torch.tensor([n])).T)
    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-12)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-6)
    x = _rand(2, 4, 6)
    assert torch.autograd.gradcheck(lambda x: N.rope(x), (x,))
    torch.testing.assert_close(N.rope(x).norm(dim=-1), x.norm(dim=-1))


def test_learned_positions_cannot_extrapolate():
    with pytest.raises(ValueError, match="max_len"):
        N.LearnedPositionalEmbedding(8, 4)(9)


# -- Transformer layers ------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    torch.manual_seed(0)
    m = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True).double().eval()
    x = _rand(2, 5, 8)
    kpm = N.padding_mask([5, 3], 5)
    p = dict(m.named_parameters())
    out = N.transformer_encoder_layer(x, p, nhead=2, norm_first=norm_first, activation=activation, src_key_padding_mask=kpm)
    ref = m(x, src_key_padding_mask=kpm)
    torch.testing.assert_close(out[0], ref[0])
    torch.testing.assert_close(out[1, :3], ref[1, :3])  # torch's fast path may fill pads differently
    m.train()
    ref = m(x, src_key_padding_mask=kpm)
    g1 = torch.autograd.grad(out[1, :3].sum() + out[0].sum(), [x, *p.values()])
    g2 = torch.autograd.grad(ref[1, :3].sum() + ref[0].sum(), [x, *p.values()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    torch.manual_seed(1)
    m = nn.TransformerDecoderLayer(8, 4, 16, dropout=0.0, norm_first=norm_first, batch_first=True).double()
    x, mem = _rand(2, 4, 8), _rand(2, 6, 8, seed=1)
    mask = N.causal_mask(4, dtype=D)
    p = dict(m.named_parameters())
    out = N.transformer_decoder_layer(x, mem, p, nhead=4, norm_first=norm_first, tgt_mask=mask)
    ref = m(x, mem, tgt_mask=mask)
    torch.testing.assert_close(out, ref)
    g1 = torch.autograd.grad(out.sum(), [x, mem, *p.values()])
    g2 = torch.autograd.grad(ref.sum(), [x, mem, *p.values()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_module_loads_torch_state_dict_and_gradcheck():
    torch.manual_seed(2)
    ref = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=True, batch_first=True).double()
    ours = N.TransformerEncoderLayer(8, 2, 16, norm_first=True).double()
    ours.load_state_dict(ref.state_dict())
    x = _rand(2, 3, 8)
    torch.testing.assert_close(ours(x), ref(x))
    assert torch.autograd.gradcheck(lambda x: ours(x, is_causal=True), (x,))


def test_tiny_transformer_causal_and_tied():
    torch.manual_seed(0)
    tied, untied = N.TinyTransformer(11, 16, 2, 1, 32, causal=True, tie_weights=True), N.TinyTransformer(11, 16, 2, 1, 32, causal=True)
    assert N.num_parameters(untied) - N.num_parameters(tied) == 11 * 16
    a = torch.randint(0, 11, (1, 6))
    b = a.clone()
    b[0, 4:] = (b[0, 4:] + 1) % 11
    torch.testing.assert_close(tied(a)[0, :4], tied(b)[0, :4])
    assert tied(a).shape == (1, 6, 11)


# -- errors ------------------------------------------------------------------------------------
def test_errors():
    x = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match="divisible by groups"):
        N.conv2d(x, torch.zeros(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="expects 6 input channels"):
        N.conv2d(x, torch.zeros(4, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match="must have 4 dims"):
        N.conv2d(torch.zeros(4, 5, 5), torch.zeros(3, 4, 3, 3))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        N.conv2d([[1.0]], torch.zeros(3, 4, 3, 3))
    with pytest.raises(ValueError, match="kernel extent 5 exceeds"):
        N.conv_output_size(3, 3, dilation=2)
    with pytest.raises(ValueError, match="stride"):
        N.conv_output_size(3, 3, stride=0)
    with pytest.raises(TypeError, match="stride"):
        N.im2col(x, 3, stride=1.5)
    with pytest.raises(ValueError, match="padding"):
        N.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="layers\\[1\\]"):
        N.receptive_field([(3, 1, 1), (3, 0, 1)])
    with pytest.raises(ValueError, match="mode"):
        N.rnn(torch.zeros(1, 2, 3), {}, mode="lstm")
    with pytest.raises(ValueError, match="weight_hh_l1"):
        N.rnn(torch.zeros(1, 2, 3), dict(nn.RNN(3, 4).named_parameters()), num_layers=2)
    with pytest.raises(ValueError, match="expects 4x4"):
        N.rnn(torch.zeros(1, 2, 3), dict(nn.RNN(3, 4).named_parameters()), mode="LSTM")
    with pytest.raises(ValueError, match="dropout_p"):
        N.scaled_dot_product_attention(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), dropout_p=0.1)
    with pytest.raises(ValueError, match="last dim d_k"):
        N.attention_weights(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same length S"):
        N.scaled_dot_product_attention(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        N.split_heads(torch.zeros(1, 2, 6), 4)
    with pytest.raises(ValueError, match="even d_model"):
        N.sinusoidal_positional_encoding(4, 5)
    with pytest.raises(ValueError, match="even feature dim"):
        N.rope(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="size must be a positive int"):
        N.causal_mask(0)
    with pytest.raises(ValueError, match="lengths"):
        N.padding_mask(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="activation"):
        N.feed_forward(torch.zeros(1, 2), {}, activation="tanh")
    with pytest.raises(ValueError, match="divisible by nhead"):
        N.TransformerEncoderLayer(6, 4, 8)
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, T\)"):
        N.TinyTransformer(5, 8, 2, 1, 16)(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="depth"):
        N.MLPStack(2, 4, 0)
