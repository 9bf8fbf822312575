"""Tests for dlbook.generative: torch / torch.distributions / scipy as oracles, float64
gradcheck, Hypothesis properties of the decoding filters and the coupling layer, error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal, kl_divergence

from dlbook import generative as G


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


logit_vectors = st.lists(st.floats(-8, 8, allow_nan=False, width=32), min_size=2, max_size=12).map(
    lambda v: torch.tensor(v, dtype=torch.float64))


# ----------------------------------------------------------------------------- VAE
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 7), (1,)])
def test_gaussian_kl_matches_torch_distributions(shape):
    mu, logvar = _randn(*shape, seed=1), _randn(*shape, seed=2)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(G.gaussian_kl(mu, logvar), kl_divergence(q, p))


def test_gaussian_kl_gradcheck_and_zero_at_prior():
    mu, logvar = _randn(4, 3, seed=3).requires_grad_(), _randn(4, 3, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(G.gaussian_kl, (mu, logvar))
    assert torch.equal(G.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_reparameterize_moments_and_gradient():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([2.0, -1.0], dtype=torch.float64).expand(200_000, 2).clone().requires_grad_()
    logvar = torch.log(torch.tensor([0.25, 4.0], dtype=torch.float64)).expand(200_000, 2).clone()
    z = G.reparameterize(mu, logvar, generator=g)
    torch.testing.assert_close(z.mean(0), torch.tensor([2.0, -1.0], dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([0.25, 4.0], dtype=torch.float64), atol=0, rtol=0.02)
    (grad,) = torch.autograd.grad(z.sum(), mu)
    assert torch.equal(grad, torch.ones_like(grad))  # dz/dmu = 1


def test_bernoulli_log_likelihood_and_elbo():
    logits, x = _randn(3, 5, seed=5), torch.rand(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)
    torch.testing.assert_close(G.bernoulli_log_likelihood(logits, x), expected)
    xb = (x > 0.5).double()
    bern = torch.distributions.Bernoulli(logits=logits).log_prob(xb).sum(-1)
    torch.testing.assert_close(G.bernoulli_log_likelihood(logits, xb), bern)
    mu, logvar = _randn(3, 2, seed=6), _randn(3, 2, seed=7)
    torch.testing.assert_close(G.elbo(bern, mu, logvar), bern - G.gaussian_kl(mu, logvar))


# ----------------------------------------------------------------------------- GAN
def test_gan_losses_match_formulas():
    real, fake = _randn(16, seed=8).requires_grad_(), _randn(16, seed=9).requires_grad_()
    d = torch.sigmoid
    torch.testing.assert_close(G.gan_discriminator_loss(real, fake),
                               -(torch.log(d(real)).mean() + torch.log(1 - d(fake)).mean()))
    torch.testing.assert_close(G.gan_generator_loss(fake, saturating=True), torch.log(1 - d(fake)).mean())
    torch.testing.assert_close(G.gan_generator_loss(fake), -torch.log(d(fake)).mean())
    assert torch.autograd.gradcheck(lambda a: G.gan_generator_loss(a), (fake,))
    assert torch.autograd.gradcheck(lambda a, b: G.gan_discriminator_loss(a, b), (real, fake))


def test_generator_gradients_saturate_or_not():
    a = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    (g_sat,) = torch.autograd.grad(G.gan_generator_loss(a, saturating=True), a)
    (g_ns,) = torch.autograd.grad(G.gan_generator_loss(a), a)
    assert abs(g_sat.item()) < 1e-4 and abs(g_ns.item() + 1) < 1e-4


def test_gradient_penalty_zero_for_unit_linear_critic_positive_otherwise():
    real, fake = _randn(32, 2, seed=10), _randn(32, 2, seed=11)
    w = torch.tensor([0.6, 0.8], dtype=torch.float64)
    assert G.gradient_penalty(lambda x: x @ w, real, fake).item() < 1e-20
    assert G.gradient_penalty(lambda x: x @ (2 * w), real, fake).item() == pytest.approx(1.0)
    # the penalty is differentiable in the critic's parameters (create_graph=True)
    v = (2 * w).clone().requires_grad_()
    (gv,) = torch.autograd.grad(G.gradient_penalty(lambda x: (x @ v) ** 2 / 2, real, fake), v)
    assert gv.abs().sum() > 0
    assert G.wgan_critic_loss(torch.ones(3), torch.zeros(3)).item() == -1.0


def test_modes_covered_and_energy_distance():
    centers = torch.tensor([[math.cos(a), math.sin(a)] for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]) * 2
    samples = centers.repeat(10, 1) + 0.01 * _randn(80, 2, seed=12, dtype=torch.float32)
    assert G.modes_covered(samples, centers, radius=0.5) == 8
    assert G.modes_covered(samples[:10:8], centers, radius=0.5) == 1  # only rows of mode 0
    x, y = _randn(300, 1, seed=13), _randn(200, 1, seed=14) + 0.5
    ours = G.energy_distance(x, y).item()
    assert ours == pytest.approx(scipy.stats.energy_distance(x[:, 0], y[:, 0]) ** 2, rel=1e-9)


def test_adaptive_instance_norm_takes_style_statistics():
    x = _randn(2, 3, 5, 5, seed=15)
    mean, std = _randn(2, 3, seed=16), _randn(2, 3, seed=17).abs() + 0.5
    out = G.adaptive_instance_norm(x, mean, std)
    torch.testing.assert_close(out.mean((2, 3)), mean)
    torch.testing.assert_close(out.std((2, 3), unbiased=False), std, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- diffusion
def test_schedule_and_closed_form_match_iterated_chain_in_distribution():
    betas = G.linear_beta_schedule(1000)
    ab = (1 - betas).cumprod(0)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert ab[-1] < 1e-3
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(20_000, dtype=torch.float64, generator=g) * 2 - 1
    x = x0.clone()
    for t in range(100):
        x = G.q_step(x, betas[t], torch.randn(x.shape, generator=g, dtype=x.dtype))
    closed = G.q_sample(x0, torch.full((20_000,), 99), ab, torch.randn(x.shape, generator=g, dtype=x.dtype))
    assert abs(x.mean() - closed.mean()) < 0.03 and abs(x.var() / closed.var() - 1) < 0.05


def test_q_sample_is_the_formula():
    ab = (1 - G.linear_beta_schedule(10)).cumprod(0)
    x0, eps, t = _randn(4, 3, seed=18), _randn(4, 3, seed=19), torch.tensor([0, 3, 9, 5])
    expected = ab[t].sqrt()[:, None] * x0 + (1 - ab[t]).sqrt()[:, None] * eps
    torch.testing.assert_close(G.q_sample(x0, t, ab, eps), expected)


def _gaussian_eps(mean, std, ab):
    """The exact E[eps | x_t] for 1-D data N(mean, std^2)."""
    def eps_model(x, t):
        a = ab[t].reshape(-1, 1)
        var = a * std**2 + 1 - a
        return (1 - a).sqrt() * (x - a.sqrt() * mean) / var
    return eps_model


def test_ddpm_and_ddim_with_exact_denoiser_recover_the_data():
    betas = G.linear_beta_schedule(1000)
    ab = (1 - betas).cumprod(0)
    eps_model = _gaussian_eps(2.0, 0.5, ab)
    x_T = _randn(20_000, 1, seed=20)
    for x in (G.ddpm_sample(eps_model, x_T, betas, generator=torch.Generator().manual_seed(1)),
              G.ddim_sample(eps_model, x_T, ab, steps=100)):
        assert abs(x.mean().item() - 2.0) < 0.03 and abs(x.std().item() / 0.5 - 1) < 0.03
    a = G.ddim_sample(eps_model, x_T[:5], ab, steps=20)
    assert torch.equal(a, G.ddim_sample(eps_model, x_T[:5], ab, steps=20))  # deterministic at eta=0


def test_noise_prediction_loss_is_one_for_zero_predictor():
    ab = (1 - G.linear_beta_schedule(50)).cumprod(0)
    loss = G.noise_prediction_loss(lambda x, t: torch.zeros_like(x), _randn(50_000, 1, seed=21), ab,
                                   generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(1.0, abs=0.02)


def test_classifier_free_guidance():
    c, u = _randn(5, seed=22), _randn(5, seed=23)
    torch.testing.assert_close(G.classifier_free_guidance(c, u, 0.0), c)
    torch.testing.assert_close(G.classifier_free_guidance(c, u, 2.0), c + 2 * (c - u))


# ----------------------------------------------------------------------------- flows
def test_coupling_layer_logdet_matches_autograd_jacobian():
    torch.manual_seed(0)
    layer = G.AffineCoupling(torch.tensor([1.0, 0.0, 1.0, 0.0])).double()
    x = _randn(3, 4, seed=24)
    _, logdet = layer(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac).logabsdet)
        assert jac[0, 1] == 0 and jac[0, 3] == 0 and jac[2, 1] == 0  # passed-through coords ignore the rest


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_coupling_layer_inverts_exactly(seed, d):
    torch.manual_seed(seed)
    mask = (torch.arange(d) % 2).double()
    layer = G.AffineCoupling(mask, hidden=16).double()
    x = 3 * _randn(8, d, seed=seed)
    y, _ = layer(x)
    torch.testing.assert_close(layer.inverse(y), x, atol=1e-12, rtol=1e-12)


def test_flow_log_prob_matches_transformed_distribution_and_normalizes():
    torch.manual_seed(1)
    layers = [G.AffineCoupling(torch.tensor([1.0, 0.0]), hidden=8).double(),
              G.AffineCoupling(torch.tensor([0.0, 1.0]), hidden=8).double()]
    z = _randn(5, 2, seed=25)
    x = G.flow_sample(layers, z)
    base = Independent(Normal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)), 1)
    ld = sum(layer(v)[1] for layer, v in zip(layers, [x, layers[0](x)[0]]))
    torch.testing.assert_close(G.flow_log_prob(layers, x), base.log_prob(z) + ld)
    h = 0.05
    grid = torch.arange(-8 + h / 2, 8, h, dtype=torch.float64)
    xy = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = G.flow_log_prob(layers, xy).exp().sum().item() * h * h
    assert mass == pytest.approx(1.0, abs=5e-3)


# ----------------------------------------------------------------------------- autoregressive
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_sees_only_the_past(mask_type):
    torch.manual_seed(0)
    conv = G.MaskedConv2d(1, 2, 5, mask_type=mask_type).double()
    x = _randn(1, 1, 6, 6, seed=26).requires_grad_()
    i, j = 3, 2
    (grad,) = torch.autograd.grad(conv(x)[0, :, i, j].sum(), x)
    order = torch.arange(36).reshape(6, 6)
    future = order > i * 6 + j
    assert grad[0, 0][future].abs().max() == 0
    assert (grad[0, 0, i, j] == 0) == (mask_type == "A")


def test_causal_conv1d_matches_conv1d_and_receptive_field():
    x, w = _randn(2, 3, 20, seed=27), _randn(4, 3, 2, seed=28)
    full = F.conv1d(F.pad(x, (4, 0)), w, dilation=4)
    torch.testing.assert_close(G.causal_conv1d(x, w, dilation=4), full)
    assert G.receptive_field(2, [2**i for i in range(10)]) == 1024
    xs = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(G.causal_conv1d(xs, w, dilation=3)[..., 10].sum(), xs)
    assert g[..., 11:].abs().max() == 0 and g[..., 7].abs().max() > 0


def test_char_mlp_shapes():
    model = G.CharMLP(30, context=4)
    assert model(torch.zeros(5, 4, dtype=torch.long)).shape == (5, 30)


# ----------------------------------------------------------------------------- decoding
@settings(max_examples=200, deadline=None)
@given(logit_vectors, st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(z, p):
    probs = torch.softmax(z, -1)
    kept = torch.isfinite(G.top_p_filter(z, p))
    assert probs[kept].sum() >= p - 1e-12
    n = int(kept.sum())
    top = probs.sort(descending=True).values
    assert n == 1 or top[: n - 1].sum() < p  # one fewer token would not reach p
    assert probs[kept].min() >= probs[~kept].max() if (~kept).any() else True  # the most likely ones


@settings(max_examples=100, deadline=None)
@given(logit_vectors, st.integers(1, 12))
def test_top_k_and_decode_distribution(z, k):
    kept = torch.isfinite(G.top_k_filter(z, k))
    assert int(kept.sum()) >= min(k, len(z))
    probs = G.decode_distribution(z, top_k=k, top_p=0.9)
    assert abs(probs.sum().item() - 1) < 1e-9
    assert (probs[~kept] == 0).all()


@settings(max_examples=100, deadline=None)
@given(logit_vectors)
def test_temperature_to_zero_equals_greedy(z):
    top2 = z.sort(descending=True).values[:2]
    if top2[0] - top2[1] < 1e-3:  # a near-tie has no unique greedy token
        return
    probs = G.temperature_softmax(z, 1e-5)
    assert probs.argmax() == G.greedy(z) and probs.max() > 1 - 1e-12
    assert G.sample_next(z, temperature=1e-5, generator=torch.Generator().manual_seed(0)) == G.greedy(z)
    assert G.sample_next(z, temperature=0.0) == G.greedy(z)


def test_entropy_matches_torch_categorical_and_rises_with_temperature():
    z = _randn(7, seed=29)
    temps = [0.1, 0.5, 1.0, 2.0, 10.0]
    h = [G.entropy(G.temperature_softmax(z, t)).item() for t in temps]
    assert h == sorted(h)
    p = G.temperature_softmax(z, 1.0)
    assert G.entropy(p).item() == pytest.approx(torch.distributions.Categorical(probs=p).entropy().item())


def test_sampled_tokens_follow_the_truncated_distribution():
    z = _randn(6, seed=30)
    probs = G.decode_distribution(z, top_k=4)
    g = torch.Generator().manual_seed(0)
    draws = G.sample_next(z.expand(20_000, 6), top_k=4, generator=g)
    counts = torch.bincount(draws, minlength=6).double()
    assert (counts[probs == 0] == 0).all()
    keep = probs > 0
    _, pval = scipy.stats.chisquare(counts[keep].numpy(), 20_000 * probs[keep].numpy())
    assert pval > 1e-3


def test_train_steps_reduces_a_quadratic():
    w = torch.tensor([3.0], requires_grad=True)
    losses = G.train_steps(lambda: (w**2).sum(), [w], steps=200, lr=0.1)
    assert losses[-1] < 1e-3 * losses[0]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: G.gaussian_kl(torch.zeros(2), torch.zeros(3)), "same shape"),
    (lambda: G.gaussian_kl([0.0], torch.zeros(1)), "mu must be a torch.Tensor"),
    (lambda: G.gan_generator_loss(torch.zeros(2), saturating="yes"), "saturating"),
    (lambda: G.gradient_penalty(lambda x: x.sum(1), torch.zeros(2, 2), torch.zeros(3, 2)), "same shape"),
    (lambda: G.modes_covered(torch.zeros(2, 2), torch.zeros(1, 2), radius=0), "radius"),
    (lambda: G.linear_beta_schedule(0), "num_steps"),
    (lambda: G.linear_beta_schedule(10, beta_start=0.1, beta_end=0.01), "beta_start"),
    (lambda: G.q_sample(torch.zeros(2), torch.tensor([0, 10]), torch.full((10,), 0.5), torch.zeros(2)), "t must"),
    (lambda: G.q_step(torch.zeros(2), 1.5, torch.zeros(2)), "beta"),
    (lambda: G.ddim_sample(lambda x, t: x, torch.zeros(2, 1), torch.full((10,), 0.5), steps=11), "steps"),
    (lambda: G.classifier_free_guidance(torch.zeros(2), torch.zeros(2), -1.0), "guidance_scale"),
    (lambda: G.AffineCoupling(torch.tensor([0.5, 1.0])), "mask"),
    (lambda: G.MaskedConv2d(1, 1, 3, mask_type="C"), "mask_type"),
    (lambda: G.MaskedConv2d(1, 1, 4, mask_type="A"), "kernel_size"),
    (lambda: G.causal_conv1d(torch.zeros(1, 1, 4), torch.zeros(1, 1, 2), dilation=0), "dilation"),
    (lambda: G.receptive_field(2, [1, 0]), "dilations"),
    (lambda: G.temperature_softmax(torch.zeros(3), 0.0), "temperature"),
    (lambda: G.sample_next(torch.zeros(3), temperature=-1.0), "temperature"),
    (lambda: G.top_k_filter(torch.zeros(3), 0), "k must"),
    (lambda: G.top_p_filter(torch.zeros(3), 1.5), "p must"),
    (lambda: G.top_p_filter(torch.zeros(0), 0.5), "non-empty"),
    (lambda: G.train_steps(lambda: torch.zeros(()), [], steps=0), "steps"),
])
def test_bad_input_is_rejected(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
