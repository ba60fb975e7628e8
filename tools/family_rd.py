"""RD of the two codebook families (gaussian, hadamard) on real clips at equal M (so equal index bits).

    python -m tools.family_rd [--clips carphone_176x144.mp4,...] [--frames 17] [--qualities 8] [--json FILE]

Encodes each clip (cropped to --size, first --frames frames) with the default prior on the CPU through the
library API and prints one JSON object: per clip, family and quality the bytes, bpp, PSNR and VMAF
(tools.metrics.mean_vmaf, ffmpeg's libvmaf), and per clip and quality the differences hadamard - gaussian.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tools import CLIPS_DIR, emit_json


def _frames(path: Path, n: int, w: int, h: int) -> list[np.ndarray]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(path, max_frames=n) as r:
        out = []
        for f in r:
            y0, x0 = (f.shape[0] - h) // 2, (f.shape[1] - w) // 2
            out.append(np.ascontiguousarray(f[y0:y0 + h, x0:x0 + w]))
        fps = r.info.fps
    return out, fps


def _vmaf(reference, distorted, fps) -> float:
    import tempfile

    from ffmpeg_bridge.video_io import VideoWriter
    from tools.metrics import mean_vmaf

    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, frames in (("ref", reference), ("dist", distorted)):
            path = Path(d) / f"{name}.y4m"
            w = VideoWriter(str(path), width=frames[0].shape[1], height=frames[0].shape[0], fps=fps)
            for f in frames:
                w.write(f)
            w.close()
            paths.append(path)
        return float(mean_vmaf(paths[1], paths[0], Path(d)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--clips", default="carphone_176x144.mp4,tree_320x240.mp4,bikes_640x272.mp4")
    p.add_argument("--size", default="176x144")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--qualities", default="8")
    p.add_argument("--mode", default="i2v")
    p.add_argument("--prior", default="default")
    p.add_argument("--json")
    a = p.parse_args(argv)
    from gvc.codec import GopCodec
    from gvc.config import CodecConfig
    from gvc.metrics import psnr
    from gvc.priors import load_prior

    w, h = (int(v) for v in a.size.split("x"))
    prior = load_prior(a.prior)
    rows = []
    for clip in a.clips.split(","):
        frames, fps = _frames(Path(a.clips_dir) / clip, a.frames, w, h)
        for q in (int(v) for v in a.qualities.split(",")):
            for family in ("gaussian", "hadamard"):
                cfg = CodecConfig(mode=a.mode, quality=q, gop_length=a.frames, codebook_family=family).validate()
                enc = GopCodec.for_encoding(prior, cfg, width=w, height=h, fps=fps, frame_count=len(frames))
                t = time.perf_counter()
                res = enc.encode(0, frames)
                sec = time.perf_counter() - t
                nbytes = len(res.unit.to_bytes())
                vmaf = _vmaf(frames, res.frames, fps)
                rows.append({"clip": clip, "quality": q, "family": family, "bytes": nbytes,
                             "bpp": 8 * nbytes / (w * h * len(frames)), "encode_seconds": sec,
                             "psnr": float(np.mean([psnr(x, y) for x, y in zip(frames, res.frames)])), "vmaf": vmaf})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    diffs = []
    for r in rows:
        if r["family"] == "hadamard":
            g = next(x for x in rows if x["clip"] == r["clip"] and x["quality"] == r["quality"] and x["family"] == "gaussian")
            diffs.append({"clip": r["clip"], "quality": r["quality"], "psnr_hadamard_minus_gaussian": r["psnr"] - g["psnr"],
                          "vmaf_hadamard_minus_gaussian": r["vmaf"] - g["vmaf"],
                          "bytes_ratio": r["bytes"] / g["bytes"]})
    res = {"prior": prior.name, "mode": a.mode, "size": a.size, "frames": a.frames, "rows": rows, "differences": diffs,
           "mean_psnr_difference": float(np.mean([d["psnr_hadamard_minus_gaussian"] for d in diffs])),
           "mean_vmaf_difference": float(np.mean([d["vmaf_hadamard_minus_gaussian"] for d in diffs]))}
    emit_json(res, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
