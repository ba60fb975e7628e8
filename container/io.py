"""Open GVC streams for writing or reading, as Matroska (.mkv) or raw elementary stream (.gvc).

Both carry the same unit bytes: the sequence header unit is the Matroska track's codec-private data
(after the BITMAPINFOHEADER), each GOP unit one Matroska block.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Iterator

from gvc.errors import BitstreamError, InputError

from .bitstream import GopUnit, SequenceHeader, UnitReader

EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def _is_stdio(path) -> bool:
    return str(path) == "-"


TAG_LEVELS = ("lean", "full")  # Matroska tags: none (the decoder needs none), or the caller's (--tags full)


@contextmanager
def _write_errors():
    """A failed write (closed pipe, full disk) is a one-line error, raised at once."""
    try:
        yield
    except BrokenPipeError:
        raise InputError("output pipe closed") from None
    except OSError as e:
        raise InputError(f"cannot write the output: {e.strerror or e}") from None


def output_format(path, fmt: str | None = None) -> str:
    """The container a StreamWriter writes: ``fmt`` ("mkv" or "gvc"), else .gvc and '-' are gvc, the rest mkv."""
    fmt = fmt or ("gvc" if _is_stdio(path) or str(path).endswith(".gvc") else "mkv")
    if fmt not in ("mkv", "gvc"):
        raise InputError(f"unknown output format {fmt!r} (mkv or gvc)")
    return fmt


class StreamWriter:
    """Writes a header then GOP units; ``fmt`` is "mkv" or "gvc" (default: from the file name).

    ``tags`` (encoder name, settings, ...) go into a Matroska file only with ``tag_level="full"``: they
    cost about 250 bytes, as much as a low-rate GOP, and nothing reads them to decode.

    ``tracks`` (Matroska only): audio/subtitle tracks copied untouched beside the video, an object with
    ``tracks`` (as :func:`container.matroska.copied_track` takes them) and ``packets()`` (track index,
    data, time_ns from frame 0, duration_ns, keyframe: ``ffmpeg_bridge.tracks.TrackCopier``). Their packets
    are interleaved in time with the GOP units: those before a unit's start are written before it; at
    close, those that start before the end of the video (later ones have no picture to go with)."""

    def __init__(self, path, header: SequenceHeader, *, fmt: str | None = None, tags: dict[str, str] | None = None,
                 tag_level: str = "lean", tracks=None):
        self.header = header
        fmt = output_format(path, fmt)
        if tag_level not in TAG_LEVELS:
            raise InputError(f"unknown tag level {tag_level!r} ({' or '.join(TAG_LEVELS)})")
        if tracks is not None and tracks.tracks and fmt != "mkv":
            raise InputError("a .gvc elementary stream holds no audio or subtitle tracks (write .mkv)")
        self.fmt = fmt
        self._own = not _is_stdio(path) and not hasattr(path, "write")
        try:
            self._file: BinaryIO = sys.stdout.buffer if _is_stdio(path) else (path if hasattr(path, "write") else open(path, "wb"))
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror}") from None
        head = header.to_bytes()
        self._end_frame = 0  # after the last unit written
        self._extra = _Interleaver(tracks) if tracks is not None and tracks.tracks else None
        if fmt == "mkv":
            from .matroska import MatroskaWriter

            with _write_errors():
                self._mkv = MatroskaWriter(self._file, width=header.width, height=header.height, fps=header.fps,
                                           codec_private=head, tags=tags if tag_level == "full" else None,
                                           tracks=self._extra.tracks if self._extra else None)
        else:
            self._mkv = None
            self._raw_bytes = 0
            self._write_raw(head)

    @property
    def bytes_written(self) -> int:
        """Bytes of the video so far (container framing included; Matroska cues come at close; the copied
        tracks' blocks are not counted: see ``track_bytes``)."""
        return self._mkv.bytes_written - self.track_bytes if self._mkv is not None else self._raw_bytes

    @property
    def track_bytes(self) -> int:
        """Bytes of the copied tracks' blocks so far (with the clusters they opened)."""
        return self._extra.bytes if self._extra else 0

    def _write_raw(self, data: bytes) -> None:
        with _write_errors():
            self._file.write(data)
            self._file.flush()  # each unit reaches the file (or fails) now, as a Matroska block does
        self._raw_bytes += len(data)

    def write(self, unit: GopUnit, pts: int, duration: int) -> int:
        data = unit.to_bytes()
        if self._mkv is not None:
            from .matroska import MkvPacket

            with _write_errors():
                if self._extra:
                    self._extra.write_until(self._mkv, Fraction(pts * 10**9) / self.header.fps)
                self._mkv.write(MkvPacket(data, pts, duration, unit.keyframe))
            self._end_frame = pts + duration
        else:
            self._write_raw(data)
        return len(data)

    def close(self) -> None:
        try:
            with _write_errors():
                if self._mkv is not None:
                    if self._extra:
                        self._extra.write_until(self._mkv, Fraction(self._end_frame * 10**9) / self.header.fps)
                    self._mkv.close()
                self._file.flush()
        finally:
            if self._own:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Interleaver:
    """The packets of copied tracks, handed to the Matroska writer up to a time (bounded memory: one
    packet read ahead)."""

    def __init__(self, source):
        from .matroska import copied_track

        self.tracks = [copied_track(t) for t in source.tracks]
        self._packets = iter(source.packets())
        self._next = next(self._packets, None)
        self.bytes = 0  # written for these tracks

    def write_until(self, mkv, end_ns) -> None:
        """Write the packets that start before ``end_ns`` (presentation time, from frame 0)."""
        while self._next is not None and self._next.time_ns < end_ns:
            p, before = self._next, mkv.bytes_written
            t = mkv.tracks[p.track]  # Matroska stores audio from its CodecDelay on (copied_track)
            mkv.write_block(t.number, p.data, p.time_ns + (t.codec_delay or 0), p.duration_ns, p.keyframe)
            self.bytes += mkv.bytes_written - before
            self._next = next(self._packets, None)


@dataclass
class StreamInfo:
    header: SequenceHeader
    fmt: str
    tags: dict
    file_bytes: int | None
    warnings: list[str] = field(default_factory=list)  # container problems that do not stop decoding
    tracks: list = field(default_factory=list)  # Matroska tracks beside the GVC video (MkvTrack: audio, subtitles)


class StreamReader:
    """Reads a header and then yields, per GOP, a parsed :class:`GopUnit` or a BitstreamError for a
    damaged one (so the caller can conceal it and go on)."""

    def __init__(self, path):
        self._close = None
        if _is_stdio(path):
            self._open_elementary(sys.stdin.buffer, None)
            return
        if not os.path.exists(path):
            raise InputError(f"no such file: {path}")
        with open(path, "rb") as f:
            magic = f.read(4)
        size = os.path.getsize(path)
        if magic == EBML_MAGIC:
            from .matroska import MatroskaReader

            self._mkv = MatroskaReader(path)
            self._close = self._mkv.close
            header = SequenceHeader.from_bytes(self._mkv.codec_private)
            self.info = StreamInfo(header, "mkv", dict(self._mkv.tags), size, list(self._mkv.warnings),
                                   sorted(self._mkv.tracks.values(), key=lambda t: t.number))
        elif magic == b"GVCU":
            f = open(path, "rb")
            self._close = f.close
            self._open_elementary(f, size)
        else:
            raise BitstreamError(f"{path} is neither a GVC Matroska file nor a GVC elementary stream")

    def _open_elementary(self, f: BinaryIO, size: int | None) -> None:
        self._mkv = None
        self._file = f if size is not None else None  # seekable: units(from_gop=...) can jump
        self._units = iter(UnitReader(f))
        first = next(self._units, None)
        if first is None:
            raise BitstreamError("empty stream")
        if isinstance(first, BitstreamError):
            raise BitstreamError(f"sequence header damaged: {first}")
        self.info = StreamInfo(SequenceHeader.from_bytes(first), "gvc", {}, size)
        self._header_unit = first

    @property
    def header(self) -> SequenceHeader:
        return self.info.header

    def units(self, from_gop: int | None = None, keyframe: bool = True) -> Iterator[GopUnit | BitstreamError]:
        """The GOP units in stream order. `from_gop`: start near GOP `from_gop` instead of at the first one:
        at the last keyframe at or before it (Matroska: through the Cues), or with keyframe=False at the
        last unit at or before it (.gvc unit index). A pipe, or a file without Cues, starts at the first
        unit; the caller skips what it does not need."""
        if self._mkv is not None:
            raw = _blocks_then_damage(self._mkv, None if from_gop is None else self._output_start(from_gop))
        elif from_gop is not None and self._file is not None:
            from .unit_index import entry_for, scan_units

            entry = entry_for(scan_units(self._file), from_gop, keyframe)
            self._file.seek(0 if entry is None else entry.offset)
            raw = iter(UnitReader(self._file))
            if entry is None:
                next(raw, None)  # the sequence header
        else:
            raw = self._units
        for data in raw:
            if isinstance(data, BitstreamError):
                yield data
                continue
            if self._mkv is None and data == self._header_unit:
                continue  # the same header again: streams that share it, concatenated (cat a.gvc b.gvc)
            try:
                yield GopUnit.from_bytes(data, self.header)
            except BitstreamError as e:
                yield e

    def _output_start(self, gop_index: int) -> int:
        """First frame GOP `gop_index` outputs (its Matroska timestamp), from the header's GOP layout."""
        h = self.header
        return gop_index * (h.gop_length - h.gop_overlap) + (h.gop_overlap if gop_index else 0)

    def close(self) -> None:
        if self._close:
            self._close()
            self._close = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _blocks_then_damage(mkv, from_frame: int | None = None) -> Iterator[bytes | BitstreamError]:
    """The GVC blocks of a Matroska file (from the keyframe at or before `from_frame`, through the Cues);
    where the file is truncated or damaged, one BitstreamError last (as UnitReader reports a cut .gvc), so
    every complete GOP before it still decodes."""
    try:
        for packet in mkv.packets(from_frame):
            yield packet.data
    except BitstreamError as e:
        yield e
