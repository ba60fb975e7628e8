"""`gvc` command line: encode, decode, info.

    gvc encode in.mp4 -o out.mkv [--mode i2v] [--quality 8] [--prior default]
    gvc decode out.mkv -o out.y4m|out.mp4|-
    gvc info out.mkv [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import fields

from . import config as cfg
from ._version import __version__
from .config import LADDER, CodecConfig, DecodeConfig
from .dtypes import DTYPE_CHOICES
from .errors import GVCError


def option(group, flag: str, name: str, **kw) -> None:
    """An option whose default, range and help come from the CodecConfig field `name`."""
    default = cfg.default(name)
    kw.setdefault("type", type(default) if default is not None else str)
    group.add_argument(flag, dest=name, default=default, help=cfg.help_text(name), **kw)


def _anchor_codec_names():
    from container.bitstream import ANCHOR_CODECS

    return ANCHOR_CODECS


def add_encode_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("codec")
    option(g, "--mode", "mode", choices=cfg.MODES)
    option(g, "--quality", "quality", metavar="M")
    option(g, "--codebook-span", "codebook_span", type=int, metavar="N")
    option(g, "--target-kbps", "target_kbps", type=float, metavar="KBPS")
    option(g, "--prior", "prior")
    option(g, "--device", "device")
    option(g, "--dtype", "dtype", choices=DTYPE_CHOICES)
    option(g, "--vae-dtype", "vae_dtype", choices=DTYPE_CHOICES)
    option(g, "--codebook-family", "codebook_family", choices=cfg.CODEBOOK_FAMILIES)
    g.add_argument("--frames", type=int, metavar="N", help="encode at most N frames")
    option(g, "--gop-length", "gop_length")
    option(g, "--steps", "steps")
    option(g, "--ode-tail", "ode_tail")
    option(g, "--gamma", "gamma")
    option(g, "--shift", "shift")
    option(g, "--seed", "seed")
    option(g, "--refresh", "refresh", metavar="N")
    option(g, "--prompt", "prompt")
    option(g, "--residual-step", "residual_step", type=float)
    option(g, "--anchor-quality", "anchor_quality", type=float)
    p.set_defaults(residual_step=None, anchor_quality=None)  # unset: the ladder's (a string default would be parsed)
    option(g, "--anchor-codec", "anchor_codec", choices=list(_anchor_codec_names()), metavar="CODEC")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("mkv", "gvc"), help="container (default: from the output name; '-' is gvc)")
    o.add_argument("--tags", choices=("lean", "full"), default="lean",
                   help="Matroska tags: none (lean, default) or the encoder and its settings (full, about 250 bytes)")
    o.add_argument("--stats-json", metavar="FILE", help="write bytes, bits, bpp, kbps, PSNR and per-GOP figures as JSON")
    o.add_argument("--recon", metavar="FILE.y4m", help="write the encoder's reconstruction (the decoder reproduces it)")
    o.add_argument("--no-audio", action="store_true",
                   help="drop the input's audio and subtitle tracks (default: copied untouched into a .mkv output)")
    add_progress_options(o)


def add_progress_options(g) -> None:
    g.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def config_from_args(a: argparse.Namespace) -> CodecConfig:
    names = [f.name for f in fields(CodecConfig) if hasattr(a, f.name)]
    given = {n: getattr(a, n) for n in names}
    for lever in ("residual_step", "anchor_quality"):  # unset: follows --quality (gvc/ladder.py)
        if given.get(lever) is None:
            given[lever] = LADDER
    config = CodecConfig(**given)
    config.residual_step = config.residual_step or None  # 0 disables the residual
    return config.validate()


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, like KeyboardInterrupt, so no error handler swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


class OutputKept(GVCError):
    """An encode stopped early (signal, input ending mid-frame, write error) and kept its finished GOPs."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def is_file_output(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and str(path) not in ("-", os.devnull)


@contextmanager
def atomic_output(path: str, keep_partial=lambda: False):
    """Write to NAME.part.EXT and rename it to NAME on success, so a failed run never leaves a half file. When
    `keep_partial()` says so (finished GOPs worth keeping), an interrupted or failed run renames what it wrote
    too. Errors naming the temporary file name the user's path instead."""
    if not is_file_output(path):
        yield path
        return
    root, ext = os.path.splitext(path)
    tmp = f"{root}.part{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    except GVCError as e:
        if keep_partial() and os.path.exists(tmp):
            os.replace(tmp, path)
        if tmp in str(e):
            e.args = (str(e).replace(tmp, str(path)),)
        raise
    except BaseException:
        if keep_partial() and os.path.exists(tmp):
            os.replace(tmp, path)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_writable(path, what: str = "output") -> None:
    """Before any work: the folder of a file output exists and is writable, and the path is not a folder."""
    if not is_file_output(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise GVCError(f"cannot write {what} {path}: it is a directory")
    if not os.path.isdir(folder):
        raise GVCError(f"cannot write {what} {path}: directory {os.path.dirname(path) or '.'} does not exist")
    if not os.access(folder, os.W_OK):
        raise GVCError(f"cannot write {what} {path}: directory {os.path.dirname(path) or '.'} is not writable")


ENCODE_OUTPUTS = (".mkv", ".gvc")


def check_encode_output(path) -> None:
    if is_file_output(path) and os.path.splitext(str(path))[1].lower() not in ENCODE_OUTPUTS:
        raise GVCError(f"output {path} must end in .mkv or .gvc (or be '-' for an elementary stream on stdout)")
    check_writable(path)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Kept:
    """GOPs and frames finished so far (what an interrupted encode keeps)."""

    def __init__(self, progress):
        self.gops = self.frames = 0
        self.progress = progress

    def add(self, record) -> None:
        self.gops += 1
        self.frames += record.frames
        self.progress.gop(record)


def run_encode(a: argparse.Namespace, source) -> dict:
    from ffmpeg_bridge.video_io import VideoReader, VideoWriter

    from .errors import InputError
    from .pipeline import encode_stream
    from .progress import Progress

    config = config_from_args(a)  # every option checked before any file is opened or the model loaded
    if a.frames is not None and a.frames < 1:
        raise GVCError("--frames must be at least 1")
    check_encode_output(a.output)
    for path, what in ((a.recon, "--recon"), (a.stats_json, "--stats-json")):
        if path:
            check_writable(path, what)
    if a.recon and os.path.splitext(a.recon)[1].lower() != ".y4m":
        raise GVCError(f"--recon {a.recon} must end in .y4m")
    with VideoReader(source, max_frames=a.frames) as reader, copied_tracks(a, source) as tracks:
        n = reader.info.frames if a.frames is None else min(reader.info.frames or a.frames, a.frames)
        kept = _Kept(Progress(total=n, desc="encode", quiet=a.quiet, force=a.progress))
        try:
            with atomic_output(a.output, lambda: kept.gops > 0) as out, \
                    atomic_output(a.recon, lambda: kept.gops > 0) if a.recon else _nothing() as recon_path:
                recon = None
                if recon_path:
                    i = reader.info
                    recon = VideoWriter(recon_path, width=i.width, height=i.height, fps=i.fps)
                try:
                    report = encode_stream(reader, out, config, on_gop=kept.add, on_step=kept.progress.step,
                                           recon=recon, fmt=a.format, tags=a.tags, tracks=tracks)
                finally:
                    kept.progress.close()
                    if recon is not None:
                        recon.close()
        except (Interrupted, KeyboardInterrupt, InputError) as e:
            if kept.gops == 0:
                raise
            status = e.exit_status if isinstance(e, Interrupted) else 130 if isinstance(e, KeyboardInterrupt) else 1
            why = "interrupted" if status != 1 else str(e)
            where = f" in {a.output}" if is_file_output(a.output) else ""
            raise OutputKept(f"{why}: kept {plural(kept.gops, 'finished GOP')} ({plural(kept.frames, 'frame')}){where}",
                             status) from None
    size = os.path.getsize(a.output) if is_file_output(a.output) else None
    stats = report.as_dict(size)
    if a.stats_json:
        with atomic_output(a.stats_json) as tmp, open(tmp, "w") as f:
            json.dump(stats, f, indent=2)
    if not a.quiet:
        quality = (f"M per GOP {','.join(str(g['m']) for g in stats['gops'])} (mean {stats['m_mean']:.2f}, "
                   f"rate control)" if stats["rate_control"] else f"M {stats['quality']}")
        print(f"{a.output}: {stats['bytes']} bytes, {plural(stats['frames'], 'frame')} {stats['width']}x{stats['height']} "
              f"in {plural(len(stats['gops']), 'GOP')}, {quality}, {stats['bpp']:.5f} bpp, {stats['kbps']:.2f} kbps, "
              f"PSNR {stats['psnr']:.2f} dB, {stats['encode_seconds']:.1f} s"
              + (f" (+{stats['track_bytes']} bytes of copied audio/subtitles)" if stats["track_bytes"] else ""),
              file=sys.stderr)
    return stats


@contextmanager
def copied_tracks(a: argparse.Namespace, source):
    """The input's audio and subtitle tracks to copy into the output (a TrackCopier), or None: --no-audio,
    a pipe input (y4m: video only), or a .gvc output, which holds none (said once on stderr)."""
    if a.no_audio or source == "-" or hasattr(source, "read"):
        yield None
        return
    from container.io import output_format
    from container.matroska import COPYABLE_CODECS
    from ffmpeg_bridge.tracks import TrackCopier

    with TrackCopier(source, COPYABLE_CODECS) as copier:
        for track in copier.skipped:
            note(a, f"{track} not copied: Matroska cannot hold its packets as they are")
        if copier.tracks and output_format(a.output, a.format) != "mkv":
            note(a, f"{len(copier.tracks)} audio/subtitle track(s) not copied: a .gvc stream holds video only "
                    "(write .mkv to keep them)")
            yield None
            return
        yield copier


def note(a: argparse.Namespace, message: str) -> None:
    if not a.quiet:
        print(f"gvc: note: {message}", file=sys.stderr)


def kept_tracks(a: argparse.Namespace, source, output) -> list:
    """The stream's audio/subtitle tracks that decoding to ``output`` keeps (a .mkv/.mp4/.mov output
    holds them; y4m does not: said once on stderr)."""
    if a.no_audio or source == "-" or hasattr(source, "read"):
        return []
    from container.io import StreamReader

    with StreamReader(source) as r:
        tracks = r.info.tracks
    if tracks and (output == "-" or hasattr(output, "write") or os.path.splitext(output)[1].lower() == ".y4m"):
        note(a, f"{len(tracks)} audio/subtitle track(s) not written: y4m holds video only (write .mkv or .mp4)")
        return []
    return tracks


@contextmanager
def _nothing():
    yield None


def run_decode(a: argparse.Namespace, source, output) -> dict:
    from ffmpeg_bridge.tracks import mux_tracks
    from ffmpeg_bridge.video_io import VideoWriter

    from .limits import default_max_frames
    from .pipeline import decode_stream
    from .progress import Progress
    from .seek import SeekRequest

    for name in ("max_pixels", "max_frames"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise GVCError(f"--{name.replace('_', '-')} must be at least 1")
    if output != "-" and os.path.splitext(output)[1].lower() not in (".y4m", ".mp4", ".mkv", ".mov"):
        raise GVCError(f"output {output} must end in .y4m, .mp4, .mkv or .mov (or be '-' for y4m on stdout)")
    check_writable(output)
    if source != "-" and not os.path.isfile(source):
        raise GVCError(f"no such file: {source}" if not os.path.exists(source) else f"not a file: {source}")
    max_frames = a.max_frames
    if max_frames is None and source != "-":
        from container.io import StreamReader

        with StreamReader(source) as r:  # the header alone: the limit for this output, before the model loads
            max_frames = default_max_frames(output, r.header.width, r.header.height)
    tracks = kept_tracks(a, source, output)
    config = DecodeConfig(prior=a.prior, device=a.device, verify=not a.no_verify, max_pixels=a.max_pixels,
                          max_frames=max_frames, dtype=a.dtype)
    bars = []

    def writer_for(h):
        bars.append(Progress(total=h.frame_count or None, desc="decode", quiet=a.quiet, force=a.progress))
        return VideoWriter(video, width=h.width, height=h.height, fps=h.fps, lossless=getattr(a, 'lossless', False))

    with atomic_output(output) as out:
        root, ext = os.path.splitext(out)
        video = f"{root}.video{ext}" if tracks else out  # the decoded video, then remuxed with the tracks
        try:
            report = decode_stream(source, writer_for, config, on_gop=lambda r: bars[-1].gop(r),
                                   on_step=lambda n=1: bars[-1].step(n),
                                   seek=SeekRequest(a.start, a.duration, a.start_frame, a.frames))
            if tracks:
                try:
                    mux_tracks(video, source, out)
                except GVCError as e:
                    raise GVCError(f"cannot add the audio/subtitle tracks to {output} ({e}): write .mkv, "
                                   "or drop them with --no-audio") from None
        finally:
            for bar in bars:
                bar.close()
            if video != out and os.path.exists(video):
                os.remove(video)
    for event in report.events:
        print(f"gvc: warning: {event}", file=sys.stderr)
    if not a.quiet:
        print(f"decoded {plural(report.frames, 'frame')} in {plural(report.gops, 'GOP')}", file=sys.stderr)
    if report.damage:
        # The concealed output is kept, but a damaged (truncated, CRC-failing) stream is a failure.
        raise StreamDamagedError(f"damaged stream: {plural(len(report.damage), 'problem')}, concealed in the output "
                                 f"({report.damage[0]})")
    return report.as_dict()


class StreamDamagedError(GVCError):
    """Decoding finished with concealed GOPs: the output is written, the exit status says it is not clean."""


def run_info(a: argparse.Namespace) -> dict:
    from .probe import probe, text

    info = probe(a.input)
    for w in info["warnings"]:
        print(f"gvc: warning: {w}", file=sys.stderr)
    print(json.dumps(info, indent=2) if a.json else text(a.input, info))
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gvc", description="GVC generative video codec (GVCC: codebook-driven stochastic rectified flow).")
    p.add_argument("--version", action="version", version=f"gvc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", help="encode any ffmpeg-decodable video (or '-' for y4m on stdin)",
                       description="Encode a video into a GVC stream (.mkv Matroska or .gvc elementary stream).")
    e.add_argument("input", help="input video file, or '-' for y4m on stdin")
    e.add_argument("-o", "--output", required=True, help="output .mkv or .gvc file, or '-' (elementary stream on stdout)")
    add_encode_options(e)
    d = sub.add_parser("decode", help="decode a GVC stream to y4m or mp4", description="Decode a GVC stream.")
    d.add_argument("input", help="a .mkv or .gvc GVC stream, or '-' for an elementary stream on stdin")
    d.add_argument("-o", "--output", required=True,
                   help="output .y4m, .mp4/.mkv/.mov (H.264 High at CRF 18, playable; --lossless for lossless) "
                        "or '-' (y4m on stdout)")
    add_decode_options(d)
    d.add_argument("--lossless", action="store_true",
                   help=".mp4/.mkv/.mov output: lossless H.264 (4:4:4 Predictive profile, ~10x larger, few players)")
    i = sub.add_parser("info", help="tracks, sequence header, per-GOP time ranges, keyframes and payload sizes")
    i.add_argument("input", help="a .mkv or .gvc GVC stream")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def add_decode_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--prior", default=None, help="prior to decode with (default: the one named in the stream)")
    d.add_argument("--device", default=DecodeConfig.device, help=f"cpu or cuda (default {DecodeConfig.device})")
    d.add_argument("--dtype", choices=DTYPE_CHOICES, default=None,
                   help="only for streams that do not record it: transformer arithmetic (default: the stream's)")
    d.add_argument("--no-verify", action="store_true", help="do not compare decoded frames with the encoder's hash")
    d.add_argument("--no-audio", action="store_true",
                   help="drop the stream's audio and subtitle tracks (default: kept in a .mkv/.mp4/.mov output)")
    d.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse streams whose GOPs hold more than N pixels (width x height x GOP length; "
                        "default: what the available memory allows)")
    d.add_argument("--max-frames", type=int, metavar="N",
                   help="write at most N frames (default: 2^24, and for a .y4m file what its disk holds)")
    s = d.add_argument_group("range (seeks to the GOP holding the start; I2V decodes from the last keyframe)")
    s.add_argument("--start", metavar="TIME", help="first frame shown at or after TIME: seconds or [HH:]MM:SS[.fff]")
    s.add_argument("--duration", metavar="TIME", help="decode this much time from the start")
    s.add_argument("--start-frame", type=int, metavar="N", help="first frame to decode (0-based)")
    s.add_argument("--frames", type=int, metavar="N", help="decode N frames")
    add_progress_options(d)


def guarded(fn):
    """Run a command; user errors become one line on stderr and exit status 1 (2: a damaged stream was
    decoded with concealment, the output is written), never a traceback."""
    # Both signals are handled here, SIGINT too: a process started in the background by a non-interactive shell
    # inherits SIGINT ignored, and then Ctrl-C / kill -INT would not keep the finished GOPs.
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        fn()
        return 0
    except OutputKept as e:
        print(f"gvc: {'error: ' if e.exit_status == 1 else ''}{e}", file=sys.stderr)
        return e.exit_status
    except Interrupted as e:
        print("gvc: interrupted", file=sys.stderr)
        return e.exit_status
    except StreamDamagedError as e:  # output written with concealment: exit 2, not 1 (nothing usable)
        print(f"gvc: error: {e}", file=sys.stderr)
        return 2
    except GVCError as e:
        print(f"gvc: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        print("gvc: error: output pipe closed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gvc: interrupted", file=sys.stderr)
        return 130
    except FileNotFoundError as e:
        print(f"gvc: error: no such file: {e.filename}", file=sys.stderr)
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "encode":
        return guarded(lambda: run_encode(a, a.input))
    if a.command == "decode":
        return guarded(lambda: run_decode(a, a.input, a.output))
    return guarded(lambda: run_info(a))


if __name__ == "__main__":
    sys.exit(main())
