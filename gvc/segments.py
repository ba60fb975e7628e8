"""Segment planning: cut a sequence of GOPs into self-contained runs that separate workers can code.

A segment is a run of consecutive GOPs whose coding needs nothing from the GOPs before it beyond what
the segment's worker can rebuild itself:

* T2V: every GOP stands alone, so any GOP boundary is a cut.
* FLF2V: a GOP needs only its first anchor, which is the previous GOP's coded last anchor; the anchor
  codec is deterministic, so the worker of a segment codes that boundary frame itself (encoder) or
  reads it from the previous GOP unit (decoder) and every GOP boundary is a cut.
* I2V: a GOP continues from the previous GOP's decoded last frame, so a chain can only be cut where a
  GOP codes a fresh anchor of its own: a keyframe GOP (GOP 0, and every N-th with ``--refresh N``).

Library code only: which worker runs which segment, and how results travel, is gvc.distributed's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from .errors import InputError, ParameterError

if TYPE_CHECKING:  # gvc.gop pulls in the priors (torch); planning needs only the plans' fields
    from .gop import GopPlan


@dataclass(frozen=True)
class Segment:
    index: int
    first_gop: int
    end_gop: int  # one past the last GOP
    first_frame: int  # first source frame its GOPs span (a shared boundary frame included)
    end_frame: int  # one past the last source frame its GOPs span

    @property
    def gops(self) -> range:
        return range(self.first_gop, self.end_gop)

    def describe(self) -> str:
        last = self.end_gop - 1
        gops = f"GOP {self.first_gop}" if last == self.first_gop else f"GOPs {self.first_gop}-{last}"
        return f"segment {self.index} ({gops}, frames {self.first_frame}-{self.end_frame - 1})"


def is_cut(mode: str, gop: int, keyframe: Callable[[int], bool]) -> bool:
    """May a segment start at GOP `gop`?"""
    if gop == 0 or mode in ("t2v", "flf2v"):
        return True
    return keyframe(gop)


def plan_segments(plans: Sequence[GopPlan], mode: str, keyframe: Callable[[int], bool],
                  segment_gops: int = 1) -> list[Segment]:
    """Cut the GOPs of `plans` (in order, GOP i at position i) into segments of at least
    `segment_gops` GOPs, starting only where :func:`is_cut` allows (the last one may be shorter)."""
    if segment_gops < 1:
        raise ParameterError(f"segment length must be at least 1 GOP, got {segment_gops}")
    starts = []
    for p in plans:
        if is_cut(mode, p.index, keyframe) and (not starts or p.index - starts[-1] >= segment_gops):
            starts.append(p.index)
    ends = starts[1:] + [len(plans)]
    return [Segment(i, a, b, plans[a].first_frame, plans[b - 1].first_frame + plans[b - 1].real_frames)
            for i, (a, b) in enumerate(zip(starts, ends))]


def assign_blocks(segments: Sequence[Segment], workers: int) -> list[list[Segment]]:
    """Contiguous blocks of segments, balanced by GOP count: each worker reads one stretch of the input
    (for encoding: a seekable source is read once, in order, per worker)."""
    total = sum(len(s.gops) for s in segments)
    blocks: list[list[Segment]] = [[] for _ in range(workers)]
    done = 0
    for s in segments:
        # the worker whose share of the GOP count holds this segment's middle
        w = min(workers - 1, (2 * done + len(s.gops)) * workers // (2 * total))
        blocks[w].append(s)
        done += len(s.gops)
    return blocks


def assign_round_robin(segments: Sequence[Segment], workers: int) -> list[list[Segment]]:
    """Segment i to worker i mod N: all workers advance through the sequence together, so results
    can be written in order while only a few segments per worker are held in memory (decoding)."""
    return [list(segments[w::workers]) for w in range(workers)]


def require_seekable(path: str, what: str) -> None:
    """Segments are read by separate workers: the input must be a file they can each open, not a pipe."""
    if path == "-" or not os.path.isfile(path):
        if path != "-" and not os.path.exists(path):
            raise InputError(f"no such file: {path}")
        raise InputError(f"distributed mode needs a seekable {what} file (every rank reads its own part), "
                         f"not {'a pipe' if path == '-' else path}")
