"""Write the conformance streams under tests/conformance/: one small stream per mode, with what decoding must give.

    python -m tools.make_conformance [--out tests/conformance]

Each stream is a real ``gvc encode`` of a synthetic clip (no clip files needed) with the analytic prior and
tiny settings, so it decodes in well under a second. Every GOP unit carries the hash of its decoded frames
(§GOP unit ``frame_hash``). Beside each stream:

* ``NAME.md5``: the MD5 of ``gvc decode NAME -o NAME.y4m`` (md5sum format) and the platform it was made on;
  a decoder on that platform must reproduce it exactly;
* ``NAME.y4m.gz``: that y4m, so a decoder on another platform can be held to >= 50 dB PSNR against its
  frames (tests/test_conformance.py); streams of the same mode share it (``reference_of``).

The streams are the fuzzer's seeds too (tools/fuzz.py). Re-run this after an incompatible bitstream change.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "conformance"
WIDTH, HEIGHT, FRAMES, FPS = 48, 32, 5, 25
SETTINGS = ["--prior", "analytic", "--quality", "2", "--gop-length", "3", "--steps", "4", "--ode-tail", "1", "-q"]
# name -> (mode, container)
STREAMS = {"v3_t2v": ("t2v", "gvc"), "v3_i2v": ("i2v", "gvc"), "v3_flf2v": ("flf2v", "gvc"), "v3_i2v_mkv": ("i2v", "mkv")}


def reference_of(name: str) -> str:
    """The stream whose decoded y4m a stream must reproduce: the same mode in another container decodes alike."""
    return name.removesuffix("_mkv")


def platform_tag() -> str:
    """What 'the same platform' means for bit-exact decoding: OS, CPU architecture and the torch build."""
    import torch

    return f"{platform.system()}-{platform.machine()} torch-{torch.__version__}"


def synthetic_frames(n: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """A gradient with a moving square and a moving disc: smooth and textured parts, motion in both axes."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(n):
        r = 128 + 100 * np.sin((x + 3 * t) / 9.0)
        g = 64 + 150 * (y / height)
        b = 128 + 60 * np.cos((x - y + 2 * t) / 7.0)
        rgb = np.stack([r, g, b], axis=-1)
        sx, sy = 4 + 4 * t, 6 + t
        rgb[sy:sy + 10, sx:sx + 10] = (240, 40, 30)
        disc = (x - (38 - 3 * t)) ** 2 + (y - 20) ** 2 < 36
        rgb[disc] = (20, 30, 220)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return frames


def read_frames(path) -> list[np.ndarray]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(str(path)) as r:
        return list(r)


def md5_line(y4m: Path, name: str) -> str:
    return f"{hashlib.md5(y4m.read_bytes()).hexdigest()}  {name}.y4m"


def make(out: Path) -> list[dict]:
    from ffmpeg_bridge.video_io import VideoWriter

    gvc = [sys.executable, "-m", "gvc.cli"]
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="gvc-conformance-") as tmp:
        src = Path(tmp) / "src.y4m"
        with VideoWriter(src, width=WIDTH, height=HEIGHT, fps=FPS) as w:
            for f in synthetic_frames():
                w.write(f)
        for name, (mode, fmt) in STREAMS.items():
            stream, recon, dec = out / f"{name}.{fmt}", Path(tmp) / f"{name}.recon.y4m", Path(tmp) / f"{name}.y4m"
            subprocess.run(gvc + ["encode", str(src), "-o", str(stream), "--mode", mode, "--recon", str(recon)]
                           + SETTINGS, check=True)
            subprocess.run(gvc + ["decode", str(stream), "-o", str(dec), "-q"], check=True)
            frames = read_frames(dec)
            if not (len(frames) == FRAMES and all(np.array_equal(a, b) for a, b in zip(frames, read_frames(recon)))):
                raise SystemExit(f"make_conformance: {name}: the decoder does not reproduce the encoder's frames")
            (out / f"{name}.md5").write_text(f"{md5_line(dec, name)}\n# platform: {platform_tag()}\n")
            if reference_of(name) == name:
                (out / f"{name}.y4m.gz").write_bytes(gzip.compress(dec.read_bytes(), mtime=0))
            made.append({"name": name, "mode": mode, "bytes": stream.stat().st_size})
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.make_conformance", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT.relative_to(ROOT)})")
    a = p.parse_args(argv)
    for row in make(a.out):
        print(f"{row['name']}: {row['mode']}, {row['bytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
