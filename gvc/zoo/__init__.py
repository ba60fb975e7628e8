"""Models shipped inside the package: a name -> a Diffusers folder beside this file.

Each folder has the layout of the Wan2.1 Diffusers repositories (``vae/``, ``transformer/``: config.json +
safetensors) plus ``gvc_prior.json``, the card that names the model in stream headers and lists the
conditionings it was trained for. ``docs/models.md`` describes how each was trained.
"""

from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent

# stream identifier (SequenceHeader.prior_id) -> folder under gvc/zoo/
MODELS = {"gvc-wan-small-v1": "gvc_wan_small"}


def model_dir(name: str) -> Path | None:
    """The folder of a shipped model, or None when the name is not one (or its weights are missing)."""
    sub = MODELS.get(name)
    if sub is None:
        return None
    path = ZOO_DIR / sub
    return path if (path / "transformer").is_dir() and (path / "vae").is_dir() else None


__all__ = ["MODELS", "ZOO_DIR", "model_dir"]
