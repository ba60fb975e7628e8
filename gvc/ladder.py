"""The quality ladder: the one knob ``--quality`` sets every lever of a mode (docs: README "Use").

A knob that users and rate control rely on must move rate and quality the same way in every mode. With the
residual step and the anchor quality fixed, I2V's quality 2 cost more bytes than quality 8 and scored worse
(issue 20): the tail-latent residual shrinks as M grows, so the bytes saved on atoms went to the residual.
Here all levers rise together with the knob, so each step up the ladder adds bytes to every part of the
stream and none of them loses quality:

* **M** (atoms per SDE step and codebook set) = the quality value, in every mode: index bytes are then exact
  before encoding (rate control counts on it) and rise with the knob.
* **anchor quality** (I2V and FLF2V: the coded first/last frames, AV1 intra, the codec that wins at equal
  bytes from 500 B to 4 KB at CIF: ``benchmarks/anchor_codecs.json``) rises by ANCHOR_PER_OCTAVE points per
  doubling of the knob. The anchor was 50-90 % of an I2V/FLF2V stream at the old fixed quality 50 and is the
  cheapest dB at low rates (measured with ``python -m tools.ladder``), so the low rungs use cheap anchors.
* **residual step** (I2V only: the quantiser of the last latent frame's residual) halves every
  RESIDUAL_OCTAVES doublings of the knob: coarse at low rungs, where the residual of a poorer sample is
  largest and would otherwise cost more than the atoms saved, fine at high ones. Its worth depends on the
  prior, so a prior's card can turn it off (``"ladder": {"i2v_residual": false}``, gvc.zoo.ladder_of). The
  default prior's does: at 176x144, 17 frames, it cost 81-289 bytes for 0.00-0.19 dB (bikes and vtest,
  qualities 1-32: ``benchmarks/rd_i2v_no_residual.json`` against ``benchmarks/rd_ladder_after.json``), and on
  a chain of three carphone GOPs 206 bytes (-13 %) for +0.005 dB at quality 2, 274 bytes (-5 %) for -0.013 dB
  at quality 8. With gvc-tae-small-v2 it is worth 1.45 dB at quality 8 on carphone, and stays on.

Between the powers of two the levers are interpolated (linearly in log2 quality), so every quality value
1..256 has its levers and they are non-decreasing in quality. tests/test_ladder.py checks the rule on three
real clips in every mode; the RD tables of the ladder against the levers of before it (anchor quality 50,
residual step 0.35) and x265 on vtest and bikes are benchmarks/rd_ladder_after.json and
benchmarks/rd_ladder_before.json (``python -m tools.rd``, commands inside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Anchor quality (0..100, gvc.anchors scale) at quality 1, and its rise per doubling of the knob: 18 at quality
# 2, 34 at 8, 50 (the fixed value of before the ladder) at 32. The first ladder's 14 + 5 per doubling let I2V on
# bikes lose MS-SSIM from quality 8 to 32: at equal anchor quality, M=32 scored 0.008 MS-SSIM below M=8 there,
# while 10 more anchor points gave +0.6 dB and +0.006 for 52 bytes (tests/test_ladder.py measures the margins).
ANCHOR_AT_1 = 10.0
ANCHOR_PER_OCTAVE = 8.0
ANCHOR_MAX = 90.0
# I2V residual step at quality 1, and how many doublings of the knob halve it.
RESIDUAL_AT_1 = 2.0
RESIDUAL_OCTAVES = 2.0
RESIDUAL_MIN = 0.1


@dataclass(frozen=True)
class Levers:
    """What one quality value sets: atoms per step, I2V residual step (None outside I2V, which has no residual)
    and anchor quality (unused in T2V, which has no anchors)."""

    m: int
    residual_step: float | None
    anchor_quality: float

    def as_dict(self) -> dict:
        return {"m": self.m, "residual_step": self.residual_step, "anchor_quality": self.anchor_quality}


def anchor_quality(quality: int) -> float:
    return round(min(ANCHOR_MAX, ANCHOR_AT_1 + ANCHOR_PER_OCTAVE * math.log2(quality)), 2)


def residual_step(quality: int) -> float:
    return round(max(RESIDUAL_MIN, RESIDUAL_AT_1 * 2.0 ** (-math.log2(quality) / RESIDUAL_OCTAVES)), 4)


def levers(mode: str, quality: int, i2v_residual: bool = True) -> Levers:
    """The levers of ``mode`` (t2v, i2v, flf2v) at ``quality`` (1..256; validated by CodecConfig); with
    ``i2v_residual`` False (a prior's card: gvc.zoo.ladder_of) I2V codes no residual."""
    q = max(int(quality), 1)
    return Levers(m=q, residual_step=residual_step(q) if mode == "i2v" and i2v_residual else None,
                  anchor_quality=anchor_quality(q))
