"""Speed and memory of the codec per mode, prior and device, measured side by side in one run.

    python -m tools.bench [--clip PATH] [--frames 17] [--size 176x144] [--modes t2v,i2v,flf2v]
                          [--priors analytic,default] [--devices cpu,cuda] [--quality 8] [--quick]
                          [--out FILE.json] [--plot FILE.png]

For each (device, mode): encode and decode frames/s, peak memory, bytes, PSNR, and whether the decoder
reproduced the encoder's frames bit for bit. With two devices it also decodes the CUDA-encoded stream
on the CPU and reports the PSNR between the two decodes (cross-device drift). Prints JSON; ``--plot``
also draws encode/decode frames/s per mode, prior and device as a bar chart (matplotlib, Agg).
``--priors`` takes a comma list (``--prior`` is the same option, kept for older command lines).
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


def load_frames(clip: str, n: int, size: tuple[int, int], *, crop: bool = False
                ) -> tuple[list[np.ndarray], Fraction]:
    """The first ``n`` frames of ``clip`` as RGB uint8 arrays resized to ``size`` = (W, H), and its frame rate.

    Resizing is bilinear with antialiasing. With ``crop`` the frames are first centre-cropped to the aspect
    ratio of ``size`` (so nothing is stretched); without it they are scaled to ``size`` directly."""
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(clip, max_frames=n) as r:
        frames, fps = list(r), r.info.fps
    return resize_frames(frames, size, crop=crop), fps


def resize_frames(frames: list[np.ndarray], size: tuple[int, int], *, crop: bool = False) -> list[np.ndarray]:
    w, h = size
    fh, fw = frames[0].shape[:2]
    if crop and fw * h != fh * w:
        if fw * h > fh * w:  # source wider than the target: crop columns
            cw = max(1, round(fh * w / h))
            x0 = (fw - cw) // 2
            frames = [f[:, x0:x0 + cw] for f in frames]
        else:
            ch = max(1, round(fw * h / w))
            y0 = (fh - ch) // 2
            frames = [f[y0:y0 + ch] for f in frames]
        fh, fw = frames[0].shape[:2]
    if (w, h) != (fw, fh):
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        frames = list(x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return [np.ascontiguousarray(f) for f in frames]


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


def plot_speed(result: dict, path: str) -> None:
    """Bar chart of encode and decode frames/s per mode, one bar per (prior, device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    modes = list(dict.fromkeys(r["mode"] for r in runs))
    series = list(dict.fromkeys((r["prior"], r["device"]) for r in runs))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    width = 0.8 / max(len(series), 1)
    for ax, key, title in ((axes[0], "encode_fps", "encode"), (axes[1], "decode_fps", "decode")):
        for i, (prior, device) in enumerate(series):
            vals = [next((r[key] for r in runs if (r["mode"], r["prior"], r["device"]) == (m, prior, device)), 0.0)
                    for m in modes]
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(modes))]
            bars = ax.bar(xs, vals, width, label=f"{prior} / {device}")
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(modes)), modes)
        ax.set_ylabel("frames/s")
        ax.set_title(f"{title} ({result['size']}, {result['frames']} frames, M={result['quality']})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", default="176x144", help="WxH the frames are resized to")
    p.add_argument("--modes", default="t2v,i2v,flf2v")
    p.add_argument("--priors", "--prior", dest="priors", default="default",
                   help="comma list of priors: default, analytic or a weights folder (default: default)")
    p.add_argument("--devices", default=None, help="comma list (default: cpu, plus cuda when present)")
    p.add_argument("--quality", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="9 frames at 64x48 and 6 steps: a smoke test")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of encode/decode frames/s per mode, prior and device")
    a = p.parse_args(argv)
    if a.quick:
        a.frames, a.size, a.steps = 9, "64x48", 6
    w, h = (int(v) for v in a.size.split("x"))
    devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    priors = [x for x in a.priors.split(",") if x]
    frames, fps = load_frames(a.clip, a.frames, (w, h))
    runs, cross = [], []
    for prior in priors:
        for mode in a.modes.split(","):
            streams = {}
            for device in devices:
                r, streams[device] = run_codec(frames, fps, mode, prior, device, a.quality, a.steps)
                runs.append(r)
                print(json.dumps(r), file=sys.stderr)
            if "cpu" in streams and "cuda" in streams:
                from ffmpeg_bridge.video_io import psnr
                from gvc.codec import Decoder
                from gvc.priors import load_prior

                header, units, cuda_out = streams["cuda"]
                dec = Decoder(load_prior(prior, device="cpu"), header, device="cpu")
                cpu_out = [f for u in units for f in dec.decode_gop(u)]
                cross.append({"mode": mode, "prior": prior, "cuda_stream_decoded_on_cpu_psnr_vs_cuda_decode":
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
    if a.plot:
        plot_speed(result, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
