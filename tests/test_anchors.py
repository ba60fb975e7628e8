"""Anchor-frame image coding (gvc/anchors.py): round trips, determinism, budgets, damage."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from container.bitstream import Anchor, AnchorPictureSyntax, GopUnit
from gvc.anchors import ANCHOR_CODECS, DEFAULT_ANCHOR_CODEC, decode_anchor, encode_anchor, fit_anchor
from gvc.errors import BitstreamError, ParameterError

LOSSY = ["av1-intra", "hevc-intra", "webp", "jpeg"]
# RGB PSNR floors at 1 bit per pixel on the 175x143 carphone crop (measured: av1 36.1, hevc 35.8, webp 34.6,
# jpeg 31.1 dB on the full first frame), with ~2.5 dB of margin
PSNR_FLOOR_1BPP = {"av1-intra": 33.5, "hevc-intra": 33.0, "webp": 32.0, "jpeg": 28.5}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def frame(clip) -> np.ndarray:
    """First carphone frame cropped to an odd size (175x143)."""
    with av.open(str(clip("carphone_176x144.mp4"))) as c:
        rgb = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return np.ascontiguousarray(rgb[:143, :175])


def synthetic(h: int = 12, w: int = 10) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([(ii * 20 + jj * 5) % 256, (jj * 25) % 256, (ii * 7 + jj * 11 + 100) % 256], -1).astype(np.uint8)


def test_ids_are_stable():
    assert ANCHOR_CODECS == {1: "av1-intra", 2: "hevc-intra", 3: "webp", 4: "png", 5: "jpeg"}
    assert ANCHOR_CODECS[DEFAULT_ANCHOR_CODEC] == "av1-intra"


@pytest.mark.parametrize("codec", LOSSY)
def test_round_trip_budget_and_determinism(frame, codec):
    budget = frame.shape[0] * frame.shape[1] // 8  # 1 bpp
    cid, payload = encode_anchor(frame, codec=codec, max_bytes=budget)
    assert ANCHOR_CODECS[cid] == codec
    assert len(payload) <= budget
    a = decode_anchor(cid, payload)
    b = decode_anchor(cid, bytes(payload))
    assert a.shape == frame.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert psnr(frame, a) > PSNR_FLOOR_1BPP[codec]


@pytest.mark.parametrize("codec", ["av1-intra", "hevc-intra", "webp", "jpeg"])
def test_psnr_rises_with_quality(frame, codec):
    sizes, quals = [], []
    for q in (15, 50, 85):
        cid, payload = encode_anchor(frame, codec=codec, quality=q)
        sizes.append(len(payload))
        quals.append(psnr(frame, decode_anchor(cid, payload)))
    assert sizes[0] < sizes[1] < sizes[2]
    assert quals[0] < quals[1] < quals[2]


def test_max_bytes_picks_the_largest_fitting_quality(frame):
    budget = 1500
    cid, payload, q = fit_anchor(frame, codec="av1-intra", max_bytes=budget)
    assert len(payload) <= budget
    # one grid step (1/4 CRF = 100/276) higher no longer fits
    _, bigger = encode_anchor(frame, codec="av1-intra", quality=min(100.0, q + 100 / 276))
    assert len(bigger) > budget or q >= 100.0
    # quality is an upper bound when both are given
    _, _, q2 = fit_anchor(frame, codec="av1-intra", quality=20, max_bytes=10**6)
    assert q2 == pytest.approx(round(20 / 100 * 276) * 100 / 276)


def test_png_is_lossless(frame):
    cid, payload = encode_anchor(frame, codec="png")
    assert np.array_equal(decode_anchor(cid, payload), frame)


@pytest.mark.parametrize("codec", ["av1-intra", "hevc-intra", "webp", "png", "jpeg"])
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (7, 5), (17, 9)])
def test_tiny_and_odd_sizes(codec, size):
    img = synthetic(*size)
    cid, payload = encode_anchor(img, codec=codec, quality=90)
    out = decode_anchor(cid, payload)
    assert out.shape == img.shape
    if codec == "png":
        assert np.array_equal(out, img)


# Decoding fixed bytes must give the same pixels everywhere (bit-exact decoders + integer colour path).
GOLDEN = {
    1: ("1000000a06180ce6d2808032371720000011c720bfd08e022c55b6ead7c603e3d3617d9e6fbca1d5038e4904356efafd843e"
        "3dd0ecd228da49e0c9b6ad16f381aca17250",
        "7e2a3f96bd12c8b9f05e1266ab4a93de17e59500125200ac4d353969fd83d395"),
    3: ("1000001002009d012a0a000c0002804225b00274ba000275f8c534a000fef965ca5ab0ce7d0ecdd1be13cb9a79adbdbaf1c3"
        "10c1ff00b2fb6d7f68976dff07262a2edacb3f933ec9fa62c2d71be610f0000000",
        "80acb0fa0448aa45635cb9f13aed97c0edca46d5ba55ca498829eac7dd7d7e08"),
}


@pytest.mark.parametrize("cid", sorted(GOLDEN))
def test_golden_decode(cid):
    payload_hex, digest = GOLDEN[cid]
    out = decode_anchor(cid, bytes.fromhex(payload_hex))
    assert out.shape == (12, 10, 3)
    assert hashlib.sha256(out.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("codec", ["av1-intra", "hevc-intra", "webp", "png", "jpeg"])
def test_damage_raises(frame, codec):
    """Payloads that break the anchor payload syntax or carry no decodable picture are refused; a flipped byte
    inside a GOP unit is refused by the unit's CRC-32 (the one checksum, docs/bitstream.md §Unit framing)."""
    cid, payload = encode_anchor(frame, codec=codec, quality=40)
    n = len(payload)
    bad = [payload[:1], payload[:5], b"", b"\x00" * 64,
           bytes([payload[0] | 0x80]) + payload[1:],  # reserved flag bit set
           bytes([payload[0] | 0x0F]) + payload[1:],  # undefined colour transform
           bytes([payload[0]]) + bytes([65, 0]) + payload[3:]]  # crop beyond the spec's 64
    for b in bad:
        with pytest.raises(BitstreamError):
            decode_anchor(cid, b)
    unit = bytearray(GopUnit(gop_index=0, first_frame=0, frame_count=1, codebook_k=16, codebook_m=1, codebook_m_tail=1,
                             indices=b"", anchors=[Anchor("first", cid, payload)]).to_bytes())
    unit[unit.index(payload) + n // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC"):
        GopUnit.from_bytes(bytes(unit))


def test_stream_picture_size_is_enforced(frame):
    cid, payload = encode_anchor(frame, codec="png")
    h, w, _ = frame.shape
    assert decode_anchor(cid, payload, size=(w, h)).shape == frame.shape
    with pytest.raises(BitstreamError, match="stream's pictures"):
        decode_anchor(cid, payload, size=(w + 2, h))


def test_ffmpeg_reason_is_reported():
    # a well-formed payload whose stream is garbage reaches FFmpeg, whose reason is passed on
    payload = AnchorPictureSyntax.build(dict(flags=dict(header_stripped=False, color_transform="ycbcr601"),
                                             pad_w=0, pad_h=0, data=b"\xff" * 40))
    for cid in (1, 2, 3, 5):
        with pytest.raises(BitstreamError) as e:
            decode_anchor(cid, payload)
        assert "\n" not in str(e.value)


def test_unknown_codec_and_bad_parameters(frame):
    with pytest.raises(BitstreamError):
        decode_anchor(99, b"\x00" * 16)
    with pytest.raises(ParameterError):
        encode_anchor(frame, codec="jpegxl")
    with pytest.raises(ParameterError):
        encode_anchor(frame, codec=42)
    with pytest.raises(ParameterError):
        encode_anchor(frame, quality=101)
    with pytest.raises(ParameterError):
        encode_anchor(frame, quality=-1)
    with pytest.raises(ParameterError):
        encode_anchor(frame.astype(np.float32))
    with pytest.raises(ParameterError):
        encode_anchor(frame[..., :2])
    with pytest.raises(ParameterError):
        encode_anchor(frame, max_bytes=0)
    with pytest.raises(ParameterError):
        encode_anchor(frame, codec="av1-intra", max_bytes=20)  # below the smallest payload


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 48), w=st.integers(1, 48), codec=st.sampled_from(["png", "webp", "av1-intra"]),
       seed=st.integers(0, 2**32 - 1), quality=st.floats(0, 100))
def test_anchor_payload_round_trip_property(h, w, codec, seed, quality):
    """The anchor payload structure (flags, crop VarInts, codec stream) round-trips for any size:
    lossless PNG exactly, lossy codecs to the same shape; re-decoding gives the same pixels."""
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    cid, data = encode_anchor(rgb, codec=codec, quality=quality)
    got = decode_anchor(cid, data)
    assert got.shape == rgb.shape
    if codec == "png":
        assert np.array_equal(got, rgb)
    assert np.array_equal(decode_anchor(cid, data), got)
