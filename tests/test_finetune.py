"""Tests for dlbook.finetune: freezing, parameter groups, backbone loading, AdaBN, Fisher/EWC,
kNN proxy and MMD, against torch (autograd loops, torch.func), scikit-learn and direct formulas."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from dlbook import finetune as ft


def small_mlp(seed=0, out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, out))


# -- freezing and parameter groups ----------------------------------------------------------
def test_freeze_unfreeze_and_trainable():
    model = small_mlp()
    ft.freeze(model[0])
    assert ft.trainable_parameters(model) == [model[2].weight, model[2].bias]
    assert ft.num_trainable(model) == 6 * 3 + 3
    ft.unfreeze(model)
    assert ft.num_trainable(model) == sum(p.numel() for p in model.parameters())


def test_frozen_weights_unchanged_by_training_and_bn_buffers_need_eval():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    ft.freeze(model[:3])
    w0, rm0 = model[0].weight.clone(), model[1].running_mean.clone()
    opt = torch.optim.SGD(ft.trainable_parameters(model), lr=0.1)
    x, y = torch.randn(16, 4) + 1.0, torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert torch.equal(model[0].weight, w0)
    assert not torch.equal(model[1].running_mean, rm0)          # buffers move in train()
    model[:3].eval()
    rm1 = model[1].running_mean.clone()
    model(x)
    assert torch.equal(model[1].running_mean, rm1)


def test_freeze_rejects_non_module():
    with pytest.raises(TypeError, match="nn.Module"):
        ft.freeze(torch.zeros(3))


def test_discriminative_param_groups():
    model = small_mlp()
    groups = ft.discriminative_param_groups([model[0], model[1], model[2]], lr=1e-2, decay=2.6)
    assert len(groups) == 2                                   # Tanh has no parameters
    assert groups[1]["lr"] == pytest.approx(1e-2)
    assert groups[0]["lr"] == pytest.approx(1e-2 / 2.6**2)
    opt = torch.optim.Adam(groups)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-2 / 2.6**2, 1e-2])
    ft.freeze(model[0])
    assert len(ft.discriminative_param_groups([model[0], model[2]], lr=1.0)) == 1


@pytest.mark.parametrize("kwargs, match", [({"lr": 0.0}, "lr"), ({"lr": 1.0, "decay": 0.5}, "decay")])
def test_discriminative_param_groups_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ft.discriminative_param_groups([nn.Linear(2, 2)], **kwargs)
    with pytest.raises(ValueError, match="empty"):
        ft.discriminative_param_groups([], lr=1.0)


def test_relative_change():
    before = {"w": torch.ones(2, 2), "head": torch.ones(3), "n": torch.tensor(3)}
    after = {"w": 3 * torch.ones(2, 2), "head": torch.ones(5), "n": torch.tensor(4)}
    assert ft.relative_change(before, after) == {"w": pytest.approx(2.0)}


def test_load_backbone_keeps_fresh_head():
    old = small_mlp(0, out=10).state_dict()
    new = small_mlp(1, out=3)
    head = new[2].weight.clone()
    with pytest.raises(RuntimeError, match="size mismatch"):
        copy.deepcopy(new).load_state_dict(old)
    left = ft.load_backbone(new, old, exclude=["2."])
    assert left == ["2.weight", "2.bias"]
    assert torch.equal(new[2].weight, head) and torch.equal(new[0].weight, old["0.weight"])
    with pytest.raises(ValueError, match="lacks backbone"):
        ft.load_backbone(small_mlp(), {"2.weight": torch.zeros(3, 6)}, exclude=["2."])
    with pytest.raises(TypeError, match="sequence"):
        ft.load_backbone(small_mlp(), old, exclude="2.")


def test_adapt_batchnorm_undoes_affine_shift():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(500, 3)
    clean = ft.adapt_batchnorm(copy.deepcopy(model), x)(x)      # statistics of the clean inputs
    adapted = ft.adapt_batchnorm(copy.deepcopy(model), 3.0 * x + 5.0)
    assert not adapted.training
    torch.testing.assert_close(adapted(3.0 * x + 5.0), clean, rtol=1e-4, atol=1e-4)
    bn = adapted[1]
    h = model[0](3.0 * x + 5.0).detach()
    torch.testing.assert_close(bn.running_mean, h.mean(0))
    torch.testing.assert_close(bn.running_var, h.var(0, unbiased=True))
    with pytest.raises(ValueError, match="BatchNorm"):
        ft.adapt_batchnorm(small_mlp(), torch.randn(5, 4))


# -- Fisher and EWC -------------------------------------------------------------------------
def loop_grads(model, X, y):
    out = []
    for n in range(len(X)):
        model.zero_grad()
        torch.log_softmax(model(X[n:n + 1]), dim=1)[0, y[n]].backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(out)


def test_fisher_matches_autograd_loop():
    torch.set_default_dtype(torch.float64)
    try:
        model = small_mlp(3)
        X, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
        G = loop_grads(model, X, y)
        diag = ft.fisher_diagonal(model, X, y)
        flat = torch.cat([v.reshape(-1) for v in diag.values()])
        torch.testing.assert_close(flat, (G**2).mean(0))
        full = ft.fisher_full(model, X, y)
        torch.testing.assert_close(full, G.T @ G / len(X))
        torch.testing.assert_close(full.diagonal(), flat)
        assert torch.linalg.eigvalsh(full).min() > -1e-12     # positive semi-definite
    finally:
        torch.set_default_dtype(torch.float32)


def test_fisher_only_trainable_parameters():
    model = small_mlp()
    ft.freeze(model[0])
    assert set(ft.fisher_diagonal(model, torch.randn(5, 4), torch.randint(0, 3, (5,)))) == {"2.weight", "2.bias"}


def test_fisher_rejects_bad_input():
    with pytest.raises(ValueError, match="same non-zero length"):
        ft.fisher_diagonal(small_mlp(), torch.randn(5, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="tensors"):
        ft.fisher_diagonal(small_mlp(), np.zeros((5, 4)), torch.zeros(5, dtype=torch.long))


def test_ewc_penalty_value_and_gradient():
    torch.set_default_dtype(torch.float64)
    try:
        model = small_mlp(1)
        anchor = {k: v.detach() + 0.1 * torch.randn_like(v) for k, v in model.named_parameters()}
        fisher = {k: torch.rand_like(v) for k, v in model.named_parameters()}
        pen = ft.ewc_penalty(model, fisher, anchor, lam=7.0)
        expected = sum(3.5 * (fisher[k] * (p - anchor[k]) ** 2).sum() for k, p in model.named_parameters())
        torch.testing.assert_close(pen, expected)
        pen.backward()
        for k, p in model.named_parameters():                  # d/dtheta = lam F (theta - theta*)
            torch.testing.assert_close(p.grad, 7.0 * fisher[k] * (p.detach() - anchor[k]))
        assert ft.ewc_penalty(model, fisher, {k: p.detach() for k, p in model.named_parameters()}, lam=5.0).item() == 0.0
    finally:
        torch.set_default_dtype(torch.float32)


def test_ewc_penalty_rejects():
    model = small_mlp()
    params = {k: v.detach() for k, v in model.named_parameters()}
    with pytest.raises(ValueError, match="lam"):
        ft.ewc_penalty(model, params, params, lam=-1.0)
    with pytest.raises(ValueError, match="lacks"):
        ft.ewc_penalty(model, {"nope": torch.zeros(1)}, params, lam=1.0)


# -- kNN and MMD ----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_knn_accuracy_matches_sklearn(seed, k):
    g = torch.Generator().manual_seed(seed)
    Xtr, Xte = torch.randn(30, 3, generator=g), torch.randn(15, 3, generator=g)
    ytr, yte = torch.randint(0, 3, (30,), generator=g), torch.randint(0, 3, (15,), generator=g)
    clf = KNeighborsClassifier(n_neighbors=k).fit(Xtr.numpy(), ytr.numpy())
    expected = clf.score(Xte.numpy(), yte.numpy())
    assert ft.knn_accuracy(Xtr, ytr, Xte, yte, k=k) == pytest.approx(expected)


def test_knn_rejects_bad_k():
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="k must be"):
        ft.knn_accuracy(x, y, x, y, k=5)


def test_mmd2_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = torch.randn(200, 3, generator=g, dtype=torch.float64)
    assert float(ft.mmd2(x, x, sigma=1.0)) == pytest.approx(0.0, abs=1e-12)
    near, far = ft.mmd2(x, y, sigma=1.0), ft.mmd2(x, y + 2.0, sigma=1.0)
    assert 0 <= near < far
    # the direct double sum
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / 2.0)
    xs, ys = x[:5].numpy(), y[:4].numpy()
    direct = (np.mean([[k(a, b) for b in xs] for a in xs]) + np.mean([[k(a, b) for b in ys] for a in ys])
              - 2 * np.mean([[k(a, b) for b in ys] for a in xs]))
    assert float(ft.mmd2(x[:5], y[:4], sigma=1.0)) == pytest.approx(direct)
    with pytest.raises(ValueError, match="sigma"):
        ft.mmd2(x, y, sigma=0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        ft.mmd2(x, y[:, :2], sigma=1.0)


# -- the loader -----------------------------------------------------------------------------
def test_tensor_batches():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = list(ft.TensorBatches(X, y, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(ft.TensorBatches(X, y, batch_size=4)) == 3
    loader = ft.TensorBatches(X, y, batch_size=3, generator=torch.Generator().manual_seed(0))
    first, second = torch.cat([b[1] for b in loader]), torch.cat([b[1] for b in loader])
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    assert len(list(ft.TensorBatches(X, y))) == 1
    with pytest.raises(ValueError, match="batch_size"):
        ft.TensorBatches(X, y, batch_size=0)
    with pytest.raises(ValueError, match="same non-zero length"):
        ft.TensorBatches(X, y[:3])
