"""Codec core end to end with the analytic prior on a real clip: bit-exact decode, rate behaviour,
rate control, parameter errors."""

from fractions import Fraction

import numpy as np
import pytest

from container.bitstream import GopUnit
from ffmpeg_bridge.video_io import VideoReader
from gvc.metrics import psnr
from gvc.codec import GopCodec
from gvc.config import CodecConfig, codebook_size
from gvc.errors import ParameterError, PriorMismatchError
from gvc.gop import plan_gops
from gvc.priors import AnalyticPrior, load_prior
from gvc.priors.base import LatentGeometry

FPS = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def frames(clips_dir):
    """13 frames of carphone, cropped to 64x48 (not a multiple of 8 in height after crop: 46)."""
    with VideoReader(clips_dir / "carphone_176x144.mp4", max_frames=13) as r:
        return [f[40:86, 60:124].copy() for f in r]


def encode_all(frames, config, prior=None):
    prior = prior or AnalyticPrior()
    h, w = frames[0].shape[:2]
    enc = GopCodec.for_encoding(prior, config, width=w, height=h, fps=FPS, frame_count=len(frames))
    plans = plan_gops(len(frames), enc.header.gop_length, enc.header.gop_overlap, prior.geometry)
    results = [enc.encode(p.index, frames[p.first_frame:p.first_frame + p.real_frames]) for p in plans]
    return enc.header, results


@pytest.mark.parametrize("mode", ["t2v", "i2v", "flf2v"])
def test_decoder_reproduces_encoder_bit_exactly(frames, mode):
    config = CodecConfig(mode=mode, quality=4, gop_length=7, steps=8, ode_tail=2)
    header, results = encode_all(frames, config)
    dec = GopCodec(AnalyticPrior(), header)
    out = []
    for r in results:
        unit = GopUnit.from_bytes(r.unit.to_bytes())  # through the real syntax
        got = dec.decode(unit)
        assert all(np.array_equal(a, b) for a, b in zip(got, r.frames))
        out += got
    assert len(out) == len(frames)  # overlapping GOPs output the boundary frame once, padding is cropped
    assert out[0].shape == frames[0].shape
    floor = {"t2v": 10, "i2v": 15, "flf2v": 15}[mode]  # measured: 12.0, ~19, ~19 dB
    assert np.mean([psnr(a, b) for a, b in zip(frames, out)]) > floor


def test_quality_raises_bits_and_psnr(frames):
    bits, quality = [], []
    for m in (2, 8, 32):
        config = CodecConfig(mode="i2v", quality=m, gop_length=13, steps=10, ode_tail=2, residual_step=None)
        _, (r,) = encode_all(frames, config)
        bits.append(len(r.unit.indices) * 8)
        quality.append(np.mean([psnr(a, b) for a, b in zip(frames, r.frames)]))
    assert bits[0] < bits[1] < bits[2]
    assert quality[0] < quality[1] < quality[2], quality


def test_index_bytes_match_the_combinatorial_formula(frames):
    from gvc.entropy.combinatorial import combination_bits

    config = CodecConfig(mode="t2v", quality=8, gop_length=5, steps=6, ode_tail=1)
    _, results = encode_all(frames[:5], config)
    sets = 5 * 5  # sde steps x latent frames
    k = codebook_size(8)
    assert len(results[0].unit.indices) == -(-sets * (combination_bits(k, 8) + 8) // 8)


def test_prior_mismatch_is_refused(frames):
    header, _ = encode_all(frames[:3], CodecConfig(mode="t2v", quality=2, gop_length=3, steps=4, ode_tail=1))
    header.prior_sha256 = bytes(32)
    with pytest.raises(PriorMismatchError, match="analytic"):
        GopCodec(AnalyticPrior(), header)


@pytest.mark.parametrize("kw, msg", [
    (dict(mode="x2v"), "mode"), (dict(quality=0), "quality"), (dict(quality=1000), "quality"),
    (dict(gop_length=1), "GOP length"), (dict(steps=0), "steps"), (dict(ode_tail=20), "ode_tail"),
    (dict(gamma=-1.0), "gamma"), (dict(seed=-1), "seed"), (dict(residual_step=0.0), "residual"),
])
def test_bad_parameters_get_clear_errors(frames, kw, msg):
    with pytest.raises(ParameterError, match=msg):
        encode_all(frames[:3], CodecConfig(**kw))


def test_prior_on_another_device_is_a_clear_error():
    with pytest.raises(ParameterError, match="prior analytic-v1 is on cpu, the codec runs on cuda"):
        GopCodec.for_encoding(AnalyticPrior(), CodecConfig(), width=64, height=48, fps=25, device="cuda")


def test_unknown_prior():
    with pytest.raises(ParameterError, match="unknown prior"):
        load_prior("no-such-prior")


def test_gop_plans_cover_every_frame_once():
    g4 = LatentGeometry(16, 8, 4)
    for n in (1, 2, 5, 33, 34, 40, 65, 66, 100):
        for overlap in (0, 1):
            plans = plan_gops(n, 33, overlap, g4)
            covered = [p.first_frame + i for p in plans for i in range(p.output_from, p.real_frames)]
            assert covered == list(range(n))
            assert all(g4.is_valid_gop_length(p.length) and p.length >= p.real_frames for p in plans)


def test_flf2v_frame_count_for_whole_gops():
    plans = plan_gops(32 * 3 + 1, 33, 1, LatentGeometry(16, 8, 4))
    assert len(plans) == 3 and sum(p.real_frames - p.output_from for p in plans) == 97


@pytest.fixture(scope="module")
def crop_y4m(tmp_path_factory, clips_dir, ffmpeg):
    import subprocess

    out = tmp_path_factory.mktemp("rc") / "crop.y4m"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clips_dir / "carphone_176x144.mp4"), "-frames:v", "25",
                    "-vf", "crop=128:96:24:24", "-f", "yuv4mpegpipe", "-y", str(out)], check=True)
    return out


@pytest.mark.parametrize("mode, target", [("i2v", 90.0), ("t2v", 60.0)])
def test_target_kbps_lands_within_5_percent(tmp_path, crop_y4m, mode, target):
    import os

    from gvc.pipeline import encode_stream

    config = CodecConfig(mode=mode, gop_length=13, steps=8, ode_tail=2, prior="analytic", target_kbps=target)
    out = tmp_path / "rc.mkv"
    with VideoReader(crop_y4m) as reader:
        report = encode_stream(reader, str(out), config)
    stats = report.as_dict(os.path.getsize(out))
    assert stats["kbps"] == pytest.approx(target, rel=0.05), stats


@pytest.mark.parametrize("span", [0, 1, 3])
def test_codebook_span_sets_the_index_layout_and_decodes_bit_exactly(frames, span):
    """Spans group the latent frames into codebook sets: the index bytes follow the set count, decoding stays exact."""
    from gvc.gop import codebook_sets
    from gvc.entropy.combinatorial import combination_bits

    config = CodecConfig(mode="t2v", quality=4, gop_length=13, steps=6, ode_tail=1, codebook_span=span)
    header, (r,) = encode_all(frames, config)
    assert header.codebook_span == span
    f_lat = AnalyticPrior().geometry.latent_frames(13)
    sets = codebook_sets(f_lat, span)
    assert len(sets) == {0: 1, 1: f_lat, 3: -(-f_lat // 3)}[span]
    k = codebook_size(4)
    assert len(r.unit.indices) == (5 * len(sets) * (combination_bits(k, 4) + 4) + 7) // 8
    got = GopCodec(AnalyticPrior(), header).decode(GopUnit.from_bytes(r.unit.to_bytes()))
    assert all(np.array_equal(a, b) for a, b in zip(got, r.frames))


def test_header_and_gop_units_agree_on_m_tail_above_quality_128(frames):
    """One rule for M_tail (2·M below K): at M = 200 the header and every GOP unit say 400 (the header said 256)."""
    tiny = [f[:16, :16].copy() for f in frames[:5]]
    config = CodecConfig(mode="i2v", quality=200, gop_length=5, steps=2, ode_tail=1)
    header, (r,) = encode_all(tiny, config)
    assert header.codebook_m_tail == r.unit.codebook_m_tail == config.m_tail == 400
    unit = GopUnit.from_bytes(r.unit.to_bytes())
    assert all(np.array_equal(a, b) for a, b in zip(GopCodec(AnalyticPrior(), header).decode(unit), r.frames))


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_hadamard_family_round_trip(frames, mode):
    """The structured family is recorded in the header and decodes bit exactly; at equal M it codes the clip
    about as well as the Gaussian family (its atoms are other vectors, so the streams differ)."""
    from container.bitstream import SequenceHeader

    results = {}
    for family in ("gaussian", "hadamard"):
        config = CodecConfig(mode=mode, quality=4, gop_length=7, steps=8, ode_tail=2, codebook_family=family)
        header, res = encode_all(frames, config)
        header = SequenceHeader.from_bytes(header.to_bytes())
        assert header.codebook_family == family
        dec = GopCodec(AnalyticPrior(), header)
        for r in res:
            got = dec.decode(GopUnit.from_bytes(r.unit.to_bytes()))
            assert all(np.array_equal(a, b) for a, b in zip(got, r.frames))
        results[family] = (np.mean([psnr(a, b) for r in res for a, b in zip(frames, r.frames)]), res)
    assert results["gaussian"][1][0].unit.indices != results["hadamard"][1][0].unit.indices
    assert abs(results["gaussian"][0] - results["hadamard"][0]) < 1.5


def test_decoder_needs_the_recorded_compute_dtype(frames):
    config = CodecConfig(mode="t2v", quality=2, gop_length=5, steps=4, ode_tail=1)
    header, _ = encode_all(frames[:5], config)
    assert header.compute_dtype == "fp32"  # the analytic prior computes in fp32
    header.compute_dtype = "bf16"
    with pytest.raises(PriorMismatchError, match="bf16"):
        GopCodec(AnalyticPrior(), header)
