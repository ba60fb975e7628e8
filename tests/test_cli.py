"""The command-line tools as a user runs them: real ffmpeg pipes in both directions, Matroska output
that ffmpeg understands, --stats-json / --recon, and one-line errors for bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ffmpeg_bridge.video_io import VideoReader
from gvc.ladder import levers

GVC = [sys.executable, "-m", "gvc.cli"]
PIPE = [sys.executable, "-m", "gvc.pipe_cli"]
# The analytic prior keeps these CLI tests fast; tests/test_default_prior.py runs the CLI on the shipped model.
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, **kw)


def frames_of(path):
    with VideoReader(str(path)) as r:
        return list(r)


@pytest.fixture
def encoded(tmp_path, small_clip_y4m):
    out, recon, stats = tmp_path / "a.mkv", tmp_path / "recon.y4m", tmp_path / "s.json"
    p = run(GVC + ["encode", str(small_clip_y4m), "-o", str(out), "--recon", str(recon), "--stats-json", str(stats)] + FAST)
    assert p.returncode == 0, p.stderr.decode()
    return out, recon, json.loads(stats.read_text())


def test_encode_decode_matches_recon(tmp_path, encoded):
    out, recon, stats = encoded
    dec = tmp_path / "d.y4m"
    p = run(GVC + ["decode", str(out), "-o", str(dec), "-q"])
    assert p.returncode == 0, p.stderr.decode()
    a, b = frames_of(dec), frames_of(recon)
    assert len(a) == len(b) == 8 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert stats["bytes"] == os.path.getsize(out)
    assert stats["bits"] == 8 * stats["bytes"]
    assert stats["bpp"] == pytest.approx(stats["bits"] / (176 * 144 * 8))
    assert stats["kbps"] == pytest.approx(stats["bits"] / (8 / (30000 / 1001)) / 1000)
    assert stats["frames"] == 8 and len(stats["gops"]) == 2
    ladder = levers("i2v", 2)  # FAST's quality, default mode: the levers the ladder chose
    assert stats["levers"] == {"m": 2, "residual_step": ladder.residual_step, "anchor_quality": ladder.anchor_quality}


def test_ffmpeg_reports_the_stream(encoded, ffmpeg):
    out, _, _ = encoded
    info = run([ffmpeg, "-hide_banner", "-i", str(out)]).stderr.decode()
    assert "GVC1" in info and "176x144" in info and "29.97 fps" in info
    # lean by default: one video stream and no tags (--tags full: tests/test_matroska.py::test_full_tags_on_request)
    assert info.count("Stream #") == 1 and "ENCODER_SETTINGS" not in info


def test_remux_with_ffmpeg_keeps_packets_and_frames(tmp_path, encoded, ffmpeg):
    out, recon, _ = encoded
    copy = tmp_path / "b.mkv"
    p = run([ffmpeg, "-hide_banner", "-y", "-i", str(out), "-map", "0", "-c", "copy", str(copy)])
    assert p.returncode == 0, p.stderr.decode()[-500:]
    dec = tmp_path / "b.y4m"
    assert run(GVC + ["decode", str(copy), "-o", str(dec), "-q"]).returncode == 0
    assert all(np.array_equal(x, y) for x, y in zip(frames_of(dec), frames_of(recon)))


def test_pipes_both_ways(tmp_path, clip, ffmpeg):
    out = tmp_path / "p.mkv"
    src = subprocess.Popen([ffmpeg, "-v", "error", "-i", str(clip("carphone_176x144.mp4")), "-frames:v", "6",
                            "-f", "yuv4mpegpipe", "-"], stdout=subprocess.PIPE)
    enc = run(PIPE + ["encode", "-o", str(out)] + FAST, stdin=src.stdout)
    src.wait()
    assert enc.returncode == 0, enc.stderr.decode()
    mp4 = tmp_path / "p.mp4"
    dec = subprocess.Popen(PIPE + ["decode", str(out)], stdout=subprocess.PIPE)
    ff = run([ffmpeg, "-v", "error", "-y", "-i", "-", str(mp4)], stdin=dec.stdout)
    assert dec.wait() == 0 and ff.returncode == 0, ff.stderr.decode()
    assert len(frames_of(mp4)) == 6


def test_elementary_stream_on_stdout(tmp_path, small_clip_y4m):
    # y4m on stdin has no frame count: the header says 0 (unknown) and the GOPs tell where it ends.
    p = run(PIPE + ["encode", "-o", "-", "--frames", "5"] + FAST, input=small_clip_y4m.read_bytes())
    assert p.returncode == 0 and p.stdout[:4] == b"GVCU"
    (tmp_path / "x.gvc").write_bytes(p.stdout)
    info = run(GVC + ["info", str(tmp_path / "x.gvc"), "--json"])
    j = json.loads(info.stdout)
    assert j["format"]["name"] == "gvc" and j["header"]["frame_count"] == 0 and len(j["gops"]) == 1


def test_info_text_and_json(encoded):
    out, _, stats = encoded
    text = run(GVC + ["info", str(out)]).stdout.decode()
    assert "I2V" in text and "176x144" in text and "GOP    1" in text
    j = json.loads(run(GVC + ["info", str(out), "--json"]).stdout)
    assert [g["gop"] for g in j["gops"]] == [0, 1] and j["header"]["width"] == 176


def test_damaged_gop_does_not_take_the_others(tmp_path, encoded):
    out, recon, _ = encoded
    gvc = tmp_path / "e.gvc"
    # Re-encode as elementary stream, then flip a byte inside GOP 0's unit.
    from container.io import StreamReader
    from container.bitstream import write_elementary
    with StreamReader(str(out)) as r:
        units = list(r.units())
        with open(gvc, "wb") as f:
            write_elementary(f, r.header, units)
    data = bytearray(gvc.read_bytes())
    data[len(r.header.to_bytes()) + 40] ^= 0xFF
    gvc.write_bytes(bytes(data))
    dec = tmp_path / "e.y4m"
    p = run(GVC + ["decode", str(gvc), "-o", str(dec)])
    # The other GOP decodes and the damaged one is concealed, but the exit status says the stream was bad.
    assert p.returncode == 2
    assert b"warning" in p.stderr and b"GOP 0" in p.stderr and b"Traceback" not in p.stderr
    assert p.stderr.decode().strip().splitlines()[-1].startswith("gvc: error: damaged stream")
    got = frames_of(dec)
    assert len(got) == 8


def _one_line_error(p):
    err = p.stderr.decode().strip()
    assert p.returncode != 0
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith(("gvc: error", "gvc-pipe")), err
    return err


@pytest.mark.parametrize("payload, word", [
    (b"YUV4MPEG3 W16 H16 F25:1\nFRAME\n" + bytes(384), "YUV4MPEG2"),
    (b"YUV4MPEG2 W99999999 H16 F25:1\n", "width 99999999"),
    (b"YUV4MPEG2 W32 H32 F25:1 Cmono12\n", "pixel format"),
    (b"", "empty"),
])
def test_bad_y4m_on_stdin(payload, word):
    p = run(PIPE + ["encode", "-o", os.devnull] + FAST, input=payload)
    assert word.lower() in _one_line_error(p).lower()


def test_truncated_y4m(small_clip_y4m):
    data = small_clip_y4m.read_bytes()
    p = run(PIPE + ["encode", "-o", os.devnull] + FAST, input=data[:-1000])
    assert "truncated" in _one_line_error(p)


def test_missing_input(tmp_path):
    p = run(GVC + ["encode", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mkv")])
    assert "nope.mp4" in _one_line_error(p)
    assert not (tmp_path / "o.mkv").exists() and not (tmp_path / "o.part.mkv").exists()


@pytest.mark.parametrize("cut", [20, 300, -7])
def test_truncated_stream(tmp_path, encoded, cut):
    out, _, _ = encoded
    data = out.read_bytes()
    bad = tmp_path / "t.mkv"
    bad.write_bytes(data[:cut])
    p = run(GVC + ["decode", str(bad), "-o", str(tmp_path / "t.y4m"), "-q"])
    if p.returncode == 2:  # the cut fell in the last GOP: the others still decode, the damage is reported
        assert b"warning" in p.stderr and b"Traceback" not in p.stderr
        assert p.stderr.decode().strip().splitlines()[-1].startswith("gvc: error: damaged stream")
    else:
        _one_line_error(p)


def test_crc_mismatch_in_elementary_stream_fails(tmp_path, encoded):
    """A flipped byte in the last GOP of a .gvc: warnings per problem, then one error line, exit 2."""
    out, _, _ = encoded
    from container.io import StreamReader
    from container.bitstream import write_elementary
    gvc = tmp_path / "c.gvc"
    with StreamReader(str(out)) as r, open(gvc, "wb") as f:
        write_elementary(f, r.header, list(r.units()))
    data = bytearray(gvc.read_bytes())
    data[-30] ^= 0x01
    gvc.write_bytes(bytes(data))
    p = run(GVC + ["decode", str(gvc), "-o", str(tmp_path / "c.y4m"), "-q"])
    err = p.stderr.decode()
    assert p.returncode == 2 and "CRC-32 mismatch" in err and "Traceback" not in err, err


def test_garbage_stream(tmp_path):
    bad = tmp_path / "g.mkv"
    bad.write_bytes(os.urandom(1000))
    assert "neither" in _one_line_error(run(GVC + ["decode", str(bad), "-o", str(tmp_path / "g.y4m")]))


def test_bad_parameter(small_clip_y4m):
    assert "quality" in _one_line_error(run(GVC + ["encode", str(small_clip_y4m), "-o", os.devnull, "--quality", "0"]))


def test_broken_output_pipe(encoded):
    out, _, _ = encoded
    dec = subprocess.Popen(PIPE + ["decode", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dec.stdout.read(100)
    dec.stdout.close()
    err = dec.stderr.read().decode()
    assert dec.wait() != 0 and "pipe" in err and "Traceback" not in err


def test_help_explains():
    h = run(GVC + ["encode", "--help"]).stdout.decode()
    for opt in ("--mode", "--quality", "--prior", "--device", "--frames", "--stats-json", "--recon", "--target-kbps"):
        assert opt in h


def test_odd_size_and_frame_count_keep_geometry_and_rate(tmp_path, clip, ffmpeg):
    """Any resolution and frame count: 175x143 (odd, not a multiple of the latent stride), 10 frames
    (the last GOP shortens), through the real pipes; the frame rate and size come back unchanged."""
    src = subprocess.Popen([ffmpeg, "-v", "error", "-i", str(clip("carphone_176x144.mp4")), "-frames:v", "10",
                            "-vf", "scale=175:143", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"],
                           stdout=subprocess.PIPE)
    out, recon, stats = tmp_path / "odd.mkv", tmp_path / "recon.y4m", tmp_path / "s.json"
    enc = run(PIPE + ["encode", "-o", str(out), "--recon", str(recon), "--stats-json", str(stats), "--prior", "analytic"]
              + FAST, stdin=src.stdout)
    src.wait()
    assert enc.returncode == 0, enc.stderr.decode()
    s = json.loads(stats.read_text())
    assert (s["width"], s["height"], s["frames"]) == (175, 143, 10)
    assert s["fps"] == pytest.approx(30000 / 1001)
    assert "175x143" in run([ffmpeg, "-hide_banner", "-i", str(out)]).stderr.decode()
    dec = tmp_path / "d.y4m"
    assert run(GVC + ["decode", str(out), "-o", str(dec), "-q"]).returncode == 0
    assert dec.read_bytes().startswith(b"YUV4MPEG2 W175 H143 F30000:1001")
    a, b = frames_of(dec), frames_of(recon)
    assert len(a) == len(b) == 10 and all(np.array_equal(x, y) for x, y in zip(a, b))
    # (odd-sized .mp4 output is covered by tests/test_video_io.py::test_odd_size_420_y4m_and_mp4_round_trip)
