"""A closed-form rectified-flow prior: the floor every learned prior must beat.

Latents: frames are converted to YCbCr, cut into 8×8 blocks and transformed with an orthonormal DCT;
the first ``Y_COEFFS`` zig-zag coefficients of Y and ``C_COEFFS`` of Cb and Cr become 16 latent
channels at 1/8 resolution, one latent frame per frame (temporal stride 1). Each channel is normalised
with fixed statistics measured on natural video.

Model: every normalised coefficient follows a stationary Gaussian AR(1) process in time with per-channel
correlation ρ_c, independent across space and channels. Conditioning on anchor latents (first and/or last
frame) gives a closed-form Gaussian posterior per frame, N(m, v), so the rectified-flow velocity
u(x_t, t) = E[ε|x_t] − E[x0|x_t] is exact:
    a = x_t − (1−t)m,  den = (1−t)²v + t²,
    E[x0|x_t] = m + (1−t)·v·a/den,  E[ε|x_t] = t·a/den.
"""

from __future__ import annotations

import hashlib
import json
import math

import torch
import torch.nn.functional as F

from .base import Conditioning, LatentGeometry

BLOCK = 8
Y_COEFFS = 10
C_COEFFS = 3
# Anchor latents are decoded images, not the truth: never condition to a variance of exactly zero.
ANCHOR_VARIANCE_FLOOR = 0.02

# Per-channel statistics of the orthonormal block DCT of YCbCr in [0, 1] (channels: Y zig-zag 0..9,
# Cb 0..2, Cr 0..2), measured on four of the real clips (every third frame, 20 frames each) and rounded; and the AR(1)
# frame-to-frame correlation of each normalised coefficient.
CHANNEL_MEAN = [3.15, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.46, 0.0, 0.0, 0.06, 0.0, 0.0]
CHANNEL_STD = [1.96, 0.23, 0.23, 0.13, 0.11, 0.115, 0.073, 0.068, 0.076, 0.079, 0.7, 0.054, 0.054, 0.315, 0.033, 0.033]
CHANNEL_RHO = [0.98, 0.85, 0.85, 0.8, 0.78, 0.78, 0.75, 0.72, 0.72, 0.75, 0.99, 0.92, 0.92, 0.99, 0.9, 0.9]

# BT.601 full-range RGB -> YCbCr (offsets removed: chroma centred on 0).
_RGB2YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=torch.float64
)


def _zigzag(n: int) -> list[tuple[int, int]]:
    order = sorted(((i, j) for i in range(n) for j in range(n)), key=lambda p: (p[0] + p[1], p[1] if (p[0] + p[1]) % 2 else p[0]))
    return order


def _dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def _basis(coeffs: int) -> torch.Tensor:
    """[coeffs, 64] rows = 2-D DCT basis images of the first zig-zag coefficients."""
    d = _dct_matrix(BLOCK)
    rows = [torch.outer(d[u], d[v]).reshape(-1) for u, v in _zigzag(BLOCK)[:coeffs]]
    return torch.stack(rows)


class AnalyticPrior:
    name = "analytic-v1"
    geometry = LatentGeometry(channels=Y_COEFFS + 2 * C_COEFFS, spatial_stride=BLOCK, temporal_stride=1)

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self._mean = torch.tensor(CHANNEL_MEAN, dtype=torch.float32)
        self._std = torch.tensor(CHANNEL_STD, dtype=torch.float32)
        self._rho = torch.tensor(CHANNEL_RHO, dtype=torch.float64)
        self._ybasis = _basis(Y_COEFFS).float()
        self._cbasis = _basis(C_COEFFS).float()
        self._rgb2ycc = _RGB2YCC.float()
        self._ycc2rgb = torch.linalg.inv(_RGB2YCC).float()
        self.to(device)

    def weights_sha256(self) -> bytes:
        config = {"name": self.name, "block": BLOCK, "y": Y_COEFFS, "c": C_COEFFS, "floor": ANCHOR_VARIANCE_FLOOR,
                  "mean": CHANNEL_MEAN, "std": CHANNEL_STD, "rho": CHANNEL_RHO}
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).digest()

    def to(self, device):
        self.device = torch.device(device)
        for k in ("_mean", "_std", "_ybasis", "_cbasis", "_rgb2ycc", "_ycc2rgb"):
            setattr(self, k, getattr(self, k).to(self.device))
        return self

    # -- autoencoder -------------------------------------------------------------------------------
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        f, _, h, w = frames.shape
        ycc = torch.einsum("ij,fjhw->fihw", self._rgb2ycc, frames.to(self.device, torch.float32))
        blocks = F.unfold(ycc.reshape(f * 3, 1, h, w), BLOCK, stride=BLOCK)  # [f*3, 64, L]
        blocks = blocks.reshape(f, 3, BLOCK * BLOCK, -1)
        y = torch.einsum("km,fml->fkl", self._ybasis, blocks[:, 0])
        cb = torch.einsum("km,fml->fkl", self._cbasis, blocks[:, 1])
        cr = torch.einsum("km,fml->fkl", self._cbasis, blocks[:, 2])
        coef = torch.cat([y, cb, cr], dim=1)  # [f, C, L]
        coef = (coef - self._mean[None, :, None]) / self._std[None, :, None]
        return coef.reshape(f, -1, h // BLOCK, w // BLOCK).permute(1, 0, 2, 3).contiguous()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        c, f, hl, wl = latents.shape
        coef = latents.permute(1, 0, 2, 3).reshape(f, c, hl * wl)
        coef = coef * self._std[None, :, None] + self._mean[None, :, None]
        y = torch.einsum("km,fkl->fml", self._ybasis, coef[:, :Y_COEFFS])
        cb = torch.einsum("km,fkl->fml", self._cbasis, coef[:, Y_COEFFS:Y_COEFFS + C_COEFFS])
        cr = torch.einsum("km,fkl->fml", self._cbasis, coef[:, Y_COEFFS + C_COEFFS:])
        blocks = torch.stack([y, cb, cr], dim=1).reshape(f * 3, BLOCK * BLOCK, hl * wl)
        h, w = hl * BLOCK, wl * BLOCK
        ycc = F.fold(blocks, (h, w), BLOCK, stride=BLOCK).reshape(f, 3, h, w)
        rgb = torch.einsum("ij,fjhw->fihw", self._ycc2rgb, ycc)
        return rgb.clamp(0.0, 1.0)

    # -- flow model --------------------------------------------------------------------------------
    def condition(self, cond: Conditioning, latent_shape: tuple[int, ...]) -> Conditioning:
        c, frames, hl, wl = latent_shape
        anchors = {}
        if cond.first_frame is not None:
            anchors[0] = self.encode(cond.first_frame[None])[:, 0]
        if cond.last_frame is not None:
            anchors[frames - 1] = self.encode(cond.last_frame[None])[:, 0]
        mean, var = self._posterior(anchors, frames, (c, hl, wl))
        cond.extra = {"mean": mean, "var": var}
        return cond

    def _posterior(self, anchors: dict[int, torch.Tensor], frames: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian AR(1) posterior N(mean, var) of every frame given the anchor frames."""
        c, hl, wl = shape
        mean = torch.zeros(c, frames, hl, wl, device=self.device)
        var = torch.ones(c, frames, 1, 1, device=self.device)
        if not anchors:
            return mean, var
        pos = sorted(anchors)
        idx = torch.arange(frames, dtype=torch.float64)
        # Covariances in float64 per channel: cov(x_i, x_j) = rho^|i-j| (+ floor on the anchors' diagonal).
        rho = self._rho.cpu()[:, None, None]
        p = torch.tensor(pos, dtype=torch.float64)
        k_fa = rho ** (idx[None, :, None] - p[None, None, :]).abs()  # [c, frames, A]
        k_aa = rho ** (p[None, :, None] - p[None, None, :]).abs() + ANCHOR_VARIANCE_FLOOR * torch.eye(len(pos), dtype=torch.float64)
        w = torch.linalg.solve(k_aa, k_fa.transpose(1, 2)).transpose(1, 2)  # [c, frames, A]
        v = 1.0 - (w * k_fa).sum(-1)  # [c, frames]
        a = torch.stack([anchors[q] for q in pos], dim=1)  # [c, A, hl, wl]
        mean = torch.einsum("cfa,cahw->cfhw", w.float().to(self.device), a)
        var = v.clamp_min(1e-4).float().to(self.device)[:, :, None, None]
        return mean, var

    def velocity(self, x: torch.Tensor, t: float, cond: Conditioning) -> torch.Tensor:
        m, v = cond.extra["mean"], cond.extra["var"]
        a = x - (1.0 - t) * m
        den = (1.0 - t) ** 2 * v + t * t
        x0 = m + (1.0 - t) * v * a / den
        eps = t * a / den
        return eps - x0
