"""Wan's rotary position embedding in one Triton kernel, bit-identical to diffusers' eager code (issue 15.5).

diffusers applies RoPE to q and k of every self-attention with float64 tables: per pair (x1, x2) of a head,
``x1·cos − x2·sin`` and ``x1·sin + x2·cos`` are formed in float64 and cast back to the activations' dtype.
Eagerly that is about ten strided elementwise kernels and float64 temporaries per tensor: 0.82 ms a call,
49 ms of a 0.62 s forward of Wan-1.3B at 720p on an H200. The kernel reads x once and writes it once, with the same
float64 products, no fused multiply-add (``enable_fp_fusion=False``) and the same single rounding to the
output dtype, so the output equals the eager one bit for bit and streams coded either way decode the same.

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

BLOCK_T = 32  # tokens per program; one program per (token block, head)


if triton is not None:

    @triton.jit
    def _round_like_torch(v, OUT: tl.constexpr):
        """float64 -> OUT rounded once, to nearest even, as PyTorch's CUDA cast does. Going through float32
        would round twice; where float32 lands exactly on a bf16/fp16 tie, nudge it off the tie by one unit
        towards the float64 value first (the rest of the float64 value is what a single rounding looks at)."""
        f = v.to(tl.float32)
        if OUT == tl.float32:
            return f
        rest = v - f.to(tl.float64)
        bits = f.to(tl.int32, bitcast=True)
        if OUT == tl.bfloat16:
            tie = (bits & 0xFFFF) == 0x8000
        else:
            tie = (bits & 0x1FFF) == 0x1000
        away = (rest > 0) == (f > 0)  # the true value lies further from zero than f
        bits = tl.where(tie & (rest != 0), tl.where(away, bits + 1, bits - 1), bits)
        return bits.to(tl.float32, bitcast=True).to(OUT)

    @triton.jit
    def _rope_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr, n_tokens, HEADS: tl.constexpr, D: tl.constexpr,
                     DP: tl.constexpr, BLOCK: tl.constexpr):
        # x, out: [n_tokens, HEADS * D] (interleaved pairs); cos, sin: [n_tokens, D] float64; DP: D padded to 2^k
        t = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)[:, None]
        h = tl.program_id(1)
        e = tl.arange(0, DP)[None, :]
        x = tl.load(x_ptr + t * (HEADS * D) + h * D + e, mask=(t < n_tokens) & (e < D), other=0.0)
        x1, x2 = tl.split(tl.reshape(x, (BLOCK, DP // 2, 2)))
        x1 = x1.to(tl.float64)
        x2 = x2.to(tl.float64)
        i = tl.arange(0, DP // 2)[None, :]
        pair = (t < n_tokens) & (2 * i < D)
        c = tl.load(cos_ptr + t * D + 2 * i, mask=pair, other=0.0)  # diffusers: freqs_cos[..., 0::2]
        s = tl.load(sin_ptr + t * D + 2 * i + 1, mask=pair, other=0.0)  # freqs_sin[..., 1::2]
        OUT: tl.constexpr = out_ptr.dtype.element_ty
        o1 = _round_like_torch(x1 * c - x2 * s, OUT)
        o2 = _round_like_torch(x1 * s + x2 * c, OUT)
        o = tl.reshape(tl.join(o1, o2), (BLOCK, DP))
        tl.store(out_ptr + t * (HEADS * D) + h * D + e, o, mask=(t < n_tokens) & (e < D))


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    """x: [B, N, heads·D]; cos, sin: [1, N, 1, D] float64 (diffusers' tables). Returns RoPE(x), x's dtype."""
    b, n, width = x.shape
    d = width // heads
    x = x.contiguous()
    cos = cos.reshape(n, d).contiguous()
    sin = sin.reshape(n, d).contiguous()
    out = torch.empty_like(x)
    for k in range(b):  # batch 1 in GVC; the tables are the same for every sample
        grid = (triton.cdiv(n, BLOCK_T), heads)
        _rope_kernel[grid](x[k], cos, sin, out[k], n, HEADS=heads, D=d, DP=triton.next_power_of_2(d),
                           BLOCK=BLOCK_T, enable_fp_fusion=False)
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
    did: not on the CPU, nor when diffusers' processor is not the one whose arithmetic the kernel copies."""
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    if isinstance(transformer.rope, _TablesOnly):
        return True
    if not available(transformer.device) or any(type(b.attn1.processor) is not WanAttnProcessor for b in transformer.blocks):
        return False
    swap_modules(transformer)
    return True


def swap_modules(transformer) -> None:
    """The module swap alone; off CUDA the swapped norms apply :func:`reference_rope` (tested on the CPU)."""
    tables = RopeTables()
    transformer.rope = _TablesOnly(transformer.rope, tables)
    for b in transformer.blocks:
        b.attn1.norm_q = _NormThenRope(b.attn1.norm_q, tables, b.attn1.heads)
        b.attn1.norm_k = _NormThenRope(b.attn1.norm_k, tables, b.attn1.heads)
