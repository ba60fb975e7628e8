"""The flow-prior protocol every backbone implements.

A prior maps frames to normalised latents and back, and predicts the rectified-flow velocity
u(x_t, t) ≈ ε − x0 (t=1 noise, t=0 data). Conditioning (anchors for I2V/FLF2V, a prompt for T2V) is
prepared once per GOP with :meth:`FlowPrior.condition` and passed back to :meth:`FlowPrior.velocity`.

Frames are float32 tensors shaped ``[F, 3, H, W]`` with RGB values in [0, 1]; ``H`` and ``W`` are
multiples of ``geometry.spatial_stride`` (the codec pads). Latents are ``[C, F_lat, h, w]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from gvc.dtypes import COMPUTE_DTYPES, DTYPE_CHOICES
from gvc.errors import ParameterError

_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH_DTYPES[name]


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
