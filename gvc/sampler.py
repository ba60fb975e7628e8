"""The stochastic rectified-flow sampler shared by encoder and decoder (docs/method.md §1).

One loop serves both sides: at every SDE step a *noise source* supplies z. The encoder's source picks z
from the codebook to pull x̂0 towards the true latent and records the choice; the decoder's source
replays the recorded choice. Everything else in the loop is the same code, so on the same machine and
device the decoder reproduces the encoder's latents bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .config import check_sampler
from .priors.base import Conditioning, FlowPrior


@dataclass(frozen=True)
class SamplerConfig:
    """The sampler's schedule; defaults and limits are CodecConfig's (gvc.config), values come from the header."""

    steps: int
    ode_tail: int
    gamma: float
    shift: float

    def __post_init__(self):
        check_sampler(self.steps, self.ode_tail, self.gamma, self.shift)

    @classmethod
    def from_header(cls, header) -> "SamplerConfig":
        return cls(header.steps, header.ode_tail, header.gamma, header.shift)

    @property
    def sde_steps(self) -> int:
        """Steps that inject (coded) noise; the ODE tail carries no bits."""
        return self.steps - self.ode_tail

    def timesteps(self) -> list[float]:
        """Shifted schedule t_0 = 1 > ... > t_N = 0, computed in float64 then fixed as Python floats."""
        s = self.shift
        ts = [1.0 - i / self.steps for i in range(self.steps + 1)]
        return [s * t / (1.0 + (s - 1.0) * t) for t in ts]


class NoiseSource(Protocol):
    def __call__(self, step: int, x: torch.Tensor, u: torch.Tensor, t: float) -> torch.Tensor:
        """Return z (same shape as x, unit variance per latent frame) for SDE step `step`."""


def sde_step(x: torch.Tensor, u: torch.Tensor, z: torch.Tensor, t: float, t_next: float, gamma: float) -> torch.Tensor:
    """Euler–Maruyama step of the SDE with drift f = u − ½g²·score and diffusion g = γt²."""
    dt = t - t_next
    g = gamma * t * t
    score = -((1.0 - t) * u + x) / t
    drift = u - 0.5 * g * g * score
    return x - drift * dt + (g * math.sqrt(dt)) * z


def ode_step(x: torch.Tensor, u: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    return x - u * (t - t_next)


def sample(
    prior: FlowPrior,
    x_init: torch.Tensor,
    cond: Conditioning,
    config: SamplerConfig,
    noise: NoiseSource,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Integrate from t=1 (x_init) to t=0; returns the final latents."""
    ts = config.timesteps()
    x = x_init
    for i in range(config.steps):
        t, t_next = ts[i], ts[i + 1]
        u = prior.velocity(x, t, cond)
        if i < config.sde_steps:
            x = sde_step(x, u, noise(i, x, u, t), t, t_next, config.gamma)
        else:
            x = ode_step(x, u, t, t_next)
        if progress is not None:
            progress(1)
    return x
