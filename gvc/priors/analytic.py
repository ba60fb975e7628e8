"""A closed-form rectified-flow prior: the floor every learned prior must beat.

Latents: frames are converted to YCbCr, cut into 8×8 blocks and transformed with an orthonormal DCT;
the first ``Y_COEFFS`` zig-zag coefficients of Y and ``C_COEFFS`` of Cb and Cr become 16 latent
channels at 1/8 resolution, one latent frame per frame (temporal stride 1). Each channel is normalised
with fixed statistics measured on natural video.

Model: without anchors every normalised coefficient is N(0, 1); given anchors it follows a Gaussian
random walk in time with per-channel innovation variance q_c, independent across space and channels
(a Brownian motion from the first anchor, a Brownian bridge between first and last). That gives a
closed-form Gaussian posterior per frame, N(m, v), so the rectified-flow velocity
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

from .base import Conditioning, LatentGeometry, one_thread

BLOCK = 8
Y_COEFFS = 10
C_COEFFS = 3
# Anchor latents are decoded images, not the truth: never condition to a variance of exactly zero.
ANCHOR_VARIANCE_FLOOR = 0.02

# Per-channel statistics of the orthonormal block DCT of YCbCr in [0, 1] (channels: Y zig-zag 0..9,
# Cb 0..2, Cr 0..2), measured on four of the real clips (every third frame, 20 frames each) and rounded;
# and the per-frame innovation variance q_c of each normalised coefficient, from the same frames'
# correlation at a distance of 3 frames: q = 2(1 - rho_3)/3.
CHANNEL_MEAN = [3.15, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.46, 0.0, 0.0, 0.06, 0.0, 0.0]
CHANNEL_STD = [1.96, 0.23, 0.23, 0.13, 0.11, 0.115, 0.073, 0.068, 0.076, 0.079, 0.7, 0.054, 0.054, 0.315, 0.033, 0.033]
CHANNEL_Q = [0.05, 0.27, 0.27, 0.33, 0.35, 0.35, 0.4, 0.45, 0.45, 0.4, 0.01, 0.1, 0.1, 0.02, 0.12, 0.12]

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
        self._ybasis = _basis(Y_COEFFS).float()
        self._cbasis = _basis(C_COEFFS).float()
        self._rgb2ycc = _RGB2YCC.float()
        self._ycc2rgb = torch.linalg.inv(_RGB2YCC).float()
        self.to(device)

    def weights_sha256(self) -> bytes:
        config = {"name": self.name, "block": BLOCK, "y": Y_COEFFS, "c": C_COEFFS, "floor": ANCHOR_VARIANCE_FLOOR,
                  "mean": CHANNEL_MEAN, "std": CHANNEL_STD, "q": CHANNEL_Q, "model": "random-walk"}
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).digest()

    def to(self, device):
        self.device = torch.device(device)
        for k in ("_mean", "_std", "_ybasis", "_cbasis", "_rgb2ycc", "_ycc2rgb"):
            setattr(self, k, getattr(self, k).to(self.device))
        return self

    # -- autoencoder -------------------------------------------------------------------------------
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        # one thread: MKL's batched GEMM of the einsums below rounds differently on 1 and 2 threads
        with one_thread():
            return self._encode(frames)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        with one_thread():
            return self._decode(latents)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
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

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
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
        """Posterior N(mean, var) of every frame given the anchors, under a per-channel random walk
        (innovation variance q_c per frame, capped at the marginal variance 1): a Brownian motion from
        the first anchor, or a Brownian bridge between first and last anchor."""
        c, hl, wl = shape
        mean = torch.zeros(c, frames, hl, wl, device=self.device)
        var = torch.ones(c, frames, 1, 1, device=self.device)
        if not anchors:
            return mean, var
        q = torch.tensor(CHANNEL_Q, dtype=torch.float32, device=self.device)[:, None]
        j = torch.arange(frames, dtype=torch.float32, device=self.device)[None, :]
        first, last = anchors.get(0), anchors.get(frames - 1) if frames > 1 else None
        if first is not None and last is not None:
            w = j / (frames - 1)
            mean = first[:, None] + w[..., None, None] * (last - first)[:, None]
            v = q * j * (frames - 1 - j) / (frames - 1)
        else:
            a = first if first is not None else last
            mean = a[:, None].expand(c, frames, hl, wl).clone()
            v = q * (j if first is not None else frames - 1 - j)
        var = (v.clamp(max=1.0) + ANCHOR_VARIANCE_FLOOR)[:, :, None, None]
        return mean, var

    def velocity(self, x: torch.Tensor, t: float, cond: Conditioning) -> torch.Tensor:
        m, v = cond.extra["mean"], cond.extra["var"]
        a = x - (1.0 - t) * m
        den = (1.0 - t) ** 2 * v + t * t
        x0 = m + (1.0 - t) * v * a / den
        eps = t * a / den
        return eps - x0
