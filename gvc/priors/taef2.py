"""TAEF2, a tiny per-frame image autoencoder (MIT, Ollin Boer Bohan), written from its architecture notes.

RGB in [0, 1] -> 32 latent channels at 1/8 resolution -> RGB in [0, 1], one frame at a time (no temporal
compression). The state-dict keys are those of the original ``taef2_encoder.pth`` / ``taef2_decoder.pth``
(sequential indices; gaps are the parameter-free layers), so the released weights load strictly.

A *Block* is conv → ReLU → conv → ReLU → conv plus the input, then ReLU. The blocks nearest the latent add a
*pooled branch* to their input first (despite the key name, no spatial pooling): 1×1 conv 64→256 → GroupNorm(4)
→ ReLU → 1×1 conv 256→64 and is broadcast back over the picture (a global-context term; its key names are
``pool.0`` / ``pool.1`` / ``pool.3``).
"""

from __future__ import annotations

import torch
from torch import nn

LATENT_CHANNELS = 32
STRIDE = 8
_WIDTH = 64


def _conv(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


class Block(nn.Module):
    def __init__(self, pooled: bool = False):
        super().__init__()
        c = _WIDTH
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.pool = nn.Sequential(
            nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(), nn.Conv2d(4 * c, c, 1, bias=False),
        ) if pooled else None
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def encoder() -> nn.Sequential:
    """Indices 0–14: conv 3→64; Block; [conv stride 2; Block ×3] ×3 (the last three pooled); conv 64→32."""
    layers: list[nn.Module] = [_conv(3, _WIDTH), Block()]
    for level in range(3):
        pooled = level == 2
        layers += [nn.Conv2d(_WIDTH, _WIDTH, 3, stride=2, padding=1, bias=False), Block(pooled), Block(pooled), Block(pooled)]
    layers.append(_conv(_WIDTH, LATENT_CHANNELS))
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """Indices 0–19: clamp; conv 32→64; ReLU; [Block ×3; upsample ×2; conv] ×3 (first three pooled); Block; conv 64→3."""
    layers: list[nn.Module] = [Clamp(), _conv(LATENT_CHANNELS, _WIDTH), nn.ReLU()]
    for level in range(3):
        pooled = level == 0
        layers += [Block(pooled), Block(pooled), Block(pooled), nn.Upsample(scale_factor=2, mode="nearest"),
                   _conv(_WIDTH, _WIDTH, bias=False)]
    layers += [Block(), _conv(_WIDTH, 3)]
    return nn.Sequential(*layers)


__all__ = ["LATENT_CHANNELS", "STRIDE", "encoder", "decoder", "Block"]
