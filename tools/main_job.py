"""The README's main job: encode and decode a real CIF clip with the default prior, print the figures.

    python -m tools.main_job [--clip PATH] [--frames 33] [--mode i2v] [--quality 8]

Steps: ffmpeg scales the clip to 352x288 y4m; the library API (gvc.pipeline.encode_stream, the function
behind `gvc encode`) writes a Matroska file and the encoder's reconstruction; decode_stream (behind
`gvc decode`) decodes it; the decoded frames must equal the reconstruction byte for byte; size, true bpp,
kbps and PSNR are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tools import CLIPS_DIR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = CLIPS_DIR / "vtest_768x576.mp4"


def read_frames(path: str) -> list[np.ndarray]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(path) as r:
        return list(r)


def main(argv=None) -> int:
    from gvc.config import MODES, default

    p = argparse.ArgumentParser(prog="python -m tools.main_job", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--mode", default=default("mode"), choices=MODES)
    p.add_argument("--quality", type=int, default=default("quality"))
    p.add_argument("--prior", default=default("prior"))
    p.add_argument("--stages", action="store_true",
                   help="also report wall and CPU seconds per stage (VAE, transformer, codebook...) of encode and decode")
    p.add_argument("--keep", metavar="DIR", help="keep the files in DIR (default: a temporary folder, removed at the end)")
    a = p.parse_args(argv)
    if not os.path.exists(a.clip):
        print(f"main_job: clip not found: {a.clip}", file=sys.stderr)
        return 1
    if a.keep:
        Path(a.keep).mkdir(parents=True, exist_ok=True)
        print(f"main_job: files kept in {a.keep}", file=sys.stderr)
        return run(a, Path(a.keep))
    with tempfile.TemporaryDirectory(prefix="gvc-main-") as work:  # 15 MB of y4m: never left behind
        return run(a, Path(work))


def run(a: argparse.Namespace, work: Path) -> int:
    import torch
    from ffmpeg_bridge.ffmpeg import run_ffmpeg
    from ffmpeg_bridge.video_io import VideoReader, VideoWriter
    from gvc.config import CodecConfig, DecodeConfig
    from gvc.errors import GVCError
    from gvc.metrics import psnr
    from gvc.pipeline import decode_stream, encode_stream

    timer = None
    if a.stages:
        from tools.bench_wan import StageTimer, _instrument

        timer = StageTimer(torch.device("cpu"))
        _instrument(timer)
    src, mkv, recon, dec = (str(work / n) for n in ("src.y4m", "out.mkv", "recon.y4m", "decoded.y4m"))
    run_ffmpeg(["-y", "-i", a.clip, "-frames:v", str(a.frames), "-vf", "scale=352:288:flags=bicubic",
                "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", src])
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with VideoReader(src) as reader:
            i = reader.info
            with VideoWriter(recon, width=i.width, height=i.height, fps=i.fps) as recon_writer:
                report = encode_stream(reader, mkv, CodecConfig(mode=a.mode, quality=a.quality, prior=a.prior),
                                       recon=recon_writer)
        t1, c1 = time.perf_counter(), time.process_time()
        encode_stages = stage_table(timer)
        decoded_report = decode_stream(mkv, lambda h: VideoWriter(dec, width=h.width, height=h.height, fps=h.fps),
                                       DecodeConfig())
        t2, c2 = time.perf_counter(), time.process_time()
    except GVCError as e:
        print(f"main_job: error: {e}", file=sys.stderr)
        return 1
    source, decoded, reconstructed = read_frames(src), read_frames(dec), read_frames(recon)
    identical = len(decoded) == len(reconstructed) and all(np.array_equal(x, y) for x, y in zip(decoded, reconstructed))
    s = report.as_dict(os.path.getsize(mkv))
    result = {
        "clip": os.path.basename(a.clip), "mode": a.mode, "quality": a.quality, "prior": s["prior"],
        "frames": len(decoded), "width": s["width"], "height": s["height"], "fps": s["fps"],
        "bytes": s["bytes"], "bpp": 8 * s["bytes"] / (s["width"] * s["height"] * len(decoded)),
        "kbps": 8 * s["bytes"] / (len(decoded) / s["fps"]) / 1000,
        "psnr_decoded": float(np.mean([psnr(x, y) for x, y in zip(source, decoded)])),
        "decoder_matches_encoder": identical and not decoded_report.events,
        "encode_seconds": round(t1 - t0, 1), "decode_seconds": round(t2 - t1, 1),
        # CPU seconds of this process (all its threads): on a shared machine steadier than the wall times
        "encode_cpu_seconds": round(c1 - c0, 1), "decode_cpu_seconds": round(c2 - c1, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if timer is not None:
        result["stages"] = {"encode": encode_stages, "decode": stage_table(timer)}
    print(json.dumps(result, indent=2))
    return 0 if result["decoder_matches_encoder"] else 2


def stage_table(timer) -> dict | None:
    """{stage: [wall s, CPU s, calls]} since the last call (None without --stages)."""
    if timer is None:
        return None
    table = {k: [round(v, 2), round(timer.cpu_seconds[k], 2), timer.calls[k]] for k, v in sorted(timer.seconds.items())}
    timer.reset()
    return table


if __name__ == "__main__":
    sys.exit(main())
