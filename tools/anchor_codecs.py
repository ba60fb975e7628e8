"""Compare the anchor image codecs at equal bytes on the real clips (python -m tools.anchor_codecs).

    python -m tools.anchor_codecs [--clips carphone_176x144.mp4 vtest_768x576.mp4 ...] [--size native|cif|WxH]
                                  [--bytes 500 1000 2000 4000 | --bpp 0.1 0.25 ...] [--first-only] [--jxl]
                                  [--out FILE.json]

For the first frame of each clip (the first non-blank one if it is blank) and its middle frame, every lossy
anchor codec is fitted to each byte budget with ``fit_anchor(max_bytes=)`` (the largest quality whose payload
fits, so every codec gets at most the same bytes; payload = the GVC anchor header of ~5 bytes + the codec's
stream) and the RGB PSNR of the decoded picture is reported, with the time of one encode at the chosen
quality and of one decode.  A budget a codec cannot reach even at its lowest quality is reported as null.
PNG (lossless) is listed with its size and whether it fits a budget.  Budgets are absolute bytes
(``--bytes``, the default) or bits per pixel of each frame (``--bpp``).

``--size cif`` scales clips larger than CIF to 352x288 (bicubic, like tools.main_job; smaller clips stay
native); ``--size WxH`` scales every clip; ``native`` (default) keeps them.

``--jxl`` adds JPEG XL as a reference only: PyAV's bundled FFmpeg has no libjxl (so it cannot be an anchor
codec: anchors must encode and decode in-process), but the imageio-ffmpeg binary does; it is run through the
ffmpeg command line on the RGB picture (distance fitted by bisection, effort 7) and charged 5 bytes for the
anchor header like the others.  It is never counted as a winner.

The summary ranks the anchor codecs by wins (best PSNR among them on a frame and budget; missing a budget
counts as a loss) and gives the mean PSNR gap to the best codec where a codec fits.  JSON goes to stdout and
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from gvc.anchors import ANCHOR_CODECS, DEFAULT_ANCHOR_CODEC, decode_anchor, encode_anchor, fit_anchor
from gvc.errors import ParameterError
from tools import CLIPS_DIR

CLIPS = CLIPS_DIR
BYTE_TARGETS = (500, 1000, 2000, 4000)
LOSSY = ("av1-intra", "hevc-intra", "webp", "jpeg")
CIF = (352, 288)
ANCHOR_HEADER_BYTES = 3  # flags + two one-byte crop VarInts (docs/bitstream.md §Anchor payload)


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _target_size(w: int, h: int, size: str) -> tuple[int, int]:
    if size == "native":
        return w, h
    if size == "cif":
        return CIF if w * h > CIF[0] * CIF[1] else (w, h)
    tw, th = (int(v) for v in size.lower().split("x"))
    return tw, th


def test_frames(path: Path, size: str = "native") -> list[tuple[str, np.ndarray]]:
    """(label, rgb) for the first non-blank frame and the middle frame of a clip (only those are kept)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = stream.frames or 0
        if n <= 0:  # container without a frame count: count them (cheap for the short clips)
            n = sum(1 for _ in c.decode(video=0))
            c.seek(0)
        mid = n // 2
        first = None
        keep: dict[int, av.VideoFrame] = {}
        for i, f in enumerate(c.decode(video=0)):
            if i == 0:
                keep[0] = f  # fallback when every frame is blank
            if first is None and f.to_ndarray(format="rgb24").std() > 2.0:
                first = i
                keep[i] = f
            if i == mid:
                keep[i] = f
            if i >= mid and first is not None:
                break
        first = 0 if first is None else first
    out = []
    for i in dict.fromkeys((first, mid)):
        f = keep.get(i)
        if f is None:
            continue
        tw, th = _target_size(f.width, f.height, size)
        if (tw, th) != (f.width, f.height):
            rgb = f.reformat(width=tw, height=th, format="rgb24", interpolation="BICUBIC").to_ndarray()
        else:
            rgb = f.to_ndarray(format="rgb24")
        out.append((f"{path.stem}@{i}", np.ascontiguousarray(rgb)))
    return out


def measure(img: np.ndarray, codec: str, budget: int) -> dict:
    h, w, _ = img.shape
    t0 = time.perf_counter()
    try:
        cid, payload, quality = fit_anchor(img, codec=codec, max_bytes=budget)
    except ParameterError:
        return {"budget": budget, "bytes": None, "psnr": None}
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    encode_anchor(img, codec=codec, quality=quality)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = decode_anchor(cid, payload)
    t_dec = time.perf_counter() - t0
    return {
        "budget": budget,
        "bytes": len(payload),
        "bpp": round(8 * len(payload) / (w * h), 4),
        "quality": round(quality, 2),
        "psnr": round(psnr_rgb(img, rec), 3),
        "encode_ms": round(1e3 * t_enc, 1),
        "decode_ms": round(1e3 * t_dec, 1),
        "fit_ms": round(1e3 * t_fit, 1),
    }


# ---------------------------------------------------------------------------------- JPEG XL (reference)
def _ffmpeg() -> str:
    from ffmpeg_bridge.ffmpeg import ffmpeg_exe

    return ffmpeg_exe()


def jxl_available() -> dict:
    """Whether PyAV and the ffmpeg binary can encode/decode JPEG XL."""
    out = {"pyav_encoder": False, "pyav_decoder": False, "ffmpeg_cli_encoder": False, "ffmpeg_cli_decoder": False}
    for name, key in (("libjxl", "pyav_encoder"),):
        try:
            av.Codec(name, "w")
            out[key] = True
        except Exception:
            pass
    for name in ("libjxl", "jpegxl"):
        try:
            av.Codec(name, "r")
            out["pyav_decoder"] = True
        except Exception:
            pass
    try:
        exe = _ffmpeg()
        enc = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
        dec = subprocess.run([exe, "-hide_banner", "-decoders"], capture_output=True, text=True).stdout
        out["ffmpeg_cli_encoder"] = " libjxl " in enc
        out["ffmpeg_cli_decoder"] = " libjxl " in dec
        out["ffmpeg_cli"] = exe
    except Exception:  # pragma: no cover
        pass
    return out


class _Jxl:
    def __init__(self, img: np.ndarray, work: Path):
        self.img = img
        self.h, self.w, _ = img.shape
        self.work = work
        self.raw = work / "src.rgb"
        self.raw.write_bytes(np.ascontiguousarray(img).tobytes())
        self.cache: dict[float, bytes] = {}

    def encode(self, distance: float) -> bytes:
        d = round(distance, 3)
        if d not in self.cache:
            out = self.work / "out.jxl"
            subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", f"{self.w}x{self.h}", "-i", str(self.raw), "-frames:v", "1", "-c:v", "libjxl",
                            "-distance", f"{d:g}", "-effort", "7", "-f", "image2", str(out)], check=True)
            self.cache[d] = out.read_bytes()
        return self.cache[d]

    def decode(self, data: bytes) -> np.ndarray:
        src = self.work / "dec.jxl"
        src.write_bytes(data)
        raw = subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-c:v", "libjxl", "-i", str(src),
                              "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
        return np.frombuffer(raw, np.uint8)[: self.h * self.w * 3].reshape(self.h, self.w, 3)


def measure_jxl(img: np.ndarray, budget: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gvc-jxl-") as tmp:
        j = _Jxl(img, Path(tmp))
        fits = lambda d: len(j.encode(d)) + ANCHOR_HEADER_BYTES <= budget  # noqa: E731
        lo, hi = 0.05, 15.0  # distance: small = better; find the smallest distance that fits
        t0 = time.perf_counter()
        if not fits(hi):
            return {"budget": budget, "bytes": None, "psnr": None}
        if fits(lo):
            best = lo
        else:
            for _ in range(14):  # bisection in log(distance)
                mid = float(np.sqrt(lo * hi))
                if fits(mid):
                    hi = mid
                else:
                    lo = mid
            best = hi
        t_fit = time.perf_counter() - t0
        data = j.encode(best)
        t0 = time.perf_counter()
        rec = j.decode(data)
        t_dec = time.perf_counter() - t0
    h, w, _ = img.shape
    n = len(data) + ANCHOR_HEADER_BYTES
    return {"budget": budget, "bytes": n, "bpp": round(8 * n / (w * h), 4), "distance": round(best, 3),
            "psnr": round(psnr_rgb(img, rec), 3), "decode_ms_cli": round(1e3 * t_dec, 1), "fit_ms": round(1e3 * t_fit, 1)}


# ---------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", help="clip file names (default: all in shared/clips)")
    ap.add_argument("--codecs", nargs="*", default=list(LOSSY), choices=list(LOSSY))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--bytes", nargs="*", type=int, help=f"byte budgets (default {' '.join(map(str, BYTE_TARGETS))})")
    g.add_argument("--bpp", nargs="*", type=float, help="budgets in bits per pixel of each frame instead")
    ap.add_argument("--size", default="native", help="native (default), cif (clips larger than CIF -> 352x288) or WxH")
    ap.add_argument("--first-only", action="store_true", help="only the first frame of each clip")
    ap.add_argument("--jxl", action="store_true", help="add JPEG XL through the ffmpeg CLI (reference, not an anchor codec)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if not CLIPS.is_dir():
        print(f"no clips at {CLIPS}", file=sys.stderr)
        return 1
    paths = sorted(CLIPS.glob("*.mp4"))
    if args.clips:
        paths = [p for p in paths if p.name in args.clips]
        missing = set(args.clips) - {p.name for p in paths}
        if missing:
            print(f"clips not found in {CLIPS}: {', '.join(sorted(missing))}", file=sys.stderr)
            return 1
    budget_kind = "bpp" if args.bpp else "bytes"
    budgets = args.bpp if args.bpp else (args.bytes or list(BYTE_TARGETS))
    jxl_info = jxl_available()
    use_jxl = args.jxl and jxl_info["ffmpeg_cli_encoder"] and jxl_info["ffmpeg_cli_decoder"]
    if args.jxl and not use_jxl:
        print("JPEG XL not available in the ffmpeg binary: skipped", file=sys.stderr)

    frames: dict[str, dict] = {}
    for path in paths:
        for label, img in test_frames(path, args.size)[: 1 if args.first_only else 2]:
            h, w, _ = img.shape
            _, png = encode_anchor(img, codec="png")
            entry = {"clip": path.name, "size": [w, h], "png_bytes": len(png), "results": {}, "reference": {}}
            for codec in args.codecs:
                res = {}
                for b in budgets:
                    nbytes = int(b * w * h / 8) if budget_kind == "bpp" else int(b)
                    res[str(b)] = measure(img, codec, nbytes)
                entry["results"][codec] = res
            entry["png_fits"] = {str(b): len(png) <= (int(b * w * h / 8) if budget_kind == "bpp" else int(b))
                                 for b in budgets}
            if use_jxl:
                entry["reference"]["jpegxl-cli"] = {
                    str(b): measure_jxl(img, int(b * w * h / 8) if budget_kind == "bpp" else int(b)) for b in budgets}
            frames[label] = entry
            shown = dict(entry["results"], **entry["reference"])
            print(f"{label} {w}x{h}: " + ", ".join(
                f"{c} " + "/".join("-" if r["psnr"] is None else f"{r['psnr']:.2f}" for r in res.values())
                for c, res in shown.items()) + f", png {len(png)} B", file=sys.stderr)

    default = ANCHOR_CODECS[DEFAULT_ANCHOR_CODEC]
    summary: dict[str, dict] = {}
    for codec in args.codecs:
        s = {"wins": 0, "per_budget": {}}
        for b in map(str, budgets):
            vals, gaps, dgaps, enc, dec = [], [], [], [], []
            for entry in frames.values():
                res = entry["results"]
                best = max((r[b]["psnr"] for r in res.values() if r[b]["psnr"] is not None), default=None)
                mine = res[codec][b]
                if mine["psnr"] is None:
                    continue
                vals.append(mine["psnr"])
                gaps.append(mine["psnr"] - best)
                enc.append(mine["encode_ms"])
                dec.append(mine["decode_ms"])
                if default in res and res[default][b]["psnr"] is not None:
                    dgaps.append(mine["psnr"] - res[default][b]["psnr"])
                s["wins"] += int(mine["psnr"] == best)
            s["per_budget"][b] = {
                "fits": f"{len(vals)}/{len(frames)}",
                "mean_gap_to_best_db": round(float(np.mean(gaps)), 3) if gaps else None,
                f"mean_gap_to_{default}_db": round(float(np.mean(dgaps)), 3) if dgaps else None,
                "mean_encode_ms": round(float(np.mean(enc)), 1) if enc else None,
                "mean_decode_ms": round(float(np.mean(dec)), 1) if dec else None,
            }
        summary[codec] = s
    # mean PSNR on the frames where every codec reaches the budget (comparable across codecs); codecs that
    # miss the budget on more than half of the frames are left out of that budget's comparison
    common: dict[str, dict] = {}
    for b in map(str, budgets):
        everything = {c: {k: e["results"][c][b] for k, e in frames.items()} for c in args.codecs}
        if use_jxl:
            everything["jpegxl-cli"] = {k: e["reference"]["jpegxl-cli"][b] for k, e in frames.items()}
        fits = {c: sum(r["psnr"] is not None for r in v.values()) for c, v in everything.items()}
        cs = [c for c in everything if 2 * fits[c] >= len(frames)]
        keys = [k for k in frames if all(everything[c][k]["psnr"] is not None for c in cs)]
        common[b] = {"frames": len(keys)}
        for codec in everything:
            common[b][codec] = (
                round(float(np.mean([everything[codec][k]["psnr"] for k in keys])), 3)
                if keys and codec in cs else None
            )
    winner = max(summary, key=lambda c: summary[c]["wins"])
    out = {
        "budget_unit": budget_kind,
        "budgets": budgets,
        "size": args.size,
        "pyav": av.__version__,
        "jpegxl": dict(jxl_info, measured=use_jxl),
        "frames": frames,
        "summary": summary,
        "mean_psnr_where_all_fit": common,
        "winner": winner,
        "default_in_code": default,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
