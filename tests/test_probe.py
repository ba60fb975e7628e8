"""`gvc info` (gvc.probe): per-GOP time ranges, keyframe flags and payload bytes that add up to the file,
and the tracks of a Matroska file that ffmpeg gave an audio track beside the GVC one."""

import json
import subprocess
import sys

import pytest

GVC = [sys.executable, "-m", "gvc.cli"]
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, _small_clip_y4m_master):
    """The 8-frame clip, I2V --refresh 1, as .gvc and as .mkv."""
    folder = tmp_path_factory.mktemp("probe")
    for name in ("r.gvc", "r.mkv"):
        p = subprocess.run(GVC + ["encode", str(_small_clip_y4m_master), "-o", str(folder / name), "--refresh", "1"] + FAST,
                           capture_output=True)
        assert p.returncode == 0, p.stderr.decode()
    return folder / "r.gvc", folder / "r.mkv"


def info(path, *extra):
    p = subprocess.run(GVC + ["info", str(path), *extra], capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout) if extra else p.stdout.decode()


def test_gop_times_keyframes_and_bytes(encoded):
    gvc_file = encoded[0]
    j = info(gvc_file, "--json")
    gops, fps = j["gops"], 30000 / 1001
    assert [(g["pts"], g["frames"]) for g in gops] == [(0, 5), (5, 3)]  # 8 frames, boundary frame output once
    assert [g["keyframe"] for g in gops] == [True, True]  # --refresh 1: every I2V GOP has its own anchor
    assert all(g["anchors"].get("first", 0) > 0 for g in gops)
    assert gops[0]["end_time"] == gops[1]["start_time"] == pytest.approx(5 / fps)
    assert j["format"]["duration"] == pytest.approx(8 / fps) and j["format"]["frames"] == 8
    # A .gvc file is the header unit and the GOP units, nothing else; each unit's payloads add up to it.
    assert j["header_bytes"] + sum(g["bytes"] for g in gops) == j["format"]["file_bytes"] == gvc_file.stat().st_size
    for g in gops:
        assert g["bytes"] == g["index_bytes"] + g["anchor_bytes"] + g["residual_bytes"] + g["prompt_bytes"] + g["other_bytes"]
    assert [t["type"] for t in j["tracks"]] == ["video"]
    text = info(gvc_file)
    assert "2 keyframe GOP(s) of 2" in text and "0.000-0.167" in text


def test_tracks_beside_the_gvc_one(tmp_path, encoded, ffmpeg):
    both = tmp_path / "av.mkv"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(encoded[1]), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=0.3", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-metadata:s:a:0", "language=fre", "-y", str(both)], check=True)
    j = info(both, "--json")
    kinds = {t["type"]: t for t in j["tracks"]}
    assert kinds["video"]["codec"] == "gvc" and kinds["video"]["fourcc"] == "GVC1" and kinds["video"]["width"] == 176
    assert kinds["audio"]["codec"] == "aac" and kinds["audio"]["sample_rate"] == 44100 and kinds["audio"]["language"] == "fre"
    assert len(j["gops"]) == 2
    assert "audio: aac 44100 Hz mono [fre]" in info(both)
