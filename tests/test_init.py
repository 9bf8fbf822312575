"""Tests for dlbook.init: gains equal torch's, sampled variances match the formula within a
tolerance derived from the sample size (chi-square for normal samples, a CLT bound from the
fourth moment for uniform ones), two-sample KS tests against torch.nn.init, orthogonality,
LSUV, the deep-stack measurements, and the error paths."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dlbook import init as I

P = 1e-6  # false-alarm probability of each statistical test (the seeds are fixed anyway)
SHAPES = [(256, 256), (512, 128), (64, 32, 3, 3)]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _torch_sample(fn, shape, seed=1, **kw):
    t = torch.empty(shape, dtype=torch.float64)
    fn(t, generator=_gen(seed), **kw)
    return t


def _normal_variance_ok(w: torch.Tensor, var: float) -> bool:
    """n * mean(w^2) / var ~ chi2(n) for w ~ N(0, var) with known mean 0."""
    n = w.numel()
    stat = n * w.double().pow(2).mean().item() / var
    lo, hi = stats.chi2.ppf(P / 2, n), stats.chi2.ppf(1 - P / 2, n)
    return lo < stat < hi


def _uniform_variance_ok(w: torch.Tensor, a: float) -> bool:
    """mean(w^2) for U(-a, a): mean a^2/3, sd sqrt((a^4/5 - a^4/9)/n); a z-test at level P."""
    n = w.numel()
    sd = math.sqrt((a**4 / 5 - a**4 / 9) / n)
    z = (w.double().pow(2).mean().item() - a**2 / 3) / sd
    return abs(z) < stats.norm.ppf(1 - P / 2)


NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("name", NONLINEARITIES)
def test_calculate_gain_matches_torch(name):
    assert I.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)


@pytest.mark.parametrize("a", [0.0, 0.01, 0.2, 1.0])
def test_leaky_relu_gain(a):
    assert I.calculate_gain("leaky_relu", a) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", a))
    assert I.calculate_gain("leaky_relu", a) == pytest.approx(math.sqrt(2 / (1 + a * a)))


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape):
    t = torch.empty(shape)
    assert I.fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_variance_and_distribution(shape, gain):
    fan_in, fan_out = I.fan_in_and_fan_out(shape)
    var = gain**2 * 2 / (fan_in + fan_out)
    wu = I.xavier_uniform(shape, gain=gain, generator=_gen(), dtype=torch.float64)
    assert _uniform_variance_ok(wu, math.sqrt(3 * var))
    assert wu.abs().max() <= math.sqrt(3 * var)
    wn = I.xavier_normal(shape, gain=gain, generator=_gen(), dtype=torch.float64)
    assert _normal_variance_ok(wn, var)
    tu = _torch_sample(torch.nn.init.xavier_uniform_, shape, gain=gain)
    tn = _torch_sample(torch.nn.init.xavier_normal_, shape, gain=gain)
    assert stats.ks_2samp(wu.flatten().numpy(), tu.flatten().numpy()).pvalue > 1e-4
    assert stats.ks_2samp(wn.flatten().numpy(), tn.flatten().numpy()).pvalue > 1e-4


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0.0), ("leaky_relu", 0.2), ("tanh", 0.0), ("linear", 0.0)])
def test_kaiming_variance_and_distribution(shape, mode, nonlinearity, a):
    fan_in, fan_out = I.fan_in_and_fan_out(shape)
    var = I.calculate_gain(nonlinearity, a) ** 2 / (fan_in if mode == "fan_in" else fan_out)
    kw = dict(a=a, mode=mode, nonlinearity=nonlinearity)
    wn = I.kaiming_normal(shape, generator=_gen(), dtype=torch.float64, **kw)
    wu = I.kaiming_uniform(shape, generator=_gen(), dtype=torch.float64, **kw)
    assert _normal_variance_ok(wn, var)
    assert _uniform_variance_ok(wu, math.sqrt(3 * var))
    tn = _torch_sample(torch.nn.init.kaiming_normal_, shape, **kw)
    tu = _torch_sample(torch.nn.init.kaiming_uniform_, shape, **kw)
    assert stats.ks_2samp(wn.flatten().numpy(), tn.flatten().numpy()).pvalue > 1e-4
    assert stats.ks_2samp(wu.flatten().numpy(), tu.flatten().numpy()).pvalue > 1e-4


def test_variance_test_has_power():
    """The tolerance is tight enough to reject a 5% wrong variance at this size."""
    w = I.normal((256, 256), math.sqrt(1.05), generator=_gen(), dtype=torch.float64)
    assert not _normal_variance_ok(w, 1.0)
    u = I.uniform((256, 256), math.sqrt(3 * 1.05), generator=_gen(), dtype=torch.float64)
    assert not _uniform_variance_ok(u, math.sqrt(3.0))


@pytest.mark.parametrize("shape", [(64, 64), (32, 96), (96, 32), (16, 4, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_is_orthogonal_and_distributed_like_torch(shape, gain):
    q = I.orthogonal(shape, gain=gain, generator=_gen(), dtype=torch.float64).reshape(shape[0], -1)
    rows, cols = q.shape
    eye = torch.eye(min(rows, cols), dtype=torch.float64)
    gram = q.T @ q if rows >= cols else q @ q.T
    torch.testing.assert_close(gram, gain**2 * eye)
    ours = torch.cat([I.orthogonal(shape, generator=_gen(s), dtype=torch.float64).flatten() for s in range(10)])
    theirs = torch.cat([_torch_sample(torch.nn.init.orthogonal_, shape, seed=100 + s).flatten() for s in range(10)])
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-4


def test_lsuv_gives_unit_variance_per_layer():
    g = _gen()
    x = torch.randn(512, 64, generator=g, dtype=torch.float64) * 3
    ws = [I.orthogonal((64, 64), generator=g, dtype=torch.float64) * 0.3 for _ in range(6)]
    out = I.lsuv(ws, x, torch.tanh, tol=1e-3)
    h = x
    for W in out:
        z = h @ W.T
        assert abs(z.std().item() - 1) < 1e-3
        h = torch.tanh(z)
    assert all(torch.equal(w, w2) for w, w2 in zip(ws, [w for w in ws]))  # inputs untouched


def test_mlp_weights_and_signal_stats():
    g = _gen()
    ws = I.mlp_weights("kaiming_normal", 64, 5, generator=g)
    assert len(ws) == 5 and ws[0].shape == (64, 64) and ws[0].dtype == torch.float64
    x = torch.randn(32, 64, generator=g, dtype=torch.float64)
    s = I.signal_stats(ws, x, torch.relu)
    # the hand-written loop agrees with autograd on nn.Linear layers
    layers = [torch.nn.Linear(64, 64, bias=False, dtype=torch.float64) for _ in ws]
    for layer, W in zip(layers, ws):
        layer.weight.data.copy_(W)
    h = x
    for layer in layers:
        h = torch.relu(layer(h))
    h.sum().backward()
    torch.testing.assert_close(s["grad_norm"], torch.stack([layer.weight.grad.norm() for layer in layers]))
    assert set(s) == {"act_std", "act_rms", "act_mean", "signal_norm", "grad_norm"}
    assert all(v.shape == (5,) for v in s.values())
    ln = I.signal_stats([2 * w for w in ws], x, torch.relu, layer_norm=True)
    ln1 = I.signal_stats(ws, x, torch.relu, layer_norm=True)
    torch.testing.assert_close(ln["act_std"][1:], 2 * ln1["act_std"][1:], rtol=1e-4, atol=0)  # LN removes the input scale (up to eps)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3))
def test_fans_property(fo, fi, k):
    shape = (fo, fi) + (3,) * k
    fan_in, fan_out = I.fan_in_and_fan_out(shape)
    assert fan_in * fo == fan_out * fi == fo * fi * 3**k


def test_errors():
    with pytest.raises(ValueError, match="swish"):
        I.calculate_gain("swish")
    with pytest.raises(TypeError, match="int"):
        I.calculate_gain(3)
    with pytest.raises(ValueError, match="param"):
        I.calculate_gain("leaky_relu", math.nan)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        I.xavier_uniform((5,))
    with pytest.raises(TypeError, match="shape"):
        I.kaiming_normal(5)
    with pytest.raises(ValueError, match="fan_avg"):
        I.kaiming_uniform((4, 4), mode="fan_avg")
    with pytest.raises(ValueError, match="gain"):
        I.orthogonal((4, 4), gain=-1.0)
    with pytest.raises(ValueError, match="gain"):
        I.xavier_normal((4, 4), gain=0)
    with pytest.raises(ValueError, match="std"):
        I.normal((4, 4), -1.0)
    with pytest.raises(ValueError, match="a must"):
        I.uniform((4, 4), 0.0)
    with pytest.raises(ValueError, match="glorot"):
        I.mlp_weights("glorot", 4, 3)
    with pytest.raises(ValueError, match="depth"):
        I.mlp_weights("orthogonal", 4, 0)
    with pytest.raises(ValueError, match="scale"):
        I.mlp_weights("orthogonal", 4, 2, scale=-1.0)
    x = torch.randn(8, 4)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        I.signal_stats([torch.randn(4, 4), torch.randn(4, 5)], x, torch.relu)
    with pytest.raises(TypeError, match="weights"):
        I.lsuv(torch.randn(4, 4), x, torch.relu)
    with pytest.raises(TypeError, match="input"):
        I.signal_stats([torch.randn(4, 4)], x.numpy(), torch.relu)
    with pytest.raises(ValueError, match="max_iter"):
        I.lsuv([torch.randn(4, 4)], x, torch.relu, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        I.lsuv([torch.randn(4, 4)], x, torch.relu, tol=-1.0)
