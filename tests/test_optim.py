"""dlbook.optim against torch.optim over trajectories of >= 50 steps, plus properties and errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import optim as O

STEPS = 60
SHAPES = [(7,), (5, 3), (2, 4, 3)]


def _grad_fn(shape, seed=0):
    """A smooth, non-quadratic gradient field (so adaptive states really change)."""
    a = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.2
    return lambda p: a * p + torch.sin(3 * p)


def _compare(fn, torch_cls, kwargs, shape, torch_kwargs=None, steps=STEPS):
    p0 = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grad = _grad_fn(shape)
    p = p0.clone().requires_grad_(True)
    opt = torch_cls([p], **(torch_kwargs or kwargs))
    q, state = p0.clone(), {}
    for _ in range(steps):
        p.grad = grad(p.detach()).clone()
        opt.step()
        q, state = fn(q, grad(q), state, **kwargs)
    torch.testing.assert_close(q, p.detach(), rtol=1e-12, atol=1e-12)
    return state, opt.state[p]


CASES = [
    (O.sgd, torch.optim.SGD, dict(lr=0.05)),
    (O.sgd, torch.optim.SGD, dict(lr=0.05, weight_decay=0.1)),
    (O.sgd, torch.optim.SGD, dict(lr=0.02, momentum=0.9)),
    (O.sgd, torch.optim.SGD, dict(lr=0.02, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (O.sgd, torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True)),
    (O.adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    (O.adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    (O.rmsprop, torch.optim.RMSprop, dict(lr=0.01)),
    (O.rmsprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    (O.adam, torch.optim.Adam, dict(lr=0.01)),
    (O.adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-6)),
    (O.adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    (O.adamw, torch.optim.AdamW, dict(lr=0.01)),
    (O.adamw, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    (O.adafactor, torch.optim.Adafactor, dict(lr=0.01)),
    (O.adafactor, torch.optim.Adafactor, dict(lr=0.05, weight_decay=0.1, d=2.0, eps=(1e-20, 1e-3), beta2_decay=-0.5)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fn,torch_cls,kwargs", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_matches_torch_over_trajectory(fn, torch_cls, kwargs, shape):
    _compare(fn, torch_cls, kwargs, shape)


def test_state_keys_match_torch():
    for fn, cls, kw in CASES:
        ours, theirs = _compare(fn, cls, kw, (5, 3), steps=3)
        assert set(ours) == set(theirs), (fn.__name__, set(ours), set(theirs))


def test_adafactor_factored_state_size():
    state, torch_state = _compare(O.adafactor, torch.optim.Adafactor, dict(lr=0.01), (6, 4), steps=2)
    assert state["row_var"].shape == (6, 1) and state["col_var"].shape == (1, 4)
    assert torch_state["row_var"].shape == (6, 1)


def test_textbook_momentum_equals_torch_at_constant_lr_and_differs_after_lr_change():
    shape, lr = (5, 3), 0.02
    grad = _grad_fn(shape)
    p0 = torch.randn(shape, dtype=torch.float64)
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    q, state = p0.clone(), {}
    for t in range(80):
        if t == 50:  # change the lr mid-run: the two conventions part ways
            torch.testing.assert_close(q, p.detach(), rtol=0, atol=1e-12)
            opt.param_groups[0]["lr"] = lr = 0.2
        p.grad = grad(p.detach())
        opt.step()
        q, state = O.momentum_textbook(q, grad(q), state, lr=lr, gamma=0.9)
    assert (q - p.detach()).abs().max() > 1e-3


def test_nesterov_lookahead_equals_torch_after_change_of_variables():
    shape, lr, gamma = (5, 3), 0.02, 0.9
    grad = _grad_fn(shape)
    p0 = torch.randn(shape, dtype=torch.float64)
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=gamma, nesterov=True)
    theta, state = p0.clone(), {}
    for _ in range(STEPS):
        p.grad = grad(p.detach())
        opt.step()
        theta, state = O.nesterov_lookahead(theta, grad, state, lr=lr, gamma=gamma)
        theta_prime = theta - gamma * state["velocity"]  # torch stores the look-ahead point
        torch.testing.assert_close(theta_prime, p.detach(), rtol=0, atol=1e-12)


def test_numpy_and_vectorised_paths():
    grad = lambda x: np.array([1.0, 10.0]) * x  # noqa: E731
    starts = np.random.default_rng(0).normal(size=(4, 2))
    paths = O.run(O.adam, grad, starts, steps=50, lr=0.1)
    assert paths.shape == (51, 4, 2)
    for k in range(4):  # each row is an independent run
        torch.testing.assert_close(torch.from_numpy(O.run(O.adam, grad, starts[k], steps=50, lr=0.1)), torch.from_numpy(paths[:, k]))
    tpaths = O.run(O.adam, lambda x: torch.tensor([1.0, 10.0], dtype=torch.float64) * x, torch.from_numpy(starts), steps=50, lr=0.1)
    torch.testing.assert_close(tpaths, torch.from_numpy(paths))


def test_adam_without_bias_correction_first_step():
    g = torch.full((3,), 0.5, dtype=torch.float64)
    p, _ = O.adam(torch.zeros(3, dtype=torch.float64), g, {}, lr=1e-3, bias_correction=False)
    torch.testing.assert_close(-p, torch.full((3,), 1e-3 * 0.1 / 0.001**0.5, dtype=torch.float64), rtol=1e-6, atol=0)


def test_newton_step_solves_quadratic_and_matches_lstsq():
    rng = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=rng, dtype=torch.float64))
    hess = q @ torch.diag(torch.linspace(1, 100, 6, dtype=torch.float64)) @ q.T
    b = torch.randn(6, generator=rng, dtype=torch.float64)
    x = torch.randn(6, generator=rng, dtype=torch.float64)
    x1, state = O.newton_step(x, hess @ x - b, hessian=hess)
    torch.testing.assert_close(x1, torch.linalg.solve(hess, b), rtol=1e-10, atol=1e-10)
    assert state == {}
    # the (param, state) contract: run() iterates it; a callable Hessian is evaluated at param
    path = O.run(O.newton_step, lambda v: hess @ v - b, x, steps=2, hessian=lambda v: hess)
    assert path.shape == (3, 6)
    torch.testing.assert_close(path[1], x1, rtol=0, atol=0)
    torch.testing.assert_close(path[2], x1, rtol=1e-10, atol=1e-10)  # a quadratic: one step is exact


def test_lars_relative_update_is_lr_times_trust():
    rng = torch.Generator().manual_seed(0)
    for scale in [1e-3, 1.0, 1e3]:
        w = torch.randn(8, 4, generator=rng, dtype=torch.float64)
        g = scale * torch.randn(8, 4, generator=rng, dtype=torch.float64)
        w1, state = O.lars(w, g, lr=0.1, trust_coefficient=0.01, eps=0.0)
        torch.testing.assert_close((w1 - w).norm() / w.norm(), torch.tensor(1e-3, dtype=torch.float64))
        assert state == {}


@pytest.mark.parametrize("eps", [0.0, 1e-9])
def test_lars_zero_gradient_or_zero_param_gives_zero_step(eps):
    """Regression: eps=0 and g=0 used to give 0/0 = NaN. A zero gradient is a zero step."""
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w1, _ = O.lars(w, torch.zeros_like(w), lr=0.1, eps=eps)
    assert torch.isfinite(w1).all()
    torch.testing.assert_close(w1, w, rtol=0, atol=0)
    z = torch.zeros(5, dtype=torch.float64)  # a zero tensor: trust ratio 0, as the formula says
    z1, _ = O.lars(z, torch.ones(5, dtype=torch.float64), lr=0.1, eps=eps)
    torch.testing.assert_close(z1, z, rtol=0, atol=0)


def test_lars_and_newton_follow_the_param_state_contract():
    """Every optimizer is (param, grad, state, **hyper) -> (param, state), so run() takes each."""
    grad = lambda v: torch.tensor([1.0, 10.0], dtype=torch.float64) * v  # noqa: E731
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    for step, hyper in [(O.lars, {"lr": 0.5, "trust_coefficient": 0.1}), (O.newton_step, {"hessian": torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64))}),
                        (O.sgd, {"lr": 0.05}), (O.adam, {"lr": 0.05}), (O.lamb, {"lr": 0.05})]:
        out = step(x0, grad(x0), {}, **hyper)
        assert isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict), step.__name__
        path = O.run(step, grad, x0, steps=3, **hyper)
        assert path.shape == (4, 2) and torch.isfinite(path).all(), step.__name__
    with pytest.raises(TypeError, match="lars keeps no state"):
        O.lars(x0, grad(x0), {"momentum_buffer": x0})
    with pytest.raises(TypeError, match="newton_step keeps no state"):
        O.newton_step(x0, grad(x0), torch.eye(2, dtype=torch.float64), hessian=torch.eye(2, dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5).filter(lambda v: abs(v) > 1e-3), min_size=1, max_size=8), st.floats(1e-4, 1.0))
def test_adam_invariant_to_gradient_scale(gs, scale):
    """Adam's step is unchanged by g -> c g (up to eps); AdaGrad's effective step never grows."""
    g = torch.tensor(gs, dtype=torch.float64)
    p1, s1 = O.adam(torch.zeros_like(g), g, {}, lr=0.1, eps=0.0)
    p2, s2 = O.adam(torch.zeros_like(g), scale * g, {}, lr=0.1, eps=0.0)
    torch.testing.assert_close(p1, p2)
    state, prev = {}, None
    for _ in range(5):
        _, state = O.adagrad(torch.zeros_like(g), g, state, lr=0.1)
        eff = 0.1 / state["sum"] ** 0.5
        assert prev is None or bool((eff <= prev).all())
        prev = eff


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-3, 10.0), st.floats(0.0, 0.99))
def test_momentum_conventions_agree_at_constant_lr(lr, mu):
    grad = lambda x: np.array([0.3, 0.05]) * x + 1.0  # noqa: E731
    x0 = np.array([1.0, -2.0])
    a = O.run(O.sgd, grad, x0, steps=20, lr=lr, momentum=mu) if mu > 0 else O.run(O.sgd, grad, x0, steps=20, lr=lr)
    b = O.run(O.momentum_textbook, grad, x0, steps=20, lr=lr, gamma=mu)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(a).max())


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda p, g: O.sgd(p, g, lr=-0.1), "lr"),
        (lambda p, g: O.sgd(p, g, lr=0.1, momentum=0.0, nesterov=True), "nesterov"),
        (lambda p, g: O.adam(p, g, betas=(1.0, 0.999)), "beta1"),
        (lambda p, g: O.adam(p, g, betas=(0.9, -0.1)), "beta2"),
        (lambda p, g: O.adamw(p, g, lr=-1.0), "lr"),
        (lambda p, g: O.adagrad(p, g, eps=-1.0), "eps"),
        (lambda p, g: O.rmsprop(p, g, alpha=1.5), "alpha"),
        (lambda p, g: O.momentum_textbook(p, g, gamma=1.0), "gamma"),
        (lambda p, g: O.adam(p, g, {"exp_avg": torch.zeros(3)}), "exp_avg_sq"),
        (lambda p, g: O.adam(p, g, {"exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2), "step": 1}), "exp_avg"),
        (lambda p, g: O.sgd(p, g, {"exp_avg": torch.zeros(3)}, lr=0.1, momentum=0.9), "momentum_buffer"),
        (lambda p, g: O.adam(p, g[:2]), "grad"),
        (lambda p, g: O.adafactor(p.view(3, 1), g.view(3, 1), {"variance": p, "step": 1}), "row_var"),
        (lambda p, g: O.adafactor(p, g, beta2_decay=0.5), "beta2_decay"),
        (lambda p, g: O.newton_step(p, g, hessian=torch.eye(2)), "hessian"),
        (lambda p, g: O.newton_step(p, g, hessian=lambda v: torch.eye(2)), "hessian"),
        (lambda p, g: O.lars(p, g, trust_coefficient=-1.0), "trust_coefficient"),
        (lambda p, g: O.run(O.sgd, lambda x: x, p, steps=-1), "steps"),
    ],
)
def test_bad_input_raises(call, match):
    p, g = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match=match):
        call(p, g)


def test_bad_type_raises():
    with pytest.raises(TypeError, match="lr"):
        O.sgd(torch.zeros(2), torch.ones(2), lr="0.1")
    with pytest.raises(TypeError, match="state"):
        O.adam(torch.zeros(2), torch.ones(2), [1])


def _lamb_reference(w, grads, lr, beta1, beta2, eps, wd):
    """You et al. 2019, Algorithm 2, written out in NumPy (phi = identity), one layer."""
    m, v, out = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        r = (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        u = r + wd * w
        w = w - lr * np.linalg.norm(w) / np.linalg.norm(u) * u
        out.append(w)
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1)])
def test_lamb_matches_algorithm_2(shape, kw):
    grad = _grad_fn(shape)
    p0 = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q, state, grads = p0.clone(), {}, []
    for _ in range(STEPS):  # record the gradients along our own trajectory, then replay them
        g = grad(q)
        grads.append(g.numpy().copy())
        q, state = O.lamb(q, g, state, **kw)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    ref = _lamb_reference(p0.numpy(), grads, kw["lr"], b1, b2, kw.get("eps", 1e-6), kw.get("weight_decay", 0.0))
    np.testing.assert_allclose(q.numpy(), ref[-1], rtol=1e-12, atol=1e-12)
    assert state["step"] == STEPS


@settings(max_examples=30, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.floats(1e-4, 0.1))
def test_lamb_relative_update_is_lr_in_every_layer(w_scale, g_scale, lr):
    rng = torch.Generator().manual_seed(0)
    w = w_scale * torch.randn(6, 5, generator=rng, dtype=torch.float64)
    g = g_scale * torch.randn(6, 5, generator=rng, dtype=torch.float64)
    w1, _ = O.lamb(w, g, {}, lr=lr, eps=0.0)
    torch.testing.assert_close((w1 - w).norm() / w.norm(), torch.tensor(lr, dtype=torch.float64))


def test_lamb_zero_weight_falls_back_to_adam_direction():
    b, g = torch.zeros(4, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    b1, _ = O.lamb(b, g, {}, lr=0.1, eps=0.0)
    torch.testing.assert_close(b1, -0.1 * torch.sign(g))  # trust ratio 1: the first Adam step


@pytest.mark.parametrize(
    "kw,match",
    [(dict(lr=-1.0), "lr"), (dict(betas=(1.0, 0.9)), "beta1"), (dict(betas=(0.9, 1.5)), "beta2"),
     (dict(eps=-1e-6), "eps"), (dict(weight_decay=-0.1), "weight_decay")],
)
def test_lamb_bad_input_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        O.lamb(torch.ones(3), torch.ones(3), **kw)


def test_lamb_bad_state_and_shapes_raise():
    with pytest.raises(ValueError, match="exp_avg_sq"):
        O.lamb(torch.ones(3), torch.ones(3), {"exp_avg": torch.zeros(3), "step": 1})
    with pytest.raises(ValueError, match="grad"):
        O.lamb(torch.ones(3), torch.ones(2))
    with pytest.raises(TypeError, match="lr"):
        O.lamb(torch.ones(3), torch.ones(3), lr="0.1")
