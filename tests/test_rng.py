"""dlbook.rng: streams, the DLBOOK_SEED offset, and bad input."""

import random

import numpy as np
import pytest
import torch

import dlbook
from dlbook import rng


def test_default_offset_is_zero(monkeypatch):
    monkeypatch.delenv("DLBOOK_SEED", raising=False)
    assert rng.offset() == 0
    assert rng.seed_value(7) == 7


def test_offset_shifts_every_stream_disjointly(monkeypatch):
    monkeypatch.setenv("DLBOOK_SEED", "2")
    assert rng.seed_value(0) == 2 * rng.OFFSET_STRIDE
    values = {rng.seed_value(k) for k in range(50)}
    monkeypatch.setenv("DLBOOK_SEED", "1")
    assert values.isdisjoint({rng.seed_value(k) for k in range(50)})


def test_seed_sets_all_three_global_generators(monkeypatch):
    monkeypatch.setenv("DLBOOK_SEED", "3")
    assert dlbook.seed(4) == 3004
    a = (random.random(), np.random.rand(), torch.rand(()).item())
    rng.seed(4)
    assert a == (random.random(), np.random.rand(), torch.rand(()).item())


def test_explicit_generators_follow_the_offset(monkeypatch):
    monkeypatch.setenv("DLBOOK_SEED", "0")
    t0 = torch.rand(5, generator=rng.torch_generator(1))
    n0 = rng.numpy_generator(1).random(5)
    monkeypatch.setenv("DLBOOK_SEED", "1")
    assert not torch.equal(t0, torch.rand(5, generator=rng.torch_generator(1)))
    assert not np.array_equal(n0, rng.numpy_generator(1).random(5))
    assert torch.equal(torch.rand(5, generator=rng.torch_generator(1)),
                       torch.rand(5, generator=torch.Generator().manual_seed(1001)))


@pytest.mark.parametrize("raw", ["x", "-1", "1.5"])
def test_bad_environment_value(monkeypatch, raw):
    monkeypatch.setenv("DLBOOK_SEED", raw)
    with pytest.raises(ValueError, match="DLBOOK_SEED"):
        rng.offset()


def test_bad_stream():
    with pytest.raises(TypeError, match="stream"):
        rng.seed_value(1.0)
    with pytest.raises(TypeError, match="stream"):
        rng.seed_value(True)
    with pytest.raises(ValueError, match="stream"):
        rng.seed_value(-1)
    with pytest.raises(ValueError, match="stream"):
        rng.seed_value(rng.OFFSET_STRIDE)
