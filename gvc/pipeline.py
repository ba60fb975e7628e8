"""Whole-sequence encode and decode: frames in, stream out, and back; what the CLIs call.

Memory stays bounded to one GOP in flight: frames are read GOP by GOP and written as soon as they
are decoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

from container.bitstream import GopUnit, SequenceHeader, frame_hash
from container.io import StreamReader, StreamWriter
from .metrics import psnr
from . import __version__
from .codec import Decoder, Encoder, GopResult
from .config import CodecConfig
from .errors import BitstreamError, ParameterError
from .progress import Progress
from .priors import load_prior
from .ratecontrol import choose, settings

CONTAINER_OVERHEAD_PER_GOP = 40  # Matroska block, cluster and cue bytes per GOP (estimate for rate control)


@dataclass
class EncodeReport:
    header: SequenceHeader
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    psnr_sum: float = 0.0  # PSNR is the mean of per-frame PSNRs (RGB, 8 bit)
    gops: list[dict] = field(default_factory=list)

    def as_dict(self, path_bytes: int | None = None) -> dict:
        h = self.header
        total = path_bytes if path_bytes is not None else self.bytes
        bits = 8 * total
        pixels = h.width * h.height * max(self.frames, 1)
        seconds_of_video = self.frames / float(h.fps) if self.frames else 0.0
        return {
            "mode": h.mode, "prior": h.prior_id, "quality": h.codebook_m, "bytes": total, "bits": bits,
            "frames": self.frames, "width": h.width, "height": h.height, "fps": float(h.fps),
            "bpp": bits / pixels, "kbps": bits / seconds_of_video / 1000 if seconds_of_video else 0.0,
            "encode_seconds": round(self.seconds, 3),
            "psnr": self.psnr_sum / max(self.frames, 1),
            "gops": self.gops,
        }


def _read(reader_iter: Iterator[np.ndarray], n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        f = next(reader_iter, None)
        if f is None:
            break
        out.append(f)
    return out


def encode_stream(reader, out_path, config: CodecConfig, *, prior="default", device="cpu", max_frames=None,
                  target_kbps: float | None = None, recon_writer=None, quiet=False, fmt=None, tags="lean",
                  dtype: str | None = None) -> EncodeReport:
    """Encode frames from a VideoReader (ffmpeg_bridge.video_io) into out_path (.mkv or .gvc or '-');
    ``tags="full"`` writes the encoder and its settings as Matroska tags (see container.io.TAG_LEVELS).
    ``dtype``: the Wan transformer's arithmetic (gvc.dtypes; 'auto' = bf16 on CUDA), recorded in the header."""
    info = reader.info
    total = info.frames
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    prior_obj = load_prior(prior, device=device, dtype=dtype)
    enc = Encoder(prior_obj, config, width=info.width, height=info.height, fps=info.fps, frame_count=total, device=device)
    h = enc.header
    tag_values = {"ENCODER": f"GVC {__version__}", "ENCODER_SETTINGS": _settings_string(config, prior_obj.name, target_kbps)}
    report = EncodeReport(h)
    frames_left = max_frames
    src = iter(reader)
    step = h.gop_length - h.gop_overlap
    carry: list[np.ndarray] = []
    t0 = time.perf_counter()
    est_gops = -(-max(total - h.gop_overlap, 1) // step) if total else None
    bar = Progress(total=est_gops * h.steps if est_gops else None, desc="encode", unit="step", quiet=quiet)
    rc = _RateController(enc, target_kbps) if target_kbps else None
    with StreamWriter(out_path, h, tags=tag_values, fmt=fmt, tag_level=tags) as writer:
        if rc:
            rc.spent_bits = 8 * writer.bytes_written
        index = 0
        while True:
            want = h.gop_length - len(carry)
            if frames_left is not None:
                want = min(want, frames_left)
            new = _read(src, want)
            if frames_left is not None:
                frames_left -= len(new)
            if not new:
                break
            frames = carry + new
            res = rc.encode(index, frames, bar.update) if rc else enc.encode_gop(index, frames, progress=bar.update)
            plan = enc.plan(index, len(frames))
            nbytes = writer.write(res.unit, plan.first_frame + plan.output_from, len(res.frames))
            src_out = frames[plan.output_from:]
            frame_psnrs = [psnr(a, b) for a, b in zip(src_out, res.frames)]
            report.psnr_sum += sum(frame_psnrs)
            if recon_writer is not None:
                for f in res.frames:
                    recon_writer.write(f)
            report.frames += len(res.frames)
            report.bytes += nbytes
            res.stats["bytes"] = nbytes
            res.stats["psnr"] = sum(frame_psnrs) / len(frame_psnrs)
            report.gops.append(res.stats)
            if rc:
                rc.spent(writer.bytes_written, len(res.frames))
            carry = frames[-h.gop_overlap:] if h.gop_overlap else []
            index += 1
            if len(frames) < h.gop_length:
                break
    bar.close()
    report.seconds = time.perf_counter() - t0
    report.bytes += len(h.to_bytes())
    if report.frames == 0:
        raise ParameterError("no frames to encode")
    return report


def _settings_string(c: CodecConfig, prior: str, target_kbps) -> str:
    s = (f"mode={c.mode} quality={c.quality} m_tail={c.m_tail} prior={prior} steps={c.steps} ode_tail={c.ode_tail} "
         f"gamma={c.gamma} shift={c.shift} gop={c.gop_length} seed={c.seed} residual_step={c.residual_step} "
         f"anchor_codec={c.anchor_codec if c.anchor_codec is not None else 'default'} anchor_quality={c.anchor_quality}")
    return s + (f" target_kbps={target_kbps}" if target_kbps else "")


class _RateController:
    """Tracks the cumulative budget at the input's real frame rate and picks the knob per GOP."""

    def __init__(self, enc: Encoder, target_kbps: float):
        if not 0.01 <= target_kbps <= 1e6:
            raise ParameterError(f"target bitrate must be in 0.01..1e6 kbps, got {target_kbps}")
        self.enc = enc
        self.bits_per_frame = target_kbps * 1000.0 / float(enc.header.fps)
        self.spent_bits = 8 * len(enc.header.to_bytes())
        self.frames_done = 0
        self.other_bits_per_frame: float | None = None  # residual + unit + container bytes, per output frame
        self.anchor_bits: float | None = None  # per anchor image
        self._options: dict = {}

    def _options_for(self, latent_frames: int):
        if latent_frames not in self._options:
            cfg, h = self.enc.config, self.enc.header
            tail = h.tail_latent_frames if cfg.mode == "i2v" else 0
            self._options[latent_frames] = settings(h.steps - h.ode_tail, latent_frames, tail, cfg.tail_atoms,
                                                     h.codebook_span)
        return self._options[latent_frames]

    def _anchors_in(self, index: int) -> int:
        mode = self.enc.config.mode
        return {"t2v": 0, "i2v": int(index == 0), "flf2v": 1 + int(index == 0)}[mode]

    def encode(self, index: int, frames, progress) -> GopResult:
        plan = self.enc.plan(index, len(frames))
        out_frames = plan.real_frames - plan.output_from
        budget = self.bits_per_frame * (self.frames_done + out_frames) - self.spent_bits
        options = self._options_for(self.enc.prior.geometry.latent_frames(plan.length))
        anchors = self._anchors_in(index) * (self.anchor_bits or 0.0)
        other = anchors + (self.other_bits_per_frame or 8.0 * CONTAINER_OVERHEAD_PER_GOP / out_frames) * out_frames
        knob = choose(budget, other, options)
        res = self.enc.encode_gop(index, frames, m=knob.m, m_plus_steps=knob.m_plus_steps, progress=progress)
        if self.other_bits_per_frame is None and abs(self._bits(res) - budget) > 0.03 * budget:
            # First GOP: anchor and residual sizes were a guess; encode again with the measured ones.
            knob = choose(budget, self._bits(res) - 8 * len(res.unit.indices), options)
            res = self.enc.encode_gop(index, frames, m=knob.m, m_plus_steps=knob.m_plus_steps, progress=progress)
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


def decode_stream(in_path, writer_factory, *, prior=None, device="cpu", quiet=False, verify=True,
                  dtype: str | None = None) -> dict:
    """Decode a stream; `writer_factory(header)` returns an object with write(frame) and close().
    Damaged GOPs are concealed (last good frame repeated) and reported; the others decode normally."""
    with StreamReader(in_path) as reader:
        h = reader.header
        prior_obj = load_prior(prior or h.prior_id, device=device, header=h, dtype=dtype)
        dec = Decoder(prior_obj, h, device=device)
        writer = writer_factory(h)
        problems: list[str] = []
        frames = 0
        expected = 0
        bar = Progress(total=None, desc="decode", unit="step", quiet=quiet)
        try:
            for unit in reader.units():
                if isinstance(unit, BitstreamError):
                    problems.append(f"damaged unit {'before GOP 0' if expected == 0 else f'after GOP {expected - 1}'}: {unit}")
                    continue
                while expected < unit.gop_index:
                    problems.append(f"GOP {expected} missing: concealed")
                    frames += _write_all(writer, dec.conceal_gop(expected))
                    expected += 1
                if unit.gop_index < expected:
                    problems.append(f"GOP {unit.gop_index} out of order: skipped")
                    continue
                try:
                    out = dec.decode_gop(unit, progress=bar.update)
                except BitstreamError as e:
                    problems.append(f"GOP {unit.gop_index}: {e}; concealed")
                    out = dec.conceal_gop(unit.gop_index)
                else:
                    if verify and frame_hash(out) != unit.frame_hash:
                        problems.append(f"GOP {unit.gop_index}: decoded frames differ from the encoder's (frame hash mismatch)")
                frames += _write_all(writer, out)
                expected = unit.gop_index + 1
            while h.frame_count and frames < h.frame_count:
                problems.append(f"GOP {expected} missing at end of stream: concealed")
                got = _write_all(writer, dec.conceal_gop(expected))
                if got == 0:
                    break
                frames += got
                expected += 1
        finally:
            bar.close()
            writer.close()
        return {"frames": frames, "gops": expected, "problems": problems, "header": h}


def _write_all(writer, frames) -> int:
    for f in frames:
        writer.write(f)
    return len(frames)
