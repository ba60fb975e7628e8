"""Codec parameters: the quality ladder and the per-stream configuration (a plain dataclass)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParameterError

# --quality is M, the atoms chosen per (SDE step, latent frame); the codebook size K follows this
# ladder (docs/method.md §2: the reference sweeps (8, 256) ... (64, 16384) ... (256, 65536)).
K_LADDER = ((1, 16), (2, 64), (4, 128), (8, 256), (16, 1024), (32, 4096), (64, 16384), (128, 32768), (256, 65536))
MAX_QUALITY = 256
MODES = ("t2v", "i2v", "flf2v")


def codebook_size(m: int) -> int:
    """K for M atoms: the ladder entry of the smallest rung >= M."""
    if not 1 <= m <= MAX_QUALITY:
        raise ParameterError(f"quality (atoms per step) must be in 1..{MAX_QUALITY}, got {m}")
    return next(k for rung, k in K_LADDER if rung >= m)


@dataclass
class CodecConfig:
    mode: str = "i2v"
    quality: int = 8  # M
    tail_quality: int | None = None  # M_tail for the last latent frames in I2V; default 2·M
    tail_latent_frames: int = 2
    gop_length: int = 33
    steps: int = 20
    ode_tail: int = 3
    gamma: float = 3.0
    shift: float = 3.0
    seed: int = 0
    residual_step: float | None = 0.35  # I2V tail-latent residual quantiser step; None = no residual
    anchor_codec: str | int | None = None  # None = the default of gvc.anchors
    anchor_quality: float = 50.0
    prompt: str = ""
    codebook_span: int | None = None  # latent frames per codebook set, 0 = whole GOP; None = the prior's default
    codebook_family: str = "gaussian"  # "gaussian" (GVC-CB1) or "hadamard" (structured, O(D log D) search)

    def validate(self) -> "CodecConfig":
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        codebook_size(self.quality)
        if self.tail_quality is not None:
            codebook_size(self.tail_quality)
        if not 2 <= self.gop_length <= 1025:
            raise ParameterError(f"GOP length must be in 2..1025, got {self.gop_length}")
        from .sampler import SamplerConfig

        SamplerConfig(self.steps, self.ode_tail, self.gamma, self.shift)  # validates them
        if not 0 <= self.seed < 2**32:
            raise ParameterError(f"seed must be in 0..2^32-1, got {self.seed}")
        if self.residual_step is not None and not 1e-3 <= self.residual_step <= 100:
            raise ParameterError(f"residual step must be in [0.001, 100], got {self.residual_step}")
        if not 0 <= self.anchor_quality <= 100:
            raise ParameterError(f"anchor quality must be in 0..100, got {self.anchor_quality}")
        if self.codebook_family not in ("gaussian", "hadamard"):
            raise ParameterError(f"codebook family must be gaussian or hadamard, got {self.codebook_family!r}")
        if self.codebook_span is not None and not 0 <= self.codebook_span <= 1025:
            raise ParameterError(f"codebook span must be in 0..1025 (0 = whole GOP), got {self.codebook_span}")
        if len(self.prompt.encode()) > 4096:
            raise ParameterError("prompt longer than 4096 bytes")
        return self

    def tail_atoms(self, m: int) -> int:
        """M_tail for base M (the one rule: header and every GOP unit use it). I2V's adaptive allocation gives
        the last latent frames twice the atoms, at most K − 1; --tail-quality overrides it at the base M."""
        if self.mode != "i2v":
            return m
        if self.tail_quality is not None and m == self.quality:
            return self.tail_quality
        return min(2 * m, codebook_size(m) - 1)

    @property
    def m_tail(self) -> int:
        return self.tail_atoms(self.quality)

    @property
    def gop_overlap(self) -> int:
        return 0 if self.mode == "t2v" else 1
