"""Compare the anchor image codecs at equal bytes on the real clips (python -m tools.anchor_codecs).

For the first frame of each clip (the first non-blank one if it is blank) and its middle frame, every lossy
anchor codec is fitted to byte budgets of 0.1, 0.25, 0.5 and 1.0 bits per pixel with ``fit_anchor(max_bytes=)``
(the largest quality whose payload fits, so every codec gets at most the same bytes) and the RGB PSNR of the
decoded picture is reported, with the time of one encode at the chosen quality and of one decode.  A budget a
codec cannot reach even at its lowest quality is reported as null.  PNG (lossless) sizes are listed for scale.

The summary ranks codecs by wins (best PSNR among the codecs on a frame and budget; missing a budget counts
as a loss) and prints the mean PSNR gap to the best codec where a codec fits.  JSON goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import numpy as np

from gvc.anchors import ANCHOR_CODECS, DEFAULT_ANCHOR_CODEC, decode_anchor, encode_anchor, fit_anchor
from gvc.errors import ParameterError

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "clips"
BPP_TARGETS = (0.1, 0.25, 0.5, 1.0)
LOSSY = ("av1-intra", "hevc-intra", "webp", "jpeg")


def psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def test_frames(path: Path) -> list[tuple[str, np.ndarray]]:
    """(label, rgb) for the first non-blank frame and the middle frame of a clip."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    first = next((i for i, f in enumerate(frames) if f.std() > 2.0), 0)
    mid = len(frames) // 2
    return [(f"{path.stem}@{first}", frames[first]), (f"{path.stem}@{mid}", frames[mid])]


def measure(img: np.ndarray, codec: str, bpp: float) -> dict:
    h, w, _ = img.shape
    budget = int(bpp * w * h / 8)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", help="clip file names (default: all in shared/clips)")
    ap.add_argument("--codecs", nargs="*", default=list(LOSSY), choices=list(LOSSY))
    ap.add_argument("--bpp", nargs="*", type=float, default=list(BPP_TARGETS))
    ap.add_argument("--first-only", action="store_true", help="only the first frame of each clip")
    args = ap.parse_args(argv)
    if not CLIPS.is_dir():
        print(f"no clips at {CLIPS}", file=sys.stderr)
        return 1
    paths = sorted(CLIPS.glob("*.mp4"))
    if args.clips:
        paths = [p for p in paths if p.name in args.clips]

    frames: dict[str, dict] = {}
    for path in paths:
        for label, img in test_frames(path)[: 1 if args.first_only else 2]:
            h, w, _ = img.shape
            _, png = encode_anchor(img, codec="png")
            entry = {"size": [w, h], "png_bytes": len(png), "results": {}}
            for codec in args.codecs:
                entry["results"][codec] = {str(b): measure(img, codec, b) for b in args.bpp}
            frames[label] = entry
            print(f"{label}: " + ", ".join(
                f"{c} " + "/".join("-" if r["psnr"] is None else f"{r['psnr']:.2f}" for r in res.values())
                for c, res in entry["results"].items()), file=sys.stderr)

    default = ANCHOR_CODECS[DEFAULT_ANCHOR_CODEC]
    summary: dict[str, dict] = {}
    for codec in args.codecs:
        s = {"wins": 0, "per_bpp": {}}
        for b in map(str, args.bpp):
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
            s["per_bpp"][b] = {
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
    for b in map(str, args.bpp):
        fits = {c: sum(e["results"][c][b]["psnr"] is not None for e in frames.values()) for c in args.codecs}
        cs = [c for c in args.codecs if 2 * fits[c] >= len(frames)]
        keys = [k for k, e in frames.items() if all(e["results"][c][b]["psnr"] is not None for c in cs)]
        common[b] = {"frames": len(keys)}
        for codec in args.codecs:
            common[b][codec] = (
                round(float(np.mean([frames[k]["results"][codec][b]["psnr"] for k in keys])), 3)
                if keys and codec in cs else None
            )
    winner = max(summary, key=lambda c: summary[c]["wins"])
    out = {
        "bpp_targets": args.bpp,
        "frames": frames,
        "summary": summary,
        "mean_psnr_where_all_fit": common,
        "winner": winner,
        "default_in_code": default,
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
