"""Generative models: the math pieces of the chapter "Generative models", small and readable.

Each function is the formula one section of ``chapters/generative`` proves by running it:

- VAE (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"): :func:`gaussian_kl`,
  :func:`reparameterize`, :func:`bernoulli_log_likelihood`, :func:`elbo`;
- GAN (Goodfellow et al. 2014; Gulrajani et al. 2017, WGAN-GP): :func:`gan_discriminator_loss`,
  :func:`gan_generator_loss`, :func:`wgan_critic_loss`, :func:`gradient_penalty`,
  :func:`modes_covered`, :func:`energy_distance`, :func:`adaptive_instance_norm`;
- diffusion (Ho et al. 2020, DDPM; Song et al. 2021, DDIM; Ho & Salimans 2022, classifier-free
  guidance): :func:`linear_beta_schedule`, :func:`q_sample`, :func:`q_step`,
  :func:`noise_prediction_loss`, :func:`ddpm_sample`, :func:`ddim_sample`,
  :func:`classifier_free_guidance`;
- flows (Dinh et al. 2017, RealNVP): :class:`AffineCoupling`, :func:`flow_log_prob`,
  :func:`flow_sample`;
- autoregressive models (van den Oord et al. 2016, PixelCNN and WaveNet): :class:`MaskedConv2d`,
  :func:`causal_conv1d`, :func:`receptive_field`, :class:`CharMLP`;
- decoding on logits (Holtzman et al. 2020 for top-p): :func:`greedy`,
  :func:`temperature_softmax`, :func:`top_k_filter`, :func:`top_p_filter`,
  :func:`decode_distribution`, :func:`sample_next`, :func:`entropy`;
- :func:`train_steps`, the one small full-batch loop the chapter's notebooks share.

Conventions: diffusion time is an index ``t = 0, ..., T-1`` into the schedule (the paper's step
``t + 1``); ``alphas_cumprod[t]`` is the paper's :math:`\\bar\\alpha_{t+1}`. Log-variances, not
variances, are passed around for Gaussians, as in the VAE paper's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "gaussian_kl", "reparameterize", "bernoulli_log_likelihood", "elbo",
    "gan_discriminator_loss", "gan_generator_loss", "wgan_critic_loss", "gradient_penalty",
    "modes_covered", "energy_distance", "adaptive_instance_norm",
    "linear_beta_schedule", "q_sample", "q_step", "noise_prediction_loss", "ddpm_sample",
    "ddim_sample", "classifier_free_guidance",
    "AffineCoupling", "flow_log_prob", "flow_sample",
    "MaskedConv2d", "causal_conv1d", "receptive_field", "CharMLP",
    "greedy", "temperature_softmax", "top_k_filter", "top_p_filter", "decode_distribution",
    "sample_next", "entropy", "train_steps",
]


def _check_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


# ----------------------------------------------------------------------------- VAE
def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last dimension.

    .. math:: \mathrm{KL} = \tfrac12 \sum_j \big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)

    Kingma & Welling (2014), Appendix B. Section: ``q-generative.vae-elbo``.
    """
    _check_tensor("mu", mu)
    _check_tensor("logvar", logvar)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    var = logvar.exp()                                   # sigma^2
    return 0.5 * (mu**2 + var - logvar - 1).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    r"""A sample z = mu + sigma * eps, eps ~ N(0, I): differentiable in mu and logvar.

    Kingma & Welling (2014), Section 2.4. Section: ``q-generative.vae-reparameterization``.
    """
    _check_tensor("mu", mu)
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    sigma = (0.5 * logvar).exp()
    return mu + sigma * eps


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    r"""log p(x | z) for independent Bernoulli pixels with the given logits, summed over the last dim.

    .. math:: \sum_j x_j \log\sigma(\ell_j) + (1 - x_j)\log(1 - \sigma(\ell_j)),

    valid for x in [0, 1] (the "continuous Bernoulli" normalizer is left out, as in most VAEs).
    """
    _check_tensor("logits", logits)
    if logits.shape != x.shape:
        raise ValueError(f"logits and x must have the same shape, got {tuple(logits.shape)} and {tuple(x.shape)}")
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def elbo(log_px_given_z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    r"""The evidence lower bound per example: E_q[log p(x|z)] - KL(q(z|x) || N(0, I)).

    ``log_px_given_z`` is a (one-sample or averaged) estimate of the reconstruction term.
    :math:`\log p(x) = \mathrm{ELBO} + \mathrm{KL}(q(z|x)\,\|\,p(z|x)) \ge \mathrm{ELBO}`.
    """
    return log_px_given_z - gaussian_kl(mu, logvar)


# ----------------------------------------------------------------------------- GAN
def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Mean of -log D(x) - log(1 - D(G(z))) with D = sigmoid(logit) (Goodfellow et al. 2014, Eq. 1)."""
    _check_tensor("real_logits", real_logits)
    _check_tensor("fake_logits", fake_logits)
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def gan_generator_loss(fake_logits: Tensor, *, saturating: bool = False) -> Tensor:
    r"""The generator's loss on discriminator logits a = logit D(G(z)), averaged.

    ``saturating=True``: the minimax loss :math:`\log(1 - \sigma(a)) = -\mathrm{softplus}(a)`,
    whose gradient vanishes as :math:`a \to -\infty`. ``saturating=False`` (default): the
    non-saturating :math:`-\log\sigma(a) = \mathrm{softplus}(-a)` (Goodfellow et al. 2014, Sec. 3).
    """
    _check_tensor("fake_logits", fake_logits)
    if not isinstance(saturating, bool):
        raise TypeError(f"saturating must be a bool, got {type(saturating).__name__}")
    if saturating:
        return -F.softplus(fake_logits).mean()           # log(1 - sigmoid(a))
    return F.softplus(-fake_logits).mean()               # -log sigmoid(a)


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    r"""The critic's loss E[f(G(z))] - E[f(x)] (Arjovsky et al. 2017, Eq. 3, negated to minimize)."""
    _check_tensor("real_scores", real_scores)
    _check_tensor("fake_scores", fake_scores)
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *,
                     generator: torch.Generator | None = None) -> Tensor:
    r"""WGAN-GP penalty :math:`\mathbb E_{\hat x}[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2]`.

    :math:`\hat x = u x + (1 - u)\tilde x`, u ~ U[0, 1] per example (Gulrajani et al. 2017, Alg. 1).
    Built with ``create_graph=True`` so the penalty can be back-propagated into the critic.
    """
    _check_tensor("real", real)
    _check_tensor("fake", fake)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    u = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, dtype=real.dtype)
    x_hat = (u * real + (1 - u) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)                   # ||grad f(x_hat)||, shape (B,)
    return ((norm - 1) ** 2).mean()


def modes_covered(samples: Tensor, centers: Tensor, *, radius: float, min_count: int = 1) -> int:
    """How many ``centers`` have at least ``min_count`` samples within ``radius`` (a mode-coverage count)."""
    _check_tensor("samples", samples)
    _check_tensor("centers", centers)
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    dist = torch.cdist(samples.double(), centers.double())   # (N, K)
    hits = (dist < radius).sum(0)                            # samples near each center, (K,)
    return int((hits >= min_count).sum())


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    r"""The (squared) energy distance :math:`2\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|`.

    V-statistic (pairs with themselves included), zero iff the two samples coincide as
    distributions; scipy's ``energy_distance`` is the square root of this in 1-D (Szekely & Rizzo 2013).
    """
    _check_tensor("x", x)
    _check_tensor("y", y)
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).mean()
    yy = torch.cdist(y, y).mean()
    return 2 * xy - xx - yy


def adaptive_instance_norm(x: Tensor, style_mean: Tensor, style_std: Tensor, *, eps: float = 1e-5) -> Tensor:
    r"""AdaIN (Huang & Belongie 2017): :math:`\sigma(y)\,\frac{x - \mu(x)}{\sqrt{\mathrm{Var}(x) + \epsilon}} + \mu(y)`.

    ``x`` is (N, C, H, W); statistics per example and channel, biased variance, eps inside the sqrt
    (as ``F.instance_norm``); ``style_mean``/``style_std`` are (N, C).
    """
    _check_tensor("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if style_mean.shape != x.shape[:2] or style_std.shape != x.shape[:2]:
        raise ValueError(f"style_mean and style_std must be {tuple(x.shape[:2])}, got {tuple(style_mean.shape)}")
    normed = F.instance_norm(x, eps=eps)
    return normed * style_std[:, :, None, None] + style_mean[:, :, None, None]


# ----------------------------------------------------------------------------- diffusion
def linear_beta_schedule(num_steps: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02,
                         dtype: torch.dtype = torch.float64) -> Tensor:
    r"""DDPM's linear variance schedule :math:`\beta_1..\beta_T` (Ho et al. 2020, Sec. 4)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int):
        raise TypeError(f"num_steps must be an int, got {type(num_steps).__name__}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}")
    return torch.linspace(beta_start, beta_end, num_steps, dtype=dtype)


def _check_alphas_cumprod(alphas_cumprod: Tensor) -> None:
    _check_tensor("alphas_cumprod", alphas_cumprod)
    if alphas_cumprod.dim() != 1 or not ((alphas_cumprod > 0) & (alphas_cumprod <= 1)).all():
        raise ValueError("alphas_cumprod must be a 1-D tensor with values in (0, 1]")


def _per_example(t: Tensor, values: Tensor, like: Tensor) -> Tensor:
    """values[t] shaped to broadcast against ``like`` (B, ...)."""
    return values[t].to(like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))


def q_sample(x0: Tensor, t: Tensor, alphas_cumprod: Tensor, noise: Tensor) -> Tensor:
    r"""The closed form :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon`.

    ``t`` is a (B,) long tensor of schedule indices. Ho et al. (2020), Eq. 4.
    Section: ``q-generative.diffusion-forward-process``.
    """
    _check_alphas_cumprod(alphas_cumprod)
    if x0.shape != noise.shape:
        raise ValueError(f"x0 and noise must have the same shape, got {tuple(x0.shape)} and {tuple(noise.shape)}")
    if t.dtype not in (torch.int32, torch.int64) or ((t < 0) | (t >= len(alphas_cumprod))).any():
        raise ValueError(f"t must hold integer indices in [0, {len(alphas_cumprod)}), got {t}")
    ab = _per_example(t, alphas_cumprod, x0)             # alpha_bar_t, (B, 1, ...)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def q_step(x_prev: Tensor, beta: float | Tensor, noise: Tensor) -> Tensor:
    r"""One forward Markov step :math:`x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon`."""
    beta = torch.as_tensor(beta, dtype=x_prev.dtype)
    if not 0 < float(beta) < 1:
        raise ValueError(f"beta must be in (0, 1), got {float(beta)}")
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise


def noise_prediction_loss(eps_model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, alphas_cumprod: Tensor, *,
                          generator: torch.Generator | None = None) -> Tensor:
    r""":math:`\mathbb E_{t, \epsilon}\|\epsilon - \epsilon_\theta(x_t, t)\|^2` (mean over all elements).

    t uniform over the schedule, :math:`x_t` from :func:`q_sample`; Ho et al. (2020), Eq. 14 ("L_simple").
    ``eps_model(x_t, t)`` takes the (B,) index tensor t.
    """
    _check_alphas_cumprod(alphas_cumprod)
    t = torch.randint(0, len(alphas_cumprod), (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x_t = q_sample(x0, t, alphas_cumprod, eps)
    return ((eps - eps_model(x_t, t)) ** 2).mean()


def ddpm_sample(eps_model: Callable[[Tensor, Tensor], Tensor], x_T: Tensor, betas: Tensor, *,
                generator: torch.Generator | None = None) -> Tensor:
    r"""Ancestral sampling (Ho et al. 2020, Algorithm 2) with :math:`\sigma_t^2 = \beta_t`.

    .. math:: x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
              \epsilon_\theta(x_t, t)\Big) + \sigma_t z,\quad z = 0 \text{ at the last step.}

    One ``eps_model`` call per step: ``len(betas)`` network evaluations per sample.
    """
    _check_tensor("betas", betas)
    alphas = 1 - betas
    alphas_cumprod = alphas.cumprod(0)
    x = x_T
    for t in range(len(betas) - 1, -1, -1):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        eps = eps_model(x, tt)
        mean = (x - betas[t] / (1 - alphas_cumprod[t]).sqrt() * eps) / alphas[t].sqrt()
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if t > 0 else torch.zeros_like(x)
        x = mean + betas[t].sqrt() * z
    return x


def ddim_sample(eps_model: Callable[[Tensor, Tensor], Tensor], x_T: Tensor, alphas_cumprod: Tensor, *,
                steps: int, eta: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    r"""DDIM (Song et al. 2021, Eq. 12) on ``steps`` evenly spaced indices; ``eta = 0`` is deterministic.

    .. math:: \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta}{\sqrt{\bar\alpha_t}},\quad
              x_{s} = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\epsilon_\theta + \sigma z

    with :math:`\sigma = \eta\sqrt{(1-\bar\alpha_s)/(1-\bar\alpha_t)}\sqrt{1 - \bar\alpha_t/\bar\alpha_s}`
    and :math:`\bar\alpha_s = 1` after the last step.
    """
    _check_alphas_cumprod(alphas_cumprod)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= len(alphas_cumprod):
        raise ValueError(f"steps must be an int in [1, {len(alphas_cumprod)}], got {steps}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    times = torch.linspace(len(alphas_cumprod) - 1, 0, steps).round().long().tolist()
    x = x_T
    for i, t in enumerate(times):
        ab_t = alphas_cumprod[t]
        ab_s = alphas_cumprod[times[i + 1]] if i + 1 < len(times) else torch.ones((), dtype=ab_t.dtype)
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0_hat = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).sqrt()
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if eta > 0 else 0.0
        x = ab_s.sqrt() * x0_hat + (1 - ab_s - sigma**2).clamp_min(0).sqrt() * eps + sigma * z
    return x


def classifier_free_guidance(eps_cond: Tensor, eps_uncond: Tensor, guidance_scale: float) -> Tensor:
    r"""Classifier-free guidance (Ho & Salimans 2022, Eq. 6): :math:`(1 + w)\epsilon_c - w\,\epsilon_u`.

    ``w = 0`` is the plain conditional model; larger ``w`` pushes samples toward where the
    condition is more likely than under the unconditional model.
    """
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have the same shape, got {tuple(eps_cond.shape)} and {tuple(eps_uncond.shape)}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
    w = guidance_scale
    return (1 + w) * eps_cond - w * eps_uncond


# ----------------------------------------------------------------------------- flows
class AffineCoupling(nn.Module):
    r"""RealNVP affine coupling (Dinh et al. 2017, Eq. 4-6), data -> latent direction.

    With a binary ``mask`` m (1 = passed through): :math:`s, t = \mathrm{net}(m \odot x)`,
    :math:`y = m \odot x + (1 - m) \odot (x e^{s} + t)`,
    :math:`\log|\det \partial y/\partial x| = \sum_j (1 - m_j) s_j`. The Jacobian is triangular
    (after ordering the masked coordinates first), so its determinant is the product of the
    diagonal. ``s`` is passed through ``scale * tanh`` to keep the map tame.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, *, scale: float = 2.0) -> None:
        super().__init__()
        _check_tensor("mask", mask)
        if mask.dim() != 1 or not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"mask must be a 1-D tensor of 0s and 1s, got {mask}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        d = mask.numel()
        self.register_buffer("mask", mask.float())
        self.scale = scale
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * d))

    def _s_t(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        s_raw, t = self.net(x_masked).chunk(2, dim=-1)
        s = self.scale * torch.tanh(s_raw / self.scale)
        keep = 1 - self.mask.to(x_masked.dtype)
        return s * keep, t * keep

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(y, log|det dy/dx|) for x of shape (B, D)."""
        if x.dim() != 2 or x.shape[1] != self.mask.numel():
            raise ValueError(f"x must be (B, {self.mask.numel()}), got {tuple(x.shape)}")
        m = self.mask.to(x.dtype)
        s, t = self._s_t(m * x)
        y = m * x + (1 - m) * (x * s.exp() + t)
        return y, s.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        """x with forward(x)[0] == y: :math:`x = m\\odot y + (1-m)\\odot (y - t) e^{-s}`."""
        m = self.mask.to(y.dtype)
        s, t = self._s_t(m * y)                          # m * y == m * x: the same s, t
        return m * y + (1 - m) * ((y - t) * (-s).exp())


def flow_log_prob(layers: Sequence[nn.Module], x: Tensor) -> Tensor:
    r"""Exact :math:`\log p_X(x) = \log \mathcal N(f(x); 0, I) + \sum_k \log|\det J_{f_k}|`.

    ``layers`` map data to latent, each returning ``(y, logdet)``. Section:
    ``q-generative.flow-change-of-variables``.
    """
    z, logdet = x, torch.zeros(x.shape[0], dtype=x.dtype)
    for layer in layers:
        z, ld = layer(z)
        logdet = logdet + ld
    log_pz = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
    return log_pz + logdet


def flow_sample(layers: Sequence[nn.Module], z: Tensor) -> Tensor:
    """Push latent samples through the inverses, last layer first: one pass per sample."""
    x = z
    for layer in reversed(list(layers)):
        x = layer.inverse(x)
    return x


# ----------------------------------------------------------------------------- autoregressive
class MaskedConv2d(nn.Conv2d):
    """PixelCNN masked convolution (van den Oord et al. 2016): type "A" hides the centre pixel
    (first layer), type "B" lets it through (later layers); pixels after it in raster order are
    always hidden. Odd square kernel, ``padding = kernel_size // 2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, mask_type: str) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        c = kernel_size // 2
        mask = torch.ones(kernel_size, kernel_size)
        mask[c, c + (mask_type == "B"):] = 0             # the centre row from the centre (A) or after it (B)
        mask[c + 1:, :] = 0                              # every row below
        self.register_buffer("mask", mask)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight * self.mask, self.bias, padding=self.padding)


def causal_conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, *, dilation: int = 1) -> Tensor:
    r"""A causal (WaveNet) convolution: left-pad by (k - 1) * dilation so output t sees inputs <= t.

    ``input`` (N, C_in, L), ``weight`` (C_out, C_in, k); the output has length L.
    """
    _check_tensor("input", input)
    if input.dim() != 3:
        raise ValueError(f"input must be (N, C, L), got shape {tuple(input.shape)}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    pad = (weight.shape[-1] - 1) * dilation
    return F.conv1d(F.pad(input, (pad, 0)), weight, bias, dilation=dilation)


def receptive_field(kernel_size: int, dilations: Iterable[int]) -> int:
    r"""Receptive field of stacked causal convolutions: :math:`1 + \sum_l (k - 1) d_l`."""
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    dilations = list(dilations)
    if any(d < 1 for d in dilations):
        raise ValueError(f"dilations must be >= 1, got {dilations}")
    return 1 + sum((kernel_size - 1) * d for d in dilations)


class CharMLP(nn.Module):
    """A fixed-context character model (Bengio et al. 2003): the last ``context`` characters,
    embedded and concatenated, then one hidden layer, give the next character's logits."""

    def __init__(self, vocab_size: int, context: int = 8, embed: int = 16, hidden: int = 128) -> None:
        super().__init__()
        if min(vocab_size, context, embed, hidden) < 1:
            raise ValueError(f"sizes must be >= 1, got vocab_size={vocab_size}, context={context}, embed={embed}, hidden={hidden}")
        self.context = context
        self.embed = nn.Embedding(vocab_size, embed)
        self.hidden = nn.Linear(context * embed, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        """logits (B, V) for ``idx`` (B, context) of token ids."""
        e = self.embed(idx).flatten(1)                   # (B, context * embed)
        return self.out(torch.tanh(self.hidden(e)))      # (B, V)


# ----------------------------------------------------------------------------- decoding
def _check_logits(logits: object) -> None:
    _check_tensor("logits", logits)
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have a non-empty last dimension, got shape {tuple(logits.shape)}")


def greedy(logits: Tensor) -> Tensor:
    """The most likely token (argmax over the last dimension)."""
    _check_logits(logits)
    return logits.argmax(-1)


def temperature_softmax(logits: Tensor, temperature: float) -> Tensor:
    r"""softmax(z / T): T < 1 sharpens, T > 1 flattens; T -> 0 tends to the argmax one-hot."""
    _check_logits(logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits / temperature, dim=-1)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Logits with all but the ``k`` largest set to -inf (ties with the k-th are kept)."""
    _check_logits(logits)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k}")
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[..., -1:]        # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    r"""Nucleus filter (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
    probability mass is >= p; set the rest to -inf.

    Sorted descending, token i is kept iff the mass *before* it is < p (so the top token always is).
    """
    _check_logits(logits)
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(-1) - probs               # mass of the tokens ranked above
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)   # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def decode_distribution(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None) -> Tensor:
    """The sampling distribution: temperature first, then top-k, then top-p (Hugging Face's order).

    Excluded tokens get probability exactly 0; the kept ones are renormalized.
    """
    _check_logits(logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """One token per row from :func:`decode_distribution`; ``temperature=0`` means greedy."""
    _check_logits(logits)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return greedy(logits)
    probs = decode_distribution(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def entropy(probs: Tensor) -> Tensor:
    r"""Shannon entropy :math:`-\sum_i p_i\log p_i` in nats over the last dim (0 log 0 = 0)."""
    _check_tensor("probs", probs)
    return -torch.special.xlogy(probs, probs).sum(-1)


# ----------------------------------------------------------------------------- training
def train_steps(loss_fn: Callable[[], Tensor], parameters: Iterable[Tensor], *, steps: int, lr: float = 1e-2,
                progress: str | None = None) -> list[float]:
    """Run ``steps`` Adam steps on ``loss_fn()`` (full batch or a batch it draws); return the losses.

    ``progress`` names a tqdm bar (none when None). The chapter's one shared loop.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    params = [p for p in parameters if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    it = range(steps)
    if progress is not None:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=progress, leave=False)
    losses = []
    for _ in it:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
