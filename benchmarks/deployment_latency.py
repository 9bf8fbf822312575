"""Inference latency of one MLP along the deployment paths: eager, torch.export, onnxruntime, INT8.

Rows: eager PyTorch (fp32), eager after torchao's ``quantize_`` with
``Int8DynamicActivationInt8WeightConfig`` (int8), the ``torch.export`` program's module (fp32),
onnxruntime on the ``torch.onnx.export(dynamo=True)`` graph (fp32, default graph optimizations),
and onnxruntime after ``onnxruntime.quantization.quantize_dynamic`` (int8 weights) and
``quantize_static`` (QDQ, calibrated). Columns: p50 and p99 latency in microseconds for each batch
size, from interleaved repeats on one thread (``dlbook.inference.time_interleaved``). Run with
``OMP_NUM_THREADS=1 python benchmarks/deployment_latency.py``; compare rows within one run only.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from dlbook import rng
from dlbook.inference import time_interleaved

BATCH_SIZES = (1, 8, 64, 256)
REPEATS = 50


def _quiet() -> None:
    for name in ["torch.onnx", "torch.export", "torchao", "torch.utils._pytree"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _onnx_paths(model: nn.Module, workdir: str, calibration: torch.Tensor) -> dict[str, str]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, pre = os.path.join(workdir, "fp32.onnx"), os.path.join(workdir, "pre.onnx")
    torch.onnx.export(model, (calibration[:8],), fp32, dynamo=True, external_data=False, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    quant_pre_process(fp32, pre)
    import onnx

    name = onnx.load(pre).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: calibration[i : i + 32].numpy()} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    paths = {"onnxruntime fp32": pre, "onnxruntime int8 dynamic": os.path.join(workdir, "dyn.onnx"),
             "onnxruntime int8 QDQ static": os.path.join(workdir, "qdq.onnx")}
    quantize_dynamic(pre, paths["onnxruntime int8 dynamic"], weight_type=QuantType.QInt8)
    quantize_static(pre, paths["onnxruntime int8 QDQ static"], Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return paths


def main() -> None:
    import onnxruntime as ort

    _quiet()
    ort.set_default_logger_severity(3)
    torch.set_num_threads(1)
    rng.seed(0)
    d_in, hidden, d_out = 512, 1024, 512
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d_out)).eval()
    x_all = torch.randn(max(BATCH_SIZES), d_in, generator=rng.torch_generator(1))
    runners: dict[str, callable] = {"eager fp32": model}
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        int8_model = copy.deepcopy(model)
        quantize_(int8_model, Int8DynamicActivationInt8WeightConfig())
        runners["eager torchao int8"] = int8_model
    except Exception as err:  # torchao missing or without CPU kernels: leave the row out, say why
        print(f"(torchao int8 row skipped: {type(err).__name__}: {err})")
    runners["torch.export fp32"] = torch.export.export(model, (x_all[:8],), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    with tempfile.TemporaryDirectory() as workdir:
        sessions = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for k, p in _onnx_paths(model, workdir, x_all).items()}
        for k, s in sessions.items():
            name = s.get_inputs()[0].name
            runners[k] = lambda x, s=s, name=name: s.run(None, {name: x.numpy()})[0]
        header = f"{'path':<30}" + "".join(f"{'b=' + str(b) + ' p50':>12}{'p99':>9}" for b in BATCH_SIZES)
        print(f"MLP {d_in}-{hidden}-{hidden}-{d_out}, one thread, microseconds per batch ({REPEATS} interleaved repeats)")
        print(header)
        results = {k: [] for k in runners}
        with torch.inference_mode():
            for b in BATCH_SIZES:
                x = x_all[:b].contiguous()
                times = time_interleaved({k: (lambda f=f: f(x)) for k, f in runners.items()}, repeats=REPEATS, warmup=3)
                for k, t in times.items():
                    results[k].append(np.percentile(t, [50, 99]) * 1e6)
        for k, rows in results.items():
            print(f"{k:<30}" + "".join(f"{p50:>12.0f}{p99:>9.0f}" for p50, p99 in rows))


if __name__ == "__main__":
    main()
