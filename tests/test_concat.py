"""Two streams that share a header, concatenated as elementary streams (`cat a.gvc b.gvc`, README's recipe),
decode as one: the repeated header is skipped and the second stream's GOP 0 starts the next sequence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from ffmpeg_bridge.video_io import VideoReader

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--prior", "analytic", "--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "-q"]


def frames_of(path):
    with VideoReader(str(path)) as r:
        return list(r)


def test_concatenated_streams_decode_as_one(tmp_path, small_clip_y4m, ffmpeg):
    flipped = tmp_path / "flipped.y4m"  # other pictures, same size, rate and frame count: the same header
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(small_clip_y4m), "-vf", "hflip", str(flipped)], check=True)
    parts = []
    for name, src in (("a", small_clip_y4m), ("b", flipped)):
        out, recon = tmp_path / f"{name}.gvc", tmp_path / f"{name}.y4m"
        p = subprocess.run(GVC + ["encode", str(src), "-o", str(out), "--recon", str(recon)] + FAST,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        parts.append((out.read_bytes(), frames_of(recon)))
    (a, a_frames), (b, b_frames) = parts
    header = a[:a.index(b"GVCU", 4)]
    assert b.startswith(header)  # they share it
    both = tmp_path / "ab.gvc"
    both.write_bytes(a + b)
    dec = tmp_path / "ab.y4m"
    p = subprocess.run(GVC + ["decode", str(both), "-o", str(dec)], capture_output=True, text=True)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert "decoded 16 frames in 4 GOPs" in p.stderr
    got = frames_of(dec)
    assert len(got) == 16 and all(np.array_equal(x, y) for x, y in zip(got, a_frames + b_frames))
    assert not np.array_equal(got[0], got[8])
