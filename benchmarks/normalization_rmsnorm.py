"""LayerNorm vs RMSNorm forward time on CPU (torch's modules and dlbook.norm), median of repeats."""

import time

import numpy as np
import torch
from torch import nn

from dlbook import rng
from dlbook.norm import layer_norm, rms_norm


def median_time(fn, repeats: int = 50) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    rng.seed(0)
    print(f"{'shape':>14} | {'nn.LayerNorm us':>15} | {'nn.RMSNorm us':>13} | {'dlbook LN us':>12} | {'dlbook RMS us':>13}")
    with torch.no_grad():
        for rows, d in [(64, 256), (256, 1024), (1024, 4096)]:
            x = torch.randn(rows, d)
            ln, rms = nn.LayerNorm(d), nn.RMSNorm(d)
            cols = [median_time(lambda: ln(x)), median_time(lambda: rms(x)),
                    median_time(lambda: layer_norm(x, d)), median_time(lambda: rms_norm(x, d))]
            print(f"{str((rows, d)):>14} | " + " | ".join(f"{c * 1e6:>13.0f}" for c in cols))


if __name__ == "__main__":
    main()
