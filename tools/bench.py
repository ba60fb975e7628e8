"""Speed and memory of the codec per mode, prior and device, measured side by side in one run.

    python -m tools.bench [--clip PATH] [--frames 17] [--size 176x144] [--modes t2v,i2v,flf2v]
                          [--prior analytic] [--devices cpu,cuda] [--quality 8] [--quick] [--out FILE.json]

For each (device, mode): encode and decode frames/s, peak memory, bytes, PSNR, and whether the decoder
reproduced the encoder's frames bit for bit. With two devices it also decodes the CUDA-encoded stream
on the CPU and reports the PSNR between the two decodes (cross-device drift). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "clips" / "carphone_176x144.mp4"


def load_frames(clip: str, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], Fraction]:
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(clip, max_frames=n) as r:
        frames, fps = list(r), r.info.fps
    w, h = size
    fh, fw = frames[0].shape[:2]
    if (w, h) != (fw, fh):
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        frames = list(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return frames, fps


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (monotone)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_codec(frames, fps, mode, prior_name, device, quality, steps):
    from ffmpeg_bridge.video_io import psnr
    from gvc.codec import Decoder, Encoder
    from gvc.config import CodecConfig
    from gvc.gop import plan_gops
    from gvc.priors import load_prior

    prior = load_prior(prior_name, device=device)
    h, w = frames[0].shape[:2]
    gop = prior.geometry.valid_gop_length(min(len(frames), 33))
    config = CodecConfig(mode=mode, quality=quality, gop_length=max(gop, 2), steps=steps, ode_tail=min(3, steps - 1))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    enc = Encoder(prior, config, width=w, height=h, fps=fps, frame_count=len(frames), device=device)
    plans = plan_gops(len(frames), enc.header.gop_length, enc.header.gop_overlap, prior.geometry)
    t0 = time.perf_counter()
    results = [enc.encode_gop(p.index, frames[p.first_frame:p.first_frame + p.real_frames]) for p in plans]
    _sync(device)
    t_enc = time.perf_counter() - t0
    mem_enc = peak_memory_mb(device)
    dec = Decoder(prior, enc.header, device=device)
    t0 = time.perf_counter()
    decoded = [dec.decode_gop(r.unit) for r in results]
    _sync(device)
    t_dec = time.perf_counter() - t0
    recon = [f for r in results for f in r.frames]
    out = [f for d in decoded for f in d]
    return {
        "device": device, "mode": mode, "prior": prior_name, "frames": len(out), "width": w, "height": h,
        "bytes": len(enc.header.to_bytes()) + sum(len(r.unit.to_bytes()) for r in results),
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, out)])),
        "encode_seconds": t_enc, "decode_seconds": t_dec,
        "encode_fps": len(out) / t_enc, "decode_fps": len(out) / t_dec,
        "peak_memory_mb": max(mem_enc, peak_memory_mb(device)),
        "decoder_matches_encoder": all(np.array_equal(a, b) for a, b in zip(out, recon)),
    }, (enc.header, [r.unit for r in results], out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", default="176x144", help="WxH the frames are resized to")
    p.add_argument("--modes", default="t2v,i2v,flf2v")
    p.add_argument("--prior", default="default")
    p.add_argument("--devices", default=None, help="comma list (default: cpu, plus cuda when present)")
    p.add_argument("--quality", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="9 frames at 64x48 and 6 steps: a smoke test")
    p.add_argument("--out", help="also write the JSON here")
    a = p.parse_args(argv)
    if a.quick:
        a.frames, a.size, a.steps = 9, "64x48", 6
    w, h = (int(v) for v in a.size.split("x"))
    devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    frames, fps = load_frames(a.clip, a.frames, (w, h))
    runs, cross = [], []
    for mode in a.modes.split(","):
        streams = {}
        for device in devices:
            r, streams[device] = run_codec(frames, fps, mode, a.prior, device, a.quality, a.steps)
            runs.append(r)
            print(json.dumps(r), file=sys.stderr)
        if "cpu" in streams and "cuda" in streams:
            from ffmpeg_bridge.video_io import psnr
            from gvc.codec import Decoder
            from gvc.priors import load_prior

            header, units, cuda_out = streams["cuda"]
            dec = Decoder(load_prior(a.prior, device="cpu"), header, device="cpu")
            cpu_out = [f for u in units for f in dec.decode_gop(u)]
            cross.append({"mode": mode, "cuda_stream_decoded_on_cpu_psnr_vs_cuda_decode":
                          float(np.mean([psnr(x, y) for x, y in zip(cpu_out, cuda_out)])),
                          "identical": all(np.array_equal(x, y) for x, y in zip(cpu_out, cuda_out))})
    result = {
        "clip": Path(a.clip).name, "frames": len(frames), "size": a.size, "quality": a.quality, "steps": a.steps,
        "torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "runs": runs, "cross_device": cross,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
