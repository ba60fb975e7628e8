"""Wan's rotary position embedding in one Triton kernel, bit-identical to diffusers' eager code (issue 15.5).

diffusers applies RoPE to q and k of every self-attention with float32 tables (built in float64, stored as
float32): per pair (x1, x2) of a head, ``x1·cos − x2·sin`` and ``x1·sin + x2·cos`` are formed in float32 and
cast back to the activations' dtype. Eagerly that is about ten strided elementwise kernels and float32
temporaries per tensor: 0.82 ms a call, 49 ms of a 0.62 s forward of Wan-1.3B at 720p on an H200. The kernel
reads x and the tables once and writes x once, with the same float32 products, no fused multiply-add
(``enable_fp_fusion=False``) and the same single rounding to the output dtype, so the output equals the eager
one bit for bit and streams coded either way decode the same.

It is installed by swapping modules, not by copying diffusers' attention code: the model's ``rope`` module
still computes the tables, but hands them to a :class:`RopeTables` slot and returns None (so the attention
processor skips its own RoPE), and each self-attention's ``norm_q``/``norm_k`` becomes the original norm
followed by this kernel. Only done when the processor is the diffusers class whose arithmetic this kernel
reproduces.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

BLOCK_T = 16  # tokens per program; one program per token block, looping over the heads
TABLE_DTYPES = (torch.float32, torch.float64)  # where the kernel's products are PyTorch's (bf16 ones are not)


if triton is not None:

    @triton.jit
    def _rope_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr, n_tokens, HEADS: tl.constexpr, D: tl.constexpr,
                     DP: tl.constexpr, BLOCK: tl.constexpr):
        # x, out: [n_tokens, HEADS * D] (interleaved pairs); cos, sin: [n_tokens, D]; DP: D padded to 2^k.
        # Element e of a head is half of pair i = e // 2: x1 = x[2i], x2 = x[2i + 1], c = cos[2i], s = sin[2i + 1]
        # (diffusers' freqs_cos[..., 0::2], freqs_sin[..., 1::2]). Even e: x1·c − x2·s; odd e: x1·s + x2·c.
        # Arithmetic in the tables' dtype, as PyTorch promotes x * cos; one rounding to x's dtype at the end.
        # The tables are read once per token block (not once per head): they are most of the memory traffic.
        t = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)[:, None]
        e = tl.arange(0, DP)[None, :]
        ok = (t < n_tokens) & (e < D)
        pair = e - e % 2
        c = tl.load(cos_ptr + t * D + pair, mask=ok, other=0.0)
        s = tl.load(sin_ptr + t * D + pair + 1, mask=ok, other=0.0)
        CT: tl.constexpr = cos_ptr.dtype.element_ty
        OUT: tl.constexpr = out_ptr.dtype.element_ty
        even = e % 2 == 0
        for h in range(HEADS):
            row = t * (HEADS * D) + h * D
            x = tl.load(x_ptr + row + e, mask=ok, other=0.0).to(CT)
            partner = tl.load(x_ptr + row + (e ^ 1), mask=ok, other=0.0).to(CT)  # the other half of the pair
            o = tl.where(even, x * c - partner * s, partner * s + x * c)
            tl.store(out_ptr + row + e, o.to(OUT), mask=ok)


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    """x: [B, N, heads·D]; cos, sin: [1, N, 1, D], float32 as diffusers builds them. Returns RoPE(x), x's dtype."""
    if cos.dtype not in TABLE_DTYPES or sin.dtype != cos.dtype:
        raise ValueError(f"the fused RoPE reproduces float32/float64 tables only, got {cos.dtype}/{sin.dtype}")
    b, n, width = x.shape
    d = width // heads
    x = x.contiguous()
    cos = cos.reshape(n, d).contiguous()
    sin = sin.reshape(n, d).contiguous()
    out = torch.empty_like(x)
    for k in range(b):  # batch 1 in GVC; the tables are the same for every sample
        _rope_kernel[(triton.cdiv(n, BLOCK_T),)](x[k], cos, sin, out[k], n, HEADS=heads, D=d,
                                                 DP=triton.next_power_of_2(d), BLOCK=BLOCK_T, enable_fp_fusion=False)
    return out


def reference_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    """diffusers' eager RoPE (WanAttnProcessor.apply_rotary_emb) on [B, N, heads·D], for the tests."""
    h = x.unflatten(2, (heads, -1))
    x1, x2 = h.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(h)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out.flatten(2)


class RopeTables:
    """This forward's (cos, sin), filled by :class:`_TablesOnly` and read by every self-attention."""

    cos: torch.Tensor | None = None
    sin: torch.Tensor | None = None


class _TablesOnly(torch.nn.Module):
    def __init__(self, rope: torch.nn.Module, tables: RopeTables):
        super().__init__()
        self.inner, self.tables = rope, tables

    def forward(self, hidden_states):
        self.tables.cos, self.tables.sin = self.inner(hidden_states)
        return None  # the blocks then pass rotary_emb=None: the processor skips its own RoPE


class _NormThenRope(torch.nn.Module):
    def __init__(self, norm: torch.nn.Module, tables: RopeTables, heads: int):
        super().__init__()
        self.inner, self.tables, self.heads = norm, tables, heads

    def forward(self, x):
        rope = apply_rope if x.is_cuda else reference_rope  # a prior moved back to the CPU keeps working
        return rope(self.inner(x), self.tables.cos, self.tables.sin, self.heads)


def install(transformer) -> bool:
    """Route a diffusers WanTransformer3DModel's self-attention RoPE through the kernel. Returns whether it
    did: not on the CPU, nor where the kernel would not reproduce diffusers' arithmetic (:func:`reproducible`)."""
    if isinstance(transformer.rope, _TablesOnly):
        return True
    if not (available(transformer.device) and reproducible(transformer)):
        return False
    swap_modules(transformer)
    return True


def reproducible(transformer) -> bool:
    """Whether the kernel's arithmetic is diffusers' for this model: its own attention processor, and float32 or
    float64 tables (WanPrior leaves them as diffusers builds them, float32; a model cast whole by ``.to(bf16)``
    computes RoPE in bf16, which the kernel does not reproduce)."""
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    return (getattr(transformer.rope, "freqs_cos", None) is not None
            and transformer.rope.freqs_cos.dtype in TABLE_DTYPES
            and all(type(b.attn1.processor) is WanAttnProcessor for b in transformer.blocks))


def swap_modules(transformer) -> None:
    """The module swap alone; off CUDA the swapped norms apply :func:`reference_rope` (tested on the CPU)."""
    tables = RopeTables()
    transformer.rope = _TablesOnly(transformer.rope, tables)
    for b in transformer.blocks:
        b.attn1.norm_q = _NormThenRope(b.attn1.norm_q, tables, b.attn1.heads)
        b.attn1.norm_k = _NormThenRope(b.attn1.norm_k, tables, b.attn1.heads)
