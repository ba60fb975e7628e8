"""Segment-parallel encode and decode (gvc.segments, gvc.distributed, gvc-dist): two gloo ranks on CPU,
started by `gvc-dist --nproc 2` exactly as torchrun starts them (processes with RANK, WORLD_SIZE and
MASTER_ADDR/PORT), must write the bytes a single-process encode writes and decode to the same frames;
a killed rank fails the run with a message naming a segment, and --resume completes it."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ffmpeg_bridge.video_io import VideoReader
from gvc import cli
from gvc.config import CodecConfig
from gvc.gop import plan_gops
from gvc.priors import AnalyticPrior
from gvc.segments import assign_blocks, assign_round_robin, plan_segments

FAST = ["--prior", "analytic", "--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "-q"]
DIST = [sys.executable, "-m", "gvc.dist_cli"]
# No thread count is pinned: the ranks (cores / 2 threads each) and this process (torch's default) write the
# same bytes and frames, as the decoded output does not depend on it (tests/test_threads.py).
ENV = dict(os.environ)


def frames_of(path):
    with VideoReader(str(path)) as r:
        return list(r)


@pytest.fixture(scope="module")
def clip13(tmp_path_factory, clip, ffmpeg):
    """13 frames of carphone: 3 GOPs of 5 in every mode, the last one short."""
    out = tmp_path_factory.mktemp("dist") / "carphone_13.y4m"
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip("carphone_176x144.mp4")),
                    "-frames:v", "13", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y", str(out)], check=True)
    return out


def single(args):
    """`gvc` in this process."""
    assert cli.main(args) == 0


# -- planning --------------------------------------------------------------------------------------

def keyframes(refresh):
    return CodecConfig(mode="i2v", refresh=refresh).codes_first_anchor


def test_segments_cut_where_the_mode_allows():
    geometry = AnalyticPrior().geometry
    chained = plan_gops(41, 5, 1, geometry)  # 10 GOPs sharing boundary frames
    t2v = plan_segments(plan_gops(40, 5, 0, geometry), "t2v", keyframes(0), 3)
    assert [(s.first_gop, s.end_gop) for s in t2v] == [(0, 3), (3, 6), (6, 8)]
    assert (t2v[1].first_frame, t2v[1].end_frame) == (15, 30)
    flf2v = plan_segments(chained, "flf2v", keyframes(0), 1)
    assert len(flf2v) == 10 and (flf2v[1].first_frame, flf2v[1].end_frame) == (4, 9)  # the boundary frame shared
    assert len(plan_segments(chained, "i2v", keyframes(0), 1)) == 1  # one chain: nothing to cut
    i2v = plan_segments(chained, "i2v", keyframes(4), 1)
    assert [(s.first_gop, s.end_gop) for s in i2v] == [(0, 4), (4, 8), (8, 10)]
    assert [(s.first_gop, s.end_gop) for s in plan_segments(chained, "i2v", keyframes(4), 5)] == [(0, 8), (8, 10)]


def test_assignment_covers_every_segment_once():
    geometry = AnalyticPrior().geometry
    segs = plan_segments(plan_gops(50, 5, 0, geometry), "t2v", keyframes(0), 1)
    for assign in (assign_blocks, assign_round_robin):
        for workers in (1, 2, 3, 4, 16):
            shares = assign(segs, workers)
            assert sorted(s.index for share in shares for s in share) == list(range(len(segs)))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
    blocks = assign_blocks(segs, 3)
    assert all(b[i + 1].index == b[i].index + 1 for b in blocks for i in range(len(b) - 1))  # contiguous


# -- two gloo ranks --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,extra", [("t2v", []), ("flf2v", []), ("i2v", ["--refresh", "2"])])
def test_two_ranks_match_one_process(tmp_path, clip13, mode, extra):
    opts = ["--mode", mode, *FAST, *extra]
    ref, out = tmp_path / "one.mkv", tmp_path / "two.mkv"
    single(["encode", str(clip13), "-o", str(ref), *opts])
    p = subprocess.run(DIST + ["encode", str(clip13), "-o", str(out), *opts, "--nproc", "2"], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not os.path.exists(f"{out}.segments")  # spill removed once the stream is whole

    single(["decode", str(ref), "-o", str(tmp_path / "one.y4m"), "-q"])
    p = subprocess.run(DIST + ["decode", str(out), "-o", str(tmp_path / "two.y4m"), "-q", "--nproc", "2"], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    a, b = frames_of(tmp_path / "one.y4m"), frames_of(tmp_path / "two.y4m")
    assert len(a) == len(b) == 13 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_pipe_input_is_refused(tmp_path):
    p = subprocess.run(DIST + ["encode", "-", "-o", str(tmp_path / "x.mkv"), *FAST], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "seekable" in p.stderr and "pipe" in p.stderr


def _child_with_rank(parent: int, rank: int):
    for d in glob.glob("/proc/[0-9]*"):
        try:
            stat = open(f"{d}/stat").read().rsplit(")", 1)[1].split()
            env = open(f"{d}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent and f"RANK={rank}".encode() in env:
            return int(d[6:])
    return None


def test_killed_rank_fails_cleanly_and_resume_completes(tmp_path, clip13, ffmpeg, clip):
    src = tmp_path / "c60.y4m"
    subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip("carphone_176x144.mp4")),
                    "-frames:v", "60", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y", str(src)], check=True)
    opts = ["--mode", "t2v", *FAST]
    out, spill = tmp_path / "out.mkv", tmp_path / "out.mkv.segments"
    run = DIST + ["encode", str(src), "-o", str(out), *opts, "--nproc", "2", "--heartbeat-timeout", "3"]
    p = subprocess.Popen(run, env=ENV, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and p.poll() is None and time.monotonic() < deadline:
        if (spill / "signature.bin").exists():  # rank 0 is past the start, so every rank has joined
            pid = _child_with_rank(p.pid, 1)
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
        time.sleep(0.01)
    err = p.communicate(timeout=60)[1]
    assert killed is not None, err
    assert p.returncode == 1 and time.monotonic() - killed < 30
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rank 1" in lines[0] and "segment" in lines[0] and "--resume" in lines[0], err
    assert not out.exists() and not glob.glob(str(tmp_path / "*.part*"))  # nothing that looks like a finished file
    kept = sorted(glob.glob(str(spill / "gops-*.gvcu")))
    assert kept, "rank 0's finished segments are spilled"

    p = subprocess.run([a for a in run if a != "-q"] + ["--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"resume: {len(kept)} of 12 segments found" in p.stderr
    ref = tmp_path / "one.mkv"
    single(["encode", str(src), "-o", str(ref), *opts])
    assert out.read_bytes() == ref.read_bytes()
