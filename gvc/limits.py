"""Work limits: what a stream asks the decoder for, computed from its header before anything is allocated.

A stream of a few bytes can declare 8192×8192 pictures in 1025-frame GOPs, or 2^24 frames: every CRC valid,
every field within the spec. The decoder therefore computes the work first (:func:`decode_work`) and refuses a
stream beyond the limits (:func:`check_work`), whose defaults are what this machine can do:

* ``max_pixels``: pixels of one GOP (width × height × GOP length), the decoder's peak memory being about
  :data:`BYTES_PER_GOP_PIXEL` per GOP pixel; default: the memory available now over that figure.
* ``max_frames``: frames written; default: the spec's 2^24, and for a y4m file what the free space of its
  folder holds.

Concealment obeys the same bound (gvc.pipeline): never more frames than the header declares nor the limit,
and in a live stream (frame count 0) never more GOPs than the units actually present.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from container.bitstream import MAX_ANCHOR_PAD, MAX_FRAMES, SequenceHeader

from .errors import LimitError

# Peak decoder memory per GOP pixel. Measured for the analytic prior (ru_maxrss over the import-and-load
# baseline, T2V, 17-frame GOPs at 352x288, 4 steps): about 66 B. The learned priors' VAE decoders keep
# feature maps of several channels per pixel, but decode a few frames at a time; 512 B per GOP pixel is an
# allowance for them, not yet a measurement (tools/bench records peak memory per prior and should replace it).
# On a 24 GB machine it admits 1280x720x33 GOPs (30 M pixels) and refuses 1920x1088x257 or 8192x8192x1025.
BYTES_PER_GOP_PIXEL = 512
Y4M_FRAME_OVERHEAD = len(b"FRAME\n")


@dataclass(frozen=True)
class DecodeWork:
    """What decoding a stream costs, from its sequence header alone."""

    gop_pixels: int  # width × height × GOP length: the frames of one GOP in flight
    latent_elements: int  # values of one GOP's latent
    sampler_work: int  # latent values × sampling steps
    anchor_pixels: int  # the largest anchor pictures a GOP may carry (padding included)
    output_frames: int | None  # frames the stream declares (None: live, unknown)

    @property
    def peak_bytes(self) -> int:
        return BYTES_PER_GOP_PIXEL * self.gop_pixels


def decode_work(h: SequenceHeader) -> DecodeWork:
    s, t = h.spatial_stride, h.temporal_stride
    latent_frames = (h.gop_length - 1) // t + 1
    latent = h.latent_channels * -(-h.height // s) * -(-h.width // s) * latent_frames
    anchors = {"t2v": 0, "i2v": 1, "flf2v": 2}[h.mode]
    return DecodeWork(gop_pixels=h.width * h.height * h.gop_length, latent_elements=latent,
                      sampler_work=latent * h.steps,
                      anchor_pixels=anchors * (h.width + MAX_ANCHOR_PAD) * (h.height + MAX_ANCHOR_PAD),
                      output_frames=h.frame_count or None)


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def default_max_pixels() -> int:
    return available_memory() // BYTES_PER_GOP_PIXEL


def default_max_frames(output, width: int, height: int) -> int:
    """The spec's limit, and for a .y4m file the frames its folder's free space holds (4:2:0 y4m frames)."""
    limit = MAX_FRAMES
    if isinstance(output, (str, os.PathLike)) and str(output).lower().endswith(".y4m"):
        folder = os.path.dirname(os.path.abspath(output))
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            return limit
        limit = min(limit, free // (width * height * 3 // 2 + Y4M_FRAME_OVERHEAD))
    return limit


def check_work(h: SequenceHeader, *, max_pixels: int | None = None, max_frames: int | None = None) -> DecodeWork:
    """Raise LimitError when a stream asks for more than the limits (None: this machine's defaults)."""
    work = decode_work(h)
    max_pixels = default_max_pixels() if max_pixels is None else max_pixels
    if work.gop_pixels > max_pixels:
        raise LimitError(f"stream asks for GOPs of {h.width}x{h.height}x{h.gop_length} = {work.gop_pixels:,} pixels "
                         f"(about {work.peak_bytes / 2**30:.1f} GiB to decode), above the limit of {max_pixels:,} "
                         f"(--max-pixels; default: the memory available)")
    if max_frames is not None and work.output_frames is not None and work.output_frames > max_frames:
        raise LimitError(f"stream declares {work.output_frames:,} frames of {h.width}x{h.height}, above the limit of "
                         f"{max_frames:,} (--max-frames; default: what the output's free space holds)")
    return work


__all__ = ["BYTES_PER_GOP_PIXEL", "DecodeWork", "available_memory", "check_work", "decode_work",
           "default_max_frames", "default_max_pixels"]
