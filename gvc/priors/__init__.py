"""Registry of flow priors: a name (or a local folder) -> a FlowPrior instance.

``default`` is the prior GVC ships with; ``analytic`` the closed-form floor; a path to a folder in
the Diffusers Wan2.1 layout loads :class:`~gvc.priors.wan.WanPrior` from it (never from a hub).
"""

from __future__ import annotations

import os

from ..errors import ParameterError
from ..zoo import MODELS, ZOO_DIR, model_dir
from .analytic import AnalyticPrior
from .base import Conditioning, FlowPrior, LatentGeometry

# The shipped learned prior (gvc/zoo/, docs/models.md); the analytic prior is the floor it must beat.
DEFAULT_PRIOR = "gvc-wan-small-v1"

_BUILTIN = {"analytic": AnalyticPrior, AnalyticPrior.name: AnalyticPrior}


def available() -> list[str]:
    return sorted({"default", *_BUILTIN, *(n for n in MODELS if model_dir(n) is not None)})


def load_prior(name_or_path: str | None = "default", *, device="cpu", header=None) -> FlowPrior:
    """Instantiate a prior. When decoding, `header` is the stream's SequenceHeader: with no name from the
    user, its ``prior_id`` picks the prior, but only among the registered names (builtins and the zoo): a
    local folder is the user's choice (``--prior PATH``), never the file's (the decoder then checks the
    folder's hash against the header)."""
    if name_or_path is None and header is not None:
        return _registered(header.prior_id, device)
    name = name_or_path or "default"
    if name == "default":
        name = DEFAULT_PRIOR
    if name in _BUILTIN:
        return _BUILTIN[name](device=device)
    shipped = model_dir(name)
    if shipped is not None:
        return _from_folder(shipped, device)
    if name in MODELS:
        raise ParameterError(f"prior '{name}': its weights are missing from the installed package ({ZOO_DIR})")
    if os.path.isdir(name):
        return _from_folder(name, device)
    raise ParameterError(f"unknown prior '{name}' (builtin: {', '.join(available())}; or a local Wan folder)")


def _registered(name: str, device) -> FlowPrior:
    if name in _BUILTIN:
        return _BUILTIN[name](device=device)
    if name in MODELS:
        return load_prior(name, device=device)
    shown = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
    raise ParameterError(f"stream needs prior '{shown}', which is not a registered prior "
                         f"({', '.join(available())}): pass --prior PATH to its local weights folder")


def _from_folder(path, device) -> FlowPrior:
    """A TAEF2-space prior (autoencoder/) or a Diffusers Wan2.1 folder (vae/)."""
    from .tae import TaeFlowPrior, is_tae_folder

    if is_tae_folder(path):
        return TaeFlowPrior.from_pretrained(path, device=device)
    from .wan import WanPrior

    return WanPrior.from_pretrained(path, device=device)


__all__ = ["AnalyticPrior", "Conditioning", "FlowPrior", "LatentGeometry", "load_prior", "available"]
