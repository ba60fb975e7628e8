"""Codebook granularity sweep: how the latent frames per codebook set move rate and quality (python -m tools.granularity).

    python -m tools.granularity --clips vtest_768x576.mp4,bikes_640x272.mp4 [--frames 33] [--size upto:352x288]
        [--modes t2v] [--spans 0,8,1] [--qualities 2,8,32] [--prior default] [--device cpu] [--out FILE.json]

One GOP per clip, encoded through the library API (``gvc.codec.GopCodec``); size = sequence header + GOP unit
(elementary stream), true bpp = bits / (W·H·frames); PSNR over RGB and MS-SSIM against the source frames
(``tools.metrics``). Sources are prepared as in ``tools.rd`` (same crop/scale rule). Prints one JSON line per
point and writes them all to ``--out`` (default: a temporary file, never into the checkout).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def measure(prior, frames, fps, mode: str, quality: int, span: int, device: str) -> dict:
    from gvc.codec import GopCodec
    from gvc.config import CodecConfig
    from tools.metrics import mean_ms_ssim, mean_psnr_rgb

    h, w = frames[0].shape[:2]
    cfg = CodecConfig(mode=mode, quality=quality, gop_length=len(frames), codebook_span=span)
    t0 = time.perf_counter()
    enc = GopCodec.for_encoding(prior, cfg, width=w, height=h, fps=fps, frame_count=len(frames), device=device)
    res = enc.encode(0, frames)
    seconds = time.perf_counter() - t0
    size = len(enc.header.to_bytes()) + len(res.unit.to_bytes())
    return {"mode": mode, "quality": quality, "span": span, "k": res.stats["k"], "bytes": size,
            "index_bytes": res.stats["index_bytes"], "anchor_bytes": res.stats["anchor_bytes"],
            "residual_bytes": res.stats["residual_bytes"], "bpp": 8 * size / (w * h * len(frames)),
            "psnr-rgb": mean_psnr_rgb(frames, res.frames), "ms-ssim": mean_ms_ssim(frames, res.frames),
            "encode_seconds": round(seconds, 1)}


def main(argv=None) -> int:
    from ffmpeg_bridge.video_io import VideoReader
    from gvc.priors import load_prior
    from tools.rd import CLIPS_DIR, prepare_source, resolve_clip

    p = argparse.ArgumentParser(prog="python -m tools.granularity", description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="vtest_768x576.mp4,bikes_640x272.mp4")
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--size", default="upto:352x288")
    p.add_argument("--modes", default="t2v")
    p.add_argument("--spans", default="0,8,1", help="latent frames per codebook set, comma list (0 = whole GOP)")
    p.add_argument("--qualities", default="2,8,32")
    p.add_argument("--prior", default="default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    prior = load_prior(a.prior, device=a.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gvc-gran-") as work:
        for name in a.clips.split(","):
            src = prepare_source(resolve_clip(name, Path(a.clips_dir)), a.frames, a.size, Path(work))
            with VideoReader(str(src.y4m)) as r:
                frames, fps = list(r), r.info.fps
            for mode in a.modes.split(","):
                for span in (int(v) for v in a.spans.split(",")):
                    for q in (int(v) for v in a.qualities.split(",")):
                        row = {"clip": src.clip, "size": src.size, "frames": len(frames), "prior": prior.name,
                               **measure(prior, frames, fps, mode, q, span, a.device)}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    out = a.out or Path(tempfile.mkstemp(prefix="granularity-", suffix=".json")[1])
    out.write_text(json.dumps({"command": "python -m tools.granularity " + " ".join(argv or sys.argv[1:]),
                               "points": rows}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
