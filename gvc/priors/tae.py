"""GVC's second prior family: a per-frame TAEF2 latent space with a Wan-architecture flow transformer.

Folder layout (shipped under ``gvc/zoo/``, or any local folder passed with ``--prior``)::

    autoencoder/config.json                 {"latents_mean": [32 floats], "latents_std": [32 floats]}
    autoencoder/taef2_encoder.safetensors   TAEF2 weights (MIT; LICENSE beside them)
    autoencoder/taef2_decoder.safetensors
    transformer/                            a diffusers WanTransformer3DModel (config.json + safetensors)
    gvc_prior.json                          the card: name in stream headers, conditionings trained for

Latents are one frame per video frame (temporal stride 1): ``[32, F, H/8, W/8]``, normalised per channel.
The transformer's input is ``[x_t (32), mask (1), anchor latents (32)]`` = 65 channels: the mask is 1 on
anchor frames, and the anchor latents hold the normalised latent of each anchor frame at its position and
zeros elsewhere (no bits are spent on them: anchors are decoded images both sides have). With no anchors,
mask and latents are all zeros (T2V). The text input is Wan's null embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gvc.errors import ParameterError
from gvc.priors.base import Conditioning, pin_thread_dependent_convs
from gvc.priors import taef2
from gvc.zoo import read_card
from gvc.priors.wan import (WanLatentGeometry, _first_line, _load_diffusers, hash_folder_files,
                            null_text_embedding)

_EXTRA_KEY = "tae"
_CHUNK = 8  # frames per autoencoder call: bounds peak memory at large sizes


def anchor_inputs(latent_first: torch.Tensor | None, latent_last: torch.Tensor | None, frames: int) -> torch.Tensor:
    """The 33 conditioning channels [mask (1), anchor latents (32)] for a GOP of ``frames`` latent frames.

    ``latent_first``/``latent_last`` are normalised latents [32, h, w] of the decoded anchors, or None.
    Training builds its conditioning with this same function.
    """
    ref = latent_first if latent_first is not None else latent_last
    if ref is None:
        raise ParameterError("anchor_inputs needs at least one anchor latent (T2V uses zeros)")
    c, h, w = ref.shape
    y = torch.zeros(1 + c, frames, h, w, dtype=torch.float32, device=ref.device)
    for pos, lat in ((0, latent_first), (frames - 1, latent_last)):
        if lat is not None:
            y[0, pos] = 1.0
            y[1:, pos] = lat.float()
    return y


class TaeFlowPrior:
    """FlowPrior over the TAEF2 latent space; see the module docstring."""

    def __init__(self, *, root: Path, encoder, decoder, transformer, latents_mean, latents_std, card: dict,
                 device: torch.device | str = "cpu"):
        self.root = Path(root)
        self.card = dict(card)
        self.enc, self.dec, self.transformer = encoder.eval(), decoder.eval(), transformer.eval()
        pin_thread_dependent_convs(self.enc, self.dec, self.transformer)  # TAEF2's pointwise convs: thread-count free
        tcfg = transformer.config
        self.z_dim = taef2.LATENT_CHANNELS
        self.patch = tuple(int(p) for p in tcfg.patch_size)
        if self.patch[0] != 1 or self.patch[1] != self.patch[2]:
            raise ParameterError(f"unsupported transformer patch size {self.patch}")
        if int(tcfg.in_channels) != 2 * self.z_dim + 1 or int(tcfg.out_channels) != self.z_dim:
            raise ParameterError(f"transformer channels {tcfg.in_channels}->{tcfg.out_channels}, expected 65->32")
        self.text_dim = int(tcfg.text_dim)
        self.geometry = WanLatentGeometry(channels=self.z_dim, spatial_stride=taef2.STRIDE * self.patch[1],
                                          temporal_stride=1, vae_stride=taef2.STRIDE)
        self.name = str(self.card.get("name") or self.root.resolve().name)[:32]
        # latent frames per codebook set that this prior's streams use unless told otherwise (its card says)
        self.codebook_span = int(self.card.get("codebook_span", 1))
        self._mean = torch.tensor(latents_mean, dtype=torch.float32).view(-1, 1, 1)
        self._inv_std = 1.0 / torch.tensor(latents_std, dtype=torch.float32).view(-1, 1, 1)
        self._sha: bytes | None = None
        self.device = torch.device("cpu")
        self.to(device)

    @classmethod
    def from_pretrained(cls, local_dir, *, device: torch.device | str = "cpu") -> "TaeFlowPrior":
        """Load from a local folder (never downloads); a missing or damaged piece is a one-line ParameterError."""
        from diffusers import WanTransformer3DModel
        from safetensors.torch import load_file

        root = Path(local_dir)
        ae = root / "autoencoder"
        try:
            card = read_card(root)
            stats = json.loads((ae / "config.json").read_text())
            encoder, decoder = taef2.encoder(), taef2.decoder()
            for module, name in ((encoder, "encoder"), (decoder, "decoder")):
                sd = load_file(str(ae / f"taef2_{name}.safetensors"))
                module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise ParameterError(f"{root}: cannot load the TAEF2 prior ({_first_line(e)})") from e
        transformer = _load_diffusers(WanTransformer3DModel, root / "transformer", torch.float32)
        return cls(root=root, encoder=encoder, decoder=decoder, transformer=transformer, card=card, device=device,
                   latents_mean=stats["latents_mean"], latents_std=stats["latents_std"])

    def weights_sha256(self) -> bytes:
        """SHA-256 over the weights and configs of autoencoder/ and transformer/ (computed once)."""
        if self._sha is None:
            self._sha = hash_folder_files(self.root, ["autoencoder", "transformer"])
        return self._sha

    def to(self, device: torch.device | str) -> "TaeFlowPrior":
        self.device = torch.device(device)
        for m in (self.enc, self.dec, self.transformer):
            m.to(self.device)
        return self

    # ------------------------------------------------------------------ autoencoder
    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ParameterError(f"encode expects frames [F, 3, H, W], got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % taef2.STRIDE or w % taef2.STRIDE:
            raise ParameterError(f"encode: {w}x{h} is not a multiple of {taef2.STRIDE}")

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[F, 3, H, W] in [0, 1] -> normalised latents [32, F, H/8, W/8]."""
        self._check_frames(frames)
        z = torch.cat([self.enc(c.to(self.device, torch.float32)) for c in frames.split(_CHUNK)])
        return self.normalise(z).permute(1, 0, 2, 3).contiguous()

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Raw TAEF2 latents [F, 32, h, w] -> normalised (the training tool uses this too)."""
        return (z.float() - self._mean.to(z.device)) * self._inv_std.to(z.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [32, F, h, w] -> frames [F, 3, H, W] in [0, 1]."""
        if latents.ndim != 4 or latents.shape[0] != self.z_dim:
            raise ParameterError(f"decode expects latents [{self.z_dim}, F, h, w], got {tuple(latents.shape)}")
        z = latents.to(self.device, torch.float32).permute(1, 0, 2, 3)
        z = z / self._inv_std.to(z.device) + self._mean.to(z.device)
        return torch.cat([self.dec(c).clamp(0, 1) for c in z.split(_CHUNK)])

    # ------------------------------------------------------------------ flow
    def condition(self, cond: Conditioning, latent_shape: tuple[int, ...]) -> Conditioning:
        c, f, h, w = (int(v) for v in latent_shape)
        if c != self.z_dim:
            raise ParameterError(f"latent shape {tuple(latent_shape)} has {c} channels, the prior has {self.z_dim}")
        if h % self.patch[1] or w % self.patch[2]:
            raise ParameterError(f"latent grid {h}x{w} is not a multiple of the transformer patch {self.patch[1]}")
        if cond.frames and cond.frames != f:
            raise ParameterError(f"conditioning for {cond.frames} frames, latents hold {f}")
        lat = {}
        for role, image in (("first", cond.first_frame), ("last", cond.last_frame)):
            if image is None:
                continue
            if tuple(image.shape) != (3, h * taef2.STRIDE, w * taef2.STRIDE):
                raise ParameterError(f"anchor frame {tuple(image.shape)} does not match [3, {h * 8}, {w * 8}]")
            lat[role] = self.encode(image[None])[:, 0]
        if lat:
            y = anchor_inputs(lat.get("first"), lat.get("last"), f)
        else:
            y = torch.zeros(1 + c, f, h, w, device=self.device)
        cond.extra[_EXTRA_KEY] = {"latent_shape": (c, f, h, w), "y": y.to(self.device),
                                  "text": null_text_embedding(self.text_dim, self.device)}
        return cond

    @torch.no_grad()
    def velocity(self, x: torch.Tensor, t: float, cond: Conditioning) -> torch.Tensor:
        """u(x_t, t) ≈ ε − x0: one transformer forward at timestep 1000·t. Returns float32."""
        prep = cond.extra.get(_EXTRA_KEY)
        if prep is None or prep["latent_shape"] != tuple(x.shape):
            self.condition(cond, tuple(x.shape))
            prep = cond.extra[_EXTRA_KEY]
        hidden = torch.cat([x.to(self.device, torch.float32), prep["y"]], 0).unsqueeze(0)
        timestep = torch.tensor([1000.0 * float(t)], dtype=torch.float32, device=self.device)
        out = self.transformer(hidden_states=hidden, timestep=timestep, encoder_hidden_states=prep["text"],
                               return_dict=False)[0]
        return out[0].float()


def is_tae_folder(path) -> bool:
    return (Path(path) / "autoencoder" / "taef2_encoder.safetensors").is_file()


__all__ = ["TaeFlowPrior", "anchor_inputs", "is_tae_folder"]
