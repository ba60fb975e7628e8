"""How a sequence is cut into GOPs, and a GOP's latent into codebook sets (shared by encoder, decoder, rate
control and the tools).

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


def gop_step(gop_length: int, overlap: int) -> int:
    """Source frames from one GOP's start to the next's."""
    return gop_length - overlap


def gop_plan(index: int, real_frames: int, gop_length: int, overlap: int, geometry: LatentGeometry) -> GopPlan:
    if not overlap < real_frames <= gop_length and not (index == 0 and 1 <= real_frames <= gop_length):
        raise BitstreamError(f"GOP {index} covers {real_frames} frames, outside {overlap + 1}..{gop_length}")
    length = gop_length if real_frames == gop_length else geometry.valid_gop_length(real_frames)
    return GopPlan(index, index * gop_step(gop_length, overlap), length, real_frames, overlap if index else 0)


def expected_real_frames(index: int, frame_count: int, gop_length: int, overlap: int) -> int:
    """Source frames GOP `index` covers in a sequence of `frame_count` frames (0 = unknown: a whole GOP)."""
    if not frame_count:
        return gop_length
    return max(1, min(gop_length, frame_count - index * gop_step(gop_length, overlap)))


def gop_count(frame_count: int, gop_length: int, overlap: int) -> int:
    """GOPs a sequence of `frame_count` frames (at least one) is cut into."""
    return -(-max(frame_count - overlap, 1) // gop_step(gop_length, overlap))


def plan_gops(frame_count: int, gop_length: int, overlap: int, geometry: LatentGeometry) -> list[GopPlan]:
    plans = []
    index = 0
    while True:
        real = expected_real_frames(index, frame_count, gop_length, overlap)
        plans.append(gop_plan(index, real, gop_length, overlap, geometry))
        if plans[-1].first_frame + real >= frame_count:
            return plans
        index += 1


def codebook_sets(latent_frames: int, span: int) -> list[tuple[int, int]]:
    """Latent-frame ranges [a, b) of the codebook sets of a GOP: `span` frames each (0 = one set for all)."""
    span = latent_frames if span == 0 else min(span, latent_frames)
    return [(a, min(a + span, latent_frames)) for a in range(0, latent_frames, span)]


def atoms_per_set(m: int, m_tail: int, tail_frames: int, m_plus_steps: int, sde_steps: int,
                  sets: list[tuple[int, int]]) -> list[int]:
    """M for every (SDE step, codebook set), step-major: a set holding any of the last `tail_frames` latent
    frames gets M_tail, and the first `m_plus_steps` steps one atom more (the fine part of the rate knob)."""
    latent_frames = sets[-1][1]
    ms = []
    for i in range(sde_steps):
        extra = 1 if i < m_plus_steps else 0
        for a, b in sets:
            ms.append((m_tail if b > latent_frames - tail_frames else m) + extra)
    return ms


def header_geometry(header) -> LatentGeometry:
    """The latent geometry a stream header records (equal to its prior's: the decoder checks)."""
    return LatentGeometry(header.latent_channels, header.spatial_stride, header.temporal_stride)


def gop_atoms(header, plan: GopPlan, m: int, m_tail: int, m_plus_steps: int) -> list[int]:
    """M of every index set of a GOP, from the header and the GOP unit's knob (what its indices field holds)."""
    sets = codebook_sets(header_geometry(header).latent_frames(plan.length), header.codebook_span)
    return atoms_per_set(m, m_tail, header.tail_latent_frames, m_plus_steps, header.steps - header.ode_tail, sets)
