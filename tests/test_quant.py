"""dlbook.quant against torch's quantized tensors and fake-quant ops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import quant as Q

# the oracle itself (torch.quantize_per_tensor / per_channel) is deprecated in torch 2.13 and says so
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")


def _torch_codes(x, scale, zp, dtype):
    return torch.quantize_per_tensor(x, float(scale), int(zp), dtype).int_repr().long()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("shape", [(7,), (5, 13), (3, 4, 6)])
def test_quantize_per_tensor_matches_torch_bit_for_bit(symmetric, shape):
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(shape, generator=g) + 0.5
    scale, zp = Q.choose_qparams(x.min(), x.max(), symmetric=symmetric)
    qmin, qmax = Q.qrange(8, signed=symmetric)
    dtype = torch.qint8 if symmetric else torch.quint8
    ours = Q.quantize_per_tensor(x, scale, zp, quant_min=qmin, quant_max=qmax)
    assert torch.equal(ours, _torch_codes(x, scale, zp, dtype))
    ref = torch.quantize_per_tensor(x, float(scale), int(zp), dtype).dequantize()
    assert torch.equal(Q.dequantize(ours, scale, zp), ref)


def test_choose_qparams_matches_minmax_observer():
    x = torch.randn(100) * 2 + 1
    for symmetric, scheme, dtype in [(False, torch.per_tensor_affine, torch.quint8), (True, torch.per_tensor_symmetric, torch.qint8)]:
        obs = torch.ao.quantization.MinMaxObserver(dtype=dtype, qscheme=scheme)
        obs(x)
        s_ref, z_ref = obs.calculate_qparams()
        s, z = Q.choose_qparams(x.min(), x.max(), symmetric=symmetric)
        torch.testing.assert_close(s.reshape(1), s_ref.reshape(1), rtol=1e-6, atol=0)
        assert int(z) == int(z_ref)


def test_quantize_per_channel_matches_torch():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 10, generator=g) * torch.logspace(-2, 1, 6)[:, None]
    s, z = Q.choose_qparams(w.amin(1), w.amax(1), symmetric=True)
    ours = Q.quantize_per_channel(w, s, z, 0, quant_min=-128, quant_max=127)
    ref = torch.quantize_per_channel(w, s.double(), z, 0, torch.qint8)
    assert torch.equal(ours, ref.int_repr().long())
    assert torch.equal(Q.dequantize(ours, s, z, axis=0), ref.dequantize())


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-100, -1e-3),
    hi=st.floats(1e-3, 100),
    bits=st.integers(2, 16),
    symmetric=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip_error_at_most_half_a_step_inside_range(lo, hi, bits, symmetric, seed):
    scale, zp = Q.choose_qparams(lo, hi, bits=bits, symmetric=symmetric)
    qmin, qmax = Q.qrange(bits, signed=symmetric)
    a, b = float(scale) * (qmin - int(zp)), float(scale) * (qmax - int(zp))  # representable range
    g = torch.Generator().manual_seed(seed)
    x = a + (b - a) * torch.rand(200, generator=g)
    x_hat = Q.dequantize(Q.quantize_per_tensor(x, scale, zp, quant_min=qmin, quant_max=qmax), scale, zp)
    assert float((x_hat - x).abs().max()) <= float(scale) / 2 * (1 + 1e-4) + 1e-6 * max(abs(a), abs(b))
    outside = torch.tensor([b + 10 * float(scale) + 1.0, a - 10 * float(scale) - 1.0])
    q_out = Q.quantize_per_tensor(outside, scale, zp, quant_min=qmin, quant_max=qmax)
    assert q_out.tolist() == [qmax, qmin]  # clamped


def test_fake_quantize_matches_torch_forward_and_backward():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ours = Q.fake_quantize(x, 0.02, 3, quant_min=-128, quant_max=127)
    ref = torch.fake_quantize_per_tensor_affine(x_ref, 0.02, 3, -128, 127)
    torch.testing.assert_close(ours, ref)
    ours.sum().backward()
    ref.sum().backward()
    assert torch.equal(x.grad, x_ref.grad)
    assert set(x.grad.tolist()) == {0.0, 1.0}


def test_calibrate_methods():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(10_000, generator=g), torch.tensor([80.0])])
    lo, hi = Q.calibrate(x, method="minmax")
    assert hi == 80.0
    plo, phi = Q.calibrate(x, method="percentile", percentile=99.9)
    assert 2.5 < phi < 4.5 and -4.5 < plo < -2.5
    mlo, mhi = Q.calibrate(x, method="mse")
    assert mhi < hi and mlo == -mhi
    bulk = x[:-1]
    assert Q.quantization_mse(bulk, plo, phi) < Q.quantization_mse(bulk, lo, hi) / 10


def test_smooth_quant_preserves_product():
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(8, 5, generator=g), torch.randn(3, 5, generator=g)
    X[:, 2] *= 50
    s = Q.smooth_quant_scales(X.abs().amax(0), W.abs().amax(0), alpha=0.5)
    torch.testing.assert_close((X / s) @ (W * s).T, X @ W.T, rtol=1e-5, atol=1e-4)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="bits"):
        Q.qrange(1)
    with pytest.raises(ValueError, match="bits"):
        Q.qrange(17)
    with pytest.raises(TypeError, match="bits"):
        Q.qrange(8.0)
    with pytest.raises(ValueError, match="scale"):
        Q.quantize_per_tensor(torch.ones(3), 0.0, 0, quant_min=0, quant_max=255)
    with pytest.raises(ValueError, match="scale"):
        Q.dequantize(torch.ones(3), -1.0, 0)
    with pytest.raises(ValueError, match="quant_min"):
        Q.quantize_per_tensor(torch.ones(3), 1.0, 0, quant_min=5, quant_max=5)
    with pytest.raises(ValueError, match="method"):
        Q.calibrate(torch.ones(3), method="kl")
    with pytest.raises(ValueError, match="percentile"):
        Q.calibrate(torch.ones(3), method="percentile", percentile=30)
    with pytest.raises(ValueError, match="x_min"):
        Q.choose_qparams(2.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        Q.smooth_quant_scales(torch.ones(2), torch.ones(2), alpha=2)
    with pytest.raises(ValueError, match="scales"):
        Q.quantize_per_channel(torch.ones(2, 3), torch.ones(3), torch.zeros(3, dtype=torch.long), 0, quant_min=-128, quant_max=127)
