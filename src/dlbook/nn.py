"""Architectures: reference implementations taught in the chapter ``chapters/architectures``.

Convolution by im2col, pooling, output-size and receptive-field arithmetic, ResNet blocks,
RNN/LSTM/GRU layers, scaled dot-product and multi-head attention, positional encodings
(sinusoidal, learned, rotary), masks, Transformer encoder/decoder layers and a small Transformer
other chapters can reuse.

Where torch has the operation, the function carries torch's name, argument order and defaults
(``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``scaled_dot_product_attention``), and layer
functions take the parameters as the ``dict(module.named_parameters())`` of the matching torch
module (``nn.RNN``/``nn.LSTM``/``nn.GRU``, ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer``/``nn.TransformerDecoderLayer``), so a test copies nothing by
hand: it passes the torch module's own weights. Tensors are batch-first ``(B, T, d)`` for
sequences and ``(B, C, H, W)`` for images.

Mask conventions (they differ inside torch; we state ours once):

* an *additive* float mask (``causal_mask``) holds 0 where attention is allowed and ``-inf``
  where it is not, and is added to the scores before the softmax;
* a *boolean* mask passed to :func:`scaled_dot_product_attention` is ``True`` where attention is
  **allowed** (torch's SDPA convention);
* a ``key_padding_mask`` (``padding_mask``) is ``True`` at **pad** positions, which are ignored
  (``nn.MultiheadAttention``'s convention).

Bad input raises ``ValueError``/``TypeError`` naming the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from dlbook.norm import layer_norm

Params = Mapping[str, Tensor]


# -- checks --------------------------------------------------------------------------------
def _check_tensor(name: str, x: object, ndim: int | None = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(x.shape)}")


def _pair(name: str, v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, Sequence) and len(v) == 2 and all(isinstance(u, int) and not isinstance(u, bool) for u in v):
        return (int(v[0]), int(v[1]))
    raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")


def _positive(name: str, v: tuple[int, int]) -> None:
    if min(v) < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")


# -- convolution ---------------------------------------------------------------------------
def conv_output_size(size: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r"""Output length of a convolution or pooling along one axis (the formula in ``nn.Conv2d``'s docs).

    $$H_\text{out} = \left\lfloor \frac{H + 2P - D(K-1) - 1}{S} \right\rfloor + 1,$$
    which for $D = 1$ is the familiar $\lfloor (H + 2P - K)/S \rfloor + 1$.
    """
    for name, v in (("size", size), ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    span = dilation * (kernel_size - 1) + 1  # the dilated kernel's extent
    if size + 2 * padding < span:
        raise ValueError(f"kernel extent {span} exceeds padded input size {size + 2 * padding}")
    return (size + 2 * padding - span) // stride + 1


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    r"""Receptive field and jump of the last layer of a stack of ``(kernel, stride, dilation)`` layers.

    With $r_0 = 1$, $j_0 = 1$ (one input pixel, unit spacing), each layer adds
    $D(K - 1)$ of its input units, each $j$ pixels apart (Araujo et al., *Distill* 2019):
    $$r_l = r_{l-1} + D_l (K_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1} S_l .$$
    Returns ``(r, j)``: the side of the square input region one output sees, and the input
    distance between neighbouring outputs.
    """
    r, j = 1, 1
    for i, layer in enumerate(layers):
        if len(layer) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in layer):
            raise ValueError(f"layers[{i}] must be a (kernel, stride, dilation) triple of positive ints, got {layer!r}")
        k, s, d = layer
        r = r + d * (k - 1) * j  # r_l
        j = j * s  # j_l
    return r, j


def empirical_receptive_field(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """Height and width of the input region on which the centre output of ``model`` depends.

    Measured, not computed: back-propagate from the centre unit (summed over channels) of the
    output of ``model(x)`` for ``x`` of ``input_shape`` (``(1, C, H, W)``), and take the bounding
    box of the non-zero input gradient. The weights are whatever ``model`` holds; use positive
    weights (or linear layers) so no cancellation hides a pixel.
    """
    if len(input_shape) != 4 or input_shape[0] != 1:
        raise ValueError(f"input_shape must be (1, C, H, W), got {tuple(input_shape)}")
    x = torch.ones(*input_shape, dtype=torch.float64, requires_grad=True)
    y = model(x)  # (1, C', H', W')
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    nz = x.grad[0].abs().sum(0) > 0  # (H, W)
    rows = torch.nonzero(nz.any(1)).flatten()
    cols = torch.nonzero(nz.any(0)).flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def im2col(
    input: Tensor,
    kernel_size: int | Sequence[int],
    *,
    dilation: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    stride: int | Sequence[int] = 1,
) -> Tensor:
    r"""Unfold every $K_h \times K_w$ patch into a column: ``(B, C, H, W) -> (B, C K_h K_w, L)``.

    Column $l$ holds the (dilated) patch read by output position $l$ (row-major over
    $H_\text{out} \times W_\text{out}$), channel-major inside; equal to ``F.unfold``. Built from
    zero-padding and strided slicing only, so the gather is visible.
    """
    _check_tensor("input", input, 4)
    kh, kw = _pair("kernel_size", kernel_size)
    dh, dw = _pair("dilation", dilation)
    ph, pw = _pair("padding", padding)
    sh, sw = _pair("stride", stride)
    for name, v in (("kernel_size", (kh, kw)), ("dilation", (dh, dw)), ("stride", (sh, sw))):
        _positive(name, v)
    if min(ph, pw) < 0:
        raise ValueError(f"padding must be >= 0, got {(ph, pw)}")
    B, C, H, W = input.shape
    h_out = conv_output_size(H, kh, stride=sh, padding=ph, dilation=dh)
    w_out = conv_output_size(W, kw, stride=sw, padding=pw, dilation=dw)
    x = torch.nn.functional.pad(input, (pw, pw, ph, ph))  # (B, C, H + 2P, W + 2P)
    patches = []
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw  # where kernel tap (i, j) starts reading
            tap = x[:, :, r0 : r0 + sh * (h_out - 1) + 1 : sh, c0 : c0 + sw * (w_out - 1) + 1 : sw]  # (B, C, H', W')
            patches.append(tap)
    cols = torch.stack(patches, 2)  # (B, C, K_h K_w, H', W')
    return cols.reshape(B, C * kh * kw, h_out * w_out)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    r"""2-D cross-correlation (what deep learning calls convolution), as one matrix product per group.

    $$y[b, o, u, v] = \beta_o + \sum_{c}\sum_{i,j} W[o, c, i, j]\; x[b, c, uS + iD - P, vS + jD - P].$$
    im2col turns the sum into ``W.reshape(C_out, -1) @ cols``; with ``groups = g`` the channels
    split into ``g`` independent blocks (``groups = C_in = C_out`` is a depthwise convolution).
    Same signature and result as ``F.conv2d`` (Chellapilla et al. 2006 for im2col).
    """
    _check_tensor("input", input, 4)
    _check_tensor("weight", weight, 4)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    B, C, H, W = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    if C % groups or c_out % groups:
        raise ValueError(f"in_channels {C} and out_channels {c_out} must both be divisible by groups {groups}")
    if c_per_group != C // groups:
        raise ValueError(f"weight expects {c_per_group * groups} input channels (groups={groups}), input has {C}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    cols = im2col(input, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (B, C K K, L)
    h_out = conv_output_size(H, kh, stride=_pair("stride", stride)[0], padding=_pair("padding", padding)[0], dilation=_pair("dilation", dilation)[0])
    cols = cols.reshape(B, groups, c_per_group * kh * kw, -1)  # (B, g, C/g K K, L)
    w = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)  # (g, C_out/g, C/g K K)
    out = w @ cols  # (B, g, C_out/g, L)
    out = out.reshape(B, c_out, h_out, -1)  # (B, C_out, H', W')
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def _pool_windows(input: Tensor, kernel_size, stride, padding, pad_value: float) -> tuple[Tensor, int, int]:
    _check_tensor("input", input, 4)
    kh, kw = _pair("kernel_size", kernel_size)
    sh, sw = _pair("stride", kernel_size if stride is None else stride)
    ph, pw = _pair("padding", padding)
    _positive("kernel_size", (kh, kw))
    _positive("stride", (sh, sw))
    if min(ph, pw) < 0 or ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding must be in [0, kernel_size // 2], got {(ph, pw)} for kernel {(kh, kw)}")
    B, C, H, W = input.shape
    x = torch.nn.functional.pad(input, (pw, pw, ph, ph), value=pad_value)
    windows = im2col(x.reshape(B * C, 1, H + 2 * ph, W + 2 * pw), (kh, kw), stride=(sh, sw))  # (BC, K K, L)
    h_out = conv_output_size(H, kh, stride=sh, padding=ph)
    return windows, B, h_out


def max_pool2d(input: Tensor, kernel_size: int | Sequence[int], stride=None, padding: int | Sequence[int] = 0) -> Tensor:
    r"""Max pooling: $y[u, v] = \max_{(i, j) \in \text{window}(u, v)} x[i, j]$ per channel.

    Padding is $-\infty$, so it never wins (as ``F.max_pool2d``). The gradient goes to the
    arg-max of each window only (ties: to one of them, as torch).
    """
    windows, B, h_out = _pool_windows(input, kernel_size, stride, padding, float("-inf"))
    out = windows.amax(1)  # (BC, L)
    return out.reshape(B, input.shape[1], h_out, -1)


def avg_pool2d(input: Tensor, kernel_size: int | Sequence[int], stride=None, padding: int | Sequence[int] = 0) -> Tensor:
    r"""Average pooling: $y[u, v] = \frac{1}{K_h K_w}\sum_{\text{window}} x$, padding counted as 0.

    ``count_include_pad=True`` (torch's default): a window overlapping the zero padding still
    divides by $K_h K_w$. The gradient $1/(K_h K_w)$ reaches every pixel of the window.
    """
    windows, B, h_out = _pool_windows(input, kernel_size, stride, padding, 0.0)
    out = windows.mean(1)  # (BC, L)
    return out.reshape(B, input.shape[1], h_out, -1)


def conv2d_flops(c_in: int, c_out: int, kernel_size: int, h_out: int, w_out: int, *, groups: int = 1) -> int:
    r"""FLOPs of a convolution's multiply-adds, counted like ``FlopCounterMode`` (2 per MAC, no bias).

    $$\text{FLOPs} = 2\, H_\text{out} W_\text{out}\, C_\text{out}\, \frac{C_\text{in}}{g} K^2 .$$
    """
    if c_in % groups or c_out % groups:
        raise ValueError(f"c_in {c_in} and c_out {c_out} must be divisible by groups {groups}")
    return 2 * h_out * w_out * c_out * (c_in // groups) * kernel_size**2


# -- ResNet blocks ---------------------------------------------------------------------------
class BasicBlock(nn.Module):
    r"""ResNet basic block (He et al. 2016, fig. 2): $y = \mathrm{relu}(F(x) + s(x))$, $F$ = two 3x3 conv-BN.

    ``s`` is the identity, or a strided 1x1 conv-BN projection when the shape changes.
    Same layout as torchvision's ``BasicBlock``.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        f = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))  # F(x)
        return torch.relu(f + self.shortcut(x))


class Bottleneck(nn.Module):
    r"""ResNet bottleneck block (He et al. 2016, fig. 5): 1x1 reduce to ``channels``, 3x3, 1x1 expand x4.

    $y = \mathrm{relu}(F(x) + s(x))$; the 3x3 convolution runs at the reduced width, which is
    what keeps ResNet-50/101/152 affordable. Same layout as torchvision's ``Bottleneck``.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: Tensor) -> Tensor:
        f = torch.relu(self.bn1(self.conv1(x)))  # 1x1 reduce
        f = torch.relu(self.bn2(self.conv2(f)))  # 3x3 at the narrow width
        f = self.bn3(self.conv3(f))  # 1x1 expand
        return torch.relu(f + self.shortcut(x))


def bottleneck_weights(channels: int, reduced: int, kernel_size: int = 3) -> int:
    r"""Conv weights of a bottleneck $C \to c \to c \to C$: $C c + K^2 c^2 + c C$ (no biases, no BN)."""
    return channels * reduced + kernel_size**2 * reduced**2 + reduced * channels


class MLPStack(nn.Module):
    r"""A stack of ``depth`` width-``width`` layers, plain or residual, for the degradation experiment.

    plain: $h \leftarrow W\,\mathrm{relu}(h)$; residual (pre-activation, He et al. 2016b):
    $h \leftarrow h + W\,\mathrm{relu}(h)$; with ``batch_norm`` a BatchNorm1d sits before each
    ReLU. Input and output are linear maps ``d_in -> width`` and ``width -> d_out``.
    """

    def __init__(self, d_in: int, width: int, depth: int, d_out: int = 1, *, residual: bool = False, batch_norm: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.residual = residual
        self.inp = nn.Linear(d_in, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.norms = nn.ModuleList((nn.BatchNorm1d(width) if batch_norm else nn.Identity()) for _ in range(depth))
        self.out = nn.Linear(width, d_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for layer, norm in zip(self.layers, self.norms):
            f = layer(torch.relu(norm(h)))  # W relu(h)
            h = h + f if self.residual else f
        return self.out(torch.relu(h))


# -- recurrent networks ----------------------------------------------------------------------
def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None, *, nonlinearity: str = "tanh") -> Tensor:
    r"""Elman cell: $h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})$ (``nn.RNNCell``)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    a = x @ w_ih.T + h @ w_hh.T  # (B, H)
    if b_ih is not None:
        a = a + b_ih + b_hh
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


def lstm_cell(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    $$i, f, g, o = \sigma(\cdot), \sigma(\cdot), \tanh(\cdot), \sigma(\cdot)\ \text{of}\ W_{ih} x_t + W_{hh} h_{t-1} + b,$$
    $$C_t = f \odot C_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(C_t).$$
    Gate order in the stacked weights is PyTorch's: input, forget, cell (g), output.
    """
    h, c = state
    a = x @ w_ih.T + h @ w_hh.T  # (B, 4H)
    if b_ih is not None:
        a = a + b_ih + b_hh
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c = f * c + i * g  # C_t: the additive path
    h = o * torch.tanh(c)  # h_t
    return h, c


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    r"""GRU cell in PyTorch's convention (Cho et al. 2014, with the reset after the product).

    $$r = \sigma(W_{ir}x + b_{ir} + W_{hr}h + b_{hr}),\quad z = \sigma(W_{iz}x + b_{iz} + W_{hz}h + b_{hz}),$$
    $$n = \tanh(W_{in}x + b_{in} + r \odot (W_{hn}h + b_{hn})),\qquad h_t = (1 - z)\odot n + z \odot h_{t-1}.$$
    Textbooks often write $h_t = z \odot n + (1 - z) \odot h_{t-1}$: the same family with $z \to 1 - z$.
    """
    gi = x @ w_ih.T  # (B, 3H)
    gh = h @ w_hh.T  # (B, 3H)
    if b_ih is not None:
        gi, gh = gi + b_ih, gh + b_hh
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)  # reset applied after W_hn h
    return (1 - z) * n + z * h


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def rnn(
    input: Tensor,
    params: Params,
    *,
    mode: str = "RNN_TANH",
    num_layers: int = 1,
    bidirectional: bool = False,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    r"""A (stacked, optionally bidirectional) RNN, LSTM or GRU over a batch-first sequence.

    ``params`` is ``dict(m.named_parameters())`` of the matching ``nn.RNN``/``nn.LSTM``/
    ``nn.GRU`` (names ``weight_ih_l{k}[_reverse]`` ...). Layer $k+1$ reads the concatenated
    forward and backward outputs of layer $k$; the backward direction reads the sequence from
    the end. Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for LSTM) with torch's shapes:
    output ``(B, T, D H)``, states ``(D L, B, H)``.
    """
    _check_tensor("input", input, 3)
    if mode not in _GATES:
        raise ValueError(f"mode must be one of {sorted(_GATES)}, got {mode!r}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
    n_dir = 2 if bidirectional else 1
    if f"weight_hh_l{num_layers - 1}" not in params:
        raise ValueError(f"params has no weight_hh_l{num_layers - 1}: pass the parameters of a {num_layers}-layer module")
    H = params["weight_hh_l0"].shape[1]
    if params["weight_hh_l0"].shape[0] != _GATES[mode] * H:
        raise ValueError(f"weight_hh_l0 has {params['weight_hh_l0'].shape[0]} rows; mode {mode!r} expects {_GATES[mode]}x{H}")
    B, T, _ = input.shape
    zeros = input.new_zeros(n_dir * num_layers, B, H)
    if hx is None:
        hx = (zeros, zeros) if mode == "LSTM" else zeros
    h0, c0 = hx if mode == "LSTM" else (hx, None)
    layer_in, h_n, c_n = input, [], []
    for k in range(num_layers):
        outs = []
        for d in range(n_dir):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            w = [params.get(f"{n}{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            idx = k * n_dir + d
            h = h0[idx]
            c = c0[idx] if c0 is not None else None
            steps = range(T - 1, -1, -1) if d else range(T)
            ys = [None] * T
            for t in steps:
                x_t = layer_in[:, t]  # (B, D_in)
                if mode == "LSTM":
                    h, c = lstm_cell(x_t, (h, c), *w)
                elif mode == "GRU":
                    h = gru_cell(x_t, h, *w)
                else:
                    h = rnn_cell(x_t, h, *w, nonlinearity="tanh" if mode == "RNN_TANH" else "relu")
                ys[t] = h
            outs.append(torch.stack(ys, 1))  # (B, T, H)
            h_n.append(h)
            c_n.append(c)
        layer_in = torch.cat(outs, -1)  # (B, T, D H)
    h_n = torch.stack(h_n)  # (D L, B, H)
    if mode == "LSTM":
        return layer_in, (h_n, torch.stack(c_n))
    return layer_in, h_n


# -- attention -------------------------------------------------------------------------------
def causal_mask(size: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Additive causal mask ``(T, T)``: 0 on and below the diagonal, $-\infty$ above (position $t$ sees $\le t$).

    Equal to ``nn.Transformer.generate_square_subsequent_mask``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return torch.triu(torch.full((size, size), float("-inf"), dtype=dtype), diagonal=1)


def padding_mask(lengths: Tensor | Sequence[int], max_len: int | None = None) -> Tensor:
    """Boolean key-padding mask ``(B, T)``: ``True`` at pad positions ``t >= lengths[b]``."""
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.dtype.is_floating_point or (lengths < 0).any():
        raise ValueError(f"lengths must be a 1-D tensor of non-negative ints, got {lengths.tolist()}")
    T = int(lengths.max()) if max_len is None else max_len
    if int(lengths.max()) > T:
        raise ValueError(f"max_len {T} is shorter than the longest length {int(lengths.max())}")
    return torch.arange(T)[None, :] >= lengths[:, None]


def sliding_window_mask(size: int, window: int, *, causal: bool = True) -> Tensor:
    r"""Boolean mask ``(T, T)``, ``True`` where allowed: $t - w < s \le t$ (causal) or $|t - s| < w$."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    t = torch.arange(size)
    diff = t[:, None] - t[None, :]  # t - s
    return (diff >= 0) & (diff < window) if causal else diff.abs() < window


def _masked_scores(scores: Tensor, attn_mask: Tensor | None, is_causal: bool) -> Tensor:
    T, S = scores.shape[-2:]
    if is_causal:
        scores = scores + causal_mask(max(T, S), dtype=scores.dtype)[:T, :S]
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))  # True = allowed
        else:
            scores = scores + attn_mask  # additive: 0 or -inf
    return scores


def attention_weights(query: Tensor, key: Tensor, attn_mask: Tensor | None = None, *, is_causal: bool = False, scale: float | None = None) -> Tensor:
    r"""$A = \mathrm{softmax}(Q K^\top \cdot s + M)$ row-wise, $s = 1/\sqrt{d_k}$ unless ``scale`` is given.

    A row whose every key is masked is all $-\infty$ and its softmax is ``nan`` (0/0); see the
    chapter for how torch's kernels differ on such rows.
    """
    _check_tensor("query", query)
    _check_tensor("key", key)
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query and key must share the last dim d_k, got {query.shape[-1]} and {key.shape[-1]}")
    s = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = query @ key.transpose(-2, -1) * s  # (..., T, S)
    return torch.softmax(_masked_scores(scores, attn_mask, is_causal), dim=-1)


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    r"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): $\mathrm{softmax}(QK^\top/\sqrt{d_k} + M)\,V$.

    Same signature as ``F.scaled_dot_product_attention``; shapes ``(..., T, d_k)``,
    ``(..., S, d_k)``, ``(..., S, d_v)`` -> ``(..., T, d_v)``. Only ``dropout_p = 0`` is
    implemented (the deterministic reference). Convention difference: a fully masked row gives
    ``nan`` here, zeros in torch 2.13's SDPA.
    """
    if dropout_p != 0.0:
        raise ValueError(f"only dropout_p=0.0 is implemented in the reference, got {dropout_p}")
    _check_tensor("value", value)
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"key and value must have the same length S, got {key.shape[-2]} and {value.shape[-2]}")
    return attention_weights(query, key, attn_mask, is_causal=is_causal, scale=scale) @ value


def additive_attention(query: Tensor, keys: Tensor, w_q: Tensor, w_k: Tensor, v: Tensor) -> Tensor:
    r"""Bahdanau (additive) attention weights: $a_s = \mathrm{softmax}_s\, v^\top \tanh(W_q q + W_k k_s)$.

    query ``(B, d_q)``, keys ``(B, S, d_k)``, ``w_q (d_a, d_q)``, ``w_k (d_a, d_k)``, ``v (d_a,)``
    -> weights ``(B, S)`` (Bahdanau, Cho & Bengio 2015, eq. 6 and appendix A.1.2).
    """
    e = torch.tanh((query @ w_q.T)[:, None, :] + keys @ w_k.T) @ v  # (B, S)
    return torch.softmax(e, dim=-1)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, T, d) -> (B, h, T, d/h)``: head ``i`` gets features ``[i d/h, (i+1) d/h)``."""
    B, T, d = x.shape
    if d % num_heads:
        raise ValueError(f"embed dim {d} must be divisible by num_heads {num_heads}")
    return x.reshape(B, T, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, h, T, d/h) -> (B, T, d)``, the inverse of :func:`split_heads` (concatenate the heads)."""
    B, h, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dh)


def multi_head_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    params: Params,
    *,
    num_heads: int,
    key_padding_mask: Tensor | None = None,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Multi-head attention (Vaswani et al. 2017, sec. 3.2.2), batch-first.

    $$\mathrm{head}_i = \mathrm{softmax}\!\Big(\frac{Q W^Q_i (K W^K_i)^\top}{\sqrt{d/h}}\Big) V W^V_i,\qquad
    \mathrm{MHA} = [\mathrm{head}_1, \dots, \mathrm{head}_h]\, W^O .$$
    ``params`` holds ``nn.MultiheadAttention``'s ``in_proj_weight`` ``(3d, d)`` (rows: $W^Q$,
    $W^K$, $W^V$), ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``. ``attn_mask`` is
    additive float or boolean with ``True`` = **blocked** (``nn.MultiheadAttention``'s
    convention); ``key_padding_mask`` is ``True`` at pads. Returns the output ``(B, T, d)`` and
    the per-head weights ``(B, h, T, S)``.
    """
    _check_tensor("query", query, 3)
    d = query.shape[-1]
    w_q, w_k, w_v = params["in_proj_weight"].chunk(3)
    b = params.get("in_proj_bias")
    b_q, b_k, b_v = b.chunk(3) if b is not None else (None, None, None)
    q = split_heads(nn.functional.linear(query, w_q, b_q), num_heads)  # (B, h, T, d/h)
    k = split_heads(nn.functional.linear(key, w_k, b_k), num_heads)  # (B, h, S, d/h)
    v = split_heads(nn.functional.linear(value, w_v, b_v), num_heads)  # (B, h, S, d/h)
    mask = None
    if attn_mask is not None:
        mask = torch.zeros(attn_mask.shape, dtype=q.dtype).masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else attn_mask
    if key_padding_mask is not None:
        pad = torch.zeros(key_padding_mask.shape, dtype=q.dtype).masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]  # (B, 1, 1, S)
        mask = pad if mask is None else mask + pad
    weights = attention_weights(q, k, mask, is_causal=is_causal)  # (B, h, T, S)
    heads = merge_heads(weights @ v)  # (B, T, d)
    out = nn.functional.linear(heads, params["out_proj.weight"], params.get("out_proj.bias"))
    if out.shape[-1] != d:
        raise ValueError(f"out_proj maps to {out.shape[-1]} features, expected {d}")
    return out, weights


# -- positional encodings ----------------------------------------------------------------------
def sinusoidal_positional_encoding(length: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Sinusoidal encodings (Vaswani et al. 2017, sec. 3.5), shape ``(length, d_model)``.

    $PE_{pos, 2i} = \sin(pos\,\omega_i)$, $PE_{pos, 2i+1} = \cos(pos\,\omega_i)$,
    $\omega_i = \text{base}^{-2i/d}$. Each pair rotates by the angle $k\omega_i$ under a shift
    by $k$, so $PE_{pos+k} = M_k PE_{pos}$ with $M_k$ independent of $pos$.
    """
    if length < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"need length >= 1 and an even d_model >= 2, got length={length}, d_model={d_model}")
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    omega = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d/2,)
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * omega)
    pe[:, 1::2] = torch.cos(pos * omega)
    return pe.to(dtype)


def rope(x: Tensor, positions: Tensor | None = None, *, base: float = 10000.0) -> Tensor:
    r"""Rotary position embedding (Su et al. 2021, RoFormer, eq. 34): rotate each feature pair by $m\theta_i$.

    For $x$ of shape ``(..., T, d)`` at positions $m$ (default $0..T-1$), pair $(x_{2i}, x_{2i+1})$
    becomes $R(m\theta_i)(x_{2i}, x_{2i+1})$ with $\theta_i = \text{base}^{-2i/d}$. Because
    $R(m\theta)^\top R(n\theta) = R((n - m)\theta)$, the score $\langle R_m q, R_n k \rangle$
    depends on $m - n$ only.
    """
    _check_tensor("x", x)
    T, d = x.shape[-2:]
    if d % 2:
        raise ValueError(f"rope needs an even feature dim, got {d}")
    m = torch.arange(T, dtype=x.dtype) if positions is None else positions.to(x.dtype)
    if m.shape != (T,):
        raise ValueError(f"positions must have shape ({T},), got {tuple(m.shape)}")
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype) / d)  # (d/2,)
    angle = m[:, None] * theta  # (T, d/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., T, d/2)
    y1 = x1 * cos - x2 * sin
    y2 = x1 * sin + x2 * cos
    return torch.stack([y1, y2], -1).flatten(-2)  # interleave back: (..., T, d)


class LearnedPositionalEmbedding(nn.Module):
    """A learned table of ``max_len`` position vectors (BERT, GPT-2); it cannot index beyond ``max_len``."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, length: int) -> Tensor:
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds the learned table's max_len {self.max_len}")
        return self.weight[:length]


# -- Transformer layers ------------------------------------------------------------------------
def _sub(params: Params, prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def feed_forward(x: Tensor, params: Params, *, activation: str = "relu") -> Tensor:
    r"""Position-wise FFN (Vaswani et al. 2017, eq. 2): $W_2\,\phi(W_1 x + b_1) + b_2$ at every token."""
    if activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
    phi = torch.relu if activation == "relu" else nn.functional.gelu
    h = phi(nn.functional.linear(x, params["linear1.weight"], params["linear1.bias"]))  # (B, T, d_ff)
    return nn.functional.linear(h, params["linear2.weight"], params["linear2.bias"])  # (B, T, d)


def _norm(x: Tensor, params: Params, name: str, eps: float) -> Tensor:
    return layer_norm(x, x.shape[-1], params[f"{name}.weight"], params[f"{name}.bias"], eps=eps)


def transformer_encoder_layer(
    x: Tensor,
    params: Params,
    *,
    nhead: int,
    norm_first: bool = False,
    activation: str = "relu",
    eps: float = 1e-5,
    src_mask: Tensor | None = None,
    src_key_padding_mask: Tensor | None = None,
    is_causal: bool = False,
) -> Tensor:
    r"""One encoder layer, ``nn.TransformerEncoderLayer`` (batch-first, dropout off) with its parameters.

    Post-LN (``norm_first=False``, the original paper): $x \leftarrow \mathrm{LN}(x + \mathrm{SA}(x))$,
    $x \leftarrow \mathrm{LN}(x + \mathrm{FFN}(x))$. Pre-LN (Xiong et al. 2020):
    $x \leftarrow x + \mathrm{SA}(\mathrm{LN}(x))$, $x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))$.
    """
    _check_tensor("x", x, 3)
    sa = _sub(params, "self_attn.")

    def attend(h: Tensor) -> Tensor:
        return multi_head_attention(h, h, h, sa, num_heads=nhead, attn_mask=src_mask, key_padding_mask=src_key_padding_mask, is_causal=is_causal)[0]

    if norm_first:
        x = x + attend(_norm(x, params, "norm1", eps))
        return x + feed_forward(_norm(x, params, "norm2", eps), params, activation=activation)
    x = _norm(x + attend(x), params, "norm1", eps)
    return _norm(x + feed_forward(x, params, activation=activation), params, "norm2", eps)


def transformer_decoder_layer(
    x: Tensor,
    memory: Tensor,
    params: Params,
    *,
    nhead: int,
    norm_first: bool = False,
    activation: str = "relu",
    eps: float = 1e-5,
    tgt_mask: Tensor | None = None,
    memory_key_padding_mask: Tensor | None = None,
    tgt_key_padding_mask: Tensor | None = None,
    tgt_is_causal: bool = False,
) -> Tensor:
    r"""One decoder layer, ``nn.TransformerDecoderLayer`` (batch-first, dropout off) with its parameters.

    Three sublayers: masked self-attention over the target, cross-attention whose **queries come
    from the decoder** and **keys/values from the encoder output** (``memory``), then the FFN;
    each wrapped in a residual connection and LayerNorm (after it, or before with ``norm_first``).
    """
    _check_tensor("x", x, 3)
    _check_tensor("memory", memory, 3)
    sa, ca = _sub(params, "self_attn."), _sub(params, "multihead_attn.")

    def self_attend(h: Tensor) -> Tensor:
        return multi_head_attention(h, h, h, sa, num_heads=nhead, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask, is_causal=tgt_is_causal)[0]

    def cross_attend(h: Tensor) -> Tensor:
        return multi_head_attention(h, memory, memory, ca, num_heads=nhead, key_padding_mask=memory_key_padding_mask)[0]

    if norm_first:
        x = x + self_attend(_norm(x, params, "norm1", eps))
        x = x + cross_attend(_norm(x, params, "norm2", eps))
        return x + feed_forward(_norm(x, params, "norm3", eps), params, activation=activation)
    x = _norm(x + self_attend(x), params, "norm1", eps)
    x = _norm(x + cross_attend(x), params, "norm2", eps)
    return _norm(x + feed_forward(x, params, activation=activation), params, "norm3", eps)


class TransformerEncoderLayer(nn.Module):
    """Thin module over :func:`transformer_encoder_layer`, with ``nn.TransformerEncoderLayer``'s parameter names.

    A ``state_dict`` loads into either class unchanged.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, *, norm_first: bool = False, activation: str = "relu"):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model {d_model} must be divisible by nhead {nhead}")
        self.nhead, self.norm_first, self.activation = nhead, norm_first, activation
        self.self_attn = nn.Module()
        self.self_attn.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.self_attn.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.self_attn.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.self_attn.in_proj_weight)
        nn.init.zeros_(self.self_attn.out_proj.bias)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, *, is_causal: bool = False, src_key_padding_mask: Tensor | None = None) -> Tensor:
        params = dict(self.named_parameters())
        return transformer_encoder_layer(
            x, params, nhead=self.nhead, norm_first=self.norm_first, activation=self.activation, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask
        )


class TinyTransformer(nn.Module):
    r"""A small encoder-only (``causal=False``) or decoder-only (``causal=True``) Transformer.

    token embedding + learned positions -> ``num_layers`` Pre-LN
    :class:`TransformerEncoderLayer` -> LayerNorm -> linear head over the vocabulary. With
    ``tie_weights`` the head reuses the embedding matrix (Press & Wolf 2017), saving $V d$
    parameters. Input ``(B, T)`` token ids, output logits ``(B, T, V)``.
    """

    def __init__(self, vocab_size: int, d_model: int = 32, nhead: int = 4, num_layers: int = 2, dim_feedforward: int = 64, *, max_len: int = 64, causal: bool = False, tie_weights: bool = False):
        super().__init__()
        self.causal, self.d_model = causal, d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = LearnedPositionalEmbedding(max_len, d_model)
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, nhead, dim_feedforward, norm_first=True) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
        h = self.embed(tokens) + self.pos(tokens.shape[1])  # (B, T, d)
        for layer in self.layers:
            h = layer(h, is_causal=self.causal)
        return self.head(self.norm(h))  # (B, T, V)


def num_parameters(module: nn.Module) -> int:
    """Number of distinct parameters (a tied matrix counts once, as ``module.parameters()`` yields it once)."""
    return sum(p.numel() for p in module.parameters())
