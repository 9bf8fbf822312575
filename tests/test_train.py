"""Tests for dlbook.train: the shared loop, clipping against torch, checkpoint resume."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import train as T


def _data(n=96, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    return X, y


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 2))


def _accuracy(out, y):
    return float((out.argmax(1) == y).float().mean())


# -- clipping ---------------------------------------------------------------------------------
def _grads_pair(seed, shapes, scale):
    g = torch.Generator().manual_seed(seed)
    a = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p in a:
        p.grad = scale * torch.randn(p.shape, generator=g)
    b = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p, q in zip(a, b):
        q.grad = p.grad.clone()
    return a, b


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.01, 100.0), max_norm=st.floats(0.1, 10.0),
       norm_type=st.sampled_from([1.0, 2.0, 3.0, float("inf")]))
def test_clip_grad_norm_equals_torch(seed, scale, max_norm, norm_type):
    a, b = _grads_pair(seed, [(3, 4), (7,), (2, 2, 2)], scale)
    ours = T.clip_grad_norm(a, max_norm, norm_type=norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(b, max_norm, norm_type=norm_type, foreach=False)
    torch.testing.assert_close(ours, theirs)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad)
    after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad, norm_type) for p in a]), norm_type)
    assert after <= max_norm * (1 + 1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.01, 100.0), clip=st.floats(0.01, 5.0))
def test_clip_grad_value_equals_torch(seed, scale, clip):
    a, b = _grads_pair(seed, [(3, 4), (7,)], scale)
    T.clip_grad_value(a, clip)
    torch.nn.utils.clip_grad_value_(b, clip)
    for p, q in zip(a, b):
        assert torch.equal(p.grad, q.grad)


def test_clip_errors():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="max_norm"):
        T.clip_grad_norm([p], 0.0)
    with pytest.raises(ValueError, match="norm_type"):
        T.clip_grad_norm([p], 1.0, norm_type=0.5)
    with pytest.raises(ValueError, match="clip_value"):
        T.clip_grad_value([p], -1.0)


# -- fit ---------------------------------------------------------------------------------------
def test_fit_learns_and_records_history():
    X, y = _data()
    model = _model()
    train = T.tensor_loader(X, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = T.tensor_loader(X, y, batch_size=50)
    hist = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.5), F.cross_entropy, train, epochs=15,
                 val_loader=val, metrics={"acc": _accuracy})
    assert hist["val_acc"][-1] > 0.9
    assert hist["train_loss"][-1] < 0.5 * hist["train_loss"][0]
    assert len(hist.steps["loss"]) == 15 * 6
    assert hist.epochs["epoch"] == list(range(15))
    assert hist["val_loss"][-1] == pytest.approx(T.evaluate(model, val, loss_fn=F.cross_entropy)["loss"])


def test_fit_equals_a_plain_loop():
    X, y = _data()
    m1, m2 = _model(), _model()
    o1, o2 = torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    T.fit(m1, o1, F.cross_entropy, T.tensor_loader(X, y, batch_size=32), epochs=3, clip_grad_norm=1.0)
    for _ in range(3):
        for xb, yb in T.tensor_loader(X, y, batch_size=32):
            o2.zero_grad()
            F.cross_entropy(m2(xb), yb).backward()
            torch.nn.utils.clip_grad_norm_(m2.parameters(), 1.0, foreach=False)
            o2.step()
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q)


def test_accumulation_gradient_equals_big_batch():
    X, y = _data(n=64)
    m1, m2 = _model(), _model()
    o1 = torch.optim.SGD(m1.parameters(), lr=0.0)  # lr 0: only look at the gradient
    T.fit(m1, o1, F.cross_entropy, T.tensor_loader(X, y, batch_size=16), accumulate=4)
    F.cross_entropy(m2(X), y).backward()
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_accumulation_uneven_last_group():
    X, y = _data(n=80)  # 5 batches of 16, accumulate 3: groups of 3 and 2
    m1, m2 = _model(), _model()
    hist = T.fit(m1, torch.optim.SGD(m1.parameters(), lr=0.0), F.cross_entropy,
                 T.tensor_loader(X, y, batch_size=16), accumulate=3)
    assert len(hist.steps["loss"]) == 2
    F.cross_entropy(m2(X[48:]), y[48:]).backward()
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_scheduler_per_step_and_epoch():
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    hist = T.fit(model, opt, F.cross_entropy, T.tensor_loader(X, y, batch_size=32), epochs=2, scheduler=sched)
    assert hist.steps["lr"] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = T.fit(model, opt, F.cross_entropy, T.tensor_loader(X, y, batch_size=32), epochs=3, scheduler=sched,
                 scheduler_interval="epoch")
    assert hist["lr"] == [1.0, 0.5, 0.25]


def test_early_stopping_restores_best():
    X, y = _data()
    model = _model()
    es = T.EarlyStopping("val_loss", patience=2)
    # lr so large the loss blows up after the first epochs
    hist = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.05), F.cross_entropy,
                 T.tensor_loader(X, y, batch_size=16), epochs=200, val_loader=T.tensor_loader(X[:30], y[:30] * 0),
                 callbacks=[es])
    assert hist.stopped_early and len(hist["val_loss"]) < 200
    assert es.best_value == min(hist["val_loss"])
    val_now = T.evaluate(model, T.tensor_loader(X[:30], y[:30] * 0), loss_fn=F.cross_entropy)["loss"]
    assert val_now == pytest.approx(es.best_value, rel=1e-6)


def test_log_callback_and_errors():
    X, y = _data()
    lines = []
    model = _model()
    T.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, T.tensor_loader(X, y, batch_size=32),
          epochs=2, callbacks=[T.LogCallback(lines.append)])
    assert len(lines) == 2 and lines[0].startswith("epoch 1: train_loss=")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = T.tensor_loader(X, y)
    with pytest.raises(ValueError, match="epochs"):
        T.fit(model, opt, F.cross_entropy, loader, epochs=0)
    with pytest.raises(ValueError, match="accumulate"):
        T.fit(model, opt, F.cross_entropy, loader, accumulate=0)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        T.fit(model, opt, F.cross_entropy, loader, clip_grad_norm=-1.0)
    with pytest.raises(ValueError, match="scheduler_interval"):
        T.fit(model, opt, F.cross_entropy, loader, scheduler_interval="batch")
    with pytest.raises(ValueError, match="batch_size"):
        T.tensor_loader(X, y, batch_size=0)
    with pytest.raises(ValueError, match="same length"):
        T.tensor_loader(X, y[:3])
    with pytest.raises(ValueError, match="patience"):
        T.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode"):
        T.EarlyStopping(mode="up")
    with pytest.raises(KeyError, match="nope"):
        T.History()["nope"]


def test_evaluate_restores_mode_and_is_exact():
    X, y = _data()
    model = _model(dropout=0.5)
    model.train()
    a = T.evaluate(model, T.tensor_loader(X, y, batch_size=7), loss_fn=F.cross_entropy, metrics={"acc": _accuracy})
    assert model.training
    model.eval()
    with torch.no_grad():
        out = model(X)
    assert a["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert a["acc"] == pytest.approx(_accuracy(out, y))


# -- checkpoints ---------------------------------------------------------------------------
def _run(tmp_path, epochs, resume=False, with_generator=True):
    X, y = _data()
    model = _model(seed=1, dropout=0.3)  # dropout draws from torch's global RNG
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=6 * 6)
    gen = torch.Generator().manual_seed(5) if with_generator else None
    loader = T.tensor_loader(X, y, batch_size=16, shuffle=True, generator=gen)
    path = tmp_path / "ckpt.pt"

    def noisy_forward(m, batch):  # uses Python's and NumPy's global RNG too
        xb, yb = batch
        return m(xb + 0.01 * random.random() + 0.01 * float(np.random.rand())), yb

    return model, T.fit(model, opt, F.cross_entropy, loader, epochs=epochs, scheduler=sched, forward=noisy_forward,
                        checkpoint_path=None if resume else path, resume_from=path if resume else None)


@pytest.mark.parametrize("with_generator", [True, False])
def test_resume_is_bit_identical(tmp_path, with_generator):
    torch.manual_seed(123), random.seed(123), np.random.seed(123)
    full, hist_full = _run(tmp_path, 6, with_generator=with_generator)
    (tmp_path / "ckpt.pt").unlink()
    torch.manual_seed(123), random.seed(123), np.random.seed(123)
    _run(tmp_path, 3, with_generator=with_generator)       # "interrupted" after epoch 3
    torch.manual_seed(999), random.seed(999), np.random.seed(999)  # the new process has other RNG states
    resumed, hist_resumed = _run(tmp_path, 6, resume=True, with_generator=with_generator)
    for p, q in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)
    assert hist_full.steps == hist_resumed.steps and hist_full.epochs == hist_resumed.epochs


def test_checkpoint_loads_with_weights_only(tmp_path):
    _run(tmp_path, 1)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "scheduler", "epoch", "history", "rng"}
    assert set(ckpt["rng"]) == {"python", "numpy", "torch", "loader"}


def test_load_checkpoint_errors(tmp_path):
    model, _ = _run(tmp_path, 1)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="no generator"):
        T.load_checkpoint(tmp_path / "ckpt.pt", model, opt, loader=T.tensor_loader(*_data()))
    T.save_checkpoint(tmp_path / "b.pt", model, opt, epoch=0)
    with pytest.raises(ValueError, match="no scheduler"):
        T.load_checkpoint(tmp_path / "b.pt", model, opt, scheduler=torch.optim.lr_scheduler.StepLR(opt, 1))


# -- lr range test ---------------------------------------------------------------------------
def test_lr_range_test():
    X, y = _data(n=256)
    model = _model()
    res = T.lr_range_test(model, torch.optim.SGD(model.parameters(), lr=1.0), F.cross_entropy,
                          T.tensor_loader(X, y, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)),
                          start_lr=1e-4, end_lr=100.0, num_steps=80)
    lrs = res["lrs"]
    assert lrs[0] == pytest.approx(1e-4)
    ratios = np.diff(np.log(lrs))
    assert np.allclose(ratios, ratios[0])
    assert len(lrs) < 80  # diverged and stopped early
    assert res["suggested_lr"] == pytest.approx(res["min_lr"] / 10)
    assert 1e-3 < res["suggested_lr"] < 10


def test_lr_range_test_errors():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    loader = T.tensor_loader(*_data())
    with pytest.raises(ValueError, match="start_lr"):
        T.lr_range_test(model, opt, F.cross_entropy, loader, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        T.lr_range_test(model, opt, F.cross_entropy, loader, num_steps=2)
    with pytest.raises(ValueError, match="beta"):
        T.lr_range_test(model, opt, F.cross_entropy, loader, beta=1.0)


def test_per_sample_gradients_sum_to_the_batch_gradient_and_reject_bad_input():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    model[0].weight.requires_grad_(False)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randint(0, 2, (6,), generator=g)
    per = T.per_sample_gradients(model, F.cross_entropy, x, y)
    F.cross_entropy(model(x), y, reduction="sum").backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(per[name].sum(0), p.grad)
    assert "0.weight" in per and "0.weight" not in T.per_sample_gradients(model, F.cross_entropy, x, y, trainable_only=True)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        T.per_sample_gradients(lambda t: t, F.cross_entropy, x, y)
    with pytest.raises(ValueError, match="same batch size"):
        T.per_sample_gradients(model, F.cross_entropy, x, y[:5])
