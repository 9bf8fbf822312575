"""Optimizer-trajectory explorer of chapters/optimizers/03-adaptive: live-update latency and static size.

The compute/draw functions are copied from the notebook (the only place the book keeps them).
Prints the median and p90 of one live update (compute + redraw + PNG encode, as Explorer.live
does on a slider change) over random control values, and the static HTML size.
"""

import functools
import random
import statistics
import time

import numpy as np

from dlbook import funcs, optim, plot
from dlbook.widgets import Explorer


FUNCTION_NAMES = ["quadratic", "rosenbrock", "beale", "himmelblau", "saddle"]
BASE_LR = {"quadratic": 0.05, "rosenbrock": 2e-3, "beale": 1e-2, "himmelblau": 1e-2, "saddle": 0.1}
GROUPS = {"SGD, momentum, Nesterov": ["SGD", "momentum", "Nesterov"], "AdaGrad, RMSprop, Adam": ["AdaGrad", "RMSprop", "Adam"]}
LR_GRID = 10.0 ** np.arange(-4, 1.01, 0.5)
STEPS = 150


def optimizer_step(name, beta):
    """(step function, fixed hyperparameters) for one optimizer of the explorer."""
    return {
        "SGD": (optim.sgd, {}),
        "momentum": (optim.sgd, {"momentum": beta}),
        "Nesterov": (optim.sgd, {"momentum": beta, "nesterov": True}),
        "AdaGrad": (optim.adagrad, {}),
        "RMSprop": (optim.rmsprop, {"alpha": 0.99}),
        "Adam": (optim.adam, {"betas": (beta, 0.999)}),
    }[name]


def trajectory(function, name, lr, beta, steps=STEPS):
    fn = funcs.FUNCTIONS[function]
    step, hyper = optimizer_step(name, beta)
    with np.errstate(all="ignore"):
        path = optim.run(step, fn.grad, np.array(fn.start), steps=steps, lr=float(lr), **hyper)
        loss = fn.f(path) - fn.fmin
    loss = np.where(np.isfinite(loss), loss, np.inf)
    return path, loss


@functools.lru_cache(maxsize=None)
def tuned_lr(function, name, beta):
    """Tuning rule: the lr on a half-decade grid 1e-4..10 with the lowest median loss over the last 20 steps."""
    scores = [np.median(trajectory(function, name, lr, beta)[1][-20:]) for lr in LR_GRID]
    return float(LR_GRID[int(np.argmin(scores))])


LR_MODES = {"same lr x0.3": 0.3, "same lr": 1.0, "same lr x3": 3.0, "tuned per optimizer": None}


def compute_paths(function, optimizers, lr, beta):
    names = GROUPS[optimizers]
    scale = LR_MODES[lr]
    lrs = [BASE_LR[function] * scale if scale is not None else tuned_lr(function, n, beta) for n in names]
    runs = [trajectory(function, n, lr, beta) for n, lr in zip(names, lrs)]
    return {"function": function, "names": names, "lrs": lrs, "paths": [r[0] for r in runs], "losses": [r[1] for r in runs]}


@functools.lru_cache(maxsize=None)
def background(function, n=80):
    fn = funcs.FUNCTIONS[function]
    x, y, z = funcs.mesh(fn, n=n)
    return x, y, np.log10(z - fn.fmin + 1e-2)


def draw_paths(fig, data):
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    contours = {}
    for name in FUNCTION_NAMES:  # one contour set per function, shown or hidden by update
        x, y, z = background(name)
        contours[name] = ax.contour(x, y, z, levels=10, colors="0.65", linewidths=0.8)
    ax.grid(False)
    lines, curves = [], []
    for i in range(3):
        (line,) = ax.plot([], [], "-", color=plot.color(i), linewidth=1.5)
        (curve,) = ax2.semilogy([], [], color=plot.color(i))
        lines.append(line)
        curves.append(curve)
    (start,) = ax.plot([], [], "s", color="black", markersize=7)
    (minima,) = ax.plot([], [], "*", color=plot.color(3), markersize=12)
    ax2.set(xlabel="step", ylabel="f - f*", xlim=(0, STEPS), ylim=(1e-8, 1e4))
    legend = ax2.legend(lines, ["a", "b", "c"], loc="lower left", fontsize=9)

    def update(data):
        fn = funcs.FUNCTIONS[data["function"]]
        x, y, _ = background(data["function"])
        for name, cs in contours.items():
            cs.set_visible(name == data["function"])
        ax.set(xlim=(x[0], x[-1]), ylim=(y[0], y[-1]))
        for line, curve, path, loss in zip(lines, curves, data["paths"], data["losses"]):
            line.set_data(path[:, 0], path[:, 1])
            curve.set_data(np.arange(len(loss)), np.clip(loss, 1e-8, 1e4))
        start.set_data([fn.start[0]], [fn.start[1]])
        minima.set_data(np.array(fn.minima)[:, 0], np.array(fn.minima)[:, 1])
        for text, name, lr in zip(legend.get_texts(), data["names"], data["lrs"]):
            text.set_text(f"{name}, lr {lr:.2g}")

    update(data)
    return update


CONTROLS = {
    "function": FUNCTION_NAMES,
    "optimizers": list(GROUPS),
    "lr": list(LR_MODES),
    "beta": [0.5, 0.9],
}


def make_explorer():
    return Explorer(compute_paths, draw_paths, CONTROLS, title="Optimizer trajectories", figsize=(7.0, 3.2), dpi=66,
                    initial={"function": "rosenbrock", "lr": "same lr", "beta": 0.9})




def main() -> None:
    ex = Explorer(compute_paths, draw_paths, CONTROLS, title="Optimizer trajectories", figsize=(7.0, 3.2), dpi=66,
                  initial={"function": "rosenbrock", "optimizers": "SGD, momentum, Nesterov", "lr": "same lr", "beta": 0.9})
    t0 = time.perf_counter()
    html = ex.static_html()  # also fills the tuned-lr cache, as a live session warms up after a few changes
    t_static = time.perf_counter() - t0
    rng = random.Random(0)
    times = []
    for _ in range(40):
        values = {k: rng.choice(v) for k, v in ex.grid.items()}
        t0 = time.perf_counter()
        ex.frame_png(**values)
        times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    print(f"{'explorer':24s} {'frames':>6s} {'median ms':>10s} {'p90 ms':>8s} {'static kB':>10s} {'build s':>8s}")
    print(f"{'optimizer trajectories':24s} {ex.n_frames:6d} {statistics.median(times):10.1f} {times[int(0.9 * len(times))]:8.1f} {len(html.encode()) / 1e3:10.0f} {t_static:8.1f}")


if __name__ == "__main__":
    main()
