"""The GOP codec of GVC streams: T2V, I2V and FLF2V on any flow prior (docs/method.md §3).

:class:`GopCodec` turns a GOP's source frames into a :class:`GopUnit` and keeps the reconstruction it
implies; decoding replays the same sampler with the recorded noise and must output the encoder's
reconstruction bit for bit on the same machine and device, with any CPU thread count. Both directions share one per-GOP context.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from container.bitstream import MODE_ANCHOR_ROLES, Anchor, GopUnit, SequenceHeader, check_gop, frame_hash
from . import anchors as anchor_codec
from .codebook import CodebookSearch, atoms, combine
from .config import CodecConfig, codebook_size
from .entropy.combinatorial import pack_index_sets, unpack_index_sets
from .entropy.residual import decode_residual, encode_residual
from .errors import BitstreamError, ParameterError, PriorMismatchError
from .gop import GopPlan, codebook_sets, expected_real_frames, gop_atoms, gop_plan
from .priors.base import Conditioning, FlowPrior
from .sampler import SamplerConfig, sample

INIT_NOISE_STEP = 0xFFFF  # codebook "step" whose atom 0 is x_T: seeded, portable, costs no bits


def gop_seed(seed: int, gop_index: int) -> int:
    return (seed << 32) | gop_index


def to_tensor(frames: Iterable[np.ndarray], stride: int, device) -> torch.Tensor:
    """uint8 [H,W,3] frames -> float [F,3,H',W'] in [0,1], padded (edge replicate) to the latent grid."""
    x = torch.from_numpy(np.stack(list(frames))).to(device).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def to_uint8(frames: torch.Tensor, height: int, width: int) -> list[np.ndarray]:
    x = (frames[:, :, :height, :width].clamp(0, 1) * 255.0).round().to(torch.uint8)
    return list(x.permute(0, 2, 3, 1).cpu().numpy())


@dataclass
class GopResult:
    """What compressing one GOP gives: the unit to write and the frames the decoder will output."""

    unit: GopUnit
    frames: list[np.ndarray]  # output frames of this GOP (uint8 RGB, original size)
    residual_target: torch.Tensor | None = None  # I2V: the tail-latent residual the payload quantises


class _GopContext:
    """What both sides derive identically for one GOP: geometry, conditioning, initial noise."""

    def __init__(self, prior: FlowPrior, header: SequenceHeader, plan: GopPlan, device):
        self.prior, self.header, self.plan, self.device = prior, header, plan, device
        g = prior.geometry
        s = g.spatial_stride
        self.height, self.width = header.height, header.width
        self.ph, self.pw = -(-header.height // s) * s, -(-header.width // s) * s
        self.latent_shape = g.latent_shape(plan.length, self.ph, self.pw)
        self.dim = self.latent_shape[0] * self.latent_shape[2] * self.latent_shape[3]  # of one latent frame
        self.sets = codebook_sets(self.latent_shape[1], header.codebook_span)
        self.seed = gop_seed(header.seed, plan.index)
        self.sampler = SamplerConfig.from_header(header)

    def atoms(self, m: int, m_tail: int, m_plus_steps: int) -> list[int]:
        """M of every (SDE step, codebook set), step-major."""
        return gop_atoms(self.header, self.plan, m, m_tail, m_plus_steps)

    def initial_noise(self) -> torch.Tensor:
        c, f, h, w = self.latent_shape
        z = [atoms(self.seed, INIT_NOISE_STEP, j, [0], self.dim, device=self.device)[0] for j in range(f)]
        return torch.stack(z).reshape(f, c, h, w).permute(1, 0, 2, 3).contiguous()

    def set_dim(self, j: int) -> int:
        a, b = self.sets[j]
        return (b - a) * self.dim

    def set_vec(self, x: torch.Tensor, j: int) -> torch.Tensor:
        """The latent frames of codebook set j as one vector, frame-major (one frame: x[:, a] flattened)."""
        a, b = self.sets[j]
        return x[:, a:b].transpose(0, 1).reshape(-1)

    def put_set(self, z: torch.Tensor, j: int, vec: torch.Tensor) -> None:
        a, b = self.sets[j]
        z[:, a:b] = vec.reshape(b - a, z.shape[0], z.shape[2], z.shape[3]).transpose(0, 1)

    def noise_from_sets(self, step: int, chosen) -> torch.Tensor:
        """z for SDE step `step` from the chosen (indices, signs) of each of its sets (both sides use this)."""
        z = torch.empty(self.latent_shape, dtype=torch.float32, device=self.device)
        for j, (idx, sgn) in enumerate(chosen):
            self.put_set(z, j, combine(self.seed, step, j, idx, sgn, self.set_dim(j), device=self.device,
                                       family=self.header.codebook_family))
        return z

    def conditioning(self, first: np.ndarray | None, last: np.ndarray | None, prompt: str) -> Conditioning:
        s = self.prior.geometry.spatial_stride
        t = lambda im: None if im is None else to_tensor([im], s, self.device)[0]
        cond = Conditioning(first_frame=t(first), last_frame=t(last), prompt=prompt, frames=self.plan.length)
        return self.prior.condition(cond, self.latent_shape)

    def decode_frames(self, x: torch.Tensor, first: np.ndarray | None, last: np.ndarray | None) -> list[np.ndarray]:
        out = to_uint8(self.prior.decode(x), self.height, self.width)
        # Anchors are shown as the decoded anchor images themselves (sharper than their re-generation).
        if first is not None:
            out[0] = first
        if last is not None:
            out[self.plan.length - 1] = last
        return out[self.plan.output_from:self.plan.real_frames]


def make_header(prior: FlowPrior, config: CodecConfig, width: int, height: int, fps: Fraction, frame_count: int | None) -> SequenceHeader:
    config.validate()
    g = prior.geometry
    gop_length = g.valid_gop_length(config.gop_length)
    if gop_length != config.gop_length:
        raise ParameterError(f"GOP length {config.gop_length} is not valid for prior {prior.name} (try {gop_length})")
    return SequenceHeader(
        mode=config.mode, width=width, height=height, fps=Fraction(fps), frame_count=frame_count or 0,
        gop_length=gop_length, gop_overlap=config.gop_overlap, prior_id=prior.name,
        prior_sha256=prior.weights_sha256(), latent_channels=g.channels, spatial_stride=g.spatial_stride,
        temporal_stride=g.temporal_stride, steps=config.steps, ode_tail=config.ode_tail, gamma=config.gamma,
        shift=config.shift, seed=config.seed, codebook_k=codebook_size(config.quality), codebook_m=config.quality,
        codebook_m_tail=config.m_tail, tail_latent_frames=config.tail_frames,
        codebook_span=config.codebook_span if config.codebook_span is not None else getattr(prior, "codebook_span", 1),
        compute_dtype=getattr(prior, "compute_dtype", "fp32"),
        autoencoder_dtype=getattr(prior, "autoencoder_dtype", "fp32"), codebook_family=config.codebook_family,
    ).validate()


def check_device(prior: FlowPrior, device: torch.device) -> None:
    """The prior must live where the codec runs (a raw torch device-mismatch error otherwise)."""
    where = getattr(prior, "device", None)
    if where is not None and torch.device(where).type != device.type:
        raise ParameterError(f"prior {prior.name} is on {torch.device(where).type}, the codec runs on {device.type}: "
                             f"load it with device={device.type!r}")


def check_supported(header: SequenceHeader, prior: FlowPrior) -> None:
    """The decoder replays the encoder's arithmetic: the prior's transformer and autoencoder must compute in the
    dtypes the stream records (gvc.priors.load_prior loads it so from the header). Both codebook families are
    implemented."""
    for network, field, option in (("transformer", "compute_dtype", "dtype"),
                                   ("autoencoder", "autoencoder_dtype", "vae_dtype")):
        want, have = getattr(header, field), getattr(prior, field, None)
        if (have or "fp32") == want:
            continue
        if have is None:  # a prior without a choice of arithmetic
            raise PriorMismatchError(f"stream needs {want} {network} arithmetic; prior '{prior.name}' "
                                     "computes in fp32 only")
        raise PriorMismatchError(f"stream needs {want} {network} arithmetic; the prior computes in {have}: "
                                 f"load it with {option}={want!r}")


def check_prior(prior: FlowPrior, header: SequenceHeader) -> None:
    g = prior.geometry
    if prior.weights_sha256() != header.prior_sha256:
        raise PriorMismatchError(
            f"stream was encoded with prior '{header.prior_id}' ({header.prior_sha256.hex()[:12]}…), "
            f"the decoder has '{prior.name}' ({prior.weights_sha256().hex()[:12]}…)")
    if (g.channels, g.spatial_stride, g.temporal_stride) != (header.latent_channels, header.spatial_stride, header.temporal_stride):
        raise PriorMismatchError("prior latent geometry differs from the stream's")


class GopCodec:
    """Compresses and decompresses GOPs of one stream over the per-GOP context both sides share (compare
    CompressAI's LatentCodec): ``encode(index, frames) -> GopResult(unit, frames)``, ``decode(unit) -> frames``.

    The codec carries what one GOP hands to the next (I2V: its last output frame; FLF2V: its last anchor),
    keyed by GOP index, so a GOP can be encoded again (rate control) without disturbing the chain.
    """

    def __init__(self, prior: FlowPrior, header: SequenceHeader, device: str | torch.device = "cpu",
                 config: CodecConfig | None = None):
        """A decoder for `header`; with the `config` the header was made from (see :meth:`for_encoding`), also an encoder."""
        self.prior, self.header, self.config, self.device = prior, header, config, torch.device(device)
        check_supported(header, prior)
        if config is None:
            check_prior(prior, header)
        check_device(prior, self.device)
        self._carry: dict[int, np.ndarray | None] = {}
        self._searches: dict[tuple[int, int], CodebookSearch] = {}

    @classmethod
    def for_encoding(cls, prior: FlowPrior, config: CodecConfig, *, width: int, height: int, fps: Fraction,
                     frame_count: int | None = None, device: str | torch.device = "cpu") -> "GopCodec":
        """frame_count may be None (a pipe of unknown length): the header then says 0 = unknown. The ladder's
        levers follow ``prior``'s card (CodecConfig.for_prior_card): ``codec.config`` is what encodes."""
        check_device(prior, torch.device(device))
        config = config.for_prior_card(getattr(prior, "card", None), prior.name)
        return cls(prior, make_header(prior, config, width, height, fps, frame_count), device, config)

    def plan(self, index: int, real_frames: int) -> GopPlan:
        h = self.header
        return gop_plan(index, real_frames, h.gop_length, h.gop_overlap, self.prior.geometry)

    # -- compress ------------------------------------------------------------------------------------
    def encode(self, index: int, frames: list[np.ndarray], *, m: int | None = None, m_plus_steps: int = 0,
               progress: Callable[[int], None] | None = None) -> GopResult:
        """Encode GOP `index` from its source frames (the boundary frame shared with the previous GOP included)."""
        cfg, h = self.config, self.header
        if cfg is None:
            raise ParameterError("this GopCodec decodes only: make it with GopCodec.for_encoding to encode")
        plan = self.plan(index, len(frames))
        m = m or cfg.quality
        k, m_tail = codebook_size(m), cfg.tail_atoms(m)
        padded = frames + [frames[-1]] * (plan.length - plan.real_frames)
        ctx = _GopContext(self.prior, h, plan, self.device)
        x0 = self.prior.encode(to_tensor(padded, self.prior.geometry.spatial_stride, self.device))
        sources = {"first": frames[0], "last": padded[-1]}
        anchors = [Anchor(role, *anchor_codec.encode_anchor(sources[role], **_codec_kw(cfg.anchor_codec),
                                                            quality=cfg.anchor_quality))
                   for role in self._anchor_roles(plan)]
        unit = GopUnit(
            gop_index=plan.index, first_frame=plan.first_frame, frame_count=plan.real_frames,
            codebook_k=k, codebook_m=m, codebook_m_tail=m_tail, m_plus_steps=m_plus_steps,
            keyframe=h.mode == "t2v" or cfg.codes_first_anchor(plan.index), prompt=cfg.prompt if h.mode == "t2v" else None,
            anchors=anchors, indices=b"")
        first, last = self._references(plan, unit)
        n_sets, ms = len(ctx.sets), ctx.atoms(m, m_tail, m_plus_steps)
        chosen: list[tuple[list[int], list[bool]]] = []

        def noise(step: int, x: torch.Tensor, u: torch.Tensor, t: float) -> torch.Tensor:
            r = x0 - (x - t * u)  # what the clean-latent estimate x̂0 still misses
            picks = []
            for j in range(n_sets):
                search = self._search(k, ctx.set_dim(j))
                picks.append(search.topm(ctx.set_vec(r, j), ctx.seed, step, j, ms[step * n_sets + j]))
            chosen.extend((idx.tolist(), sgn.tolist()) for idx, sgn in picks)
            return ctx.noise_from_sets(step, picks)

        x = self._sample(ctx, first, last, unit, noise, progress)
        target = None
        if h.mode == "i2v" and cfg.residual_step is not None:
            target = (x0[:, -1] - x[:, -1]).cpu()
            unit.residual = encode_residual(target, cfg.residual_step)
        unit.indices = pack_index_sets(chosen, k, ms)
        out = self._finish(ctx, x, unit.residual, first, last)
        unit.frame_hash = frame_hash(out)
        return GopResult(unit, out, target)

    def _search(self, k: int, dim: int) -> CodebookSearch:
        if (k, dim) not in self._searches:
            self._searches[(k, dim)] = CodebookSearch(k, dim, device=self.device, family=self.header.codebook_family)
        return self._searches[(k, dim)]

    def _anchor_roles(self, plan: GopPlan) -> list[str]:
        """Anchors a GOP unit carries, of those its mode allows: the first frame in GOP 0 (and I2V refresh GOPs),
        the last in a GOP of 2+ frames."""
        return [role for role in MODE_ANCHOR_ROLES[self.header.mode]
                if (self.config.codes_first_anchor(plan.index) if role == "first" else plan.length > 1)]

    # -- decompress ----------------------------------------------------------------------------------
    def decode(self, unit: GopUnit, progress: Callable[[int], None] | None = None, *,
               residual: torch.Tensor | None = None) -> list[np.ndarray]:
        """The frames GOP `unit` outputs. `residual` replaces the unit's residual payload by a latent (studies)."""
        check_gop(unit, self.header)
        plan = self.plan(unit.gop_index, unit.frame_count)
        ctx = _GopContext(self.prior, self.header, plan, self.device)
        first, last = self._references(plan, unit)
        n_sets = len(ctx.sets)
        sets = unpack_index_sets(unit.indices, unit.codebook_k, ctx.atoms(unit.codebook_m, unit.codebook_m_tail, unit.m_plus_steps))

        def noise(step: int, x: torch.Tensor, u: torch.Tensor, t: float) -> torch.Tensor:
            picks = sets[step * n_sets:(step + 1) * n_sets]
            return ctx.noise_from_sets(step, [(torch.tensor(i), torch.tensor(g)) for i, g in picks])

        x = self._sample(ctx, first, last, unit, noise, progress)
        return self._finish(ctx, x, unit.residual if residual is None else residual, first, last)

    def skip(self, unit: GopUnit, progress: Callable[[int], None] | None = None) -> bool:
        """Pass a GOP whose frames are not wanted (a seek), keeping what the next GOP takes from it: an I2V GOP
        is decoded in full (the chain runs through its last frame); an FLF2V GOP hands on its last anchor (one
        image decode, no sampling); a T2V GOP gives nothing. Returns whether the GOP was sampled."""
        if self.header.mode == "i2v":
            self.decode(unit, progress)
            return True
        if self.header.mode == "flf2v":
            check_gop(unit, self.header)
            h = self.header
            last = next((a for a in unit.anchors if a.role == "last"), None)
            self._hand_on(unit.gop_index, None if last is None else
                          anchor_codec.decode_anchor(last.codec, last.data, size=(h.width, h.height)))
        return False

    def conceal(self, index: int) -> list[np.ndarray]:
        """Frames standing in for a damaged GOP: the frame the previous GOP handed on, repeated (grey if none)."""
        h = self.header
        plan = self.plan(index, expected_real_frames(index, h.frame_count, h.gop_length, h.gop_overlap))
        fill = self._carry.get(index - 1)
        if fill is None:
            fill = np.full((h.height, h.width, 3), 128, np.uint8)
        self._hand_on(index, fill)
        return [fill] * (plan.real_frames - plan.output_from)

    # -- both sides ----------------------------------------------------------------------------------
    def _references(self, plan: GopPlan, unit: GopUnit) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The decoded first and last reference frames a GOP is conditioned on (identical on both sides)."""
        h = self.header
        mode = h.mode
        images = {a.role: anchor_codec.decode_anchor(a.codec, a.data, size=(h.width, h.height)) for a in unit.anchors}
        first = last = None
        if mode != "t2v":
            # a GOP with its own coded first anchor (GOP 0, an I2V refresh GOP) needs nothing from the one before
            first = images.get("first")
            if first is None and plan.index > 0:
                first = self._carry.get(plan.index - 1)
            if first is None:
                raise BitstreamError(f"GOP {plan.index} has no first anchor (previous GOP missing?)")
        if mode == "flf2v" and plan.length > 1:
            last = images.get("last")
            if last is None:
                raise BitstreamError(f"GOP {plan.index} lacks its last anchor")
        return first, last

    def _sample(self, ctx: _GopContext, first, last, unit: GopUnit, noise, progress) -> torch.Tensor:
        cond = ctx.conditioning(first, last, unit.prompt or "")
        return sample(self.prior, ctx.initial_noise(), cond, ctx.sampler, noise, progress)

    def _finish(self, ctx: _GopContext, x: torch.Tensor, residual: bytes | torch.Tensor | None, first, last) -> list[np.ndarray]:
        """Add the tail residual, decode the latents to output frames and hand the chain frame on."""
        if residual is not None:
            x = _apply_residual(x, decode_residual(residual) if isinstance(residual, bytes) else residual)
        out = ctx.decode_frames(x, first, last)
        self._hand_on(ctx.plan.index, out[-1] if self.header.mode == "i2v" else last)
        return out

    def _hand_on(self, index: int, frame: np.ndarray | None) -> None:
        self._carry = {i: f for i, f in self._carry.items() if i == index - 1}
        self._carry[index] = frame


def _codec_kw(codec) -> dict:
    return {} if codec is None else {"codec": codec}


def _apply_residual(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    r = r.to(x.device)
    if r.shape != x[:, -1].shape:
        raise BitstreamError(f"residual shape {tuple(r.shape)} does not match the latent frame {tuple(x[:, -1].shape)}")
    x = x.clone()
    x[:, -1] += r
    return x
