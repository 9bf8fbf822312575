"""Learning-rate schedules as pure functions of the step (the chapter "Learning rate and batch size").

Each function maps the step counter ``step`` (0, 1, 2, ...: the number of ``scheduler.step()``
calls so far, torch's ``last_epoch``) to the learning rate, with torch's hyperparameter names
and defaults, and equals the matching :mod:`torch.optim.lr_scheduler` class at every step of a
run (``tests/test_schedules.py``: to 1e-12 relative; torch's recursive updates differ from a
closed form by float rounding, about 1e-15)::

    eta_t = schedule(t, base_lr=..., **hyper)          # = scheduler.get_last_lr()[0] after t steps

| function | torch | formula |
| --- | --- | --- |
| :func:`constant_lr` | ``ConstantLR`` | eta0 * factor for t < total_iters, then eta0 |
| :func:`step_lr` | ``StepLR`` | eta0 * gamma^floor(t / step_size) |
| :func:`multistep_lr` | ``MultiStepLR`` | eta0 * gamma^(number of milestones <= t) |
| :func:`exponential_lr` | ``ExponentialLR`` | eta0 * gamma^t |
| :func:`polynomial_lr` | ``PolynomialLR`` | eta0 * (1 - min(t, T)/T)^power |
| :func:`linear_lr` | ``LinearLR`` | eta0 * (s + (e - s) * min(t, T)/T): warmup (s < e) or linear decay (s > e) |
| :func:`cosine_annealing_lr` | ``CosineAnnealingLR`` | eta_min + (eta0 - eta_min)(1 + cos(pi t/T))/2, t <= T |
| :func:`warmup_cosine_lr` | ``SequentialLR(LinearLR, CosineAnnealingLR)`` | linear warmup to eta0 in W steps, cosine to eta_min at T |
| :func:`cyclic_lr` | ``CyclicLR(mode="triangular")`` | triangle wave between base_lr and max_lr |
| :func:`one_cycle_lr` | ``OneCycleLR`` | up (cos or linear) from max_lr/div_factor to max_lr, down to max_lr/(div_factor*final_div_factor) |
| :func:`cosine_warm_restarts_lr` | ``CosineAnnealingWarmRestarts`` | cosine within cycles of length T_0, T_0*T_mult, ... |
| :func:`inverse_sqrt_lr` | (``LambdaLR``) | Vaswani et al. 2017, eq. 3: d^-0.5 min(s^-0.5, s W^-1.5) |

:func:`cyclic_momentum` and :func:`one_cycle_momentum` give the momentum (or Adam's beta1) that
``CyclicLR``/``OneCycleLR`` set, cycling opposite to the learning rate (Smith 2018).

Sources: Loshchilov & Hutter 2017 (SGDR, cosine and warm restarts), Smith 2017 (cyclical
learning rates), Smith & Topin 2019 (one-cycle), Goyal et al. 2017 (linear warmup),
Vaswani et al. 2017 (inverse square root). Back-link: chapters/lr-batch/02-schedules.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = [
    "SCHEDULES",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_warm_restarts_lr",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "inverse_sqrt_lr",
    "linear_lr",
    "multistep_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "polynomial_lr",
    "step_lr",
    "warmup_cosine_lr",
]


# -- validation ----------------------------------------------------------------------------
def _check_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")


def _check_positive_int(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value}")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value}")


def _check_nonneg(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value}")


# -- decays --------------------------------------------------------------------------------
def constant_lr(step: int, *, base_lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> float:
    """``eta0 * factor`` for the first ``total_iters`` steps, then ``eta0`` (torch ``ConstantLR``)."""
    _check_step(step)
    _check_positive(base_lr=base_lr)
    if not 0 <= factor <= 1:
        raise ValueError(f"factor must be in [0, 1], got {factor}")
    _check_nonneg(total_iters=total_iters)
    return base_lr * factor if step < total_iters else base_lr


def step_lr(step: int, *, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Step decay: ``eta_t = eta0 * gamma ** floor(t / step_size)`` (torch ``StepLR``)."""
    _check_step(step)
    _check_positive(base_lr=base_lr, gamma=gamma)
    _check_positive_int(step_size=step_size)
    return base_lr * gamma ** (step // step_size)


def multistep_lr(step: int, *, base_lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multi-step decay: multiply by ``gamma`` at each milestone (torch ``MultiStepLR``):
    ``eta_t = eta0 * gamma ** #{m in milestones : m <= t}``."""
    _check_step(step)
    _check_positive(base_lr=base_lr, gamma=gamma)
    if list(milestones) != sorted(milestones) or any(m < 0 for m in milestones):
        raise ValueError(f"milestones must be non-negative and increasing, got {list(milestones)}")
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), step)


def exponential_lr(step: int, *, base_lr: float, gamma: float) -> float:
    """Exponential decay ``eta_t = eta0 * gamma ** t = eta0 * exp(-lambda t)`` with
    ``gamma = exp(-lambda)`` (torch ``ExponentialLR``)."""
    _check_step(step)
    _check_positive(base_lr=base_lr, gamma=gamma)
    return base_lr * gamma**step


def polynomial_lr(step: int, *, base_lr: float, total_iters: int = 5, power: float = 1.0) -> float:
    """Polynomial decay to zero: ``eta_t = eta0 * (1 - min(t, T) / T) ** power`` (torch
    ``PolynomialLR``; ``power=1`` is linear decay to 0)."""
    _check_step(step)
    _check_positive(base_lr=base_lr, power=power)
    _check_positive_int(total_iters=total_iters)
    return base_lr * (1.0 - min(step, total_iters) / total_iters) ** power


def linear_lr(step: int, *, base_lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
              total_iters: int = 5) -> float:
    """Linear ramp of the multiplier from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then constant (torch ``LinearLR``): linear warmup with ``start_factor < end_factor``,
    linear decay with ``start_factor=1, end_factor=0``."""
    _check_step(step)
    _check_positive(base_lr=base_lr)
    if not 0 < start_factor <= 1:
        raise ValueError(f"start_factor must be in (0, 1], got {start_factor}")
    if not 0 <= end_factor <= 1:
        raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
    _check_positive_int(total_iters=total_iters)
    return base_lr * (start_factor + (end_factor - start_factor) * min(step, total_iters) / total_iters)


def _cosine(start: float, end: float, pct: float) -> float:
    """Half a cosine from ``start`` (pct 0) to ``end`` (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def cosine_annealing_lr(step: int, *, base_lr: float, T_max: int, eta_min: float = 0.0) -> float:
    """Cosine annealing (Loshchilov & Hutter 2017, eq. 5 without restarts; torch
    ``CosineAnnealingLR`` for ``t <= T_max``):

    .. math:: \\eta_t = \\eta_{\\min} + \\tfrac12(\\eta_0 - \\eta_{\\min})(1 + \\cos(\\pi t / T_{\\max}))

    Beyond ``T_max`` torch's recursion keeps following the cosine back up; so does this formula.
    """
    _check_step(step)
    _check_positive(base_lr=base_lr)
    _check_positive_int(T_max=T_max)
    _check_nonneg(eta_min=eta_min)
    return _cosine(base_lr, eta_min, step / T_max)


def warmup_cosine_lr(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, eta_min: float = 0.0,
                     start_factor: float = 0.01) -> float:
    """Linear warmup from ``start_factor * eta0`` to ``eta0`` over ``warmup_steps`` (Goyal et al.
    2017), then cosine annealing to ``eta_min`` at ``total_steps``; torch:
    ``SequentialLR([LinearLR(start_factor, 1, W), CosineAnnealingLR(T - W, eta_min)], [W])``."""
    _check_step(step)
    _check_positive_int(warmup_steps=warmup_steps, total_steps=total_steps)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps must be < total_steps, got {warmup_steps} >= {total_steps}")
    if step < warmup_steps:
        return linear_lr(step, base_lr=base_lr, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    return cosine_annealing_lr(step - warmup_steps, base_lr=base_lr, T_max=total_steps - warmup_steps, eta_min=eta_min)


def inverse_sqrt_lr(step: int, *, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """The original Transformer's schedule (Vaswani et al. 2017, eq. 3), with ``s = step + 1``:

    .. math:: \\eta_s = f \\cdot d^{-1/2} \\min(s^{-1/2},\\ s\\, W^{-3/2})

    linear warmup for ``W`` steps, then decay as ``1/sqrt(s)``; the peak is at ``s = W``."""
    _check_step(step)
    _check_positive_int(d_model=d_model, warmup_steps=warmup_steps)
    _check_positive(factor=factor)
    s = step + 1
    return factor * d_model**-0.5 * min(s**-0.5, s * warmup_steps**-1.5)


# -- cycles --------------------------------------------------------------------------------
def _triangle(step: int, step_size_up: int, step_size_down: int | None) -> float:
    """torch ``CyclicLR``'s position in the triangle: 0 at the cycle's ends, 1 at its peak."""
    down = step_size_up if step_size_down is None else step_size_down
    _check_positive_int(step_size_up=step_size_up, step_size_down=down)
    total_size = float(step_size_up + down)
    step_ratio = step_size_up / total_size
    cycle = math.floor(1 + step / total_size)
    x = 1.0 + step / total_size - cycle
    return x / step_ratio if x <= step_ratio else (x - 1) / (step_ratio - 1)


def cyclic_lr(step: int, *, base_lr: float, max_lr: float, step_size_up: int = 2000,
              step_size_down: int | None = None) -> float:
    """Triangular cyclical learning rate (Smith 2017; torch ``CyclicLR(mode="triangular")``):
    rises linearly from ``base_lr`` to ``max_lr`` in ``step_size_up`` steps and back in
    ``step_size_down`` (default: the same); period ``step_size_up + step_size_down``."""
    _check_step(step)
    _check_positive(base_lr=base_lr, max_lr=max_lr)
    return base_lr + (max_lr - base_lr) * _triangle(step, step_size_up, step_size_down)


def cyclic_momentum(step: int, *, base_momentum: float = 0.8, max_momentum: float = 0.9, step_size_up: int = 2000,
                    step_size_down: int | None = None) -> float:
    """The momentum ``CyclicLR`` sets (``cycle_momentum=True``): ``max_momentum`` when the lr
    is lowest, ``base_momentum`` at its peak (the mirror image of :func:`cyclic_lr`)."""
    _check_step(step)
    if not 0 <= base_momentum <= max_momentum < 1:
        raise ValueError(f"need 0 <= base_momentum <= max_momentum < 1, got {base_momentum}, {max_momentum}")
    return max_momentum - (max_momentum - base_momentum) * _triangle(step, step_size_up, step_size_down)


def _one_cycle_phase(step: int, total_steps: int, pct_start: float, three_phase: bool) -> tuple[int, float]:
    """(phase index, fraction of the phase done) exactly as torch ``OneCycleLR.get_lr``."""
    _check_step(step)
    _check_positive_int(total_steps=total_steps)
    if not isinstance(pct_start, float) or not 0 < pct_start < 1:
        raise ValueError(f"pct_start must be a float in (0, 1), got {pct_start}")
    if step > total_steps:
        raise ValueError(f"step must be <= total_steps={total_steps}, got {step}")
    if three_phase:
        ends = [float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps) - 2, total_steps - 1]
    else:
        ends = [float(pct_start * total_steps) - 1, total_steps - 1]
    start = 0.0
    for i, end in enumerate(ends):
        if step <= end or i == len(ends) - 1:
            return i, (step - start) / (end - start)
        start = end
    raise AssertionError("unreachable")


def _anneal(start: float, end: float, pct: float, anneal_strategy: str) -> float:
    if anneal_strategy == "cos":
        return _cosine(start, end, pct)
    if anneal_strategy == "linear":
        return (end - start) * pct + start
    raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")


def one_cycle_lr(step: int, *, max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> float:
    """One-cycle policy (Smith & Topin 2019; torch ``OneCycleLR``): from
    ``eta_i = max_lr / div_factor`` up to ``max_lr`` at step ``pct_start * total_steps - 1``,
    then down to ``eta_i / final_div_factor`` at step ``total_steps - 1`` (``three_phase``: back
    to ``eta_i`` at ``2 pct_start T - 2`` first)."""
    _check_positive(max_lr=max_lr, div_factor=div_factor, final_div_factor=final_div_factor)
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    phase, pct = _one_cycle_phase(step, total_steps, pct_start, three_phase)
    points = [(initial_lr, max_lr), (max_lr, initial_lr), (initial_lr, min_lr)] if three_phase else \
        [(initial_lr, max_lr), (max_lr, min_lr)]
    return _anneal(*points[phase], pct, anneal_strategy)


def one_cycle_momentum(step: int, *, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                       base_momentum: float = 0.85, max_momentum: float = 0.95, three_phase: bool = False) -> float:
    """The momentum (SGD ``momentum`` or Adam's ``beta1``) that ``OneCycleLR`` sets: from
    ``max_momentum`` down to ``base_momentum`` while the lr rises, and back up while it falls."""
    if not 0 <= base_momentum <= max_momentum < 1:
        raise ValueError(f"need 0 <= base_momentum <= max_momentum < 1, got {base_momentum}, {max_momentum}")
    phase, pct = _one_cycle_phase(step, total_steps, pct_start, three_phase)
    points = [(max_momentum, base_momentum), (base_momentum, max_momentum), (max_momentum, max_momentum)] \
        if three_phase else [(max_momentum, base_momentum), (base_momentum, max_momentum)]
    return _anneal(*points[phase], pct, anneal_strategy)


def cosine_warm_restarts_lr(step: int, *, base_lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> float:
    """SGDR (Loshchilov & Hutter 2017, eq. 5; torch ``CosineAnnealingWarmRestarts`` stepped once
    per step): cosine from ``eta0`` to ``eta_min`` within cycles of lengths ``T_0``,
    ``T_0 T_mult``, ``T_0 T_mult^2``, ...; at each restart the lr jumps back to ``eta0``."""
    _check_step(step)
    _check_positive(base_lr=base_lr)
    _check_positive_int(T_0=T_0, T_mult=T_mult)
    _check_nonneg(eta_min=eta_min)
    T_cur, T_i = step, T_0
    while T_cur >= T_i:          # walk the cycles: integer arithmetic, no float log
        T_cur, T_i = T_cur - T_i, T_i * T_mult
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


#: Name -> (function, default keyword arguments) for a 100-step run: the schedule explorer's menu.
SCHEDULES = {
    "constant": (constant_lr, {"base_lr": 0.1, "factor": 1.0, "total_iters": 0}),
    "step": (step_lr, {"base_lr": 0.1, "step_size": 30, "gamma": 0.1}),
    "multi-step": (multistep_lr, {"base_lr": 0.1, "milestones": [50, 75], "gamma": 0.1}),
    "exponential": (exponential_lr, {"base_lr": 0.1, "gamma": 0.96}),
    "polynomial": (polynomial_lr, {"base_lr": 0.1, "total_iters": 100, "power": 2.0}),
    "linear decay": (linear_lr, {"base_lr": 0.1, "start_factor": 1.0, "end_factor": 0.0, "total_iters": 100}),
    "cosine": (cosine_annealing_lr, {"base_lr": 0.1, "T_max": 100}),
    "warmup + cosine": (warmup_cosine_lr, {"base_lr": 0.1, "warmup_steps": 10, "total_steps": 100}),
    "cyclic": (cyclic_lr, {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 20}),
    "one-cycle": (one_cycle_lr, {"max_lr": 0.1, "total_steps": 100}),
    "warm restarts": (cosine_warm_restarts_lr, {"base_lr": 0.1, "T_0": 10, "T_mult": 2}),
}
