r"""Training memory: dynamic loss scaling, memory accounting, and counting what autograd holds.

The chapter ``chapters/scale`` ("Mixed precision", "Memory and checkpointing") teaches these.

**Dynamic loss scaling** (Micikevicius et al. 2018, "Mixed Precision Training", sec. 3.2; the
rule of ``torch.amp.GradScaler``): the loss is multiplied by a scale $S$ before the backward
pass so small fp16 gradients do not underflow; the gradients are divided by $S$ before the
step. If any gradient is inf or NaN the step is skipped and $S \leftarrow \beta S$
(``backoff_factor`` $\beta = 1/2$); after ``growth_interval`` consecutive clean steps
$S \leftarrow \gamma S$ (``growth_factor`` $\gamma = 2$).

**Memory accounting** (Rajbhandari et al. 2020, "ZeRO", sec. 3.1): with $\Psi$ parameters,
Adam in fp32 holds $4\Psi$ weights $+ 4\Psi$ gradients $+ 8\Psi$ moments $= 16\Psi$ bytes;
mixed-precision Adam holds $2\Psi + 2\Psi$ fp16 weights and gradients $+ 4\Psi$ fp32 master
weights $+ 8\Psi$ moments $= 16\Psi$ too. Activations grow with batch and sequence length
(Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
sec. 4.1): linearly in $BT$, plus $BhT^2$ for the attention matrix.

**Measuring CPU tensor memory.** :class:`SavedTensorCounter` counts the bytes autograd keeps
for the backward pass through ``torch.autograd.graph.saved_tensors_hooks``: every tensor an
operation saves passes through the pack hook, is counted once per storage (views share
storage) and leaves the count when autograd frees it. On CPU there is no
``torch.cuda.max_memory_allocated``; the process RSS mixes in the allocator's caching and
Python objects, and the profiler's CPU memory events are incomplete, while the saved tensors
are exactly the activation memory that training adds over inference.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "update_scale",
    "unscale_grads",
    "DynamicLossScaler",
    "training_memory",
    "transformer_activation_bytes",
    "SavedTensorCounter",
    "saved_tensor_bytes",
    "tensor_bytes",
    "optimizer_state_bytes",
]


# -- dynamic loss scaling ----------------------------------------------------------------------
def _check_scaler_args(growth_factor: float, backoff_factor: float, growth_interval: int) -> None:
    if not growth_factor > 1.0:
        raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
    if not 0.0 < backoff_factor < 1.0:
        raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
    if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) or growth_interval < 1:
        raise ValueError(f"growth_interval must be an int >= 1, got {growth_interval!r}")


def update_scale(
    scale: float, growth_tracker: int, found_inf: bool, *, growth_factor: float = 2.0, backoff_factor: float = 0.5, growth_interval: int = 2000
) -> tuple[float, int]:
    r"""One update of the loss scale; returns the new ``(scale, growth_tracker)``.

    Overflow: $S \leftarrow \beta S$, tracker $\leftarrow 0$. Clean step: tracker $+1$; when it
    reaches ``growth_interval``, $S \leftarrow \gamma S$ and tracker $\leftarrow 0$. Same rule
    and defaults as ``torch.amp.GradScaler`` (``torch._amp_update_scale_``), which also keeps
    $S$ when $\gamma S$ would overflow fp32.
    """
    if not scale > 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    _check_scaler_args(growth_factor, backoff_factor, growth_interval)
    if found_inf:
        return scale * backoff_factor, 0
    growth_tracker = growth_tracker + 1
    if growth_tracker == growth_interval:
        grown = float(torch.tensor(scale * growth_factor, dtype=torch.float32))
        return (grown if math.isfinite(grown) else scale), 0
    return scale, growth_tracker


def unscale_grads(grads: Iterable[Tensor | None], scale: float) -> tuple[list[Tensor | None], bool]:
    r"""Divide each gradient by the scale $S$; ``found_inf`` is True if any entry is inf or NaN."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    out, found_inf = [], False
    for g in grads:
        if g is None:
            out.append(None)
            continue
        found_inf = found_inf or not bool(torch.isfinite(g).all())
        out.append(g / scale)
    return out, found_inf


class DynamicLossScaler:
    """Thin stateful wrapper over :func:`update_scale` and :func:`unscale_grads`, with GradScaler's calls.

    ``scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()``: ``step``
    unscales the gradients of the optimizer's parameters in place and skips
    ``optimizer.step()`` when one is inf/NaN. ``skipped`` lists the skipped step indices.
    """

    def __init__(self, init_scale: float = 2.0**16, *, growth_factor: float = 2.0, backoff_factor: float = 0.5, growth_interval: int = 2000):
        _check_scaler_args(growth_factor, backoff_factor, growth_interval)
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self._scale, self._tracker, self._found_inf = float(init_scale), 0, False
        self.kwargs = dict(growth_factor=growth_factor, backoff_factor=backoff_factor, growth_interval=growth_interval)
        self.steps, self.skipped = 0, []

    def get_scale(self) -> float:
        return self._scale

    def scale(self, loss: Tensor) -> Tensor:
        return loss * self._scale

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        grads, self._found_inf = unscale_grads([p.grad for p in params], self._scale)
        for p, g in zip(params, grads):
            p.grad = g
        if self._found_inf:
            self.skipped.append(self.steps)
        else:
            optimizer.step()
        self.steps += 1

    def update(self) -> None:
        self._scale, self._tracker = update_scale(self._scale, self._tracker, self._found_inf, **self.kwargs)


# -- accounting --------------------------------------------------------------------------------
def training_memory(num_params: int, *, mixed_precision: bool = False, optimizer: str = "adam", activation_bytes: int = 0) -> dict[str, int]:
    r"""Bytes to train a $\Psi$-parameter model: weights, gradients, master weights, optimizer states, activations.

    fp32: $4\Psi + 4\Psi$; mixed precision: $2\Psi + 2\Psi$ fp16 plus $4\Psi$ fp32 master weights.
    Optimizer states in fp32: Adam $8\Psi$ (``exp_avg``, ``exp_avg_sq``), SGD with momentum
    $4\Psi$, plain SGD 0. Ignores Adam's per-tensor ``step`` counters (4 bytes per parameter
    *tensor*) and temporary buffers. Adam totals $16\Psi$ in both precisions (ZeRO, sec. 3.1).
    """
    if isinstance(num_params, bool) or not isinstance(num_params, int) or num_params < 0:
        raise ValueError(f"num_params must be an int >= 0, got {num_params!r}")
    states = {"adam": 8, "momentum": 4, "sgd": 0}
    if optimizer not in states:
        raise ValueError(f"optimizer must be one of {sorted(states)}, got {optimizer!r}")
    if activation_bytes < 0:
        raise ValueError(f"activation_bytes must be >= 0, got {activation_bytes}")
    width = 2 if mixed_precision else 4
    parts = {
        "weights": width * num_params,
        "gradients": width * num_params,
        "master_weights": 4 * num_params if mixed_precision else 0,
        "optimizer_states": states[optimizer] * num_params,
        "activations": int(activation_bytes),
    }
    parts["total"] = sum(parts.values())
    return parts


def transformer_activation_bytes(
    batch: int, seq_len: int, *, d_model: int, nhead: int, dim_feedforward: int, num_layers: int = 1, bytes_per_element: int = 4, flash: bool = False
) -> int:
    r"""Bytes autograd saves in a stack of ``dlbook.nn.TransformerEncoderLayer`` (Pre-LN, ReLU, no dropout).

    Per layer, counted tensor by tensor (the chapter lists them):
    $BT(12d + d_{ff} + 2) + BhT^2$ elements: the layer input and the two LayerNorms' outputs and
    statistics, $Q, K, V$, the attention output and projections, the FFN hidden layer, and the
    $h$ attention matrices $T \times T$. With ``flash=True`` the $BhT^2$ term is dropped (a
    FlashAttention kernel keeps $O(T)$ statistics instead; compare Korthikanti et al. 2022,
    eq. 2, $sbh(34 + 5as/h)$ bytes per layer in fp16 with dropout).
    """
    for name, value in (("batch", batch), ("seq_len", seq_len), ("d_model", d_model), ("nhead", nhead), ("dim_feedforward", dim_feedforward), ("num_layers", num_layers), ("bytes_per_element", bytes_per_element)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    per_token = 12 * d_model + dim_feedforward + 2  # (B, T, .) tensors
    scores = 0 if flash else nhead * seq_len * seq_len  # (B, h, T, T) softmax output
    return num_layers * batch * (seq_len * per_token + scores) * bytes_per_element


# -- measuring ---------------------------------------------------------------------------------
def tensor_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and tied weights count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"expected tensors, got {type(t).__name__}")
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes held in ``optimizer.state``, by state name (``exp_avg``, ``exp_avg_sq``, ``step``, ...)."""
    out: dict[str, int] = {}
    for state in optimizer.state.values():
        for name, value in state.items():
            if isinstance(value, Tensor):
                out[name] = out.get(name, 0) + value.untyped_storage().nbytes()
    return out


class _Held:
    """What the pack hook hands autograd: the tensor, and a finalizer that fires when autograd drops it."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Tensor):
        self.tensor = tensor


class SavedTensorCounter:
    r"""Context manager counting the bytes autograd holds for backward (``saved_tensors_hooks``).

    ``current`` is the bytes held now, ``peak`` the most held at once, ``packed`` the number of
    tensors saved. Storages are counted once however many ops save them; tensors sharing storage
    with one of ``exclude`` (the parameters: weights saved by a matmul are not activations) are
    not counted. Tensors saved inside ``torch.utils.checkpoint`` recomputation are not seen: they
    are created in the backward pass, outside this context.
    """

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._refs: dict[int, int] = {}
        self.current = self.peak = self.packed = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> object:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key in self._exclude or storage.nbytes() == 0:
            return t
        self.packed += 1
        if key not in self._refs:
            self._refs[key] = 0
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        self._refs[key] += 1
        held = _Held(t)
        weakref.finalize(held, self._release, key, storage.nbytes())
        return held

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.current -= nbytes

    @staticmethod
    def _unpack(held: object) -> Tensor:
        return held.tensor if isinstance(held, _Held) else held

    def __enter__(self) -> SavedTensorCounter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def saved_tensor_bytes(fn, *args: Tensor, exclude: Sequence[Tensor] | nn.Module = ()) -> int:
    """Bytes ``fn(*args)`` leaves held for its backward pass (activations; parameters in ``exclude`` not counted)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    params = list(exclude.parameters()) if isinstance(exclude, nn.Module) else list(exclude)
    with SavedTensorCounter(params) as counter:
        out = fn(*args)
        held = counter.current
    del out
    return held
