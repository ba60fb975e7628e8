"""Which project modules a frame passes: the distinct gvc/container/ffmpeg_bridge modules (and functions) that run
during one in-process `gvc encode` and one `gvc decode` of 8 frames of a small clip per mode, analytic prior,
tests' FAST settings. Method: sys.setprofile 'call' events; a call counts for the module named by the called
frame's __name__; import-time module code is excluded and one untraced encode+decode runs first (lazy imports).

    python -m tools.module_trace [--clip PATH]      # JSON to stdout; run with PYTHONPATH=. to trace this tree
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from tools import CLIPS_DIR

PACKAGES = ("gvc", "container", "ffmpeg_bridge")
DEFAULT_CLIP = CLIPS_DIR / "carphone_176x144.mp4"
FAST = ["--quality", "2", "--gop-length", "5", "--steps", "4", "--ode-tail", "1", "--prior", "analytic", "-q"]


def traced(run) -> tuple[set[str], set[tuple[str, str]]]:
    """(modules, (module, function) pairs) whose functions ran during run(); run() must return 0."""
    modules, functions = set(), set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name != "<module>":
            name = frame.f_globals.get("__name__", "")
            if name.split(".")[0] in PACKAGES:
                modules.add(name)
                functions.add((name, frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        status = run()
    finally:
        sys.setprofile(None)
    if status != 0:
        raise SystemExit(f"module_trace: the traced command failed with status {status}")
    return modules, functions


def main(argv=None) -> int:
    from ffmpeg_bridge.ffmpeg import run_ffmpeg
    from gvc import cli

    p = argparse.ArgumentParser(prog="python -m tools.module_trace", description=__doc__.splitlines()[0])
    p.add_argument("--clip", default=str(DEFAULT_CLIP))
    a = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="gvc-trace-")
    y4m, mkv, out = (os.path.join(work, n) for n in ("in.y4m", "a.mkv", "d.y4m"))
    run_ffmpeg(["-y", "-i", a.clip, "-frames:v", "8", "-f", "yuv4mpegpipe", y4m])
    cli.main(["encode", y4m, "-o", mkv] + FAST)  # warm-up: lazy imports stay out of the trace
    cli.main(["decode", mkv, "-o", out, "-q"])
    result = {"gvc": cli.__file__}
    for mode in ("t2v", "i2v", "flf2v"):
        enc, enc_f = traced(lambda: cli.main(["encode", y4m, "-o", mkv, "--mode", mode] + FAST))
        dec, dec_f = traced(lambda: cli.main(["decode", mkv, "-o", out, "-q"]))
        result[mode] = {"encode_modules": len(enc), "decode_modules": len(dec), "encode_functions": len(enc_f),
                        "decode_functions": len(dec_f), "encode": sorted(enc), "decode": sorted(dec)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
