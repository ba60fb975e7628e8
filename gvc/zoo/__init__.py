"""Models shipped inside the package: a name -> a Diffusers folder beside this file.

Each folder holds ``transformer/`` (a diffusers WanTransformer3DModel: config.json + safetensors), an
autoencoder (``vae/``, Wan2.1's AutoencoderKLWan, for v1; ``autoencoder/``, TAEF2, for v2) and ``gvc_prior.json``, the card that names the model in stream headers and lists the
conditionings it was trained for. ``docs/models.md`` describes how each was trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ParameterError

ZOO_DIR = Path(__file__).resolve().parent

# stream identifier (SequenceHeader.prior_id) -> folder under gvc/zoo/
MODELS = {"gvc-wan-small-v1": "gvc_wan_small", "gvc-tae-small-v2": "gvc_tae_small"}
# The shipped learned prior (docs/models.md); the analytic prior is the floor it must beat.
DEFAULT_PRIOR = "gvc-wan-small-v1"
# A prior folder's optional GVC model card: {"name": ..., "conditioning": [...], "ladder": {...}, "training": ...}
CARD_FILE = "gvc_prior.json"
# The card's "ladder" keys (gvc/ladder.py levers) and their values where a card does not set them:
# i2v_residual: whether the quality ladder codes I2V's tail-latent residual with this prior.
LADDER_DEFAULTS = {"i2v_residual": True}


def model_dir(name: str) -> Path | None:
    """The folder of a shipped model, or None when the name is not one (or its weights are missing)."""
    sub = MODELS.get(name)
    if sub is None:
        return None
    path = ZOO_DIR / sub
    has_ae = (path / "vae").is_dir() or (path / "autoencoder").is_dir()
    return path if (path / "transformer").is_dir() and has_ae else None


def read_card(folder) -> dict:
    """The model card of a prior folder ({} without one); a card that is not a JSON object is a ParameterError."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ParameterError(f"{path}: not a readable JSON card ({str(e).splitlines()[0] if str(e) else e})") from None
    if not isinstance(card, dict):
        raise ParameterError(f"{path}: a model card must be a JSON object")
    return card


def ladder_settings(card: dict, prior: str) -> dict:
    """A card's "ladder" settings with LADDER_DEFAULTS filled in (``prior`` names it in errors)."""
    given = card.get("ladder", {})
    if not isinstance(given, dict) or any(k not in LADDER_DEFAULTS for k in given):
        raise ParameterError(f"prior {prior}: its card's \"ladder\" may set only {', '.join(LADDER_DEFAULTS)}")
    return {**LADDER_DEFAULTS, **given}


def ladder_of(prior: str | None) -> dict:
    """The quality-ladder settings of ``prior`` ('default', a shipped name or a local folder; the builtin priors
    and unknown names have none), read from its card alone: no weights are loaded."""
    name = DEFAULT_PRIOR if prior in (None, "default") else prior
    folder = model_dir(name) or (Path(name) if os.path.isdir(name) else None)
    return ladder_settings(read_card(folder) if folder is not None else {}, name)


__all__ = ["CARD_FILE", "DEFAULT_PRIOR", "LADDER_DEFAULTS", "MODELS", "ZOO_DIR", "ladder_of", "ladder_settings", "model_dir", "read_card"]
