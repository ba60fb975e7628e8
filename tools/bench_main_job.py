"""The README main job before and after a change, side by side on this machine (alternating runs).

    python -m tools.bench_main_job --before REF [--repeats 3] [--threads 2,1] [--out benchmarks/main_job_2core.json]
                                   [--plot FILE.png] [-- MAIN_JOB_ARGS...]

"before" is ``python -m tools.main_job`` run from a temporary git worktree of REF (a commit of this repository),
"after" the same command from this checkout. For each thread count, the two alternate ``--repeats`` times, each
in a fresh process with OMP_NUM_THREADS (torch's thread count) set, so that a load that comes and goes on a
shared machine falls on both alike. Each run records main_job's figures (encode/decode wall and CPU seconds,
bytes, PSNR, whether the decoder reproduced the encoder) plus the process' wall and CPU seconds (user + sys of
the child and its ffmpeg) and the 1-minute load average before and after. The summary gives per variant and
thread count the median of each time and the after/before ratios (and of each stage with ``-- --stages``, which
both checkouts' main_job must know). Arguments after ``--`` go to main_job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES = ("wall_seconds", "cpu_seconds", "encode_seconds", "decode_seconds", "encode_cpu_seconds", "decode_cpu_seconds")


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run_once(checkout: Path, threads: int, job_args: list[str]) -> dict:
    """One main job in a child process: main_job's JSON plus wall, CPU (children's rusage) and load average."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tools.main_job", *job_args], cwd=checkout, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0, 2):  # 2: ran, but the decoder did not match (recorded, not fatal)
        raise SystemExit(f"bench_main_job: main_job failed in {checkout}: {p.stderr.strip().splitlines()[-1:]}")
    result = json.loads(p.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**result, "threads": threads, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def summarise(runs: list[dict]) -> list[dict]:
    """Median of every time per (threads, variant), and after/before ratios of the medians."""
    rows = []
    for threads in dict.fromkeys(r["threads"] for r in runs):
        med = {}
        for variant in ("before", "after"):
            sel = [r for r in runs if r["threads"] == threads and r["variant"] == variant]
            med[variant] = {k: round(statistics.median(r[k] for r in sel if r.get(k) is not None), 2)
                            for k in TIMES if any(r.get(k) is not None for r in sel)}
            rows.append({"threads": threads, "variant": variant, "runs": len(sel), **med[variant],
                         "load_median": round(statistics.median(r["load_before"] for r in sel), 2),
                         "decoder_matches_encoder": all(r["decoder_matches_encoder"] for r in sel),
                         **({"stages": median_stages(sel)} if all(r.get("stages") for r in sel) else {})})
        rows.append({"threads": threads, "variant": "after/before",
                     **{k: round(med["after"][k] / med["before"][k], 3) for k in med["after"] if med["before"].get(k)}})
    return rows


def median_stages(runs: list[dict]) -> dict:
    """main_job --stages tables of several runs -> {side: {stage: [median wall s, median CPU s]}}."""
    out = {}
    for side in ("encode", "decode"):
        names = dict.fromkeys(k for r in runs for k in r["stages"][side])
        out[side] = {k: [round(statistics.median(r["stages"][side].get(k, [0, 0])[i] for r in runs), 2) for i in (0, 1)]
                     for k in names}
    return out


def plot(result: dict, path: str) -> None:
    """Bars of the median encode and decode seconds (wall and CPU) per variant and thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["summary"] if r["variant"] != "after/before"]
    keys = [k for k in ("encode_seconds", "decode_seconds", "encode_cpu_seconds", "decode_cpu_seconds") if k in rows[0]]
    fig, ax = plt.subplots(figsize=(8, 3.4), dpi=90)
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(keys))]
        bars = ax.bar(xs, [r.get(k, 0) for k in keys], width, label=f"{r['variant']}, {r['threads']} thread(s)")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(keys)), [k.replace("_seconds", "").replace("_", " ") for k in keys])
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"README main job, before ({result['before']['rev'][:8]}) and after, {os.cpu_count()} cores", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(prog="python -m tools.bench_main_job", description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git commit (or branch) whose main job is 'before'")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", default="2", help="comma list of torch thread counts (OMP_NUM_THREADS)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "main_job_2core.json"))
    p.add_argument("--plot", metavar="FILE.png")
    a = p.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")]
    rev = git("rev-parse", a.before)
    after = {"rev": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still removes its worktree (finally)
    with tempfile.TemporaryDirectory(prefix="gvc-before-") as tmp:
        before_dir = Path(tmp) / "before"
        git("worktree", "add", "--detach", str(before_dir), rev)
        try:
            runs = []
            for t in threads:
                for i in range(a.repeats):
                    for variant, checkout in (("before", before_dir), ("after", ROOT)):
                        r = {"variant": variant, "repeat": i, **run_once(checkout, t, job_args)}
                        runs.append(r)
                        print(json.dumps({k: r[k] for k in ("variant", "threads", "repeat", *TIMES, "load_before")
                                          if k in r}), file=sys.stderr, flush=True)
        finally:
            git("worktree", "remove", "--force", str(before_dir))
    result = {"what": "README main job (python -m tools.main_job " + " ".join(job_args) + "), alternating before/after",
              "machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "before": {"rev": rev}, "after": after, "repeats": a.repeats, "threads": threads,
              "summary": summarise(runs), "runs": runs}
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    if a.plot:
        plot(result, a.plot)
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
