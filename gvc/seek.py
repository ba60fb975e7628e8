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
decoder (gvc.pipeline.SequenceDecoder), unit by unit, whether to skip it, decode it only as a reference,
or decode and output it, and which of its frames fall in the range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from container.bitstream import SequenceHeader
from .errors import ParameterError

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

    @property
    def whole(self) -> bool:
        """The range is the whole stream (no seek)."""
        return self.start == 0 and self.end is None

    def frame_count(self) -> int | None:
        """Frames the range holds, when the header knows the stream's frame count (else None)."""
        fc = self.header.frame_count
        return None if not fc else max(min(self.end or fc, fc) - self.start, 0)

    def trim(self, gop_index: int, frames: list) -> tuple[int, list]:
        """(pts of the first kept frame, the frames) of a GOP's output frames inside [start, end)."""
        a = output_start(self.header, gop_index)
        lo = max(self.start - a, 0)
        hi = len(frames) if self.end is None else max(min(self.end - a, len(frames)), lo)
        return a + lo, frames[lo:hi]

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


