"""python -m gvc.capi build [-o DIR]: compile libgvc.so and copy gvc.h into DIR (default: the current one)."""

from __future__ import annotations

import argparse
import sys

from gvc.cli import guarded


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gvc.capi", description="libgvc, the GVC decoder as a C library.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile libgvc.so against this Python and gvc package, copy gvc.h beside it")
    b.add_argument("-o", "--output", default=".", metavar="DIR", help="output folder (default: the current one)")
    b.add_argument("-v", "--verbose", action="store_true", help="show the compiler's commands")
    sub.add_parser("header", help="print the path of gvc.h")
    a = p.parse_args(argv)
    if a.command == "header":
        from .build import HEADER
        print(HEADER)
        return 0

    def run():
        from .build import build
        print(build(a.output, verbose=a.verbose))

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
