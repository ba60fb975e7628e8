"""Benchmark the portable codebook: encoder search, decoder regeneration, and the reference-style loop.

    python -m tools.bench_codebook [--device cpu|cuda] [--K 16384 --M 64 --dim 230400] [--quick]

Prints one JSON object.  Times are per step-frame (one codebook of K atoms of dimension dim).
  search        CodebookSearch.topm over all K atoms (what the encoder pays per step-frame)
  regeneration  combine() of the M chosen atoms (what the decoder pays per step-frame)
  naive         one torch.randn(dim, generator=g) per atom plus a dot product, as the reference does; run on
                a subset of K atoms and extrapolated to K (see "naive.extrapolated_from_atoms")
  index_coding  pack/unpack of 153 index sets (one 33-frame GOP) with the combinatorial coder
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from gvc import codebook as cb
from gvc.entropy.combinatorial import combination_bits, pack_index_sets, unpack_index_sets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timeit(fn, device, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name


def _rate(K_atoms: int, dim: int, seconds: float) -> dict:
    return {
        "seconds": seconds,
        "atoms_per_s": K_atoms / seconds,
        "normals_per_s": K_atoms * dim / seconds,
    }


@dataclass
class Settings:
    """One benchmark run (the command line's options; tools.bench builds one directly)."""

    device: str = "cpu"
    K: int = 16384
    M: int = 64
    dim: int = 230400
    quick: bool = False  # small dim and K: runs in seconds on a CPU
    repeats: int | None = None
    naive_atoms: int | None = None
    tile_bytes: int | None = None
    threads: int | None = None
    no_compile: bool = False
    seed: int = 1234


def parse_args(argv=None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=Settings.device)
    p.add_argument("--K", type=int, default=Settings.K)
    p.add_argument("--M", type=int, default=Settings.M)
    p.add_argument("--dim", type=int, default=Settings.dim)
    p.add_argument("--quick", action="store_true", help="small dim and K: runs in seconds on a CPU")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, 2 for --quick)")
    p.add_argument("--naive-atoms", type=int, default=None, help="atoms run by the naive loop (default K/16)")
    p.add_argument("--tile-bytes", type=int, default=None, help="CodebookSearch tile_bytes (default: its own)")
    p.add_argument("--threads", type=int, default=None, help="CPU worker threads of the numpy path")
    p.add_argument("--no-compile", action="store_true", help="torch path: do not torch.compile the generator")
    p.add_argument("--seed", type=int, default=Settings.seed)
    return Settings(**vars(p.parse_args(argv)))


def measure(a: Settings) -> dict:
    """Run the benchmark `a` describes; returns the result (see the module doc)."""
    if a.quick:
        a.dim = min(a.dim, 4096)
        a.K = min(a.K, 1024)
    repeats = a.repeats or (2 if a.quick else 3)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but not available")
    K, M, D = a.K, min(a.M, a.K), a.dim
    step, frame = 3, 4
    g = torch.Generator().manual_seed(a.seed)
    r = torch.randn(D, generator=g).to(device)

    kw = {} if a.tile_bytes is None else {"tile_bytes": a.tile_bytes}
    if a.no_compile:
        kw["compile"] = False
    search = cb.CodebookSearch(K, D, device=device, threads=a.threads, **kw)
    cb.normal_table(device)

    # encoder: search over K
    _sync(device)
    t0 = time.perf_counter()
    idx, signs = search.topm(r, a.seed, step, frame, M)  # warm-up (tables, pools, kernels, compilation)
    _sync(device)
    t_first = time.perf_counter() - t0
    t_search = _timeit(lambda: search.topm(r, a.seed, step, frame, M), device, repeats)
    # decoder: regenerate the M chosen atoms and combine
    cb.combine(a.seed, step, frame, idx, signs, D, device)
    t_regen = _timeit(lambda: cb.combine(a.seed, step, frame, idx, signs, D, device), device, repeats)

    # naive reference-style loop on a subset, extrapolated
    n_naive = max(1, min(K, a.naive_atoms if a.naive_atoms is not None else max(8, K // 16)))
    gen = torch.Generator(device=device).manual_seed(a.seed)
    ipn = torch.empty(n_naive, device=device)

    def naive():
        for k in range(n_naive):
            atom = torch.randn(D, generator=gen, device=device)
            ipn[k] = atom @ r
        torch.topk(ipn.abs(), min(M, n_naive))

    naive()
    t_naive = _timeit(naive, device, repeats)
    naive_s = min(t_naive) * K / n_naive

    # index coding of one 33-frame GOP (17 SDE steps x 9 latent frames)
    rng = random.Random(a.seed)
    Ms = [M] * 153
    sets = [(sorted(rng.sample(range(K), M)), [rng.random() < 0.5 for _ in range(M)]) for _ in Ms]
    t0 = time.perf_counter()
    payload = pack_index_sets(sets, K, Ms)
    t1 = time.perf_counter()
    unpack_index_sets(payload, K, Ms)
    t2 = time.perf_counter()

    s_search, s_regen = min(t_search), min(t_regen)
    res = {
        "device": str(device),
        "device_name": _device_name(device),
        "cpu_threads": search.threads if search.numpy else None,
        "backend": "numpy" if search.numpy else "torch",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "generator": cb.GENERATOR_VERSION,
        "K": K, "M": M, "dim": D,
        "quick": a.quick,
        "repeats": repeats,
        "timing": "best of repeats after one warm-up call; seconds per step-frame",
        "search": {**_rate(K, D, s_search), "all_seconds": t_search, "first_call_seconds": t_first,
                   "tile_bytes": search.tile_bytes, "compiled": bool(search.compile)},
        "regeneration": {**_rate(M, D, s_regen), "all_seconds": t_regen},
        "naive": {**_rate(K, D, naive_s), "extrapolated_from_atoms": n_naive,
                  "measured_seconds": t_naive,
                  "note": f"one torch.randn(dim) per atom + dot; timed on {n_naive} atoms, scaled to K={K}"},
        "search_speedup_vs_naive": naive_s / s_search,
        "gop_33_frames_seconds": {"search": 153 * s_search, "regeneration": 153 * s_regen},
        "index_coding": {
            "sets": len(Ms),
            "bits_per_set": combination_bits(K, M) + M,
            "bits_per_set_plain": M * max(1, (K - 1).bit_length()) + M,
            "bytes": len(payload),
            "pack_seconds": t1 - t0,
            "unpack_seconds": t2 - t1,
        },
    }
    if device.type == "cpu":
        res["cpu_count"] = os.cpu_count()
    return res


def main(argv=None) -> int:
    try:
        res = measure(parse_args(argv))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
