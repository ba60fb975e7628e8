"""Shared pytest fixtures.

Real clips live outside the project (``<project>/../shared/clips``) and are never copied into it; tests that
need them are skipped where they are absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLIPS_DIR = Path(os.environ.get("GVC_CLIPS_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "clips")
SMALL_CLIP = "carphone_176x144.mp4"  # 176x144, 30000/1001 fps, 120 frames
SMALL_CLIP_FRAMES = 8


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep the prior digest cache (gvc.priors.hashcache) of test runs out of the user's ~/.cache."""
    old = os.environ.get("GVC_CACHE_DIR")
    os.environ["GVC_CACHE_DIR"] = str(tmp_path_factory.mktemp("gvc-cache"))
    yield
    if old is None:
        os.environ.pop("GVC_CACHE_DIR", None)
    else:
        os.environ["GVC_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    """Directory of the real test clips (skips the test when absent)."""
    if not CLIPS_DIR.is_dir():
        pytest.skip(f"test clips not found at {CLIPS_DIR}")
    return CLIPS_DIR


@pytest.fixture(scope="session")
def clip(clips_dir):
    """``clip("carphone_176x144.mp4") -> Path``; skips the test when that clip is absent."""

    def get(name: str) -> Path:
        path = clips_dir / name
        if not path.is_file():
            pytest.skip(f"test clip {name} not found in {clips_dir}")
        return path

    return get


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """Path of the ffmpeg binary (``GVC_FFMPEG``, PATH, then imageio-ffmpeg's)."""
    from ffmpeg_bridge.ffmpeg import ffmpeg_exe
    from gvc.errors import GVCError

    try:
        return ffmpeg_exe()
    except GVCError as e:
        pytest.skip(f"no ffmpeg binary: {e}")


@pytest.fixture(scope="session")
def _small_clip_y4m_master(tmp_path_factory, clip, ffmpeg) -> Path:
    out = tmp_path_factory.mktemp("clips") / "carphone_8.y4m"
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip(SMALL_CLIP)),
         "-frames:v", str(SMALL_CLIP_FRAMES), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y", str(out)],
        check=True,
    )
    return out


@pytest.fixture
def small_clip_y4m(tmp_path, _small_clip_y4m_master) -> Path:
    """The first 8 frames of carphone (176x144, yuv420p, 30000/1001 fps) as a y4m file in tmp_path
    (made once per session with the ffmpeg binary, copied per test so tests may modify it)."""
    out = tmp_path / _small_clip_y4m_master.name
    shutil.copyfile(_small_clip_y4m_master, out)
    return out
