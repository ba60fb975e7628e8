"""The flow-prior protocol every backbone implements.

A prior maps frames to normalised latents and back, and predicts the rectified-flow velocity
u(x_t, t) ≈ ε − x0 (t=1 noise, t=0 data). Conditioning (anchors for I2V/FLF2V, a prompt for T2V) is
prepared once per GOP with :meth:`FlowPrior.condition` and passed back to :meth:`FlowPrior.velocity`.

Frames are float32 tensors shaped ``[F, 3, H, W]`` with RGB values in [0, 1]; ``H`` and ``W`` are
multiples of ``geometry.spatial_stride`` (the codec pads). Latents are ``[C, F_lat, h, w]``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from gvc.dtypes import COMPUTE_DTYPES, DTYPE_CHOICES
from gvc.errors import ParameterError

_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH_DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """The COMPUTE_DTYPES name of a torch dtype, torch_dtype's inverse (float64 models count as fp32: no stream
    records them)."""
    return next((name for name, t in _TORCH_DTYPES.items() if t == dtype), "fp32")


# -- thread-count independence (docs/models.md, "Thread count") ----------------------------------------------
# The decoder must output the encoder's frames whatever torch.get_num_threads() is on either side. Most CPU
# kernels split work over outputs, not over a sum, so their results do not depend on the thread count; the
# ones that do are run on one thread below (found op by op with every aten op of a decode run on 1 and 2
# threads: tests/test_threads.py).


@contextmanager
def one_thread():
    """Run the block on one intra-op thread, restoring the caller's count after."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def thread_dependent_conv(m: torch.nn.Module) -> bool:
    """Whether PyTorch picks the CPU backend of convolution `m` by the thread count.

    A non-transposed convolution whose kernel ends in 1×1, with stride 1 and no dilation, runs on PyTorch's own
    GEMM path on one thread and on oneDNN on more (aten/src/ATen/native/ConvUtils.h, ``use_mkldnn``: "for 1x1
    filters, MKLDNN is faster than THNN when multi-threaded"), once the input is larger than 20480 values over
    its first four dimensions; the two round differently.
    """
    return (isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)) and not m.transposed
            and tuple(m.kernel_size[-2:]) == (1, 1) and all(s == 1 for s in m.stride)
            and all(d == 1 for d in m.dilation))


def pin_thread_dependent_convs(*models: torch.nn.Module) -> int:
    """Make every :func:`thread_dependent_conv` of `models` run on one thread on the CPU, so always on the
    one-thread path (the output a one-thread run gave before). Forward hooks, so copies and state dicts are
    unchanged; idempotent. Returns how many convolutions are pinned."""
    count = 0
    for model in models:
        for m in model.modules():
            if thread_dependent_conv(m):
                if not getattr(m, "_gvc_pinned", False):
                    m.register_forward_pre_hook(_pin)
                    m.register_forward_hook(_unpin, always_call=True)
                    m._gvc_pinned = True
                count += 1
    return count


def _pin(module, args) -> None:
    if args and args[0].device.type == "cpu" and torch.get_num_threads() > 1:
        module._gvc_threads = torch.get_num_threads()
        torch.set_num_threads(1)


def _unpin(module, args, output) -> None:
    n = module.__dict__.pop("_gvc_threads", None)
    if n is not None:
        torch.set_num_threads(n)


def resolve_compute_dtype(name: str | None, device) -> str:
    """'auto' (or None) -> bf16 on CUDA, fp32 elsewhere; checks that ``device`` can compute in the result."""
    name = name or "auto"
    if name not in DTYPE_CHOICES:
        raise ParameterError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {name!r}")
    device = torch.device(device)
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    check_compute_dtype(name, device)
    return name


def check_compute_dtype(name: str, device) -> None:
    """One-line ParameterError when ``device`` cannot run a matrix product in dtype ``name``."""
    device = torch.device(device)
    if name == "fp32":
        return
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return  # the device itself is missing: reported where it is used
        if name == "bf16" and not torch.cuda.is_bf16_supported():
            raise ParameterError(f"{torch.cuda.get_device_name(device)} cannot compute in bf16 (the stream or "
                                 "--dtype asks for it); use a GPU with bf16 support")
        return
    try:
        a = torch.ones(2, 2, dtype=_TORCH_DTYPES[name], device=device)
        (a @ a).sum().item()
    except (RuntimeError, TypeError) as e:
        raise ParameterError(f"device {device} cannot compute in {name} ({str(e).splitlines()[0] if str(e) else e})") from None


@dataclass(frozen=True)
class LatentGeometry:
    channels: int
    spatial_stride: int
    temporal_stride: int  # F frames -> (F - 1) // temporal_stride + 1 latent frames

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.temporal_stride + 1

    def is_valid_gop_length(self, frames: int) -> bool:
        return frames >= 1 and (frames - 1) % self.temporal_stride == 0

    def valid_gop_length(self, frames: int) -> int:
        """Smallest valid GOP length >= frames."""
        s = self.temporal_stride
        return 1 + -(-(max(frames, 1) - 1) // s) * s

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        s = self.spatial_stride
        return (self.channels, self.latent_frames(frames), height // s, width // s)


@dataclass
class Conditioning:
    """What a GOP is conditioned on. Anchor frames are *decoded* frames, identical on both sides."""

    first_frame: torch.Tensor | None = None  # [3, H, W]
    last_frame: torch.Tensor | None = None  # [3, H, W]
    prompt: str = ""
    frames: int = 0
    extra: dict = field(default_factory=dict)  # prior-specific tensors prepared by FlowPrior.condition


@runtime_checkable
class FlowPrior(Protocol):
    name: str  # short identifier written to the stream header (<= 32 ASCII bytes)
    geometry: LatentGeometry
    # optional: compute_dtype (one of COMPUTE_DTYPES) when the network does not run in fp32

    def weights_sha256(self) -> bytes:
        """32-byte digest of everything that determines the prior's outputs."""

    def to(self, device: torch.device | str) -> "FlowPrior": ...

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[F, 3, H, W] in [0, 1] -> normalised latents [C, F_lat, h, w]."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> frames [F, 3, H, W] clamped to [0, 1]."""

    def condition(self, cond: Conditioning, latent_shape: tuple[int, ...]) -> Conditioning:
        """Prepare (and cache in ``cond.extra``) whatever velocity() needs for this GOP."""

    def velocity(self, x: torch.Tensor, t: float, cond: Conditioning) -> torch.Tensor:
        """Rectified-flow velocity at time t in (0, 1] for latents x [C, F_lat, h, w]."""
