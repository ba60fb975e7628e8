"""Models shipped inside the package: a name -> a Diffusers folder beside this file.

Each folder holds ``transformer/`` (a diffusers WanTransformer3DModel: config.json + safetensors), an
autoencoder (``vae/``, Wan2.1's AutoencoderKLWan, for v1; ``autoencoder/``, TAEF2, for v2) and ``gvc_prior.json``, the card that names the model in stream headers and lists the
conditionings it was trained for. ``docs/models.md`` describes how each was trained.
"""

from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent

# stream identifier (SequenceHeader.prior_id) -> folder under gvc/zoo/
MODELS = {"gvc-wan-small-v1": "gvc_wan_small", "gvc-tae-small-v2": "gvc_tae_small"}


def model_dir(name: str) -> Path | None:
    """The folder of a shipped model, or None when the name is not one (or its weights are missing)."""
    sub = MODELS.get(name)
    if sub is None:
        return None
    path = ZOO_DIR / sub
    has_ae = (path / "vae").is_dir() or (path / "autoencoder").is_dir()
    return path if (path / "transformer").is_dir() and has_ae else None


__all__ = ["MODELS", "ZOO_DIR", "model_dir"]
