"""Cost of gradients: reverse vs forward mode, hand-written vs autograd backward, gradient checks.

    .venv/bin/python benchmarks/foundations_backprop.py

Prints three tables (median of repeats, time.perf_counter). The Foundations chapter claims that
reverse mode needs one backward sweep for a scalar of n inputs while forward mode needs n
sweeps, and that a central-difference gradient check costs 2n function evaluations; these
tables show what that means in wall-clock time. No assertions: timings vary by machine.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from torch.func import jvp, vjp

from dlbook import gradcheck, mlp

REPEATS = 5


def median_ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def reverse_vs_forward() -> None:
    print("gradient of f(x) = sum(tanh(W x)^2), W: (50, n)")
    print(f"{'n':>6}  {'reverse (1 vjp) ms':>18}  {'forward (n jvp) ms':>18}  {'ratio':>7}")
    for n in (10, 100, 1000):
        W = torch.randn(50, n, dtype=torch.float64) / math.sqrt(n)
        f = lambda v: torch.tanh(W @ v).square().sum()
        x = torch.randn(n, dtype=torch.float64)
        eye = torch.eye(n, dtype=torch.float64)
        rev = median_ms(lambda: vjp(f, x)[1](torch.ones((), dtype=torch.float64)))
        fwd = median_ms(lambda: [jvp(f, (x,), (e,))[1] for e in eye], repeats=3 if n >= 1000 else REPEATS)
        print(f"{n:>6}  {rev:>18.3f}  {fwd:>18.2f}  {fwd / rev:>7.0f}")


def hand_vs_autograd() -> None:
    print("\ntwo-layer MLP + softmax cross-entropy, batch 256, d = 64, C = 10 (forward + backward)")
    print(f"{'hidden':>6}  {'hand-written ms':>15}  {'autograd ms':>11}")
    for hidden in (64, 256, 1024):
        x, y = torch.randn(256, 64), torch.randint(10, (256,))
        params = [torch.randn(hidden, 64) * 0.1, torch.zeros(hidden), torch.randn(10, hidden) * 0.1, torch.zeros(10)]
        leaves = [p.clone().requires_grad_() for p in params]

        def hand():
            loss, cache = mlp.two_layer_forward(x, y, *params)
            return mlp.two_layer_backward(cache)

        def auto():
            loss, _ = mlp.two_layer_forward(x, y, *leaves)
            return torch.autograd.grad(loss, leaves)

        print(f"{hidden:>6}  {median_ms(hand):>15.3f}  {median_ms(auto):>11.3f}")


def gradient_check_cost() -> None:
    print("\ncentral-difference gradient check of a two-layer MLP loss w.r.t. W1 (float64)")
    print(f"{'params':>6}  {'evaluations':>11}  {'check ms':>9}  {'autograd ms':>11}")
    x, y = torch.randn(32, 8, dtype=torch.float64), torch.randint(3, (32,))
    for hidden in (4, 16, 64):
        w1 = torch.randn(hidden, 8, dtype=torch.float64)
        rest = [torch.zeros(hidden, dtype=torch.float64), torch.randn(3, hidden, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
        f = lambda w: mlp.two_layer_forward(x, y, w, *rest)[0]
        check = median_ms(lambda: gradcheck.numerical_gradient(f, w1), repeats=3)
        leaf = w1.clone().requires_grad_()
        auto = median_ms(lambda: torch.autograd.grad(f(leaf), leaf))
        print(f"{w1.numel():>6}  {2 * w1.numel():>11}  {check:>9.1f}  {auto:>11.3f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    reverse_vs_forward()
    hand_vs_autograd()
    gradient_check_cost()
