"""Tests for dlbook.trust: captum and opacus as oracles, sampling checks, properties, errors."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from dlbook import metrics
from dlbook import trust as T

captum_attr = pytest.importorskip("captum.attr")
opacus = pytest.importorskip("opacus")

pytestmark = [  # known library warnings: captum sets requires_grad on our inputs itself; opacus'
    # hooks stay on a wrapped module and fire when its inputs need no grad
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp(d_in: int = 6, hidden: int = 8, d_out: int = 3, seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).to(dtype)


def relu_mlp(sizes=(4, 16, 16, 3), seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).double()


# -- gradient attributions against captum -----------------------------------------------------
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("target", [1, "tensor"])
def test_saliency_matches_captum(absolute, target):
    net, x = mlp(), torch.randn(5, 6, generator=gen(1), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1, 0]) if target == "tensor" else target
    ref = captum_attr.Saliency(net).attribute(x, target=t, abs=absolute)
    assert_close(T.saliency(net, x, t, absolute=absolute), ref)


def test_saliency_of_linear_model_is_weight():
    w = torch.randn(6, 1, generator=gen(2), dtype=torch.float64)
    x = torch.randn(4, 6, generator=gen(3), dtype=torch.float64)
    assert_close(T.saliency(lambda v: v @ w, x, 0, absolute=False), w.T.expand(4, 6))


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
                                    "riemann_middle"])
@pytest.mark.parametrize("baseline", [None, 0.3, "tensor"])
def test_integrated_gradients_matches_captum(method, baseline):
    net, x = mlp(), torch.randn(4, 6, generator=gen(4), dtype=torch.float64)
    b = torch.randn(4, 6, generator=gen(5), dtype=torch.float64) if baseline == "tensor" else baseline
    t = torch.tensor([2, 0, 1, 1])
    ref = captum_attr.IntegratedGradients(net).attribute(x, baselines=b, target=t, n_steps=37, method=method)
    assert_close(T.integrated_gradients(net, x, t, baselines=b, n_steps=37, method=method), ref)


def test_integrated_gradients_completeness_and_linear_exactness():
    net, x = mlp(seed=3), torch.randn(6, 6, generator=gen(6), dtype=torch.float64)
    ig = T.integrated_gradients(net, x, 1, n_steps=64)
    gap = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]
    assert_close(ig.sum(1), gap, atol=1e-8, rtol=1e-8)  # Gauss-Legendre on a smooth path
    w, b = torch.randn(6, generator=gen(7), dtype=torch.float64), torch.randn(6, generator=gen(8), dtype=torch.float64)
    linear = lambda v: (v @ w)[:, None]
    assert_close(T.integrated_gradients(linear, x, 0, baselines=b, n_steps=2), w * (x - b))


def test_smooth_grad_matches_captum_noise_tunnel():
    net, x = mlp(dtype=torch.float32), torch.randn(3, 6, generator=gen(9))
    t = torch.tensor([0, 2, 1])
    torch.manual_seed(11)
    ref = captum_attr.NoiseTunnel(captum_attr.Saliency(net)).attribute(
        x, nt_type="smoothgrad", nt_samples=7, stdevs=0.2, target=t)
    torch.manual_seed(11)
    ours = T.smooth_grad(net, x, t, nt_samples=7, stdevs=0.2)
    assert_close(ours, ref)


def test_smooth_grad_zero_noise_is_saliency_and_generator_reproducible():
    net, x = mlp(), torch.randn(3, 6, generator=gen(10), dtype=torch.float64)
    assert_close(T.smooth_grad(net, x, 1, nt_samples=4, stdevs=0.0), T.saliency(net, x, 1))
    a = T.smooth_grad(net, x, 1, nt_samples=4, stdevs=0.3, generator=gen(1))
    assert_close(a, T.smooth_grad(net, x, 1, nt_samples=4, stdevs=0.3, generator=gen(1)))


# -- perturbation attributions ---------------------------------------------------------------
@pytest.mark.parametrize("window,strides", [((1,), 1), ((2,), 1), ((3,), 2), ((4,), 3)])
def test_occlusion_matches_captum_1d(window, strides):
    net, x = mlp(d_in=7), torch.randn(3, 7, generator=gen(12), dtype=torch.float64)
    ref = captum_attr.Occlusion(net).attribute(x, target=1, sliding_window_shapes=window, strides=strides,
                                               baselines=0.5)
    ours = T.occlusion(net, x, 1, sliding_window_shapes=window, strides=strides, baselines=0.5)
    assert_close(ours, ref.to(ours.dtype), atol=1e-6, rtol=1e-6)  # captum divides in float32


@pytest.mark.parametrize("window,strides", [((2, 2), 1), ((3, 3), (2, 2)), ((1, 4), (1, 2))])
def test_occlusion_matches_captum_images(window, strides):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    x = torch.rand(2, 6, 6, generator=gen(13), dtype=torch.float64)
    t = torch.tensor([3, 0])
    ref = captum_attr.Occlusion(net).attribute(x, target=t, sliding_window_shapes=window, strides=strides)
    ours = T.occlusion(net, x, t, sliding_window_shapes=window, strides=strides)
    assert_close(ours, ref.to(ours.dtype), atol=1e-6, rtol=1e-6)


def test_shapley_values_match_captum_and_efficiency():
    net = mlp(d_in=5)
    x = torch.randn(3, 5, generator=gen(14), dtype=torch.float64)
    b = torch.randn(1, 5, generator=gen(15), dtype=torch.float64)
    ref = captum_attr.ShapleyValues(net).attribute(x, baselines=b, target=2)
    ours = T.shapley_values(net, x, 2, baselines=b)
    assert_close(ours, ref.to(ours.dtype), atol=1e-6, rtol=1e-6)
    assert_close(ours.sum(1), net(x)[:, 2] - net(b)[:, 2])
    rows = torch.tensor([0, 2, 1])
    ref_rows = captum_attr.ShapleyValues(net).attribute(x, baselines=b, target=rows)
    assert_close(T.shapley_values(net, x, rows, baselines=b), ref_rows.to(ours.dtype), atol=1e-6, rtol=1e-6)


def test_shapley_values_of_linear_model_with_background():
    w = torch.randn(6, generator=gen(16), dtype=torch.float64)
    f = lambda v: v @ w + 0.7
    x = torch.randn(4, 6, generator=gen(17), dtype=torch.float64)
    background = torch.randn(50, 6, generator=gen(18), dtype=torch.float64)
    phi = T.shapley_values(f, x, baselines=background)
    assert_close(phi, w * (x - background.mean(0)))


def test_deletion_curve_linear_model():
    w = torch.tensor([3.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    x = torch.ones(1, 4, dtype=torch.float64)
    curve = T.deletion_curve(lambda v: v @ w, x, None, torch.tensor([[0, 2, 3, 1]]))
    assert_close(curve, torch.tensor([[4.5, 1.5, -0.5, -1.0, 0.0]], dtype=torch.float64))


# -- C&W -------------------------------------------------------------------------------------
def test_carlini_wagner_flips_a_linear_classifier_with_near_minimal_l2():
    # two classes, z = (0, w.x + b): the minimal L2 flip of x is |w.x + b| / ||w|| along w
    w, b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    model = lambda v: torch.stack([torch.zeros(v.shape[0], dtype=v.dtype), v @ w + b], 1)
    x = torch.tensor([[0.5, 0.5, 0.5], [0.6, 0.3, 0.4]], dtype=torch.float64)
    y = model(x).argmax(1)
    x_adv = T.carlini_wagner_l2(model, x, y, c=5.0, steps=500, lr=0.01)
    assert (model(x_adv).argmax(1) != y).all()
    assert ((x_adv >= 0) & (x_adv <= 1)).all()
    minimal = (x @ w + b).abs() / w.norm()
    dist = (x_adv - x).norm(dim=1)
    assert (dist >= minimal - 1e-9).all() and (dist < 1.1 * minimal + 1e-3).all()


# -- DP-SGD against opacus -------------------------------------------------------------------
def _opacus_grads(net, x, y, *, max_grad_norm, noise_multiplier, seed=0):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    gsm = GradSampleModule(net)
    opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=0.1), noise_multiplier=noise_multiplier,
                      max_grad_norm=max_grad_norm, expected_batch_size=x.shape[0])
    opt.zero_grad()
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # opacus' backward hooks fire with inputs that need no grad
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        F.cross_entropy(gsm(x), y).backward()
    opt.pre_step()
    grads = {name.removeprefix("_module."): p.grad.clone() for name, p in gsm.named_parameters()}
    gsm._close()  # remove opacus' hooks from `net`, so that torch.func can run on it again
    return grads


@pytest.mark.parametrize("max_grad_norm", [0.05, 1.0, 100.0])
def test_dp_sgd_gradient_matches_opacus_without_noise(max_grad_norm):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    x, y = torch.randn(16, 6, generator=gen(20)), torch.randint(0, 3, (16,), generator=gen(21))
    ours, norms = T.dp_sgd_gradient(net, F.cross_entropy, x, y, max_grad_norm=max_grad_norm, noise_multiplier=0.0)
    ref = _opacus_grads(net, x, y, max_grad_norm=max_grad_norm, noise_multiplier=0.0)
    assert ours.keys() == ref.keys()
    for name in ours:
        assert_close(ours[name], ref[name], atol=1e-6, rtol=1e-5)
    if max_grad_norm == 100.0:  # nothing clipped: the plain mean gradient
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        for name, p in net.named_parameters():
            assert_close(ours[name], p.grad, atol=1e-6, rtol=1e-5)
    assert norms.shape == (16,)


def test_dp_sgd_noise_statistics_match_opacus():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
    x, y = torch.randn(8, 20, generator=gen(22)), torch.randint(0, 10, (8,), generator=gen(23))
    C, sigma, B = 0.5, 1.3, 8
    clean, _ = T.dp_sgd_gradient(net, F.cross_entropy, x, y, max_grad_norm=C, noise_multiplier=0.0)
    noisy, _ = T.dp_sgd_gradient(net, F.cross_entropy, x, y, max_grad_norm=C, noise_multiplier=sigma,
                                 generator=gen(24))
    ref = _opacus_grads(net, x, y, max_grad_norm=C, noise_multiplier=sigma, seed=25)
    ours_noise = torch.cat([(noisy[k] - clean[k]).flatten() for k in clean])
    ref_noise = torch.cat([(ref[k] - clean[k]).flatten() for k in clean])
    expected = sigma * C / B
    n = ours_noise.numel()  # 1,560 coordinates: the std is estimated to about 2%
    for noise in (ours_noise, ref_noise):
        assert abs(noise.std().item() / expected - 1) < 5 / math.sqrt(2 * n)
        assert abs(noise.mean().item()) < 5 * expected / math.sqrt(n)
    same_seed, _ = T.dp_sgd_gradient(net, F.cross_entropy, x, y, max_grad_norm=C, noise_multiplier=sigma,
                                     generator=gen(25))
    for k in ref:  # opacus draws parameter by parameter from the global generator: same seed, same noise
        assert_close(same_seed[k], ref[k], atol=1e-6, rtol=1e-5)


def test_per_sample_gradients_sum_to_batch_gradient_and_clipped_norms_bounded():
    net = mlp(d_in=5, d_out=4)
    x, y = torch.randn(12, 5, generator=gen(26), dtype=torch.float64), torch.randint(0, 4, (12,), generator=gen(27))
    g = T.per_sample_gradients(net, F.cross_entropy, x, y)
    F.cross_entropy(net(x), y, reduction="sum").backward()
    for name, p in net.named_parameters():
        assert_close(g[name].sum(0), p.grad)
    C = 0.1
    grads, norms = T.dp_sgd_gradient(net, F.cross_entropy, x, y, max_grad_norm=C, noise_multiplier=0.0,
                                     expected_batch_size=1)
    assert (norms > C).all()  # every example clipped, so the sum has norm <= B * C
    total = torch.cat([v.flatten() for v in grads.values()]).norm()
    assert total <= 12 * C + 1e-9


# -- membership, FedAvg, secret shares, backdoor ---------------------------------------------
def test_membership_scores_are_negative_losses_and_auc():
    net, x = mlp(), torch.randn(10, 6, generator=gen(28), dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=gen(29))
    s = T.membership_scores(net, x, y)
    assert_close(s, -F.cross_entropy(net(x), y, reduction="none").detach())
    assert metrics.roc_auc(np.r_[np.ones(5), np.zeros(5)], np.r_[np.zeros(5), -np.ones(5)]) == 1.0


def test_fed_avg_one_step_equals_centralized_step():
    net = mlp()
    x, y = torch.randn(30, 6, generator=gen(30), dtype=torch.float64), torch.randint(0, 3, (30,), generator=gen(31))
    lr, theta = 0.5, {k: v.detach() for k, v in net.named_parameters()}

    def step(xb, yb):
        grads = torch.func.grad(lambda p: F.cross_entropy(torch.func.functional_call(net, p, (xb,)), yb))(theta)
        return {k: theta[k] - lr * grads[k] for k in theta}

    clients = [step(x[i:i + 10], y[i:i + 10]) for i in (0, 10, 20)]
    avg, central = T.fed_avg(clients, [10, 10, 10]), step(x, y)
    for k in theta:
        assert_close(avg[k], central[k])


def test_additive_shares_sum_to_secret():
    secret = torch.randn(5, 4, generator=gen(32), dtype=torch.float64)
    shares = T.additive_shares(secret, 4, generator=gen(33))
    assert len(shares) == 4
    assert_close(sum(shares), secret, atol=1e-9, rtol=0)
    assert shares[0].std() > 100 * secret.std()  # one share alone says nothing about the secret


def test_add_trigger_and_poison():
    x = torch.zeros(3, 64)
    stamped = T.add_trigger(x, size=2, value=1.0).reshape(3, 8, 8)
    assert stamped.sum() == 12 and (stamped[:, 6:, 6:] == 1).all()
    X, y = torch.rand(100, 64, generator=gen(34)), torch.randint(0, 10, (100,), generator=gen(35))
    Xp, yp, idx = T.poison(X, y, fraction=0.05, target_class=0, generator=gen(36))
    assert len(idx) == 5 and (yp[idx] == 0).all() and (Xp.reshape(100, 8, 8)[idx, 6:, 6:] == 1).all()
    rest = torch.ones(100, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(Xp[rest], X[rest]) and torch.equal(yp[rest], y[rest])


# -- interval bound propagation ---------------------------------------------------------------
@pytest.mark.parametrize("sizes", [(4, 3), (4, 16, 3), (4, 16, 16, 16, 3)])
def test_interval_bounds_contain_sampled_outputs(sizes):
    net = relu_mlp(sizes)
    x = torch.rand(1, 4, generator=gen(37), dtype=torch.float64)
    lo, hi = T.interval_bounds(net, x - 0.1, x + 0.1)
    samples = x + 0.1 * (2 * torch.rand(10_000, 4, generator=gen(38), dtype=torch.float64) - 1)
    corners = x + 0.1 * torch.tensor(list(np.ndindex(*(2,) * 4)), dtype=torch.float64) * 2 - 0.1
    with torch.no_grad():
        out = net(torch.cat([samples, corners]))
    assert (out >= lo - 1e-12).all() and (out <= hi + 1e-12).all()
    if len(sizes) == 2:  # one linear layer: the box is attained at the corners, so IBP is exact
        assert_close(out.min(0).values, lo[0])
        assert_close(out.max(0).values, hi[0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), eps=st.floats(0.0, 0.5))
def test_interval_bounds_property_sound(seed, eps):
    net = relu_mlp((3, 8, 8, 2), seed=seed % 1000)
    x = torch.randn(2, 3, generator=gen(seed), dtype=torch.float64)
    lo, hi = T.interval_bounds(net, x - eps, x + eps)
    pts = x[:, None] + eps * (2 * torch.rand(2, 200, 3, generator=gen(seed + 1), dtype=torch.float64) - 1)
    with torch.no_grad():
        out = net(pts)
    assert (lo[:, None] <= out + 1e-9).all() and (out <= hi[:, None] + 1e-9).all()
    assert (lo <= hi).all()


def test_certified_margin_is_sound_and_zero_eps_is_exact_margin():
    net = relu_mlp((4, 16, 3), seed=1)
    x = torch.rand(6, 4, generator=gen(39), dtype=torch.float64)
    y = net(x).argmax(1)
    with torch.no_grad():
        z = net(x)
    true_margin = (z.gather(1, y[:, None])[:, 0] - z.masked_fill(F.one_hot(y, 3).bool(), -math.inf).amax(1))
    assert_close(T.certified_margin(net, x, y, eps=0.0, clamp=None), true_margin)
    eps = 0.05
    m = T.certified_margin(net, x, y, eps=eps, clamp=None)
    pts = x[:, None] + eps * (2 * torch.rand(6, 2000, 4, generator=gen(40), dtype=torch.float64) - 1)
    with torch.no_grad():
        zp = net(pts)
    sampled = zp.gather(2, y[:, None, None].expand(6, 2000, 1))[..., 0] - \
        zp.masked_fill(F.one_hot(y, 3).bool()[:, None, :], -math.inf).amax(2)
    assert (m[:, None] <= sampled + 1e-9).all()
    lo, hi = T.interval_bounds(net, x - eps, x + eps)  # folding the spec is at least as tight
    naive = (lo.gather(1, y[:, None])[:, 0] - hi.masked_fill(F.one_hot(y, 3).bool(), -math.inf).amax(1))
    assert (m >= naive - 1e-12).all()


# -- errors ----------------------------------------------------------------------------------
def test_errors():
    net, x = mlp(), torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_steps"):
        T.integrated_gradients(net, x, 0, n_steps=1)
    with pytest.raises(ValueError, match="method"):
        T.integrated_gradients(net, x, 0, method="simpson")
    with pytest.raises(ValueError, match="target=None"):
        T.saliency(net, x)
    with pytest.raises(ValueError, match="nt_samples"):
        T.smooth_grad(net, x, 0, nt_samples=0)
    with pytest.raises(ValueError, match="stdevs"):
        T.smooth_grad(net, x, 0, stdevs=-1.0)
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        T.occlusion(net, x, 0, sliding_window_shapes=(7,))
    with pytest.raises(ValueError, match="d <= 16"):
        T.shapley_values(net, torch.zeros(1, 17), 0, baselines=torch.zeros(17))
    with pytest.raises(ValueError, match="order"):
        T.deletion_curve(net, x, 0, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_grad_norm"):
        T.dp_sgd_gradient(net, F.cross_entropy, x, torch.zeros(2, dtype=torch.long), max_grad_norm=0.0,
                          noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        T.dp_sgd_gradient(net, F.cross_entropy, x, torch.zeros(2, dtype=torch.long), max_grad_norm=1.0,
                          noise_multiplier=-1.0)
    with pytest.raises(ValueError, match="weight"):
        T.fed_avg([{}], [0])
    with pytest.raises(ValueError, match="n must be"):
        T.additive_shares(x, 1)
    with pytest.raises(ValueError, match="size"):
        T.add_trigger(torch.zeros(2, 64), size=9)
    with pytest.raises(ValueError, match="fraction"):
        T.poison(torch.zeros(2, 64), torch.zeros(2), fraction=1.5, target_class=0)
    with pytest.raises(TypeError, match="Tanh"):
        T.interval_bounds(net, x, x)
    with pytest.raises(ValueError, match="lower <= upper"):
        T.interval_bounds(relu_mlp(), torch.ones(1, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="eps"):
        T.certified_margin(relu_mlp(), torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), eps=-0.1)
    with pytest.raises(ValueError, match="steps"):
        T.carlini_wagner_l2(net, x, torch.zeros(2, dtype=torch.long), steps=0)
