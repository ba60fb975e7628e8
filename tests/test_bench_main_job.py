"""tools.bench_main_job for real, on the analytic prior and 5 frames: "before" (HEAD, from a temporary git worktree)
and "after" (this checkout) alternate, and the JSON holds every run, the medians and the after/before ratios."""

from __future__ import annotations

import json
import subprocess

import pytest

from tools import bench_main_job


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=bench_main_job.ROOT, capture_output=True, text=True).stdout


def test_before_and_after_alternate_and_are_summarised(tmp_path, clip):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=bench_main_job.ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    argv = ["--before", "HEAD", "--repeats", "2", "--threads", "1", "--out", str(out), "--plot", str(png), "--",
            "--clip", str(clip("vtest_768x576.mp4")), "--prior", "analytic", "--frames", "5", "--stages"]
    assert bench_main_job.main(argv) == 0
    data = json.loads(out.read_text())
    assert [r["variant"] for r in data["runs"]] == ["before", "after", "before", "after"]
    for r in data["runs"]:
        assert r["threads"] == r["torch_threads"] == 1 and r["frames"] == 5 and r["decoder_matches_encoder"]
        assert r["wall_seconds"] > r["encode_seconds"] > 0 and r["cpu_seconds"] > 0
        assert r["stages"]["encode"]["codebook_search"][2] > 0  # calls
    before, after, ratio = data["summary"]
    assert (before["variant"], after["variant"], ratio["variant"]) == ("before", "after", "after/before")
    assert ratio["cpu_seconds"] == pytest.approx(after["cpu_seconds"] / before["cpu_seconds"], abs=1e-3)
    assert set(after["stages"]) == {"encode", "decode"}
    assert png.stat().st_size > 0
    assert "gvc-before-" not in _worktrees()
