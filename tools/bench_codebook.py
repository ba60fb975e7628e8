"""Benchmark the portable codebook: encoder search, decoder regeneration, and the reference-style loop.

    python -m tools.bench_codebook [--device cpu|cuda|cuda,cpu] [--K 16384 --M 64 --dim 230400] [--quick]
                                   [--json benchmarks/codebook_X.json --plot benchmarks/codebook_X.png]

Prints one JSON object (with several devices: {"runs": [one per device]}).  Times are per step-frame (one
codebook of K atoms of dimension dim).
  search        CodebookSearch.topm over all K atoms with its defaults (what the encoder pays per step-frame)
  methods       the same search by every path side by side, each with atoms/s, the speed-up over the
                reference loop, the ratio to the bulk-RNG floor and the peak device memory it added:
                reference_loop (one torch.randn(dim) per atom + dot, extrapolated), tiled_torch (generator in
                tiles, torch.compile'd on CUDA, + matmul), tiled_numpy (CPU), fused (Triton kernel, CUDA),
                structured (the "hadamard" family: one fast Walsh-Hadamard transform per scramble),
                bulk_rng (torch.randn filling K*dim normals in 1 GiB pieces: the generator's own floor)
  regeneration  combine() of the M chosen atoms (what the decoder pays per step-frame)
  naive         one torch.randn(dim, generator=g) per atom plus a dot product, as the reference does; run on
                a subset of K atoms and extrapolated to K (see "naive.extrapolated_from_atoms")
  index_coding  pack/unpack of 153 index sets (one 33-frame GOP) with the combinatorial coder
"""

from __future__ import annotations

import argparse
import dataclasses
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
from tools import emit_json



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
    json: str | None = None  # also write the JSON here
    plot: str | None = None  # bar chart of atoms/s per method and device
    sweep: bool = False  # fused kernel: time a few tile shapes


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
    p.add_argument("--json", metavar="FILE", help="also write the JSON here")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of atoms/s per method and device")
    p.add_argument("--sweep", action="store_true", help="fused kernel: time a few tile shapes (CUDA)")
    return Settings(**vars(p.parse_args(argv)))


def _peak(device: torch.device, fn) -> tuple[float, int | None]:
    """(seconds of one call, peak device bytes it allocated beyond what was held before; None on CPU)."""
    if device.type != "cuda":
        _sync(device)
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t, None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize(device)
    return time.perf_counter() - t, torch.cuda.max_memory_allocated(device) - base


def _bulk_rng_seconds(K: int, D: int, device: torch.device, repeats: int) -> float:
    """torch.randn filling K*D normals, 1 GiB (or 64 MiB on CPU) at a time, into one reused buffer."""
    n = (1 << 28) if device.type == "cuda" else (1 << 24)
    n = min(n, K * D)
    buf = torch.empty(n, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.randn(n, out=buf, generator=gen)
    best = min(_timeit(lambda: torch.randn(n, out=buf, generator=gen), device, repeats))
    return best * K * D / n


def _methods(a, device, K, M, D, r, naive_s, repeats) -> dict:
    """Every search path on ``device`` side by side (see the module doc)."""
    out = {}
    floor = _bulk_rng_seconds(K, D, device, repeats)
    out["bulk_rng"] = {"seconds": floor}
    paths = {}
    if device.type == "cuda":
        paths["tiled_torch"] = dict(backend="torch", fused=False, compile=not a.no_compile)
        from gvc.kernels import codebook_triton as kernel

        if kernel.available(device):
            paths["fused"] = dict(backend="torch", fused=True)
    else:
        paths["tiled_numpy"] = dict(backend="numpy", threads=a.threads)
        if D * K <= (1 << 28):  # the torch path on the CPU is slow: only at small sizes
            paths["tiled_torch"] = dict(backend="torch", fused=False, compile=False)
    paths["structured"] = dict(family="hadamard")
    for name, kw in paths.items():
        search = cb.CodebookSearch(K, D, device=device, **kw)
        try:
            search.topm(r, a.seed, 3, 4, M)  # warm-up: compilation, tables
        except Exception as e:  # a path that cannot run here is reported, not fatal
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            continue
        if name == "fused" and not search.fused:
            out[name] = {"error": "fell back to the torch path (see warnings)"}
            continue
        s, mem = _peak(device, lambda: search.topm(r, a.seed, 3, 4, M))
        t = min([s] + _timeit(lambda: search.topm(r, a.seed, 3, 4, M), device, repeats))
        out[name] = {"seconds": t, "peak_memory_bytes": mem}
    out["reference_loop"] = {"seconds": naive_s, "extrapolated": True}
    for name, v in out.items():
        if "seconds" in v:
            v.update(_rate(K, D, v["seconds"]))
            v["speedup_vs_loop"] = naive_s / v["seconds"]
            v["ratio_to_bulk_rng"] = v["seconds"] / floor
    if a.sweep and "fused" in out and "error" not in out["fused"]:
        out["fused"]["sweep"] = _sweep(device, K, D, r, repeats)
    return out


def _sweep(device, K, D, r, repeats) -> list[dict]:
    from gvc.kernels import codebook_triton as kernel

    key = cb.codebook_key(1, 2, 3)
    saved = (kernel.BLOCK_K, kernel.BLOCK_J)
    res = []
    try:
        for bk, bj in ((32, 64), (32, 128), (16, 64), (32, 32), (64, 32), (16, 128), (64, 64)):
            kernel.BLOCK_K, kernel.BLOCK_J = bk, bj
            try:
                kernel.inner_products(key, K, D, r, device)
                t = min(_timeit(lambda: kernel.inner_products(key, K, D, r, device), device, repeats))
                res.append({"block_k": bk, "block_j": bj, "seconds": t, "atoms_per_s": K / t})
            except Exception as e:
                res.append({"block_k": bk, "block_j": bj, "error": str(e).splitlines()[0][:200]})
    finally:
        kernel.BLOCK_K, kernel.BLOCK_J = saved
    return res


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
    methods = _methods(a, device, K, M, D, r, naive_s, repeats)
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
                   "tile_bytes": search.tile_bytes, "compiled": bool(search.compile),
                   "fused": bool(getattr(search, "fused", False))},
        "methods": methods,
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


METHOD_ORDER = ("reference_loop", "tiled_torch", "tiled_numpy", "fused", "structured", "bulk_rng")


def plot(runs: list[dict], path: str) -> None:
    """Bar chart: atoms/s of each method (log scale), one group per device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        names = [m for m in METHOD_ORDER if "atoms_per_s" in run["methods"].get(m, {})]
        xs = [METHOD_ORDER.index(m) + i * width for m in names]
        ax.bar(xs, [run["methods"][m]["atoms_per_s"] for m in names], width,
               label=f"{run['device']} ({run['device_name'][:40]})")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(METHOD_ORDER))], METHOD_ORDER, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("atoms/s (higher is better)")
    r0 = runs[0]
    ax.set_title(f"codebook search, K={r0['K']}, D={r0['dim']} (bulk_rng: torch.randn of K·D normals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    a = parse_args(argv)
    runs = []
    try:
        for dev in a.device.split(","):
            b = dataclasses.replace(a, device=dev.strip())
            runs.append(measure(b))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    res = runs[0] if len(runs) == 1 else {"runs": runs}
    emit_json(res, a.json)
    if a.plot:
        plot(runs, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
