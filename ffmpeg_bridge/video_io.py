"""Read and write video as RGB frames (numpy ``uint8`` arrays ``[H, W, 3]``) through PyAV.

Sources: any file FFmpeg can decode (``.mp4``, ``.mkv``, ``.y4m`` ...), ``"-"`` (y4m on stdin), or a binary
file object carrying y4m (e.g. a subprocess' stdout). Destinations: ``.y4m``, ``"-"`` (y4m on stdout) or a
binary file object (y4m); ``.mp4``/``.mkv``/``.mov``: libx264 at a visually lossless CRF in the writer's pixel format
(yuv420p by default: High profile, what players play), or lossless ``-qp 0`` when asked (``lossless=True``).

y4m is parsed once, here: the header line is validated and every ``FRAME`` line and plane payload is read
from the stream by :class:`_Y4MFrames` (so a bad header, damaged data and a truncated last frame are
reported with their reason instead of PyAV/libavformat's anonymous ``EINVAL`` or a silently dropped frame);
PyAV only converts the planes to RGB. Other files are demuxed and decoded by PyAV.

Colour conversion (deterministic: ``BITEXACT`` swscale flags, one thread):

* reading: YUV -> full-range RGB with the matrix the source is tagged with (BT.709, BT.2020, ...),
  BT.601 when untagged (always the case for y4m); limited range unless the source says full range;
* writing: RGB -> limited-range BT.601 YUV, tagged as such in mp4/mkv/mov.

So a write -> read round trip through y4m or mp4 uses the same matrix both ways.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import av.error
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from gvc.errors import InputError

__all__ = ["VideoInfo", "VideoReader", "VideoWriter", "SUPPORTED_INPUT_PIX_FMTS", "WRITER_PIX_FMTS"]

MAX_DIMENSION = 16384
# libavformat's y4m demuxer limits (FFmpeg 8): header line < 128 bytes, FRAME line < 80 bytes (without '\n').
_Y4M_HEADER_MAX = 127
_Y4M_FRAME_LINE_MAX = 79
_Y4M_MAGIC = b"YUV4MPEG2"

# pix_fmt -> (log2 chroma width, log2 chroma height, bytes per sample, planes)
_LAYOUT = {
    "yuv420p": (1, 1, 1, 3),
    "yuvj420p": (1, 1, 1, 3),
    "yuv422p": (1, 0, 1, 3),
    "yuvj422p": (1, 0, 1, 3),
    "yuv444p": (0, 0, 1, 3),
    "yuvj444p": (0, 0, 1, 3),
    "gray": (0, 0, 1, 1),
    "yuv420p10le": (1, 1, 2, 3),
    "yuv422p10le": (1, 0, 2, 3),
    "yuv444p10le": (0, 0, 2, 3),
    "gray10le": (0, 0, 2, 1),
}
# Decoded files (not y4m) may also come in RGB / palette / semi-planar layouts (PNG, RGB video, hardware
# decoders): swscale converts them to RGB like the rest; alpha is dropped.
_CONTAINER_ONLY_PIX_FMTS = frozenset(
    {"rgb24", "bgr24", "rgba", "bgra", "argb", "abgr", "rgb0", "bgr0", "0rgb", "0bgr", "gbrp", "pal8", "nv12", "nv21"}
)
SUPPORTED_INPUT_PIX_FMTS = frozenset(_LAYOUT) | _CONTAINER_ONLY_PIX_FMTS
WRITER_PIX_FMTS = frozenset(
    {"yuv420p", "yuv422p", "yuv444p", "gray", "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray10le"}
)
_X264_PIX_FMTS = frozenset(
    {"yuv420p", "yuv422p", "yuv444p", "gray", "yuv420p10le", "yuv422p10le", "yuv444p10le"}
)
_ENCODED_EXTS = {".mp4", ".mkv", ".mov"}
# x264's CRF 18 is the usual "visually lossless" point: well above the codec's own quality, at about a
# hundredth of the lossless rate. Lossless (qp 0) makes x264 use the High 4:4:4 Predictive profile, which
# many players refuse.
X264_CRF = 18

# y4m C token -> FFmpeg pix_fmt (tokens known to libavformat; only those in _LAYOUT are accepted)
_Y4M_COLORSPACES = {
    "420jpeg": "yuv420p", "420mpeg2": "yuv420p", "420paldv": "yuv420p", "420": "yuv420p",
    "411": "yuv411p", "422": "yuv422p", "444": "yuv444p", "444alpha": "yuva444p",
    "mono": "gray", "mono9": "gray9le", "mono10": "gray10le", "mono12": "gray12le", "mono16": "gray16le",
}
for _bits in (9, 10, 12, 14, 16):
    for _sub in ("420", "422", "444"):
        _Y4M_COLORSPACES[f"{_sub}p{_bits}"] = f"yuv{_sub}p{_bits}le"

_SWS_FLAGS = Interpolation.BILINEAR | Interpolation.BITEXACT
# AVColorSpace value of a frame -> swscale matrix; anything else (unspecified, BT.470BG, SMPTE170M) -> BT.601
_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
_AVCOL_RANGE_JPEG = 2


def _av_reason(e: BaseException) -> str:
    """FFmpeg's reason from a PyAV exception, without the errno noise."""
    reason = getattr(e, "strerror", None)
    return str(reason) if reason else str(e)


def _frame_size(pix_fmt: str, width: int, height: int) -> int:
    sx, sy, bps, planes = _LAYOUT[pix_fmt]
    luma = width * height * bps
    if planes == 1:
        return luma
    cw, ch = -(-width >> sx), -(-height >> sy)
    return luma + 2 * cw * ch * bps


_STANDARD_RATES = [Fraction(n) for n in range(1, 241)] + [
    Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)
]


def _snap_rate(rate: Fraction) -> Fraction:
    """Container rates come out of timestamps (e.g. 2997/125, 1000000/66667): snap those within 0.01 % of
    a standard rate (integers, NTSC n*1000/1001) to it; leave any other rate alone."""
    best = min(_STANDARD_RATES, key=lambda r: abs(r - rate))
    return best if abs(best - rate) <= rate * Fraction(1, 10000) else rate


def _is_odd_for(pix_fmt: str, width: int, height: int) -> bool:
    """Whether a subsampled format has an odd dimension along a subsampled axis. y4m and FFmpeg allow it
    (chroma planes are ceil(W/2) x ceil(H/2), see _frame_size); libx264 does not."""
    sx, sy, _, planes = _LAYOUT[pix_fmt]
    return planes == 3 and bool((sx and width % 2) or (sy and height % 2))


def _x264_pix_fmt(pix_fmt: str, width: int, height: int) -> str:
    """libx264 refuses odd sizes in 4:2:0 / 4:2:2: code those pictures in 4:4:4 of the same depth."""
    if not _is_odd_for(pix_fmt, width, height):
        return pix_fmt
    return "yuv444p10le" if pix_fmt.endswith("10le") else "yuv444p"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None  # frames the reader gives (max_frames applied); None when unknown (pipe)
    pix_fmt: str  # source pixel format as reported by FFmpeg (e.g. "yuv420p", "yuv420p10le")


@dataclass(frozen=True)
class _Y4MHeader:
    width: int
    height: int
    fps: Fraction
    pix_fmt: str
    frame_size: int  # payload bytes per frame (without the FRAME line)
    full_range: bool = False  # XCOLORRANGE=FULL (libavformat's extension)


def _parse_y4m_header(line: bytes) -> _Y4MHeader:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise InputError("bad y4m header: not ASCII text") from None
    tokens = text.split()
    if not tokens or tokens[0] != _Y4M_MAGIC.decode():
        got = tokens[0][:20] if tokens else ""
        raise InputError(f"bad y4m header: expected YUV4MPEG2 signature, got {got!r}")
    width = height = None
    fps = Fraction(25)  # libavformat's default when F is missing or 0:0
    colorspace = "420jpeg"  # y4m default when C is missing
    full_range = False
    for tok in tokens[1:]:
        key, val = tok[0], tok[1:]
        if key in "WH":
            if not val.isdigit():
                raise InputError(f"bad y4m header: bad {'width' if key == 'W' else 'height'} token {tok!r}")
            n = int(val)
            if not 1 <= n <= MAX_DIMENSION:
                what = "width" if key == "W" else "height"
                raise InputError(f"bad y4m header: {what} {n} out of range 1..{MAX_DIMENSION}")
            if key == "W":
                width = n
            else:
                height = n
        elif key == "F":
            num, sep, den = val.partition(":")
            if not (sep and num.isdigit() and den.isdigit()):
                raise InputError(f"bad y4m header: bad frame rate token {tok!r}")
            if int(num) > 0 and int(den) > 0:
                fps = Fraction(int(num), int(den))
            elif int(num) or int(den):
                raise InputError(f"bad y4m header: bad frame rate {val}")
        elif key == "C":
            colorspace = val
        elif key == "I":
            if val not in ("p", "?", "t", "b", "m"):
                raise InputError(f"bad y4m header: bad interlacing token {tok!r}")
        elif tok == "XCOLORRANGE=FULL":
            full_range = True
        # A (aspect), other X (extensions) and unknown tokens are ignored, as libavformat does.
    if width is None or height is None:
        missing = " and ".join(n for n, v in (("W", width), ("H", height)) if v is None)
        raise InputError(f"bad y4m header: missing {missing}")
    pix_fmt = _Y4M_COLORSPACES.get(colorspace)
    if pix_fmt is None:
        raise InputError(f"bad y4m header: unknown colorspace C{colorspace}")
    if pix_fmt not in _LAYOUT:
        raise InputError(f"unsupported pixel format {pix_fmt} (y4m C{colorspace})")
    return _Y4MHeader(width, height, fps, pix_fmt, _frame_size(pix_fmt, width, height), full_range)


def _read_y4m_header_line(stream: BinaryIO, name: str) -> tuple[bytes, bytes]:
    """Read the header line (bounded); return ``(line without '\\n', bytes read after it)``."""
    read = getattr(stream, "read1", None) or stream.read
    buf = b""
    limit = _Y4M_HEADER_MAX + 1
    while b"\n" not in buf and len(buf) < limit:
        try:
            chunk = read(limit - len(buf))
        except OSError as e:
            raise InputError(f"cannot read {name}: {e.strerror or e}") from None
        if not chunk:
            break
        buf += chunk
        if len(buf) >= len(_Y4M_MAGIC) and not buf.startswith(_Y4M_MAGIC):
            break
    if not buf:
        raise InputError(f"empty input: no data in {name}")
    if not buf.startswith(_Y4M_MAGIC[: len(buf)]) or (len(buf) >= 9 and not buf.startswith(_Y4M_MAGIC)):
        raise InputError(f"bad y4m header: {name} does not start with YUV4MPEG2 (got {buf[:12]!r})")
    nl = buf.find(b"\n")
    if nl < 0:
        if len(buf) >= limit:
            raise InputError(f"bad y4m header: header line longer than {_Y4M_HEADER_MAX} bytes")
        raise InputError("bad y4m header: input ends inside the header line")
    return buf[:nl], buf[nl + 1 :]


class _Y4MFrames:
    """The frames after a y4m header line: each ``FRAME`` line checked, each payload read whole (memory stays
    bounded by one frame). Damaged data, a truncated frame and a stream without frames raise InputError."""

    def __init__(self, stream: BinaryIO, leftover: bytes, header: _Y4MHeader, name: str):
        self.header, self.name = header, name
        self._stream, self._buf, self._eof = stream, bytearray(leftover), False
        self.frames = 0  # complete frames read

    def _fill(self, n: int) -> bool:
        """Read until the buffer holds n bytes; False at the end of the stream."""
        # read1: what the pipe has now (a live producer's last frame is not held back waiting for 64 KiB more)
        read = getattr(self._stream, "read1", None) or self._stream.read
        while len(self._buf) < n and not self._eof:
            try:
                chunk = read(max(n - len(self._buf), 1 << 16))
            except OSError as e:
                raise InputError(f"cannot read input {self.name}: {e.strerror or e}") from None
            if chunk is None:
                raise InputError(f"cannot read input {self.name}: non-blocking stream without data")
            self._eof = not chunk
            self._buf += chunk
        return len(self._buf) >= n

    def _fail(self, problem: str) -> InputError:
        return InputError(f"{problem} ({self.name})")

    def __iter__(self) -> Iterator[bytes]:
        size = self.header.frame_size
        while self._fill(1):
            self._fill(_Y4M_FRAME_LINE_MAX + 1)
            nl = self._buf.find(b"\n", 0, _Y4M_FRAME_LINE_MAX + 1)
            line = bytes(self._buf[:nl] if nl >= 0 else self._buf[:_Y4M_FRAME_LINE_MAX + 1])
            if line[:5] != b"FRAME"[:len(line)] or line[5:6] not in (b"", b" ") or len(line) > _Y4M_FRAME_LINE_MAX:
                raise self._fail(f"bad y4m data after {self.frames} frames: expected FRAME, got {line[:12]!r}")
            if nl < 0:
                raise self._fail(f"truncated FRAME line after {self.frames} complete frames")
            if len(line) < 5:
                raise self._fail(f"bad y4m data after {self.frames} frames: expected FRAME, got {line[:12]!r}")
            del self._buf[:nl + 1]
            if not self._fill(size):
                raise self._fail(f"truncated last frame: after {self.frames} complete frames, "
                                 f"{len(self._buf)} of {size} bytes")
            payload = bytes(self._buf[:size])
            del self._buf[:size]
            self.frames += 1
            yield payload
        if self.frames == 0:
            raise self._fail("empty input: y4m header but no frames")

    def video_frame(self, payload: bytes) -> av.VideoFrame:
        """The planes of one payload as a PyAV frame (for its colour conversion), tagged with the range."""
        h = self.header
        sx, sy, bps, _ = _LAYOUT[h.pix_fmt]
        frame = av.VideoFrame(h.width, h.height, h.pix_fmt)
        offset = 0
        for i, plane in enumerate(frame.planes):
            width, height = (h.width, h.height) if i == 0 else (-(-h.width >> sx), -(-h.height >> sy))
            row = width * bps
            rows = np.frombuffer(payload, np.uint8, row * height, offset).reshape(height, row)
            offset += row * height
            if plane.line_size != row:  # swscale's aligned lines
                padded = np.zeros((height, plane.line_size), np.uint8)
                padded[:, :row] = rows
                rows = padded
            plane.update(rows.tobytes())
        if h.full_range:
            frame.color_range = _AVCOL_RANGE_JPEG
        return frame


class VideoReader:
    """Iterate the frames of a video as RGB ``uint8`` arrays ``[H, W, 3]``, lazily.

    ``source``: a path (any FFmpeg-decodable file, including ``.y4m``), ``"-"`` (y4m on stdin) or a binary
    file object carrying y4m. File objects (and stdin) are not closed by :meth:`close`.
    """

    def __init__(self, source, *, max_frames: int | None = None):
        if max_frames is not None and max_frames < 0:
            raise ValueError("max_frames must be >= 0")
        self._max_frames = max_frames
        self._container = None
        self._y4m: _Y4MFrames | None = None
        self._closed = False
        self._owned: BinaryIO | None = None
        self._iter: Iterator[np.ndarray] | None = None
        self._count = 0
        try:
            self._open(source)
        except BaseException:
            self.close()
            raise
        if max_frames is not None and self.info.frames is not None:  # the frames this reader will give
            self.info = replace(self.info, frames=min(self.info.frames, max_frames))

    # -- opening ---------------------------------------------------------------------------------------
    def _open(self, source) -> None:
        if isinstance(source, str) and source == "-":
            self.name = "<stdin>"
            if sys.stdin is None or sys.stdin.isatty():
                raise InputError("no input: stdin is a terminal, pipe y4m into it")
            self._open_y4m(sys.stdin.buffer, None)
            return
        if hasattr(source, "read"):
            self.name = str(getattr(source, "name", "<stream>"))
            self._open_y4m(source, None)
            return
        path = Path(os.fspath(source))
        self.name = str(path)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if path.is_dir():
            raise InputError(f"not a file: {path} is a directory")
        try:
            f = open(path, "rb")
        except OSError as e:
            raise InputError(f"cannot open {path}: {e.strerror or e}") from None
        self._owned = f
        head = f.peek(len(_Y4M_MAGIC))[: len(_Y4M_MAGIC)]
        if not head and path.is_file():
            raise InputError(f"empty input: {path} is empty")
        if path.suffix.lower() == ".y4m" or head.startswith(b"YUV4MPEG"):
            size = path.stat().st_size if path.is_file() else None
            self._open_y4m(f, size)
            return
        f.close()
        self._owned = None
        self._open_container(path)

    def _open_y4m(self, stream: BinaryIO, size: int | None) -> None:
        line, leftover = _read_y4m_header_line(stream, self.name)
        hdr = _parse_y4m_header(line)
        self._y4m = _Y4MFrames(stream, leftover, hdr, self.name)
        frames = None
        if size is not None:
            body, per = size - len(line) - 1, hdr.frame_size + len(b"FRAME\n")
            if body >= 0 and body % per == 0:
                frames = body // per
        self.info = VideoInfo(hdr.width, hdr.height, hdr.fps, frames, hdr.pix_fmt)

    def _open_container(self, path: Path) -> None:
        try:
            self._container = av.open(str(path))
        except av.error.FFmpegError as e:
            raise InputError(f"not a video file: {path} ({_av_reason(e)})") from None
        if not self._container.streams.video:
            raise InputError(f"not a video file: {path} has no video stream")
        stream = self._stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        pix_fmt = cc.pix_fmt
        if pix_fmt is None:
            raise InputError(f"not a video file: {path} (unknown pixel format)")
        if pix_fmt not in SUPPORTED_INPUT_PIX_FMTS:
            raise InputError(f"unsupported pixel format {pix_fmt} in {path}")
        if not (1 <= cc.width <= MAX_DIMENSION and 1 <= cc.height <= MAX_DIMENSION):
            raise InputError(f"bad picture size {cc.width}x{cc.height} in {path}")
        fps = stream.guessed_rate or stream.average_rate or stream.base_rate or Fraction(25)
        self.info = VideoInfo(cc.width, cc.height, _snap_rate(Fraction(fps)), stream.frames or None, pix_fmt)

    # -- frames ----------------------------------------------------------------------------------------
    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        name = frame.format.name
        if name not in SUPPORTED_INPUT_PIX_FMTS:
            raise InputError(f"unsupported pixel format {name} in {self.name}")
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise InputError(
                f"picture size changes in {self.name}: {frame.width}x{frame.height} after "
                f"{self.info.width}x{self.info.height}"
            )
        full = frame.color_range == _AVCOL_RANGE_JPEG or name.startswith("yuvj")
        rgb = frame.to_ndarray(
            format="rgb24",
            src_colorspace=_MATRIX.get(int(frame.colorspace), Colorspace.ITU601),
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            dst_color_range=ColorRange.JPEG,
            interpolation=_SWS_FLAGS,
            threads=1,
        )
        return np.ascontiguousarray(rgb)

    def _frames(self) -> Iterator[np.ndarray]:
        if self._max_frames == 0:
            return
        source = (self._y4m.video_frame(p) for p in self._y4m) if self._y4m is not None else self._decoded()
        for frame in source:
            rgb = self._to_rgb(frame)
            self._count += 1
            yield rgb
            if self._max_frames is not None and self._count >= self._max_frames:
                return
        if self._count == 0:
            raise InputError(f"empty input: no frames in {self.name}")

    def _decoded(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._container.decode(self._stream)
        except av.error.FFmpegError as e:
            raise InputError(f"cannot decode {self.name}: {_av_reason(e)}") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._closed:
            raise ValueError("VideoReader is closed")
        if self._iter is None:
            self._iter = self._frames()
        return self._iter

    def read(self, n: int) -> list[np.ndarray]:
        """Up to ``n`` more frames (fewer at the end, ``[]`` once exhausted)."""
        it = iter(self)
        out = []
        for _ in range(n):
            try:
                out.append(next(it))
            except StopIteration:
                break
        return out

    def close(self) -> None:
        self._closed = True
        self._y4m = None
        if self._iter is not None:
            self._iter.close()
            self._iter = None
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:  # pragma: no cover
                pass
            self._container = None
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _is_broken_pipe(e: BaseException) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ECONNRESET)):
            return True
        if isinstance(e, av.error.FFmpegError) and "Broken pipe" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


class VideoWriter:
    """Write RGB ``uint8`` frames ``[H, W, 3]`` to y4m (path, ``"-"`` or binary file object) or to
    ``.mp4``/``.mkv``/``.mov`` (libx264 at CRF :data:`X264_CRF`; ``lossless=True``: lossless in YUV, ``qp 0``)."""

    def __init__(self, dest, *, width: int, height: int, fps, pix_fmt: str = "yuv420p", lossless: bool = False):
        self.lossless = lossless
        self._container = None
        self._closed = False
        self._broken = False
        self._count = 0
        self._stdout = False
        self._file: BinaryIO | None = None  # caller's file object (flushed, not closed)
        if not isinstance(width, (int, np.integer)) or not isinstance(height, (int, np.integer)):
            raise InputError(f"bad picture size {width!r}x{height!r}")
        width, height = int(width), int(height)
        if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
            raise InputError(f"bad picture size {width}x{height} (1..{MAX_DIMENSION})")
        try:
            fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1_000_000)
        except (TypeError, ValueError):
            raise InputError(f"bad frame rate {fps!r}") from None
        if max(fps.numerator, fps.denominator) > 2**31 - 1:  # FFmpeg's AVRational holds int32 terms
            fps = fps.limit_denominator(1_000_000)
        if fps <= 0:
            raise InputError(f"bad frame rate {fps}")
        if pix_fmt not in WRITER_PIX_FMTS:
            raise InputError(f"unsupported pixel format {pix_fmt} for output")
        self.width, self.height, self.fps, self.pix_fmt = width, height, fps, pix_fmt

        if isinstance(dest, str) and dest == "-":
            if sys.stdout is None or sys.stdout.isatty():
                raise InputError("refusing to write video to a terminal: redirect stdout")
            self.name, self._stdout, self._file = "<stdout>", True, sys.stdout.buffer
            self._open_y4m(self._file)
        elif hasattr(dest, "write"):
            self.name, self._file = str(getattr(dest, "name", "<stream>")), dest
            self._open_y4m(dest)
        else:
            path = Path(os.fspath(dest))
            self.name = str(path)
            ext = path.suffix.lower()
            if ext != ".y4m" and ext not in _ENCODED_EXTS:
                raise InputError(f"unsupported output type {ext or '(no extension)'!r}: use .y4m, .mp4, .mkv or .mov")
            if not path.parent.is_dir():
                raise InputError(f"cannot create {path}: directory {path.parent} does not exist")
            try:
                open(path, "wb").close()
            except OSError as e:
                raise InputError(f"cannot create {path}: {e.strerror or e}") from None
            if ext == ".y4m":
                self._open_y4m(str(path))
            else:
                self._open_x264(str(path))

    def _open_y4m(self, target) -> None:
        options = {"strict": "-1"} if self.pix_fmt.endswith("10le") else {}
        try:
            self._container = av.open(target, "w", format="yuv4mpegpipe", options=options)
            self._stream = self._container.add_stream("wrapped_avframe", rate=self.fps)
        except av.error.FFmpegError as e:
            raise InputError(f"cannot write {self.name}: {_av_reason(e)}") from None
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, self.pix_fmt

    def _open_x264(self, path: str) -> None:
        if self.pix_fmt not in _X264_PIX_FMTS:
            raise InputError(f"unsupported pixel format {self.pix_fmt} for {Path(path).suffix} output")
        try:
            self._container = av.open(path, "w")
            rate = {"qp": "0"} if self.lossless else {"crf": str(X264_CRF)}
            self._stream = self._container.add_stream("libx264", rate=self.fps, options={**rate, "preset": "medium"})
        except av.error.FFmpegError as e:
            raise InputError(f"cannot write {self.name}: {_av_reason(e)}") from None
        # An odd-sized picture is coded (and its frames converted) in 4:4:4: libx264 needs even 4:2:0 sizes.
        self.pix_fmt = _x264_pix_fmt(self.pix_fmt, self.width, self.height)
        s = self._stream
        s.width, s.height, s.pix_fmt = self.width, self.height, self.pix_fmt
        cc = s.codec_context
        for attr, value in (("color_range", 1), ("colorspace", 6), ("color_primaries", 6), ("color_trc", 6)):
            try:  # BT.601 limited range (SMPTE 170M) tags, matching the conversion in write()
                setattr(cc, attr, value)
            except (AttributeError, TypeError, ValueError):  # pragma: no cover - older PyAV
                pass

    def _fail(self, e: BaseException) -> InputError:
        if _is_broken_pipe(e):
            self._broken = True
            if self._stdout:  # keep the interpreter from complaining when it flushes stdout at exit
                try:
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                    os.close(devnull)
                except OSError:  # pragma: no cover
                    pass
            return InputError("output pipe closed")
        return InputError(f"cannot write {self.name}: {_av_reason(e)}")

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB ``uint8`` frame ``[height, width, 3]``."""
        if self._closed or self._container is None:
            raise ValueError("VideoWriter is closed")
        if self._broken:
            raise InputError("output pipe closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"expected uint8 frame of shape {(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}"
            )
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        yuv = vf.reformat(
            format=self.pix_fmt,
            src_color_range=ColorRange.JPEG,
            dst_colorspace=Colorspace.ITU601,
            dst_color_range=ColorRange.MPEG,
            interpolation=_SWS_FLAGS,
            threads=1,
        )
        yuv.pts = self._count
        yuv.time_base = 1 / self.fps
        try:
            for packet in self._stream.encode(yuv):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as e:
            raise self._fail(e) from None
        self._count += 1

    def close(self) -> None:
        """Flush and close (idempotent). A caller's file object is flushed, not closed."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None:
            return
        if self._broken:
            try:
                container.close()
            except Exception:
                pass
            return
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
            container.close()
            if self._file is not None:
                self._file.flush()
        except (OSError, av.error.FFmpegError) as e:
            try:
                container.close()
            except Exception:
                pass
            raise self._fail(e) from None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the original error behind a secondary one
            try:
                self.close()
            except Exception:
                pass

