"""Bitstream v4 (and v3 reading): round trips over every structure, framing/CRC errors, semantic validation, limits, the refusal of
v1/v2 streams, spec-document agreement, and decoded frames identical to the v2 era's."""

import hashlib
import io
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from container import bitstream as bs
from container import spec
from gvc.cli import main
from gvc.entropy.combinatorial import combination_bits
from gvc.errors import BitstreamError

CONFORMANCE = Path(__file__).parent / "conformance"
ascii_id = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)


def enum_of(mapping):
    return st.sampled_from(list(mapping))


@st.composite
def headers(draw):
    gop = draw(st.integers(2, bs.MAX_GOP_LENGTH))
    k = draw(st.integers(2, bs.MAX_K))
    mode = draw(enum_of(bs.MODES))
    m = draw(st.integers(1, min(bs.MAX_M, k - 1)))
    i2v = mode == "i2v"
    return bs.SequenceHeader(
        mode=mode, width=draw(st.integers(16, bs.MAX_DIMENSION)), height=draw(st.integers(16, bs.MAX_DIMENSION)),
        fps=Fraction(draw(st.integers(1, 240000)), draw(st.integers(240, 1001))).limit_denominator(1001),
        frame_count=draw(st.integers(0, bs.MAX_FRAMES)), gop_length=gop, gop_overlap=0 if mode == "t2v" else 1,
        prior_id=draw(ascii_id), prior_sha256=draw(st.binary(min_size=32, max_size=32)),
        latent_channels=draw(st.integers(1, 1024)), spatial_stride=draw(st.integers(1, 64)),
        temporal_stride=draw(st.integers(1, 16)), steps=draw(st.integers(2, 200)), ode_tail=draw(st.integers(0, 1)),
        gamma=draw(st.sampled_from([0.0, 0.5, 2.0, 3.0])), shift=draw(st.sampled_from([1.0, 3.0, 5.0])),
        seed=draw(st.integers(0, 2**32 - 1)), codebook_k=k, codebook_m=m,
        codebook_m_tail=draw(st.integers(1, min(bs.MAX_M, k))) if i2v else m,
        tail_latent_frames=draw(st.integers(0, 4)) if i2v else 0, pixel_format=draw(enum_of(bs.PIXEL_FORMATS)),
        color_range=draw(enum_of(bs.COLOR_RANGES)), entropy_coder=draw(enum_of(bs.ENTROPY_CODERS)),
        codebook_span=draw(st.integers(0, bs.MAX_GOP_LENGTH)), compute_dtype=draw(enum_of(bs.COMPUTE_DTYPES)),
        codebook_family=draw(enum_of(bs.CODEBOOK_FAMILIES)), profile=draw(st.integers(0, 255)),
    )


@st.composite
def anchor_pictures(draw):
    return dict(flags=dict(header_stripped=draw(st.booleans()), color_transform=draw(enum_of(bs.COLOR_TRANSFORMS))),
                pad_w=draw(st.integers(0, bs.MAX_ANCHOR_PAD)), pad_h=draw(st.integers(0, bs.MAX_ANCHOR_PAD)),
                data=draw(st.binary(max_size=300)))


@st.composite
def residual_headers(draw):
    return dict(model=draw(enum_of(bs.RESIDUAL_MODELS)), channels=draw(st.integers(0, 1024)),
                height=draw(st.integers(0, 2048)), width=draw(st.integers(0, 2048)),
                step=draw(st.floats(0.125, 100, width=32)), rounding=draw(st.integers(1, 128)))


@st.composite
def residual_payloads(draw):
    words = draw(st.lists(st.integers(0, 2**32 - 1), max_size=50))
    return dict(header=draw(residual_headers()), words=np.array(words, dtype=np.uint32))


@st.composite
def index_set_payloads(draw):
    """(value, params) of IndexSetsSyntax: sets of M of K with a random rank and signs."""
    k = draw(st.integers(1, 70000))
    atoms = draw(st.lists(st.integers(0, min(k, 64)), max_size=12))
    rank_bits = [combination_bits(k, m) for m in atoms]
    sets = [dict(rank=draw(st.integers(0, (1 << b) - 1)), signs=draw(st.lists(st.booleans(), min_size=m, max_size=m)))
            for b, m in zip(rank_bits, atoms)]
    return dict(sets=sets), dict(rank_bits=rank_bits, atoms=atoms)


def _anchor_payload(role="first", codec="av1-intra", data=b"x" * 50):
    pic = bs.AnchorPictureSyntax.build(dict(flags=dict(header_stripped=False, color_transform="ycbcr601"),
                                            pad_w=0, pad_h=1, data=data))
    return bs.Anchor(role, bs.ANCHOR_CODECS[codec], pic)


def _residual_payload(channels=16, height=36, width=44, words=(1, 2, 3)):
    return bs.ResidualPayloadSyntax.build(dict(
        header=dict(model="context", channels=channels, height=height, width=width, step=0.35, rounding=102),
        words=np.array(words, np.uint32)))


@st.composite
def gop_units(draw):
    k = draw(st.integers(3, bs.MAX_K))
    frame_count = draw(st.integers(1, bs.MAX_GOP_LENGTH))
    roles = draw(st.lists(enum_of(bs.ANCHOR_ROLES), max_size=2, unique=True))
    anchors = [bs.Anchor(r, bs.ANCHOR_CODECS[draw(enum_of(bs.ANCHOR_CODECS))],
                         bs.AnchorPictureSyntax.build(draw(anchor_pictures()))) for r in roles]
    residual = draw(st.none() | residual_payloads())
    return bs.GopUnit(
        gop_index=draw(st.integers(0, 2**32 - 1)), first_frame=draw(st.integers(0, bs.MAX_FRAMES - frame_count)),
        frame_count=frame_count, codebook_k=k,
        codebook_m=draw(st.integers(1, min(bs.MAX_M, k - 1))), codebook_m_tail=draw(st.integers(1, min(bs.MAX_M, k - 1))),
        m_plus_steps=draw(st.integers(0, 200)), keyframe=draw(st.booleans()),
        prompt=draw(st.none() | st.text(max_size=50)), anchors=anchors,
        indices=draw(st.binary(max_size=2000)),
        residual=None if residual is None else bs.ResidualPayloadSyntax.build(residual),
        frame_hash=draw(st.binary(min_size=16, max_size=16)),
    )


def _equal(a, b) -> bool:
    """Containers equal field by field (numpy arrays by value; construct's bookkeeping keys ignored)."""
    if isinstance(a, dict):
        return all(_equal(v, b[k]) for k, v in a.items() if not k.startswith("_"))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


# One strategy per structure of the spec; test_every_structure_has_a_round_trip keeps this complete.
ROUND_TRIPS = {
    "Unit": st.builds(lambda t, p: (dict(body=dict(value=dict(unit_type=t, length=len(p), payload=p))), {}),
                      enum_of(bs.UNIT_TYPES), st.binary(max_size=600)),
    "SequenceHeader": headers().map(
        lambda h: ({**{k: v for k, v in h.__dict__.items() if k != "fps"}, "fps_num": h.fps.numerator,
                    "fps_den": h.fps.denominator}, {})),
    "GopUnit": gop_units().map(lambda g: (g, {})),
    "Anchor": st.builds(lambda r, c, p: (dict(role=r, codec=c, picture=dict(value=p)), {}),
                        enum_of(bs.ANCHOR_ROLES), enum_of(bs.ANCHOR_CODECS), anchor_pictures()),
    "AnchorPicture": anchor_pictures().map(lambda v: (v, {})),
    "ResidualHeader": residual_headers().map(lambda v: (v, {})),
    "ResidualPayload": residual_payloads().map(lambda v: (v, {})),
    "IndexSets": index_set_payloads(),
    "IndexSet": index_set_payloads(),  # exercised inside IndexSets (it needs the array index)
}


def test_every_structure_has_a_round_trip():
    assert set(ROUND_TRIPS) == set(spec.STRUCTURES)


@pytest.mark.parametrize("name", [n for n in spec.STRUCTURES if n not in ("GopUnit", "IndexSet")])
def test_structure_round_trip(name):
    syntax = spec.STRUCTURES[name]

    @given(ROUND_TRIPS[name])
    @settings(max_examples=60, deadline=None)
    def check(case):
        value, params = case
        data = syntax.build(value, **params)
        back = syntax.parse(data, **params)
        assert _equal(value, back)
        assert syntax.build(back, **params) == data

    check()


@given(headers())
@settings(max_examples=150, deadline=None)
def test_sequence_header_round_trip(h):
    data = h.to_bytes()
    assert bs.SequenceHeader.from_bytes(data) == h


@given(gop_units())
@settings(max_examples=150, deadline=None)
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


def _header(**kw):
    base = dict(mode="i2v", width=352, height=288, fps=Fraction(30000, 1001), frame_count=65, gop_length=33,
                gop_overlap=1, prior_id="analytic-v1", prior_sha256=bytes(range(32)), latent_channels=16,
                spatial_stride=8, temporal_stride=1, steps=20, ode_tail=3, gamma=3.0, shift=3.0, seed=0, codebook_k=256,
                codebook_m=8, codebook_m_tail=16, tail_latent_frames=2, codebook_span=1)
    return bs.SequenceHeader(**{**base, **kw})


def _gop(i=0, **kw):
    base = dict(gop_index=i, first_frame=32 * i, frame_count=33, codebook_k=256, codebook_m=8, codebook_m_tail=16,
                indices=bytes(range(200)), anchors=[_anchor_payload()] if i == 0 else [], keyframe=i == 0,
                residual=_residual_payload())
    return bs.GopUnit(**{**base, **kw})


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
    data = _gop().to_bytes()
    forged = data[:5] + bs.cs.VarInt.build(bs.MAX_UNIT_BYTES + 1) + data[7:]
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        bs.parse_unit(forged)


def test_absurd_inner_length_is_an_error_not_an_allocation():
    # A length field inside the payload claims 4 GB: the CRC is recomputed so only the syntax is wrong.
    g = _gop(anchors=[], residual=None)
    payload = bytearray(bs.parse_unit(g.to_bytes())[1])
    at = payload.index(g.indices) - 2  # the indices' 2-byte VarInt length (200)
    payload[at:at + 2] = bs.cs.VarInt.build(0xFFFFFFFF)[:2]
    with pytest.raises(BitstreamError, match="malformed GOP unit"):
        bs.GopUnit.from_bytes(bs.build_unit("gop", bytes(payload)))


def test_header_limits_enforced_on_parse():
    payload = bytearray(bs.parse_unit(_header().to_bytes())[1])
    with pytest.raises(BitstreamError, match=r"^bitstream version 5 is not supported: .* \(a newer GVC wrote it\)$"):
        bs.SequenceHeader.from_payload(bytes([5]) + bytes(payload[1:]))
    payload[3:5] = bs.cs.VarInt.build(60000)[:2]  # width 352 (2 bytes) -> 60000 (3 bytes) overlaps height
    with pytest.raises(BitstreamError):
        bs.SequenceHeader.from_payload(bytes(payload))
    h = _header()
    h.width = 60000
    with pytest.raises(BitstreamError, match="picture size"):
        h.to_bytes()


def _raw_header_payload(fields: dict) -> bytes:
    """A sequence header payload from field values where enums may be raw integers (undefined ones included)."""
    plain = bs.cs.Struct(*[s.name / (s.subcon.subcon if isinstance(s.subcon, bs.DefinedEnum) else s.subcon)
                           for s in bs.SequenceHeaderSyntax.subcons])
    d = dict(fields)
    for s in bs.SequenceHeaderSyntax.subcons:
        if isinstance(s.subcon, bs.DefinedEnum) and isinstance(d[s.name], str):
            d[s.name] = s.subcon.encmapping[d[s.name]]
    return plain.build(d)


def _header_payload(**fields) -> bytes:
    h = _header()
    d = {**{k: v for k, v in h.__dict__.items() if k != "fps"}, "fps_num": 30000, "fps_den": 1001}
    return _raw_header_payload({**d, **fields})


@pytest.mark.parametrize("field,value", [("pixel_format", 255), ("mode", 3), ("color_range", 2),
                                         ("entropy_coder", 9), ("index_coding", 1), ("compute_dtype", 3),
                                         ("autoencoder_dtype", 3), ("codebook_family", 2)])
def test_undefined_header_enums_are_refused_with_their_name(field, value):
    with pytest.raises(BitstreamError, match=rf"^malformed sequence header: {field}: undefined value {value}"):
        bs.SequenceHeader.from_payload(_header_payload(**{field: value}))


def test_undefined_gop_enums_are_refused():
    g = _gop()
    payload = bytearray(bs.parse_unit(g.to_bytes())[1])
    at = payload.index(g.anchors[0].data) - 3  # role, codec, 1-byte length
    for offset, value, name in ((0, 2, "role"), (1, 9, "codec")):
        bad = bytearray(payload)
        bad[at + offset] = value
        with pytest.raises(BitstreamError, match=rf"{name}: undefined value {value}"):
            bs.GopUnit.from_bytes(bs.build_unit("gop", bytes(bad)))
    bad = bytearray(payload)
    bad[payload.index(g.residual)] = 7  # residual model
    with pytest.raises(BitstreamError, match="model: undefined value 7"):
        bs.GopUnit.from_bytes(bs.build_unit("gop", bytes(bad)))


def test_reserved_bits_are_refused():
    payload = bytearray(bs.parse_unit(_gop().to_bytes())[1])
    payload[3] |= 0x01  # GOP flags byte (gop_index, first_frame, frame_count are 1 byte each)
    with pytest.raises(BitstreamError, match="reserved"):
        bs.GopUnit.from_bytes(bs.build_unit("gop", bytes(payload)))


def test_header_semantics():
    for kw, what in [(dict(gop_overlap=0), "GOP overlap"), (dict(mode="t2v", gop_overlap=0), "tail latent frames"),
                     (dict(codebook_m=256), "atoms per step"), (dict(gamma=float("nan")), "γ"),
                     (dict(prior_id=""), "prior id")]:
        with pytest.raises(BitstreamError, match=what):
            _header(**kw).to_bytes()


def test_gop_checked_against_the_header():
    h = _header()
    bs.check_gop(_gop(0), h)
    bs.check_gop(_gop(1), h)
    # the default (Wan) prior: spatial_stride 16 pads, its latent is H/8 x W/8 (the README main job's residual)
    bs.check_gop(_gop(0), _header(spatial_stride=16))
    t2v = _header(mode="t2v", gop_overlap=0, codebook_m_tail=8, tail_latent_frames=0)
    cases = [
        (h, _gop(1, first_frame=33), "GOP plan puts it at 32"),
        (h, _gop(0, frame_count=34), "GOP length is 33"),
        (h, _gop(2, frame_count=33), "beyond the header's 65 frames"),
        (h, _gop(0, m_plus_steps=18), "noisy steps"),
        (h, _gop(1, anchors=[_anchor_payload("last")]), "i2v allows"),
        (h, _gop(1, keyframe=True), "keyframe flag True but first anchor absent"),
        (h, _gop(0, anchors=[], keyframe=False), "GOP 0 must carry its first frame"),
        (h, _gop(0, prompt="hi"), "prompt in i2v"),
        (h, _gop(0, residual=_residual_payload(height=289)), "residual of 16x289x44, larger"),
        (t2v, _gop(0, anchors=[], keyframe=False, codebook_m_tail=8, residual=None), "every T2V GOP is a keyframe"),
        (t2v, _gop(0, anchors=[], residual=None), "only I2V has a separate M_tail"),
        (t2v, _gop(0, anchors=[_anchor_payload()], codebook_m_tail=8, residual=None), "t2v allows none"),
        (t2v, _gop(0, anchors=[], codebook_m_tail=8), "residual in t2v"),
    ]
    for header, unit, what in cases:
        with pytest.raises(BitstreamError, match=what):
            bs.check_gop(unit, header)
        # the stream reader checks on parse
        with pytest.raises(BitstreamError, match=what):
            bs.GopUnit.from_bytes(unit.to_bytes(), header)
    with pytest.raises(BitstreamError, match="frame limit"):
        _gop(0, gop_index=2**32 - 1, first_frame=bs.MAX_FRAMES).to_bytes()


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
    for word in ("64 MiB", "8192", "1025", "2²⁰", "1024", "4096", "2²⁴"):
        assert word in text


# -- old streams ---------------------------------------------------------------------------------------

def test_v1_and_v2_streams_are_refused_with_one_line(tmp_path, capsys):
    """docs/bitstream.md §Versioning: v1/v2 streams are refused, not read (no legacy path is kept)."""
    old = CONFORMANCE / "v1_i2v_carphone.gvc"
    for argv in (["decode", str(old), "-o", str(tmp_path / "out.y4m"), "-q"], ["info", str(old)]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err == ("gvc: error: bitstream version 1 is not supported: this decoder reads versions 3 and 4 "
                       "(re-encode the source with this GVC)")
    assert not (tmp_path / "out.y4m").exists()
    v2 = bytearray(old.read_bytes())
    v2[9] = 2  # the version byte of the v1/v2 header payload
    with pytest.raises(BitstreamError, match="^bitstream version 2 is not supported"):
        bs.read_elementary(io.BytesIO(bytes(v2)))
    with pytest.raises(BitstreamError, match="^bitstream version 2 is not supported"):
        bs.SequenceHeader.from_bytes(bytes(v2))


def test_v3_headers_are_read_with_an_fp32_autoencoder():
    """docs/bitstream.md §Versioning: v4 added autoencoder_dtype; a v3 header (without it) reads as fp32."""
    v4 = _header(autoencoder_dtype="bf16", compute_dtype="bf16")
    assert bs.SequenceHeader.from_bytes(v4.to_bytes()) == v4 and v4.version == 4
    v3 = _header(version=3, compute_dtype="bf16")
    payload = bs.parse_unit(v3.to_bytes())[1]
    assert payload[0] == 3 and len(payload) == len(bs.parse_unit(v4.to_bytes())[1]) - 1  # one byte less
    back = bs.SequenceHeader.from_payload(payload)
    assert back == v3 and back.autoencoder_dtype == "fp32" and back.compute_dtype == "bf16"
    with pytest.raises(BitstreamError, match="version 3 header cannot record autoencoder_dtype"):
        _header(version=3, autoencoder_dtype="bf16").to_bytes()


# -- decoding: same frames as the v2 era, M_tail, unsupported header values ---------------------------

# MD5 of the decoded y4m of `gvc encode carphone --prior analytic --frames 9 --gop-length 5 --steps 6 --ode-tail 1
# --mode MODE --quality Q` (gaussian codebook), produced by the v2 codec (main at 3b42526, before bitstream v3) on the reference machine.
V2_ERA_DECODES = {
    ("t2v", 8): "5d46ccc6160ff0fe0e3170bffb025fae",
    ("i2v", 8): "98d8e1e1f18a19f644c20c1eeabdfbd6",
    ("flf2v", 8): "4cc0ab67ae7bf8c5be2811531168e74b",
    ("i2v", 200): "65bea72b51693edfbcb82925003c2174",
}


def _encode(clip, tmp_path, mode, quality, name="s.gvc"):
    out = tmp_path / name
    assert main(["encode", str(clip), "-o", str(out), "--mode", mode, "--quality", str(quality), "--prior", "analytic",
                 "--frames", "9", "--gop-length", "5", "--steps", "6", "--ode-tail", "1", "-q",
                 "--anchor-quality", "50", "--residual-step", "0.35",  # the levers before the quality ladder
                 "--codebook-family", "gaussian"]) == 0  # the family before hadamard became the default
    return out


@pytest.mark.parametrize("mode,quality", sorted(V2_ERA_DECODES))
def test_v4_decodes_to_the_same_frames_as_v2(clip, tmp_path, mode, quality):
    stream = _encode(clip("carphone_176x144.mp4"), tmp_path, mode, quality)
    out = tmp_path / "out.y4m"
    assert main(["decode", str(stream), "-o", str(out), "-q"]) == 0
    assert hashlib.md5(out.read_bytes()).hexdigest() == V2_ERA_DECODES[(mode, quality)]
    with open(stream, "rb") as f:
        header, units = bs.read_elementary(f)
        gops = [bs.GopUnit.from_bytes(u, header) for u in units]
    assert header.version == bs.VERSION and len(gops) == 2
    if quality == 200:  # above quality 128 the header and every GOP unit agree on M_tail (v2: 256 vs 400)
        assert header.codebook_m_tail == 400 == gops[0].codebook_m_tail == gops[1].codebook_m_tail


def _rewrite_header(stream: Path, **fields) -> None:
    """Replace the stream's sequence header by one with ``fields`` changed (raw integers allowed for enums)."""
    data = stream.read_bytes()
    _, payload = bs.parse_unit(data)
    n = len(bs.build_unit("sequence_header", payload))
    c = bs.SequenceHeaderSyntax.parse(payload)
    old = {k: v for k, v in c.items() if not k.startswith("_")}
    stream.write_bytes(bs.build_unit("sequence_header", _raw_header_payload({**old, **fields})) + data[n:])


def test_decode_refuses_an_arithmetic_the_prior_cannot_replay(clip, tmp_path, capsys):
    from gvc.priors import AnalyticPrior

    stream = _encode(clip("carphone_176x144.mp4"), tmp_path, "t2v", 8)
    _rewrite_header(stream, compute_dtype="bf16")
    assert main(["decode", str(stream), "-o", str(tmp_path / "o.y4m"), "-q"]) == 1
    assert capsys.readouterr().err.strip() == (f"gvc: error: stream needs bf16 transformer arithmetic; prior "
                                               f"'{AnalyticPrior.name}' computes in fp32 only")


def test_decoder_follows_the_codebook_family_field(clip, tmp_path, capsys):
    """The decoder regenerates the atoms of the family the header names: relabelling a gaussian stream as
    hadamard decodes other noise, which the frame hash reports (a warning, exit 0)."""
    stream = _encode(clip("carphone_176x144.mp4"), tmp_path, "t2v", 8)
    _rewrite_header(stream, codebook_family="hadamard")
    assert main(["decode", str(stream), "-o", str(tmp_path / "o.y4m"), "-q"]) == 0
    assert "frame hash mismatch" in capsys.readouterr().err


def test_decode_and_info_refuse_an_undefined_enum(clip, tmp_path, capsys):
    stream = _encode(clip("carphone_176x144.mp4"), tmp_path, "t2v", 8)
    _rewrite_header(stream, pixel_format=255)
    for argv in (["info", str(stream)], ["decode", str(stream), "-o", str(tmp_path / "o.y4m"), "-q"]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("gvc: error: malformed sequence header: pixel_format: undefined value 255") and "\n" not in err
