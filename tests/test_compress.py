"""dlbook.compress against torch.nn.utils.prune, fuse_conv_bn_eval and the SVD."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dlbook import compress as C


@settings(max_examples=30, deadline=None)
@given(amount=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_l1_mask_equals_torch_prune(amount, seed):
    torch.manual_seed(seed)
    layer = nn.Linear(12, 9)
    ours = C.l1_unstructured_mask(layer.weight.detach(), amount)
    prune.l1_unstructured(layer, "weight", amount=amount)
    assert torch.equal(ours, layer.weight_mask)


def test_prune_hidden_units_keeps_the_strongest_units_exactly():
    torch.manual_seed(0)
    first, second = nn.Linear(5, 8), nn.Linear(8, 3)
    with torch.no_grad():
        first.weight[[1, 4, 6]] *= 0.01  # three weak units
    f2, s2 = C.prune_hidden_units(first, second, keep=5)
    assert (f2.out_features, s2.in_features) == (5, 5)
    x = torch.randn(4, 5)
    h = torch.relu(first(x))
    h[:, [1, 4, 6]] = 0
    torch.testing.assert_close(s2(torch.relu(f2(x))), second(h))


def test_fold_conv_bn_equals_torch_fusion_forward_and_weights():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    conv.eval(), bn.eval()
    fused = C.fuse_conv_bn(conv, bn)
    ref = fuse_conv_bn_eval(conv, bn)
    torch.testing.assert_close(fused.weight, ref.weight)
    torch.testing.assert_close(fused.bias, ref.bias)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_fold_conv_bn_gradcheck():
    torch.manual_seed(0)
    args = [torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64, requires_grad=True),
            torch.randn(4, dtype=torch.float64, requires_grad=True), torch.rand(4, dtype=torch.float64) + 0.5,
            torch.randn(4, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda *a: C.fold_conv_bn(*a), args)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_low_rank_eckart_young(rank):
    torch.manual_seed(0)
    W = torch.randn(9, 7, dtype=torch.float64)
    A, B = C.low_rank_factors(W, rank)
    s = torch.linalg.svdvals(W)
    torch.testing.assert_close(((W - A @ B) ** 2).sum(), (s[rank:] ** 2).sum())
    layer = nn.Linear(7, 9).double()
    thin = C.low_rank_linear(layer, rank)
    assert C.count_parameters(thin) == rank * (7 + 9) + 9
    if rank == 7:
        x = torch.randn(3, 7, dtype=torch.float64)
        torch.testing.assert_close(thin(x), layer(x))


def test_sizes_and_training_loop():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    assert C.count_parameters(model) == 10
    assert C.state_dict_bytes(model) > 40
    X = torch.randn(64, 4)
    y = (X[:, 0] > 0).long()
    C.fit_classifier(model, X, y, epochs=30, lr=0.05, generator=torch.Generator().manual_seed(0))
    assert C.accuracy(model, X, y) > 0.9


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="amount"):
        C.l1_unstructured_mask(torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="keep"):
        C.prune_hidden_units(nn.Linear(2, 4), nn.Linear(4, 1), keep=0)
    with pytest.raises(ValueError, match="in_features"):
        C.prune_hidden_units(nn.Linear(2, 4), nn.Linear(3, 1), keep=1)
    with pytest.raises(ValueError, match="rank"):
        C.low_rank_factors(torch.ones(3, 4), 4)
    with pytest.raises(ValueError, match="eps"):
        C.fold_conv_bn(torch.ones(2, 1, 1, 1), None, torch.zeros(2), torch.ones(2), torch.ones(2), torch.zeros(2), eps=-1)
    with pytest.raises(ValueError, match="epochs"):
        C.fit_classifier(nn.Linear(2, 2), torch.ones(2, 2), torch.zeros(2, dtype=torch.long), epochs=-1)
