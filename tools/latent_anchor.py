"""Would a latent-space anchor beat the AV1-intra anchor at equal bytes? (issue 20, item 2)

    python -m tools.latent_anchor [--clips vtest_768x576.mp4,bikes_640x272.mp4] [--size 176x144]
                                  [--prior default] [--qualities 0,5,10,18,26,34,42,50]
                                  [--steps 2,1.4,1,0.7,0.5,0.35,0.25,0.18] [--out FILE.json]

The idea: the decoder needs the anchor's latent anyway, so code that latent with the residual coder
(gvc.entropy.residual, the I2V tail residual's) instead of the picture with AV1 intra, and show the
autoencoder's decode of it. Measured before building it: the first frame of each clip (prepared as in
tools.rd) is coded both ways, AV1 intra (gvc.anchors, the default anchor codec) over ``--qualities`` and its
latent (the prior's encoder mean) over residual ``--steps``; bytes are the payload alone (no framing on
either side), PSNR-RGB and MS-SSIM are against the source frame. The autoencoder's own reconstruction (an
exact latent) bounds every latent point: it is printed as the ceiling. One JSON row per point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def latent_points(prior, ref, steps, width: int, height: int, score) -> tuple[dict, list[dict]]:
    """The ceiling and one row per step: the first frame's latent quantised and coded, then decoded."""
    from gvc.codec import to_tensor, to_uint8
    from gvc.entropy.residual import decode_residual, encode_residual

    z = prior.encode(to_tensor([ref], prior.geometry.spatial_stride, "cpu"))  # [C, 1, h, w]
    decode = lambda latent: to_uint8(prior.decode(latent), height, width)[0]
    ceiling = {"codec": "autoencoder", "bytes": None, **score(decode(z))}
    rows = []
    for step in steps:
        data = encode_residual(z[:, 0], step)
        zq = z.clone()
        zq[:, 0] = decode_residual(data)
        rows.append({"codec": "latent", "step": step, "bytes": len(data), **score(decode(zq))})
    return ceiling, rows


def av1_points(ref, qualities, score) -> list[dict]:
    from gvc import anchors

    rows = []
    for q in qualities:
        cid, data = anchors.encode_anchor(ref, quality=q)
        rows.append({"codec": "av1-intra", "quality": q, "bytes": len(data), **score(anchors.decode_anchor(cid, data))})
    return rows


def main(argv=None) -> int:
    from gvc.priors import load_prior
    from tools import metrics
    from tools.rd import CLIPS_DIR, cpu_seconds, prepare_source, resolve_clip

    p = argparse.ArgumentParser(prog="python -m tools.latent_anchor", description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="vtest_768x576.mp4,bikes_640x272.mp4")
    p.add_argument("--clips-dir", default=str(CLIPS_DIR))
    p.add_argument("--size", default="176x144", help="native | WxH | upto:WxH (as tools.rd)")
    p.add_argument("--prior", default="default")
    p.add_argument("--qualities", default="0,5,10,18,26,34,42,50", help="AV1-intra anchor qualities 0..100")
    p.add_argument("--steps", default="2,1.4,1,0.7,0.5,0.35,0.25,0.18", help="latent quantiser steps")
    p.add_argument("--out", help="JSON file for every point (default: none)")
    a = p.parse_args(argv)
    t0, c0 = time.perf_counter(), cpu_seconds()
    prior = load_prior(a.prior)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gvc-latent-anchor-") as tmp:
        for name in a.clips.split(","):
            src = prepare_source(resolve_clip(name, Path(a.clips_dir)), 1, a.size, Path(tmp))
            ref = metrics.read_rgb(src.y4m)[0]

            def score(image):
                return {"psnr-rgb": metrics.mean_psnr_rgb([ref], [image]), "ms-ssim": metrics.mean_ms_ssim([ref], [image])}

            ceiling, latent = latent_points(prior, ref, [float(v) for v in a.steps.split(",")], src.width, src.height,
                                            score)
            for row in (ceiling, *av1_points(ref, [float(v) for v in a.qualities.split(",")], score), *latent):
                rows.append({"clip": src.clip, "size": src.size, "prior": prior.name, **row})
                print(json.dumps(rows[-1]), flush=True)
    summary = {"wall_seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(cpu_seconds() - c0, 1)}
    print(json.dumps(summary))
    if a.out:
        Path(a.out).write_text(json.dumps({"command": "python -m tools.latent_anchor " + " ".join(argv or sys.argv[1:]),
                                           **summary, "points": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
