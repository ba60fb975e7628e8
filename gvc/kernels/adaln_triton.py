"""Wan's AdaLN modulation and gated residuals in one Triton kernel each, bit-identical to diffusers' eager code.

Every WanTransformerBlock (diffusers 0.42) computes, on activations x in bf16 and float32 modulation vectors:

    norm = (LN(x.float()) * (1 + scale) + shift).type_as(x)          # twice: before self-attention and the FFN
    x    = (x.float() + y * gate).type_as(x)                           # twice: after self-attention and the FFN

Eagerly each line is three to five broadcasting elementwise kernels with float32 temporaries: about 45 ms of a
0.59 s forward of Wan-1.3B at 720p on an H200. The kernels below read their inputs once and write the output
once, with the same float32 products and sums, no fused multiply-add (``enable_fp_fusion=False``) and the same
single rounding to x's dtype, so the block's output equals the eager one bit for bit and streams coded either
way decode the same. The LayerNorms themselves stay PyTorch's (their reduction order is PyTorch's own).

It is installed by giving each block :func:`fused_block_forward`, a restatement of diffusers' forward in which
those four lines call the kernels. Only done for the diffusers code whose arithmetic it restates:
``WanTransformerBlock.forward``'s source must hash to :data:`RESTATED_FORWARD_SHA256` (another diffusers
release keeps its own forward, eager).
"""

from __future__ import annotations

import hashlib
import inspect
import types

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

#: SHA-256 of the source of diffusers' WanTransformerBlock.forward that fused_block_forward restates (0.42.1)
RESTATED_FORWARD_SHA256 = "21c15441b009932c886757e6fee7875fa866ce1bc2746743cadec3f6c1ad865d"
BLOCK = 2048  # elements per program


if triton is not None:

    @triton.jit
    def _modulate_kernel(ln_ptr, scale1_ptr, shift_ptr, out_ptr, n, C: tl.constexpr, BLOCK: tl.constexpr):
        # out = (ln * scale1 + shift) rounded once to out's dtype; ln: float32 [rows, C]; scale1 = 1 + scale, shift: [C]
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ok = i < n
        col = i % C
        y = tl.load(ln_ptr + i, mask=ok, other=0.0) * tl.load(scale1_ptr + col, mask=ok, other=0.0)
        y = y + tl.load(shift_ptr + col, mask=ok, other=0.0)
        tl.store(out_ptr + i, y.to(out_ptr.dtype.element_ty), mask=ok)

    @triton.jit
    def _gated_residual_kernel(x_ptr, y_ptr, gate_ptr, out_ptr, n, C: tl.constexpr, BLOCK: tl.constexpr):
        # out = (float(x) + float(y) * gate) rounded once to x's dtype; x, y: [rows, C]; gate: float32 [C]
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ok = i < n
        y = tl.load(y_ptr + i, mask=ok, other=0.0).to(tl.float32) * tl.load(gate_ptr + i % C, mask=ok, other=0.0)
        out = tl.load(x_ptr + i, mask=ok, other=0.0).to(tl.float32) + y
        tl.store(out_ptr + i, out.to(out_ptr.dtype.element_ty), mask=ok)


def available(device) -> bool:
    return triton is not None and torch.device(device).type == "cuda"


def _per_sample(vec: torch.Tensor, k: int) -> torch.Tensor:
    """The float32 [C] modulation vector of sample k from a [B, 1, C] chunk."""
    return vec[min(k, vec.shape[0] - 1)].reshape(-1).contiguous()


def modulate(ln: torch.Tensor, scale1: torch.Tensor, shift: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(ln * scale1 + shift).to(dtype) for ln [B, N, C] float32 and scale1, shift [B, 1, C] float32."""
    if not (ln.is_cuda and ln.dtype == scale1.dtype == shift.dtype == torch.float32):
        return (ln * scale1 + shift).to(dtype)
    ln = ln.contiguous()
    out = torch.empty(ln.shape, dtype=dtype, device=ln.device)
    c = ln.shape[-1]
    for k in range(ln.shape[0]):
        n = ln[k].numel()
        _modulate_kernel[(triton.cdiv(n, BLOCK),)](ln[k], _per_sample(scale1, k), _per_sample(shift, k), out[k], n,
                                                   C=c, BLOCK=BLOCK, enable_fp_fusion=False)
    return out


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """(x.float() + y.float() * gate).type_as(x) for x, y [B, N, C] and gate [B, 1, C] float32."""
    if not (x.is_cuda and gate.dtype == torch.float32 and y.shape == x.shape):
        return (x.float() + y.float() * gate).type_as(x)
    x, y = x.contiguous(), y.contiguous()
    out = torch.empty_like(x)
    c = x.shape[-1]
    for k in range(x.shape[0]):
        n = x[k].numel()
        _gated_residual_kernel[(triton.cdiv(n, BLOCK),)](x[k], y[k], _per_sample(gate, k), out[k], n, C=c,
                                                         BLOCK=BLOCK, enable_fp_fusion=False)
    return out


def fused_block_forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb):
    """diffusers 0.42.1 WanTransformerBlock.forward (Wan2.1's [B, 6, C] temb), its modulations and gated
    residuals in the kernels above; any other temb layout takes diffusers' own forward."""
    if temb.ndim != 3:
        return type(self).forward(self, hidden_states, encoder_hidden_states, temb, rotary_emb)
    shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = (
        self.scale_shift_table + temb.float()
    ).chunk(6, dim=1)
    norm_hidden_states = modulate(self.norm1(hidden_states.float()), 1 + scale_msa, shift_msa, hidden_states.dtype)
    attn_output = self.attn1(norm_hidden_states, None, None, rotary_emb)
    hidden_states = gated_residual(hidden_states, attn_output, gate_msa)

    norm_hidden_states = self.norm2(hidden_states.float()).type_as(hidden_states)
    attn_output = self.attn2(norm_hidden_states, encoder_hidden_states, None, None)
    hidden_states = hidden_states + attn_output

    norm_hidden_states = modulate(self.norm3(hidden_states.float()), 1 + c_scale_msa, c_shift_msa, hidden_states.dtype)
    ff_output = self.ffn(norm_hidden_states)
    return gated_residual(hidden_states, ff_output, c_gate_msa)


def restates_diffusers() -> bool:
    """Whether the installed diffusers' WanTransformerBlock.forward is the code fused_block_forward restates."""
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock

    try:
        source = inspect.getsource(WanTransformerBlock.forward)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest() == RESTATED_FORWARD_SHA256


def swap_forwards(transformer) -> None:
    """The forward swap alone; off CUDA the swapped forwards run the torch expressions (tested on the CPU)."""
    for block in transformer.blocks:
        block.forward = types.MethodType(fused_block_forward, block)


def install(transformer) -> bool:
    """Give a diffusers WanTransformer3DModel's blocks the fused forward. Returns whether it did: not on the CPU,
    nor for another diffusers release's block code (:func:`restates_diffusers`)."""
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock

    blocks = list(transformer.blocks)
    if blocks and all(isinstance(b.__dict__.get("forward"), types.MethodType) for b in blocks):
        return True
    if not (available(transformer.device) and restates_diffusers()
            and all(type(b) is WanTransformerBlock for b in blocks)):
        return False
    swap_forwards(transformer)
    return True
