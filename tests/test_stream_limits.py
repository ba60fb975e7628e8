"""Hostile streams whose CRCs are valid (issue 14): a stream never picks a local folder as its prior, and
the decoder bounds the work and the output a stream asks for."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from container.bitstream import write_elementary
from container.io import StreamReader

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]
ZOO_FOLDER = Path(__file__).resolve().parents[1] / "gvc" / "zoo" / "gvc_tae_small"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def one_line_error(p) -> str:
    err = p.stderr.strip()
    assert p.returncode == 1 and "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def stream(tmp_path_factory, _small_clip_y4m_master) -> Path:
    """A 2-GOP I2V elementary stream from the analytic prior (8 frames, GOP 5 with overlap 1)."""
    out = tmp_path_factory.mktemp("limits") / "s.gvc"
    p = run(GVC + ["encode", str(_small_clip_y4m_master), "-o", str(out)] + FAST)
    assert p.returncode == 0, p.stderr
    return out


def rewrite(src: Path, dst: Path, units=None, **header_fields) -> Path:
    """Copy a stream with header fields replaced (and optionally other units), CRCs recomputed."""
    with StreamReader(str(src)) as r:
        header = dataclasses.replace(r.header, **header_fields)
        units = list(r.units()) if units is None else units
    with open(dst, "wb") as f:
        write_elementary(f, header, units)
    return dst


# -- 14.6: priors are the user's choice --------------------------------------------------------------------


def test_stream_cannot_pick_a_local_folder(tmp_path, stream):
    bad = rewrite(stream, tmp_path / "folder.gvc", prior_id=str(ZOO_FOLDER))
    out = tmp_path / "o.y4m"
    err = one_line_error(run(GVC + ["decode", str(bad), "-o", str(out)]))
    assert "not a registered prior" in err and "--prior PATH" in err
    assert not out.exists()
    # The user's choice decodes it, when its hash matches the header's (a folder passed with --prior PATH
    # whose hash differs is refused: tests/test_default_prior.py::test_other_weights_are_refused).
    p = run(GVC + ["decode", str(bad), "-o", str(out), "--prior", "analytic", "-q"])
    assert p.returncode == 0, p.stderr


# -- 14.2: work limits -------------------------------------------------------------------------------------


def decode(args, capsys) -> tuple[int, str]:
    from gvc.cli import main

    rc = main(["decode", *map(str, args)])
    return rc, capsys.readouterr().err.strip()


def test_declared_frame_count_beyond_the_limit_is_refused_before_anything(tmp_path, stream, capsys):
    """2^24 declared frames and no GOPs: refused in one line, nothing written (it used to write without end)."""
    from container.bitstream import MAX_FRAMES

    bad = rewrite(stream, tmp_path / "many.gvc", units=[], frame_count=MAX_FRAMES)
    out = tmp_path / "o.y4m"
    rc, err = decode([bad, "-o", out, "--max-frames", 1000], capsys)
    assert rc == 1 and err == ("gvc: error: stream declares 16,777,216 frames of 176x144, above the limit of 1,000 "
                               "(--max-frames; default: what the output's free space holds)")
    assert not list(tmp_path.glob("o*"))


def test_concealment_stops_at_the_declared_count(tmp_path, stream, capsys):
    """Only GOP 0 present, 20 frames declared: exactly 20 frames come out (GOP 0 and concealment), no more."""
    with StreamReader(str(stream)) as r:
        first = next(iter(r.units()))
    bad = rewrite(stream, tmp_path / "cut.gvc", units=[first], frame_count=20)
    out = tmp_path / "o.y4m"
    rc, err = decode([bad, "-o", out, "-q"], capsys)
    assert rc == 2 and "GOP 1 missing at end of stream" in err
    frames = out.read_bytes().count(b"FRAME\n")
    assert frames == 20


def test_live_stream_gop_index_jump_is_not_concealed(tmp_path, stream, capsys):
    """frame_count 0 (live) and a GOP index of 2^20: concealment is bounded by the units present, so the stray
    GOP is skipped instead of 2^20 GOPs being concealed (it used to write 1.9 GB/min)."""
    with StreamReader(str(stream)) as r:
        first, second = list(r.units())
    g = 1 << 20
    stray = dataclasses.replace(second, gop_index=g, first_frame=g * 4)
    bad = rewrite(stream, tmp_path / "live.gvc", units=[first, stray], frame_count=0)
    out = tmp_path / "o.y4m"
    rc, err = decode([bad, "-o", out, "-q"], capsys)
    assert rc == 2 and f"GOP {g} after GOP 0 in a live stream" in err and "skipped" in err, err
    assert out.read_bytes().count(b"FRAME\n") == 5


@pytest.mark.parametrize("size, gop", [((8192, 8192), 1025), ((1920, 1088), 257)])
def test_huge_gops_are_refused_before_allocation(tmp_path, stream, size, gop):
    """A tiny stream asking for 8192x8192x1025 (68.8 GB in torch) or 1920x1088x257 GOPs: refused at once with the
    default limits (the memory available), in a process whose peak memory stays small."""
    import resource

    bad = rewrite(stream, tmp_path / "huge.gvc", units=[], width=size[0], height=size[1], gop_length=gop, frame_count=0)
    p = run(GVC + ["decode", str(bad), "-o", str(tmp_path / "o.y4m"), "--max-pixels", str(100_000_000)]
            if size[0] == 1920 else GVC + ["decode", str(bad), "-o", str(tmp_path / "o.y4m")])
    err = one_line_error(p)
    assert f"stream asks for GOPs of {size[0]}x{size[1]}x{gop}" in err and "--max-pixels" in err
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 1_500_000  # kB: the refusal allocates nothing
    assert not list(tmp_path.glob("o*"))


# -- 19.2 / 19.3: early checks and the user's names ----------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/x.txt"], "must end in .mkv or .gvc"),
    (["-o", "{tmp}/out.mp4"], "must end in .mkv or .gvc"),
    (["-o", "{tmp}/missing/out.mkv"], "directory {tmp}/missing does not exist"),
    (["-o", "{tmp}/o.mkv", "--target-kbps", "-5"], "target bitrate (kbps) must be in 0.01..1e+06, got -5"),
    (["-o", "{tmp}/o.mkv", "--recon", "{tmp}/missing/r.y4m"], "cannot write --recon"),
])
def test_encode_checks_run_before_the_model_loads(tmp_path, _small_clip_y4m_master, capsys, args, message):
    from gvc.cli import main

    args = [a.format(tmp=tmp_path) for a in args]
    # the default prior (a learned model) would take seconds to load: a check that ran after it would show
    import time

    t0 = time.perf_counter()
    rc = main(["encode", str(_small_clip_y4m_master), *args, "--prior", "default", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("gvc: error:") and message.format(tmp=tmp_path) in err, err
    assert ".part" not in err and not list(tmp_path.iterdir())
    assert time.perf_counter() - t0 < 5


def test_decode_checks_and_names_the_users_path(tmp_path, stream, capsys):
    rc, err = decode([stream, "-o", tmp_path / "missing" / "o.y4m"], capsys)
    assert rc == 1 and f"directory {tmp_path}/missing does not exist" in err
    rc, err = decode([tmp_path / "nope.gvc", "-o", tmp_path / "o.y4m"], capsys)
    assert rc == 1 and err == f"gvc: error: no such file: {tmp_path}/nope.gvc"
    rc, err = decode([stream, "-o", tmp_path / "o.txt"], capsys)
    assert rc == 1 and "must end in .y4m, .mp4, .mkv or .mov" in err
    assert not list(tmp_path.iterdir())


# -- 19.4 / wording: rate-control stats ---------------------------------------------------------------------


def test_target_kbps_stats_report_what_rate_control_chose(tmp_path, _small_clip_y4m_master, capsys):
    import json

    from gvc.cli import main

    out, stats = tmp_path / "r.mkv", tmp_path / "s.json"
    assert main(["encode", str(_small_clip_y4m_master), "-o", str(out), "--target-kbps", "40", "--stats-json",
                 str(stats), "--tags", "full"] + FAST[:-1]) == 0
    s = json.loads(stats.read_text())
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert s["rate_control"] and s["quality"] is None
    assert s["m_per_gop"] == [g["m"] for g in s["gops"]] and s["k_per_gop"] == [g["k"] for g in s["gops"]]
    assert s["m_mean"] == pytest.approx(sum(s["m_per_gop"]) / len(s["m_per_gop"]))
    assert f"M per GOP {','.join(map(str, s['m_per_gop']))} (mean {s['m_mean']:.2f}, rate control)" in line
    assert "8 frames" in line and "in 2 GOPs" in line
    with StreamReader(str(out)) as r:
        assert "quality=rate-control" in r.info.tags["ENCODER_SETTINGS"]
