r"""Parameter-efficient fine-tuning written out: LoRA, adapters, prefix and prompt tuning, NF4 and QLoRA.

The fine-tuning chapter (``chapters/finetuning``, "LoRA and parameter-efficient fine-tuning",
"QLoRA and NF4", "Instruction tuning") teaches these. Notation: a frozen weight
$W_0 \in \mathbb{R}^{d_\text{out} \times d_\text{in}}$, a rank-$r$ update $\Delta W = \frac{\alpha}{r} B A$
with $B \in \mathbb{R}^{d_\text{out} \times r}$, $A \in \mathbb{R}^{r \times d_\text{in}}$.

Oracles: ``peft`` (LoRA, ``merge_and_unload``) and ``bitsandbytes`` (``get_4bit_type``,
``quantize_4bit``/``dequantize_4bit`` with ``quant_type="nf4"``) in ``tests/test_lora.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlbook.finetune import num_trainable  # noqa: F401  (re-exported: part of this module's API)
from dlbook.nn import TinyTransformer, attention_weights, merge_heads, split_heads

__all__ = [
    "check_rank",
    "lora_delta",
    "LoRALinear",
    "apply_lora",
    "merge_lora",
    "num_trainable",
    "BottleneckAdapter",
    "PEFTTransformer",
    "nf4_levels",
    "int4_levels",
    "dynamic_map",
    "blockwise_quantize",
    "blockwise_dequantize",
    "pack_4bit",
    "unpack_4bit",
    "NF4Weight",
    "nf4_quantize",
    "nf4_dequantize",
    "bits_per_parameter",
    "QLoRALinear",
    "response_only_labels",
    "causal_lm_loss",
]


# -- LoRA ---------------------------------------------------------------------------------------
def check_rank(r: int, in_features: int, out_features: int) -> None:
    """``ValueError`` unless ``1 <= r <= min(in_features, out_features)`` (a larger r adds no rank)."""
    if not isinstance(r, int) or isinstance(r, bool):
        raise TypeError(f"rank r must be an int, got {type(r).__name__}")
    if r <= 0 or r > min(in_features, out_features):
        raise ValueError(f"rank r must be in [1, min(in, out) = {min(in_features, out_features)}], got r={r}")


def lora_delta(lora_A: Tensor, lora_B: Tensor, *, lora_alpha: float) -> Tensor:
    r"""$\Delta W = \frac{\alpha}{r} B A$ (Hu et al. 2021, eq. 3 and sec. 4.1), shape ``(out, in)``."""
    r = lora_A.shape[0]
    if lora_B.shape[1] != r:
        raise ValueError(f"lora_B has {lora_B.shape[1]} columns, lora_A has {r} rows")
    return (lora_alpha / r) * (lora_B @ lora_A)  # (out, r) @ (r, in)


class LoRALinear(nn.Module):
    r"""A frozen ``nn.Linear`` plus a trainable rank-$r$ update (Hu et al. 2021, "LoRA").

    $$h = W_0 x + b + \frac{\alpha}{r} B A x,$$

    $A$ ``(r, in)`` initialised like peft (Kaiming-uniform, $a = \sqrt 5$, from ``generator``),
    $B$ ``(out, r)`` zero, so the layer equals the base layer at initialisation. ``merge()``
    folds $\frac{\alpha}{r}BA$ into $W_0$ (inference then costs one matmul, as before);
    ``unmerge()`` subtracts it again (exact in real arithmetic; in float32 within one rounding).
    Parameter names follow peft (``lora_A``, ``lora_B``, ``lora_alpha``, ``scaling``).
    """

    def __init__(self, base: nn.Linear, r: int, *, lora_alpha: float = 8.0, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        check_rank(r, base.in_features, base.out_features)
        self.r, self.lora_alpha, self.scaling = r, lora_alpha, lora_alpha / r
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)  # W_0, frozen
        self.bias = None if base.bias is None else nn.Parameter(base.bias.detach().clone(), requires_grad=False)
        bound = 1 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)) on a (r, in) matrix
        a = (torch.rand(r, base.in_features, generator=generator, dtype=base.weight.dtype) * 2 - 1) * bound
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=base.weight.dtype))
        self.merged = False

    def delta_weight(self) -> Tensor:
        return lora_delta(self.lora_A, self.lora_B, lora_alpha=self.lora_alpha)

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.linear(x, self.weight, self.bias)  # W_0 x + b (W_0 + dW once merged)
        if self.merged:
            return h
        return h + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)  # (..., in) -> (..., r) -> (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            raise RuntimeError("already merged")
        self.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError("not merged")
        self.weight -= self.delta_weight()
        self.merged = False

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` with $W_0 + \\frac{\\alpha}{r}BA$ (peft's ``merge_and_unload``)."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=self.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.weight if self.merged else self.weight + self.delta_weight())
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.lora_alpha}, merged={self.merged}"


def apply_lora(model: nn.Module, r: int, *, lora_alpha: float = 8.0, target: tuple[str, ...] | None = None,
               generator: torch.Generator | None = None) -> nn.Module:
    """Freeze every parameter of ``model``, then replace each ``nn.Linear`` whose name is in ``target``
    (all of them when ``None``) by a :class:`LoRALinear`, in place; returns ``model``."""
    for p in model.parameters():
        p.requires_grad_(False)
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and (target is None or n in target)]
    if target is not None and len(named) != len(target):
        raise ValueError(f"target names {sorted(set(target) - {n for n, _ in named})} are not nn.Linear modules of the model")
    for name, module in named:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, r, lora_alpha=lora_alpha, generator=generator))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by its merged ``nn.Linear``, in place (peft's ``merge_and_unload``)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged_linear())
    return model


class BottleneckAdapter(nn.Module):
    r"""Houlsby et al. 2019 adapter: $h \mapsto h + W_\text{up}\,\mathrm{ReLU}(W_\text{down} h)$.

    ``W_down`` ``(m, d)``, ``W_up`` ``(d, m)`` with biases; ``W_up`` starts at zero so the adapter is
    the identity at initialisation. Trainable parameters: $2md + m + d$.
    """

    def __init__(self, d_model: int, bottleneck: int):
        super().__init__()
        if bottleneck <= 0:
            raise ValueError(f"bottleneck must be positive, got {bottleneck}")
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(torch.relu(self.down(h)))


def _prefix_attention(x: Tensor, layer: nn.Module, prefix_k: Tensor | None, prefix_v: Tensor | None) -> Tensor:
    """Self-attention of a :class:`dlbook.nn.TransformerEncoderLayer` with learned keys/values prepended."""
    sa, nhead = layer.self_attn, layer.nhead
    w_q, w_k, w_v = sa.in_proj_weight.chunk(3)
    b_q, b_k, b_v = sa.in_proj_bias.chunk(3)
    q = split_heads(nn.functional.linear(x, w_q, b_q), nhead)  # (B, h, T, d/h)
    k = split_heads(nn.functional.linear(x, w_k, b_k), nhead)
    v = split_heads(nn.functional.linear(x, w_v, b_v), nhead)
    if prefix_k is not None:
        n = x.shape[0]
        k = torch.cat([split_heads(prefix_k.expand(n, -1, -1), nhead), k], dim=2)  # (B, h, p + T, d/h)
        v = torch.cat([split_heads(prefix_v.expand(n, -1, -1), nhead), v], dim=2)
    heads = merge_heads(attention_weights(q, k) @ v)  # (B, T, d)
    return sa.out_proj(heads)


class PEFTTransformer(nn.Module):
    r"""A frozen encoder :class:`dlbook.nn.TinyTransformer` (Pre-LN) with one PEFT method and a trainable head.

    ``method``:

    * ``"head"``: nothing added (a linear probe on the mean-pooled features);
    * ``"adapter"``: a :class:`BottleneckAdapter` on each layer's FFN output, before the residual
      add (Houlsby et al. 2019; Pfeiffer et al. 2021 placement);
    * ``"prompt"``: ``n_virtual`` trainable input embeddings prepended to the sequence (Lester et al.
      2021, prompt tuning): the sequence the layers see grows by ``n_virtual``;
    * ``"prefix"``: ``n_virtual`` trainable keys and values prepended in every layer's attention
      (Li & Liang 2021, prefix tuning, as peft's ``past_key_values``);
    * ``"lora"``: :class:`LoRALinear` of rank ``r`` on each attention output projection and FFN linear.

    The classifier is mean pooling over the real tokens, then ``nn.Linear(d, n_classes)`` (trainable).
    Run the model through this wrapper: the backbone's own ``forward`` reads its parameters by
    name and would skip the insertions (after :func:`merge_lora` the two agree again).
    """

    METHODS = ("head", "adapter", "prompt", "prefix", "lora")

    def __init__(self, backbone: TinyTransformer, n_classes: int, method: str, *, r: int = 4, lora_alpha: float = 8.0,
                 bottleneck: int = 8, n_virtual: int = 4, generator: torch.Generator | None = None):
        super().__init__()
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        if backbone.causal:
            raise ValueError("PEFTTransformer expects an encoder (causal=False) TinyTransformer")
        self.backbone, self.method = backbone, method
        for p in backbone.parameters():
            p.requires_grad_(False)
        d, n_layers = backbone.d_model, len(backbone.layers)
        init = lambda *shape: nn.Parameter(0.02 * torch.randn(*shape, generator=generator))  # noqa: E731
        if method == "adapter":
            self.adapters = nn.ModuleList(BottleneckAdapter(d, bottleneck) for _ in range(n_layers))
        elif method == "prompt":
            self.prompt = init(1, n_virtual, d)
        elif method == "prefix":
            self.prefix_k = nn.ParameterList(init(1, n_virtual, d) for _ in range(n_layers))
            self.prefix_v = nn.ParameterList(init(1, n_virtual, d) for _ in range(n_layers))
        elif method == "lora":
            targets = tuple(f"layers.{i}.{m}" for i in range(n_layers) for m in ("self_attn.out_proj", "linear1", "linear2"))
            apply_lora(backbone, r, lora_alpha=lora_alpha, target=targets, generator=generator)
        self.head = nn.Linear(d, n_classes)

    def features(self, tokens: Tensor) -> Tensor:
        """The backbone's final hidden states ``(B, T', d)`` with the method's insertions (``T' = T + n_virtual`` for prompts)."""
        bb = self.backbone
        h = bb.embed(tokens) + bb.pos(tokens.shape[1])  # (B, T, d)
        if self.method == "prompt":
            h = torch.cat([self.prompt.expand(len(h), -1, -1), h], dim=1)  # (B, p + T, d)
        for i, layer in enumerate(bb.layers):
            pk = self.prefix_k[i] if self.method == "prefix" else None
            pv = self.prefix_v[i] if self.method == "prefix" else None
            h = h + _prefix_attention(layer.norm1(h), layer, pk, pv)
            ffn = layer.linear2(torch.relu(layer.linear1(layer.norm2(h))))
            h = h + (self.adapters[i](ffn) if self.method == "adapter" else ffn)
        return bb.norm(h)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.features(tokens)
        if self.method == "prompt":
            h = h[:, self.prompt.shape[1]:]  # pool over the real tokens only
        return self.head(h.mean(dim=1))  # (B, n_classes)


# -- NF4, blockwise absmax quantization, double quantization ------------------------------------
def nf4_levels(*, offset: float = 0.9677083) -> Tensor:
    r"""The 16 NormalFloat-4 levels (Dettmers et al. 2023, "QLoRA", sec. 3, eq. 4), float32 in $[-1, 1]$.

    $q_i = \Phi^{-1}(p_i)$ at evenly spaced probabilities: 8 on the positive side
    ($p$ from ``offset`` down to 1/2, the last one dropped) and 7 on the negative side, plus an
    exact zero, then divided by the largest so the ends are $\pm 1$. The asymmetry (8 + 7 + 0)
    gives an exact zero with 16 codes. ``offset`` $= \frac12\big((1 - \frac1{2\cdot15}) + (1 - \frac1{2\cdot16})\big)$
    keeps $\Phi^{-1}$ finite; it is the constant of bitsandbytes' ``create_normal_map``.
    """
    pos_p = torch.linspace(offset, 0.5, 9)[:-1].double()  # 8 probabilities, float32 grid as bitsandbytes
    neg_p = torch.linspace(offset, 0.5, 8)[:-1].double()  # 7 probabilities
    pos = torch.special.ndtri(pos_p)
    neg = -torch.special.ndtri(neg_p)
    levels = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg]).float().sort().values
    return levels / levels.max()


def int4_levels() -> Tensor:
    """Uniform symmetric 4-bit absmax levels $k/7$, $k = -7, \\dots, 7$ (15 used codes), float32."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def dynamic_map(*, max_exponent_bits: int = 7, total_bits: int = 8) -> Tensor:
    r"""The signed 8-bit dynamic (tree) data type of Dettmers 2016 ("8-Bit Approximations"), 256 sorted levels.

    For exponent $e = 0, \dots, 6$ it places $2^{e}$ magnitudes $10^{e-6}\,m$, $m$ the midpoints
    of an even grid on $[0.1, 1]$, with both signs, plus $0$ and $1$. bitsandbytes quantizes the
    QLoRA block scales with it (``create_dynamic_map(signed=True)``).
    """
    data: list[float] = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        n = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1)
        boundaries = torch.linspace(0.1, 1, n, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data += [0.0, 1.0]
    data += [0.0] * (2**total_bits - len(data))
    return torch.tensor(sorted(data), dtype=torch.float32)


def _blocks(x: Tensor, blocksize: int, partial: bool) -> Tensor:
    """``x`` flattened to ``(n_blocks, blocksize)``; with ``partial`` a short last block is zero-padded."""
    if not isinstance(blocksize, int) or blocksize <= 0:
        raise ValueError(f"blocksize must be a positive int, got {blocksize}")
    flat = x.reshape(-1)
    if flat.numel() % blocksize:
        if not partial:
            raise ValueError(f"blocksize {blocksize} does not divide the number of elements {flat.numel()}")
        flat = nn.functional.pad(flat, (0, blocksize - flat.numel() % blocksize))  # zeros leave |max| unchanged
    return flat.reshape(-1, blocksize)  # (n_blocks, blocksize)


def blockwise_quantize(x: Tensor, code: Tensor, *, blocksize: int = 64, partial_last_block: bool = False) -> tuple[Tensor, Tensor]:
    r"""Blockwise absmax quantization onto a sorted level table ``code`` (Dettmers et al. 2022, 2023).

    Per block $b$: $s_b = \max_{i \in b} |x_i|$, then code $c_i = \arg\min_j |x_i / s_b - q_j|$
    (nearest level; a value exactly on a midpoint goes to the lower level, as ``torch.bucketize``
    and bitsandbytes do). Returns ``(codes uint8 with x's shape, absmax float32 (n_blocks,))``.
    As bitsandbytes, $x / s_b$ is computed as $x \cdot (1 / s_b)$. ``blocksize`` must divide
    ``x.numel()`` unless ``partial_last_block`` (then the last block is shorter, as bitsandbytes allows).
    """
    blocks = _blocks(x.float(), blocksize, partial_last_block)
    absmax = blocks.abs().amax(dim=1)  # s_b
    scaled = torch.clamp(blocks * (1.0 / absmax.clamp(min=1e-38))[:, None], -1, 1)
    midpoints = (code[:-1] + code[1:]) / 2
    codes = torch.bucketize(scaled, midpoints)  # nearest level, ties down
    return codes.to(torch.uint8).reshape(-1)[: x.numel()].reshape(x.shape), absmax


def blockwise_dequantize(codes: Tensor, absmax: Tensor, code: Tensor, *, blocksize: int = 64, partial_last_block: bool = False) -> Tensor:
    """$\\hat x_i = q_{c_i} \\cdot s_b$, float32 with ``codes``' shape."""
    values = code[codes.long()]
    blocks = _blocks(values, blocksize, partial_last_block) * absmax[:, None]
    return blocks.reshape(-1)[: codes.numel()].reshape(codes.shape)


def pack_4bit(codes: Tensor) -> Tensor:
    """Two 4-bit codes per byte, first code in the high nibble (bitsandbytes' layout), shape ``(n/2, 1)``."""
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() % 2:
        raise ValueError(f"need an even number of codes, got {flat.numel()}")
    return ((flat[0::2] << 4) | flat[1::2]).unsqueeze(1)


def unpack_4bit(packed: Tensor) -> Tensor:
    """Inverse of :func:`pack_4bit`: a flat uint8 tensor of codes."""
    flat = packed.reshape(-1)
    return torch.stack([flat >> 4, flat & 0xF], dim=1).reshape(-1)


@dataclass
class NF4Weight:
    """A weight stored as packed NF4 codes with its block scales (plain or double-quantized).

    ``code`` is the 16-level table (:func:`nf4_levels`). ``absmax`` is float32 per block when ``state2 is None``; with double quantization it holds the
    8-bit codes of ``absmax - offset`` and ``state2 = (absmax2, code2)`` the second-level scales
    (one float32 per ``blocksize2`` block scales) and the 8-bit level table.
    """

    packed: Tensor
    absmax: Tensor
    shape: torch.Size
    blocksize: int
    code: Tensor
    offset: Tensor | None = None
    state2: tuple[Tensor, Tensor] | None = None
    blocksize2: int = 256

    def nbytes(self) -> int:
        """Bytes of storage: the codes, the block scales and, if double-quantized, the second level."""
        n = self.packed.numel() * self.packed.element_size() + self.absmax.numel() * self.absmax.element_size()
        if self.state2 is not None:
            n += self.state2[0].numel() * 4 + 4  # fp32 second-level scales + the fp32 offset
        return n


def nf4_quantize(w: Tensor, *, blocksize: int = 64, double_quant: bool = False, blocksize2: int = 256) -> NF4Weight:
    r"""NF4 storage of ``w`` (QLoRA, Dettmers et al. 2023), matching bitsandbytes ``quantize_4bit(quant_type="nf4")``.

    Level 1: blockwise absmax over ``blocksize`` weights onto :func:`nf4_levels`, codes packed two
    per byte. Double quantization (``compress_statistics=True``): the float32 block scales $s_b$
    are centred by their mean $\mu$ and quantized blockwise (``blocksize2`` = 256) with the 8-bit
    :func:`dynamic_map`, costing $8/64 + 32/(64\cdot 256)$ bits per weight instead of $32/64$.
    """
    code = nf4_levels()
    codes, absmax = blockwise_quantize(w, code, blocksize=blocksize)
    packed = pack_4bit(codes)
    if not double_quant:
        return NF4Weight(packed, absmax, w.shape, blocksize, code)
    offset = absmax.mean()  # mu: the scales are positive, centring them uses the signed 8-bit range
    code2 = dynamic_map()
    qabsmax, absmax2 = blockwise_quantize(absmax - offset, code2, blocksize=blocksize2, partial_last_block=True)
    return NF4Weight(packed, qabsmax, w.shape, blocksize, code, offset, (absmax2, code2), blocksize2)


def nf4_dequantize(q: NF4Weight) -> Tensor:
    r"""$\hat w_i = q^\text{NF4}_{c_i}\, s_b$, with $s_b$ itself dequantized first under double quantization."""
    absmax = q.absmax
    if q.state2 is not None:
        absmax2, code2 = q.state2
        absmax = blockwise_dequantize(q.absmax, absmax2, code2, blocksize=q.blocksize2, partial_last_block=True) + q.offset
    codes = unpack_4bit(q.packed)
    return blockwise_dequantize(codes, absmax, q.code, blocksize=q.blocksize).reshape(q.shape)


def bits_per_parameter(*, bits: int = 4, blocksize: int = 64, double_quant: bool = False, blocksize2: int = 256) -> float:
    r"""Storage per weight: $b + 32/B$ (one fp32 scale per block), or $b + 8/B + 32/(B B_2)$ with double quantization."""
    if blocksize <= 0 or blocksize2 <= 0:
        raise ValueError(f"block sizes must be positive, got {blocksize}, {blocksize2}")
    if not double_quant:
        return bits + 32 / blocksize
    return bits + 8 / blocksize + 32 / (blocksize * blocksize2)


class QLoRALinear(nn.Module):
    r"""QLoRA layer (Dettmers et al. 2023, eq. 5): frozen NF4 base, dequantized on the fly, plus LoRA.

    $$h = \mathrm{dequant}(W^\text{NF4})\,x + b + \frac{\alpha}{r} B A x .$$

    The base weight is stored only as packed codes (buffers, never trained); gradients flow
    through the dequantized copy into $x$ and into $A$, $B$ (float32). ``nbytes()`` counts the
    layer's storage: codes + scales (+ second level) + bias + LoRA factors.
    """

    def __init__(self, base: nn.Linear, r: int, *, lora_alpha: float = 8.0, blocksize: int = 64, double_quant: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__()
        lora = LoRALinear(base, r, lora_alpha=lora_alpha, generator=generator)  # validates r and draws A
        self.q = nf4_quantize(base.weight.detach(), blocksize=blocksize, double_quant=double_quant)
        self.bias = lora.bias
        self.lora_A, self.lora_B, self.lora_alpha, self.scaling = lora.lora_A, lora.lora_B, lora_alpha, lora.scaling

    def forward(self, x: Tensor) -> Tensor:
        w = nf4_dequantize(self.q)  # (out, in), a temporary: no gradient is kept for it
        return nn.functional.linear(x, w, self.bias) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)

    def nbytes(self) -> int:
        n = self.q.nbytes() + self.lora_A.numel() * 4 + self.lora_B.numel() * 4
        return n + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())


# -- instruction tuning -----------------------------------------------------------------------------
def response_only_labels(input_ids: Tensor, prompt_lengths: Tensor, *, pad_mask: Tensor | None = None,
                         ignore_index: int = -100) -> Tensor:
    r"""Labels for supervised fine-tuning: ``input_ids`` with prompt (and padding) positions set to ``ignore_index``.

    Row $i$ keeps its tokens at positions $t \ge$ ``prompt_lengths[i]``; ``cross_entropy(...,
    ignore_index=-100)`` then averages over response tokens only (Ouyang et al. 2022; the
    Hugging Face ``-100`` convention). Labels align with inputs; :func:`causal_lm_loss` shifts.
    """
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
    prompt_lengths = torch.as_tensor(prompt_lengths)
    if prompt_lengths.shape != (input_ids.shape[0],) or (prompt_lengths < 0).any() or (prompt_lengths > input_ids.shape[1]).any():
        raise ValueError(f"prompt_lengths must be B = {input_ids.shape[0]} values in [0, T = {input_ids.shape[1]}], got {prompt_lengths.tolist()}")
    positions = torch.arange(input_ids.shape[1])[None, :]  # (1, T)
    labels = input_ids.masked_fill(positions < prompt_lengths[:, None], ignore_index)
    if pad_mask is not None:
        labels = labels.masked_fill(pad_mask, ignore_index)
    return labels


def causal_lm_loss(logits: Tensor, labels: Tensor, *, ignore_index: int = -100) -> Tensor:
    r"""Next-token cross-entropy: logits at $t$ predict ``labels`` at $t+1$; mean over labels $\ne$ ``ignore_index``."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])  # (B (T-1), V)
    shift_labels = labels[:, 1:].reshape(-1)
    return nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=ignore_index)
