"""Step time of dlbook.optim (pure functions, no fused ops) versus torch.optim on one MLP.

Prints a table: median time per optimizer step over repeats, and the ratio dlbook / torch.
"""

import statistics
import time

import torch
from torch import nn

from dlbook import optim

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
X, y = torch.randn(256, 784), torch.randint(0, 10, (256,))
nn.functional.cross_entropy(model(X), y).backward()
params = list(model.parameters())

CASES = [
    ("SGD", optim.sgd, torch.optim.SGD, dict(lr=0.01)),
    ("SGD momentum", optim.sgd, torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    ("AdaGrad", optim.adagrad, torch.optim.Adagrad, dict(lr=0.01)),
    ("RMSprop", optim.rmsprop, torch.optim.RMSprop, dict(lr=0.01)),
    ("Adam", optim.adam, torch.optim.Adam, dict(lr=1e-3)),
    ("AdamW", optim.adamw, torch.optim.AdamW, dict(lr=1e-3)),
    ("Adafactor", optim.adafactor, torch.optim.Adafactor, dict(lr=1e-2)),
]


def median_ms(fn, repeats: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    print(f"model: {sum(p.numel() for p in params):,} parameters, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'optimizer':14s} {'dlbook ms':>10s} {'torch ms':>10s} {'ratio':>7s}")
    for name, fn, cls, kw in CASES:
        ours = [p.detach().clone() for p in params]
        states = [{} for _ in params]

        def ours_step():
            with torch.no_grad():
                for i, p in enumerate(params):
                    ours[i], states[i] = fn(ours[i], p.grad, states[i], **kw)

        theirs = [p.detach().clone().requires_grad_(True) for p in params]
        for t, p in zip(theirs, params):
            t.grad = p.grad.clone()
        opt = cls(theirs, **kw)
        t_ours, t_torch = median_ms(ours_step), median_ms(opt.step)
        print(f"{name:14s} {t_ours:10.3f} {t_torch:10.3f} {t_ours / t_torch:7.2f}")


if __name__ == "__main__":
    main()
