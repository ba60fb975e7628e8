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

from .bitstream import GopUnit, SequenceHeader, UnitReader, parse_unit

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


class StreamWriter:
    """Writes a header then GOP units; ``fmt`` is "mkv" or "gvc" (default: from the file name).

    ``tags`` (encoder name, settings, ...) go into a Matroska file only with ``tag_level="full"``: they
    cost about 250 bytes, as much as a low-rate GOP, and nothing reads them to decode."""

    def __init__(self, path, header: SequenceHeader, *, fmt: str | None = None, tags: dict[str, str] | None = None,
                 tag_level: str = "lean"):
        self.header = header
        fmt = fmt or ("gvc" if _is_stdio(path) or str(path).endswith(".gvc") else "mkv")
        if fmt not in ("mkv", "gvc"):
            raise InputError(f"unknown output format {fmt!r} (mkv or gvc)")
        if tag_level not in TAG_LEVELS:
            raise InputError(f"unknown tag level {tag_level!r} ({' or '.join(TAG_LEVELS)})")
        self.fmt = fmt
        self._own = not _is_stdio(path) and not hasattr(path, "write")
        try:
            self._file: BinaryIO = sys.stdout.buffer if _is_stdio(path) else (path if hasattr(path, "write") else open(path, "wb"))
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror}") from None
        head = header.to_bytes()
        if fmt == "mkv":
            from .matroska import MatroskaWriter

            with _write_errors():
                self._mkv = MatroskaWriter(self._file, width=header.width, height=header.height, fps=header.fps,
                                           codec_private=head, tags=tags if tag_level == "full" else None)
        else:
            self._mkv = None
            self._raw_bytes = 0
            self._write_raw(head)

    @property
    def bytes_written(self) -> int:
        """Bytes of the output so far (container framing included; Matroska cues come at close)."""
        return self._mkv.bytes_written if self._mkv is not None else self._raw_bytes

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
                self._mkv.write(MkvPacket(data, pts, duration, unit.keyframe))
        else:
            self._write_raw(data)
        return len(data)

    def close(self) -> None:
        try:
            with _write_errors():
                if self._mkv is not None:
                    self._mkv.close()
                self._file.flush()
        finally:
            if self._own:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class StreamInfo:
    header: SequenceHeader
    fmt: str
    tags: dict
    file_bytes: int | None
    warnings: list[str] = field(default_factory=list)  # container problems that do not stop decoding


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
            self.info = StreamInfo(header, "mkv", dict(self._mkv.tags), size, list(self._mkv.warnings))
        elif magic == b"GVCU":
            f = open(path, "rb")
            self._close = f.close
            self._open_elementary(f, size)
        else:
            raise BitstreamError(f"{path} is neither a GVC Matroska file nor a GVC elementary stream")

    def _open_elementary(self, f: BinaryIO, size: int | None) -> None:
        self._mkv = None
        self._units = iter(UnitReader(f))
        first = next(self._units, None)
        if first is None:
            raise BitstreamError("empty stream")
        if isinstance(first, BitstreamError):
            raise BitstreamError(f"sequence header damaged: {first}")
        self.info = StreamInfo(SequenceHeader.from_bytes(first), "gvc", {}, size)

    @property
    def header(self) -> SequenceHeader:
        return self.info.header

    def units(self) -> Iterator[GopUnit | BitstreamError]:
        raw = _blocks_then_damage(self._mkv) if self._mkv is not None else self._units
        for data in raw:
            if isinstance(data, BitstreamError):
                yield data
                continue
            try:
                yield GopUnit.from_bytes(data, self.header)
            except BitstreamError as e:
                yield e

    def close(self) -> None:
        if self._close:
            self._close()
            self._close = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _blocks_then_damage(mkv) -> Iterator[bytes | BitstreamError]:
    """The GVC blocks of a Matroska file; where the file is truncated or damaged, one BitstreamError last
    (as UnitReader reports a cut .gvc), so every complete GOP before it still decodes."""
    try:
        for packet in mkv.packets():
            yield packet.data
    except BitstreamError as e:
        yield e
