"""Seeking (gvc.seek): a decode of a range reads from the keyframe the range needs (Matroska Cues, .gvc
unit index), samples only the GOPs it must, and gives the same frames as that range of a full decode;
I2V --refresh makes keyframes that end a damaged GOP's harm. Real clip (carphone), analytic prior."""

import subprocess
import sys

import numpy as np
import pytest

from container.io import StreamReader
from container.unit_index import scan_units
from ffmpeg_bridge.video_io import VideoReader
from gvc.codec import GopCodec
from gvc.config import CodecConfig, DecodeConfig
from gvc.errors import ParameterError
from gvc.pipeline import decode_stream, encode_stream
from gvc.seek import SeekRequest, frame_range, parse_time
from tests.frame_sink import FrameSink

FRAMES = 17  # GOP length 5: T2V GOPs output [0,5) [5,10) [10,15) [15,17); I2V/FLF2V [0,5) [5,9) [9,13) [13,17)
TINY = dict(quality=2, gop_length=5, steps=4, ode_tail=1)



@pytest.fixture(scope="module")
def clip17(tmp_path_factory, clip, ffmpeg):
    out = tmp_path_factory.mktemp("seek") / "carphone17.y4m"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(clip("carphone_176x144.mp4")),
                    "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def streams(tmp_path_factory, clip17):
    """(mode, refresh) -> (.mkv path, .gvc path, full decode frames)."""
    made = {}
    folder = tmp_path_factory.mktemp("streams")

    def get(mode, refresh=0):
        if (mode, refresh) not in made:
            paths = []
            for ext in ("mkv", "gvc"):
                path = folder / f"{mode}_{refresh}.{ext}"
                with VideoReader(str(clip17)) as r:
                    encode_stream(r, str(path), CodecConfig(mode=mode, refresh=refresh, prior="analytic", **TINY).validate())
                paths.append(path)
            full = decode(paths[0])[0]
            assert len(full) == FRAMES
            made[(mode, refresh)] = (*paths, full)
        return made[(mode, refresh)]

    return get


def decode(path, seek=None, monkeypatch=None):
    """Frames, {role: [GOP indices]} (output: on_gop; reference: GopCodec.skip calls) and the GOPs actually
    sampled (GopCodec.decode calls), which the report's `sampled` list must agree with."""
    sampled, roles = [], {}
    if monkeypatch is not None:
        real_decode, real_skip = GopCodec.decode, GopCodec.skip
        monkeypatch.setattr(GopCodec, "decode", lambda self, unit, *a, **kw: sampled.append(unit.gop_index)
                            or real_decode(self, unit, *a, **kw))
        monkeypatch.setattr(GopCodec, "skip", lambda self, unit, *a, **kw: roles.setdefault("reference", []).append(
            unit.gop_index) or real_skip(self, unit, *a, **kw))
    sink = FrameSink()
    report = decode_stream(str(path), lambda h: sink, DecodeConfig(prior="analytic"), seek=seek,
                           on_gop=lambda record: roles.setdefault("output", []).append(record.gop))
    assert report.events == []
    if monkeypatch is not None:
        assert report.sampled == sampled
    return sink.frames, roles, sampled


# (mode, refresh, start frame, frames, GOPs sampled, GOPs output, reference GOPs)
CASES = [
    ("t2v", 0, 11, 6, [2, 3], [2, 3], []),
    ("flf2v", 0, 10, 5, [2, 3], [2, 3], [1]),  # GOP 1 read for its last anchor only: not sampled
    ("i2v", 2, 14, 2, [2, 3], [3], [2]),  # GOP 2 is a refresh keyframe: GOPs 0 and 1 untouched
    ("i2v", 0, 14, 2, [0, 1, 2, 3], [3], [0, 1, 2]),  # without --refresh the chain starts at GOP 0
    ("i2v", 2, 6, 1, [0, 1], [1], [0]),
]


@pytest.mark.parametrize("fmt", ["mkv", "gvc"])
@pytest.mark.parametrize("mode,refresh,start,n,sampled,output,reference", CASES)
def test_seek_decodes_only_the_needed_gops_and_the_same_frames(streams, monkeypatch, fmt, mode, refresh, start, n,
                                                               sampled, output, reference):
    mkv, gvc, full = streams(mode, refresh)
    got, roles, calls = decode(mkv if fmt == "mkv" else gvc, SeekRequest(start_frame=start, frames=n), monkeypatch)
    assert calls == sampled
    assert roles.get("output", []) == output and roles.get("reference", []) == reference
    assert len(got) == n and all(np.array_equal(a, b) for a, b in zip(got, full[start:start + n]))


@pytest.mark.parametrize("fmt", ["mkv", "gvc"])
def test_reader_starts_at_the_keyframe_before_the_target(streams, fmt):
    """Cues (mkv) and the unit index (gvc) land on the refresh keyframe, not on GOP 0."""
    mkv, gvc, _ = streams("i2v", 2)
    with StreamReader(str(mkv if fmt == "mkv" else gvc)) as r:
        first = next(r.units(from_gop=3, keyframe=True))
        assert (first.gop_index, first.keyframe) == (2, True)
        assert next(r.units(from_gop=1, keyframe=True)).gop_index == 0


def test_refresh_makes_keyframes_with_their_own_anchor(streams):
    mkv, _, _ = streams("i2v", 2)
    with StreamReader(str(mkv)) as r:
        units = list(r.units())
    assert [u.keyframe for u in units] == [True, False, True, False]
    assert [[a.role for a in u.anchors] for u in units] == [["first"], [], ["first"], []]


def test_damaged_gop_harm_ends_at_the_next_keyframe(tmp_path, streams):
    """GOP 1 of an I2V --refresh 2 stream destroyed: GOP 2 and 3 still decode bit-exactly (their hashes match)."""
    _, gvc, full = streams("i2v", 2)
    data = bytearray(gvc.read_bytes())
    with open(gvc, "rb") as f:
        gop1 = next(e for e in scan_units(f) if e.gop_index == 1)
    data[gop1.offset + 30] ^= 0xFF
    bad = tmp_path / "bad.gvc"
    bad.write_bytes(bytes(data))
    sink = FrameSink()
    problems = decode_stream(str(bad), lambda h: sink, DecodeConfig(prior="analytic")).as_dict()["problems"]
    assert any("GOP 1" in p or "after GOP 0" in p for p in problems)
    assert not any("hash mismatch" in p for p in problems)  # GOPs 2, 3 decode as encoded
    assert all(np.array_equal(a, b) for a, b in zip(sink.frames[9:], full[9:]))
    assert not np.array_equal(sink.frames[5], full[5])  # GOP 1 concealed


def test_time_forms(streams, tmp_path):
    mkv, _, full = streams("t2v")
    with StreamReader(str(mkv)) as r:
        h = r.header
    assert parse_time("00:00:01.5") == parse_time("1.5") == parse_time("0:1.5")
    assert frame_range(h, start="0.2", duration="0.1") == (6, 9)  # 0.2 s × 29.97 = 5.99 → frame 6
    with pytest.raises(ParameterError, match="past the end"):
        frame_range(h, start_frame=FRAMES)
    with pytest.raises(ParameterError, match="bad time"):
        frame_range(h, start="1.2.3")
    out = tmp_path / "part.y4m"
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "decode", str(mkv), "-o", str(out), "-q", "--prior", "analytic",
                        "--start", "0.2", "--duration", "0.1"], capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    with VideoReader(str(out)) as r:
        got = list(r)
    assert len(got) == 3  # y4m out is 4:2:0: compare with the full decode through the same writer
    full_y4m = tmp_path / "full.y4m"
    subprocess.run([sys.executable, "-m", "gvc.cli", "decode", str(mkv), "-o", str(full_y4m), "-q"], check=True)
    with VideoReader(str(full_y4m)) as r:
        whole = list(r)
    assert all(np.array_equal(a, b) for a, b in zip(got, whole[6:9]))
