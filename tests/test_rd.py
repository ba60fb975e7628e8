"""tools.rd (rate-distortion sweep), tools.bd (Bjøntegaard deltas), tools.metrics (MS-SSIM) and tools.report.

The smoke test runs ``python -m tools.rd --quick`` for real (ffmpeg binary, real clip, analytic prior) and
checks the structure and sanity of what it writes, not exact numbers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_CLIP  # tests/ is on sys.path (pytest prepend mode)
from tools import rd
from tools.bd import bd_metric, bd_metric_figure, bd_rate, bd_rate_figure
from tools.metrics import mean_ms_ssim, ms_ssim_per_frame

W, H, FRAMES = 176, 144, 9  # the quick preset on carphone


# -- Bjøntegaard -------------------------------------------------------------------------------------------

ANCHOR_RATES = [0.01, 0.02, 0.04, 0.08, 0.16]


def curve(rates):
    """A concave, increasing PSNR(rate) curve that no cubic fits exactly."""
    return [30 + 4 * math.log(r) - 0.15 * math.log(r) ** 2 + 0.5 * math.sin(math.log(r)) for r in rates]


def test_bd_rate_of_a_curve_needing_ten_percent_fewer_bits_is_minus_ten():
    test_rates = [0.9 * r for r in ANCHOR_RATES]
    assert bd_rate(ANCHOR_RATES, curve(ANCHOR_RATES), test_rates, curve(ANCHOR_RATES)) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(test_rates, curve(ANCHOR_RATES), ANCHOR_RATES, curve(ANCHOR_RATES)) == pytest.approx(100 / 9, abs=1e-6)


def test_bd_metric_of_a_curve_half_a_db_higher_is_half_a_db():
    m = curve(ANCHOR_RATES)
    assert bd_metric(ANCHOR_RATES, m, ANCHOR_RATES, [v + 0.5 for v in m]) == pytest.approx(0.5, abs=1e-9)
    assert bd_rate(ANCHOR_RATES, m, ANCHOR_RATES, m) == pytest.approx(0.0, abs=1e-9)


def test_bd_is_none_without_overlap_or_points():
    m = curve(ANCHOR_RATES)
    far = [r * 1000 for r in ANCHOR_RATES]
    assert bd_metric(ANCHOR_RATES, m, far, m) is None  # rates do not overlap
    assert bd_rate(ANCHOR_RATES, m, ANCHOR_RATES, [v + 50 for v in m]) is None  # metrics do not overlap
    assert bd_rate(ANCHOR_RATES, m, [0.02], [31.0]) is None  # one point is no curve
    # fewer than 4 points: a lower-degree fit, still exact for a straight line in log-rate
    line = [20 + 3 * math.log(r) for r in ANCHOR_RATES[:3]]
    assert bd_rate(ANCHOR_RATES[:3], line, [0.8 * r for r in ANCHOR_RATES[:3]], line) == pytest.approx(-20.0, abs=1e-6)


def test_bd_figures_give_their_overlap_and_flag_narrow_ones():
    m = curve(ANCHOR_RATES)
    wide = bd_metric_figure(ANCHOR_RATES, m, [0.9 * r for r in ANCHOR_RATES], m)
    assert wide.overlap == pytest.approx((0.01, 0.144)) and wide.decades == pytest.approx(math.log10(14.4))
    assert not wide.narrow
    # two points of the test curve inside the anchor's top segment: 0.15..0.16 bpp is 0.028 of a decade
    tip = bd_metric_figure(ANCHOR_RATES, m, [0.15, 0.16, 0.3], curve([0.15, 0.16, 0.3]))
    assert tip.overlap == pytest.approx((0.15, 0.16)) and tip.decades == pytest.approx(math.log10(0.16 / 0.15))
    assert tip.narrow and tip.value == pytest.approx(0.0, abs=0.05)
    rate = bd_rate_figure(ANCHOR_RATES, m, [0.15, 0.16, 0.3], curve([0.15, 0.16, 0.3]))
    assert rate.narrow and rate.overlap == pytest.approx((curve([0.15])[0], curve([0.16])[0]))
    assert not bd_rate_figure(ANCHOR_RATES, m, [0.9 * r for r in ANCHOR_RATES], m).narrow
    assert bd_rate_figure(ANCHOR_RATES, m, [0.02], [31.0]).as_dict() == \
        {"value": None, "overlap": None, "decades": None, "narrow": False}


def test_bd_lines_show_range_and_flag():
    m = curve(ANCHOR_RATES)
    curves = {"seq": {"x265": {"results": {"bpp": ANCHOR_RATES, "psnr-rgb": m}},
                      "near": {"results": {"bpp": [0.15, 0.16, 0.3], "psnr-rgb": curve([0.15, 0.16, 0.3])}},
                      "far": {"results": {"bpp": [r * 1000 for r in ANCHOR_RATES], "psnr-rgb": m}}}}
    lines = rd.bd_lines(rd.bd_tables(curves, "x265"))
    near, = [line for line in lines if ": near vs x265" in line]
    assert "over 0.15–0.16 bpp (0.03 decades of rate) NARROW" in near and "BD-PSNR-RGB" in near
    far, = [line for line in lines if ": far vs x265" in line]
    assert "BD-PSNR-RGB none (no overlap)" in far


# -- MS-SSIM -----------------------------------------------------------------------------------------------

def test_ms_ssim_is_one_for_identical_frames_and_falls_with_noise():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([(xx * 255 / W), (yy * 255 / H), 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 5.0)], -1)
    frame = base.clip(0, 255).astype(np.uint8)
    noisy = [np.clip(frame + rng.normal(0, s, frame.shape), 0, 255).astype(np.uint8) for s in (2, 10, 40)]
    assert mean_ms_ssim([frame], [frame]) == pytest.approx(1.0, abs=1e-12)
    scores = ms_ssim_per_frame([frame] * 3, noisy)
    assert 1.0 > scores[0] > scores[1] > scores[2] > 0.0


# -- the quick sweep ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, clips_dir, clip, ffmpeg):
    clip(SMALL_CLIP)  # skips when the clip is absent
    out = tmp_path_factory.mktemp("rd")
    argv = ["--quick", "--prior", "analytic", "--clips-dir", str(clips_dir), "--out", str(out),
            "--plots", str(out / "img"), "--report", str(out / "results.md"), "-q"]
    assert rd.main(argv) == 0
    return out, argv, json.loads((out / "rd_quick.json").read_text())


def curves_of(data):
    (seq, codecs), = data["curves"].items()
    assert seq == f"carphone_176x144@{W}x{H}x{FRAMES}"
    return codecs


def test_quick_sweep_has_every_codec_and_point(quick_run):
    _, _, data = quick_run
    assert not [p for p in data["points"] if "error" in p]
    codecs = curves_of(data)
    gvc = {f"gvc-{m} (analytic-v1)" for m in rd.GVC_MODES}
    assert set(codecs) == gvc | {"x264", "x265", "vvc", "av1"}
    for name, c in codecs.items():
        r = c["results"]
        assert set(r) >= {"bytes", "bpp", "kbps", "psnr-y", "psnr-rgb", "ms-ssim", "vmaf"}
        n = {"x264": 3, "x265": 3, "vvc": 2, "av1": 2}.get(name, 2)
        assert all(len(v) == n for v in r.values()), name
        assert c["name"] == name and c["description"]
    assert data["software"]["ffmpeg"].startswith("ffmpeg version")
    assert data["sequences"][f"carphone_176x144@{W}x{H}x{FRAMES}"]["frames"] == FRAMES


def test_quick_sweep_figures_are_sane(quick_run):
    _, _, data = quick_run
    fps = 30000 / 1001
    for p in data["points"]:
        assert p["bits"] == 8 * p["bytes"] > 0
        assert p["bpp"] == pytest.approx(p["bits"] / (W * H * FRAMES))
        assert p["kbps"] == pytest.approx(p["bits"] / (FRAMES / fps) / 1000, rel=1e-3)
        assert 5 < p["psnr-y"] < 60 and 5 < p["psnr-rgb"] < 60
        assert 0 < p["ms-ssim"] <= 1 and 0 <= p["vmaf"] <= 100
        assert p["encode_seconds"] > 0 and p["encode_cpu_seconds"] > 0 and p["decode_cpu_seconds"] > 0
        assert len(p["load_average"]) == 3
    codecs = curves_of(data)
    x265 = codecs["x265"]["results"]  # sorted by rate: PSNR, MS-SSIM and VMAF rise with it, CRF falls
    assert x265["bpp"] == sorted(x265["bpp"]) and x265["crf"] == sorted(x265["crf"], reverse=True)
    for m in ("psnr-y", "psnr-rgb", "ms-ssim", "vmaf"):
        assert x265[m] == sorted(x265[m]), m
    x264 = codecs["x264"]["results"]
    assert x264["psnr-y"] == sorted(x264["psnr-y"])
    for mode in rd.GVC_MODES:  # GVC's bits rise with --quality
        r = codecs[f"gvc-{mode} (analytic-v1)"]["results"]
        assert r["quality"] == sorted(r["quality"]) and r["bytes"] == sorted(r["bytes"]), mode
        assert len(set(r["bytes"])) == len(r["bytes"])
    bd = data["bd"][f"carphone_176x144@{W}x{H}x{FRAMES}"]
    assert bd["anchor"] == "x265"
    assert math.isfinite(bd["codecs"]["x264"]["psnr-y"]["bd-rate"])


def test_quick_sweep_writes_plots_and_report(quick_run):
    out, _, data = quick_run
    pngs = sorted((out / "img").glob("rd_*.png"))
    assert [p.name for p in pngs] == sorted(f"rd_quick_{m}.png" for m in ("psnr-y", "psnr-rgb", "ms-ssim", "vmaf"))
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = (out / "results.md").read_text()
    assert "python -m tools.rd --quick" in md and "ffmpeg version" in md and "| torch |" in md
    assert "| x265 | crf 51 |" in md and "BD against `x265`" in md and "](img/rd_quick_psnr-y.png)" in md
    assert "enc CPU s" in md and "## Rate–distortion: `rd_quick.json`" in md
    assert md.count("## Rate–distortion") == 1  # this run's JSON alone, not benchmarks/rd*.json


def test_quick_sweep_resumes_without_recomputing(quick_run, capsys):
    out, argv, data = quick_run
    assert rd.main([a for a in argv if a != "-q"]) == 0
    assert f"{len(data['points'])} already in" in capsys.readouterr().err
    again = json.loads((out / "rd_quick.json").read_text())
    assert again["points"] == data["points"]


def test_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path, clip, ffmpeg):
    path = clip(SMALL_CLIP)
    assert rd.main(["--quick", "--clips", str(path), "--modes", "none", "--codecs", "vvc",
                    "--params", "vvc=99,63", "--no-vmaf", "--no-plots", "--out", str(tmp_path), "-q"]) == 0
    points = {p["value"]: p for p in json.loads((tmp_path / "rd_quick.json").read_text())["points"]}
    assert "error" in points[99] and "ffmpeg failed" in points[99]["error"]
    assert "error" not in points[63] and points[63]["bytes"] > 0


def test_missing_clip_is_one_line_and_non_zero(tmp_path, capsys):
    assert rd.main(["--quick", "--clips", "no_such_clip.mp4", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rd: error: clip not found: no_such_clip.mp4") and "\n" not in err
    assert not (tmp_path / "out").exists()


# -- safety on a new clip ----------------------------------------------------------------------------------

ROOT = Path(rd.__file__).resolve().parents[1]
TINY = ["--frames", "3", "--steps", "4", "--modes", "i2v", "--prior", "analytic", "--codecs", "x265", "--no-vmaf"]


def run_rd(argv, tmp_path, pre: str = "") -> subprocess.CompletedProcess:
    """``python -m tools.rd`` with tiny settings and ARGV in the checkout, with TMPDIR inside tmp_path; ``pre``
    runs before it."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "OMP_NUM_THREADS": "1"}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    code = f"import sys\n{pre}\nfrom tools import rd\nsys.exit(rd.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *TINY, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def outside_clip(tmp_path, clip, ffmpeg):
    """carphone copied to a folder outside the checkout and outside the clips folder."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    src = tmp_path / "elsewhere" / "my clip.mp4"
    src.parent.mkdir()
    shutil.copyfile(clip(SMALL_CLIP), src)
    return src


def test_rd_on_a_clip_outside_the_checkout_without_out_leaves_it_clean(outside_clip, tmp_path):
    before = git_status()
    run = run_rd(["--clips", str(outside_clip), "--qualities", "2", "--params", "x265=51", "--report",
                  str(tmp_path / "report.md")], tmp_path)
    assert run.returncode == 0, run.stderr
    assert git_status() == before
    folder, = [line.removeprefix("rd: output folder: ") for line in run.stderr.splitlines()
               if line.startswith("rd: output folder: ")]
    assert Path(folder).parent == tmp_path / "tmp"
    data = json.loads((Path(folder) / "rd.json").read_text())
    assert {p["codec"] for p in data["points"] if "error" not in p} == {"gvc-i2v", "x265"}
    assert sorted(p.name for p in Path(folder).glob("*.png")) == ["rd_ms-ssim.png", "rd_psnr-rgb.png", "rd_psnr-y.png"]
    assert "BD-rate" in run.stderr and "CPU" in run.stderr


def test_resumed_run_into_the_same_folder_keeps_every_earlier_stream(outside_clip, tmp_path):
    out = tmp_path / "out"
    first = run_rd(["--clips", str(outside_clip), "--out", str(out), "--qualities", "2", "--params", "x265=51",
                    "--no-plots", "-q"], tmp_path)
    assert first.returncode == 0, first.stderr
    streams = {p: p.read_bytes() for p in (out / "work").rglob("stream.*")}
    assert len(streams) == 2
    second = run_rd(["--clips", str(outside_clip), "--out", str(out), "--qualities", "8,2",
                     "--params", "x265=47,51", "--no-plots", "-q"], tmp_path)
    assert second.returncode == 0, second.stderr
    after = {p: p.read_bytes() for p in (out / "work").rglob("stream.*")}
    assert len(after) == 4 and all(after[p] == data for p, data in streams.items())
    points = json.loads((out / "rd.json").read_text())["points"]
    assert sorted((p["codec"], p["value"]) for p in points) == [("gvc-i2v", 2), ("gvc-i2v", 8), ("x265", 47),
                                                                ("x265", 51)]
    assert not list((out / "work").rglob("decoded.y4m"))


def test_pinned_levers_are_a_curve_of_their_own(outside_clip, tmp_path):
    from gvc.ladder import levers

    out = tmp_path / "out"
    for pin in ([], ["--anchor-quality", "50", "--residual-step", "0"]):
        run = run_rd(["--clips", str(outside_clip), "--out", str(out), "--qualities", "2", "--codecs", "none",
                      "--no-plots", "-q", *pin], tmp_path)
        assert run.returncode == 0, run.stderr
    data = json.loads((out / "rd.json").read_text())
    chosen = {rd.codec_label(p): p["levers"] for p in data["points"]}
    ladder = levers("i2v", 2)
    assert chosen == {"gvc-i2v (analytic-v1)": {"m": 2, "residual_step": ladder.residual_step,
                                                "anchor_quality": ladder.anchor_quality},
                      "gvc-i2v (analytic-v1, aq50-rs0)": {"m": 2, "residual_step": None, "anchor_quality": 50.0}}
    (curves,) = data["curves"].values()
    assert set(curves) == set(chosen) and len(list((out / "work").rglob("stream.gvc"))) == 2


def test_a_changed_ladder_measures_its_points_again_and_replaces_them(outside_clip, tmp_path):
    out = tmp_path / "out"
    argv = ["--clips", str(outside_clip), "--out", str(out), "--qualities", "2", "--codecs", "none", "--no-plots", "-q"]
    for pre in ("", "import gvc.ladder\ngvc.ladder.ANCHOR_AT_1 = 30.0"):
        run = run_rd(argv, tmp_path, pre=pre)
        assert run.returncode == 0, run.stderr
    (point,) = json.loads((out / "rd.json").read_text())["points"]
    assert point["levers"]["anchor_quality"] == 38.0  # 30 + 8 per doubling, from the second run
    assert len(list((out / "work").rglob("stream.gvc"))) == 2  # the first run's stream is kept


def test_missing_matplotlib_stops_before_the_sweep_with_one_line(outside_clip, tmp_path):
    hide = ("class Hide:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'matplotlib':\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Hide())")
    run = run_rd(["--clips", str(outside_clip), "--out", str(tmp_path / "out"), "--qualities", "2",
                  "--params", "x265=51"], tmp_path, pre=hide)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("rd: error: plots need matplotlib") and "\n" not in run.stderr.strip()
    assert not (tmp_path / "out").exists()  # nothing measured


def test_target_size_and_crop():
    assert rd.target_size("upto:352x288", 176, 144) == (176, 144)
    assert rd.target_size("upto:352x288", 1280, 720) == (352, 192)
    assert rd.target_size("native", 641, 273) == (640, 272)
    assert rd.target_size("128x96", 176, 144) == (128, 96)
    assert rd.crop_scale_filter(1280, 720, 352, 192) == "crop=1280:698:0:11,scale=352:192:flags=bicubic"
    assert rd.crop_scale_filter(176, 144, 176, 144) is None
