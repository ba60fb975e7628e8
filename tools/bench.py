"""Speed and memory of the codec per mode, prior and device, measured side by side in one run.

    python -m tools.bench [--clips PATH,...] [--frames 17] [--size 176x144] [--modes t2v,i2v,flf2v]
                          [--prior analytic,default] [--devices cpu,cuda] [--qualities 8] [--quick]
                          [--no-codebook] [--out FILE.json] [--plots DIR] [--quiet]

For each (clip, prior, mode, quality, device): encode and decode frames/s, peak memory, bytes, bpp, PSNR,
and whether the decoder reproduced the encoder's frames bit for bit. Peak memory is the process' peak
resident set sampled during that run on the CPU (``/proc/self/statm``) and torch's peak allocated memory
on CUDA. With two devices it also decodes the CUDA-encoded stream on the CPU and reports the PSNR between
the two decodes (cross-device drift). Codebook search throughput per device comes from
tools.bench_codebook (K and M of the largest quality, one latent frame of the benchmark's size; its
``--quick`` sizes with ``--quick``).

Devices default to the CPU plus CUDA when present. The JSON goes to stdout and to ``--out`` (default
``benchmarks/bench_<device>.json``, ``<device>`` = ``cuda`` when CUDA ran, else ``cpu``; ``_quick`` is
appended for ``--quick``), which tools.report turns into docs/results.md. ``--plots DIR`` also draws
encode/decode frames/s per mode, prior and device as DIR/<json name>_speed.png (``--plot FILE`` for one
file). ``--priors`` is the same option as ``--prior``, ``--clip`` as ``--clips``, ``--quality`` as
``--qualities``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tools import CLIPS_DIR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = CLIPS_DIR / "carphone_176x144.mp4"


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


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class PeakRSS:
    """The process' peak resident set (MB) while the ``with`` block runs, sampled every ``interval`` s by a
    thread; falls back to the (process-lifetime) ru_maxrss where /proc is missing."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak = interval, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_mb() or 0.0)

    def __enter__(self) -> "PeakRSS":
        self.peak = _rss_mb() or 0.0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        now = _rss_mb()
        self.peak = max(self.peak, now) if now is not None else peak_memory_mb("cpu")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_codec(frames, fps, mode, prior_name, device, quality, steps):
    from gvc.metrics import psnr
    from gvc.codec import GopCodec
    from gvc.config import CodecConfig, default
    from gvc.gop import plan_gops
    from gvc.priors import load_prior

    prior = load_prior(prior_name, device=device)
    h, w = frames[0].shape[:2]
    gop = prior.geometry.valid_gop_length(min(len(frames), default("gop_length")))
    config = CodecConfig(mode=mode, quality=quality, gop_length=max(gop, 2), steps=steps,
                         ode_tail=min(default("ode_tail"), steps - 1))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        enc = GopCodec.for_encoding(prior, config, width=w, height=h, fps=fps, frame_count=len(frames), device=device)
        plans = plan_gops(len(frames), enc.header.gop_length, enc.header.gop_overlap, prior.geometry)
        t0 = time.perf_counter()
        results = [enc.encode(p.index, frames[p.first_frame:p.first_frame + p.real_frames]) for p in plans]
        _sync(device)
        t_enc = time.perf_counter() - t0
        dec = GopCodec(prior, enc.header, device=device)
        t0 = time.perf_counter()
        decoded = [dec.decode(r.unit) for r in results]
        _sync(device)
        t_dec = time.perf_counter() - t0
    recon = [f for r in results for f in r.frames]
    out = [f for d in decoded for f in d]
    nbytes = len(enc.header.to_bytes()) + sum(len(r.unit.to_bytes()) for r in results)
    return {
        "device": device, "mode": mode, "prior": prior_name, "prior_id": prior.name, "quality": quality,
        "frames": len(out), "width": w, "height": h, "bytes": nbytes, "bpp": 8 * nbytes / (w * h * len(out)),
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, out)])),
        "encode_seconds": t_enc, "decode_seconds": t_dec,
        "encode_fps": len(out) / t_enc, "decode_fps": len(out) / t_dec,
        "peak_memory_mb": peak_memory_mb(device) if device.startswith("cuda") else rss.peak,
        "decoder_matches_encoder": all(np.array_equal(a, b) for a, b in zip(out, recon)),
    }, (enc.header, [r.unit for r in results], out)


def plot_speed(result: dict, path: str) -> None:
    """Bar chart of encode and decode frames/s per mode, one bar per (prior, device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    modes = list(dict.fromkeys(r["mode"] for r in runs))
    runs = [r for r in runs if r.get("clip", result["clip"]) == runs[0].get("clip", result["clip"])]
    series = list(dict.fromkeys((r["prior"], r["device"], r["quality"]) for r in runs))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    width = 0.8 / max(len(series), 1)
    for ax, key, title in ((axes[0], "encode_fps", "encode"), (axes[1], "decode_fps", "decode")):
        for i, (prior, device, quality) in enumerate(series):
            vals = [next((r[key] for r in runs if (r["mode"], r["prior"], r["device"], r["quality"])
                          == (m, prior, device, quality)), 0.0) for m in modes]
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(modes))]
            bars = ax.bar(xs, vals, width, label=f"{prior} / {device} / M={quality}")
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
        ax.set_xticks(range(len(modes)), modes)
        ax.set_ylabel("frames/s")
        ax.set_title(f"{title} ({result['size']}, {result['frames']} frames, M={result['qualities']})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)




def codebook_throughput(device: str, size: tuple[int, int], quality: int, quick: bool) -> dict:
    """tools.bench_codebook on ``device``: K and M of ``quality``, one latent frame (16 channels at 1/8)."""
    from gvc.config import codebook_size
    from tools import bench_codebook

    w, h = size
    dim = 16 * max(1, h // 8) * max(1, w // 8)
    return bench_codebook.measure(bench_codebook.Settings(device=device, K=codebook_size(quality), M=quality, dim=dim,
                                                          quick=quick))


def cross_device_check(prior: str, mode: str, quality: int, cuda_stream) -> dict:
    """Decode the CUDA-encoded stream on the CPU and compare it with the CUDA decode."""
    from gvc.metrics import psnr
    from gvc.codec import GopCodec
    from gvc.priors import load_prior

    header, units, cuda_out = cuda_stream
    dec = GopCodec(load_prior(prior, device="cpu"), header, device="cpu")
    cpu_out = [f for u in units for f in dec.decode(u)]
    return {"mode": mode, "prior": prior, "quality": quality,
            "cuda_stream_decoded_on_cpu_psnr_vs_cuda_decode":
                float(np.mean([psnr(x, y) for x, y in zip(cpu_out, cuda_out)])),
            "identical": all(np.array_equal(x, y) for x, y in zip(cpu_out, cuda_out))}


def default_out(devices: list[str], quick: bool) -> Path:
    tag = "cuda" if any(d.startswith("cuda") for d in devices) else "cpu"
    return ROOT / "benchmarks" / f"bench_{tag}{'_quick' if quick else ''}.json"


def parse_args(argv=None) -> argparse.Namespace:
    from gvc.config import MODES, default

    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--clips", "--clip", dest="clips", default=str(DEFAULT_CLIP), help="comma list of clip paths")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", default="176x144", help="WxH the frames are resized to")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--priors", "--prior", dest="priors", default="default",
                   help="comma list of priors: default, analytic or a weights folder (default: default)")
    p.add_argument("--devices", "--device", dest="devices", default=None,
                   help="comma list (default: cpu, plus cuda when present)")
    p.add_argument("--qualities", "--quality", dest="qualities", default=str(default("quality")), help="comma list of --quality values")
    p.add_argument("--steps", type=int, default=default("steps"))
    p.add_argument("--quick", action="store_true", help="9 frames at 64x48 and 6 steps: a smoke test")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="do not run one untimed encode+decode per prior and device first")
    p.add_argument("--no-codebook", dest="codebook", action="store_false", help="skip the codebook search benchmark")
    p.add_argument("--out", help="JSON file (default benchmarks/bench_<device>[_quick].json)")
    p.add_argument("--plots", metavar="DIR", help="write DIR/<json name>_speed.png")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of encode/decode frames/s per mode, prior and device")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-run lines")
    a = p.parse_args(argv)
    if a.quick:
        a.frames, a.size, a.steps = 9, "64x48", 6
    a.devices = a.devices.split(",") if a.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    a.priors = [x for x in a.priors.split(",") if x]
    a.modes = [x for x in a.modes.split(",") if x]
    a.qualities = [int(x) for x in a.qualities.split(",") if x]
    a.clips = [x for x in a.clips.split(",") if x]
    a.out = Path(a.out) if a.out else default_out(a.devices, a.quick)
    return a


def run_bench(a: argparse.Namespace, argv) -> dict:
    from tqdm import tqdm

    from tools.report import software_versions

    w, h = (int(v) for v in a.size.split("x"))
    for d in a.devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {d} requested but CUDA is not available")
    runs, cross = [], []
    total = len(a.clips) * len(a.priors) * len(a.modes) * len(a.qualities) * len(a.devices)
    with tqdm(total=total, desc="bench", unit="run", file=sys.stderr, disable=a.quiet or not sys.stderr.isatty()) as bar:
        for clip in a.clips:
            frames, fps = load_frames(clip, a.frames, (w, h))
            for prior in a.priors:
                if a.warmup:  # untimed: first-call costs (weights, kernels, tables) stay out of the figures
                    for device in a.devices:
                        run_codec(frames[:5], fps, a.modes[0], prior, device, a.qualities[0], a.steps)
                for mode in a.modes:
                    for quality in a.qualities:
                        streams = {}
                        for device in a.devices:
                            bar.set_postfix_str(f"{prior} {mode} M={quality} {device}")
                            r, streams[device] = run_codec(frames, fps, mode, prior, device, quality, a.steps)
                            runs.append({"clip": Path(clip).name, **r})
                            bar.update(1)
                            if not a.quiet:
                                bar.write(json.dumps(runs[-1]), file=sys.stderr)
                        if "cpu" in streams and "cuda" in streams:
                            cross.append(cross_device_check(prior, mode, quality, streams["cuda"]))
    books = [codebook_throughput(d, (w, h), max(a.qualities), a.quick) for d in a.devices] if a.codebook else []
    return {
        "tool": "tools.bench", "command": "python -m tools.bench " + " ".join(
            shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv)),
        "software": software_versions(),
        "clip": ", ".join(Path(c).name for c in a.clips), "frames": a.frames, "size": a.size,
        "qualities": a.qualities, "steps": a.steps, "devices": a.devices,
        "torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "runs": runs, "cross_device": cross, "codebook": books,
    }


def main(argv=None) -> int:
    from gvc.errors import GVCError

    args = sys.argv[1:] if argv is None else list(argv)
    if any(x == "--wan-config" or x.startswith("--wan-config=") for x in args):  # Wan-sized prior: tools.bench_wan
        from tools import bench_wan

        return bench_wan.main(args)
    a = parse_args(argv)
    for clip in a.clips:
        if not os.path.isfile(clip):
            print(f"bench: error: clip not found: {clip}", file=sys.stderr)
            return 1
    try:
        result = run_bench(a, argv)
    except (GVCError, RuntimeError) as e:
        print(f"bench: error: {e}".splitlines()[0], file=sys.stderr)
        return 1
    plot = Path(a.plot) if a.plot else (Path(a.plots) / f"{a.out.stem}_speed.png" if a.plots else None)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_speed(result, str(plot))
        result["plot"] = str(plot.resolve().relative_to(ROOT)) if plot.resolve().is_relative_to(ROOT) else str(plot)
    text = json.dumps(result, indent=2)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    if not a.quiet:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
