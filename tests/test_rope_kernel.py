"""The fused Wan RoPE (gvc.kernels.rope_triton): the module swap leaves a Wan transformer's output bit for bit
unchanged (CPU, through the torch reference), and on CUDA the Triton kernel equals diffusers' eager RoPE bit
for bit in every activation dtype, alone and inside a whole forward."""

import copy

import pytest
import torch

from gvc.kernels import rope_triton
from gvc.priors.wan import _cast_model
from tests.wan_tiny import TINY_TRANSFORMER


def tiny_transformer(device, dtype=torch.float32, **over):
    """Cast as WanPrior casts (keep-in-fp32 modules float32, the RoPE tables as built), not by ``.to(dtype)``."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    t = WanTransformer3DModel(**dict(TINY_TRANSFORMER, **over)).eval()
    _cast_model(t, dtype, device)
    assert t.rope.freqs_cos.dtype == torch.float32
    return t


def forward(t, x, ctx):
    with torch.no_grad():
        return t(hidden_states=x, timestep=torch.tensor([700.0], device=x.device), encoder_hidden_states=ctx,
                 return_dict=False)[0]


def inputs(device, dtype, channels=16, frames=3, size=8):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, channels, frames, size, size, generator=g).to(device, dtype)
    ctx = torch.randn(1, 512, TINY_TRANSFORMER["text_dim"], generator=g).to(device, dtype)
    return x, ctx


def test_module_swap_keeps_the_forward_bit_exact_on_cpu():
    t = tiny_transformer("cpu")
    x, ctx = inputs("cpu", torch.float32)
    ref = forward(t, x, ctx)
    swapped = copy.deepcopy(t)
    rope_triton.swap_modules(swapped)
    assert swapped.rope is not t.rope and type(swapped.blocks[0].attn1.norm_q).__name__ == "_NormThenRope"
    assert torch.equal(forward(swapped, x, ctx), ref)
    assert not rope_triton.install(tiny_transformer("cpu"))  # no kernel off CUDA


def test_tables_of_another_dtype_keep_diffusers_rope():
    """The kernel reproduces float32/float64 tables only; a model cast whole by ``.to(bf16)`` keeps the eager path."""
    assert rope_triton.reproducible(tiny_transformer("cpu"))
    t = tiny_transformer("cpu").to(torch.bfloat16)
    assert t.rope.freqs_cos.dtype == torch.bfloat16
    assert not rope_triton.reproducible(t)


cuda = pytest.mark.skipif(not (torch.cuda.is_available() and rope_triton.triton), reason="needs CUDA and Triton")


@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_kernel_equals_eager_rope(dtype):
    t = tiny_transformer("cuda", attention_head_dim=128, num_attention_heads=3)
    x, _ = inputs("cuda", dtype, frames=9, size=32)
    cos, sin = t.rope(x)
    g = torch.Generator("cuda").manual_seed(2)
    q = (torch.randn(2, cos.shape[1], 3 * 128, device="cuda", generator=g) * 4).to(dtype)
    assert torch.equal(rope_triton.apply_rope(q, cos, sin, 3), rope_triton.reference_rope(q, cos, sin, 3))


@cuda
def test_installed_forward_is_bit_exact_on_cuda():
    t = tiny_transformer("cuda", torch.bfloat16)
    x, ctx = inputs("cuda", torch.bfloat16)
    ref = forward(t, x, ctx)
    assert rope_triton.install(t) and rope_triton.install(t)  # idempotent
    assert torch.equal(forward(t, x, ctx), ref)
