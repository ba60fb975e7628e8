"""How a sequence is cut into GOPs (shared by encoder and decoder).

GOP k starts at source frame k·(L − overlap) for GOP length L; I2V and FLF2V GOPs share one boundary
frame (overlap 1), T2V GOPs none. A GOP covers ``real_frames`` ≤ L source frames; the last one of a
sequence may be shorter and is then generated at the smallest valid length for the prior, padded by
repeating its last frame, and cropped back on output. Everything follows from the header and a GOP's
index and real frame count, so a decoder can place a GOP even when the ones before it are damaged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BitstreamError
from .priors.base import LatentGeometry


@dataclass(frozen=True)
class GopPlan:
    index: int
    first_frame: int  # first source frame the GOP spans (the shared boundary frame included)
    length: int  # frames the model generates: a valid GOP length for the prior
    real_frames: int  # frames of `length` that exist in the source (the rest is padding)
    output_from: int  # frames [output_from, real_frames) of this GOP are output (the boundary frame once)


def gop_plan(index: int, real_frames: int, gop_length: int, overlap: int, geometry: LatentGeometry) -> GopPlan:
    if not overlap < real_frames <= gop_length and not (index == 0 and 1 <= real_frames <= gop_length):
        raise BitstreamError(f"GOP {index} covers {real_frames} frames, outside {overlap + 1}..{gop_length}")
    length = gop_length if real_frames == gop_length else geometry.valid_gop_length(real_frames)
    return GopPlan(index, index * (gop_length - overlap), length, real_frames, overlap if index else 0)


def plan_gops(frame_count: int, gop_length: int, overlap: int, geometry: LatentGeometry) -> list[GopPlan]:
    plans = []
    step = gop_length - overlap
    index = 0
    while True:
        first = index * step
        real = min(gop_length, frame_count - first)
        plans.append(gop_plan(index, real, gop_length, overlap, geometry))
        if first + real >= frame_count:
            return plans
        index += 1
