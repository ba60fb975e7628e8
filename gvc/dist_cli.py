"""`gvc-dist`: segment-parallel `encode` and `decode` on torch.distributed (gvc.distributed).

    torchrun --nproc-per-node 8 -m gvc.dist_cli encode film.mp4 -o film.mkv --device cuda --mode t2v
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m gvc.dist_cli encode film.mp4 -o film.mkv --device cuda          # several hosts
    gvc-dist encode film.mp4 -o film.mkv --nproc 4                          # one host, no torchrun
    gvc-dist decode film.mkv -o film.y4m --nproc 4

Under torchrun each process is one rank (one GPU with --device cuda); without it, ``--nproc N``
starts N local ranks itself with the same init. The encode and decode options are gvc's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

from .cli import StreamDamagedError, add_decode_options, add_encode_options, atomic_output, config_from_args
from .errors import GVCError, ParameterError
from .segments import require_seekable


def add_job_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed")
    g.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="without torchrun: start N local ranks (CPU processes, or one per GPU with --device cuda)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per rank (default: OMP_NUM_THREADS, else the cores / local ranks); speed only: "
                        "the output does not depend on it")
    g.add_argument("--segment-gops", type=int, default=1, metavar="N",
                   help="GOPs per segment, the unit of work, spill and resume (default 1; I2V: cut only at keyframes)")
    g.add_argument("--heartbeat-timeout", type=float, default=60.0, metavar="S",
                   help="a rank silent this long is taken for dead and the run fails (default 60)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gvc-dist", description="Segment-parallel GVC encode/decode on torch.distributed.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", help="encode a seekable video file over all ranks into one .mkv or .gvc")
    e.add_argument("input", help="input video file (seekable: every rank reads its own frames)")
    e.add_argument("-o", "--output", required=True, help="output .mkv or .gvc file")
    add_encode_options(e)
    add_job_options(e)
    e.add_argument("--spill", metavar="DIR", help="per-segment spill directory (default: OUTPUT.segments)")
    e.add_argument("--resume", action="store_true", help="skip the segments a failed run left in the spill directory")
    d = sub.add_parser("decode", help="decode a GVC stream over all ranks, frames written in order")
    d.add_argument("input", help="a .mkv or .gvc GVC stream file")
    d.add_argument("-o", "--output", required=True, help="output .y4m, .mp4/.mkv (lossless x264) or '-' (y4m on stdout)")
    add_decode_options(d)
    add_job_options(d)
    return p


def check_args(a: argparse.Namespace) -> None:
    """Refusals that need no rank: said once, before any process starts."""
    require_seekable(a.input, "input" if a.command == "encode" else "stream")
    if a.nproc < 1:
        raise ParameterError("--nproc must be at least 1")
    if a.command == "encode":
        if a.output == "-":
            raise ParameterError("distributed encode writes a file: give -o OUTPUT.mkv or .gvc, not '-'")
        if a.target_kbps:
            raise ParameterError("--target-kbps spends its budget GOP after GOP: not available in distributed mode")
        if a.recon:
            raise ParameterError("--recon is not available in distributed mode: decode the output instead")
        if a.frames is not None and a.frames < 1:
            raise ParameterError("--frames must be at least 1")


def run_rank(a: argparse.Namespace) -> int:
    """This process's part of the job; rank 0 reports. Returns the exit status."""
    import torch

    from . import distributed

    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // local)
    torch.set_num_threads(threads)
    job = distributed.Job(a.device, heartbeat_timeout_s=a.heartbeat_timeout)
    log = (lambda s: print(f"gvc-dist: {s}", file=sys.stderr)) if job.rank == 0 and not a.quiet else (lambda s: None)
    code = 0
    try:
        if job.rank == 0:
            note_dropped_tracks(a, log)
        if a.command == "encode":
            run_encode(a, job, log)
        else:
            run_decode(a, job, log)
    except StreamDamagedError as e:
        print(f"gvc-dist: error: {e}", file=sys.stderr)
        code = 2
    except GVCError as e:
        if job.rank == 0:  # the workers' failures reach rank 0, which names them
            print(f"gvc-dist: error: {e}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if code or job.rank == 0:
        os._exit(code)  # rank 0's own share runs in a thread that may still be inside the model
    job.close()
    return code


def note_dropped_tracks(a: argparse.Namespace, log) -> None:
    """gvc-dist writes video only: say which audio/subtitle tracks it leaves out (gvc encode/decode keep them)."""
    if a.no_audio:
        return
    if a.command == "encode":
        from container.matroska import COPYABLE_CODECS
        from ffmpeg_bridge.tracks import TrackCopier

        with TrackCopier(a.input, COPYABLE_CODECS) as copier:
            count = len(copier.tracks) + len(copier.skipped)
    else:
        from container.io import StreamReader

        with StreamReader(a.input) as reader:
            count = len(reader.info.tracks)
    if count:
        log(f"note: {count} audio/subtitle track(s) of {a.input} not written: gvc-dist writes video only "
            f"(gvc {a.command} keeps them; --no-audio silences this note)")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def run_encode(a: argparse.Namespace, job, log) -> None:
    from ffmpeg_bridge.frame_range import FrameRange

    from . import distributed

    config = config_from_args(a)
    spill = Path(a.spill or f"{a.output}.segments")
    kw = dict(spill_dir=spill, resume=a.resume, segment_gops=a.segment_gops, fmt=a.format, tag_level=a.tags, log=log)
    source = lambda: FrameRange(a.input, max_frames=a.frames)  # noqa: E731 - each rank opens its own
    if job.rank:
        distributed.encode(job, source, None, config, **kw)
        return
    timing: dict = {}
    with atomic_output(a.output) as out:
        report = distributed.encode(job, source, out, config, timing=timing, **kw)
    stats = report.as_dict(os.path.getsize(a.output))
    stats.update(ranks=job.world, threads_per_rank=torch_threads(), timing=timing)
    if a.stats_json:
        with open(a.stats_json, "w") as f:
            json.dump(stats, f, indent=2)
    log(f"{a.output}: {stats['bytes']} bytes, {stats['frames']} frames, {len(stats['gops'])} GOPs on {job.world} "
        f"rank(s), {stats['bpp']:.5f} bpp, PSNR {stats['psnr']:.2f} dB, {stats['encode_seconds']:.1f} s")


def run_decode(a: argparse.Namespace, job, log) -> None:
    from ffmpeg_bridge.video_io import VideoWriter

    from . import distributed
    from .config import DecodeConfig

    config = DecodeConfig(prior=a.prior, device=job.device, verify=not a.no_verify)
    if job.rank:
        distributed.decode(job, a.input, None, config, segment_gops=a.segment_gops)
        return
    with atomic_output(a.output) as out:
        report = distributed.decode(job, a.input, lambda h: VideoWriter(out, width=h.width, height=h.height, fps=h.fps),
                                    config, segment_gops=a.segment_gops, log=log)
    for event in report.events:
        print(f"gvc-dist: warning: {event}", file=sys.stderr)
    log(f"decoded {report.frames} frames in {report.gops} GOPs on {job.world} rank(s)")
    if report.damage:
        raise StreamDamagedError(f"damaged stream: {len(report.damage)} problem(s), concealed in the output "
                                 f"({report.damage[0]})")


# -- local launch (no torchrun) ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(argv: list[str], nproc: int) -> int:
    """Start `nproc` ranks on this host as torchrun does (processes with RANK, WORLD_SIZE, MASTER_ADDR...
    in their environment) and wait for all. A rank that dies is rank 0's to report (within the
    heartbeat timeout); this only adds a line when rank 0 itself died."""
    import subprocess

    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc)}
    cmd = [sys.executable, "-m", "gvc.dist_cli", *argv]
    procs = [subprocess.Popen(cmd, env={**os.environ, **base, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(nproc)]
    codes = [p.wait() for p in procs]
    if codes[0] < 0:
        print(f"gvc-dist: error: rank 0 was killed (signal {-codes[0]}); finished segments stay in the spill "
              f"directory for --resume", file=sys.stderr)
        return 1
    return codes[0] or max(codes)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    try:
        check_args(a)
        if "RANK" in os.environ:  # started by torchrun (or by launch_local)
            return run_rank(a)
        return launch_local(argv, a.nproc)
    except GVCError as e:
        if os.environ.get("RANK", "0") == "0":  # every rank refuses the same arguments: say it once
            print(f"gvc-dist: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gvc-dist: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
