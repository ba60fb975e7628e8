"""Matroska mapping of GVC streams: our EBML writer and reader, checked against the real PyAV/FFmpeg, no mocks."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import threading
from fractions import Fraction

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from container import matroska as mk
from container.matroska import MatroskaReader, MatroskaWriter, MkvPacket
from gvc.errors import BitstreamError, ParameterError

FPS_VALUES = [Fraction(30000, 1001), Fraction(25), Fraction(10), Fraction(24000, 1001), Fraction(60000, 1001)]
SEQ_HEADER = bytes(range(256))[:173]


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    try:
        from ffmpeg_bridge.ffmpeg import ffmpeg_exe
        return str(ffmpeg_exe())
    except Exception:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()


class NonSeekable(io.RawIOBase):
    """A write-only sink that refuses to seek, like a pipe."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, b):
        self.buf += b
        return len(b)


def make_packets(rng: random.Random, n: int, *, start: int = 0, first_key: bool = True,
                 max_size: int = 5000, max_dur: int = 48) -> list[MkvPacket]:
    out, pts = [], start
    for i in range(n):
        dur = rng.randint(1, max_dur)
        out.append(MkvPacket(rng.randbytes(rng.randint(1, max_size)), pts, dur,
                             (i == 0 and first_key) or rng.random() < 0.4))
        pts += dur + (rng.randint(0, 3) if rng.random() < 0.2 else 0)
    return out


def write_file(path_or_file, packets, fps, **kw) -> None:
    kw.setdefault("width", 320)
    kw.setdefault("height", 240)
    with MatroskaWriter(path_or_file, fps=fps, codec_private=kw.pop("codec_private", SEQ_HEADER), **kw) as w:
        for p in packets:
            w.write(p)


def read_all(src) -> tuple[MatroskaReader, list[MkvPacket]]:
    with MatroskaReader(src) as r:
        return r, list(r.packets())


# --------------------------------------------------------------------------------------------- round trip
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fps=st.sampled_from(FPS_VALUES), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10),
       start=st.one_of(st.just(0), st.integers(0, 2_000_000)), first_key=st.booleans(),
       seekable=st.booleans(), max_dur=st.sampled_from([1, 16, 400]))
def test_reader_and_pyav_demux_exactly_what_was_written(fps, seed, n, start, first_key, seekable, max_dur):
    rng = random.Random(seed)
    packets = make_packets(rng, n, start=start, first_key=first_key, max_dur=max_dur)
    if seekable:
        sink = io.BytesIO()
        write_file(sink, packets, fps)
        data = sink.getvalue()
    else:
        sink = NonSeekable()
        write_file(sink, packets, fps)
        data = bytes(sink.buf)
    r, got = read_all(io.BytesIO(data))
    assert got == packets
    assert r.fps == fps and r.codec_private == SEQ_HEADER and r.fourcc == b"GVC1"
    assert (r.width, r.height) == (320, 240)
    end = packets[-1].pts + packets[-1].duration
    assert r.duration_frames == (end if seekable else None)
    assert pyav_packets(data, fps) == packets  # an independent demuxer reads the same


def pyav_packets(data: bytes, fps: Fraction) -> list[MkvPacket]:
    with av.open(io.BytesIO(data), "r", format="matroska") as c:
        s = c.streams.video[0]
        out = []
        for p in c.demux(s):
            if p.size:
                start = mk._time_to_frame(p.pts * s.time_base, fps)
                end = mk._time_to_frame((p.pts + p.duration) * s.time_base, fps)
                out.append(MkvPacket(bytes(p), start, end - start, bool(p.is_keyframe)))
        return out


def test_metadata_round_trip(tmp_path):
    att = [("prior.json", "application/json", b'{"a": 1}'), ("blob.bin", "application/octet-stream", b"\0" * 999)]
    tags = {"ENCODER": "GVC 0.1.0", "ENCODER_SETTINGS": "steps=4 cfg=5.0", "COMMENT": "ünïcode ✓"}
    path = tmp_path / "m.mkv"
    packets = make_packets(random.Random(1), 5)
    write_file(path, packets, Fraction(25), width=1280, height=720, tags=tags, attachments=att, title="clip")
    r, got = read_all(path)
    assert got == packets
    assert r.tags == tags
    assert r.title == "clip" and r.writing_app == r.muxing_app == "gvc"
    assert r.attachments == {n: d for n, _, d in att}
    assert r.attachment_types["prior.json"] == "application/json"
    assert (r.width, r.height) == (1280, 720)
    # PyAV sees the attachments and global tags too (for readers without an EBML parser).
    with av.open(str(path)) as c:
        names = {s.metadata.get("filename"): bytes(s.data) for s in c.streams if s.type == "attachment"}
        assert names["prior.json"] == b'{"a": 1}'
        assert c.metadata["ENCODER_SETTINGS"] == "steps=4 cfg=5.0"


def test_cues_allow_seeking_to_a_keyframe(tmp_path):
    path = tmp_path / "s.mkv"
    packets = [MkvPacket(bytes([i]) * 50, 16 * i, 16, i % 3 == 0) for i in range(30)]
    write_file(path, packets, Fraction(30000, 1001))
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        c.seek(int(Fraction(16 * 20, 1) / Fraction(30000, 1001) / s.time_base), stream=s)  # frame 320
        first = next(p for p in c.demux(s) if p.size)
        assert first.is_keyframe and bytes(first) == packets[18].data


# --------------------------------------------------------------------------------------------- ffmpeg CLI
def _ffmpeg_info(ffmpeg, path) -> str:
    return subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


@pytest.mark.parametrize("fps,fps_text,frames,duration_text", [
    (Fraction(30000, 1001), "29.97 fps", 300, "00:00:10.01"),
    (Fraction(25), "25 fps", 100, "00:00:04.00"),
    (Fraction(24000, 1001), "23.98 fps", 1440, "00:01:00.06"),
])
def test_ffmpeg_reports_stream(ffmpeg, tmp_path, fps, fps_text, frames, duration_text):
    path = tmp_path / "a.mkv"
    packets = [MkvPacket(b"x" * 100, pts, 20, pts % 60 == 0) for pts in range(0, frames, 20)]
    write_file(path, packets, fps, width=352, height=288)
    info = _ffmpeg_info(ffmpeg, path)
    stream = next(line for line in info.splitlines() if "Stream #0:0" in line)
    assert "GVC1 / 0x31435647" in stream and "352x288" in stream and fps_text in stream, info
    assert f"Duration: {duration_text}" in info, info


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(10)])
def test_ffmpeg_stream_copy_keeps_packets(ffmpeg, tmp_path, fps):
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    packets = make_packets(random.Random(7), 25, max_dur=60)  # starts with a keyframe (ffmpeg drops leading non-keys)
    write_file(a, packets, fps, tags={"ENCODER_SETTINGS": "x"})
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(a), "-map", "0", "-c", "copy",
                    str(b)], check=True)
    ra, pa = read_all(a)
    rb, pb = read_all(b)
    assert pa == packets and pb == packets
    assert rb.codec_private == ra.codec_private == SEQ_HEADER and rb.fourcc == b"GVC1"
    assert rb.fps == fps and rb.duration_frames == ra.duration_frames


def test_frame_rate_without_tag_comes_from_default_duration(ffmpeg, tmp_path):
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    packets = make_packets(random.Random(3), 12)
    write_file(a, packets, Fraction(24000, 1001))
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(a), "-map", "0",
                    "-map_metadata:g", "-1", "-c", "copy", str(b)], check=True)
    rb, pb = read_all(b)
    with av.open(str(b)) as c:
        assert "GVC_FRAME_RATE" not in c.metadata  # the exact-rate tag is gone: rate from DefaultDuration
    assert rb.fps == Fraction(24000, 1001) and pb == packets


# --------------------------------------------------------------------------------------------- pipes
def test_write_into_os_pipe_from_thread(tmp_path):
    packets = make_packets(random.Random(11), 8)
    r_fd, w_fd = os.pipe()

    def produce():
        with os.fdopen(w_fd, "wb") as f:
            write_file(f, packets, Fraction(30000, 1001))

    t = threading.Thread(target=produce)
    t.start()
    with os.fdopen(r_fd, "rb") as f:
        r, got = read_all(f)  # the reader accepts a non-seekable input too
    t.join()
    assert got == packets and r.codec_private == SEQ_HEADER and r.duration_frames is None


def test_write_to_subprocess_stdin(tmp_path):
    out = tmp_path / "p.mkv"
    packets = make_packets(random.Random(12), 6)
    with open(out, "wb") as sink:
        proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=sink)
        write_file(proc.stdin, packets, Fraction(25), tags={"ENCODER": "pipe"})
        proc.stdin.close()
        assert proc.wait() == 0
    r, got = read_all(out)
    assert got == packets and r.tags == {"ENCODER": "pipe"}


# --------------------------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    packets = make_packets(random.Random(5), 6, max_size=3000)
    sink = io.BytesIO()
    write_file(sink, packets, Fraction(25))
    pipe = NonSeekable()
    write_file(pipe, packets, Fraction(25))
    return {"seekable": sink.getvalue(), "pipe": bytes(pipe.buf)}


def test_garbage_and_empty(tmp_path):
    for data in (b"", os.urandom(5000), b"\x1a\x45\xdf\xa3" + os.urandom(200)):
        with pytest.raises(BitstreamError):
            MatroskaReader(io.BytesIO(data))
    with pytest.raises(BitstreamError, match="cannot open"):
        MatroskaReader(tmp_path / "missing.mkv")


def test_absurd_sizes(good_files):
    data = bytearray(good_files["pipe"])
    # EBML header declaring 2**40 bytes.
    bad = b"\x1a\x45\xdf\xa3" + (0x01 << 56 | 1 << 40).to_bytes(8, "big") + bytes(data[12:])
    with pytest.raises(BitstreamError, match="out of bounds"):
        MatroskaReader(io.BytesIO(bad))
    # Tracks element declaring 2**50 bytes inside an unknown-size Segment.
    i = data.index(b"\x16\x54\xae\x6b")
    size_len = 9 - data[i + 4].bit_length()
    bad = data[:i + 4] + (0x01 << 56 | 1 << 50).to_bytes(8, "big") + data[i + 4 + size_len:]
    with pytest.raises(BitstreamError, match="over the limit"):
        MatroskaReader(io.BytesIO(bytes(bad)))


def test_mp4_and_other_codecs_are_rejected(ffmpeg, tmp_path):
    mp4, mkv = tmp_path / "x.mp4", tmp_path / "x.mkv"
    for path in (mp4, mkv):
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc=size=64x48:rate=10", "-frames:v", "2", "-c:v", "mpeg4", str(path)], check=True)
    with pytest.raises(BitstreamError, match="not a Matroska file"):
        MatroskaReader(mp4)
    with pytest.raises(BitstreamError, match="no GVC1 video track"):
        MatroskaReader(mkv)


def test_writer_rejects_bad_input():
    with pytest.raises(ParameterError):
        MatroskaWriter(io.BytesIO(), width=0, height=10, fps=Fraction(25), codec_private=b"")
    with pytest.raises(ParameterError):
        MatroskaWriter(io.BytesIO(), width=8, height=8, fps=Fraction(25), codec_private=b"",
                       attachments=[("a", "x/y", b""), ("a", "x/z", b"1")])
    with MatroskaWriter(io.BytesIO(), width=8, height=8, fps=Fraction(25), codec_private=b"") as w:
        w.write(MkvPacket(b"a", 0, 10, True))
        with pytest.raises(ParameterError, match="overlaps"):
            w.write(MkvPacket(b"b", 5, 10, False))
        with pytest.raises(ParameterError):
            w.write(MkvPacket(b"b", 20, 0, False))


def test_overhead_is_small():
    sink = io.BytesIO()
    with MatroskaWriter(sink, width=8, height=8, fps=Fraction(25), codec_private=SEQ_HEADER) as w:
        header = w.header_bytes
        for i in range(10):
            w.write(MkvPacket(b"\0" * 4000, 50 * i, 50, i % 2 == 0))
    total = len(sink.getvalue())
    # EBML header 16, Segment head 12, SeekHead 26, Info 28, Tracks 99 around the sequence header
    # (docs/bitstream.md, "Matroska byte budget")
    assert header - len(SEQ_HEADER) == 16 + 12 + 26 + 28 + 99
    # per block: BlockGroup framing and duration, plus a Cluster and a CuePoint per keyframe
    assert (total - header - 40000) / 10 < 30


# --------------------------------------------------------------------------------------------- GVC streams
def test_container_parses_matroska_itself():
    """Each file is parsed once, by our EBML walk: container/ imports no PyAV."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "container"
    for path in root.glob("*.py"):
        assert not re.search(r"^\s*(import av|from av)\b", path.read_text(), re.M), path


@pytest.fixture(scope="module")
def one_gop_t2v(tmp_path_factory, clip, ffmpeg):
    """A 1-GOP T2V stream from the CLI (lean, the default) as .mkv, and the same units as .gvc."""
    from container.io import StreamReader, StreamWriter

    d = tmp_path_factory.mktemp("t2v")
    y4m = d / "c5.y4m"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clip("carphone_176x144.mp4")), "-frames:v", "5",
                    "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(y4m)], check=True)
    mkv = d / "t.mkv"
    fast = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "encode", str(y4m), "-o", str(mkv), "--mode", "t2v"] + fast,
                       capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    with StreamReader(str(mkv)) as r:
        header, units = r.header, list(r.units())
    assert len(units) == 1
    with StreamWriter(str(d / "t.gvc"), header, fmt="gvc") as w:
        w.write(units[0], 0, 5)
    return mkv, d / "t.gvc", y4m, fast


def test_lean_mkv_costs_at_most_250_bytes_over_gvc(one_gop_t2v, ffmpeg):
    mkv, gvc, _, _ = one_gop_t2v
    overhead = mkv.stat().st_size - gvc.stat().st_size
    assert 0 < overhead <= 250, overhead
    info = _ffmpeg_info(ffmpeg, mkv)
    streams = [line for line in info.splitlines() if "Stream #" in line]
    assert len(streams) == 1 and "Video: none (GVC1 / 0x31435647)" in streams[0], info  # no Attachment stream
    assert "Duration: 00:00:00.17" in info and "ENCODER_SETTINGS" not in info, info


def test_full_tags_on_request(one_gop_t2v, ffmpeg, tmp_path):
    mkv, _, y4m, fast = one_gop_t2v
    full = tmp_path / "full.mkv"
    p = subprocess.run([sys.executable, "-m", "gvc.cli", "encode", str(y4m), "-o", str(full), "--mode", "t2v",
                        "--tags", "full"] + fast, capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    info = _ffmpeg_info(ffmpeg, full)
    assert "ENCODER         : GVC" in info and "mode=t2v" in info and "quality=2" in info, info
    assert len([line for line in info.splitlines() if "Stream #" in line]) == 1
    with MatroskaReader(full) as a, MatroskaReader(mkv) as b:
        assert a.tags["ENCODER_SETTINGS"].startswith("mode=t2v") and b.tags == {}
        assert [p.data for p in a.packets()] == [p.data for p in b.packets()]  # tags change no stream byte
