"""Whole-sequence encode and decode, the library API the CLIs and the tools call.

    report = encode_stream(source, "out.mkv", CodecConfig(mode="i2v", quality=8), on_gop=print)
    report = decode_stream("out.mkv", lambda header: writer, DecodeConfig(), on_gop=print)

The pipeline only reads frames, carries the boundary frame between GOPs, rate-controls and writes; the
GOP codec (gvc.codec.GopCodec) does the coding. Each finished GOP is reported to ``on_gop`` as a
:class:`GopRecord`. Memory stays bounded to one GOP in flight: frames are read GOP by GOP and written as
soon as they are coded.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from container.bitstream import MAX_FRAMES, GopUnit, SequenceHeader, frame_hash
from container.io import StreamReader, StreamWriter
from ._version import __version__
from .codec import GopCodec, GopResult
from .config import CodecConfig, DecodeConfig
from .errors import BitstreamError, ParameterError
from .limits import check_work
from .metrics import psnr
from .priors import load_prior
from .ratecontrol import choose, settings
from .seek import OUTPUT, REFERENCE, STOP, RangeSelector, SeekRequest

CONTAINER_OVERHEAD_PER_GOP = 40  # Matroska block, cluster and cue bytes per GOP (estimate for rate control)


class Problem(enum.Enum):
    """What can go wrong in a stream while decoding it."""

    CORRUPT_UNIT = "corrupt unit"  # framing or CRC damaged: the unit is skipped
    MISSING = "missing"  # a GOP is absent: concealed
    UNDECODABLE = "undecodable"  # a GOP unit parsed but cannot be decoded: concealed
    OUT_OF_ORDER = "out of order"  # a GOP came after a later one: skipped
    LIMIT = "limit"  # the output reached the header's frame count or the frame limit: decoding stopped
    HASH_MISMATCH = "hash mismatch"  # decoded frames differ from the encoder's (another platform): a warning


@dataclass(frozen=True)
class DecodeEvent:
    problem: Problem
    gop: int | None  # None: a corrupt unit whose GOP is unknown
    message: str

    @property
    def is_damage(self) -> bool:
        """Damage loses pictures (concealed or skipped); a hash mismatch is a platform difference."""
        return self.problem is not Problem.HASH_MISMATCH

    def __str__(self) -> str:
        return self.message


@dataclass
class GopRecord:
    """One GOP as coded or decoded: what ``on_gop`` receives and the stats JSON lists."""

    gop: int
    first_frame: int  # first output frame of the GOP in the sequence
    frames: int  # output frames
    bytes: int  # as written (container framing included) when encoding; the unit's bytes when decoding
    index_bytes: int = 0
    anchor_bytes: int = 0
    residual_bytes: int = 0
    m: int = 0
    k: int = 0
    m_tail: int = 0
    m_plus_steps: int = 0
    psnr: float | None = None  # mean over the GOP's output frames, when the source is known (encoding)
    damage: DecodeEvent | None = None  # decoding: why this GOP was concealed
    matches_encoder: bool | None = None  # decoding with verification: frame hash equal to the encoder's
    residual_target: torch.Tensor | None = field(default=None, repr=False)  # encoding: the unquantised I2V residual

    @property
    def framing_bytes(self) -> int:
        """Bytes other than the payloads: GOP unit fields, unit framing and container framing."""
        return self.bytes - self.index_bytes - self.anchor_bytes - self.residual_bytes

    @classmethod
    def of_unit(cls, unit: GopUnit, first_frame: int, frames: int, nbytes: int, **kw) -> "GopRecord":
        return cls(gop=unit.gop_index, first_frame=first_frame, frames=frames, bytes=nbytes,
                   index_bytes=len(unit.indices), anchor_bytes=sum(len(a.data) for a in unit.anchors),
                   residual_bytes=len(unit.residual or b""), m=unit.codebook_m, k=unit.codebook_k,
                   m_tail=unit.codebook_m_tail, m_plus_steps=unit.m_plus_steps, **kw)

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("residual_target", "damage")}
        d["framing_bytes"] = self.framing_bytes
        if self.damage is not None:
            d["damage"] = {"problem": self.damage.problem.value, "message": self.damage.message}
        return d


@dataclass
class EncodeReport:
    header: SequenceHeader
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    psnr_sum: float = 0.0  # PSNR is the mean of per-frame PSNRs (RGB, 8 bit)
    track_bytes: int = 0  # audio/subtitle tracks copied beside the video (not counted in bytes, bpp, kbps)
    gops: list[GopRecord] = field(default_factory=list)
    rate_control: bool = False  # M and K chosen per GOP for --target-kbps (the header's M is only the first guess)
    levers: dict = field(default_factory=dict)  # what the quality ladder (or explicit settings) chose: CodecConfig.levers

    def as_dict(self, path_bytes: int | None = None) -> dict:
        h = self.header
        total = path_bytes - self.track_bytes if path_bytes is not None else self.bytes
        bits = 8 * total
        pixels = h.width * h.height * max(self.frames, 1)
        seconds_of_video = self.frames / float(h.fps) if self.frames else 0.0
        return {
            "mode": h.mode, "prior": h.prior_id, "rate_control": self.rate_control,
            # with rate control M and K differ per GOP: "quality" is then the mean M, the GOPs list each one
            "quality": h.codebook_m if not self.rate_control else None,
            "m_mean": sum(g.m for g in self.gops) / len(self.gops) if self.gops else float(h.codebook_m),
            "m_per_gop": [g.m for g in self.gops], "k_per_gop": [g.k for g in self.gops], "bytes": total, "bits": bits,
            "frames": self.frames, "width": h.width, "height": h.height, "fps": float(h.fps),
            "bpp": bits / pixels, "kbps": bits / seconds_of_video / 1000 if seconds_of_video else 0.0,
            "track_bytes": self.track_bytes, "encode_seconds": round(self.seconds, 3),
            "psnr": self.psnr_sum / max(self.frames, 1), "levers": self.levers,
            "gops": [g.as_dict() for g in self.gops],
        }


@dataclass
class DecodeReport:
    header: SequenceHeader
    frames: int = 0
    gops: int = 0
    events: list[DecodeEvent] = field(default_factory=list)
    sampled: list[int] = field(default_factory=list)  # GOPs whose sampler ran: output, and (a seek) I2V references

    @property
    def damage(self) -> list[DecodeEvent]:
        return [e for e in self.events if e.is_damage]

    def as_dict(self) -> dict:
        return {"frames": self.frames, "gops": self.gops, "problems": [str(e) for e in self.events], "header": self.header,
                "sampled": self.sampled}


OnGop = Callable[[GopRecord], None]
OnStep = Callable[[int], None]


def _read(frames: Iterator[np.ndarray], n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        f = next(frames, None)
        if f is None:
            break
        out.append(f)
    return out


def encode_stream(source, out, config: CodecConfig, *, on_gop: OnGop | None = None, on_step: OnStep | None = None,
                  recon=None, fmt: str | None = None, tags: str = "lean", tracks=None) -> EncodeReport:
    """Encode the frames of `source` (an object with ``info`` (width, height, fps, frames or None) that iterates
    uint8 RGB frames, e.g. a ffmpeg_bridge VideoReader) into `out` (.mkv, .gvc, '-' or a
    binary file). `recon` (write(frame)) receives the reconstruction, `on_step` every sampler step; ``tags="full"``
    writes the encoder and its settings as Matroska tags (see container.io.TAG_LEVELS); `tracks` (e.g. an
    ffmpeg_bridge.tracks.TrackCopier of the input) are copied into a Matroska output beside the video
    (container.io.StreamWriter)."""
    info = source.info
    prior = load_prior(config.prior, device=config.device, dtype=config.dtype, vae_dtype=config.vae_dtype)
    codec = GopCodec.for_encoding(prior, config, width=info.width, height=info.height, fps=info.fps,
                                  frame_count=info.frames, device=config.device)
    h = codec.header
    tag_values = {"ENCODER": f"GVC {__version__}", "ENCODER_SETTINGS": settings_string(codec.config, codec.prior.name)}
    report = EncodeReport(h, rate_control=bool(config.target_kbps), levers=codec.config.levers())
    frames_in = iter(source)
    carry: list[np.ndarray] = []
    t0 = time.perf_counter()
    with StreamWriter(out, h, tags=tag_values, fmt=fmt, tag_level=tags, tracks=tracks) as writer:
        rc = _RateController(codec, config.target_kbps, writer.bytes_written) if config.target_kbps else None
        index = 0
        while True:
            new = _read(frames_in, h.gop_length - len(carry))
            if not new:
                break
            frames = carry + new
            res = rc.encode(index, frames, on_step) if rc else codec.encode(index, frames, progress=on_step)
            plan = codec.plan(index, len(frames))
            nbytes = writer.write(res.unit, plan.first_frame + plan.output_from, len(res.frames))
            frame_psnrs = [psnr(a, b) for a, b in zip(frames[plan.output_from:], res.frames)]
            if recon is not None:
                for f in res.frames:
                    recon.write(f)
            record = GopRecord.of_unit(res.unit, report.frames, len(res.frames), nbytes,
                                       psnr=sum(frame_psnrs) / len(frame_psnrs), residual_target=res.residual_target)
            report.frames += len(res.frames)
            report.bytes += nbytes
            report.psnr_sum += sum(frame_psnrs)
            report.gops.append(record)
            if on_gop is not None:
                on_gop(record)
            if rc:
                rc.spent(writer.bytes_written, len(res.frames))
            carry = frames[-h.gop_overlap:] if h.gop_overlap else []
            index += 1
            if len(frames) < h.gop_length:
                break
    report.track_bytes = writer.track_bytes
    report.seconds = time.perf_counter() - t0
    report.bytes += len(h.to_bytes())
    if report.frames == 0:
        raise ParameterError("no frames to encode")
    return report


def settings_string(c: CodecConfig, prior: str) -> str:
    """The settings a second encode needs to repeat this one (Matroska ENCODER_SETTINGS tag)."""
    quality = f"quality={c.quality} m_tail={c.m_tail}" if not c.target_kbps else "quality=rate-control m_tail=rate-control"
    s = (f"mode={c.mode} {quality} prior={prior} steps={c.steps} ode_tail={c.ode_tail} "
         f"gamma={c.gamma} shift={c.shift} gop={c.gop_length} seed={c.seed} residual_step={c.residual_step} "
         f"anchor_codec={c.anchor_codec if c.anchor_codec is not None else 'default'} anchor_quality={c.anchor_quality}")
    return s + (f" target_kbps={c.target_kbps}" if c.target_kbps else "")


class _RateController:
    """Tracks the cumulative budget at the input's real frame rate and picks the knob per GOP."""

    def __init__(self, codec: GopCodec, target_kbps: float, bytes_written: int):
        self.codec = codec
        self.bits_per_frame = target_kbps * 1000.0 / float(codec.header.fps)
        self.spent_bits = 8 * bytes_written
        self.frames_done = 0
        self.other_bits_per_frame: float | None = None  # residual + unit + container bytes, per output frame
        self.anchor_bits: float | None = None  # per anchor image
        self._options: dict = {}

    def _options_for(self, latent_frames: int):
        if latent_frames not in self._options:
            cfg, h = self.codec.config, self.codec.header
            self._options[latent_frames] = settings(h.steps - h.ode_tail, latent_frames, h.tail_latent_frames,
                                                     cfg.tail_atoms, h.codebook_span)
        return self._options[latent_frames]

    def _anchors_in(self, index: int) -> int:
        return {"t2v": 0, "i2v": int(index == 0), "flf2v": 1 + int(index == 0)}[self.codec.header.mode]

    def encode(self, index: int, frames, progress) -> GopResult:
        plan = self.codec.plan(index, len(frames))
        out_frames = plan.real_frames - plan.output_from
        budget = self.bits_per_frame * (self.frames_done + out_frames) - self.spent_bits
        options = self._options_for(self.codec.prior.geometry.latent_frames(plan.length))
        anchors = self._anchors_in(index) * (self.anchor_bits or 0.0)
        other = anchors + (self.other_bits_per_frame or 8.0 * CONTAINER_OVERHEAD_PER_GOP / out_frames) * out_frames
        knob = choose(budget, other, options)
        res = self.codec.encode(index, frames, m=knob.m, m_plus_steps=knob.m_plus_steps, progress=progress)
        if self.other_bits_per_frame is None and abs(self._bits(res) - budget) > 0.03 * budget:
            # First GOP: anchor and residual sizes were a guess; encode again with the measured ones.
            knob = choose(budget, self._bits(res) - 8 * len(res.unit.indices), options)
            res = self.codec.encode(index, frames, m=knob.m, m_plus_steps=knob.m_plus_steps, progress=progress)
        anchor_bits = 8 * sum(len(a.data) for a in res.unit.anchors)
        if res.unit.anchors:
            self.anchor_bits = anchor_bits / len(res.unit.anchors)
        self.other_bits_per_frame = (self._bits(res) - 8 * len(res.unit.indices) - anchor_bits) / out_frames
        return res

    @staticmethod
    def _bits(res: GopResult) -> int:
        return 8 * (len(res.unit.to_bytes()) + CONTAINER_OVERHEAD_PER_GOP)

    def spent(self, bytes_written: int, frames: int) -> None:
        self.spent_bits = 8 * bytes_written
        self.frames_done += frames


def decode_stream(source, writer_factory, config: DecodeConfig | None = None, *, on_gop: OnGop | None = None,
                  on_step: OnStep | None = None, seek: SeekRequest | None = None) -> DecodeReport:
    """Decode a stream (.mkv/.gvc path, '-' or a binary file); ``writer_factory(header)`` returns an object with
    write(frame) and close(). Damaged GOPs are concealed (the previous GOP's hand-on frame repeated) and reported
    as typed :class:`DecodeEvent` s; the others decode normally. ``seek``: only a range of frames, read from the
    keyframe it needs (Matroska Cues, .gvc unit index) and decoded from there (gvc.seek)."""
    config = config or DecodeConfig()
    with StreamReader(source) as reader:
        h = reader.header
        select = RangeSelector(h, *(seek or SeekRequest()).frame_range(h))
        check_work(h, max_pixels=config.max_pixels, max_frames=config.max_frames)  # before any allocation
        codec = GopCodec(load_prior(config.prior, device=config.device, header=h, dtype=config.dtype), h, device=config.device)
        decoder = SequenceDecoder(codec, writer_factory(h), config.verify, on_gop, on_step,
                                  config.max_frames or MAX_FRAMES, select)
        try:
            decoder.run(reader.units(*select.entry()))
        finally:
            decoder.writer.close()
        return decoder.report


class SequenceDecoder:
    """Puts GOP units in sequence: conceals missing and damaged ones, skips stragglers, writes frames; the one
    decoding loop of `gvc decode` and of libgvc (gvc.capi), which feeds it unit by unit (push, finish).

    With a :class:`RangeSelector` (a seek) it outputs only frames [start, end): a GOP before the range is
    skipped, or decoded only for what the next GOP takes from it (gvc.seek), and the first unit read sets
    the sequence. Output is bounded: never more frames than the header declares per sequence (a GOP 0 after
    a complete one starts the next of concatenated streams sharing the header, when decoding them whole), nor
    ``max_frames``; in a live stream (frame count 0) a gap is concealed only as far as the units present
    account for it (each unit read, damaged or not, stands for at most one GOP), so a stray GOP index of
    2^20 cannot make it write without end."""

    def __init__(self, codec: GopCodec, writer, verify: bool, on_gop: OnGop | None, on_step: OnStep | None,
                 max_frames: int = MAX_FRAMES, select: RangeSelector | None = None):
        self.codec, self.writer, self.verify, self.on_gop, self.on_step = codec, writer, verify, on_gop, on_step
        self.select = select or RangeSelector(codec.header)
        self.report = DecodeReport(codec.header)
        self.expected = 0 if self.select.entry()[0] is None else None  # the next GOP index; None: the first unit's
        self.units_seen = 0
        self.max_frames = max_frames
        self.sequence_start = 0  # output frame where the current sequence began (streams concatenated)
        self.full = False  # the frame limit is reached: later units only report damage
        self.done = False  # a unit past the range was read

    def run(self, units: Iterable[GopUnit | BitstreamError]) -> None:
        for unit in units:
            self.push(unit)
            if self.done:
                break
        self.finish()

    def push(self, unit: GopUnit | BitstreamError, reference: bool = False) -> None:
        """One unit in stream order; `reference`: decode only what the next GOP needs, output nothing."""
        h = self.codec.header
        self.units_seen += 1
        if isinstance(unit, BitstreamError):
            where = "before GOP 0" if not self.expected else f"after GOP {self.expected - 1}"
            self._event(Problem.CORRUPT_UNIT, None, f"damaged unit {where}: {unit}")
            return
        if self.full or self.done:
            return
        role = REFERENCE if reference else self.select.role(unit.gop_index)
        if role == STOP:
            self.done = True
            return
        if self.expected is None:
            self.expected = unit.gop_index
        if self._sequence_room() == 0:  # all the frames the header (or the range) declares are out
            if unit.gop_index != 0 or not self.select.whole:
                return  # beyond the header's frame count: ignored
            self.expected, self.sequence_start = 0, self.report.frames  # the next of concatenated streams
        gap = unit.gop_index - self.expected
        if not h.frame_count and gap > self.units_seen - 1 - self.report.gops:
            self._event(Problem.OUT_OF_ORDER, unit.gop_index,
                        f"GOP {unit.gop_index} after GOP {self.expected - 1} in a live stream: {gap} GOPs missing "
                        f"but only {self.units_seen - 1 - self.report.gops} damaged units between: skipped")
            return
        while self.expected < unit.gop_index and not self.full:
            self._conceal(self._event(Problem.MISSING, self.expected, f"GOP {self.expected} missing: concealed"))
        if unit.gop_index < self.expected:
            self._event(Problem.OUT_OF_ORDER, unit.gop_index, f"GOP {unit.gop_index} out of order: skipped")
            return
        if role == OUTPUT:
            self._decode(unit)
            return
        try:
            if role == REFERENCE and self.codec.skip(unit, progress=self.on_step):
                self.report.sampled.append(unit.gop_index)
        except BitstreamError as e:
            self._conceal(self._event(Problem.UNDECODABLE, unit.gop_index, f"GOP {unit.gop_index}: {e}; concealed"))
            return
        self.expected = unit.gop_index + 1

    def restart(self) -> None:
        """Forget the position in the sequence (the caller seeked): the next unit read sets it."""
        self.expected, self.full, self.done = None, False, False

    def finish(self) -> None:
        """End of the units: conceal the GOPs missing at the end (of the range, when the header knows the count)."""
        if self.expected is None:
            self.expected = self.select.first_gop
        while not self.full and self._sequence_room():
            n = self.expected
            if not self._conceal(self._event(Problem.MISSING, n, f"GOP {n} missing at end of stream: concealed")):
                break

    def _sequence_room(self) -> int | None:
        """Frames the current sequence (or the range of it) may still output (None: its header declares no
        frame count). At 0 a GOP 0 starts the next of concatenated streams that share the header."""
        n = self.select.frame_count()
        return n - (self.report.frames - self.sequence_start) if n is not None else None

    def _event(self, problem: Problem, gop: int | None, message: str) -> DecodeEvent:
        event = DecodeEvent(problem, gop, message)
        self.report.events.append(event)
        return event

    def _decode(self, unit: GopUnit) -> None:
        try:
            out = self.codec.decode(unit, progress=self.on_step)
        except BitstreamError as e:
            self._conceal(self._event(Problem.UNDECODABLE, unit.gop_index, f"GOP {unit.gop_index}: {e}; concealed"))
            return
        self.report.sampled.append(unit.gop_index)
        matches = None
        if self.verify:
            matches = frame_hash(out) == unit.frame_hash
            if not matches:
                self._event(Problem.HASH_MISMATCH, unit.gop_index, f"GOP {unit.gop_index}: decoded frames differ "
                                                                   "from the encoder's (frame hash mismatch)")
        self._write(GopRecord.of_unit(unit, 0, 0, len(unit.to_bytes()), matches_encoder=matches), out)

    def _conceal(self, event: DecodeEvent) -> int:
        return self._write(GopRecord(event.gop, 0, 0, 0, damage=event), self.codec.conceal(event.gop))

    def _write(self, record: GopRecord, frames: list[np.ndarray]) -> int:
        """Write the part of a GOP's output frames inside the range and the limits; returns how many."""
        pts, frames = self.select.trim(record.gop, frames)
        record.first_frame, record.frames = self.sequence_start + pts, len(frames)
        room = self.max_frames - self.report.frames
        full = len(frames) >= room  # the frame limit: decoding stops
        sequence_room = self._sequence_room()
        room = room if sequence_room is None else min(room, sequence_room)
        if len(frames) > room:
            frames = frames[:room]
            record.frames = room
            self._event(Problem.LIMIT, record.gop, f"GOP {record.gop}: output stopped at {self.report.frames + room} "
                                                   "frames (the header's frame count or --max-frames)")
        for f in frames:
            self.writer.write(f)
        self.report.frames += len(frames)
        self.expected = record.gop + 1
        if frames:
            self.report.gops += 1
            if self.on_gop is not None:
                self.on_gop(record)
        self.full = self.full or full
        return len(frames)


__all__ = ["DecodeEvent", "DecodeReport", "EncodeReport", "GopRecord", "Problem", "SequenceDecoder", "decode_stream",
           "encode_stream", "settings_string"]
