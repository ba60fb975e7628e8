"""Measure GVC's levers (atoms per step M, I2V residual step, anchor quality) on real clips: the data behind
the quality ladder of gvc/ladder.py.

    python -m tools.ladder --clips carphone_176x144.mp4,bikes_640x272.mp4,tree_320x240.mp4 --size 176x144
                           --frames 17 --modes i2v,flf2v,t2v --prior default --m 1,2,4,8,16,32
                           --residual off,1.0,0.5,0.35 --anchor 15,30,50 [--sweep one|grid] [--out FILE.json]
                           [--ladder]

Sources are prepared as in tools.rd (same crop/scale rule) and must fit one GOP (at most 33 frames). Every
point is one real encode with explicit levers (the ladder is bypassed), the prior loaded once; the encoder's
reconstruction is what the decoder outputs bit for bit, so it is scored directly: bytes of the elementary stream (sequence header included), PSNR-RGB and MS-SSIM against the
source. ``--sweep one`` varies one lever at a time around the first value of each list (M x residual x anchor
points otherwise); residual values only apply to I2V, anchor values not to T2V. ``--ladder`` instead encodes
each mode at the qualities given by ``--qualities`` with the ladder's levers. Prints one JSON line per point
and writes them all to ``--out`` (default: none).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def lever_points(mode: str, a) -> list[dict]:
    """The (M, residual step, anchor quality) points to measure for one mode."""
    rs = a.residual if mode == "i2v" else [None]
    aq = a.anchor if mode != "t2v" else [a.anchor[0]]
    if a.sweep == "grid":
        combos = itertools.product(a.m, rs, aq)
    else:
        base = (a.m[0], rs[0], aq[0])
        combos = [base] + [(m, base[1], base[2]) for m in a.m[1:]] + [(base[0], r, base[2]) for r in rs[1:]] + \
            [(base[0], base[1], q) for q in aq[1:]]
    return [{"m": m, "residual_step": r, "anchor_quality": q} for m, r, q in dict.fromkeys(combos)]


def encode_point(src, config, prior) -> dict:
    """One single-GOP encode (``prior``: a loaded FlowPrior, shared by all points) written as a .gvc stream;
    bytes, PSNR-RGB, MS-SSIM and the byte split."""
    from container.io import StreamWriter
    from gvc.codec import GopCodec
    from gvc.errors import ParameterError
    from tools import metrics

    reference = metrics.read_rgb(src.y4m)
    if len(reference) > config.gop_length:
        raise ParameterError(f"{src.clip}: {len(reference)} frames do not fit one GOP of {config.gop_length}")
    t0 = time.perf_counter()
    codec = GopCodec.for_encoding(prior, config, width=src.width, height=src.height,
                                  fps=Fraction(src.fps).limit_denominator(1001), frame_count=len(reference))
    res = codec.encode(0, reference)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="gvc-ladder-") as tmp:
        stream = Path(tmp) / "stream.gvc"
        with StreamWriter(str(stream), codec.header, fmt="gvc") as writer:
            writer.write(res.unit, 0, len(res.frames))
        nbytes = stream.stat().st_size
    unit = res.unit
    return {"bytes": nbytes, "bpp": 8 * nbytes / (src.width * src.height * src.frames),
            "psnr-rgb": metrics.mean_psnr_rgb(reference, res.frames),
            "ms-ssim": metrics.mean_ms_ssim(reference, res.frames), "index_bytes": len(unit.indices),
            "anchor_bytes": sum(len(x.data) for x in unit.anchors), "residual_bytes": len(unit.residual or b""),
            "encode_seconds": round(seconds, 2)}


def parse_args(argv):
    from tools.rd import CLIPS_DIR

    p = argparse.ArgumentParser(prog="python -m tools.ladder", description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="carphone_176x144.mp4,bikes_640x272.mp4,tree_320x240.mp4")
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--size", default="176x144", help="native | WxH | upto:WxH (as tools.rd)")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--modes", default="i2v,flf2v,t2v")
    p.add_argument("--prior", default="default")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--m", default="4,1,2,8,16,32", help="atoms per step (first = the base of --sweep one)")
    p.add_argument("--residual", default="0.5,off,1.0,0.35", help="I2V residual steps, 'off' = none")
    p.add_argument("--anchor", default="30,15,50", help="anchor qualities 0..100")
    p.add_argument("--sweep", choices=("one", "grid"), default="one")
    p.add_argument("--ladder", action="store_true", help="encode with the ladder's levers at --qualities instead")
    p.add_argument("--qualities", default="1,2,4,8,16,32,64")
    p.add_argument("--out", help="JSON file for every point")
    a = p.parse_args(argv)
    a.clips, a.modes = a.clips.split(","), a.modes.split(",")
    a.m = [int(v) for v in a.m.split(",")]
    a.residual = [None if v == "off" else float(v) for v in a.residual.split(",")]
    a.anchor = [float(v) for v in a.anchor.split(",")]
    a.qualities = [int(v) for v in a.qualities.split(",")]
    return a


def main(argv=None) -> int:
    from gvc.config import CodecConfig
    from gvc.priors import load_prior
    from tools.rd import prepare_source, resolve_clip

    a = parse_args(argv)
    prior = load_prior(a.prior)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gvc-ladder-src-") as tmp:
        sources = [prepare_source(resolve_clip(c, Path(a.clips_dir)), a.frames, a.size, Path(tmp)) for c in a.clips]
        for src, mode in itertools.product(sources, a.modes):
            if a.ladder:
                configs = [({"quality": q}, CodecConfig(mode=mode, quality=q, steps=a.steps)) for q in a.qualities]
            else:
                configs = [(lv, CodecConfig(mode=mode, quality=lv["m"], steps=a.steps,
                                            residual_step=lv["residual_step"], anchor_quality=lv["anchor_quality"]))
                           for lv in lever_points(mode, a)]
            for levers, config in configs:
                row = {"clip": src.clip, "size": src.size, "frames": src.frames, "mode": mode, "prior": a.prior,
                       "steps": a.steps, **levers, **encode_point(src, config.validate(), prior)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if a.out:
                    Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
