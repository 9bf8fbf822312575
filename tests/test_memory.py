"""Dynamic loss scaling, memory accounting and saved-tensor counting (dlbook.memory)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook import memory
from dlbook.nn import TransformerEncoderLayer


def _run(scaler, stream):
    w = nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([w], lr=0.1)
    scales = []
    for c in stream:
        opt.zero_grad()
        loss = (w.half() * c.half()).float().sum()  # the backward pass runs in fp16: scale * c can overflow
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, w.detach()


@pytest.mark.parametrize("init_scale,growth_interval", [(2.0**12, 3), (2.0**16, 5), (1.0, 2)])
def test_scale_sequence_equals_gradscaler(init_scale, growth_interval):
    g = torch.Generator().manual_seed(growth_interval)
    stream = [10 ** torch.empty(1).uniform_(-8, 1, generator=g) * torch.randn(4, generator=g) for _ in range(50)]
    kw = dict(init_scale=init_scale, growth_interval=growth_interval)
    ours, w_ours = _run(memory.DynamicLossScaler(**kw), stream)
    theirs, w_theirs = _run(torch.amp.GradScaler("cpu", **kw), stream)
    assert ours == theirs
    torch.testing.assert_close(w_ours, w_theirs, rtol=0, atol=0)


@settings(max_examples=50, deadline=None)
@given(events=st.lists(st.booleans(), min_size=1, max_size=40), interval=st.integers(1, 6))
def test_update_scale_matches_torch_kernel(events, interval):
    scale, tracker = 1024.0, 0
    t_scale, t_tracker = torch.tensor([1024.0]), torch.tensor([0], dtype=torch.int32)
    for found in events:
        scale, tracker = memory.update_scale(scale, tracker, found, growth_interval=interval)
        torch._amp_update_scale_(t_scale, t_tracker, torch.tensor([float(found)]), 2.0, 0.5, interval)
        assert (scale, tracker) == (t_scale.item(), t_tracker.item())


def test_unscale_grads():
    grads, found = memory.unscale_grads([torch.tensor([2.0, 4.0]), None], 2.0)
    assert not found and grads[1] is None and grads[0].tolist() == [1.0, 2.0]
    assert memory.unscale_grads([torch.tensor([float("nan")])], 2.0)[1]
    assert memory.unscale_grads([torch.tensor([float("inf")])], 2.0)[1]


def test_training_memory_sixteen_bytes_per_parameter():
    for mixed in (False, True):
        assert memory.training_memory(1000, mixed_precision=mixed)["total"] == 16_000
    parts = memory.training_memory(10, mixed_precision=True, optimizer="momentum", activation_bytes=7)
    assert parts == {"weights": 20, "gradients": 20, "master_weights": 40, "optimizer_states": 40, "activations": 7, "total": 127}


def test_training_memory_against_measured_adam():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 8)).sum().backward()
    opt.step()
    parts = memory.training_memory(sum(p.numel() for p in model.parameters()))
    assert memory.tensor_bytes(model.parameters()) == parts["weights"]
    assert memory.tensor_bytes(p.grad for p in model.parameters()) == parts["gradients"]
    state = memory.optimizer_state_bytes(opt)
    assert state["exp_avg"] + state["exp_avg_sq"] == parts["optimizer_states"]
    assert state["step"] == 4 * len(list(model.parameters()))


@pytest.mark.parametrize("batch,seq_len,layers,causal", [(1, 8, 1, False), (2, 16, 2, True), (3, 32, 1, False)])
def test_activation_bytes_equal_measured(batch, seq_len, layers, causal):
    torch.manual_seed(0)
    stack = nn.ModuleList(TransformerEncoderLayer(32, 4, 48, norm_first=True) for _ in range(layers))

    def forward(x):
        for layer in stack:
            x = layer(x, is_causal=causal)
        return x

    x = torch.randn(batch, seq_len, 32, requires_grad=True)
    measured = memory.saved_tensor_bytes(forward, x, exclude=stack)
    assert measured == memory.transformer_activation_bytes(batch, seq_len, d_model=32, nhead=4, dim_feedforward=48, num_layers=layers)
    flash_bytes = memory.transformer_activation_bytes(batch, seq_len, d_model=32, nhead=4, dim_feedforward=48, num_layers=layers, flash=True)
    assert measured - flash_bytes == 4 * layers * batch * 4 * seq_len**2


def test_saved_tensor_counter_peak_and_release():
    w = nn.Parameter(torch.randn(16, 16))
    x = torch.randn(4, 16, requires_grad=True)
    with memory.SavedTensorCounter([w]) as counter:
        y = torch.tanh(torch.tanh(x @ w) @ w)  # saves x, tanh out, tanh in for matmul (same storage), tanh out
        held = counter.current
        y.sum().backward()
    assert held == 3 * 4 * 16 * 4 and counter.peak == held and counter.current == 0
    assert memory.saved_tensor_bytes(lambda t: (t @ w).relu(), x, exclude=[w]) == 2 * 4 * 16 * 4
    assert memory.tensor_bytes([w, w[0], w.T]) == 16 * 16 * 4  # views count once


def test_bad_input():
    with pytest.raises(ValueError, match="growth_factor"):
        memory.update_scale(1.0, 0, False, growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        memory.DynamicLossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_interval"):
        memory.update_scale(1.0, 0, False, growth_interval=0)
    with pytest.raises(ValueError, match="scale must be positive"):
        memory.update_scale(float("inf"), 0, False)
    with pytest.raises(ValueError, match="init_scale"):
        memory.DynamicLossScaler(init_scale=0.0)
    with pytest.raises(ValueError, match="num_params"):
        memory.training_memory(-1)
    with pytest.raises(ValueError, match="optimizer"):
        memory.training_memory(10, optimizer="lion")
    with pytest.raises(ValueError, match="seq_len"):
        memory.transformer_activation_bytes(1, 0, d_model=8, nhead=2, dim_feedforward=8)
    with pytest.raises(TypeError, match="fn must be callable"):
        memory.saved_tensor_bytes(3)
    with pytest.raises(TypeError, match="expected tensors"):
        memory.tensor_bytes([1.0])
