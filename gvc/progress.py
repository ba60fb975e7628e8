"""The progress bar of encode and decode: one GOP-level bar of frames on stderr, with the total when known, the
frame rate and the ETA; the postfix shows the sampler step inside the GOP in flight. Shown when stderr is a
terminal or when forced (``--progress``); ``-q`` silences it."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None = None, desc: str = "", quiet: bool = False, force: bool = False):
        self._bar = None
        self._steps = 0
        self._interval = 0.5 if sys.stderr.isatty() else 5.0  # a log file gets a line every few seconds
        self._shown = 0.0
        if not quiet and (force or sys.stderr.isatty()):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True,
                             mininterval=self._interval)

    def step(self, n: int = 1) -> None:
        """A sampler step of the GOP in flight."""
        if self._bar is not None:
            self._steps += n
            self._bar.set_postfix_str(f"GOP step {self._steps}", refresh=False)
            if time.monotonic() - self._shown >= self._interval:
                self._shown = time.monotonic()
                self._bar.refresh()

    def gop(self, record) -> None:
        """A finished GOP (a gvc.pipeline.GopRecord): its frames advance the bar."""
        if self._bar is not None:
            self._steps = 0
            self._bar.set_postfix_str(f"GOP {record.gop}", refresh=False)
            self._bar.update(record.frames)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
