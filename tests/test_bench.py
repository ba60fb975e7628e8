"""tools.bench --quick for real on a short real clip: structure and sanity of its JSON, not exact numbers."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SMALL_CLIP  # tests/ is on sys.path (pytest prepend mode)
from tools import bench
from tools.report import write_report


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory, clip):
    path = clip(SMALL_CLIP)
    out = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--prior", "analytic", "--clips", str(path), "--qualities", "2,8",
            "--out", str(out / "bench_cpu_quick.json"), "--plots", str(out / "img"), "-q"]
    assert bench.main(argv) == 0
    return out, json.loads((out / "bench_cpu_quick.json").read_text())


def test_quick_bench_covers_every_mode_quality_and_device(quick_bench):
    _, data = quick_bench
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    assert data["devices"] == devices
    runs = data["runs"]
    assert {(r["mode"], r["quality"], r["device"]) for r in runs} == \
        {(m, q, d) for m in ("t2v", "i2v", "flf2v") for q in (2, 8) for d in devices}
    for r in runs:
        assert r["prior"] == "analytic" and r["frames"] == 9 and (r["width"], r["height"]) == (64, 48)
        assert r["encode_fps"] > 0 and r["decode_fps"] > 0
        assert 10 < r["peak_memory_mb"] < 64_000
        assert r["decoder_matches_encoder"] is True
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (64 * 48 * 9))
    for mode in ("t2v", "i2v", "flf2v"):  # more atoms, more bytes
        by_q = {r["quality"]: r["bytes"] for r in runs if r["mode"] == mode and r["device"] == "cpu"}
        assert by_q[8] > by_q[2], mode
    assert data["software"]["ffmpeg"].startswith("ffmpeg version") and data["software"]["torch"] == torch.__version__


def test_quick_bench_measures_codebook_search_per_device(quick_bench):
    _, data = quick_bench
    assert [b["device"] for b in data["codebook"]] == data["devices"]
    for b in data["codebook"]:
        assert b["K"] == 256 and b["M"] == 8  # the ladder's K for the largest quality
        assert b["search"]["seconds"] > 0 and b["search"]["atoms_per_s"] > 0 and b["regeneration"]["seconds"] > 0


def test_quick_bench_plot_and_report(quick_bench):
    out, data = quick_bench
    png = out / "img" / "bench_cpu_quick_speed.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = write_report(out / "results.md", rd_paths=[], bench_paths=[out / "bench_cpu_quick.json"]).read_text()
    assert "python -m tools.bench --quick" in md and "ffmpeg version" in md
    assert "| cpu | analytic | i2v | 8 |" in md and "Codebook search" in md


def test_default_json_name_follows_the_device():
    assert bench.default_out(["cpu"], quick=False).name == "bench_cpu.json"
    assert bench.default_out(["cpu", "cuda"], quick=True).name == "bench_cuda_quick.json"


def test_missing_clip_is_one_line_and_non_zero(tmp_path, capsys):
    assert bench.main(["--quick", "--clips", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: clip not found") and "\n" not in err
