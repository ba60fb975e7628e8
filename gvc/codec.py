"""Encoder and decoder of GVC streams: T2V, I2V and FLF2V on any flow prior (docs/method.md §3).

The encoder turns source frames into a :class:`SequenceHeader` and one :class:`GopUnit` per GOP, and
keeps the reconstruction it implies; the decoder replays the same sampler with the recorded noise and
must output the encoder's reconstruction bit for bit on the same machine and device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from container.bitstream import Anchor, GopUnit, SequenceHeader, check_gop, frame_hash
from . import anchors as anchor_codec
from .codebook import CodebookSearch, atoms, combine
from .config import CodecConfig, codebook_size
from .entropy.combinatorial import pack_index_sets, unpack_index_sets
from .entropy.residual import decode_residual, encode_residual
from .errors import BitstreamError, ParameterError, PriorMismatchError
from .gop import GopPlan, gop_plan
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


def codebook_sets(latent_frames: int, span: int) -> list[tuple[int, int]]:
    """Latent-frame ranges [a, b) of the codebook sets of a GOP: `span` frames each (0 = one set for all)."""
    span = latent_frames if span == 0 else min(span, latent_frames)
    return [(a, min(a + span, latent_frames)) for a in range(0, latent_frames, span)]


def atoms_per_set(header_m: int, m_tail: int, tail_frames: int, m_plus_steps: int, sde_steps: int,
                  sets: list[tuple[int, int]]) -> list[int]:
    """M for every (SDE step, codebook set), step-major: a set holding any of the last `tail_frames` latent
    frames gets M_tail, and the first `m_plus_steps` steps one atom more (the fine part of the rate knob)."""
    latent_frames = sets[-1][1]
    ms = []
    for i in range(sde_steps):
        extra = 1 if i < m_plus_steps else 0
        for a, b in sets:
            ms.append((m_tail if b > latent_frames - tail_frames else header_m) + extra)
    return ms


@dataclass
class GopResult:
    unit: GopUnit
    frames: list[np.ndarray]  # output frames of this GOP (uint8 RGB, original size)
    stats: dict = field(default_factory=dict)


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
        self.sampler = SamplerConfig(header.steps, header.ode_tail, header.gamma, header.shift)

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
        codebook_m_tail=config.m_tail, tail_latent_frames=config.tail_latent_frames if config.mode == "i2v" else 0,
        codebook_span=config.codebook_span if config.codebook_span is not None else getattr(prior, "codebook_span", 1),
        compute_dtype=getattr(prior, "compute_dtype", "fp32"), codebook_family=config.codebook_family,
    ).validate()


def check_device(prior: FlowPrior, device: torch.device) -> None:
    """The prior must live where the codec runs (a raw torch device-mismatch error otherwise)."""
    where = getattr(prior, "device", None)
    if where is not None and torch.device(where).type != device.type:
        raise ParameterError(f"prior {prior.name} is on {torch.device(where).type}, the codec runs on {device.type}: "
                             f"load it with device={device.type!r}")


def check_supported(header: SequenceHeader, prior: FlowPrior) -> None:
    """The decoder replays the encoder's arithmetic: the prior must compute in the dtype the stream records
    (gvc.priors.load_prior loads it so from the header)."""
    have = getattr(prior, "compute_dtype", "fp32")
    if have != header.compute_dtype:
        raise PriorMismatchError(f"stream was encoded with {header.compute_dtype} transformer arithmetic, the prior "
                                 f"computes in {have}: load it with dtype={header.compute_dtype!r}")


def check_prior(prior: FlowPrior, header: SequenceHeader) -> None:
    g = prior.geometry
    if prior.weights_sha256() != header.prior_sha256:
        raise PriorMismatchError(
            f"stream was encoded with prior '{header.prior_id}' ({header.prior_sha256.hex()[:12]}…), "
            f"the decoder has '{prior.name}' ({prior.weights_sha256().hex()[:12]}…)")
    if (g.channels, g.spatial_stride, g.temporal_stride) != (header.latent_channels, header.spatial_stride, header.temporal_stride):
        raise PriorMismatchError("prior latent geometry differs from the stream's")


class Encoder:
    def __init__(self, prior: FlowPrior, config: CodecConfig, *, width: int, height: int, fps: Fraction,
                 frame_count: int | None = None, device: str | torch.device = "cpu"):
        """frame_count may be None (a pipe of unknown length): the header then says 0 = unknown."""
        self.prior, self.config, self.device = prior, config, torch.device(device)
        check_device(prior, self.device)
        self.header = make_header(prior, config, width, height, fps, frame_count)
        self._last_output: np.ndarray | None = None  # I2V chaining / FLF2V boundary anchor
        self._searches: dict[tuple[int, int], CodebookSearch] = {}

    def plan(self, index: int, real_frames: int) -> GopPlan:
        return gop_plan(index, real_frames, self.header.gop_length, self.header.gop_overlap, self.prior.geometry)

    def encode_gop(self, index: int, frames: list[np.ndarray], *, m: int | None = None, m_plus_steps: int = 0,
                   residual_step: float | None | str = "config", progress: Callable[[int], None] | None = None) -> GopResult:
        """Encode GOP `index` from its source frames (the boundary frame shared with the previous GOP included)."""
        cfg, h = self.config, self.header
        plan = self.plan(index, len(frames))
        m = m or cfg.quality
        k = codebook_size(m)
        m_tail = cfg.tail_atoms(m)
        if residual_step == "config":
            residual_step = cfg.residual_step
        padded = frames + [frames[-1]] * (plan.length - plan.real_frames)
        ctx = _GopContext(self.prior, h, plan, self.device)
        x0 = self.prior.encode(to_tensor(padded, self.prior.geometry.spatial_stride, self.device))

        anchors, first, last = [], None, None
        quality = cfg.anchor_quality
        codec = cfg.anchor_codec
        if cfg.mode != "t2v":
            if plan.index == 0:
                cid, data = anchor_codec.encode_anchor(frames[0], **_codec_kw(codec), quality=quality)
                anchors.append(Anchor("first", cid, data))
                first = anchor_codec.decode_anchor(cid, data)
            else:
                first = self._last_output
        if cfg.mode == "flf2v" and plan.length > 1:
            cid, data = anchor_codec.encode_anchor(padded[-1], **_codec_kw(codec), quality=quality)
            anchors.append(Anchor("last", cid, data))
            last = anchor_codec.decode_anchor(cid, data)
        cond = ctx.conditioning(first, last, cfg.prompt)

        n_sets = len(ctx.sets)
        tail = h.tail_latent_frames if cfg.mode == "i2v" else 0
        ms = atoms_per_set(m, m_tail, tail, m_plus_steps, ctx.sampler.sde_steps, ctx.sets)
        chosen: list[tuple[list[int], list[bool]]] = []

        def noise(step: int, x: torch.Tensor, u: torch.Tensor, t: float) -> torch.Tensor:
            r = x0 - (x - t * u)  # what the clean-latent estimate x̂0 still misses
            picks = []
            for j in range(n_sets):
                search = self._search(k, ctx.set_dim(j))
                picks.append(search.topm(ctx.set_vec(r, j), ctx.seed, step, j, ms[step * n_sets + j]))
            chosen.extend((idx.tolist(), sgn.tolist()) for idx, sgn in picks)
            return ctx.noise_from_sets(step, picks)

        x = sample(self.prior, ctx.initial_noise(), cond, ctx.sampler, noise, progress)
        residual = None
        if cfg.mode == "i2v" and residual_step is not None:
            residual = encode_residual((x0[:, -1] - x[:, -1]).cpu(), residual_step)
            x = _apply_residual(x, residual)
        out = ctx.decode_frames(x, first, last)
        self._last_output = out[-1] if cfg.mode == "i2v" else last
        unit = GopUnit(
            gop_index=plan.index, first_frame=plan.first_frame, frame_count=plan.real_frames,
            codebook_k=k, codebook_m=m, codebook_m_tail=m_tail, m_plus_steps=m_plus_steps,
            keyframe=cfg.mode == "t2v" or plan.index == 0, prompt=cfg.prompt if cfg.mode == "t2v" else None,
            anchors=anchors, indices=pack_index_sets(chosen, k, ms), residual=residual, frame_hash=frame_hash(out),
        )
        stats = {"gop": plan.index, "frames": len(out), "bytes": len(unit.to_bytes()),
                 "index_bytes": len(unit.indices), "anchor_bytes": sum(len(a.data) for a in anchors),
                 "residual_bytes": len(residual or b""), "m": m, "k": k, "m_tail": m_tail}
        return GopResult(unit, out, stats)

    def _search(self, k: int, dim: int) -> CodebookSearch:
        if (k, dim) not in self._searches:
            self._searches[(k, dim)] = CodebookSearch(k, dim, device=self.device, family=self.header.codebook_family)
        return self._searches[(k, dim)]


def _codec_kw(codec) -> dict:
    return {} if codec is None else {"codec": codec}


def _apply_residual(x: torch.Tensor, payload: bytes) -> torch.Tensor:
    r = decode_residual(payload).to(x.device)
    if r.shape != x[:, -1].shape:
        raise BitstreamError(f"residual shape {tuple(r.shape)} does not match the latent frame {tuple(x[:, -1].shape)}")
    x = x.clone()
    x[:, -1] += r
    return x


class Decoder:
    def __init__(self, prior: FlowPrior, header: SequenceHeader, device: str | torch.device = "cpu"):
        check_supported(header, prior)
        check_prior(prior, header)
        self.prior, self.header, self.device = prior, header, torch.device(device)
        check_device(prior, self.device)
        self._last_output: np.ndarray | None = None

    def plan(self, index: int, real_frames: int) -> GopPlan:
        return gop_plan(index, real_frames, self.header.gop_length, self.header.gop_overlap, self.prior.geometry)

    def decode_gop(self, unit: GopUnit, progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        h = self.header
        check_gop(unit, h)
        plan = self.plan(unit.gop_index, unit.frame_count)
        ctx = _GopContext(self.prior, h, plan, self.device)
        anchors = {a.role: anchor_codec.decode_anchor(a.codec, a.data, size=(h.width, h.height)) for a in unit.anchors}
        first = last = None
        if h.mode != "t2v":
            first = anchors.get("first") if plan.index == 0 else self._last_output
            if first is None:
                raise BitstreamError(f"GOP {plan.index} has no first anchor (previous GOP missing?)")
        if h.mode == "flf2v" and plan.length > 1:
            last = anchors.get("last")
            if last is None:
                raise BitstreamError(f"GOP {plan.index} lacks its last anchor")
        cond = ctx.conditioning(first, last, unit.prompt or "")
        n_sets = len(ctx.sets)
        ms = atoms_per_set(unit.codebook_m, unit.codebook_m_tail, h.tail_latent_frames, unit.m_plus_steps,
                           ctx.sampler.sde_steps, ctx.sets)
        sets = unpack_index_sets(unit.indices, unit.codebook_k, ms)

        def noise(step: int, x: torch.Tensor, u: torch.Tensor, t: float) -> torch.Tensor:
            picks = sets[step * n_sets:(step + 1) * n_sets]
            return ctx.noise_from_sets(step, [(torch.tensor(i), torch.tensor(g)) for i, g in picks])

        x = sample(self.prior, ctx.initial_noise(), cond, ctx.sampler, noise, progress)
        if unit.residual is not None:
            x = _apply_residual(x, unit.residual)
        out = ctx.decode_frames(x, first, last)
        self._last_output = out[-1] if h.mode == "i2v" else last
        return out

    def conceal_gop(self, gop_index: int) -> list[np.ndarray]:
        """Frames standing in for a damaged GOP: the last good frame repeated (grey if none)."""
        h = self.header
        step = h.gop_length - h.gop_overlap
        real = h.gop_length if not h.frame_count else max(1, min(h.gop_length, h.frame_count - gop_index * step))
        plan = self.plan(gop_index, real)
        fill = self._last_output if self._last_output is not None else np.full((self.header.height, self.header.width, 3), 128, np.uint8)
        self._last_output = fill
        return [fill] * (plan.real_frames - plan.output_from)
