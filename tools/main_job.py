"""The README's main job: encode and decode a real CIF clip with the default prior, print the figures.

    python -m tools.main_job [--clip PATH] [--frames 33] [--mode i2v] [--quality 8]

Steps (each a real command): ffmpeg scales the clip to 352x288 y4m; `gvc encode` writes a Matroska
file and the encoder's reconstruction; `gvc decode` decodes it; the decoded frames must equal the
reconstruction byte for byte; size, true bpp, kbps and PSNR are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "clips" / "vtest_768x576.mp4"


def read_frames(path: str) -> list[np.ndarray]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def main(argv=None) -> int:
    from ffmpeg_bridge.ffmpeg import run_ffmpeg
    from gvc.metrics import psnr

    p = argparse.ArgumentParser(prog="python -m tools.main_job", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--mode", default="i2v")
    p.add_argument("--quality", type=int, default=8)
    p.add_argument("--prior", default="default")
    p.add_argument("--keep", metavar="DIR", help="keep the files in DIR")
    a = p.parse_args(argv)
    if not os.path.exists(a.clip):
        print(f"main_job: clip not found: {a.clip}", file=sys.stderr)
        return 1
    work = Path(a.keep or tempfile.mkdtemp(prefix="gvc-main-"))
    work.mkdir(parents=True, exist_ok=True)
    src, mkv, recon, dec, stats = (str(work / n) for n in ("src.y4m", "out.mkv", "recon.y4m", "decoded.y4m", "stats.json"))
    run_ffmpeg(["-y", "-i", a.clip, "-frames:v", str(a.frames), "-vf", "scale=352:288:flags=bicubic",
                "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", src])
    gvc = [sys.executable, "-m", "gvc.cli"]
    t0 = time.perf_counter()
    subprocess.run(gvc + ["encode", src, "-o", mkv, "--mode", a.mode, "--quality", str(a.quality), "--prior", a.prior,
                          "--stats-json", stats, "--recon", recon], check=True)
    t1 = time.perf_counter()
    subprocess.run(gvc + ["decode", mkv, "-o", dec], check=True)
    t2 = time.perf_counter()
    source, decoded, reconstructed = read_frames(src), read_frames(dec), read_frames(recon)
    identical = len(decoded) == len(reconstructed) and all(np.array_equal(x, y) for x, y in zip(decoded, reconstructed))
    s = json.load(open(stats))
    result = {
        "clip": os.path.basename(a.clip), "mode": a.mode, "quality": a.quality, "prior": s["prior"],
        "frames": len(decoded), "width": s["width"], "height": s["height"], "fps": s["fps"],
        "bytes": os.path.getsize(mkv), "bpp": 8 * os.path.getsize(mkv) / (s["width"] * s["height"] * len(decoded)),
        "kbps": 8 * os.path.getsize(mkv) / (len(decoded) / s["fps"]) / 1000,
        "psnr_decoded": float(np.mean([psnr(x, y) for x, y in zip(source, decoded)])),
        "decoder_matches_encoder": identical, "encode_seconds": round(t1 - t0, 1), "decode_seconds": round(t2 - t1, 1),
    }
    print(json.dumps(result, indent=2))
    return 0 if identical else 2


if __name__ == "__main__":
    sys.exit(main())
