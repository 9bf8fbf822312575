"""Optimizers as pure functions: ``(param, grad, state, **hyper) -> (param, state)``.

Taught in the chapter "Optimization algorithms" (``chapters/optimizers``). Every function
takes the parameter, its gradient and the optimizer's own state (a ``dict``; ``None`` or
``{}`` for the first step), and returns the new parameter and a *new* state dict: nothing is
modified in place, nothing is hidden. State keys and hyperparameter names and defaults are
torch.optim's (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``step``, ...), so a test can
pass the same keyword arguments to both.

The first-order optimizers use only arithmetic (``**0.5`` for the square root), so they work
on NumPy arrays and torch tensors alike, and on a whole batch of starting points at once:
``param`` of shape ``(K, 2)`` is ``K`` independent 2-D runs (every operation is elementwise).
:func:`adafactor`, :func:`lars`, :func:`lamb` and :func:`newton_step` need torch tensors;
the stateless :func:`lars` and :func:`newton_step` return ``{}`` as their state.

Notation: ``theta`` parameter, ``g`` gradient, ``t`` step count (starting at 1), ``lr`` the
learning rate eta.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = [
    "adafactor",
    "adagrad",
    "adam",
    "adamw",
    "lamb",
    "lars",
    "momentum_textbook",
    "nesterov_lookahead",
    "newton_step",
    "rmsprop",
    "run",
    "sgd",
]

State = dict[str, Any]


# -- validation -------------------------------------------------------------------------
def _check_nonneg(**values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not value >= 0.0:  # also rejects NaN
            raise ValueError(f"{name} must be >= 0, got {value}")


def _check_unit(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_state(state: State | None, param: Any, keys: tuple[str, ...]) -> State:
    """An empty state is a first step; otherwise every key must be there, shaped like param."""
    if state is None or len(state) == 0:
        return {}
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict or None, got {type(state).__name__}")
    for key in keys:
        if key not in state:
            raise ValueError(f"state is missing {key!r} (has {sorted(state)}): state from another optimizer?")
        if tuple(state[key].shape) != tuple(param.shape):
            raise ValueError(f"state[{key!r}] has shape {tuple(state[key].shape)} but param has shape {tuple(param.shape)}")
    return state


def _check_shapes(param: Any, grad: Any) -> None:
    if tuple(param.shape) != tuple(grad.shape):
        raise ValueError(f"grad has shape {tuple(grad.shape)} but param has shape {tuple(param.shape)}")


def _maximum(a: Any, b: Any) -> Any:
    return torch.maximum(a, b) if isinstance(a, torch.Tensor) else (a > b) * a + (a <= b) * b


# -- SGD and momentum ---------------------------------------------------------------------
def sgd(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-3, momentum: float = 0.0,
    dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
) -> tuple[Any, State]:
    """One step of SGD, with PyTorch's momentum convention (torch.optim.SGD).

    .. math::
        g \\leftarrow g + \\lambda\\theta, \\quad
        b_t = \\mu b_{t-1} + (1-\\tau) g \\;(b_1 = g), \\quad
        \\theta \\leftarrow \\theta - \\eta\\, b_t \\;\\text{or, Nesterov,}\\; \\theta - \\eta (g + \\mu b_t)

    Conventions: the buffer ``b`` accumulates raw gradients and ``lr`` multiplies it *when
    applied*. This is PyTorch's own form, and its documentation says that it *differs* from
    Sutskever et al. (2013) and other frameworks, which put ``lr`` inside the velocity:
    ``v = mu * v + lr * g``, ``theta -= v`` (:func:`momentum_textbook`, the form of Polyak 1964
    and Sutskever et al. 2013, eq. 1). The two give identical iterates while ``lr`` is constant
    and ``dampening == 0`` (``v = lr * b``), and differ after ``lr`` changes. The first step sets
    ``b_1 = g`` (dampening not applied), as torch does. With ``momentum == 0`` the state stays ``{}``.
    """
    _check_nonneg(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    _check_shapes(param, grad)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov needs momentum > 0 and dampening = 0, got momentum={momentum}, dampening={dampening}")
    g = grad + weight_decay * param
    if momentum == 0:
        return param - lr * g, {}
    state = _check_state(state, param, ("momentum_buffer",))
    b = g if not state else momentum * state["momentum_buffer"] + (1 - dampening) * g
    d = g + momentum * b if nesterov else b  # the direction actually applied
    return param - lr * d, {"momentum_buffer": b}


def momentum_textbook(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-3, gamma: float = 0.9
) -> tuple[Any, State]:
    """Heavy-ball momentum in the textbook form (Polyak 1964; Qian 1999; Sutskever et al. 2013, eq. 1).

    .. math:: v_t = \\gamma v_{t-1} + \\eta g_t, \\qquad \\theta_{t+1} = \\theta_t - v_t, \\qquad v_0 = 0

    ``v`` is a *step* (it carries the learning rate), unlike torch's buffer ``b`` of
    :func:`sgd`, which is a sum of gradients: ``v_t = eta * b_t`` while ``eta`` is constant.
    The state key is ``"velocity"``.
    """
    _check_nonneg(lr=lr)
    _check_unit(gamma=gamma)
    _check_shapes(param, grad)
    state = _check_state(state, param, ("velocity",))
    v_prev = state["velocity"] if state else 0 * param
    v = gamma * v_prev + lr * grad  # v_t
    return param - v, {"velocity": v}


def nesterov_lookahead(
    param: Any, grad_fn: Callable[[Any], Any], state: State | None = None, *, lr: float = 1e-3, gamma: float = 0.9
) -> tuple[Any, State]:
    """Nesterov's accelerated gradient in the look-ahead form (Nesterov 1983; Sutskever et al. 2013).

    .. math:: v_t = \\gamma v_{t-1} + \\eta \\nabla f(\\theta_t - \\gamma v_{t-1}), \\qquad \\theta_{t+1} = \\theta_t - v_t

    The gradient is taken at the look-ahead point, so this needs ``grad_fn`` rather than a
    gradient. Substituting ``theta' = theta - gamma * v`` turns it into torch's
    ``SGD(nesterov=True)``, which only needs the gradient at the stored point ``theta'``.
    """
    _check_nonneg(lr=lr)
    _check_unit(gamma=gamma)
    state = _check_state(state, param, ("velocity",))
    v_prev = state["velocity"] if state else 0 * param
    g = grad_fn(param - gamma * v_prev)  # gradient at the look-ahead point
    _check_shapes(param, g)
    v = gamma * v_prev + lr * g  # v_t
    return param - v, {"velocity": v}


# -- adaptive methods --------------------------------------------------------------------
def adagrad(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-2, lr_decay: float = 0.0,
    weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
) -> tuple[Any, State]:
    """One AdaGrad step (Duchi, Hazan & Singer 2011), torch.optim.Adagrad's convention.

    .. math:: s_t = s_{t-1} + g_t^2, \\qquad \\theta \\leftarrow \\theta - \\frac{\\eta_t}{\\sqrt{s_t} + \\epsilon} g_t, \\qquad \\eta_t = \\frac{\\eta}{1 + (t-1)\\,\\text{lr\\_decay}}

    Convention: ``eps`` is added *outside* the square root (torch), not ``sqrt(s + eps)``.
    The effective step ``eta / sqrt(s_t)`` can only shrink, because ``s_t`` only grows.
    """
    _check_nonneg(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                  initial_accumulator_value=initial_accumulator_value)
    _check_shapes(param, grad)
    state = _check_state(state, param, ("sum",))
    s_prev = state["sum"] if state else 0 * param + initial_accumulator_value
    t = state.get("step", 0) + 1
    g = grad + weight_decay * param
    s = s_prev + g**2  # s_t
    clr = lr / (1 + (t - 1) * lr_decay)
    return param - clr * g / (s**0.5 + eps), {"sum": s, "step": t}


def rmsprop(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-2, alpha: float = 0.99,
    eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
) -> tuple[Any, State]:
    """One RMSprop step (Tieleman & Hinton 2012, lecture 6e), torch.optim.RMSprop's convention.

    .. math:: s_t = \\alpha s_{t-1} + (1-\\alpha) g_t^2, \\qquad b_t = \\mu b_{t-1} + \\frac{g_t}{\\sqrt{s_t} + \\epsilon}, \\qquad \\theta \\leftarrow \\theta - \\eta\\, b_t

    Conventions: ``s_0 = 0`` and no bias correction; ``eps`` outside the square root (torch).
    With ``momentum == 0`` the update is ``eta * g / (sqrt(s) + eps)``. Not centered.
    """
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay, momentum=momentum)
    _check_unit(alpha=alpha)
    _check_shapes(param, grad)
    state = _check_state(state, param, ("square_avg",) + (("momentum_buffer",) if momentum else ()))
    s_prev = state["square_avg"] if state else 0 * param
    g = grad + weight_decay * param
    s = alpha * s_prev + (1 - alpha) * g**2  # s_t
    step = g / (s**0.5 + eps)
    new = {"square_avg": s, "step": state.get("step", 0) + 1}
    if momentum > 0:
        step = momentum * (state["momentum_buffer"] if state else 0 * param) + step
        new["momentum_buffer"] = step
    return param - lr * step, new


def adam(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
    amsgrad: bool = False, bias_correction: bool = True,
) -> tuple[Any, State]:
    """One Adam step (Kingma & Ba 2015, Algorithm 1), torch.optim.Adam's convention.

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\quad v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2, \\\\
        \\hat m_t = m_t / (1-\\beta_1^t), \\quad \\hat v_t = v_t / (1-\\beta_2^t), \\quad
        \\theta \\leftarrow \\theta - \\eta\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    ``weight_decay`` is L2 added to the gradient (``g + lambda * theta``), *not* AdamW's
    decoupled decay. ``amsgrad`` uses the running max of ``v`` (Reddi et al. 2018; torch keeps
    the max of the *uncorrected* v). ``bias_correction=False`` (not in torch) drops the two
    divisions: with ``m_0 = v_0 = 0`` the first steps are then biased toward zero.
    """
    beta1, beta2 = betas
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    _check_unit(beta1=beta1, beta2=beta2)
    _check_shapes(param, grad)
    state = _check_state(state, param, ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()))
    m_prev, v_prev = (state["exp_avg"], state["exp_avg_sq"]) if state else (0 * param, 0 * param)
    t = state.get("step", 0) + 1
    g = grad + weight_decay * param
    m = beta1 * m_prev + (1 - beta1) * g  # m_t
    v = beta2 * v_prev + (1 - beta2) * g**2  # v_t
    new = {"exp_avg": m, "exp_avg_sq": v, "step": t}
    if amsgrad:
        v = new["max_exp_avg_sq"] = _maximum(state["max_exp_avg_sq"], v) if state else v
    c1, c2 = (1 - beta1**t, 1 - beta2**t) if bias_correction else (1.0, 1.0)
    m_hat, v_hat = m / c1, v / c2
    return param - lr * m_hat / (v_hat**0.5 + eps), new


def adamw(
    param: Any, grad: Any, state: State | None = None, *, lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
    amsgrad: bool = False,
) -> tuple[Any, State]:
    """One AdamW step (Loshchilov & Hutter 2019, Algorithm 2), torch.optim.AdamW's convention.

    .. math:: \\theta \\leftarrow (1 - \\eta\\lambda)\\,\\theta, \\qquad \\theta \\leftarrow \\theta - \\eta\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    The decay multiplies ``lr * weight_decay`` (torch), so it follows the lr schedule; the
    paper writes ``eta_t * lambda`` with a separate schedule multiplier ``eta_t``. The decay
    never enters ``m`` or ``v``, so it is not divided by ``sqrt(v)`` as Adam's L2 term is.
    """
    _check_nonneg(weight_decay=weight_decay, lr=lr)
    decayed = param * (1 - lr * weight_decay)  # decoupled weight decay
    return adam(decayed, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=0.0, amsgrad=amsgrad)


def adafactor(
    param: torch.Tensor, grad: torch.Tensor, state: State | None = None, *, lr: float = 1e-2,
    beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0,
    weight_decay: float = 0.0,
) -> tuple[torch.Tensor, State]:
    """One Adafactor step (Shazeer & Stern 2018, Alg. 4/5), torch.optim.Adafactor's convention.

    For a matrix ``G`` (last two dims), only row and column means of ``G**2`` are averaged:

    .. math::
        \\hat\\beta_{2t} = 1 - t^{c}, \\quad r_t = \\hat\\beta_{2t} r_{t-1} + (1-\\hat\\beta_{2t})\\,\\text{mean}_j G^2, \\quad
        c_t = \\ldots\\,\\text{mean}_i G^2, \\quad \\hat V = r_t c_t^\\top / \\text{mean}(r_t), \\\\
        U = G / \\sqrt{\\max(\\hat V, \\epsilon_1^2)}, \\quad
        \\theta \\leftarrow \\theta - \\max(\\epsilon_2, \\text{RMS}(\\theta))\\,\\min(\\eta, t^{-1/2})\\, U / \\max(1, \\text{RMS}(U)/d)

    ``r c^T / mean(r)`` with means equals the paper's ``R C^T / sum(R)`` with sums. Torch's
    conventions, which differ from the paper: no first moment (the paper's beta1 = 0 variant),
    ``eps1`` clamps ``V`` (squared) instead of being added to ``G**2``, ``eps1=None`` means the
    dtype's machine epsilon, ``lr`` caps the relative step, weight decay is decoupled.
    Vectors keep a full ``variance``. State: ``row_var`` (..., R, 1), ``col_var`` (..., 1, C).
    """
    eps1, eps2 = eps
    eps1 = torch.finfo(param.dtype).eps if eps1 is None else eps1
    _check_nonneg(lr=lr, eps1=eps1, eps2=eps2, weight_decay=weight_decay)
    if beta2_decay > 0 or d < 1:
        raise ValueError(f"need beta2_decay <= 0 and d >= 1, got beta2_decay={beta2_decay}, d={d}")
    _check_shapes(param, grad)
    factored = param.dim() > 1
    t = (state or {}).get("step", 0) + 1
    keys = ("row_var", "col_var") if factored else ("variance",)
    if state and any(k not in state for k in keys):
        raise ValueError(f"state has keys {sorted(state)} but a {param.dim()}-D param needs {keys}")
    one_minus_beta2 = t**beta2_decay  # 1 - beta2_hat_t
    alpha = max(eps2, param.norm().item() / param.numel() ** 0.5) * min(lr, t**-0.5)  # relative step
    theta = param * (1 - lr * weight_decay)
    if factored:
        r_prev = state["row_var"] if state else torch.zeros_like(param[..., :1])
        c_prev = state["col_var"] if state else torch.zeros_like(param[..., :1, :])
        if r_prev.shape != param[..., :1].shape or c_prev.shape != param[..., :1, :].shape:
            raise ValueError(f"row_var/col_var shapes {tuple(r_prev.shape)}/{tuple(c_prev.shape)} do not fit param {tuple(param.shape)}")
        r = r_prev + one_minus_beta2 * ((grad**2).mean(-1, keepdim=True) - r_prev)  # (..., R, 1)
        c = c_prev + one_minus_beta2 * ((grad**2).mean(-2, keepdim=True) - c_prev)  # (..., 1, C)
        v_hat = r @ c / r.mean(-2, keepdim=True).clamp(min=eps1)  # (..., R, C)
        new = {"row_var": r, "col_var": c, "step": t}
    else:
        v_prev = _check_state(state, param, ("variance",)).get("variance", torch.zeros_like(param))
        v_hat = v_prev + one_minus_beta2 * (grad**2 - v_prev)
        new = {"variance": v_hat, "step": t}
    u = grad / v_hat.clamp(min=eps1 * eps1).sqrt()  # U_t
    denom = max(1.0, u.norm().item() / (u.numel() ** 0.5 * d))  # update clipping
    return theta - alpha / denom * u, new


def lars(
    param: torch.Tensor, grad: torch.Tensor, state: State | None = None, *, lr: float = 1e-3,
    trust_coefficient: float = 1e-3, eps: float = 1e-9,
) -> tuple[torch.Tensor, State]:
    """One LARS step for one layer, without momentum (You, Gitman & Ginsburg 2017, eq. 6).

    .. math:: \\theta \\leftarrow \\theta - \\eta\\, \\tau \\frac{\\lVert\\theta\\rVert}{\\lVert g\\rVert + \\epsilon}\\, g

    So ``||d theta|| / ||theta|| = lr * trust_coefficient`` in every layer, whatever its
    gradient scale. (Weight decay and momentum, in the paper, are left out here.)
    Conventions: a zero gradient gives a zero step, also with ``eps=0`` (the trust ratio is
    set to 0 there instead of computing 0/0 = NaN). A zero tensor (``||theta|| = 0``, e.g. a
    zero-initialised bias) gets trust ratio 0 and never moves, as the formula says: exclude such
    tensors from LARS (see the chapter) or use :func:`lamb`'s fallback ratio of 1.
    Stateless: ``state`` is accepted and returned as ``{}``, so that LARS has the
    ``(param, state)`` contract of every other optimizer here (and works with :func:`run`).
    """
    _check_nonneg(lr=lr, trust_coefficient=trust_coefficient, eps=eps)
    _check_shapes(param, grad)
    _check_stateless(state, "lars")
    w_norm, g_norm = param.norm(), grad.norm()
    safe_g_norm = torch.where(g_norm > 0, g_norm, torch.ones_like(g_norm))  # no 0/0 when g = 0
    trust_ratio = torch.where(g_norm > 0, trust_coefficient * w_norm / (safe_g_norm + eps), torch.zeros_like(g_norm))
    return param - lr * trust_ratio * grad, {}


def _check_stateless(state: Any, name: str) -> None:
    if state is not None and not (isinstance(state, dict) and len(state) == 0):
        hint = " (the Hessian is now the keyword hessian=...)" if isinstance(state, torch.Tensor) else ""
        raise TypeError(f"{name} keeps no state: pass None or {{}} as state, got {type(state).__name__}{hint}")


def lamb(
    param: torch.Tensor, grad: torch.Tensor, state: State | None = None, *, lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
) -> tuple[torch.Tensor, State]:
    """One LAMB step for one layer (You et al. 2019, "Large batch optimization for deep learning", Algorithm 2).

    .. math::
        m_t, v_t, \\hat m_t, \\hat v_t \\text{ as in Adam}, \\quad r_t = \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon), \\quad
        u_t = r_t + \\lambda \\theta, \\\\
        \\theta \\leftarrow \\theta - \\eta\\, \\frac{\\phi(\\lVert\\theta\\rVert)}{\\lVert u_t\\rVert}\\, u_t

    So ``||d theta|| / ||theta|| = lr`` in every layer. Conventions: ``phi`` is the identity (the
    paper allows a clipped phi); the trust ratio is 1 when ``||theta||`` or ``||u_t||`` is 0
    (as common implementations do: otherwise a zero-initialised bias never moves);
    ``weight_decay`` is decoupled (added to the Adam direction, as in AdamW), not L2 in ``g``.
    torch.optim has no LAMB; the tests compare with a hand-written Algorithm 2.
    """
    beta1, beta2 = betas
    _check_nonneg(lr=lr, eps=eps, weight_decay=weight_decay)
    _check_unit(beta1=beta1, beta2=beta2)
    _check_shapes(param, grad)
    state = _check_state(state, param, ("exp_avg", "exp_avg_sq"))
    m_prev, v_prev = (state["exp_avg"], state["exp_avg_sq"]) if state else (0 * param, 0 * param)
    t = state.get("step", 0) + 1
    m = beta1 * m_prev + (1 - beta1) * grad  # m_t
    v = beta2 * v_prev + (1 - beta2) * grad**2  # v_t
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    u = m_hat / (v_hat**0.5 + eps) + weight_decay * param  # r_t + lambda theta
    w_norm, u_norm = param.norm(), u.norm()
    trust_ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
    return param - lr * trust_ratio * u, {"exp_avg": m, "exp_avg_sq": v, "step": t}


def newton_step(
    param: torch.Tensor, grad: torch.Tensor, state: State | None = None, *,
    hessian: torch.Tensor | Callable[[torch.Tensor], torch.Tensor], lr: float = 1.0,
) -> tuple[torch.Tensor, State]:
    """One (damped) Newton step: solve ``H d = g`` and move ``theta - lr * d``.

    .. math:: \\theta \\leftarrow \\theta - \\eta\\, H^{-1} \\nabla f(\\theta)

    ``param`` and ``grad`` are flat vectors of length ``n``; ``hessian`` (keyword) is the
    ``(n, n)`` matrix, or a function ``param -> (n, n)`` so that :func:`run` can iterate it.
    Returns ``(param, {})``: the ``(param, state)`` contract of every optimizer here (Newton
    keeps no state). The solve (LU, ``torch.linalg.solve``) costs O(n^3) time and H costs
    O(n^2) memory. No safeguard: on an indefinite H the step heads for the saddle just as
    readily (Dauphin et al. 2014).
    """
    _check_nonneg(lr=lr)
    _check_stateless(state, "newton_step")
    if param.dim() != 1 or grad.shape != param.shape:
        raise ValueError(f"param and grad must be vectors of one shape, got {tuple(param.shape)} and {tuple(grad.shape)}")
    n = param.shape[0]
    H = hessian(param) if callable(hessian) else hessian
    if not isinstance(H, torch.Tensor) or tuple(H.shape) != (n, n):
        raise ValueError(f"hessian must have shape ({n}, {n}), got {tuple(getattr(H, 'shape', ()))}")
    d = torch.linalg.solve(H, grad)  # H d = g
    return param - lr * d, {}


def run(
    step: Callable[..., tuple[Any, State]], grad_fn: Callable[[Any], Any], x0: Any, *, steps: int, **hyper: Any
) -> Any:
    """Iterate ``step`` from ``x0`` for ``steps`` steps; returns the path, shape ``(steps + 1, *x0.shape)``.

    ``x0`` may hold many starting points, e.g. ``(K, 2)``: the path is then ``(steps + 1, K, 2)``.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    x, state, path = x0, {}, [x0]
    for _ in range(steps):
        x, state = step(x, grad_fn(x), state, **hyper)
        path.append(x)
    return torch.stack(path) if isinstance(x0, torch.Tensor) else np.stack(path)
