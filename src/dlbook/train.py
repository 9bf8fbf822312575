"""One small training loop for the whole book (the chapter "The training pipeline").

Every chapter that trains a model calls :func:`fit` instead of writing its own loop::

    from dlbook.train import fit, evaluate, tensor_loader, EarlyStopping
    train = tensor_loader(X_train, y_train, batch_size=64, shuffle=True, generator=rng.torch_generator(0))
    val = tensor_loader(X_val, y_val, batch_size=256)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, train,
                  epochs=20, val_loader=val, metrics={"acc": accuracy},
                  callbacks=[EarlyStopping("val_loss", patience=3)])
    history["val_acc"][-1]            # per-epoch values; history.steps["loss"] per optimizer step

The stable interface (other chapters rely on it; extend only by new keyword arguments):

* ``fit(model, optimizer, loss_fn, train_loader, *, epochs=1, val_loader=None, metrics=None,
  scheduler=None, scheduler_interval="step", clip_grad_norm=None, clip_grad_value=None,
  accumulate=1, callbacks=(), progress=False, forward=None, checkpoint_path=None,
  resume_from=None) -> History``.
* ``evaluate(model, loader, *, loss_fn=None, metrics=None, forward=None) -> dict[str, float]``.
* ``History``: ``history.epochs[key]`` (keys ``"epoch"``, ``"train_loss"``, ``"lr"``,
  ``"val_loss"``, ``"val_<metric>"``) and ``history.steps[key]`` (``"loss"``, ``"lr"`` and
  ``"grad_norm"`` when clipping by norm); ``history[key]`` looks in ``epochs`` then ``steps``.
* Callbacks: any object with ``on_step_end(fit_state)`` and/or ``on_epoch_end(fit_state)``
  methods; ``on_epoch_end`` returning ``True`` stops training. :class:`EarlyStopping` and
  :class:`LogCallback` are the two the book uses.
* ``tensor_loader(X, y, *, batch_size=32, shuffle=False, generator=None, drop_last=False)``.
* ``save_checkpoint`` / ``load_checkpoint`` and ``clip_grad_norm`` / ``clip_grad_value``.

Conventions that could differ from other loops:

* A batch is ``(inputs, target)``; ``forward(model, batch) -> (output, target)`` overrides that
  (default ``model(batch[0]), batch[1]``). ``loss_fn(output, target)`` must return a scalar mean.
* Gradient accumulation over ``accumulate`` micro-batches divides each micro-batch loss by the
  size of its group (the last group of an epoch may be smaller), so with a mean-reduced loss and
  equal micro-batches the accumulated gradient *equals* the gradient of the big batch (except
  for layers that couple examples, e.g. BatchNorm, whose statistics stay per micro-batch).
* The scheduler steps after every optimizer step (``scheduler_interval="step"``) or once per
  epoch (``"epoch"``); ``ReduceLROnPlateau`` is stepped per epoch with ``val_loss`` (or
  ``train_loss`` without a validation loader).
* Validation metrics are computed once on the *concatenated* outputs of the whole loader (exact
  for any metric, AUC included), ``metrics`` maps a name to ``fn(output, target) -> float``.
* ``train_loss`` of an epoch is the batch-size-weighted mean of the micro-batch losses seen while
  the weights changed (the usual running estimate, not a second pass over the data).
* A checkpoint (written at the end of every epoch when ``checkpoint_path`` is set) holds model,
  optimizer and scheduler state, the epoch, the history, and the RNG states of Python, NumPy and
  torch plus the train loader's own ``generator``; it is read back with ``weights_only=True``.
  Resuming from it continues bit-identically to an uninterrupted run (single process, the same
  loader, ``num_workers=0`` or a seeded ``worker_init_fn``). Callback state is not saved.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "EarlyStopping",
    "FitState",
    "History",
    "LogCallback",
    "clip_grad_norm",
    "clip_grad_value",
    "evaluate",
    "fit",
    "load_checkpoint",
    "lr_range_test",
    "per_sample_gradients",
    "save_checkpoint",
    "tensor_loader",
]

Metric = Callable[[Tensor, Tensor], float]
Forward = Callable[[torch.nn.Module, Any], tuple[Any, Any]]


# -- history and callbacks ---------------------------------------------------------------
@dataclass
class History:
    """Per-epoch and per-optimizer-step records of a :func:`fit` run (lists of floats)."""

    epochs: dict[str, list[float]] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        if key in self.epochs:
            return self.epochs[key]
        if key in self.steps:
            return self.steps[key]
        raise KeyError(f"no record named {key!r}; have {sorted(self.epochs) + sorted(self.steps)}")

    def log_epoch(self, **values: float) -> None:
        for key, value in values.items():
            self.epochs.setdefault(key, []).append(float(value))

    def log_step(self, **values: float) -> None:
        for key, value in values.items():
            self.steps.setdefault(key, []).append(float(value))

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "steps": self.steps, "stopped_early": self.stopped_early}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls({k: list(v) for k, v in data["epochs"].items()},
                   {k: list(v) for k, v in data["steps"].items()}, bool(data["stopped_early"]))


@dataclass
class FitState:
    """What a callback sees: the model, optimizer, history, epoch (0-based) and optimizer step."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    epoch: int = 0
    step: int = 0


class EarlyStopping:
    """Stop when ``monitor`` (a per-epoch history key) has not improved by more than
    ``min_delta`` for ``patience`` epochs (Prechelt 1998, "Early stopping - but when?").

    ``mode="min"`` for losses, ``"max"`` for accuracies. With ``restore_best=True`` the weights
    of the best epoch are loaded back when training stops (or ends); ``best_epoch`` and
    ``best_value`` record where that was.
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 5, min_delta: float = 0.0,
                 mode: str = "min", restore_best: bool = True) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience}")
        if not min_delta >= 0.0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.sign, self.restore_best = (1.0 if mode == "min" else -1.0), restore_best
        self.best, self.best_epoch, self.bad_epochs = math.inf, -1, 0
        self.best_state: dict[str, Tensor] | None = None

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    def on_epoch_end(self, state: FitState) -> bool:
        score = self.sign * state.history[self.monitor][-1]
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = score, state.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self.best_state is not None:
            state.model.load_state_dict(self.best_state)


class LogCallback:
    """Send one line per epoch (``"epoch 3: train_loss=0.41 val_loss=0.44"``) to ``log``
    (e.g. ``print`` or ``tqdm.write``); ``every`` epochs only. The library itself never prints."""

    def __init__(self, log: Callable[[str], None], *, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every}")
        self.log, self.every = log, every

    def on_epoch_end(self, state: FitState) -> None:
        if (state.epoch + 1) % self.every == 0:
            values = " ".join(f"{k}={v[-1]:.4g}" for k, v in state.history.epochs.items() if k != "epoch")
            self.log(f"epoch {state.epoch + 1}: {values}")


# -- gradient clipping ---------------------------------------------------------------------
def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm(parameters: Tensor | Iterable[Tensor], max_norm: float, *,
                   norm_type: float = 2.0, eps: float = 1e-6) -> Tensor:
    """Rescale all gradients together so their joint norm is at most ``max_norm``; return the
    joint norm *before* clipping (as :func:`torch.nn.utils.clip_grad_norm_`):

    .. math:: \\|g\\| = \\big\\|(\\|g_1\\|_p, \\dots, \\|g_n\\|_p)\\big\\|_p, \\qquad
              g_i \\leftarrow g_i \\cdot \\min\\Big(1, \\frac{c}{\\|g\\| + \\epsilon}\\Big)

    Pascanu, Mikolov & Bengio 2013, "On the difficulty of training RNNs", Algorithm 1. The
    direction of the whole gradient is kept; only its length changes. ``eps`` is torch's 1e-6.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if not (norm_type >= 1 or norm_type == math.inf):
        raise ValueError(f"norm_type must be >= 1 or inf, got {norm_type}")
    grads = _grads(parameters)
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g.detach(), norm_type) for g in grads])
    total_norm = torch.linalg.vector_norm(norms, norm_type)            # ||g||
    clip_coef = torch.clamp(max_norm / (total_norm + eps), max=1.0)    # min(1, c / (||g|| + eps))
    for g in grads:
        g.detach().mul_(clip_coef)
    return total_norm


def clip_grad_value(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient component to ``[-clip_value, clip_value]`` (as
    :func:`torch.nn.utils.clip_grad_value_`); unlike :func:`clip_grad_norm` this changes the
    gradient's direction."""
    if not clip_value > 0:
        raise ValueError(f"clip_value must be > 0, got {clip_value}")
    for g in _grads(parameters):
        g.detach().clamp_(-clip_value, clip_value)


# -- data and evaluation -------------------------------------------------------------------
def tensor_loader(X: Tensor, y: Tensor | None = None, *, batch_size: int = 32, shuffle: bool = False,
                  generator: torch.Generator | None = None, drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A :class:`~torch.utils.data.DataLoader` over in-memory tensors (``y=None``: batches are
    ``(x,)``). Pass a seeded ``generator`` (``dlbook.rng.torch_generator(k)``) when shuffling,
    so the order is reproducible and independent of the global torch generator."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size}")
    tensors = (X,) if y is None else (X, y)
    if y is not None and len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    dataset = torch.utils.data.TensorDataset(*tensors)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, drop_last=drop_last)


def _default_forward(model: torch.nn.Module, batch: Any) -> tuple[Any, Any]:
    return model(batch[0]), batch[1]


def _batch_size(target: Any) -> int:
    return len(target) if isinstance(target, Tensor) and target.ndim > 0 else 1


def evaluate(model: torch.nn.Module, loader: Iterable, *, loss_fn: Callable | None = None,
             metrics: dict[str, Metric] | None = None, forward: Forward | None = None) -> dict[str, float]:
    """``{"loss": ..., name: ...}`` on the whole ``loader``, in eval mode and without gradients.

    Outputs and targets are concatenated over the loader and each metric is applied once, so
    non-decomposable metrics (AUC, F1) are exact. The model's train/eval mode is restored.
    """
    forward = forward or _default_forward
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    with torch.no_grad():
        for batch in loader:
            output, target = forward(model, batch)
            outputs.append(output)
            targets.append(target)
    model.train(was_training)
    if not outputs:
        raise ValueError("loader yielded no batches")
    output, target = torch.cat(outputs), torch.cat(targets)
    result = {}
    if loss_fn is not None:
        result["loss"] = float(loss_fn(output, target))
    for name, metric in (metrics or {}).items():
        result[name] = float(metric(output, target))
    return result


# -- checkpoints ---------------------------------------------------------------------------
def _rng_state(loader: Any = None) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": torch.from_numpy(np_state["state"]["key"].copy()),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader"] = generator.get_state()
    return state


def _set_rng_state(state: dict[str, Any], loader: Any = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state({"bit_generator": npy["bit_generator"], "has_gauss": npy["has_gauss"], "gauss": npy["gauss"],
                         "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": npy["pos"]}})
    torch.set_rng_state(state["torch"])
    generator = getattr(loader, "generator", None)
    if "loader" in state:
        if not isinstance(generator, torch.Generator):
            raise ValueError("the checkpoint holds a loader generator state but the loader has no generator")
        generator.set_state(state["loader"])


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                    scheduler: Any = None, epoch: int, history: History | None = None, loader: Any = None) -> None:
    """Write everything needed to continue training after ``epoch`` (0-based, completed)."""
    torch.save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch), "history": (history or History()).to_dict(), "rng": _rng_state(loader),
    }, path)


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                    scheduler: Any = None, loader: Any = None) -> tuple[int, History]:
    """Load a :func:`save_checkpoint` file in place (``weights_only=True``: only tensors and
    plain containers are unpickled) and restore every RNG; return ``(epoch, history)``."""
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        if checkpoint["scheduler"] is None:
            raise ValueError(f"checkpoint {path} has no scheduler state")
        scheduler.load_state_dict(checkpoint["scheduler"])
    _set_rng_state(checkpoint["rng"], loader)
    return checkpoint["epoch"], History.from_dict(checkpoint["history"])


# -- the loop ------------------------------------------------------------------------------
def _check_fit_args(epochs: int, accumulate: int, clip_grad_norm_: float | None,
                    clip_grad_value_: float | None, scheduler_interval: str) -> None:
    for name, value in (("epochs", epochs), ("accumulate", accumulate)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value}")
    for name, value in (("clip_grad_norm", clip_grad_norm_), ("clip_grad_value", clip_grad_value_)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0 or None, got {value}")
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")


def _groups(n_batches: int | None, accumulate: int) -> Callable[[int], int]:
    """Size of the accumulation group that micro-batch ``i`` belongs to."""
    def size(i: int) -> int:
        if n_batches is None:
            return accumulate
        start = (i // accumulate) * accumulate
        return min(accumulate, n_batches - start)
    return size


def _optimizer_step(model, optimizer, clip_norm, clip_value, history) -> None:
    if clip_norm is not None:
        history.log_step(grad_norm=float(clip_grad_norm(model.parameters(), clip_norm)))
    if clip_value is not None:
        clip_grad_value(model.parameters(), clip_value)
    optimizer.step()


def _train_epoch(state: FitState, loss_fn, loader, forward, accumulate, clip_norm, clip_value,
                 scheduler, scheduler_interval, callbacks) -> float:
    model, optimizer, history = state.model, state.optimizer, state.history
    model.train()
    group_size = _groups(len(loader) if hasattr(loader, "__len__") else None, accumulate)
    total, count, group_losses = 0.0, 0, []
    for i, batch in enumerate(loader):
        if i % accumulate == 0:
            optimizer.zero_grad(set_to_none=True)
        output, target = forward(model, batch)
        loss = loss_fn(output, target)
        (loss / group_size(i)).backward()             # mean over the group = big-batch mean
        n = _batch_size(target)
        value = loss.item()
        total, count = total + value * n, count + n
        group_losses.append(value)
        if (i + 1) % accumulate == 0 or len(group_losses) == group_size(i):
            lr = optimizer.param_groups[0]["lr"]
            _optimizer_step(model, optimizer, clip_norm, clip_value, history)
            history.log_step(loss=sum(group_losses) / len(group_losses), lr=lr)
            group_losses = []
            state.step += 1
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            for callback in callbacks:
                if hasattr(callback, "on_step_end"):
                    callback.on_step_end(state)
    if group_losses:                                   # a loader without len(): flush the rest
        _optimizer_step(model, optimizer, clip_norm, clip_value, history)
        history.log_step(loss=sum(group_losses) / len(group_losses), lr=optimizer.param_groups[0]["lr"])
        state.step += 1
    if count == 0:
        raise ValueError("train_loader yielded no batches")
    return total / count


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[[Any, Any], Tensor],
        train_loader: Iterable, *, epochs: int = 1, val_loader: Iterable | None = None,
        metrics: dict[str, Metric] | None = None, scheduler: Any = None, scheduler_interval: str = "step",
        clip_grad_norm: float | None = None, clip_grad_value: float | None = None, accumulate: int = 1,
        callbacks: Sequence[Any] = (), progress: bool = False, forward: Forward | None = None,
        checkpoint_path: str | Path | None = None, resume_from: str | Path | None = None) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return the :class:`History`.

    One optimizer step per ``accumulate`` micro-batches: zero the gradients, accumulate
    ``loss / group_size`` over the group, clip (by norm, then by value), ``optimizer.step()``,
    then ``scheduler.step()``. After each epoch: evaluate ``val_loader`` (``val_loss`` and
    ``val_<metric>``), step an epoch scheduler, call the callbacks (one returning ``True``
    stops), write the checkpoint. ``resume_from`` loads a checkpoint and continues at the epoch
    after it. See the module docstring for the conventions.
    """
    from tqdm.auto import tqdm

    _check_fit_args(epochs, accumulate, clip_grad_norm, clip_grad_value, scheduler_interval)
    forward = forward or _default_forward
    history, start = History(), 0
    if resume_from is not None:
        last_epoch, history = load_checkpoint(resume_from, model, optimizer, scheduler=scheduler, loader=train_loader)
        start = last_epoch + 1
    state = FitState(model, optimizer, history, start, len(history.steps.get("loss", [])))
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    bar = tqdm(range(start, epochs), desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        state.epoch = epoch
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(state, loss_fn, train_loader, forward, accumulate, clip_grad_norm, clip_grad_value,
                                  None if plateau else scheduler, scheduler_interval, callbacks)
        history.log_epoch(epoch=epoch, train_loss=train_loss, lr=lr)
        if val_loader is not None:
            result = evaluate(model, val_loader, loss_fn=loss_fn, metrics=metrics, forward=forward)
            history.log_epoch(**{f"val_{k}": v for k, v in result.items()})
        if plateau:
            scheduler.step(history["val_loss" if val_loader is not None else "train_loss"][-1])
        elif scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.epochs.items() if k.endswith("loss")})
        stop = any([bool(cb.on_epoch_end(state)) for cb in callbacks if hasattr(cb, "on_epoch_end")])
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, optimizer, scheduler=scheduler, epoch=epoch,
                            history=history, loader=train_loader)
        if stop:
            history.stopped_early = True
            break
    for callback in callbacks:
        if hasattr(callback, "on_fit_end"):
            callback.on_fit_end(state)
    return history


# -- learning-rate range test --------------------------------------------------------------
def _ema_debiased(values: Sequence[float], beta: float) -> list[float]:
    avg, out = 0.0, []
    for t, value in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta**t))
    return out


def lr_range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, loader: Iterable, *,
                  start_lr: float = 1e-6, end_lr: float = 10.0, num_steps: int = 100, beta: float = 0.9,
                  diverge_factor: float = 4.0, forward: Forward | None = None) -> dict[str, Any]:
    """Smith 2017 ("Cyclical learning rates for training neural networks", Sec. 3.3) as
    popularised by fastai's LR finder: raise the rate geometrically,

    .. math:: \\eta_t = \\eta_0 \\,(\\eta_{\\max}/\\eta_0)^{t/(T-1)}, \\quad t = 0, \\dots, T-1,

    one optimizer step per batch (cycling ``loader``), smooth the loss with a debiased
    exponential moving average (``beta``), and stop once the smoothed loss exceeds
    ``diverge_factor`` times its minimum. The model and optimizer are **modified**: pass copies.

    Returns ``{"lrs", "losses", "smoothed", "min_lr", "steepest_lr", "suggested_lr", "rule"}``.
    The suggestion is ``min_lr / 10`` (the rate one decade below the minimum of the smoothed loss;
    the rule stated in ``rule``); ``steepest_lr`` (steepest descent of the smoothed loss in
    log-lr) is returned too.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 3:
        raise ValueError(f"num_steps must be an int >= 3, got {num_steps}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    forward = forward or _default_forward
    lrs_all = [start_lr * (end_lr / start_lr) ** (t / (num_steps - 1)) for t in range(num_steps)]
    lrs, losses, batches = [], [], iter(loader)
    model.train()
    for lr in lrs_all:
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        output, target = forward(model, batch)
        loss = loss_fn(output, target)
        value = loss.item()
        lrs.append(lr)
        losses.append(value)
        smoothed = _ema_debiased(losses, beta)
        if not math.isfinite(value) or smoothed[-1] > diverge_factor * min(smoothed):
            break
        loss.backward()
        optimizer.step()
    smoothed = _ema_debiased(losses, beta)
    finite = [i for i, s in enumerate(smoothed) if math.isfinite(s)]
    i_min = min(finite, key=lambda i: smoothed[i])
    log_lr = np.log(np.array(lrs[: i_min + 1]))
    slopes = np.gradient(np.array(smoothed[: i_min + 1]), log_lr) if i_min >= 2 else np.zeros(1)
    i_steep = int(np.argmin(slopes))
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed, "min_lr": lrs[i_min],
            "steepest_lr": lrs[i_steep], "suggested_lr": lrs[i_min] / 10,
            "rule": "one tenth of the learning rate at which the smoothed loss is lowest"}


def per_sample_gradients(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], input: Tensor,
                         target: Tensor, *, trainable_only: bool = False) -> dict[str, Tensor]:
    """Per-example gradients :math:`g_i = \\nabla_\\theta \\ell(f_\\theta(x_i), y_i)`, one ``(B, *p.shape)``
    tensor per parameter name, by ``torch.func.vmap(grad(...))`` over the batch (the module's
    buffers are used as they are, so it must not couple samples: no BatchNorm in train mode).

    ``trainable_only`` keeps the parameters with ``requires_grad`` (what EWC's Fisher is over);
    by default every parameter gets one (what DP-SGD clips by). Used by :mod:`dlbook.finetune`
    and :mod:`dlbook.trust`.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(input, Tensor) and isinstance(target, Tensor)) or len(input) != len(target):
        raise ValueError("input and target must be tensors with the same batch size, got "
                         f"{getattr(input, 'shape', type(input).__name__)} and {getattr(target, 'shape', type(target).__name__)}")
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad or not trainable_only}

    def loss_one(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = torch.func.functional_call(model, p, (x[None],))
        return loss_fn(out, y[None])

    return torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, input, target)

