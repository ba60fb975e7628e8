"""An encode that stops early keeps its finished GOPs (issue 14.4): SIGINT and SIGTERM after N GOPs, the
producer dying mid-frame. The file under the requested name decodes to exactly those GOPs, the --recon file
matches it, no .part file stays behind, and one line says what was kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from container.bitstream import UnitReader
from container.matroska import MatroskaReader
from ffmpeg_bridge.video_io import VideoReader
from gvc.cli import main

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic"]


def frames_of(path):
    with VideoReader(str(path)) as r:
        return list(r)


def y4m_parts(small_clip_y4m: Path, frames: int) -> tuple[bytes, list[bytes]]:
    """The clip's y4m header and `frames` FRAME records (the clip's 8 frames, cycled)."""
    header, body = small_clip_y4m.read_bytes().split(b"\n", 1)
    size = 176 * 144 * 3 // 2 + len(b"FRAME\n")
    records = [body[i * size:(i + 1) * size] for i in range(len(body) // size)]
    return header + b"\n", [records[i % len(records)] for i in range(frames)]


def units_in(part: Path) -> int:
    if not part.exists():
        return 0
    data = part.read_bytes()
    try:
        if data[:4] == b"GVCU":
            return sum(1 for u in UnitReader(__import__("io").BytesIO(data)) if isinstance(u, bytes)) - 1
        return sum(1 for _ in MatroskaReader(__import__("io").BytesIO(data)).packets())
    except Exception:
        return 0


def encode_until(tmp_path, small_clip_y4m, out: Path, gops: int, stop) -> subprocess.CompletedProcess:
    """Feed an I2V encode the frames of `gops` GOPs on stdin, wait until they are in the .part file, then `stop`."""
    recon = tmp_path / "recon.y4m"
    header, records = y4m_parts(small_clip_y4m, 1 + 4 * gops)  # GOP length 5, overlap 1
    p = subprocess.Popen(GVC + ["encode", "-", "-o", str(out), "--recon", str(recon)] + FAST,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(header + b"".join(records))
    p.stdin.flush()
    part = out.with_name(out.stem + ".part" + out.suffix)
    deadline = time.monotonic() + 240
    while units_in(part) < gops and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    stop(p)
    if p.stdin.closed:
        p.stdin = None  # communicate() would flush it
    err = p.communicate(timeout=120)[1].decode()
    return subprocess.CompletedProcess(p.args, p.returncode, b"", err)


def check_kept(tmp_path, out: Path, gops: int, frames: int) -> None:
    assert out.exists() and not list(tmp_path.glob("*.part*"))
    dec = tmp_path / "d.y4m"
    assert main(["decode", str(out), "-o", str(dec), "-q"]) == 0  # a clean stream: no damage reported
    decoded, recon = frames_of(dec), frames_of(tmp_path / "recon.y4m")
    assert len(decoded) == len(recon) == frames
    assert all(np.array_equal(a, b) for a, b in zip(decoded, recon))
    assert units_in(out) == gops


@pytest.mark.parametrize("ext, signum, status", [(".mkv", signal.SIGINT, 130), (".gvc", signal.SIGTERM, 143)])
def test_signal_after_finished_gops_keeps_them(tmp_path, small_clip_y4m, ext, signum, status):
    out = tmp_path / f"out{ext}"
    p = encode_until(tmp_path, small_clip_y4m, out, 2, lambda p: p.send_signal(signum))
    assert p.returncode == status, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last == f"gvc: interrupted: kept 2 finished GOPs (9 frames) in {out}", p.stderr
    assert "Traceback" not in p.stderr
    check_kept(tmp_path, out, 2, 9)


def test_producer_dying_mid_frame_keeps_finished_gops(tmp_path, small_clip_y4m):
    out = tmp_path / "out.mkv"

    def die_mid_frame(p):
        p.stdin.write(b"FRAME\n" + bytes(1000))  # part of the next frame, then the producer is gone
        p.stdin.close()

    p = encode_until(tmp_path, small_clip_y4m, out, 2, die_mid_frame)
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("gvc: error: truncated last frame") and \
        err.endswith(f"kept 2 finished GOPs (9 frames) in {out}"), err
    check_kept(tmp_path, out, 2, 9)
