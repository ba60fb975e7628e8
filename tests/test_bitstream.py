"""Bitstream v1: property-based round trips, framing/CRC errors, limits, and spec-document agreement."""

import io
import zlib
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from container import bitstream as bs
from container import spec
from gvc.errors import BitstreamError

ascii_id = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)


@st.composite
def headers(draw):
    gop = draw(st.integers(2, bs.MAX_GOP_LENGTH))
    k = draw(st.integers(2, bs.MAX_K))
    return bs.SequenceHeader(
        mode=draw(st.sampled_from(list(bs.MODES))),
        width=draw(st.integers(16, bs.MAX_DIMENSION)), height=draw(st.integers(16, bs.MAX_DIMENSION)),
        fps=Fraction(draw(st.integers(1, 240000)), draw(st.integers(240, 1001))).limit_denominator(1001),
        frame_count=draw(st.integers(0, bs.MAX_FRAMES)), gop_length=gop, gop_overlap=draw(st.integers(0, 1)),
        prior_id=draw(ascii_id), prior_sha256=draw(st.binary(min_size=32, max_size=32)),
        latent_channels=draw(st.integers(1, 1024)), spatial_stride=draw(st.integers(1, 64)),
        temporal_stride=draw(st.integers(1, 16)), steps=draw(st.integers(2, 200)), ode_tail=draw(st.integers(0, 1)),
        gamma=draw(st.sampled_from([0.0, 0.5, 2.0, 3.0])), shift=draw(st.sampled_from([1.0, 3.0, 5.0])),
        seed=draw(st.integers(0, 2**32 - 1)), codebook_k=k,
        codebook_m=draw(st.integers(1, min(bs.MAX_M, k))), codebook_m_tail=draw(st.integers(1, min(bs.MAX_M, k))),
        tail_latent_frames=draw(st.integers(0, 4)), pixel_format=draw(st.sampled_from(list(bs.PIXEL_FORMATS))),
        color_range=draw(st.sampled_from(list(bs.COLOR_RANGES))), entropy_coder=draw(st.sampled_from(list(bs.ENTROPY_CODERS))),
        codebook_span=draw(st.integers(0, bs.MAX_GOP_LENGTH)),
    )


@st.composite
def gop_units(draw):
    k = draw(st.integers(3, bs.MAX_K))
    return bs.GopUnit(
        gop_index=draw(st.integers(0, 2**32 - 1)), first_frame=draw(st.integers(0, 2**32 - 1)),
        frame_count=draw(st.integers(1, bs.MAX_GOP_LENGTH)), codebook_k=k,
        codebook_m=draw(st.integers(1, min(bs.MAX_M, k - 1))), codebook_m_tail=draw(st.integers(1, min(bs.MAX_M, k))),
        m_plus_steps=draw(st.integers(0, 255)), keyframe=draw(st.booleans()),
        prompt=draw(st.none() | st.text(max_size=50)),
        anchors=draw(st.lists(st.builds(bs.Anchor, st.sampled_from(["first", "last"]), st.integers(0, 255), st.binary(max_size=300)), max_size=2)),
        indices=draw(st.binary(max_size=2000)), residual=draw(st.none() | st.binary(max_size=500)),
        frame_hash=draw(st.binary(min_size=16, max_size=16)),
    )


@given(headers())
@settings(max_examples=200, deadline=None)
def test_sequence_header_round_trip(h):
    data = h.to_bytes()
    assert bs.SequenceHeader.from_bytes(data) == h


@given(gop_units())
@settings(max_examples=200, deadline=None)
def test_gop_unit_round_trip(g):
    data = g.to_bytes()
    back = bs.GopUnit.from_bytes(data)
    assert back == g
    assert back.to_bytes() == data


@given(st.lists(gop_units(), min_size=1, max_size=4), headers())
@settings(max_examples=30, deadline=None)
def test_elementary_stream_round_trip(gops, h):
    f = io.BytesIO()
    bs.write_elementary(f, h, gops)
    f.seek(0)
    header, units = bs.read_elementary(f)
    assert header == h
    assert [bs.GopUnit.from_bytes(u) for u in units] == gops


def _header():
    return bs.SequenceHeader(mode="i2v", width=352, height=288, fps=Fraction(30000, 1001), frame_count=65,
                             gop_length=33, gop_overlap=1, prior_id="analytic-v1", prior_sha256=bytes(range(32)),
                             latent_channels=16, spatial_stride=8, temporal_stride=1)


def _gop(i=0):
    return bs.GopUnit(gop_index=i, first_frame=32 * i, frame_count=33, codebook_k=256, codebook_m=8, codebook_m_tail=16,
                      indices=bytes(range(200)), anchors=[bs.Anchor("first", 1, b"x" * 50)], residual=b"r" * 30)


def test_crc_mismatch_is_detected():
    data = bytearray(_gop().to_bytes())
    data[30] ^= 0x40
    with pytest.raises(BitstreamError, match="CRC"):
        bs.GopUnit.from_bytes(bytes(data))


def test_truncated_unit():
    data = _gop().to_bytes()
    with pytest.raises(BitstreamError, match="truncated"):
        bs.GopUnit.from_bytes(data[:-5])


def test_absurd_length_rejected_without_reading():
    data = bytearray(_gop().to_bytes())
    data[5:9] = (0xFFFFFFF0).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        bs.parse_unit(bytes(data))


def test_absurd_inner_length_is_an_error_not_an_allocation():
    # A length field inside the payload claims 4 GB: the CRC is recomputed so only the syntax is wrong.
    g = _gop()
    payload = bytearray(bs.GopUnitSyntax.build(dict(
        gop_index=0, first_frame=0, frame_count=33, flags=dict(keyframe=True, has_prompt=False, has_residual=False, reserved=0),
        codebook_k=256, codebook_m=8, codebook_m_tail=8, m_plus_steps=0, prompt=None, anchors=[], indices=g.indices,
        residual=None, frame_hash=bytes(16))))
    at = payload.index(g.indices) - 4
    payload[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match="malformed GOP unit"):
        bs.GopUnit.from_bytes(bs.build_unit("gop", bytes(payload)))


def test_header_limits_enforced_on_parse():
    h = _header()
    payload = bytearray(bs.parse_unit(h.to_bytes())[1])
    payload[0] = 9  # version
    with pytest.raises(BitstreamError, match="version 9"):
        bs.SequenceHeader.from_payload(bytes(payload))
    payload = bytearray(bs.parse_unit(h.to_bytes())[1])
    payload[3:5] = (60000).to_bytes(2, "big")  # width
    with pytest.raises(BitstreamError, match="picture size"):
        bs.SequenceHeader.from_payload(bytes(payload))


def test_wrong_unit_type():
    with pytest.raises(BitstreamError, match="expected a GOP unit"):
        bs.GopUnit.from_bytes(_header().to_bytes())


def test_damaged_unit_does_not_take_the_others():
    good = [_gop(i).to_bytes() for i in range(4)]
    damaged = bytearray(good[1])
    damaged[40] ^= 1
    lost_length = bytearray(good[2])
    lost_length[6] ^= 0x7F  # length field corrupted
    stream = _header().to_bytes() + good[0] + bytes(damaged) + bytes(lost_length) + good[3]
    header, units = bs.read_elementary(io.BytesIO(stream))
    got = list(units)
    parsed = [bs.GopUnit.from_bytes(u).gop_index for u in got if isinstance(u, bytes)]
    assert parsed == [0, 3]
    assert any(isinstance(u, BitstreamError) for u in got)


def test_unit_crc_covers_all_framing():
    data = _gop().to_bytes()
    assert int.from_bytes(data[-4:], "big") == zlib.crc32(data[:-4])
    assert data[:4] == bs.SYNC


def test_spec_document_matches_construct_structures():
    text = spec.DOC.read_text()
    for name in spec.STRUCTURES:
        assert spec.table(name) in text, f"docs/bitstream.md table for {name} is stale: run python -m container.spec --write"
    assert spec.refresh(text) == text


def test_spec_document_mentions_every_limit():
    text = spec.DOC.read_text()
    assert f"version` is {bs.VERSION}" in text
    for word in ("64 MiB", "8192", "1025", "2²⁰", "1024", "4096"):
        assert word in text


def test_v1_header_reads_as_span_one_and_v2_carries_the_span():
    v1 = _header()
    v1.version = 1
    data = v1.to_bytes()
    back = bs.SequenceHeader.from_bytes(data)
    assert back.version == 1 and back.codebook_span == 1 and back.to_bytes() == data  # remux keeps v1 bytes
    for span in (0, 1, 4, 1025):
        h = _header()
        h.codebook_span = span
        assert bs.SequenceHeader.from_bytes(h.to_bytes()).codebook_span == span
    v1.codebook_span = 3
    with pytest.raises(BitstreamError, match="v1 header"):
        v1.to_bytes()


def test_a_v1_stream_from_the_v1_encoder_still_decodes_to_the_same_frames(tmp_path):
    import hashlib
    from pathlib import Path

    from gvc.cli import main

    conf = Path(__file__).parent / "conformance"
    out = tmp_path / "out.y4m"
    assert main(["decode", str(conf / "v1_i2v_carphone.gvc"), "-o", str(out), "-q"]) == 0
    expected = (conf / "v1_i2v_carphone.md5").read_text().split()[0]
    assert hashlib.md5(out.read_bytes()).hexdigest() == expected
