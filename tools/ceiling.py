"""Autoencoder ceiling: encode → decode with no coding at all (python -m tools.ceiling).

    python -m tools.ceiling [--prior default,gvc-wan-small-v1] [--clips vtest_768x576.mp4,bikes_640x272.mp4]
                            [--frames 33] [--size upto:352x288] [--no-vmaf] [--out FILE.json]

For each prior and clip: PSNR over RGB, MS-SSIM, VMAF of the prior's own reconstruction, the latent values per
video frame, and the CPU (or device) milliseconds per frame of encode and decode. Sources are prepared as in
``tools.rd``. Prints JSON (and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def ceiling(prior, frames, work: Path, fps: float, vmaf: bool) -> dict:
    from ffmpeg_bridge.video_io import VideoWriter
    from gvc.codec import to_tensor, to_uint8
    from tools.metrics import mean_ms_ssim, mean_psnr_rgb, mean_vmaf

    h, w = frames[0].shape[:2]
    x = to_tensor(frames, prior.geometry.spatial_stride, prior.device)
    t0 = time.perf_counter()
    z = prior.encode(x)
    t1 = time.perf_counter()
    out = to_uint8(prior.decode(z), h, w)
    t2 = time.perf_counter()
    row = {"latent_shape": list(z.shape), "latent_values_per_frame": z.numel() / len(frames),
           "encode_ms_per_frame": round(1000 * (t1 - t0) / len(frames), 1),
           "decode_ms_per_frame": round(1000 * (t2 - t1) / len(frames), 1),
           "psnr-rgb": mean_psnr_rgb(frames, out), "ms-ssim": mean_ms_ssim(frames, out)}
    if vmaf:
        ref, dist = work / "ref.y4m", work / "dist.y4m"
        for path, video in ((ref, frames), (dist, out)):
            with VideoWriter(str(path), width=w, height=h, fps=fps) as wr:
                for f in video:
                    wr.write(f)
        row["vmaf"] = mean_vmaf(dist, ref, work)
    return row


def main(argv=None) -> int:
    from ffmpeg_bridge.video_io import VideoReader
    from gvc.priors import load_prior
    from tools.rd import CLIPS_DIR, prepare_source, resolve_clip

    p = argparse.ArgumentParser(prog="python -m tools.ceiling", description=__doc__.splitlines()[0])
    p.add_argument("--prior", default="default", help="prior(s), comma list")
    p.add_argument("--clips", default="vtest_768x576.mp4,bikes_640x272.mp4")
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--size", default="upto:352x288")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-vmaf", dest="vmaf", action="store_false")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gvc-ceiling-") as work:
        sources = [prepare_source(resolve_clip(c, Path(a.clips_dir)), a.frames, a.size, Path(work)) for c in a.clips.split(",")]
        for name in a.prior.split(","):
            prior = load_prior(name)
            for src in sources:
                with VideoReader(str(src.y4m)) as r:
                    frames = list(r)
                row = {"prior": prior.name, "clip": src.clip, "size": src.size, "frames": len(frames),
                       "threads": torch.get_num_threads(), **ceiling(prior, frames, Path(work), src.fps, a.vmaf)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.out:
        a.out.write_text(json.dumps({"command": "python -m tools.ceiling " + " ".join(argv or sys.argv[1:]),
                                     "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
