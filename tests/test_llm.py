"""dlbook.llm: parameter counts, scaling-law fits, Bradley-Terry, DPO, the KL-regularised optimum, ICL baselines."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import inference as I
from dlbook import llm
from dlbook import nn as dnn


# ----------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("L,d,V", [(1, 8, 11), (2, 16, 50), (3, 32, 7)])
def test_count_matches_torch_encoder_stack(L, d, V):
    blocks = torch.nn.ModuleList(torch.nn.TransformerEncoderLayer(d, 2, dim_feedforward=4 * d) for _ in range(L))
    embed = torch.nn.Embedding(V, d)  # tied with a bias-free head: counted once
    n = dnn.num_parameters(blocks) + dnn.num_parameters(embed)
    assert n == 12 * L * d * d + 13 * L * d + V * d
    assert llm.decoder_num_parameters(L, d, V, final_norm=False) == n


@pytest.mark.parametrize("L,d,V,T", [(2, 16, 30, 40), (1, 32, 5, 8)])
def test_count_matches_tiny_decoder_and_tiny_transformer(L, d, V, T):
    dec = I.TinyDecoder(V, d_model=d, n_heads=4, n_layers=L, max_len=T)
    assert dnn.num_parameters(dec) == llm.decoder_num_parameters(L, d, V, max_len=T, tie_weights=False)
    tt = dnn.TinyTransformer(V, d, 4, L, 4 * d, max_len=T, causal=True, tie_weights=True)
    assert dnn.num_parameters(tt) == llm.decoder_num_parameters(L, d, V, max_len=T)


def test_count_matches_transformers_gpt2():
    transformers = pytest.importorskip("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for L, d, V, T in [(12, 768, 50257, 1024), (3, 64, 100, 32)]:
            cfg = transformers.GPT2Config(n_layer=L, n_embd=d, vocab_size=V, n_positions=T, n_head=4)
            with torch.device("meta"):  # shapes only, no memory, no download
                model = transformers.GPT2LMHeadModel(cfg)
            assert dnn.num_parameters(model) == llm.decoder_num_parameters(L, d, V, max_len=T)
    assert llm.decoder_num_parameters(12, 768, 50257, max_len=1024) == 124_439_808


def test_count_bias_free_and_errors():
    assert llm.decoder_num_parameters(2, 8, 10, bias=False, final_norm=False) == 2 * (12 * 64 + 32) + 80
    with pytest.raises(ValueError, match="d_model"):
        llm.decoder_num_parameters(2, 0, 10)
    with pytest.raises(TypeError, match="n_layers"):
        llm.decoder_num_parameters(2.0, 8, 10)
    with pytest.raises(ValueError, match="max_len"):
        llm.decoder_num_parameters(2, 8, 10, max_len=-1)


# ----------------------------------------------------------------------------- scaling laws
def test_fit_power_law_recovers_exponent_and_matches_scipy():
    from scipy import stats

    x = np.array([10, 20, 40, 80, 160, 320.0])
    noise = np.exp(0.01 * np.array([1, -1, 0.5, -0.5, 0.2, -0.3]))
    y = 3.0 * x**-0.7 * noise
    fit = llm.fit_power_law(x, y)
    ref = stats.linregress(np.log(x), np.log(y))
    assert math.isclose(fit.exponent, ref.slope) and math.isclose(fit.coefficient, math.exp(ref.intercept))
    assert fit.ci[0] < -0.7 < fit.ci[1] and fit.ci[1] - fit.ci[0] < 0.05
    with pytest.raises(ValueError, match="positive"):
        llm.fit_power_law([1, 2, 3], [1, -1, 2])
    with pytest.raises(ValueError, match="length"):
        llm.fit_power_law([1, 2], [1, 2])


def test_fit_scaling_law_recovers_parameters():
    true = dict(E=0.3, A=20.0, alpha=0.6, B=50.0, beta=0.4)
    n, d = np.meshgrid([10, 30, 100, 300, 1000], [1e3, 3e3, 1e4, 3e4, 1e5])
    rng = np.random.default_rng(0)
    loss = llm.scaling_law(n, d, **true) * np.exp(0.003 * rng.standard_normal(n.shape))
    fit = llm.fit_scaling_law(n, d, loss, p0=(0.2, 10, 0.5, 10, 0.5))
    for k, v in true.items():
        assert fit.ci[k][0] < v < fit.ci[k][1], (k, fit.ci[k])
        assert math.isclose(fit.params[k], v, rel_tol=0.15), (k, fit.params[k])
    assert np.allclose(fit.predict(n, d), loss, rtol=0.02)
    with pytest.raises(ValueError, match="at least 6"):
        llm.fit_scaling_law([1, 2], [1, 2], [1, 2])


def test_compute_optimal_matches_grid_search():
    p = dict(A=406.4, alpha=0.34, B=410.7, beta=0.28)
    for C in [1e18, 1e21, 5.76e23]:
        n_opt, d_opt = llm.compute_optimal(C, **p)
        assert math.isclose(6 * n_opt * d_opt, C, rel_tol=1e-9)
        grid = np.logspace(math.log10(n_opt) - 2, math.log10(n_opt) + 2, 40001)
        loss = llm.scaling_law(grid, C / (6 * grid), E=1.69, **p)
        assert math.isclose(grid[loss.argmin()], n_opt, rel_tol=1e-3)
    # N* grows as C^(beta / (alpha + beta))
    n1, _ = llm.compute_optimal(1e20, **p)
    n2, _ = llm.compute_optimal(1e22, **p)
    assert math.isclose(math.log(n2 / n1) / math.log(100), 0.28 / 0.62, rel_tol=1e-9)
    with pytest.raises(ValueError, match="alpha"):
        llm.compute_optimal(1e20, A=1, alpha=0, B=1, beta=1)
    with pytest.raises(ValueError, match="compute"):
        llm.compute_optimal(-1.0, **p)


def test_long_context_costs():
    c1 = llm.long_context_costs(1024, n_layers=4, n_heads=8, head_dim=16)
    c2 = llm.long_context_costs(2048, n_layers=4, n_heads=8, head_dim=16)
    assert c2["scores_bytes"] == 4 * c1["scores_bytes"] and c2["attention_flops"] == 4 * c1["attention_flops"]
    assert c2["kv_cache_bytes"] == 2 * c1["kv_cache_bytes"] == I.kv_cache_bytes(4, 8, 16, 2048)
    # the scores of one layer really have H T^2 elements
    q = torch.randn(1, 8, 64, 16)
    assert (q @ q.transpose(-2, -1)).numel() * 2 == llm.long_context_costs(64, n_layers=1, n_heads=8, head_dim=16)["scores_bytes"]
    assert llm.forward_flops_per_token(1000, 2, 0, 8) == 2000
    assert llm.forward_flops_per_token(12 * 64 * 64 * 2, 2, 12 * 64, 64) == 2 * 2 * (12 * 64 * 64 * 2)
    with pytest.raises(ValueError, match="context"):
        llm.long_context_costs(0, n_layers=1, n_heads=1, head_dim=1)


# ----------------------------------------------------------------------------- alignment
def test_bradley_terry_loss_equals_bce_forward_and_backward():
    torch.manual_seed(0)
    a, b = (torch.randn(7, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ref = F.binary_cross_entropy_with_logits(a - b, torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(llm.bradley_terry_loss(a, b), ref)
    ga = torch.autograd.grad(llm.bradley_terry_loss(a, b), a)[0]
    gr = torch.autograd.grad(ref, a)[0]
    torch.testing.assert_close(ga, gr)
    assert torch.autograd.gradcheck(lambda u, v: llm.bradley_terry_loss(u, v, reduction="none"), (a, b))
    assert torch.isfinite(llm.bradley_terry_loss(torch.tensor([-1000.0]), torch.tensor([1000.0])))
    with pytest.raises(ValueError, match="reduction"):
        llm.bradley_terry_loss(a, b, reduction="max")
    with pytest.raises(ValueError, match="shape"):
        llm.bradley_terry_loss(a, b[:3])


def test_fit_bradley_terry_equals_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    n, m, lam = 8, 400, 0.01
    r = torch.randn(n, generator=g, dtype=torch.float64)
    i, j = torch.randint(0, n, (2, m), generator=g)
    keep = i != j
    i, j = i[keep], j[keep]
    i_wins = torch.rand(len(i), generator=g, dtype=torch.float64) < torch.sigmoid(r[i] - r[j])
    w, l_ = torch.where(i_wins, i, j), torch.where(i_wins, j, i)
    ours = llm.fit_bradley_terry(w, l_, n, weight_decay=lam)
    # symmetric design: each comparison as (e_w - e_l, 1) and (e_l - e_w, 0), intercept-free
    X = np.zeros((2 * len(w), n))
    X[np.arange(len(w)), w.numpy()] += 1
    X[np.arange(len(w)), l_.numpy()] -= 1
    X[len(w):] = -X[: len(w)]
    y = np.r_[np.ones(len(w)), np.zeros(len(w))]
    sk = LogisticRegression(C=1 / (lam * 2 * len(w)), fit_intercept=False, tol=1e-10, max_iter=10000).fit(X, y)
    ref = sk.coef_[0] - sk.coef_[0].mean()
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="item indices"):
        llm.fit_bradley_terry(w, l_, 3)


def test_dpo_loss_is_bradley_terry_on_implicit_rewards():
    torch.manual_seed(1)
    pc, pr, rc, rr = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(4))
    beta = 0.3
    ref = llm.bradley_terry_loss(beta * (pc - rc), beta * (pr - rr))
    torch.testing.assert_close(llm.dpo_loss(pc, pr, rc, rr, beta=beta), ref)
    # the formula written out
    torch.testing.assert_close(llm.dpo_loss(pc, pr, rc, rr, beta=beta, reduction="sum"),
                               -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum())
    assert torch.autograd.gradcheck(lambda a, b: llm.dpo_loss(a, b, rc.detach(), rr.detach(), beta=beta), (pc, pr))
    with pytest.raises(ValueError, match="beta"):
        llm.dpo_loss(pc, pr, rc, rr, beta=0.0)
    with pytest.raises(TypeError, match="policy_chosen_logps"):
        llm.dpo_loss([0.0], pr, rc, rr)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.floats(0.05, 5.0), st.integers(0, 10_000))
def test_kl_optimum_beats_perturbations_and_reaches_beta_log_z(k, beta, seed):
    g = torch.Generator().manual_seed(seed)
    ref = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)
    r = torch.randn(k, generator=g, dtype=torch.float64)
    opt = llm.kl_regularized_optimum(ref, r, beta=beta)
    best = llm.kl_regularized_objective(opt, ref, r, beta=beta)
    assert math.isclose(float(best), beta * float(torch.logsumexp(ref.log() + r / beta, 0)), rel_tol=1e-9, abs_tol=1e-9)
    others = torch.softmax(opt.log() + 0.3 * torch.randn(50, k, generator=g, dtype=torch.float64), -1)
    assert (llm.kl_regularized_objective(others, ref.expand(50, k), r.expand(50, k), beta=beta) <= best + 1e-12).all()
    shift = beta * (opt.log() - ref.log()) - r  # beta log(pi*/ref) = r - beta log Z
    assert torch.allclose(shift, shift[0].expand(k))


def test_kl_objective_zero_probability_and_errors():
    ref = torch.tensor([0.5, 0.5])
    val = llm.kl_regularized_objective(torch.tensor([1.0, 0.0]), ref, torch.tensor([1.0, 0.0]), beta=1.0)
    assert math.isclose(float(val), 1.0 - math.log(2), rel_tol=1e-6)
    with pytest.raises(ValueError, match="ref_probs"):
        llm.kl_regularized_optimum(torch.tensor([1.0, 0.0]), torch.zeros(2), beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        llm.kl_regularized_optimum(ref, torch.zeros(2), beta=-1.0)


# ----------------------------------------------------------------------------- in-context learning
def test_prompts_and_baselines():
    g = torch.Generator().manual_seed(0)
    x, y = llm.linear_regression_prompts(200, 8, 3, generator=g)
    assert x.shape == (200, 8, 3) and y.shape == (200, 8)
    x, y = x.double(), y.double()
    ls = llm.least_squares_predictions(x, y)
    assert torch.allclose(ls[:, 3:], y[:, 3:], atol=1e-4)  # exact once i >= d points are seen
    assert (ls[:, 0] == 0).all()
    # numpy oracle for one position below d (minimum-norm solution)
    w = np.linalg.lstsq(x[0, :2].numpy(), y[0, :2].numpy(), rcond=None)[0]
    assert math.isclose(float(ls[0, 2]), float(x[0, 2].numpy() @ w), rel_tol=1e-4, abs_tol=1e-5)
    kn = llm.knn_predictions(x, y, k=2)
    d = ((x[5, :6] - x[5, 6]) ** 2).sum(-1)
    assert math.isclose(float(kn[5, 6]), float(y[5, :6][d.argsort()[:2]].mean()), rel_tol=1e-6)
    assert torch.equal(llm.knn_predictions(x, y, k=1)[:, 1], y[:, 0])
    with pytest.raises(ValueError, match="dim"):
        llm.linear_regression_prompts(2, 3, 0)
    with pytest.raises(ValueError, match=r"\(B, k\)"):
        llm.least_squares_predictions(x, y[:, :3])


def test_linear_self_attention_is_one_gradient_step():
    g = torch.Generator().manual_seed(3)
    d, n, eta = 4, 9, 0.7
    x, y = llm.linear_regression_prompts(5, n + 1, d, generator=g)
    context = torch.cat([x[:, :n], y[:, :n, None]], -1)  # (B, n, d + 1)
    query = torch.cat([x[:, n:], torch.zeros(5, 1, 1)], -1)
    P = torch.diag(torch.tensor([1.0] * d + [0.0]))
    w_v = torch.zeros(d + 1, d + 1)
    w_v[d, d] = eta
    out = llm.linear_self_attention(context, query, P, P, w_v)[:, 0, d]
    w = torch.zeros(5, d, requires_grad=True)  # one GD step on (1/2n) sum (w.x - y)^2 from w = 0
    loss = 0.5 * ((torch.einsum("bnd,bd->bn", x[:, :n], w) - y[:, :n]) ** 2).mean(1).sum()
    w1 = -eta * torch.autograd.grad(loss, w)[0]
    torch.testing.assert_close(out, (w1 * x[:, n]).sum(-1))


def test_prompt_regressor_is_causal():
    torch.manual_seed(0)
    model = llm.PromptRegressor(3, 6, d_model=16, num_layers=2).eval()
    x, y = llm.linear_regression_prompts(2, 6, 3, generator=torch.Generator().manual_seed(1))
    base = model(x, y)
    y2, x2 = y.clone(), x.clone()
    y2[:, 3] += 5.0  # y_3 may change predictions 4 and 5 only
    x2[:, 5] += 1.0  # x_5 may change prediction 5 only
    torch.testing.assert_close(model(x, y2)[:, :4], base[:, :4])
    assert not torch.allclose(model(x, y2)[:, 4:], base[:, 4:])
    torch.testing.assert_close(model(x2, y)[:, :5], base[:, :5])
    assert model.tokens(x, y).shape == (2, 12, 4)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.zeros(2, 7, 3), torch.zeros(2, 7))


def test_kl_functions_gradcheck():
    g = torch.Generator().manual_seed(5)
    ref = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    r = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0).requires_grad_()
    assert torch.autograd.gradcheck(lambda rr: llm.kl_regularized_optimum(ref, rr, beta=0.7), (r,))
    assert torch.autograd.gradcheck(lambda pp, rr: llm.kl_regularized_objective(pp, ref, rr, beta=0.7), (p, r))
    # the objective's gradient in the policy's logits vanishes at the optimum
    logits = llm.kl_regularized_optimum(ref, r.detach(), beta=0.7).log().requires_grad_()
    J = llm.kl_regularized_objective(torch.softmax(logits, 0), ref, r.detach(), beta=0.7)
    assert torch.autograd.grad(J, logits)[0].abs().max() < 1e-12
