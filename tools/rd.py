"""Rate-distortion sweep of GVC against x264, x265, VVC (libvvenc) and AV1 (libsvtav1) on real clips.

    python -m tools.rd [--quick] [--clips carphone_176x144.mp4,tree_320x240.mp4] [--frames 33]
                       [--size upto:352x288|native|WxH] [--modes t2v,i2v,flf2v] [--qualities 2,4,8,16,32,64]
                       [--prior default] [--anchor-quality AQ] [--residual-step STEP]
                       [--codecs x264,x265,vvc,av1] [--params x265=37,44,51 ...]
                       [--no-vmaf] [--lpips-weights FILE.pt] [--out DIR] [--name rd] [--plots DIR]
                       [--report FILE.md] [--redo] [--quiet]

Outputs go under ``--out DIR``: ``DIR/NAME.json`` (every point), ``DIR/NAME_<metric>.png`` (``--plots`` moves
them) and ``DIR/work/`` (sources and streams). Without ``--out`` a fresh temporary folder is made outside the
checkout and its path printed; nothing is written into ``docs/`` or ``benchmarks/`` unless asked for by name.

Every clip is decoded once by ffmpeg into a y4m file (``--frames`` frames, ``--size``: ``native``; ``WxH``
centre-crops to that aspect ratio then scales, bicubic; ``upto:WxH`` does the same only for clips larger
than WxH, fitting them inside it with sides rounded down to multiples of 16). That y4m is the input of every
codec and the reference of every metric.

* GVC: the library's ``gvc.pipeline`` encode and decode in process (what ``gvc encode``/``gvc decode`` run),
  with ``--mode``, ``--quality``, ``--prior``, ``--steps``; size = the elementary ``.gvc`` stream (sequence
  header included). The levers follow the quality ladder (gvc/ladder.py) unless ``--anchor-quality`` or
  ``--residual-step`` pin them (e.g. ``--anchor-quality 50 --residual-step 0.35``, the levers of before the
  ladder); pinned points are curves of their own.
* classical codecs, through the ffmpeg binary: x264 and x265 ``-preset veryslow`` with a CRF sweep reaching
  CRF 51 (their lowest rate), VVC ``libvvenc -preset slow -qpa 0`` with a QP sweep to 63, AV1
  ``libsvtav1 -preset 2`` with a CRF sweep to 63; default GOP structure; size = the elementary stream
  (Annex B / OBU). Non-normative SEI messages (x264's and x265's settings text, about 0.6-2 KB) are
  removed from the stream (``filter_units``, ``x265-params info=0``); the streams stay decodable.
  The stream is decoded by ffmpeg back to 8-bit y4m.

Metrics (see tools/metrics.py): PSNR-Y, PSNR-RGB, MS-SSIM (RGB), VMAF (libvmaf, built-in model; ``--no-vmaf``
skips it) and LPIPS only with ``--lpips-weights`` (a local TorchScript file; skipped with a message
otherwise, never downloaded). Rates: true bpp = bits / (W·H·frames) and kbps at the clip's real frame rate.
Times: wall seconds, process CPU seconds (this process and its ffmpeg children) and the machine's load
average after each point, so that times from a shared machine can be judged.
BD-rate and BD-metric of every codec against ``--anchor`` (default x265) over the overlapping range
(tools/bd.py), printed with that range; figures resting on less than 20 % of a log-rate decade are flagged.

Resuming: a point already in the JSON with the same clip, codec, parameters, frame count, size and (GVC)
levers is skipped; a GVC point whose quality now sets other levers (a changed ladder) is measured again and
replaces the old one (``--redo`` measures everything again; points that failed are retried). Each point's stream lives in
its own work folder named after that key, so a resumed run never overwrites an earlier point's stream;
decoded y4m files are deleted once scored. Output: CompressAI-style curves ``{"name", "description",
"results": {"bpp": [...], "psnr-rgb": [...], ...}}`` per sequence and codec, their means over sequences, the
BD tables and, with ``--report``, a Markdown report of this JSON alone (tools/report.py). A point that fails
is recorded with its error string.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import resource
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from tools import CLIPS_DIR

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("psnr-y", "psnr-rgb", "ms-ssim", "vmaf", "lpips")
METRIC_LABELS = {"psnr-y": "PSNR-Y (dB)", "psnr-rgb": "PSNR-RGB (dB)", "ms-ssim": "MS-SSIM (RGB)",
                 "vmaf": "VMAF", "lpips": "LPIPS (lower is better)"}
GVC_MODES = ("t2v", "i2v", "flf2v")
TIME_FIELDS = ("encode_seconds", "encode_cpu_seconds", "decode_seconds", "decode_cpu_seconds")


@dataclass(frozen=True)
class ClassicalCodec:
    """One classical encoder run through the ffmpeg binary."""

    name: str
    encoder: str  # ffmpeg encoder name
    param: str  # what the sweep varies ("crf" or "qp")
    preset: str
    muxer: str  # elementary-stream muxer
    ext: str
    extra: tuple[str, ...] = ()  # further encoder arguments
    description: str = ""

    def encode_args(self, value: int) -> list[str]:
        return ["-c:v", self.encoder, "-preset", self.preset, f"-{self.param}", str(value), *self.extra]


CLASSICAL = {
    "x264": ClassicalCodec("x264", "libx264", "crf", "veryslow", "h264", ".264",
                           ("-bsf:v", "filter_units=remove_types=6"), "H.264 (libx264 -preset veryslow, CRF)"),
    "x265": ClassicalCodec("x265", "libx265", "crf", "veryslow", "hevc", ".265",
                           ("-x265-params", "log-level=error:info=0", "-bsf:v", "filter_units=remove_types=39|40"),
                           "H.265 (libx265 -preset veryslow, CRF)"),
    "vvc": ClassicalCodec("vvc", "libvvenc", "qp", "slow", "vvc", ".266", ("-qpa", "0"),
                          "H.266/VVC (libvvenc -preset slow -qpa 0, QP)"),
    "av1": ClassicalCodec("av1", "libsvtav1", "crf", "2", "obu", ".obu", (), "AV1 (libsvtav1 -preset 2, CRF)"),
}
FULL_SWEEP = {"x264": [22, 27, 32, 37, 42, 47, 51], "x265": [22, 27, 32, 37, 42, 47, 51],
              "vvc": [27, 32, 37, 42, 47, 52, 57, 63], "av1": [30, 38, 46, 54, 63]}
QUICK_SWEEP = {"x264": [37, 44, 51], "x265": [37, 44, 51], "vvc": [50, 63], "av1": [50, 63]}
FULL = {"clips": None, "frames": 33, "size": "upto:352x288", "qualities": [2, 4, 8, 16, 32, 64]}
QUICK = {"clips": ["carphone_176x144.mp4"], "frames": 9, "size": "upto:352x288", "qualities": [2, 8]}


# -- sources -----------------------------------------------------------------------------------------------

def resolve_clip(name: str, clips_dir: Path) -> Path:
    from gvc.errors import InputError

    path = Path(name)
    if not path.is_file():
        path = clips_dir / name
    if not path.is_file():
        raise InputError(f"clip not found: {name} (nor in {clips_dir})")
    return path


def target_size(spec: str, width: int, height: int) -> tuple[int, int]:
    """The coded size for a clip of width x height under ``--size`` (native | WxH | upto:WxH), even sides."""
    if spec == "native":
        return width - width % 2, height - height % 2
    upto = spec.startswith("upto:")
    tw, th = (int(v) for v in spec.removeprefix("upto:").lower().split("x"))
    if not upto:
        return tw, th
    if width <= tw and height <= th:
        return width - width % 2, height - height % 2
    scale = min(tw / width, th / height)
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def crop_scale_filter(width: int, height: int, tw: int, th: int) -> str | None:
    """ffmpeg filter: centre crop to the aspect ratio tw:th, then bicubic scale to tw x th (None: nothing)."""
    cw, ch = width, height
    if width * th > height * tw:
        cw = round(height * tw / th)
    elif width * th < height * tw:
        ch = round(width * th / tw)
    steps = []
    if (cw, ch) != (width, height):
        steps.append(f"crop={cw}:{ch}:{(width - cw) // 2}:{(height - ch) // 2}")
    if (cw, ch) != (tw, th):
        steps.append(f"scale={tw}:{th}:flags=bicubic")
    return ",".join(steps) or None


@dataclass(frozen=True)
class Source:
    clip: str  # file name of the clip
    y4m: Path
    width: int
    height: int
    frames: int
    fps: float

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def sequence(self) -> str:
        """Name of this (clip, size, frames) in the output."""
        return f"{Path(self.clip).stem}@{self.size}x{self.frames}"


def prepare_source(clip: Path, frames: int, size_spec: str, work: Path) -> Source:
    """Decode the first ``frames`` frames of ``clip`` once into a yuv420p y4m at the configured size."""
    from ffmpeg_bridge.ffmpeg import run_ffmpeg
    from ffmpeg_bridge.video_io import VideoReader

    with VideoReader(str(clip), max_frames=1) as r:
        width, height = r.info.width, r.info.height
    tw, th = target_size(size_spec, width, height)
    out = work / f"{clip.stem}_{tw}x{th}_{frames}.y4m"
    if not out.is_file():
        vf = crop_scale_filter(width, height, tw, th)
        run_ffmpeg(["-y", "-i", str(clip), "-an", "-frames:v", str(frames), *(["-vf", vf] if vf else []),
                    "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(out)])
    with VideoReader(str(out)) as r:
        count = sum(1 for _ in r)
        fps = float(r.info.fps)
    return Source(clip.name, out, tw, th, count, fps)


# -- points ------------------------------------------------------------------------------------------------

def point_key(p: dict, levers: bool = True) -> str:
    """What identifies a point for resuming: clip, codec, parameters, frame count and size, and the levers and
    codebook family a GVC quality value gets (a changed ladder or default family measures the point again;
    ``levers=False``: the point it replaces)."""
    fields = ("clip", "codec", "prior", "param", "value", "preset", "steps", "frames", "size", "codebook_span", "pinned")
    return json.dumps({k: p.get(k) for k in fields + (("levers", "codebook_family") if levers else ())}, sort_keys=True)


def planned_points(sources: list[Source], args, prior_ids: dict[str, str]) -> list[dict]:
    points = []
    for s in sources:
        base = {"clip": s.clip, "frames": s.frames, "size": s.size}
        for prior in args.priors:
            for mode in args.modes:
                for q in args.qualities:
                    point = {**base, "codec": f"gvc-{mode}", "mode": mode, "prior": prior_ids[prior],
                             "prior_arg": prior, "param": "quality", "value": q, "steps": args.steps,
                             **({"codebook_span": args.codebook_span} if args.codebook_span is not None else {}),
                             **({"pinned": pinned_levers(args, mode)} if pinned_levers(args, mode) else {})}
                    config = gvc_config(point, args.device)
                    points.append({**point, "levers": config.levers(), "codebook_family": config.codebook_family})
        for name in args.codecs:
            c = CLASSICAL[name]
            for v in args.params[name]:
                points.append({**base, "codec": name, "param": c.param, "value": v, "preset": c.preset})
    return points


def pinned_levers(args, mode: str) -> dict:
    """The levers ``--anchor-quality``/``--residual-step`` pin instead of the quality ladder's, in the modes that
    have them (a residual step of 0 = no residual): a comparison with fixed levers (e.g. those of before the
    ladder) is a curve of its own."""
    pinned = {}
    if args.anchor_quality is not None and mode != "t2v":
        pinned["anchor_quality"] = args.anchor_quality
    if args.residual_step is not None and mode == "i2v":
        pinned["residual_step"] = args.residual_step
    return pinned


def point_folder(p: dict) -> str:
    """The work folder of a point, unique per point key: readable name plus a hash of the whole key."""
    name = "-".join(str(v) for v in (p["codec"], (p.get("prior") or "").split(":")[0], f"{p['param']}{p['value']}",
                                     f"s{p['steps']}" if "steps" in p else None, pinned_label(p)) if v)
    digest = hashlib.sha256(point_key(p).encode()).hexdigest()[:10]
    return f"{sequence_of(p)}/{re.sub(r'[^A-Za-z0-9_.@+-]', '_', name)}-{digest}"


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished child processes (ffmpeg)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """Wall and CPU seconds of consecutive phases: ``lap("encode")`` ends the phase begun at the last lap."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def lap(self, phase: str) -> None:
        wall, cpu = time.perf_counter(), cpu_seconds()
        self.times[f"{phase}_seconds"] = round(wall - self._wall, 3)
        self.times[f"{phase}_cpu_seconds"] = round(cpu - self._cpu, 3)
        self._wall, self._cpu = wall, cpu


def gvc_config(point: dict, device: str):
    from gvc.config import CodecConfig

    pinned = dict(point.get("pinned", {}))
    if "residual_step" in pinned:
        pinned["residual_step"] = pinned["residual_step"] or None  # 0 = no residual, as on the command line
    return CodecConfig(mode=point["mode"], quality=point["value"], steps=point["steps"], prior=point["prior_arg"],
                       device=device, codebook_span=point.get("codebook_span"), **pinned).validate()


def encode_gvc(src: Source, point: dict, work: Path, device: str, clock: Stopwatch) -> tuple[Path, int, dict]:
    """Encode and decode with the library (gvc.pipeline); returns the decoded y4m, bytes and extra fields
    (the per-GOP records and the levers the quality ladder chose)."""
    from ffmpeg_bridge.video_io import VideoReader, VideoWriter
    from gvc.config import DecodeConfig
    from gvc.errors import GVCError
    from gvc.pipeline import decode_stream, encode_stream

    stream, decoded = work / "stream.gvc", work / "decoded.y4m"
    config = gvc_config(point, device)
    with VideoReader(str(src.y4m)) as reader:
        report = encode_stream(reader, str(stream), config)
    clock.lap("encode")
    result = decode_stream(str(stream), lambda h: VideoWriter(str(decoded), width=h.width, height=h.height, fps=h.fps),
                           DecodeConfig(prior=point["prior_arg"], device=device))
    clock.lap("decode")
    if result.damage:
        raise GVCError(f"decoding the stream: {result.damage[0]}")
    stats = report.as_dict(stream.stat().st_size)
    extra = {"levers": stats["levers"],
             "gops": [{k: v for k, v in g.items() if k != "psnr"} for g in stats["gops"]]}
    if result.events:
        extra["decoder_problems"] = [str(e) for e in result.events]
    return decoded, stream.stat().st_size, extra


def encode_classical(src: Source, point: dict, work: Path, clock: Stopwatch) -> tuple[Path, int, dict]:
    from ffmpeg_bridge.ffmpeg import run_ffmpeg

    codec = CLASSICAL[point["codec"]]
    stream, decoded = work / f"stream{codec.ext}", work / "decoded.y4m"
    run_ffmpeg(["-y", "-i", str(src.y4m), "-an", *codec.encode_args(point["value"]), "-f", codec.muxer, str(stream)])
    clock.lap("encode")
    run_ffmpeg(["-y", "-i", str(stream), "-fps_mode", "passthrough", "-pix_fmt", "yuv420p",
                "-f", "yuv4mpegpipe", str(decoded)])
    clock.lap("decode")
    return decoded, stream.stat().st_size, {}


def measure_point(src: Source, point: dict, work: Path, *, device: str, vmaf: bool, lpips) -> dict:
    """Encode, decode and score one point in its own folder ``work`` (its stream is kept there, the decoded
    y4m and metric logs deleted); returns the point with its figures (or its error)."""
    from gvc.errors import GVCError
    from tools import metrics

    work.mkdir(parents=True, exist_ok=True)
    clock = Stopwatch()
    try:
        run = encode_gvc(src, point, work, device, clock) if point["codec"].startswith("gvc-") else \
            encode_classical(src, point, work, clock)
        decoded, nbytes, extra = run
        reference, distorted = metrics.read_rgb(src.y4m), metrics.read_rgb(decoded)
        if len(distorted) != len(reference):
            raise GVCError(f"decoded {len(distorted)} frames, expected {len(reference)}")
        bits = 8 * nbytes
        out = {**point, "bytes": nbytes, "bits": bits, "bpp": bits / (src.width * src.height * src.frames),
               "kbps": bits / (src.frames / src.fps) / 1000,
               "psnr-y": metrics.mean_psnr_y(decoded, src.y4m, work),
               "psnr-rgb": metrics.mean_psnr_rgb(reference, distorted),
               "ms-ssim": metrics.mean_ms_ssim(reference, distorted), **clock.times, **extra}
        if vmaf:
            out["vmaf"] = metrics.mean_vmaf(decoded, src.y4m, work)
        if lpips is not None:
            out["lpips"] = lpips.mean(reference, distorted)
        for scratch in (decoded, *work.glob("*.log"), *work.glob("vmaf.json")):
            scratch.unlink(missing_ok=True)
    except (GVCError, OSError, ValueError, RuntimeError) as e:
        out = {**point, "error": f"{type(e).__name__}: {e}".splitlines()[0], **clock.times}
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return out


# -- curves, means, BD -------------------------------------------------------------------------------------

def pinned_label(p: dict) -> str | None:
    """'aq50-rs0.35' for a point whose levers were pinned (None for the ladder's)."""
    short = {"anchor_quality": "aq", "residual_step": "rs"}
    return "-".join(f"{short[k]}{v:g}" for k, v in sorted(p.get("pinned", {}).items())) or None


def codec_label(p: dict) -> str:
    """Curve name: the codec, and for GVC the prior's name (its weights hash stays in the point's key) and any
    pinned levers."""
    if not p["codec"].startswith("gvc-"):
        return p["codec"]
    pinned = pinned_label(p)
    return f"{p['codec']} ({p['prior'].split(':')[0]}{', ' + pinned if pinned else ''})"


def codec_description(p: dict) -> str:
    if p["codec"].startswith("gvc-"):
        pinned = "".join(f", {k.replace('_', ' ')} pinned at {v:g}" for k, v in sorted(p.get("pinned", {}).items()))
        return f"GVC {p['mode'].upper()}, prior {p['prior']}, {p['steps']} steps, --quality sweep{pinned}"
    return CLASSICAL[p["codec"]].description


def sequence_of(p: dict) -> str:
    return f"{Path(p['clip']).stem}@{p['size']}x{p['frames']}"


def build_curves(points: list[dict]) -> dict:
    """{sequence: {codec: {"name", "description", "results": {param, bytes, bpp, kbps, metrics...}}}}"""
    groups: dict[str, dict[str, list[dict]]] = {}
    for p in points:
        if "error" not in p:
            groups.setdefault(sequence_of(p), {}).setdefault(codec_label(p), []).append(p)
    curves = {}
    for seq, codecs in groups.items():
        curves[seq] = {}
        for name, pts in codecs.items():
            pts = sorted(pts, key=lambda p: p["bpp"])
            fields = ["bytes", "bpp", "kbps"] + [m for m in METRICS if m in pts[0]] + list(TIME_FIELDS)
            results = {pts[0]["param"]: [p["value"] for p in pts], **{f: [p.get(f) for p in pts] for f in fields}}
            curves[seq][name] = {"name": name, "description": codec_description(pts[0]), "results": results}
    return curves


def mean_curves(curves: dict) -> dict:
    """Per codec, the mean over sequences of each figure at each parameter value present in all of them."""
    if len(curves) < 2:
        return {}
    names = set.intersection(*(set(c) for c in curves.values()))
    out = {}
    for name in sorted(names):
        per_seq = [c[name] for c in curves.values()]
        param = next(iter(per_seq[0]["results"]))
        common = set.intersection(*(set(s["results"][param]) for s in per_seq))
        fields = [f for f in per_seq[0]["results"] if all(f in s["results"] for s in per_seq)]
        rows = []
        for v in sorted(common):
            at = [{f: s["results"][f][s["results"][param].index(v)] for f in fields} for s in per_seq]
            rows.append({f: (v if f == param else _mean([a[f] for a in at])) for f in fields})
        rows.sort(key=lambda r: r["bpp"])
        out[name] = {"name": name, "description": per_seq[0]["description"] + f" (mean of {len(per_seq)} sequences)",
                     "results": {f: [r[f] for r in rows] for f in fields}}
    return out


def _mean(values: list) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)


def bd_tables(curves: dict, anchor: str) -> dict:
    """{sequence: {"anchor", "codecs": {codec: {metric: {"bd-rate": %, "bd-metric": delta, "bd-rate-range": {...},
    "bd-metric-range": {...}}}}}}, plus "mean" of the per-sequence values. A range gives the shared interval
    (metric values for BD-rate, bpp for BD-metric), its width in decades of rate and whether it is narrow."""
    from tools.bd import bd_metric_figure, bd_rate_figure

    tables = {}
    for seq, codecs in curves.items():
        if anchor not in codecs:
            continue
        a = codecs[anchor]["results"]
        table = {}
        for name, c in codecs.items():
            if name == anchor:
                continue
            t = c["results"]
            table[name] = {}
            for m in METRICS:
                if m not in a or m not in t or m == "lpips":
                    continue
                rate = bd_rate_figure(a["bpp"], a[m], t["bpp"], t[m])
                metric = bd_metric_figure(a["bpp"], a[m], t["bpp"], t[m])
                table[name][m] = {"bd-rate": rate.value, "bd-metric": metric.value,
                                  "bd-rate-range": rate.as_dict(), "bd-metric-range": metric.as_dict()}
        tables[seq] = {"anchor": anchor, "codecs": table}
    if len(tables) > 1:
        tables["mean"] = {"anchor": anchor, "codecs": _mean_bd(list(tables.values()))}
    return tables


def _mean_bd(tables: list[dict]) -> dict:
    """Means of the per-sequence figures; a mean is narrow when any of its figures is."""
    names = set.intersection(*(set(t["codecs"]) for t in tables))
    out = {}
    for name in sorted(names):
        out[name] = {}
        for m in tables[0]["codecs"][name]:
            per_seq = [t["codecs"][name].get(m, {}) for t in tables]
            out[name][m] = {}
            for k in ("bd-rate", "bd-metric"):
                out[name][m][k] = _mean([f.get(k) for f in per_seq])
                out[name][m][f"{k}-range"] = {"narrow": any(f.get(f"{k}-range", {}).get("narrow") for f in per_seq)}
    return out


BD_UNITS = {"psnr-y": ("BD-PSNR-Y", "dB"), "psnr-rgb": ("BD-PSNR-RGB", "dB"), "ms-ssim": ("BD-MS-SSIM", ""),
            "vmaf": ("BD-VMAF", "")}


def bd_lines(tables: dict) -> list[str]:
    """One line per (sequence, codec against the anchor, metric): BD-rate and BD-quality, each with the range
    it was fitted over and a NARROW flag when that range is under 20 % of a log-rate decade."""
    from tools.bd import NARROW_DECADES

    def fmt(fig: dict, value: str, unit: str) -> str:
        if fig.get("value") is None and "overlap" in fig:
            return "none (no overlap)"
        text = value
        if fig.get("overlap"):
            lo, hi = fig["overlap"]
            text += f" over {lo:.4g}–{hi:.4g}{unit} ({fig['decades']:.2f} decades of rate)"
        return text + (f" NARROW (< {NARROW_DECADES:g} decade)" if fig.get("narrow") else "")

    lines = []
    for seq, t in tables.items():
        for name, per_metric in t["codecs"].items():
            for m, f in per_metric.items():
                label, unit = BD_UNITS.get(m, (f"BD-{m}", ""))
                rate = fmt({**f["bd-rate-range"], "value": f["bd-rate"]},
                           "–" if f["bd-rate"] is None else f"{f['bd-rate']:+.1f} %", f" {unit}" if unit else "")
                quality = fmt({**f["bd-metric-range"], "value": f["bd-metric"]},
                              "–" if f["bd-metric"] is None else f"{f['bd-metric']:+.4g}{' ' + unit if unit else ''}",
                              " bpp")
                lines.append(f"rd: BD {seq}: {name} vs {t['anchor']}, {m}: BD-rate {rate}; {label} {quality}")
    return lines


# -- plots -------------------------------------------------------------------------------------------------

def set_log_rate_axis(ax) -> None:
    """Log-scale x axis labelled at 1, 2 and 5 times the powers of ten, in plain numbers."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_curves(curves: dict, plots_dir: Path, stem: str) -> list[Path]:
    """One PNG per metric, one panel per sequence, log-scale bpp axis; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    seqs = list(curves)
    for metric in METRICS:
        if not any(metric in c["results"] for codecs in curves.values() for c in codecs.values()):
            continue
        fig, axes = plt.subplots(1, len(seqs), figsize=(5.4 * len(seqs), 4.0), dpi=90, squeeze=False)
        for ax, seq in zip(axes[0], seqs):
            for name, c in sorted(curves[seq].items()):
                r = c["results"]
                if metric not in r:
                    continue
                style = "-o" if name.startswith("gvc-") else "--s"
                ax.plot(r["bpp"], r[metric], style, markersize=4, label=name)
            set_log_rate_axis(ax)
            ax.set_xlabel("bpp (bits / pixel / frame)")
            ax.set_ylabel(METRIC_LABELS[metric])
            ax.set_title(seq, fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = plots_dir / f"{stem}_{metric}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


# -- the sweep ---------------------------------------------------------------------------------------------

def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"tool": "tools.rd", "points": []}


def save_results(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def check_dependencies(a) -> None:
    """Before any measurement: one-line error when an optional part the run needs is missing."""
    from gvc.errors import InputError

    if a.plot and not installed("matplotlib"):
        raise InputError("plots need matplotlib, which is not installed: pip install 'gvc[tools]' "
                         "(or matplotlib), or run with --no-plots")
    if a.lpips_weights and not Path(a.lpips_weights).is_file():
        raise InputError(f"LPIPS weights not found: {a.lpips_weights}")
    if a.report and Path(a.report).suffix != ".md":
        raise InputError(f"--report must name a .md file, got {a.report}")
    check_ffmpeg(a.codecs, a.vmaf)


def check_ffmpeg(codecs: list[str], vmaf: bool) -> None:
    """One-line error when the ffmpeg build lacks an encoder or libvmaf that the sweep needs."""
    from ffmpeg_bridge.ffmpeg import ffmpeg_exe, run_ffmpeg
    from gvc.errors import InputError

    encoders = run_ffmpeg(["-encoders"]).stdout.decode("utf-8", "replace")
    names = {line.split()[1] for line in encoders.splitlines() if len(line.split()) > 1 and line.startswith(" V")}
    for c in codecs:
        if CLASSICAL[c].encoder not in names:
            raise InputError(f"ffmpeg ({ffmpeg_exe()}) has no {CLASSICAL[c].encoder} encoder (needed for {c}); "
                             f"leave it out with --codecs")
    if vmaf:
        filters = run_ffmpeg(["-filters"]).stdout.decode("utf-8", "replace")
        if " libvmaf " not in filters:
            raise InputError(f"ffmpeg ({ffmpeg_exe()}) has no libvmaf filter; use --no-vmaf")


def resolve_prior_ids(priors: list[str], device: str) -> dict[str, str]:
    """'default' -> 'analytic-v1:3f2a...' (name and weights hash), so a changed default is a new point."""
    from gvc.priors import load_prior

    ids = {}
    for p in priors:
        prior = load_prior(p, device=device)
        ids[p] = f"{prior.name}:{prior.weights_sha256().hex()[:12]}"
    return ids


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tools.rd", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke-test preset: carphone, 9 frames, qualities 2,8, CRF 37,44,51 (x264/x265), 50,63 (vvc/av1)")
    p.add_argument("--clips", help="comma list of clip files or names in --clips-dir (default: all clips there)")
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--frames", type=int, help="frames per clip (default 33; quick 9)")
    p.add_argument("--size", help="native | WxH | upto:WxH (default upto:352x288)")
    p.add_argument("--modes", default=",".join(GVC_MODES), help="GVC modes, comma list; 'none' for no GVC")
    p.add_argument("--qualities", help="GVC --quality values (default 2,4,8,16,32,64; quick 2,8)")
    p.add_argument("--prior", dest="priors", default="default", help="prior(s), comma list (default: default)")
    p.add_argument("--steps", type=int, default=20, help="GVC sampling steps (default 20, the CLI's)")
    p.add_argument("--device", default="cpu", help="device GVC runs on (cpu or cuda)")
    p.add_argument("--codebook-span", type=int, help="GVC latent frames per codebook set (default: the prior's)")
    p.add_argument("--anchor-quality", type=float, metavar="AQ",
                   help="pin GVC's anchor quality (I2V, FLF2V) instead of the quality ladder's (gvc/ladder.py)")
    p.add_argument("--residual-step", type=float, metavar="STEP",
                   help="pin GVC's I2V residual step instead of the ladder's; 0 = no residual")
    p.add_argument("--codecs", default="x264,x265,vvc,av1", help="classical codecs, comma list; 'none' for none")
    p.add_argument("--params", action="append", default=[], metavar="CODEC=V,V,...",
                   help="CRF/QP values of one codec (repeatable), e.g. x265=32,37,42")
    p.add_argument("--anchor", default="x265", help="BD anchor codec (default x265)")
    p.add_argument("--no-vmaf", dest="vmaf", action="store_false")
    p.add_argument("--lpips-weights", metavar="FILE.pt", help="local TorchScript LPIPS model; LPIPS is skipped without it")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new temporary folder, printed)")
    p.add_argument("--name", help="stem of the JSON and plot files (default rd; quick: rd_quick)")
    p.add_argument("--plots", metavar="DIR", help="PNG folder (default: --out); plots are named NAME_<metric>.png")
    p.add_argument("--no-plots", dest="plot", action="store_false")
    p.add_argument("--report", metavar="FILE.md", help="also write a report of this run's JSON alone (tools/report.py)")
    p.add_argument("--work", metavar="DIR", help="folder for sources and streams (default: OUT/work)")
    p.add_argument("--redo", action="store_true", help="ignore points already in the JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, per-point or BD lines")
    a = p.parse_args(argv)
    preset = QUICK if a.quick else FULL
    a.frames = a.frames or preset["frames"]
    a.size = a.size or preset["size"]
    if not re.fullmatch(r"native|(upto:)?\d+x\d+", a.size):
        p.error(f"bad --size {a.size!r}: expected native, WxH or upto:WxH")
    a.qualities = [int(v) for v in a.qualities.split(",")] if a.qualities else preset["qualities"]
    a.modes = [] if a.modes == "none" else a.modes.split(",")
    a.codecs = [] if a.codecs == "none" else a.codecs.split(",")
    a.priors = a.priors.split(",")
    for m in a.modes:
        if m not in GVC_MODES:
            p.error(f"unknown mode {m!r} (choose from {', '.join(GVC_MODES)})")
    for c in a.codecs:
        if c not in CLASSICAL:
            p.error(f"unknown codec {c!r} (choose from {', '.join(CLASSICAL)})")
    sweep = dict(QUICK_SWEEP if a.quick else FULL_SWEEP)
    for spec in a.params:
        name, _, values = spec.partition("=")
        if name not in CLASSICAL or not values:
            p.error(f"bad --params {spec!r}: expected CODEC=V,V,... with CODEC one of {', '.join(CLASSICAL)}")
        sweep[name] = [int(v) for v in values.split(",")]
    a.params = sweep
    a.clips = a.clips.split(",") if a.clips else preset["clips"]
    a.name = a.name or ("rd_quick" if a.quick else "rd")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", a.name):
        p.error(f"bad --name {a.name!r}: letters, digits, '_', '.' and '-' only")
    return a


def output_paths(a) -> None:
    """Fix --out (a fresh temporary folder when absent), the JSON, plot and work locations."""
    if a.out is None:
        a.out = Path(tempfile.mkdtemp(prefix="gvc-rd-"))
        print(f"rd: output folder: {a.out}", file=sys.stderr)
    a.out = Path(a.out)
    a.json = a.out / f"{a.name}.json"
    a.plots = Path(a.plots) if a.plots else a.out
    a.work = Path(a.work) if a.work else a.out / "work"


def command_line(argv) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return "python -m tools.rd " + " ".join(shlex.quote(str(x)) for x in args)


def sweep(a, argv) -> dict:
    from tools import metrics

    clips_dir = Path(a.clips_dir)
    names = a.clips or sorted(f.name for f in clips_dir.glob("*.mp4"))
    if not names:
        from gvc.errors import InputError

        raise InputError(f"no clips: {clips_dir} has no .mp4 files")
    clips = [resolve_clip(n, clips_dir) for n in names]
    check_dependencies(a)
    output_paths(a)
    prior_ids = resolve_prior_ids(a.priors, a.device) if a.modes else {}
    lpips = metrics.LpipsModel(a.lpips_weights) if a.lpips_weights else None
    if lpips is None and not a.quiet:
        print("rd: LPIPS skipped: no local weights (--lpips-weights FILE.pt); nothing is downloaded", file=sys.stderr)

    data = {"tool": "tools.rd", "points": []} if a.redo else load_results(a.json)
    done = {point_key(p): p for p in data["points"] if "error" not in p}
    a.work.mkdir(parents=True, exist_ok=True)
    measure_missing(a, argv, data, done, clips, a.work, prior_ids, lpips)
    data["curves"] = build_curves(data["points"])
    data["mean"] = mean_curves(data["curves"])
    data["bd"] = bd_tables(data["curves"], a.anchor)
    if a.plot:
        data["plots"] = [repo_relative(p) for p in plot_curves(data["curves"], a.plots, a.name)]
    save_results(a.json, data)
    return data


def measure_missing(a, argv, data: dict, done: dict, clips: list[Path], work: Path, prior_ids: dict, lpips) -> None:
    """Measure the planned points not yet in ``data`` (saved after each one), each in its own folder."""
    from tqdm import tqdm

    from tools.report import software_versions

    sources = [prepare_source(c, a.frames, a.size, work) for c in clips]
    by_clip = {s.clip: s for s in sources}
    planned = planned_points(sources, a, prior_ids)
    todo = [p for p in planned if point_key(p) not in done]
    if not a.quiet:
        print(f"rd: {len(planned)} points, {len(planned) - len(todo)} already in {a.json}", file=sys.stderr)

    command = command_line(argv)
    data["commands"] = [c for c in data.get("commands", []) if c != command] + [command]
    data.update({"command": command, "software": software_versions(),
                 "settings": {"frames": a.frames, "size": a.size, "priors": prior_ids, "steps": a.steps,
                              "device": a.device, "anchor": a.anchor, "vmaf": a.vmaf, "lpips": lpips is not None,
                              "classical": {c: {"encoder": CLASSICAL[c].encoder, "preset": CLASSICAL[c].preset,
                                                "param": CLASSICAL[c].param, "values": a.params[c]}
                                            for c in a.codecs}},
                 "sequences": {**data.get("sequences", {}),
                               **{s.sequence: {"clip": s.clip, "width": s.width, "height": s.height,
                                               "frames": s.frames, "fps": s.fps} for s in sources}}})
    clock = Stopwatch()
    with tqdm(total=len(todo), desc="rd", unit="point", file=sys.stderr,
              disable=a.quiet or not sys.stderr.isatty()) as bar:
        for point in todo:
            bar.set_postfix_str(f"{Path(point['clip']).stem} {point['codec']} {point['param']}={point['value']}")
            result = measure_point(by_clip[point["clip"]], point, work / point_folder(point), device=a.device,
                                   vmaf=a.vmaf, lpips=lpips)
            done[point_key(result)] = result
            data["points"] = [p for p in data["points"] if point_key(p, False) != point_key(result, False)] + [result]
            save_results(a.json, data)
            bar.update(1)
            if not a.quiet:
                bar.write(point_line(result), file=sys.stderr)
    clock.lap("run")
    data["last_run_seconds"], data["last_run_cpu_seconds"] = clock.times["run_seconds"], clock.times["run_cpu_seconds"]
    data["load_average"] = [round(v, 2) for v in os.getloadavg()]
    data["sweep_seconds"] = round(data.get("sweep_seconds", 0.0) + data["last_run_seconds"], 1)
    data["sweep_cpu_seconds"] = round(data.get("sweep_cpu_seconds", 0.0) + data["last_run_cpu_seconds"], 1)


def repo_relative(path: Path) -> str:
    """The path relative to the repository root when it lies inside it (what the JSON stores), else absolute."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def point_line(p: dict) -> str:
    head = f"rd: {Path(p['clip']).stem} {codec_label(p)} {p['param']}={p['value']}"
    if "error" in p:
        return f"{head}: failed: {p['error']}"
    vmaf = f", VMAF {p['vmaf']:.1f}" if "vmaf" in p else ""
    return (f"{head}: {p['bytes']} B, {p['bpp']:.4f} bpp, {p['kbps']:.1f} kbps, PSNR-Y {p['psnr-y']:.2f} dB, "
            f"PSNR-RGB {p['psnr-rgb']:.2f} dB, MS-SSIM {p['ms-ssim']:.4f}{vmaf}; encode {p['encode_seconds']:.1f} s "
            f"wall / {p['encode_cpu_seconds']:.1f} s CPU, load {p['load_average'][0]:.2f}")


def main(argv=None) -> int:
    from gvc.errors import GVCError

    a = parse_args(argv)
    try:
        data = sweep(a, argv)
        if a.report:
            from tools.report import write_report

            write_report(Path(a.report), rd_paths=[a.json], bench_paths=[])
    except GVCError as e:
        print(f"rd: error: {e}", file=sys.stderr)
        return 1
    failed = [p for p in data["points"] if "error" in p]
    if not a.quiet:
        for line in bd_lines(data["bd"]):
            print(line, file=sys.stderr)
        print(f"rd: wrote {a.json} ({len(data['points'])} points, {len(failed)} failed) in {data['last_run_seconds']} s "
              f"wall, {data['last_run_cpu_seconds']} s CPU, load average {data['load_average']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
