"""Write docs/results.md from the benchmark JSON files (never edit that file by hand).

    python -m tools.report [--rd benchmarks/rd_quick.json ...] [--bench benchmarks/bench_cpu.json ...]
                           [--out docs/results.md]

Default inputs, when neither ``--rd`` nor ``--bench`` is given: every ``benchmarks/rd*.json`` (tools.rd),
``benchmarks/bench_*.json`` (tools.bench), ``benchmarks/wan_*.json`` (tools.bench_wan), the
``benchmarks/codebook_*.json`` runs with every search path side by side (tools.bench_codebook) and
``benchmarks/codebook_family_rd*.json`` (tools.family_rd, one per mode) and ``benchmarks/gop_batch_*.json``
(tools.bench_gop_batch); otherwise only the files given.
Each section gives the exact command that produced its JSON, the software it ran with (ffmpeg's
``-version`` line, Python, torch, PyAV, numpy, gvc), the tables, and links to the PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results.md"


def software_versions() -> dict:
    """Versions of what a benchmark runs on (stored in every JSON the tools write)."""
    import av
    import numpy as np
    import torch

    import gvc
    from ffmpeg_bridge.ffmpeg import run_ffmpeg

    try:
        ffmpeg = run_ffmpeg(["-version"]).stdout.decode("utf-8", "replace").splitlines()[0]
    except Exception as e:  # noqa: BLE001 - a report without ffmpeg still says why
        ffmpeg = f"unavailable ({e})"
    return {"ffmpeg": ffmpeg, "python": platform.python_version(), "torch": torch.__version__,
            "av": av.__version__, "numpy": np.__version__, "gvc": gvc.__version__,
            "platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- formatting --------------------------------------------------------------------------------------------

def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.{digits}g}"
    return str(v)


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return out + [""]


def software_section(sw: dict) -> list[str]:
    rows = [[k, f"`{sw[k]}`"] for k in ("ffmpeg", "python", "torch", "av", "numpy", "gvc", "platform", "cpu",
                                         "cpu_count", "cuda") if k in sw]
    return table(["software", "version"], rows)


def _rel(path: str | Path, out: Path) -> str:
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p
    return os.path.relpath(p, out.parent)


# -- rate-distortion ---------------------------------------------------------------------------------------

RD_COLUMNS = [("bytes", "bytes", 0), ("bpp", "bpp", 4), ("kbps", "kbps", 1), ("psnr-y", "PSNR-Y", 2),
              ("psnr-rgb", "PSNR-RGB", 2), ("ms-ssim", "MS-SSIM", 4), ("vmaf", "VMAF", 1), ("lpips", "LPIPS", 3),
              ("encode_seconds", "enc s", 2), ("encode_cpu_seconds", "enc CPU s", 2), ("decode_seconds", "dec s", 2),
              ("decode_cpu_seconds", "dec CPU s", 2)]


def rd_curve_table(codecs: dict) -> list[str]:
    present = [c for c in RD_COLUMNS if any(c[0] in v["results"] for v in codecs.values())]
    rows = []
    for name, c in codecs.items():
        r = c["results"]
        param = next(iter(r))
        for i in range(len(r["bpp"])):
            cells = [name, f"{param} {r[param][i]:g}"]
            for key, _, digits in present:
                v = r.get(key, [None] * len(r["bpp"]))[i]
                cells.append("–" if v is None else (f"{v:.{digits}f}" if digits else str(round(v))))
            rows.append(cells)
    return table(["codec", "point"] + [label for _, label, _ in present], rows)


def _bd_range(fig: dict | None, unit: str) -> str:
    """'lo–hi unit (d decades)', flagged when the figure rests on a narrow rate range."""
    if not fig:
        return "–"
    text = f"{fig['overlap'][0]:.4g}–{fig['overlap'][1]:.4g}{unit} ({fig['decades']:.2f} dec.)" if fig.get("overlap") else "–"
    return text + (" **narrow**" if fig.get("narrow") else "")


def bd_table(bd: dict) -> list[str]:
    """One row per codec and metric: BD-rate and BD-metric with the range each was fitted over."""
    rows = []
    for name, c in bd["codecs"].items():
        for m in sorted(c, key=RD_ORDER.index):
            f = c[m]
            unit = " dB" if m.startswith("psnr") else ""
            rows.append([name, m, f.get("bd-rate"), _bd_range(f.get("bd-rate-range"), unit), f.get("bd-metric"),
                         _bd_range(f.get("bd-metric-range"), " bpp")])
    return table(["codec", "metric", "BD-rate (%)", "over (metric)", "BD-metric", "over (rate)"], rows)


RD_ORDER = ["psnr-y", "psnr-rgb", "ms-ssim", "vmaf", "lpips"]


def rd_section(path: Path, data: dict, out: Path) -> list[str]:
    s = data.get("settings", {})
    commands = data.get("commands") or [data.get("command", "?")]
    lines = [f"## Rate–distortion: `{_rel(path, out)}`", "",
             "Command" + ("s, in order (each run skips the points already in the JSON):" if len(commands) > 1 else ":"),
             "", "```", *commands, "```", ""]
    cpu = f" ({data['sweep_cpu_seconds']} CPU s, load average {data.get('load_average')} at the end)" \
        if "sweep_cpu_seconds" in data else ""
    lines += [f"{len(data.get('points', []))} points, measured in {data.get('sweep_seconds', '?')} s in all{cpu}. "
              f"Frames per clip: {s.get('frames')}, size: `{s.get('size')}`, GVC priors: "
              f"{', '.join(f'`{k}` = `{v}`' for k, v in s.get('priors', {}).items()) or 'none'}, "
              f"GVC steps: {s.get('steps')}, device: {s.get('device')}. "
              "Rates are true bpp = bits/(W·H·frames) of the elementary stream and kbps at the clip's frame rate; "
              "PSNR-Y from ffmpeg's psnr filter, PSNR-RGB and MS-SSIM (RGB, 5 scales) from tools/metrics.py, "
              "VMAF from ffmpeg's libvmaf (vmaf_v0.6.1); all are means over frames.", ""]
    if not s.get("lpips"):
        lines += ["LPIPS: skipped (no local weights given; nothing is downloaded).", ""]
    lines += ["Software:", ""] + software_section(data.get("software", {}))
    for seq, codecs in data.get("curves", {}).items():
        info = data.get("sequences", {}).get(seq, {})
        lines += [f"### {seq}", "", f"Clip `{info.get('clip', '?')}`, {info.get('width')}x{info.get('height')}, "
                  f"{info.get('frames')} frames at {_fmt(info.get('fps'))} fps.", ""]
        lines += rd_curve_table(codecs)
        bd = data.get("bd", {}).get(seq)
        if bd and bd["codecs"]:
            lines += [f"BD against `{bd['anchor']}` (negative BD-rate = fewer bits at equal quality; "
                      "– = curves do not overlap; **narrow** = fitted over less than 0.2 of a decade of rate):",
                      ""] + bd_table(bd)
    if data.get("mean"):
        lines += ["### Mean over sequences", ""] + rd_curve_table(data["mean"])
        bd = data.get("bd", {}).get("mean")
        if bd and bd["codecs"]:
            lines += [f"Mean of the per-sequence BD values against `{bd['anchor']}`:", ""] + bd_table(bd)
    failed = [p for p in data.get("points", []) if "error" in p]
    if failed:
        lines += ["Failed points:", ""] + [f"- {p['clip']} {p['codec']} {p['param']}={p['value']}: {p['error']}"
                                           for p in failed] + [""]
    plots = data.get("plots", [])
    if plots:
        lines += ["Plots (log-scale rate axis):", ""] + [f"![{Path(p).stem}]({_rel(p, out)})" for p in plots] + [""]
    return lines


# -- speed -------------------------------------------------------------------------------------------------

def bench_section(path: Path, data: dict, out: Path) -> list[str]:
    lines = [f"## Speed: `{_rel(path, out)}`", "", "Command:", "", "```", data.get("command", "?"), "```", "",
             f"Clip `{data.get('clip')}`, {data.get('size')}, {data.get('frames')} frames, {data.get('steps')} steps; "
             "frames/s over the whole sequence after the prior is loaded; peak memory = the process' peak "
             "resident set during the run (CPU) or torch's peak allocated memory (CUDA).", ""]
    lines += ["Software:", ""] + software_section(data.get("software", {}))
    rows = [[r["device"], r["prior"], r["mode"], r.get("quality"), r["bytes"], r.get("bpp"), r["psnr"],
             r["encode_fps"], r["decode_fps"], r["peak_memory_mb"], r["decoder_matches_encoder"]]
            for r in data.get("runs", [])]
    lines += table(["device", "prior", "mode", "quality", "bytes", "bpp", "PSNR", "encode fps", "decode fps",
                    "peak MB", "bit-exact"], rows)
    cross = data.get("cross_device", [])
    if cross:
        lines += ["CUDA stream decoded on CPU:", ""]
        lines += table(["mode", "prior", "PSNR vs CUDA decode", "identical"],
                       [[c["mode"], c["prior"], c["cuda_stream_decoded_on_cpu_psnr_vs_cuda_decode"], c["identical"]]
                        for c in cross])
    books = data.get("codebook", [])
    if books:
        lines += ["Codebook search (tools.bench_codebook; per step-frame, best of repeats):", ""]
        lines += table(["device", "backend", "K", "M", "dim", "search s", "search atoms/s", "search normals/s",
                        "regeneration s", "speed-up vs naive"],
                       [[b["device"], b["backend"], b["K"], b["M"], b["dim"], b["search"]["seconds"],
                         b["search"]["atoms_per_s"], b["search"]["normals_per_s"], b["regeneration"]["seconds"],
                         b["search_speedup_vs_naive"]] for b in books])
    if data.get("plot"):
        lines += [f"![speed]({_rel(data['plot'], out)})", ""]
    return lines


WAN_STAGES = ("load_prior", "weights_sha256", "vae_encode", "condition (anchor VAE encode)", "transformer",
              "codebook_search", "atom_regeneration", "vae_decode", "other")


def wan_section(path: Path, data: dict, out: Path) -> list[str]:
    """tools.bench_wan: the CLI path on a Wan2.1-1.3B-sized prior, per mode and variant, with its stages."""
    t = data.get("targets", {})
    lines = [f"## Speed on a Wan-1.3B-sized prior: `{_rel(path, out)}`", "",
             f"`python -m tools.bench_wan --wan-config {data['wan_config']} --json {_rel(path, ROOT / 'x')}` on "
             f"{data['device_name']} (torch {data['torch']}, diffusers {data['diffusers']}), dtype `{data['dtype']}`, "
             f"{data['width']}x{data['height']}, {data['frames']} frames, {data['steps']} steps, M {data['quality']}. "
             f"{data.get('note', '').capitalize()}. Targets: encode ≤ {t.get('encode_seconds')} s, decode ≤ {t.get('decode_seconds')} s.", ""]
    if data.get("cold_hash_seconds"):
        lines += ["Cold weight hash (once per checkpoint, then cached): " + ", ".join(
            f"{k} {v:.2f} s" for k, v in data["cold_hash_seconds"].items()), ""]
    rows = []
    for r in data.get("runs", []):
        for label in ("encode", "decode"):
            e = r[label]
            rows.append([r["mode"], r.get("variant", "–"), label, e["seconds"],
                         *[e["stages"].get(k) for k in WAN_STAGES], e.get("decode_matches_encoder")])
    lines += table(["mode", "variant", "run", "total s", *WAN_STAGES, "bit-exact"], rows)
    return lines


def codebook_section(path: Path, data: dict, out: Path) -> list[str]:
    """tools.bench_codebook runs with every search path side by side (files with ``methods``)."""
    runs = [r for r in data.get("runs", [data]) if r.get("methods")]
    if not runs:
        return []
    lines = [f"## Codebook search paths side by side: `{_rel(path, out)}`", "",
             "`python -m tools.bench_codebook --device cuda,cpu` (one step-frame: K atoms of dimension dim; best of "
             "repeats after a warm-up; the reference loop extrapolated from a subset of atoms).", ""]
    rows = [[r["device"], r.get("device_name") or "", r.get("cpu_threads"), r["K"], r["dim"], name, m["seconds"],
             m["atoms_per_s"] if "atoms_per_s" in m else None, m.get("speedup_vs_loop"), m.get("ratio_to_bulk_rng"),
             m.get("peak_memory_bytes")]
            for r in runs for name, m in r["methods"].items()]
    return lines + table(["device", "name", "threads", "K", "dim", "path", "seconds", "atoms/s", "× loop",
                          "× bulk-RNG floor", "peak bytes"], rows)


def family_section(path: Path, data: dict, out: Path) -> list[str]:
    """tools.family_rd: the Hadamard codebook family against the Gaussian one at equal settings."""
    d = data["differences"]
    qualities = ",".join(str(q) for q in sorted({r["quality"] for r in data["rows"]}))
    lines = [f"## Codebook families at equal settings, {data['mode'].upper()}: `{_rel(path, out)}`", "",
             f"Prior `{data['prior']}`, mode {data['mode']}, {data['size']}, {data['frames']} frames "
             f"(`python -m tools.family_rd --mode {data['mode']} --qualities {qualities}`). Hadamard − gaussian: "
             f"PSNR mean {data['mean_psnr_difference']:+.4f} dB, worst {min(x['psnr_hadamard_minus_gaussian'] for x in d):+.4f} dB; "
             f"VMAF mean {data['mean_vmaf_difference']:+.3f}, worst {min(x['vmaf_hadamard_minus_gaussian'] for x in d):+.3f}; "
             f"bytes ratio {min(x['bytes_ratio'] for x in d):.4f}–{max(x['bytes_ratio'] for x in d):.4f} "
             "(issue 15's rule for the default: within 0.1 dB PSNR and 0.5 VMAF at equal bits).", ""]
    rows = [[r["clip"], r["quality"], r["family"], r["bytes"], r["bpp"], r["psnr"], r["vmaf"], r["encode_seconds"]]
            for r in data["rows"]]
    return lines + table(["clip", "quality", "family", "bytes", "bpp", "PSNR", "VMAF", "enc s"], rows)


def gop_batch_section(path: Path, data: dict, out: Path) -> list[str]:
    """tools.bench_gop_batch: two GOPs as one batch-2 forward against two batch-1 forwards."""
    lines = [f"## Batching GOPs: `{_rel(path, out)}`", "",
             f"`python -m tools.bench_gop_batch --wan-config {data['wan_config']}` on {data['device_name']} (torch "
             f"{data['torch']}, {data['dtype']}, kernels {', '.join(k for k, on in data['kernels'].items() if on) or 'none'}): "
             "one Wan transformer forward of two 9-latent-frame GOPs, as two batch-1 calls and as one batch-2 call. "
             "Bit-identical means each GOP's output is the same either way (seeking and gvc-dist decode batch 1).", ""]
    rows = [[r["size"], "×".join(map(str, r["latent"])), r["two_batch1_seconds"], r["one_batch2_seconds"], r["speedup"],
             "yes" if r["bit_identical"] else "no", r["max_abs_diff"]] for r in data["runs"]]
    lines += table(["size", "latent", "2 × batch 1 s", "batch 2 s", "speed-up", "bit-identical", "max abs diff"], rows)
    png = path.with_suffix(".png")
    return lines + ([f"![GOP batching]({_rel(png, out)})", ""] if png.exists() else [])


SPEED_SECTIONS = (("wan_*.json", wan_section), ("codebook_*.json", codebook_section),
                  ("codebook_family_rd*.json", family_section), ("gop_batch_*.json", gop_batch_section))


def write_report(out: Path = DEFAULT_OUT, rd_paths: list[Path] | None = None,
                 bench_paths: list[Path] | None = None) -> Path:
    everything = rd_paths is None and bench_paths is None
    rd_paths = sorted((ROOT / "benchmarks").glob("rd*.json")) if rd_paths is None else rd_paths
    bench_paths = sorted((ROOT / "benchmarks").glob("bench_*.json")) if bench_paths is None else bench_paths
    lines = ["# Results", "",
             "<!-- Generated by `python -m tools.report` (also `python -m tools.rd --report`) from the JSON files "
             "below. Do not edit by hand: rerun the commands and regenerate. -->", "",
             "Regenerate: run the commands shown in each section, then `python -m tools.report`.", ""]
    for p in rd_paths:
        lines += rd_section(Path(p), json.loads(Path(p).read_text()), out)
    for p in bench_paths:
        lines += bench_section(Path(p), json.loads(Path(p).read_text()), out)
    for pattern, section in SPEED_SECTIONS if everything else ():
        for p in sorted((ROOT / "benchmarks").glob(pattern)):
            if section is codebook_section and p.name.startswith("codebook_family_rd"):
                continue
            lines += section(p, json.loads(p.read_text()), out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    p.add_argument("--rd", nargs="*", type=Path, help="tools.rd JSON files (default benchmarks/rd*.json)")
    p.add_argument("--bench", nargs="*", type=Path, help="tools.bench JSON files (default benchmarks/bench_*.json)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    for f in (a.rd or []) + (a.bench or []):
        if not f.is_file():
            print(f"report: error: no such file: {f}", file=sys.stderr)
            return 1
    if a.rd is not None or a.bench is not None:  # given inputs only: no globbing beside them
        a.rd, a.bench = a.rd or [], a.bench or []
    print(write_report(a.out, a.rd, a.bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
