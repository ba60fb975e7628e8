"""Progress bars on stderr, silent when stderr is not a terminal or when asked to be quiet."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, total=None, desc="", unit="it", quiet=False):
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
