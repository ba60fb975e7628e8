"""Wan2.1 as a GVC flow prior (diffusers components, loaded offline from a local Diffusers folder).

Supported layouts (subfolders of one directory, as in the Wan2.1-*-Diffusers repositories):

* ``transformer/`` (WanTransformer3DModel) and ``vae/`` (AutoencoderKLWan): required.
* ``text_encoder/`` (UMT5EncoderModel) + ``tokenizer/``: optional. Without them the prompt embedding is a
  *null embedding*: zeros of shape ``[1, 512, transformer.text_dim]`` (the Wan pipelines pad every prompt to
  512 tokens with zeros, so this is "a prompt whose every token was padding"; it is not the same as the
  embedding of the empty prompt, which still has an end-of-sequence token). The prompt is then ignored.
  Without CLIP it is passed as one zero token (:func:`null_text_embedding`), which attends the same.
* ``image_encoder/`` (CLIPVisionModel) + ``image_processor/``: needed only by transformers with an
  ``image_dim`` (Wan2.1 I2V/FLF2V 14B), which take CLIP features of the anchor frame(s).

The transformer's ``in_channels`` decides the kind: ``z_dim`` (16) = T2V, which cannot condition on
anchors; ``2*z_dim + temporal_stride`` (36) = I2V/FLF2V, which needs a first frame and optionally takes a
last frame. (A transformer with ``pos_embed_seq_len`` and CLIP, i.e. Wan2.1-FLF2V-14B, needs both frames;
an I2V transformer with CLIP, i.e. Wan2.1-I2V-14B, takes only a first frame: both as in diffusers.)

Conditioning follows diffusers 0.42 ``WanImageToVideoPipeline`` (``prepare_latents``/``encode_image``):

* video_condition = [first frame, zeros x (F-2), last frame] (or [first, zeros x (F-1)]) in [-1, 1], VAE
  encoded (distribution mode), normalised with latents_mean/latents_std -> ``[16, F_lat, h, w]``;
* mask = 1 on the anchor frames, 0 elsewhere, per pixel frame; the first frame's entry is repeated
  ``temporal_stride`` times so that the F + 3 entries fold into ``[4, F_lat, h, w]`` (latent frame k holds
  pixel-frame entries 4k..4k+3 of the padded list, channel = position within the group);
* ``y = concat([mask, latent_condition], channel)`` -> 20 channels, and the transformer input is
  ``concat([x_t, y], channel)`` -> 36 channels;
* CLIP image embeddings = ``image_encoder(...).hidden_states[-2]`` for [first] or [first, last]; images go to
  the CLIP processor as 8-bit RGB PIL images (``round(255·x)``), as the pipeline receives them. The PIL
  backend of the processor is used when transformers has one, so results do not depend on torchvision.

Prompts are cleaned like the pipeline (html-unescape twice, collapse whitespace); ``ftfy.fix_text`` is applied
only when ftfy is installed (it changes nothing for well-formed text). Guidance is 1.0: one forward per call.
"""

from __future__ import annotations

import html
import os
import re
import types
from dataclasses import dataclass
from pathlib import Path

import torch

from gvc.errors import ParameterError
from gvc.kernels import adaln_triton, rope_triton
from gvc.priors.base import (COMPUTE_DTYPES, Conditioning, LatentGeometry, check_compute_dtype,
                             dtype_name, pin_thread_dependent_convs, torch_dtype)
from gvc.priors.hashcache import cached_sha256
from gvc.zoo import read_card

TEXT_LEN = 512  # the Wan transformer's cross-attention splits image/text tokens assuming 512 text tokens
_EXTRA_KEY = "wan"  # cond.extra[_EXTRA_KEY] holds the prepared tensors


@dataclass(frozen=True)
class WanLatentGeometry(LatentGeometry):
    """LatentGeometry whose ``spatial_stride`` is the padding granularity (VAE stride x transformer patch).

    ``spatial_stride`` = vae_stride · patch (16 for Wan): frame sizes must be multiples of it so that the
    latent grid divides into transformer patches. One latent pixel covers ``vae_stride`` (8) frame pixels,
    which :meth:`latent_shape` uses; do not compute latent sizes as ``H // spatial_stride``.
    """

    vae_stride: int = 8

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        s = self.vae_stride
        return (self.channels, self.latent_frames(frames), height // s, width // s)


def _clean_prompt(text: str) -> str:
    try:
        import ftfy  # optional, as in diffusers
    except ImportError:
        ftfy = None
    if ftfy is not None:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def _safetensors_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file())


def hash_folder_files(root: Path, subs: list[str]) -> bytes:
    """SHA-256 over the *.safetensors and config.json files of ``root/sub`` for each sub, in relative-path
    order. A sub without safetensors is a ParameterError. Read once, then served from a cache that is
    verified against each file's size and times (gvc.priors.hashcache)."""
    files = []
    for sub in subs:
        found = _safetensors_files(root / sub)
        if not found:
            raise ParameterError(f"{root / sub}: no .safetensors weights to identify the prior")
        files += found
        if (root / sub / "config.json").is_file():
            files.append(root / sub / "config.json")
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return cached_sha256(root, files)[0]


def null_text_embedding(text_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Wan's null prompt embedding as one zero token, [1, 1, text_dim] (float32).

    The pipelines' 512 zero tokens all become the same cross-attention key and value, so every query's attention
    is uniform over identical values, and its output is that value: what one token gives, without rounding the
    sum of 512 copies. One token skips 511 identical rows: 9% of a default-prior forward on the CPU. Not for
    transformers with CLIP (image_dim), which split their context assuming 512 text tokens."""
    return torch.zeros(1, 1, text_dim, dtype=torch.float32, device=device)


def anchor_mask(frames: int, h: int, w: int, has_first: bool, has_last: bool, stride: int) -> torch.Tensor:
    """Anchor mask folded to [stride, F_lat, h, w] exactly as WanImageToVideoPipeline does (training uses it too)."""
    per_frame = torch.zeros(frames)
    per_frame[0] = float(has_first)
    if has_last:
        per_frame[-1] = 1.0
    padded = torch.cat([per_frame[:1].repeat(stride), per_frame[1:]])  # F + stride - 1 = stride * F_lat entries
    folded = padded.view(-1, stride).t()  # [stride, F_lat]: channel j of latent frame k = padded[stride*k + j]
    return folded[:, :, None, None].expand(stride, folded.shape[1], h, w).contiguous()


class WanPrior:
    """FlowPrior over Wan2.1 (T2V, I2V or FLF2V), float32 by default; see the module docstring.

    ``compute_dtype`` ("fp32", "bf16", "fp16"): the transformer's arithmetic on any device, with diffusers'
    keep-in-fp32 modules left in float32. The VAE computes in the dtype it was loaded in
    (``from_pretrained(vae_dtype=...)``: anchor conditioning encode, decode); the text and image encoders stay
    float32. (``bf16_transformer``, the older flag, means bf16 on CUDA and
    float32 on the CPU.) Streams record both dtypes, and the decoder loads the prior in them.
    """

    def __init__(
        self,
        *,
        root: Path,
        transformer,
        vae,
        text_encoder=None,
        tokenizer=None,
        image_encoder=None,
        image_processor=None,
        device: torch.device | str = "cpu",
        bf16_transformer: bool = False,
        compute_dtype: str = "fp32",
        text_encoder_device: torch.device | str | None = None,
        card: dict | None = None,
    ):
        _check_dtype_name(compute_dtype)
        self.root = Path(root)
        self.card = dict(card or {})
        self.transformer = transformer.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.image_encoder = image_encoder.eval() if image_encoder is not None else None
        self.image_processor = image_processor
        self.bf16_transformer = bool(bf16_transformer)
        self._requested_dtype = "bf16" if self.bf16_transformer else compute_dtype
        self.autoencoder_dtype = dtype_name(vae.dtype)  # what the VAE computes in (streams record it)
        self.text_encoder_device = torch.device(text_encoder_device) if text_encoder_device is not None else None

        vcfg, tcfg = vae.config, transformer.config
        self.z_dim = int(vcfg.z_dim)
        self.vae_stride = 2 ** (len(vcfg.dim_mult) - 1) * int(getattr(vcfg, "patch_size", None) or 1)
        self.temporal_stride = 2 ** sum(bool(b) for b in vcfg.temperal_downsample)
        self.patch = tuple(int(p) for p in tcfg.patch_size)
        if self.patch[0] != 1 or self.patch[1] != self.patch[2]:
            raise ParameterError(f"unsupported Wan transformer patch size {self.patch}")
        self.text_dim = int(tcfg.text_dim)
        in_ch = int(tcfg.in_channels)
        if int(tcfg.out_channels or in_ch) != self.z_dim:
            raise ParameterError(f"transformer out_channels {tcfg.out_channels} != VAE z_dim {self.z_dim}")
        if in_ch == self.z_dim:
            self.is_i2v = False
        elif in_ch == 2 * self.z_dim + self.temporal_stride:
            self.is_i2v = True
        else:
            raise ParameterError(f"unsupported Wan transformer in_channels {in_ch} (16 = T2V, 36 = I2V/FLF2V)")
        self.uses_clip = tcfg.image_dim is not None
        # Wan2.1-FLF2V-14B: CLIP tokens of both anchors get a learned position embedding over 2 images.
        self.clip_pairs = self.uses_clip and tcfg.pos_embed_seq_len is not None
        if self.uses_clip and (self.image_encoder is None or self.image_processor is None):
            raise ParameterError(f"{self.root / 'image_encoder'}: missing (the transformer needs CLIP image features)")
        if not self.uses_clip:  # an image encoder the transformer cannot take is not used (nor hashed)
            self.image_encoder = self.image_processor = None
        # the VAE's pointwise convolutions would otherwise round differently on 1 and on more CPU threads
        pin_thread_dependent_convs(*(m for m in (self.transformer, self.vae, self.text_encoder, self.image_encoder)
                                     if m is not None))

        self.geometry = WanLatentGeometry(
            channels=self.z_dim,
            spatial_stride=self.vae_stride * self.patch[1],
            temporal_stride=self.temporal_stride,
            vae_stride=self.vae_stride,
        )
        base = self.root.resolve().name.encode("ascii", "replace").decode("ascii")
        self.name = str(self.card.get("name") or ("wan2.1:" + base))[:32]
        # A model trained with conditioning dropped to "none" (GVC's own) also runs I2V-layout without anchors.
        self.unconditional = self.is_i2v and not self.uses_clip and "none" in self.card.get("conditioning", [])
        self._latents_mean = torch.tensor(vcfg.latents_mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self._latents_inv_std = 1.0 / torch.tensor(vcfg.latents_std, dtype=torch.float32).view(-1, 1, 1, 1)
        self._prompt_cache: dict[str, torch.Tensor] = {}
        self._sha: bytes | None = None
        self.device = torch.device("cpu")
        self.to(device)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        local_dir,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        bf16_transformer: bool = False,
        compute_dtype: str = "fp32",
        vae_dtype: str = "fp32",
        text_encoder_device: torch.device | str | None = None,
    ) -> "WanPrior":
        """Load from a local Diffusers folder (never downloads). Missing pieces raise ParameterError.

        ``dtype``: of every component (float32 by default).
        ``bf16_transformer``: on CUDA run the transformer in bfloat16, with diffusers' keep-in-fp32 modules
        (time embedder, norms, scale_shift_table) left in float32; VAE and encoders stay in ``dtype``. When
        ``device`` is CUDA the weights are rounded to bf16 at load, so a later ``.to("cpu")`` runs float32
        arithmetic on bf16-rounded weights; on the CPU the flag has no effect.
        ``compute_dtype``: the transformer's arithmetic ("fp32", "bf16", "fp16") on every device; the weights are
        loaded in it (so the 1.3B transformer takes 2.8 GB, not 5.7 GB), keep-in-fp32 modules stay float32.
        ``vae_dtype``: the VAE's arithmetic ("fp32", "bf16", "fp16"), likewise; with "fp32", ``dtype``.
        ``text_encoder_device``: where UMT5 runs (e.g. "cpu" to keep umt5-xxl, 23 GB in float32, off the
        GPU; prompts are encoded once and cached); default: with the rest of the prior.
        """
        _check_dtype_name(compute_dtype)
        _check_dtype_name(vae_dtype)
        root = Path(local_dir)
        if not root.is_dir():
            raise ParameterError(f"Wan model folder not found: {root}")
        for sub in ("transformer", "vae"):
            if not (root / sub).is_dir():
                raise ParameterError(f"{root / sub}: missing (a Wan Diffusers folder needs transformer/ and vae/)")
        from diffusers import AutoencoderKLWan, WanTransformer3DModel

        if bf16_transformer:
            tdtype = torch.bfloat16 if torch.device(device).type == "cuda" else dtype
        elif compute_dtype != "fp32":
            check_compute_dtype(compute_dtype, device)
            tdtype = torch_dtype(compute_dtype)
        else:
            tdtype = dtype
        transformer = _load_diffusers(WanTransformer3DModel, root / "transformer", tdtype, device)
        if vae_dtype != "fp32":
            check_compute_dtype(vae_dtype, device)
        vae = _load_diffusers(AutoencoderKLWan, root / "vae", dtype if vae_dtype == "fp32" else torch_dtype(vae_dtype),
                              device)

        text_encoder = tokenizer = None
        if (root / "text_encoder").is_dir():
            from transformers import AutoTokenizer, UMT5EncoderModel

            if not (root / "tokenizer").is_dir():
                raise ParameterError(f"{root / 'tokenizer'}: missing (needed with text_encoder/)")
            text_encoder = _load(UMT5EncoderModel, root / "text_encoder", dtype)
            tokenizer = _load(AutoTokenizer, root / "tokenizer", None)

        image_encoder = image_processor = None
        if (root / "image_encoder").is_dir() and getattr(transformer.config, "image_dim", None) is not None:
            import transformers
            from transformers import CLIPVisionModel

            if not (root / "image_processor").is_dir():
                raise ParameterError(f"{root / 'image_processor'}: missing (needed with image_encoder/)")
            image_encoder = _load(CLIPVisionModel, root / "image_encoder", dtype)
            proc_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
            image_processor = _load(proc_cls, root / "image_processor", None)

        return cls(
            card=read_card(root),
            root=root,
            transformer=transformer,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            image_encoder=image_encoder,
            image_processor=image_processor,
            device=device,
            bf16_transformer=bf16_transformer,
            compute_dtype=compute_dtype,
            text_encoder_device=text_encoder_device,
        )

    # ------------------------------------------------------------------ identity
    def _used_components(self) -> list[str]:
        subs = ["transformer", "vae"]
        if self.text_encoder is not None:
            subs.append("text_encoder")
        if self.image_encoder is not None:
            subs.append("image_encoder")
        return subs

    def weights_sha256(self) -> bytes:
        """SHA-256 over the bytes of the used components' *.safetensors and config.json files, in
        relative-path order (a config holds values that change the outputs, e.g. the VAE's latents_mean).

        Computed once (streamed, 16 MiB at a time) and cached for the life of the object.
        """
        if self._sha is None:
            self._sha = hash_folder_files(self.root, self._used_components())
        return self._sha

    # ------------------------------------------------------------------ devices
    @property
    def compute_dtype(self) -> str:
        """The transformer's arithmetic where the prior is now: "fp32", "bf16" or "fp16" (recorded in streams)."""
        if self.bf16_transformer and self.device.type != "cuda":
            return "fp32"
        return self._requested_dtype

    def to(self, device: torch.device | str) -> "WanPrior":
        device = torch.device(device)
        self.device = device
        if self.compute_dtype != "fp32" or self.bf16_transformer:
            _cast_model(self.transformer, torch_dtype(self.compute_dtype), device)
        else:
            self.transformer.to(device)
        rope_triton.install(self.transformer)  # on CUDA: the same RoPE arithmetic in one kernel
        adaln_triton.install(self.transformer)  # ... and the same modulations and gated residuals
        self.vae.to(device)
        _vae_cpu_convs(self.vae, device.type == "cpu")
        if self.text_encoder is not None:
            self.text_encoder.to(self.text_encoder_device or device)
        if self.image_encoder is not None:
            self.image_encoder.to(device)
        return self

    @property
    def mode(self) -> str:
        """"t2v", "i2v" or "flf2v" (an I2V-layout model without CLIP reports "i2v" but takes a last frame too)."""
        return "t2v" if not self.is_i2v else ("flf2v" if self.clip_pairs else "i2v")

    @property
    def accepts_last_frame(self) -> bool:
        """Whether :meth:`condition` takes a last-frame anchor (FLF2V, or an I2V-layout model without CLIP)."""
        return self.is_i2v and (self.clip_pairs or not self.uses_clip)

    @property
    def needs_last_frame(self) -> bool:
        """Wan2.1-FLF2V-14B-style models (CLIP features of two images) need both anchors."""
        return self.clip_pairs

    # ------------------------------------------------------------------ VAE
    def _normalise(self, z: torch.Tensor) -> torch.Tensor:  # z: [C, F, h, w] float32
        return (z - self._latents_mean.to(z.device)) * self._latents_inv_std.to(z.device)

    @torch.no_grad()
    def _vae_encode(self, video: torch.Tensor) -> torch.Tensor:
        """[3, F, H, W] in [-1, 1] -> normalised latents [C, F_lat, h, w] (float32)."""
        vdtype = self.vae.dtype
        dist = self.vae.encode(video.unsqueeze(0).to(self.device, vdtype)).latent_dist
        return self._normalise(dist.mode()[0].float())

    def _check_frames(self, frames: int, height: int, width: int, what: str) -> None:
        if not self.geometry.is_valid_gop_length(frames):
            raise ParameterError(f"{what}: {frames} frames is not 1 + {self.temporal_stride}k")
        if height % self.vae_stride or width % self.vae_stride or height <= 0 or width <= 0:
            raise ParameterError(f"{what}: {width}x{height} is not a multiple of {self.vae_stride}")

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[F, 3, H, W] in [0, 1] -> normalised latents [C, F_lat, h, w] (mean of the VAE posterior)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ParameterError(f"encode expects frames [F, 3, H, W], got {tuple(frames.shape)}")
        f, _, h, w = frames.shape
        self._check_frames(f, h, w, "encode")
        video = frames.to(torch.float32).permute(1, 0, 2, 3) * 2.0 - 1.0
        return self._vae_encode(video)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents [C, F_lat, h, w] -> frames [F, 3, H, W] in [0, 1], F = 4(F_lat-1)+1."""
        if latents.ndim != 4 or latents.shape[0] != self.z_dim:
            raise ParameterError(f"decode expects latents [{self.z_dim}, F_lat, h, w], got {tuple(latents.shape)}")
        z = latents.to(self.device, torch.float32)
        z = z / self._latents_inv_std.to(z.device) + self._latents_mean.to(z.device)  # as the pipeline does
        video = self.vae.decode(z.unsqueeze(0).to(self.vae.dtype), return_dict=False)[0][0]
        video = (video.float() / 2 + 0.5).clamp(0, 1)
        return video.permute(1, 0, 2, 3).contiguous()

    # ------------------------------------------------------------------ conditioning
    @torch.no_grad()
    def prompt_embeds(self, prompt: str) -> torch.Tensor:
        """UMT5 embedding of ``prompt`` as the Wan pipelines build it: [1, 512, text_dim], cached, on CPU."""
        prompt = _clean_prompt(prompt) if self.text_encoder is not None else ""  # null embedding ignores it
        cached = self._prompt_cache.get(prompt)
        if cached is not None:
            return cached
        if self.text_encoder is None:
            # CLIP models split [image tokens, text tokens] assuming 512 text tokens: they get all 512
            emb = torch.zeros(1, TEXT_LEN, self.text_dim) if self.uses_clip else null_text_embedding(self.text_dim)
        else:
            tok = self.tokenizer(
                [prompt],
                padding="max_length",
                max_length=TEXT_LEN,
                truncation=True,
                add_special_tokens=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            dev = next(self.text_encoder.parameters()).device
            ids, mask = tok.input_ids.to(dev), tok.attention_mask.to(dev)
            hidden = self.text_encoder(ids, mask).last_hidden_state.float().cpu()
            n = int(mask.gt(0).sum())
            emb = torch.zeros(1, TEXT_LEN, hidden.shape[-1], dtype=torch.float32)
            emb[0, :n] = hidden[0, :n]  # positions past the prompt are zeros, as in the pipeline
        self._prompt_cache[prompt] = emb
        return emb

    @torch.no_grad()
    def _clip_embeds(self, images: list[torch.Tensor]) -> torch.Tensor:
        from PIL import Image

        pil = [
            Image.fromarray((im.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
            for im in images
        ]
        pixels = self.image_processor(images=pil, return_tensors="pt").pixel_values
        out = self.image_encoder(pixel_values=pixels.to(self.device, self.image_encoder.dtype), output_hidden_states=True)
        return out.hidden_states[-2].float()  # [n_images, tokens, image_dim]

    def condition(self, cond: Conditioning, latent_shape: tuple[int, ...]) -> Conditioning:
        """Prepare prompt embeddings and (I2V/FLF2V) y / CLIP features for latents of ``latent_shape``.

        Stores them in ``cond.extra["wan"]`` and returns ``cond``.
        """
        c, f_lat, h, w = (int(v) for v in latent_shape)
        if c != self.z_dim:
            raise ParameterError(f"latent shape {tuple(latent_shape)} has {c} channels, the prior has {self.z_dim}")
        if h % self.patch[1] or w % self.patch[2]:
            raise ParameterError(f"latent grid {h}x{w} is not a multiple of the transformer patch {self.patch[1]}")
        frames = (f_lat - 1) * self.temporal_stride + 1
        if cond.frames and cond.frames != frames:
            raise ParameterError(f"conditioning for {cond.frames} frames, latents hold {frames}")
        first, last = cond.first_frame, cond.last_frame
        y = image_embeds = None
        if not self.is_i2v:
            if first is not None or last is not None:
                raise ParameterError("this prior cannot condition on anchors")
        else:
            if first is None and (last is not None or not self.unconditional):
                raise ParameterError("this prior needs a first-frame anchor")
            if self.clip_pairs and last is None:
                raise ParameterError("this FLF2V prior needs both a first and a last frame")
            if self.uses_clip and not self.clip_pairs and last is not None:
                raise ParameterError("this I2V prior cannot condition on a last frame (use an FLF2V model)")
            if last is not None and frames < 2:
                raise ParameterError("a last-frame anchor needs at least 5 frames")
            hh, ww = h * self.vae_stride, w * self.vae_stride
            anchors = [a for a in (first, last) if a is not None]
            for a in anchors:
                if tuple(a.shape) != (3, hh, ww):
                    raise ParameterError(f"anchor frame {tuple(a.shape)} does not match [3, {hh}, {ww}]")
            video = torch.zeros(3, frames, hh, ww, dtype=torch.float32)
            if first is not None:
                video[:, 0] = first.float().cpu() * 2 - 1
            if last is not None:
                video[:, -1] = last.float().cpu() * 2 - 1
            latent_condition = self._vae_encode(video).cpu()
            y = torch.cat([anchor_mask(frames, h, w, first is not None, last is not None, self.temporal_stride), latent_condition], dim=0)
            if self.uses_clip:
                image_embeds = self._clip_embeds(anchors).cpu()
        cond.extra[_EXTRA_KEY] = {
            "latent_shape": (c, f_lat, h, w),
            "prompt_embeds": self.prompt_embeds(cond.prompt),
            "y": y,  # None for T2V, else [temporal_stride + C, F_lat, h, w] (mask first)
            "image_embeds": image_embeds,  # None or [n_anchors, tokens, image_dim]
        }
        return cond

    # ------------------------------------------------------------------ velocity
    @torch.no_grad()
    def velocity(self, x: torch.Tensor, t: float, cond: Conditioning) -> torch.Tensor:
        """u(x_t, t) ≈ ε − x0: one transformer forward at timestep 1000·t, guidance 1.0. Returns float32."""
        if x.ndim != 4:
            raise ParameterError(f"velocity expects latents [C, F_lat, h, w], got {tuple(x.shape)}")
        prep = cond.extra.get(_EXTRA_KEY)
        if prep is None or prep["latent_shape"] != tuple(x.shape):
            self.condition(cond, tuple(x.shape))
            prep = cond.extra[_EXTRA_KEY]
        tdtype = self.transformer.dtype
        dev = self.device
        hidden = x.to(dev, torch.float32).unsqueeze(0)
        if prep["y"] is not None:
            hidden = torch.cat([hidden, prep["y"].to(dev, torch.float32).unsqueeze(0)], dim=1)
        image_embeds = prep["image_embeds"]
        if image_embeds is not None:
            image_embeds = image_embeds.to(dev, tdtype)
        timestep = torch.tensor([1000.0 * float(t)], dtype=torch.float32, device=dev)
        out = self.transformer(
            hidden_states=hidden.to(tdtype),
            timestep=timestep,
            encoder_hidden_states=prep["prompt_embeds"].to(dev, tdtype),
            encoder_hidden_states_image=image_embeds,
            return_dict=False,
        )[0]
        return out[0].float()


def _check_dtype_name(name: str) -> None:
    if name not in COMPUTE_DTYPES:
        raise ParameterError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")


def _cast_model(model, dtype: torch.dtype, device=None) -> None:
    """Cast a diffusers model's weights to ``dtype`` (and move it), as diffusers' loader leaves them.

    Parameters and persistent buffers get ``dtype`` except those of ``_keep_in_fp32_modules``, which stay
    float32; non-persistent buffers (the Wan RoPE tables, float64) keep their dtype. Casts before moving
    to an accelerator and after moving to the CPU, so the larger copy lives in host memory.
    """
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cpu":
        model.to(device)
    persistent = set(model.state_dict().keys())
    params = dict(model.named_parameters())
    for name, t in list(params.items()) + list(model.named_buffers()):
        if not t.is_floating_point() or (name not in params and name not in persistent):
            continue
        target = _run_dtype(model, name, t, dtype)
        if t.dtype != target:
            t.data = t.data.to(target)
    if device is not None and device.type != "cpu":
        model.to(device)


def _onednn_conv3d(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.mkldnn_convolution(x, weight, bias, self.padding, self.stride, self.dilation, self.groups)


def _vae_cpu_convs(vae, on: bool) -> None:
    """On the CPU, run the VAE's Conv3d layers through oneDNN on channels-last weights (2-4x less CPU time for
    the VAE); elsewhere, undo it.

    ATen picks its slow im2col kernel for a batch-1 Conv3d whose N·C·T·H is at most 20,480, which is most of
    the causal VAE's per-chunk convolutions, and picks the kernel of a 1x1x1 one by the thread count. With
    channels-last weights the activations stay channels-last, which also speeds up the VAE's channel-wise
    RMS norms. Encoder and decoder run the same kernels, so decoding stays bit-exact."""
    fmt = torch.channels_last_3d if on else torch.contiguous_format
    for m in vae.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)
            if on:
                m._conv_forward = types.MethodType(_onednn_conv3d, m)
            else:
                m.__dict__.pop("_conv_forward", None)


def _load_diffusers(cls, path: Path, dtype: torch.dtype, device: torch.device | str = "cpu"):
    """Offline diffusers model loading that needs neither accelerate nor the hub, straight onto ``device``.

    diffusers 0.42's ``from_pretrained`` refuses models with ``_keep_in_fp32_modules`` (the Wan transformer)
    when accelerate is missing, so: config -> ``from_config`` without random init -> an empty tensor on
    ``device`` for every weight, in the dtype it runs in -> filled from the memory-mapped ``*.safetensors``
    files of the folder (the files :meth:`WanPrior.weights_sha256` hashes), strictly. Each tensor is cast on
    the CPU by a pool of threads and copied from pinned memory: 0.44 s for Wan-1.3B's 5.7 GB onto an H200,
    against 2.3-2.5 s for casting a whole CPU model and then moving it (most of that the cast of the empty
    model). Non-persistent buffers (the RoPE tables) are computed on the CPU as before, then moved, so the
    arithmetic does not depend on this path.
    """
    from safetensors import safe_open

    try:
        from diffusers.models.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover - older diffusers
        from contextlib import nullcontext as no_init_weights

    if not (path / "config.json").is_file():
        raise ParameterError(f"{path / 'config.json'}: missing")
    files = _safetensors_files(path)
    if not files:
        raise ParameterError(f"{path}: no .safetensors weights")
    try:
        config = cls.load_config(path, local_files_only=True)
        with no_init_weights():  # built in float32 on the CPU, memory left uninitialised until loaded
            model = cls.from_config(config)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ParameterError(f"{path}: cannot build the model ({_first_line(e)})") from e
    device = torch.device(device)
    weights = _empty_weights(model, dtype, device)
    seen: set[str] = set()
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device="cpu") as sf:
                names = {k: k for k in sf.keys()}
                if hasattr(model, "_fix_state_dict_keys_on_load"):
                    model._fix_state_dict_keys_on_load(names)  # renames only: model name -> file name
                bad = sorted(seen.intersection(names) or set(names) - set(weights))
                if bad:
                    raise ParameterError(f"{f}: unexpected or repeated tensor {bad[0]!r}")
                _fill(weights, names, sf, device)
        except ParameterError:
            raise
        except Exception as e:  # safetensors raises its own error types for damaged files
            raise ParameterError(f"{f}: cannot read ({_first_line(e)})") from e
        seen.update(names)
    missing = set(weights) - seen
    if missing:
        raise ParameterError(f"{path}: weights missing for {sorted(missing)[0]!r} ({len(missing)} tensors)")
    return model.to(device).eval()  # moves what the files do not hold (non-persistent buffers)


def _empty_weights(model, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Give every parameter and persistent buffer an empty tensor on ``device`` in the dtype it runs in (as
    :func:`_cast_model` would cast it); returns them by state-dict name."""
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        t.data = torch.empty(t.shape, dtype=_run_dtype(model, name, t, dtype), device=device)
        out[name] = t
    return out


def _run_dtype(model, name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.dtype:
    """The dtype weight ``name`` runs in: ``dtype`` for floating-point weights, except those of diffusers'
    ``_keep_in_fp32_modules``, which stay float32; other weights keep theirs."""
    if not t.is_floating_point():
        return t.dtype
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    return torch.float32 if any(k in name.split(".") for k in keep) else dtype


def _fill(weights: dict[str, torch.Tensor], names: dict[str, str], sf, device: torch.device) -> None:
    """Copy the file's tensors into ``weights``: cast on the CPU in parallel, then one pinned copy each."""
    from concurrent.futures import ThreadPoolExecutor

    pinned = device.type == "cuda"

    def one(item):
        name, key = item
        dst = weights[name]
        src = sf.get_tensor(key)
        if src.shape != dst.shape:
            raise ParameterError(f"tensor {key!r} has shape {tuple(src.shape)}, the model {tuple(dst.shape)}")
        src = src.to(dst.dtype)
        dst.data.copy_(src.pin_memory() if pinned else src, non_blocking=pinned)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(one, names.items()))
    if pinned:
        torch.cuda.synchronize(device)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _dtype_kwarg(cls) -> str:
    """transformers >= 4.56 renamed ``torch_dtype`` to ``dtype`` (and warns on the old name)."""
    if cls.__module__.startswith("transformers"):
        import transformers

        major, minor = (int(v) for v in transformers.__version__.split(".")[:2])
        if (major, minor) >= (4, 56):
            return "dtype"
    return "torch_dtype"


def _load(cls, path: Path, dtype):
    """cls.from_pretrained(path) offline; loading failures become one-line ParameterErrors."""
    kwargs = {"local_files_only": True}
    if dtype is not None:  # a model, not a tokenizer/processor: load only the (hashed) safetensors weights
        kwargs["use_safetensors"] = True
        kwargs[_dtype_kwarg(cls)] = dtype
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ParameterError(f"{path}: cannot load ({_first_line(e)})") from e


__all__ = ["WanPrior", "WanLatentGeometry", "TEXT_LEN", "anchor_mask", "null_text_embedding"]
