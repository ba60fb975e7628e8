"""Seek benchmark: for each GVC file, the time of a full decode against a seek to the last GOP
(`gvc decode --start-frame <last GOP's first frame>`), the GOPs each samples, and the file's rate;
run it on the same clip encoded with several `--refresh` values to see what keyframes cost and buy.

    python -m tools.bench_seek a_r0.mkv a_r2.mkv ... [--prior analytic] [--json benchmarks/seek.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from gvc.config import DecodeConfig
from gvc.pipeline import decode_stream
from gvc.probe import probe
from gvc.seek import SeekRequest
from tools import emit_json



class _Discard:
    def write(self, frame):
        pass

    def close(self):
        pass


def timed_decode(path: str, prior: str | None, seek: SeekRequest | None) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    r = decode_stream(path, lambda h: _Discard(), DecodeConfig(prior=prior), seek=seek).as_dict()
    # CPU seconds as well as wall seconds: on a shared machine the wall clock measures the neighbours.
    return {"seconds": round(time.perf_counter() - t0, 3), "cpu_seconds": round(time.process_time() - c0, 3),
            "frames": r["frames"], "gops_decoded": r["sampled"], "problems": r["problems"]}


def measure(path: str, prior: str | None) -> dict:
    info = probe(path)
    last = info["gops"][-1]
    keys = [g["gop"] for g in info["gops"] if g["keyframe"]]
    refresh = keys[1] - keys[0] if info["header"]["mode"] == "i2v" and len(keys) > 1 else 0  # I2V: GOPs per keyframe
    full = timed_decode(path, prior, None)
    seek = timed_decode(path, prior, SeekRequest(start_frame=last["pts"]))
    return {"file": os.path.basename(path), "mode": info["header"]["mode"], "prior": info["header"]["prior_id"],
            "refresh": refresh, "bytes": info["format"]["file_bytes"], "kbps": info["format"]["bit_rate"] / 1000,
            "frames": info["format"]["frames"], "gops": len(info["gops"]), "keyframes": info["keyframes"],
            "anchor_bytes": sum(g["anchor_bytes"] for g in info["gops"]),
            "full_decode": full, "seek_last_gop": seek,
            "seek_cpu_fraction": round(seek["cpu_seconds"] / full["cpu_seconds"], 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_seek", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--prior", default=None, help="decode with this prior (default: the stream's)")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    a = p.parse_args(argv)
    timed_decode(a.files[0], a.prior, SeekRequest(start_frame=probe(a.files[0])["gops"][-1]["pts"]))  # warm-up:
    # loading and hashing the prior, first-call kernels; else the first measurement carries them
    rows = [measure(f, a.prior) for f in a.files]
    base = next((r for r in rows if r["refresh"] == 0), None)
    for r in rows:
        if base is not None:
            r["rate_cost_vs_refresh_0"] = round(r["bytes"] / base["bytes"] - 1, 4)
    out = {"machine": platform.machine(), "threads": torch.get_num_threads(), "device": "cpu", "results": rows}
    emit_json(out, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
