"""Frames [a, b) of a seekable video file, for workers that each code their own part of it (gvc-dist).

y4m files with fixed-size frames are opened at the first frame wanted; other containers are decoded
from the start (PyAV decodes every frame anyway; it is the frames' RGB that must equal a sequential
read's), which costs a far rank (N-1)/N of the file at decode speed.
"""

from __future__ import annotations

import io
import os

import numpy as np

from gvc.errors import InputError

from .video_io import VideoInfo, VideoReader


class _Y4MAt(io.RawIOBase):
    """A y4m file of `frames` fixed-size frames seen from frame `start` on: the header line, then the
    bytes from that frame."""

    def __init__(self, path: str, frames: int, start: int):
        self._f = open(path, "rb")
        header = self._f.readline()
        per = (os.path.getsize(path) - len(header)) // frames
        self._f.seek(len(header) + start * per)
        self._head = header

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        return self._f.readinto(b)

    def close(self) -> None:
        self._f.close()
        super().close()


class FrameRange:
    """A video file read forward in frame ranges; `info` as a VideoReader with `max_frames` has it."""

    def __init__(self, path: str, max_frames: int | None = None):
        self.path, self.max_frames = path, max_frames
        with VideoReader(path, max_frames=max_frames) as r:
            self.info: VideoInfo = r.info
        self._reader = None
        self._next = 0  # index of the frame the reader gives next
        self._kept: list[np.ndarray] = []  # frames [_next - len(_kept), _next)

    def _open_at(self, start: int) -> None:
        self.close()
        self._reader, self._next = VideoReader(self.path), 0
        with open(self.path, "rb") as f:
            y4m_frames = self._reader.info.frames if f.read(8) == b"YUV4MPEG" else None
        if start and y4m_frames:  # the y4m reader knows the count only when every frame has the same size
            self._reader.close()
            self._reader, self._next = VideoReader(io.BufferedReader(_Y4MAt(self.path, y4m_frames, start))), start
        self._it = iter(self._reader)

    def frames(self, a: int, b: int) -> list[np.ndarray]:
        if self._reader is None or a < self._next - len(self._kept):
            self._open_at(a)
            self._kept = []
        while self._next < b:
            f = next(self._it, None)
            if f is None:
                raise InputError(f"{self.path} ended at frame {self._next}, frame {b - 1} was expected")
            self._next += 1
            if self._next > a:
                self._kept.append(f)
        self._kept = self._kept[len(self._kept) - (self._next - a):]
        return self._kept[: b - a]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def count(self) -> int:
        """Frames the range can give: the container's count, else the packets demuxed (not decoded)."""
        if self.info.frames is not None:
            return self.info.frames
        import av

        with av.open(self.path) as c:
            n = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
        return n if self.max_frames is None else min(n, self.max_frames)
