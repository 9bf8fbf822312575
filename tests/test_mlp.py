"""Tests for dlbook.mlp against torch.nn / autograd."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook import mlp



@pytest.fixture(autouse=True)
def float64():
    """Every test here runs in float64 (gradcheck needs it); the global default is restored."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

widths_st = st.lists(st.integers(1, 6), min_size=2, max_size=5)


@pytest.mark.parametrize("n,d", [(1, 1), (5, 3), (17, 8)])
def test_neuron_matches_linear_and_augmented_input(n, d):
    g = torch.Generator().manual_seed(n * d)
    x, w, b = torch.randn(n, d, generator=g), torch.randn(d, generator=g), torch.randn((), generator=g)
    layer = torch.nn.Linear(d, 1)
    with torch.no_grad():
        layer.weight.copy_(w[None]), layer.bias.copy_(b[None])
    torch.testing.assert_close(mlp.neuron(x, w, b), layer(x)[:, 0])
    torch.testing.assert_close(mlp.neuron(x, w, b), mlp.neuron(mlp.append_ones(x), torch.cat([w, b[None]])))
    torch.testing.assert_close(mlp.neuron(x, w), x @ w)


def test_neuron_gradcheck():
    x, w, b = (torch.randn(s, requires_grad=True) for s in [(4, 3), (3,), ()])
    assert torch.autograd.gradcheck(mlp.neuron, (x, w, b))


def test_perceptron_learns_and_not_xor():
    x = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    w, b, errors = mlp.perceptron_train(x, torch.tensor([-1.0, -1, -1, 1]), epochs=100)
    assert errors[-1] == 0 and torch.equal(mlp.perceptron_predict(x, w, b), torch.tensor([-1.0, -1, -1, 1]))
    _, _, errors = mlp.perceptron_train(x, torch.tensor([-1.0, 1, 1, -1]), epochs=50)
    assert len(errors) == 50 and min(errors) >= 1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_perceptron_separable_data_converges(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 2, generator=g)
    w_true = torch.randn(2, generator=g)
    y = torch.where(x @ w_true + 0.3 > 0, 1.0, -1.0)
    margin = (x @ w_true + 0.3).abs()
    keep = margin > 0.1
    w, b, errors = mlp.perceptron_train(x[keep], y[keep], epochs=2000)
    assert errors[-1] == 0


@pytest.mark.parametrize("widths,act", [([3, 5, 2], "relu"), ([4, 8, 8, 1], "tanh"), ([2, 1], "relu"), ([6, 3, 4, 3, 2], "sigmoid")])
def test_mlp_forward_matches_sequential(widths, act):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append({"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid()}[act])
    net = torch.nn.Sequential(*layers)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    x = torch.randn(7, widths[0])
    out = mlp.mlp_forward(x, [m.weight for m in linears], [m.bias for m in linears], activation=act)
    torch.testing.assert_close(out, net(x))
    out.square().sum().backward()
    ref = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net(x).square().sum().backward()
    for r, p in zip(ref, net.parameters()):
        torch.testing.assert_close(r, p.grad)
    assert mlp.mlp_num_parameters(widths) == sum(p.numel() for p in net.parameters())


@settings(max_examples=30, deadline=None)
@given(widths_st)
def test_num_parameters_property(widths):
    net = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])
    assert mlp.mlp_num_parameters(widths) == sum(p.numel() for p in net.parameters())


def test_mlp_forward_gradcheck():
    ws = [torch.randn(4, 3, requires_grad=True), torch.randn(2, 4, requires_grad=True)]
    bs = [torch.randn(4, requires_grad=True), torch.randn(2, requires_grad=True)]
    x = torch.randn(5, 3, requires_grad=True)
    f = lambda x, w0, w1, b0, b1: mlp.mlp_forward(x, [w0, w1], [b0, b1], activation="tanh")
    assert torch.autograd.gradcheck(f, (x, *ws, *bs))


@pytest.mark.parametrize("n,d,h,c", [(1, 2, 3, 2), (8, 5, 7, 3), (33, 4, 16, 10)])
def test_two_layer_backward_matches_autograd(n, d, h, c):
    g = torch.Generator().manual_seed(n)
    x, y = torch.randn(n, d, generator=g), torch.randint(c, (n,), generator=g)
    params = [torch.randn(*s, generator=g).requires_grad_() for s in [(h, d), (h,), (c, h), (c,)]]
    loss, cache = mlp.two_layer_forward(x, y, *params)
    ref_net = torch.nn.functional.cross_entropy(torch.relu(x @ params[0].T + params[1]) @ params[2].T + params[3], y)
    torch.testing.assert_close(loss, ref_net)
    loss.backward()
    grads = mlp.two_layer_backward(cache)
    for name, p in zip(["w1", "b1", "w2", "b2"], params):
        torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-12)


def test_two_layer_forward_gradcheck():
    x, y = torch.randn(6, 3), torch.randint(4, (6,))
    params = [torch.randn(*s, requires_grad=True) for s in [(5, 3), (5,), (4, 5), (4,)]]
    assert torch.autograd.gradcheck(lambda *p: mlp.two_layer_forward(x, y, *p)[0], params)


@pytest.mark.parametrize("n", [2, 5, 20])
def test_relu_interpolant_exact_at_knots_and_linear_between(n):
    t = torch.linspace(-3, 3, n + 1)
    v = torch.sin(t)
    w1, b1, w2, b2 = mlp.relu_interpolant(t, v)
    assert w1.shape == (n, 1)
    xs = torch.linspace(-3, 3, 1001)
    out = mlp.mlp_forward(xs[:, None], [w1, w2], [b1, b2])[:, 0]
    torch.testing.assert_close(out, torch.from_numpy(__import__("numpy").interp(xs.numpy(), t.numpy(), v.numpy())))


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_sawtooth_pieces(k):
    x = torch.linspace(0, 1, 2**k * 64 + 1)
    y = mlp.sawtooth(x, k)
    slopes = torch.diff(y) / torch.diff(x)
    pieces = 1 + int((torch.diff(slopes).abs() > 1e-6).sum())
    assert pieces == 2**k
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_sawtooth_gradcheck():
    x = torch.rand(10, requires_grad=True) * 0.9 + 0.01
    x = x.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: mlp.sawtooth(x, 3), (x,))


def test_error_paths():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="weight"):
        mlp.neuron(x, torch.randn(3))
    with pytest.raises(ValueError, match="input"):
        mlp.neuron(torch.randn(3), torch.randn(3))
    with pytest.raises(TypeError, match="input"):
        mlp.append_ones([[1.0]])
    with pytest.raises(ValueError, match="target"):
        mlp.perceptron_train(x, torch.tensor([0.0, 1, 1]))
    with pytest.raises(ValueError, match="epochs"):
        mlp.perceptron_train(x, torch.tensor([1.0, 1, -1]), epochs=0)
    with pytest.raises(ValueError, match="activation"):
        mlp.mlp_forward(x, [torch.randn(1, 2)], [torch.randn(1)], activation="gelu")
    with pytest.raises(ValueError, match="layer 0"):
        mlp.mlp_forward(x, [torch.randn(1, 3)], [torch.randn(1)])
    with pytest.raises(ValueError, match="weights"):
        mlp.mlp_forward(x, [], [])
    with pytest.raises(ValueError, match="widths"):
        mlp.mlp_num_parameters([3])
    with pytest.raises(ValueError, match="target"):
        mlp.two_layer_forward(x, torch.tensor([0.0, 1, 1]), *[torch.randn(2, 2), torch.randn(2)] * 2)
    with pytest.raises(ValueError, match="cache"):
        mlp.two_layer_backward({"x": x})
    with pytest.raises(ValueError, match="knots"):
        mlp.relu_interpolant(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="k must"):
        mlp.sawtooth(torch.rand(3), -1)
