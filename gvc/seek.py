"""Seeking: which GOPs a decode of output frames [start, end) needs, and what each is needed for.

GOP k outputs frames [k·s + o, k·s + L) (GOP 0 from frame 0), s = L − o, for GOP length L and overlap o
(gvc.gop). What a GOP needs from the ones before it depends on the mode:

* T2V: nothing; every GOP is a keyframe.
* FLF2V: its first anchor is the previous GOP's *last anchor*, an image coded in that GOP's unit: the
  unit before the first wanted GOP is read for that image, nothing is sampled.
* I2V: its first frame is the previous GOP's last *decoded* frame, so decoding starts at the last
  keyframe at or before the first wanted GOP: GOP 0, or a GOP coded with ``--refresh N`` that carries its
  own first anchor. The GOPs between are decoded and not output.

The reader starts at that keyframe (Matroska Cues, .gvc unit index); :class:`RangeSelector` tells the
decoder, unit by unit, whether to skip it, decode it only as a reference, or decode and output it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from container.bitstream import GopUnit, SequenceHeader, frame_hash
from .codec import Decoder
from .errors import BitstreamError, ParameterError

SKIP, REFERENCE, OUTPUT, STOP = "skip", "reference", "output", "stop"


def parse_time(text: str) -> Fraction:
    """Seconds as '12.5', '90', 'MM:SS(.f)' or 'HH:MM:SS(.f)' (ffmpeg's forms), exactly."""
    m = re.fullmatch(r"(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)", text.strip())
    if not m:
        raise ParameterError(f"bad time {text!r}: use seconds (12.5) or [HH:]MM:SS[.fff]")
    h, mnt, sec = m.groups()
    return Fraction(int(h or 0) * 3600 + int(mnt or 0) * 60) + Fraction(sec)


def frame_at(t: Fraction, fps: Fraction) -> int:
    """The first frame shown at or after time t (frame n is shown at n/fps), as ffmpeg's -ss picks."""
    return math.ceil(t * fps)


def frame_range(header: SequenceHeader, *, start: str | None = None, duration: str | None = None,
                start_frame: int | None = None, frames: int | None = None) -> tuple[int, int | None]:
    """[first, end) output frames from time or frame forms (end None = to the end of the stream)."""
    if start is not None and start_frame is not None:
        raise ParameterError("give --start or --start-frame, not both")
    if duration is not None and frames is not None:
        raise ParameterError("give --duration or --frames, not both")
    first = frame_at(parse_time(start), header.fps) if start is not None else (start_frame or 0)
    if first < 0:
        raise ParameterError(f"start frame must be >= 0, got {first}")
    if header.frame_count and first >= header.frame_count:
        raise ParameterError(f"start frame {first} is past the end of the stream ({header.frame_count} frames)")
    if duration is not None:
        t0 = parse_time(start) if start is not None else Fraction(first) / header.fps
        end = frame_at(t0 + parse_time(duration), header.fps)
    elif frames is not None:
        if frames < 1:
            raise ParameterError(f"frame count must be at least 1, got {frames}")
        end = first + frames
    else:
        return first, None
    if end <= first:
        raise ParameterError("the duration selects no frame")
    return first, end


def gop_holding(header: SequenceHeader, frame: int) -> int:
    """Index of the GOP that outputs `frame`."""
    step = header.gop_length - header.gop_overlap
    return max(0, (frame - header.gop_overlap) // step)


def output_start(header: SequenceHeader, gop_index: int) -> int:
    """The first frame GOP `gop_index` outputs (its presentation timestamp, in frames)."""
    return gop_index * (header.gop_length - header.gop_overlap) + (header.gop_overlap if gop_index else 0)


@dataclass(frozen=True)
class SeekRequest:
    """A range as the user gives it: a start time or frame, a duration or frame count (all optional)."""

    start: str | None = None
    duration: str | None = None
    start_frame: int | None = None
    frames: int | None = None

    def frame_range(self, header: SequenceHeader) -> tuple[int, int | None]:
        return frame_range(header, start=self.start, duration=self.duration, start_frame=self.start_frame,
                           frames=self.frames)


@dataclass
class RangeSelector:
    """Decides per GOP unit what a decode of output frames [start, end) does with it."""

    header: SequenceHeader
    start: int = 0
    end: int | None = None

    @property
    def first_gop(self) -> int:
        return gop_holding(self.header, self.start)

    @property
    def last_gop(self) -> int | None:
        return None if self.end is None else gop_holding(self.header, self.end - 1)

    def entry(self) -> tuple[int | None, bool]:
        """(GOP to start reading at, whether reading must start at a keyframe) for StreamReader.units."""
        k = self.first_gop
        if k == 0:
            return None, True
        mode = self.header.mode
        return (k - 1, False) if mode == "flf2v" else (k, mode == "i2v")

    def role(self, gop_index: int) -> str:
        k, last = self.first_gop, self.last_gop
        if last is not None and gop_index > last:
            return STOP
        if gop_index >= k:
            return OUTPUT
        mode = self.header.mode
        if mode == "i2v" or (mode == "flf2v" and gop_index == k - 1):
            return REFERENCE
        return SKIP



class RangeDecoder:
    """GOP units in, frames out, for the range a :class:`RangeSelector` describes: each unit is skipped,
    decoded as a reference or decoded and output (trimmed to the range); damaged and missing GOPs are
    concealed (the last good frame repeated) and reported in `problems`; the others decode normally.
    The loop of `gvc decode` and of libgvc (gvc.capi)."""

    def __init__(self, decoder: Decoder, select: RangeSelector, *, verify: bool = True, progress=None, on_gop=None):
        self.decoder, self.select, self.verify = decoder, select, verify
        self.progress, self.on_gop = progress, on_gop
        self.problems: list[str] = []
        self.failed: list[int] = []  # GOPs whose unit parsed but could not be decoded (concealed)
        self.frames_out = 0
        self.done = False  # a unit past the range was seen
        self.expected: int | None = 0 if select.entry()[0] is None else None  # None: the first unit read sets it

    def reset(self) -> None:
        """Forget the chain (the caller seeked): the next unit starts it."""
        self.expected, self.done = None, False
        self.decoder.reset()

    def push(self, unit: GopUnit | BitstreamError, role: str | None = None) -> list[tuple[int, np.ndarray]]:
        """Frames (pts, RGB) the unit yields; `role` overrides the selector's (REFERENCE: decode, don't output)."""
        if isinstance(unit, BitstreamError):
            where = "before GOP 0" if not self.expected else f"after GOP {self.expected - 1}"
            self.problems.append(f"damaged unit {where}: {unit}")
            return []
        role = role or self.select.role(unit.gop_index)
        if role == STOP:
            self.done = True
            return []
        out = []
        self.expected = unit.gop_index if self.expected is None else self.expected
        while self.expected < unit.gop_index:
            self.problems.append(f"GOP {self.expected} missing: concealed")
            out += self._conceal(self.expected)
            self.expected += 1
        if unit.gop_index < self.expected:
            self.problems.append(f"GOP {unit.gop_index} out of order: skipped")
            return out
        self.expected = unit.gop_index + 1
        if role == SKIP:
            return out
        try:
            if role == REFERENCE:
                self.decoder.skip_gop(unit)
            else:
                frames = self.decoder.decode_gop(unit, progress=self.progress)
        except BitstreamError as e:
            self.problems.append(f"GOP {unit.gop_index}: {e}; concealed")
            self.failed.append(unit.gop_index)
            return out + self._conceal(unit.gop_index)
        if self.on_gop is not None:
            self.on_gop(unit.gop_index, role)
        if role == OUTPUT:
            if self.verify and frame_hash(frames) != unit.frame_hash:
                self.problems.append(f"GOP {unit.gop_index}: decoded frames differ from the encoder's (frame hash mismatch)")
            out += self._emit(unit.gop_index, frames)
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """Conceal the GOPs missing at the end of the range (when the header knows the frame count)."""
        h, select = self.decoder.header, self.select
        if not h.frame_count:
            return []
        wanted = min(select.end or h.frame_count, h.frame_count) - select.start
        index = select.first_gop if self.expected is None else self.expected
        out = []
        while self.frames_out < wanted:
            self.problems.append(f"GOP {index} missing at end of stream: concealed")
            got = self._conceal(index)
            if not got:
                break
            out += got
            index += 1
        self.expected = index
        return out

    def _conceal(self, index: int) -> list[tuple[int, np.ndarray]]:
        return self._emit(index, self.decoder.conceal_gop(index))

    def _emit(self, index: int, frames: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
        a = output_start(self.decoder.header, index)
        lo = max(self.select.start - a, 0)
        hi = len(frames) if self.select.end is None else max(min(self.select.end - a, len(frames)), 0)
        kept = [(a + i, frames[i]) for i in range(lo, hi)]
        self.frames_out += len(kept)
        return kept
