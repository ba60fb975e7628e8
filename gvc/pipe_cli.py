"""`gvc-pipe`: GVC between ffmpeg pipes (the `gvc` command's encode and decode on stdin and stdout).

    ffmpeg -i in.mp4 -f yuv4mpegpipe - | gvc-pipe encode -o out.mkv [options]
    gvc-pipe decode out.mkv | ffmpeg -i - out.mp4
"""

from __future__ import annotations

import argparse
import sys

from ._version import __version__
from .cli import add_decode_options, add_encode_options, guarded, run_decode, run_encode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gvc-pipe", description="GVC encoder/decoder for ffmpeg pipes (y4m in, y4m out).")
    p.add_argument("--version", action="version", version=f"gvc-pipe {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", help="read y4m on stdin, write a GVC stream",
                       description="Read y4m (ffmpeg -f yuv4mpegpipe) on stdin and write a GVC stream.")
    e.add_argument("-o", "--output", required=True, help="output .mkv or .gvc, or '-' (elementary stream on stdout)")
    add_encode_options(e)
    d = sub.add_parser("decode", help="decode a GVC stream to y4m on stdout",
                       description="Decode a GVC stream and write y4m on stdout (pipe it into ffmpeg -i -).")
    d.add_argument("input", help="a .mkv or .gvc stream, or '-' for an elementary stream on stdin")
    add_decode_options(d)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "encode":
        return guarded(lambda: run_encode(a, "-"))
    return guarded(lambda: run_decode(a, a.input, "-"))


if __name__ == "__main__":
    sys.exit(main())
