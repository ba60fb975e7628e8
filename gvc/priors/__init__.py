"""Registry of flow priors: a name (or a local folder) -> a FlowPrior instance.

``default`` is the prior GVC ships with; ``analytic`` the closed-form floor; a path to a folder in
the Diffusers Wan2.1 layout loads :class:`~gvc.priors.wan.WanPrior` from it (never from a hub).
"""

from __future__ import annotations

import os

from ..errors import ParameterError
from ..zoo import DEFAULT_PRIOR, MODELS, ZOO_DIR, model_dir
from .analytic import AnalyticPrior
from .base import COMPUTE_DTYPES, DTYPE_CHOICES, Conditioning, FlowPrior, LatentGeometry, resolve_compute_dtype

_BUILTIN = {"analytic": AnalyticPrior, AnalyticPrior.name: AnalyticPrior}


def available() -> list[str]:
    return sorted({"default", *_BUILTIN, *(n for n in MODELS if model_dir(n) is not None)})


def compute_dtype_of(prior) -> str:
    """What the prior's transformer computes in ("fp32" for priors without a choice): the header records it."""
    return getattr(prior, "compute_dtype", "fp32")


def autoencoder_dtype_of(prior) -> str:
    """What the prior's autoencoder computes in ("fp32" for priors without a choice): the header records it."""
    return getattr(prior, "autoencoder_dtype", "fp32")


def recorded_dtype(header, field: str) -> str | None:
    """The dtype a stream's header records in ``field`` (compute_dtype or autoencoder_dtype; None for a header
    object without the field)."""
    code = getattr(header, field, None)
    if code is None:
        return None
    if isinstance(code, int) and 0 <= code < len(COMPUTE_DTYPES):
        return COMPUTE_DTYPES[code]
    if code not in COMPUTE_DTYPES:
        raise ParameterError(f"stream records unknown {field.replace('_', ' ')} {code!r}")
    return code


def load_prior(name_or_path: str | None = "default", *, device="cpu", header=None, dtype: str | None = None,
               vae_dtype: str | None = None) -> FlowPrior:
    """Instantiate a prior. When decoding, `header` is the stream's SequenceHeader: with no name from the
    user, its ``prior_id`` picks the prior, but only among the registered names (builtins and the zoo): a
    local folder is the user's choice (``--prior PATH``), never the file's (the decoder then checks the
    folder's hash against the header). The header's recorded dtypes win over ``dtype`` (the transformer's)
    and ``vae_dtype`` (the autoencoder's), so the decoder replays the encoder's arithmetic. Both are one of
    DTYPE_CHOICES ('auto' = bf16 on CUDA, fp32 elsewhere) and only Diffusers Wan folders use them, the other
    priors compute in fp32."""
    recorded = (None, None)
    if header is not None:
        recorded = (recorded_dtype(header, "compute_dtype"), recorded_dtype(header, "autoencoder_dtype"))
    dtypes = tuple(resolve_compute_dtype(r or d, device) for r, d in zip(recorded, (dtype, vae_dtype)))
    if name_or_path is None and header is not None:
        return _registered(header.prior_id, device, dtypes)
    name = name_or_path or "default"
    if name == "default":
        name = DEFAULT_PRIOR
    if name in _BUILTIN:
        return _BUILTIN[name](device=device)
    shipped = model_dir(name)
    if shipped is not None:
        return _from_folder(shipped, device, dtypes)
    if name in MODELS:
        raise ParameterError(f"prior '{name}': its weights are missing from the installed package ({ZOO_DIR})")
    if os.path.isdir(name):
        return _from_folder(name, device, dtypes)
    raise ParameterError(f"unknown prior '{name}' (builtin: {', '.join(available())}; or a local Wan folder)")


def _registered(name: str, device, dtypes: tuple[str, str]) -> FlowPrior:
    if name in _BUILTIN:
        return _BUILTIN[name](device=device)
    if name in MODELS:
        return load_prior(name, device=device, dtype=dtypes[0], vae_dtype=dtypes[1])
    shown = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
    raise ParameterError(f"stream needs prior '{shown}', which is not a registered prior "
                         f"({', '.join(available())}): pass --prior PATH to its local weights folder")


def _from_folder(path, device, dtypes: tuple[str, str]) -> FlowPrior:
    """A TAEF2-space prior (autoencoder/) or a Diffusers Wan2.1 folder (vae/); only the latter takes the
    (transformer, autoencoder) ``dtypes``."""
    from .tae import TaeFlowPrior, is_tae_folder

    if is_tae_folder(path):
        return TaeFlowPrior.from_pretrained(path, device=device)
    from .wan import WanPrior

    return WanPrior.from_pretrained(path, device=device, compute_dtype=dtypes[0], vae_dtype=dtypes[1])


__all__ = ["AnalyticPrior", "Conditioning", "FlowPrior", "LatentGeometry", "load_prior", "available",
           "COMPUTE_DTYPES", "DTYPE_CHOICES", "autoencoder_dtype_of", "compute_dtype_of", "recorded_dtype"]
