"""dlbook.schedules against torch.optim.lr_scheduler at every step of whole runs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import schedules as S
from torch.optim import lr_scheduler as L


def _opt(lr=0.1, adam=False):
    p = torch.nn.Parameter(torch.zeros(1))
    return torch.optim.Adam([p], lr=lr) if adam else torch.optim.SGD([p], lr=lr, momentum=0.9)


def _torch_run(make, steps, lr=0.1, adam=False):
    """(lr, momentum) that the optimizer holds after 0, 1, ..., steps-1 scheduler steps."""
    opt = _opt(lr, adam)
    sched = make(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step() before optimizer.step()": no training here
        for _ in range(steps):
            group = opt.param_groups[0]
            out.append((group["lr"], group["betas"][0] if adam else group["momentum"]))
            opt.step()
            sched.step()
    return out


def _assert_run(fn, kwargs, make, steps=100, lr=0.1, adam=False, momentum_fn=None, momentum_kwargs=None):
    for t, (lr_t, mom_t) in enumerate(_torch_run(make, steps, lr, adam)):
        assert fn(t, **kwargs) == pytest.approx(lr_t, rel=1e-12, abs=1e-15), t
        if momentum_fn is not None:
            assert momentum_fn(t, **momentum_kwargs) == pytest.approx(mom_t, rel=1e-12, abs=1e-15), t


def test_step_and_multistep_bit_identical():
    for t, (lr, _) in enumerate(_torch_run(lambda o: L.StepLR(o, step_size=7, gamma=0.5), 100)):
        assert S.step_lr(t, base_lr=0.1, step_size=7, gamma=0.5) == lr
    for t, (lr, _) in enumerate(_torch_run(lambda o: L.MultiStepLR(o, milestones=[10, 30, 31, 80], gamma=0.3), 100)):
        assert S.multistep_lr(t, base_lr=0.1, milestones=[10, 30, 31, 80], gamma=0.3) == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize("factor,total_iters", [(1 / 3, 5), (0.5, 20), (1.0, 0)])
def test_constant(factor, total_iters):
    _assert_run(S.constant_lr, dict(base_lr=0.1, factor=factor, total_iters=total_iters),
                lambda o: L.ConstantLR(o, factor=factor, total_iters=total_iters))


@pytest.mark.parametrize("gamma", [0.9, math.exp(-0.05), 0.99])
def test_exponential(gamma):
    _assert_run(S.exponential_lr, dict(base_lr=0.1, gamma=gamma), lambda o: L.ExponentialLR(o, gamma=gamma))


@pytest.mark.parametrize("total_iters,power", [(100, 1.0), (60, 2.0), (30, 0.5)])
def test_polynomial(total_iters, power):
    _assert_run(S.polynomial_lr, dict(base_lr=0.1, total_iters=total_iters, power=power),
                lambda o: L.PolynomialLR(o, total_iters=total_iters, power=power))


@pytest.mark.parametrize("start,end,total", [(1 / 3, 1.0, 5), (0.01, 1.0, 30), (1.0, 0.0, 100), (1.0, 0.1, 50)])
def test_linear(start, end, total):
    _assert_run(S.linear_lr, dict(base_lr=0.1, start_factor=start, end_factor=end, total_iters=total),
                lambda o: L.LinearLR(o, start_factor=start, end_factor=end, total_iters=total))


@pytest.mark.parametrize("T_max,eta_min", [(100, 0.0), (37, 1e-3)])
def test_cosine(T_max, eta_min):
    _assert_run(S.cosine_annealing_lr, dict(base_lr=0.1, T_max=T_max, eta_min=eta_min),
                lambda o: L.CosineAnnealingLR(o, T_max=T_max, eta_min=eta_min), steps=T_max + 1)


@pytest.mark.parametrize("W,T,eta_min,start", [(10, 100, 0.0, 0.01), (25, 60, 1e-3, 0.1)])
def test_warmup_cosine(W, T, eta_min, start):
    def make(o):
        return L.SequentialLR(o, [L.LinearLR(o, start_factor=start, end_factor=1.0, total_iters=W),
                                  L.CosineAnnealingLR(o, T_max=T - W, eta_min=eta_min)], milestones=[W])
    _assert_run(S.warmup_cosine_lr, dict(base_lr=0.1, warmup_steps=W, total_steps=T, eta_min=eta_min,
                                         start_factor=start), make, steps=T + 1)


@pytest.mark.parametrize("up,down", [(20, None), (10, 30), (7, 3)])
def test_cyclic_with_momentum(up, down):
    _assert_run(S.cyclic_lr, dict(base_lr=0.01, max_lr=0.1, step_size_up=up, step_size_down=down),
                lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=up, step_size_down=down),
                lr=0.01, momentum_fn=S.cyclic_momentum,
                momentum_kwargs=dict(step_size_up=up, step_size_down=down))


@pytest.mark.parametrize("adam", [False, True])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase,pct", [(False, 0.3), (False, 0.25), (True, 0.3)])
def test_one_cycle_with_momentum(adam, strategy, three_phase, pct):
    kw = dict(total_steps=100, pct_start=pct, anneal_strategy=strategy, three_phase=three_phase)
    _assert_run(S.one_cycle_lr, dict(max_lr=0.1, **kw),
                lambda o: L.OneCycleLR(o, max_lr=0.1, **kw), steps=100, adam=adam,
                momentum_fn=S.one_cycle_momentum, momentum_kwargs=kw)


@pytest.mark.parametrize("T_0,T_mult,eta_min", [(10, 1, 0.0), (10, 2, 0.0), (7, 3, 1e-3)])
def test_warm_restarts(T_0, T_mult, eta_min):
    _assert_run(S.cosine_warm_restarts_lr, dict(base_lr=0.1, T_0=T_0, T_mult=T_mult, eta_min=eta_min),
                lambda o: L.CosineAnnealingWarmRestarts(o, T_0=T_0, T_mult=T_mult, eta_min=eta_min), steps=150)


def test_inverse_sqrt_matches_lambda_lr_and_peaks_at_warmup():
    d, W = 512, 40
    _assert_run(S.inverse_sqrt_lr, dict(d_model=d, warmup_steps=W),
                lambda o: L.LambdaLR(o, lambda t: d**-0.5 * min((t + 1) ** -0.5, (t + 1) * W**-1.5)), lr=1.0)
    lrs = [S.inverse_sqrt_lr(t, d_model=d, warmup_steps=W) for t in range(200)]
    assert max(range(200), key=lrs.__getitem__) + 1 == W


def test_schedules_menu_runs():
    for name, (fn, kw) in S.SCHEDULES.items():
        lrs = [fn(t, **kw) for t in range(100)]
        assert all(lr >= 0 for lr in lrs), name


@settings(max_examples=50, deadline=None)
@given(t=st.integers(0, 10_000), T_0=st.integers(1, 50), T_mult=st.integers(1, 3))
def test_warm_restarts_bounds_and_restart(t, T_0, T_mult):
    lr = S.cosine_warm_restarts_lr(t, base_lr=1.0, T_0=T_0, T_mult=T_mult)
    assert 0.0 <= lr <= 1.0


@settings(max_examples=50, deadline=None)
@given(t=st.integers(0, 1000), up=st.integers(1, 50), down=st.integers(1, 50))
def test_cyclic_periodic(t, up, down):
    a = S.cyclic_lr(t, base_lr=0.01, max_lr=0.1, step_size_up=up, step_size_down=down)
    b = S.cyclic_lr(t + up + down, base_lr=0.01, max_lr=0.1, step_size_up=up, step_size_down=down)
    assert a == pytest.approx(b, rel=1e-9) and 0.01 - 1e-12 <= a <= 0.1 + 1e-12


def test_errors():
    with pytest.raises(ValueError, match="step must be >= 0"):
        S.step_lr(-1, base_lr=0.1, step_size=3)
    with pytest.raises(TypeError, match="step must be an int"):
        S.step_lr(1.5, base_lr=0.1, step_size=3)
    with pytest.raises(ValueError, match="step_size"):
        S.step_lr(1, base_lr=0.1, step_size=0)
    with pytest.raises(ValueError, match="base_lr"):
        S.exponential_lr(1, base_lr=-0.1, gamma=0.9)
    with pytest.raises(ValueError, match="milestones"):
        S.multistep_lr(1, base_lr=0.1, milestones=[30, 10])
    with pytest.raises(ValueError, match="factor"):
        S.constant_lr(1, base_lr=0.1, factor=2.0)
    with pytest.raises(ValueError, match="start_factor"):
        S.linear_lr(1, base_lr=0.1, start_factor=0.0)
    with pytest.raises(ValueError, match="T_max"):
        S.cosine_annealing_lr(1, base_lr=0.1, T_max=0)
    with pytest.raises(ValueError, match="warmup_steps must be < total_steps"):
        S.warmup_cosine_lr(1, base_lr=0.1, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="pct_start"):
        S.one_cycle_lr(1, max_lr=0.1, total_steps=100, pct_start=1.5)
    with pytest.raises(ValueError, match="step must be <= total_steps"):
        S.one_cycle_lr(101, max_lr=0.1, total_steps=100)
    with pytest.raises(ValueError, match="anneal_strategy"):
        S.one_cycle_lr(1, max_lr=0.1, total_steps=100, anneal_strategy="exp")
    with pytest.raises(ValueError, match="base_momentum"):
        S.one_cycle_momentum(1, total_steps=100, base_momentum=0.99, max_momentum=0.9)
    with pytest.raises(ValueError, match="T_mult"):
        S.cosine_warm_restarts_lr(1, base_lr=0.1, T_0=10, T_mult=0)
    with pytest.raises(ValueError, match="step_size_up"):
        S.cyclic_lr(1, base_lr=0.01, max_lr=0.1, step_size_up=0)
    with pytest.raises(ValueError, match="d_model"):
        S.inverse_sqrt_lr(1, d_model=0, warmup_steps=10)
