"""Video I/O layer (ffmpeg_bridge.ffmpeg, ffmpeg_bridge.video_io) against the real ffmpeg binary and PyAV."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffmpeg_bridge.ffmpeg import ffmpeg_exe, ffmpeg_version, run_ffmpeg
from ffmpeg_bridge.video_io import VideoReader, VideoWriter
from gvc.metrics import psnr
from gvc.errors import InputError

PROJECT = Path(__file__).resolve().parents[1]
CARPHONE = "carphone_176x144.mp4"
NTSC = Fraction(30000, 1001)


def _y4m_pipe(ffmpeg: str, src: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(src), *extra, "-f", "yuv4mpegpipe", "-"],
        stdout=subprocess.PIPE,
    )


def _split(y4m: Path) -> tuple[bytes, bytes]:
    header, rest = y4m.read_bytes().split(b"\n", 1)
    return header, rest


def _read_all(source) -> list[np.ndarray]:
    with VideoReader(source) as r:
        return list(r)


# -- ffmpeg binary ---------------------------------------------------------------------------------------


def test_ffmpeg_binary_and_version():
    assert Path(ffmpeg_exe()).is_file()
    assert ffmpeg_version()
    proc = run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5", "-frames:v", "2", "-f", "null", "-"])
    assert proc.returncode == 0


def test_run_ffmpeg_failure_names_the_problem(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(InputError, match=r"nope\.mp4.*No such file"):
        run_ffmpeg(["-i", str(missing), "-f", "null", "-"])
    assert run_ffmpeg(["-i", str(missing), "-f", "null", "-"], check=False).returncode != 0


def test_gvc_ffmpeg_override(monkeypatch):
    real = ffmpeg_exe()
    monkeypatch.setenv("GVC_FFMPEG", real)
    assert ffmpeg_exe() == real
    monkeypatch.setenv("GVC_FFMPEG", "/nonexistent/ffmpeg-xyz")
    with pytest.raises(InputError, match="GVC_FFMPEG"):
        ffmpeg_exe()


# -- reading ---------------------------------------------------------------------------------------------


def test_real_pipe_in(clip, ffmpeg):
    src = clip(CARPHONE)
    proc = _y4m_pipe(ffmpeg, src, "-frames:v", "5")
    with VideoReader(proc.stdout) as r:
        assert r.info.width == 176 and r.info.height == 144
        assert r.info.fps == NTSC
        assert r.info.frames is None
        assert r.info.pix_fmt == "yuv420p"
        frames = list(r)
    assert proc.wait() == 0
    assert len(frames) == 5
    for f in frames:
        assert f.shape == (144, 176, 3) and f.dtype == np.uint8 and f.flags.c_contiguous
    # y4m from ffmpeg carries the decoded yuv420p untouched: same pixels as decoding the mp4 with PyAV
    with VideoReader(src, max_frames=5) as r:
        direct = list(r)
    assert all(np.array_equal(a, b) for a, b in zip(frames, direct))


def test_real_pipe_in_on_stdin(clip, ffmpeg):
    """VideoReader("-") in a child process whose stdin is ffmpeg's y4m output."""
    proc = _y4m_pipe(ffmpeg, clip(CARPHONE), "-frames:v", "3")
    code = (
        "from ffmpeg_bridge.video_io import VideoReader\n"
        "with VideoReader('-') as r:\n"
        "    n = sum(1 for f in r if f.shape == (144, 176, 3))\n"
        "    print(r.info.width, r.info.height, r.info.fps, n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], stdin=proc.stdout, capture_output=True, cwd=PROJECT, timeout=60)
    proc.stdout.close()
    assert proc.wait() == 0
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().split() == ["176", "144", "30000/1001", "3"]


def test_read_mp4_directly_and_max_frames(clip):
    src = clip(CARPHONE)
    with VideoReader(src) as r:
        assert (r.info.width, r.info.height, r.info.fps, r.info.frames) == (176, 144, NTSC, 120)
        first = r.read(3)
        second = r.read(2)
    assert len(first) == 3 and len(second) == 2
    assert not np.array_equal(first[0], second[0])
    with VideoReader(src, max_frames=4) as r:
        frames = list(r)
        assert r.read(5) == []
    assert len(frames) == 4
    assert np.array_equal(frames[0], first[0]) and np.array_equal(frames[3], second[0])
    with VideoReader(src, max_frames=3) as r:
        assert len(r.read(10)) == 3


@pytest.mark.parametrize("name,fps", [("megamind_720x528.mp4", Fraction(24000, 1001)), ("tree_320x240.mp4", Fraction(15))])
def test_container_rates_snap_to_standard_rates(clip, name, fps):
    # the files' own rates are 2997/125 and 1000000/66667 (from timestamps)
    with VideoReader(clip(name)) as r:
        assert r.info.fps == fps


def test_reading_is_deterministic(clip):
    a = _read_all_limited(clip(CARPHONE), 6)
    b = _read_all_limited(clip(CARPHONE), 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def _read_all_limited(src, n):
    with VideoReader(src, max_frames=n) as r:
        return list(r)


def test_read_y4m_file(small_clip_y4m):
    with VideoReader(small_clip_y4m) as r:
        assert r.info == type(r.info)(176, 144, NTSC, 8, "yuv420p")
        assert len(list(r)) == 8
    # a binary file object works as well, FRAME lines may carry parameters
    header, rest = _split(small_clip_y4m)
    data = header + b"\n" + rest.replace(b"FRAME\n", b"FRAME Ip XFOO=1\n")
    assert len(_read_all(io.BytesIO(data))) == 8


def test_10bit_y4m(tmp_path, clip, ffmpeg):
    src = clip(CARPHONE)
    out = tmp_path / "c10.y4m"
    run_ffmpeg(["-i", str(src), "-frames:v", "3", "-pix_fmt", "yuv420p10le", "-strict", "-1",
                "-f", "yuv4mpegpipe", "-y", str(out)])
    assert b"C420p10" in _split(out)[0]
    with VideoReader(out) as r:
        assert r.info.pix_fmt == "yuv420p10le" and r.info.frames == 3
        frames10 = list(r)
    ref = _read_all_limited(src, 3)
    assert len(frames10) == 3
    for a, b in zip(frames10, ref):
        assert a.dtype == np.uint8 and a.shape == (144, 176, 3)
        assert psnr(a, b) > 40


@pytest.mark.parametrize("token", ["C422", "C444", "Cmono"])
def test_other_8bit_y4m_formats(tmp_path, clip, token):
    fmt = {"C422": "yuv422p", "C444": "yuv444p", "Cmono": "gray"}[token]
    out = tmp_path / f"{fmt}.y4m"
    run_ffmpeg(["-i", str(clip(CARPHONE)), "-frames:v", "2", "-pix_fmt", fmt, "-f", "yuv4mpegpipe", "-y", str(out)])
    assert token.encode() in _split(out)[0]
    with VideoReader(out) as r:
        assert r.info.pix_fmt == fmt
        frames = list(r)
    assert len(frames) == 2 and frames[0].shape == (144, 176, 3)
    if fmt == "gray":
        assert np.array_equal(frames[0][..., 0], frames[0][..., 1])


def test_full_range_y4m(small_clip_y4m):
    header, rest = _split(small_clip_y4m)
    limited = _read_all(io.BytesIO(header + b"\n" + rest))[0]
    full = _read_all(io.BytesIO(header + b" XCOLORRANGE=FULL\n" + rest))[0]
    # limited range stretches the luma excursion; full range keeps it
    assert full.astype(int).std() < limited.astype(int).std()


# -- writing ---------------------------------------------------------------------------------------------


def test_real_pipe_out(tmp_path, clip, ffmpeg):
    frames = _read_all_limited(clip(CARPHONE), 12)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([ffmpeg, "-hide_banner", "-i", "-", "-y", str(out)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    with VideoWriter(proc.stdin, width=176, height=144, fps=NTSC) as w:
        for f in frames:
            w.write(f)
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert "yuv4mpegpipe" in err and "29.97 fps" in err
    assert int(re.findall(r"frame=\s*(\d+)", err)[-1]) == 12
    with VideoReader(out) as r:
        assert (r.info.frames, r.info.fps) == (12, NTSC)


def test_y4m_write_read_roundtrip(tmp_path, small_clip_y4m):
    frames = _read_all(small_clip_y4m)
    paths = [tmp_path / "a.y4m", tmp_path / "b.y4m"]
    for p in paths:
        with VideoWriter(p, width=176, height=144, fps=NTSC) as w:
            for f in frames:
                w.write(f)
    assert paths[0].read_bytes() == paths[1].read_bytes()  # RGB -> YUV is deterministic
    assert paths[0].read_bytes().startswith(b"YUV4MPEG2 W176 H144 F30000:1001")
    back1, back2 = _read_all(paths[0]), _read_all(paths[0])
    assert len(back1) == len(frames) == 8
    assert all(np.array_equal(a, b) for a, b in zip(back1, back2))
    for a, b in zip(frames, back1):
        assert psnr(a, b) > 40


@pytest.mark.parametrize("pix_fmt,min_db", [("yuv444p", 45), ("yuv420p10le", 40), ("yuv422p", 40)])
def test_y4m_writer_formats(tmp_path, small_clip_y4m, pix_fmt, min_db):
    frames = _read_all(small_clip_y4m)[:3]
    out = tmp_path / "o.y4m"
    with VideoWriter(out, width=176, height=144, fps=25, pix_fmt=pix_fmt) as w:
        for f in frames:
            w.write(f)
    with VideoReader(out) as r:
        assert r.info.pix_fmt == pix_fmt and r.info.fps == 25
        back = list(r)
    assert len(back) == 3 and all(psnr(a, b) > min_db for a, b in zip(frames, back))


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_write_encoded_file(tmp_path, small_clip_y4m, ext):
    frames = _read_all(small_clip_y4m)[:5]
    y4m, enc = tmp_path / "ref.y4m", tmp_path / f"out{ext}"
    for dest in (y4m, enc):
        with VideoWriter(dest, width=176, height=144, fps=NTSC, lossless=True) as w:
            for f in frames:
                w.write(f)
    with VideoReader(enc) as r:
        assert r.info.fps == NTSC and r.info.pix_fmt == "yuv420p"
        got = list(r)
    assert len(got) == 5
    # libx264 at qp 0 is lossless in YUV: identical to the y4m of the same frames
    assert all(np.array_equal(a, b) for a, b in zip(got, _read_all(y4m)))


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_encoded_output_is_playable_by_default(tmp_path, clip, ffmpeg, ext):
    """Issue 19: .mp4/.mkv output is yuv420p H.264 High (or Main) at a visually lossless CRF, a tenth of the
    lossless size or less; lossless=True keeps the 4:4:4-profile lossless coding."""
    frames = _read_all_limited(clip(CARPHONE), 30)
    paths = {}
    for lossless in (False, True):
        paths[lossless] = tmp_path / f"{'lossless' if lossless else 'default'}{ext}"
        with VideoWriter(paths[lossless], width=176, height=144, fps=NTSC, lossless=lossless) as w:
            for f in frames:
                w.write(f)
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(paths[False])], capture_output=True, text=True).stderr
    video = next(line for line in probe.splitlines() if "Video:" in line)
    assert re.search(r"h264 \((High|Main)\)", video) and "yuv420p(" in video, video
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(paths[True])], capture_output=True, text=True).stderr
    assert "High 4:4:4 Predictive" in probe
    assert paths[False].stat().st_size * 10 <= paths[True].stat().st_size
    got, exact = _read_all(paths[False]), _read_all(paths[True])  # the lossless file: the same frames in 4:2:0
    db = [psnr(a, b) for a, b in zip(exact, got)]
    assert len(got) == 30 and min(db) > 34 and sum(db) / 30 > 37  # CRF 18 on carphone: 36.0 min, 37.8 mean


def test_write_stdout_to_ffmpeg(tmp_path, small_clip_y4m, ffmpeg):
    """VideoWriter("-") in a child process piped into ffmpeg."""
    code = (
        "import numpy as np\n"
        "from ffmpeg_bridge.video_io import VideoWriter\n"
        "with VideoWriter('-', width=64, height=48, fps=25) as w:\n"
        "    for i in range(7): w.write(np.full((48, 64, 3), 20 * i, np.uint8))\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=PROJECT)
    out = tmp_path / "o.y4m"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "-", "-c", "copy", "-y", str(out)],
                   stdin=writer.stdout, check=True, timeout=60)
    writer.stdout.close()
    assert writer.wait() == 0
    frames = _read_all(out)
    assert len(frames) == 7 and abs(int(frames[3][0, 0, 0]) - 60) <= 1


# -- bad input -------------------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="directory"):
        VideoReader(tmp_path)


def test_not_a_video(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match=r"not a video file.*notes\.mp4.*Invalid data"):
        VideoReader(bogus)


def test_unsupported_pixel_format(tmp_path):
    out = tmp_path / "yuv410.mkv"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-frames:v", "2",
                "-c:v", "ffv1", "-pix_fmt", "yuv410p", "-y", str(out)])
    with pytest.raises(InputError, match="unsupported pixel format yuv410p"):
        VideoReader(out)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda h: h.replace(b"YUV4MPEG2", b"YUV4MPEG3"), "YUV4MPEG2"),
        (lambda h: h.replace(b" W176", b""), "missing W"),
        (lambda h: h.replace(b" H144", b""), "missing H"),
        (lambda h: h.replace(b"W176", b"W99999999"), "width 99999999 out of range"),
        (lambda h: h.replace(b"H144", b"H0"), "height 0 out of range"),
        (lambda h: h.replace(b"W176", b"Wabc"), "bad width"),
        (lambda h: h.replace(b"F30000:1001", b"Fxx"), "bad frame rate"),
        (lambda h: h.replace(b"C420mpeg2", b"C411"), "unsupported pixel format yuv411p"),
        (lambda h: h.replace(b"C420mpeg2", b"Cfoo"), "unknown colorspace"),
        (lambda h: h + b" X" + b"a" * 200, "longer than"),
    ],
)
def test_bad_y4m_header(small_clip_y4m, mutate, message):
    header, rest = _split(small_clip_y4m)
    data = mutate(header) + b"\n" + rest
    with pytest.raises(InputError, match=message):
        _read_all(io.BytesIO(data))


def test_bad_y4m_header_in_file(tmp_path, small_clip_y4m):
    header, rest = _split(small_clip_y4m)
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(header.replace(b"YUV4MPEG2", b"YUV4MPEG3") + b"\n" + rest)
    with pytest.raises(InputError, match="YUV4MPEG2"):
        VideoReader(bad)


def test_truncated_last_frame(small_clip_y4m):
    data = small_clip_y4m.read_bytes()[:-1000]
    got = []
    with pytest.raises(InputError, match="truncated last frame") as exc:
        with VideoReader(io.BytesIO(data)) as r:
            for f in r:
                got.append(f)
    assert len(got) == 7  # the complete frames come first
    assert "after 7 complete frames" in str(exc.value)
    # inside the FRAME line
    frame_bytes = 176 * 144 * 3 // 2 + 6
    header_len = data.index(b"\n") + 1
    with pytest.raises(InputError, match="truncated FRAME line"):
        _read_all(io.BytesIO(small_clip_y4m.read_bytes()[: header_len + 2 * frame_bytes + 3]))


def test_truncated_file_on_disk(tmp_path, small_clip_y4m):
    cut = tmp_path / "cut.y4m"
    cut.write_bytes(small_clip_y4m.read_bytes()[:-10])
    with VideoReader(cut) as r:
        assert r.info.frames is None
        with pytest.raises(InputError, match=r"truncated last frame.*cut\.y4m"):
            list(r)


def test_garbage_between_frames(small_clip_y4m):
    header, rest = _split(small_clip_y4m)
    frame_bytes = 176 * 144 * 3 // 2 + 6
    data = header + b"\n" + rest[: 2 * frame_bytes] + b"GARBAGE!" + rest[2 * frame_bytes :]
    got = []
    with pytest.raises(InputError, match="expected FRAME"):
        for f in VideoReader(io.BytesIO(data)):
            got.append(f)
    assert len(got) == 2


def test_empty_input(tmp_path, small_clip_y4m):
    with pytest.raises(InputError, match="empty input"):
        VideoReader(io.BytesIO(b""))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty input"):
        VideoReader(empty)
    header, _ = _split(small_clip_y4m)
    with pytest.raises(InputError, match="no frames"):
        _read_all(io.BytesIO(header + b"\n"))
    with pytest.raises(InputError, match="header line"):
        VideoReader(io.BytesIO(b"YUV4MPEG2 W16 H16"))  # ends inside the header line


def test_empty_pipe(ffmpeg):
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=subprocess.PIPE)
    with pytest.raises(InputError, match="empty input"):
        VideoReader(proc.stdout)
    proc.stdout.close()
    proc.wait()


def test_garbage_input_is_bounded():
    class Endless(io.RawIOBase):
        served = 0

        def readable(self):
            return True

        def readinto(self, b):
            b[:] = b"Y" * len(b)
            self.served += len(b)
            return len(b)

    src = Endless()
    with pytest.raises(InputError, match="YUV4MPEG2"):
        VideoReader(src)
    assert src.served <= 4096


# -- bad output ------------------------------------------------------------------------------------------


def test_writer_validation(tmp_path):
    with pytest.raises(InputError, match="unsupported output type '.avi'"):
        VideoWriter(tmp_path / "x.avi", width=16, height=16, fps=25)
    with pytest.raises(InputError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "x.mp4", width=16, height=16, fps=25)
    with pytest.raises(InputError, match="unsupported pixel format rgb24"):
        VideoWriter(tmp_path / "x.y4m", width=16, height=16, fps=25, pix_fmt="rgb24")
    with pytest.raises(InputError, match="bad frame rate"):
        VideoWriter(tmp_path / "x.y4m", width=16, height=16, fps=0)
    with VideoWriter(tmp_path / "ok.y4m", width=15, height=16, fps=25, pix_fmt="yuv444p") as w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros((16, 16, 3), np.uint8))
        w.write(np.zeros((16, 15, 3), np.uint8))
    assert len(_read_all(tmp_path / "ok.y4m")) == 1


def test_broken_output_pipe():
    reader = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)  # exits without reading
    frame = np.zeros((144, 176, 3), np.uint8)
    w = VideoWriter(reader.stdin, width=176, height=144, fps=25)
    reader.wait(timeout=30)
    with pytest.raises(InputError, match="output pipe closed"):
        for _ in range(200):
            w.write(frame)
        w.close()
    w.close()  # idempotent, quiet after the failure
    try:
        reader.stdin.close()
    except BrokenPipeError:
        pass


def test_broken_stdout_pipe_in_child():
    code = (
        "import sys, numpy as np\n"
        "from ffmpeg_bridge.video_io import VideoWriter\n"
        "from gvc.errors import InputError\n"
        "try:\n"
        "    with VideoWriter('-', width=176, height=144, fps=25) as w:\n"
        "        for _ in range(500): w.write(np.zeros((144, 176, 3), np.uint8))\n"
        "except InputError as e:\n"
        "    print(e, file=sys.stderr); sys.exit(3)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT)
    assert proc.stdout.read(100).startswith(b"YUV4MPEG2")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 3
    assert err.strip() == "output pipe closed"


# -- psnr ------------------------------------------------------------------------------------------------


def test_psnr():
    a = np.zeros((4, 4), np.uint8)
    assert psnr(a, a) == 100.0
    b = a.copy()
    b[0, 0] = 16  # mse = 16
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 16))
    assert psnr(np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 255, np.uint8)) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        psnr(a, np.zeros((4, 5), np.uint8))


# -- chunking (pipes deliver arbitrary pieces) -----------------------------------------------------------

_TINY_W, _TINY_H, _TINY_N = 16, 8, 3
_TINY_FRAME = _TINY_W * _TINY_H * 3 // 2


def _tiny_y4m() -> bytes:
    rng = np.random.default_rng(7)
    body = b"".join(b"FRAME\n" + rng.integers(16, 236, _TINY_FRAME, dtype=np.uint8).tobytes() for _ in range(_TINY_N))
    return f"YUV4MPEG2 W{_TINY_W} H{_TINY_H} F25:1 Ip A1:1 C420jpeg\n".encode() + body


class _Chunked(io.RawIOBase):
    """A pipe-like stream that hands out the data in the given chunk sizes (then the rest, 1 byte at a time)."""

    def __init__(self, data: bytes, sizes: list[int]):
        self.data, self.sizes, self.pos = data, list(sizes), 0

    def readable(self):
        return True

    def readinto(self, b):
        want = self.sizes.pop(0) if self.sizes else 1
        n = min(len(b), want, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 400), max_size=30), cut=st.integers(0, 3 * (_TINY_FRAME + 6) + 60))
def test_chunked_and_cut_streams(sizes, cut):
    data = _tiny_y4m()
    reference = _read_all(io.BytesIO(data))
    assert len(reference) == _TINY_N
    assert all(np.array_equal(a, b) for a, b in zip(reference, _read_all(_Chunked(data, sizes))))
    cut_data = data[: len(data) - cut]
    header_len = data.index(b"\n") + 1
    body = len(cut_data) - header_len
    got = []
    if body < 0:
        with pytest.raises(InputError, match="header line"):
            VideoReader(_Chunked(cut_data, sizes))
    elif body % (_TINY_FRAME + 6) == 0 and body > 0:
        got = _read_all(_Chunked(cut_data, sizes))
        assert len(got) == body // (_TINY_FRAME + 6)
    else:
        with pytest.raises(InputError, match="truncated|no frames"):
            for f in VideoReader(_Chunked(cut_data, sizes)):
                got.append(f)
        assert len(got) == body // (_TINY_FRAME + 6)
    assert all(np.array_equal(a, b) for a, b in zip(got, reference))


# -- odd picture sizes ------------------------------------------------------------------------------------


def test_odd_size_420_y4m_and_mp4_round_trip(tmp_path, clip, ffmpeg):
    """FFmpeg writes 4:2:0 y4m at odd sizes (chroma ceil(W/2) x ceil(H/2)); we read and write it, and an
    odd-sized .mp4 (libx264 needs even 4:2:0) is coded in 4:4:4 instead of failing."""
    src = tmp_path / "odd.y4m"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clip("carphone_176x144.mp4")), "-frames:v", "3",
                    "-vf", "scale=175:143", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y", str(src)], check=True)
    assert b"W175 H143" in src.read_bytes()[:60]
    with VideoReader(src) as r:
        frames = list(r)
        assert (r.info.width, r.info.height, r.info.frames) == (175, 143, 3)
    assert all(f.shape == (143, 175, 3) for f in frames)
    for name in ("back.y4m", "back.mp4"):
        with VideoWriter(tmp_path / name, width=175, height=143, fps=Fraction(30000, 1001)) as w:
            for f in frames:
                w.write(f)
        with VideoReader(tmp_path / name) as r:
            got = list(r)
            assert r.info.fps == Fraction(30000, 1001)
        assert len(got) == 3 and got[0].shape == (143, 175, 3)
        assert psnr(got[0], frames[0]) > 30, name


@pytest.mark.parametrize("pix_fmt, codec, ext", [("rgb24", "png", "png"), ("rgb24", "ffv1", "mkv"),
                                                 ("bgra", "png", "mov"), ("nv12", "rawvideo", "nut")])
def test_rgb_and_other_decoded_formats_are_read(tmp_path, clip, ffmpeg, pix_fmt, codec, ext):
    """'Any ffmpeg-decodable input': RGB, alpha and semi-planar files convert to RGB (PNG exactly)."""
    out = tmp_path / f"x.{ext}"
    run_ffmpeg(["-i", str(clip("carphone_176x144.mp4")), "-frames:v", "1" if ext == "png" else "3",
                "-pix_fmt", pix_fmt, "-c:v", codec, "-y", str(out)])
    with VideoReader(out) as r:
        frames = list(r)
        # (the encoder may store another layout: ffv1 keeps rgb24 as bgr0, png keeps bgra as rgba)
        assert r.info.pix_fmt[:2] == pix_fmt[:2] or r.info.pix_fmt in ("bgr0", "rgba")
        assert (r.info.width, r.info.height) == (176, 144)
    assert frames and frames[0].shape == (144, 176, 3)
    if pix_fmt.startswith(("rgb", "bgr")):
        import av
        with av.open(str(out)) as c:
            ref = next(c.decode(video=0)).to_ndarray(format="rgb24")
        assert np.array_equal(frames[0], ref)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p10le", "gray"])
def test_y4m_planes_read_here_equal_libavformats_frames(clip, ffmpeg, pix_fmt):
    """y4m is parsed once, by our reader; its frames are those libavformat's y4m demuxer would give (odd size,
    subsampled, 10-bit and grey layouts; same conversion to RGB)."""
    import av

    data = subprocess.run([ffmpeg, "-v", "error", "-i", str(clip(CARPHONE)), "-frames:v", "3", "-vf", "scale=175:143",
                           "-pix_fmt", pix_fmt, "-strict", "-1", "-f", "yuv4mpegpipe", "-"],
                          capture_output=True, check=True).stdout
    with VideoReader(io.BytesIO(data)) as reader, av.open(io.BytesIO(data), format="yuv4mpegpipe") as demuxed:
        theirs = [reader._to_rgb(f) for f in demuxed.decode(video=0)]
        ours = list(reader)
    assert len(ours) == len(theirs) == 3 and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_max_frames_is_what_info_counts(clip):
    with VideoReader(clip(CARPHONE), max_frames=5) as r:
        assert r.info.frames == 5 and len(list(r)) == 5
