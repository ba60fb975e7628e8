"""Scaling of segment-parallel encode/decode (gvc-dist) with the number of ranks, and a paper estimate.

    python -m tools.bench_dist [--clip PATH] [--frames 65] [--mode t2v] [--prior analytic] [--nprocs 1,2,4]
                               [--device cpu|cuda] [--threads 1] [--refresh-cost 4,8] [--out FILE.json]
                               [--plot FILE.png] [--quick]

For each rank count N: wall time of ``gvc-dist encode`` and ``gvc-dist decode`` started with
``--nproc N`` (process start, prior load and collect included), rank 0's own timing split (setup,
coding, collect, write) and whether the stream is byte-identical to the one-rank stream. On CPU every
rank uses ``--threads`` torch threads (the bytes do not depend on it), so N ranks want N·threads cores:
past the machine's cores the line goes flat. ``--device cuda`` runs one rank per GPU on NCCL
(``--nprocs 1,<GPUs>``), for the multi-GPU run of issue 18; pass ``--prior PATH`` for a Wan folder.

The paper estimate scales a measured per-GOP time (``--gop-seconds``; default: issue 15's ~28 s per
33-frame 720p GOP on one H200 with a Wan-1.3B-sized model) to a 2-hour 720p film on 8 and 64 GPUs,
adding the collect cost per GOP measured here and the input skip of contiguous blocks.

``--refresh-cost N,...`` also encodes the clip in I2V with ``--refresh N`` in one process and reports
the bytes and PSNR against ``--refresh 0`` (the rate cost of cutting I2V chains).

JSON to stdout and ``--out`` (default benchmarks/dist_<device>[_quick].json), plot to ``--plot``
(default docs/img/dist_<device>[_quick].png).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from tools import CLIPS_DIR, emit_json

ROOT = Path(__file__).resolve().parents[1]
CLIPS = CLIPS_DIR
DEFAULT_CLIP = CLIPS / "carphone_176x144.mp4"
FILM_SECONDS, FILM_FPS, FILM_GOP = 2 * 3600, 24, 33
ISSUE15_GOP_SECONDS = 28.0  # one 33-frame 720p GOP, Wan-1.3B-sized model, one H200 (issue 15)


def write_y4m(clip: str, frames: int, path: Path) -> None:
    """The first `frames` frames of `clip` as a y4m file: a seekable input every rank opens at its block."""
    from ffmpeg_bridge.video_io import VideoReader, VideoWriter

    with VideoReader(clip, max_frames=frames) as r:
        i = r.info
        w = VideoWriter(str(path), width=i.width, height=i.height, fps=i.fps)
        for f in r:
            w.write(f)
        w.close()


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"bench_dist: {' '.join(cmd[:4])} ... failed: {p.stderr.strip()[-400:]}")
    return time.perf_counter() - t


def codec_args(a) -> list[str]:
    return ["--mode", a.mode, "--prior", a.prior, "--quality", str(a.quality), "--gop-length", str(a.gop_length),
            "--steps", str(a.steps), "--ode-tail", str(a.ode_tail), "--device", a.device]


def scaling(a, src: Path, work: Path, env: dict) -> list[dict]:
    dist = [sys.executable, "-m", "gvc.dist_cli"]
    rows, first = [], None
    for n in a.nprocs:
        out, stats = work / f"out_{n}.mkv", work / f"stats_{n}.json"
        enc = timed(dist + ["encode", str(src), "-o", str(out), *codec_args(a), "-q", "--nproc", str(n),
                            "--threads", str(a.threads), "--stats-json", str(stats)], env)
        dec = timed(dist + ["decode", str(out), "-o", str(work / f"dec_{n}.y4m"), "--device", a.device, "-q",
                            "--nproc", str(n), "--threads", str(a.threads)], env)
        s = json.loads(stats.read_text())
        first = first or out.read_bytes()
        gops = len(s["gops"])
        row = {"ranks": n, "encode_wall_s": round(enc, 3), "decode_wall_s": round(dec, 3), "gops": gops,
               "frames": s["frames"], "bytes": s["bytes"], "identical_to_1_rank": out.read_bytes() == first,
               **{k: round(v, 4) if isinstance(v, float) else v for k, v in s["timing"].items()}}
        row["coded_s_per_gop"] = round(row["coded_s"] / gops, 4)
        row["collect_s_per_gop"] = round((row["collect_s"] + row["write_s"]) / gops, 5)
        rows.append(row)
        print(f"bench_dist: {n} rank(s): encode {enc:.1f} s wall ({row['coded_s']:.1f} s coding), decode {dec:.1f} s, "
              f"identical {row['identical_to_1_rank']}", file=sys.stderr)
    base = rows[0]
    for r in rows:
        r["encode_speedup"] = round(base["encode_wall_s"] / r["encode_wall_s"], 3)
        r["coding_speedup"] = round(base["coded_s"] / r["coded_s"], 3)
        r["decode_speedup"] = round(base["decode_wall_s"] / r["decode_wall_s"], 3)
    return rows


def read_fps(clip: str, frames: int) -> float:
    """Frames/s of decoding `clip` (PyAV, no RGB conversion): the rate at which a rank skips to its block
    in a non-y4m input (gvc.distributed.FrameSource decodes from the start; y4m is opened at the block)."""
    import av

    n = 0
    t = time.perf_counter()
    with av.open(clip) as c:
        c.streams.video[0].thread_type = "AUTO"
        for _ in c.decode(video=0):
            n += 1
            if n == frames:
                break
    return n / (time.perf_counter() - t)


def paper_estimate(gop_seconds: float, collect_s_per_gop: float, startup_s: float, skip_fps: float | None) -> dict:
    """A 2-hour 720p film (24 fps, 33-frame GOPs sharing one boundary frame) on 1, 8 and 64 GPUs."""
    gops = math.ceil((FILM_SECONDS * FILM_FPS - 1) / (FILM_GOP - 1))
    out = {"film": f"{FILM_SECONDS // 3600} h at {FILM_FPS} fps, 720p, {FILM_GOP}-frame GOPs", "gops": gops,
           "gop_seconds": gop_seconds, "collect_s_per_gop": collect_s_per_gop, "startup_s": startup_s, "gpus": {}}
    for n in (1, 8, 64):
        coding = math.ceil(gops / n) * gop_seconds
        collect = gops * collect_s_per_gop  # rank 0, overlapped with coding but for the last block and the write
        # the last rank of an mp4 input decodes (n-1)/n of the film before its block (y4m: a seek)
        skip = (n - 1) / n * FILM_SECONDS * FILM_FPS / skip_fps if skip_fps and n > 1 else 0.0
        total = startup_s + coding + collect
        out["gpus"][str(n)] = {"coding_h": round(coding / 3600, 3), "collect_s": round(collect, 1),
                               "total_h": round(total / 3600, 3), "speedup": None,
                               "plus_mp4_skip_h": round(skip / 3600, 3)}
    one = out["gpus"]["1"]["total_h"]
    for v in out["gpus"].values():
        v["speedup"] = round(one / v["total_h"], 2)
    return out


def refresh_cost(a, src: Path, work: Path, env: dict, periods: list[int]) -> list[dict]:
    rows = []
    for n in [0, *periods]:
        stats = work / f"refresh_{n}.json"
        args = [*codec_args(a)]
        args[args.index("--mode") + 1] = "i2v"
        timed([sys.executable, "-m", "gvc.cli", "encode", str(src), "-o", str(work / f"refresh_{n}.mkv"), *args,
               "-q", "--refresh", str(n), "--stats-json", str(stats)], env)
        s = json.loads(stats.read_text())
        rows.append({"refresh": n, "bytes": s["bytes"], "bpp": s["bpp"], "psnr": s["psnr"],
                     "keyframes": sum(1 for g in s["gops"] if g.get("anchor_bytes"))})
    for r in rows:
        r["bytes_vs_no_refresh"] = round(r["bytes"] / rows[0]["bytes"] - 1, 4)
        r["psnr_vs_no_refresh_db"] = round(r["psnr"] - rows[0]["psnr"], 3)
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["scaling"]
    n = [r["ranks"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=90)
    for key, label in (("encode_wall_s", "encode (wall)"), ("coded_s", "encode (coding only)"),
                       ("decode_wall_s", "decode (wall)")):
        ax.plot(n, [r[key] for r in rows], "o-", label=label)
    ax.plot(n, [rows[0]["coded_s"] / k for k in n], "k:", label="ideal coding")
    ax.axvline(result["cpu_cores"], color="grey", alpha=0.4)
    ax.set_xticks(n)
    ax.set_xlabel(f"ranks ({result['device']}, {result['threads_per_rank']} thread(s) each; line: cores)")
    ax.set_ylabel("seconds")
    ax.set_title(f"gvc-dist, {result['mode']} {result['prior']}, {rows[0]['frames']} frames / {rows[0]['gops']} GOPs",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.bench_dist", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    p.add_argument("--frames", type=int, default=65)
    p.add_argument("--mode", default="t2v", choices=("t2v", "i2v", "flf2v"))
    p.add_argument("--prior", default="analytic")
    p.add_argument("--quality", type=int, default=8)
    p.add_argument("--gop-length", type=int, default=9)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--ode-tail", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nprocs", default="1,2,4", help="comma list of rank counts")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank (default 1)")
    p.add_argument("--gop-seconds", type=float, default=ISSUE15_GOP_SECONDS,
                   help="per-GOP coding time of the paper estimate (default: issue 15's H200 figure)")
    p.add_argument("--skip-clip", default=str(CLIPS / "bigbuckbunny_1280x720.mp4"),
                   help="a 720p mp4 whose read rate prices the skip to a block (omit with '')")
    p.add_argument("--refresh-cost", default="", metavar="N,...", help="also measure I2V --refresh N against 0")
    p.add_argument("--quick", action="store_true", help="17 frames, 4 steps, GOP 5, M=2: a smoke test")
    p.add_argument("--out")
    p.add_argument("--plot")
    a = p.parse_args(argv)
    a.nprocs = [int(x) for x in a.nprocs.split(",")]
    if a.quick:
        a.frames, a.steps, a.ode_tail, a.gop_length, a.quality = 17, 4, 1, 5, 2
    tag = f"{a.device.split(':')[0]}{'_quick' if a.quick else ''}"
    a.out = Path(a.out or ROOT / "benchmarks" / f"dist_{tag}.json")
    a.plot = Path(a.plot or ROOT / "docs" / "img" / f"dist_{tag}.png")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="bench_dist_") as tmp:
        work = Path(tmp)
        src = work / "input.y4m"
        write_y4m(a.clip, a.frames, src)
        rows = scaling(a, src, work, env)
        import torch

        result = {
            "tool": "tools.bench_dist", "argv": sys.argv[1:] if argv is None else argv, "clip": Path(a.clip).name,
            "mode": a.mode, "prior": a.prior, "quality": a.quality, "steps": a.steps, "gop_length": a.gop_length,
            "device": a.device, "threads_per_rank": a.threads, "cpu_cores": os.cpu_count(),
            "cuda_devices": torch.cuda.device_count(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_1min": os.getloadavg()[0], "scaling": rows,
        }
        skip_fps = read_fps(a.skip_clip, 240) if a.skip_clip and Path(a.skip_clip).is_file() else None
        collect = max(r["collect_s_per_gop"] for r in rows)
        startup = rows[-1]["encode_wall_s"] - rows[-1]["coded_s"] - rows[-1]["collect_s"] - rows[-1]["write_s"]
        result["skip_decode_fps_720p"] = skip_fps and round(skip_fps, 1)
        result["paper_estimate"] = paper_estimate(a.gop_seconds, collect, round(startup, 1), skip_fps)
        if a.refresh_cost:
            result["refresh_cost"] = refresh_cost(a, src, work, env, [int(x) for x in a.refresh_cost.split(",")])
    emit_json(result, a.out)
    a.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(result, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
