"""The Python side of libgvc: implements gvc.h's functions on gvc.pipeline.SequenceDecoder (the loop of
`gvc decode`), fed one packet at a time.

Runs inside the embedded interpreter: libgvc's start-up code calls :func:`install` with the library's
cffi ``ffi``. A decoder handle is a cffi handle to a :class:`_Decoder` (kept alive in ``_open`` until
gvc_decoder_close). Nothing here raises into C: every function returns a status, and errors go to
the calling thread's last-error string.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque

import numpy as np

from container.bitstream import SYNC, GopUnit, SequenceHeader
from gvc._version import __version__
from gvc.codec import GopCodec
from gvc.errors import BitstreamError, GVCError, ParameterError, PriorMismatchError
from gvc.pipeline import GopRecord, Problem, SequenceDecoder

OK, EAGAIN, EOF = 0, 1, 2
EINVAL, EBITSTREAM, EPRIOR, EINTERNAL = -1, -2, -3, -4
PIX_YUV420P, PIX_RGB24 = 0, 1
PACKET_REFERENCE = 1
BITMAPINFOHEADER_BYTES = 40

_errors = threading.local()
_open: dict[int, "_Decoder"] = {}  # id -> decoder, keeps each handle's object alive


def sequence_header(data: bytes) -> SequenceHeader:
    """The header from a sequence header unit or a Matroska CodecPrivate (BITMAPINFOHEADER + unit)."""
    if data[:4] != SYNC and data[BITMAPINFOHEADER_BYTES:BITMAPINFOHEADER_BYTES + 4] == SYNC:
        data = data[BITMAPINFOHEADER_BYTES:]
    return SequenceHeader.from_bytes(data)


def frame_planes(frame: np.ndarray, pixel_format: int) -> list[tuple[np.ndarray, int]]:
    """(rows, width in samples) per plane of an RGB frame in the output format; `rows` is [height, row
    stride] bytes. YUV 4:2:0 is converted as `gvc decode -o x.y4m` converts (ffmpeg_bridge), and keeps
    ffmpeg's aligned line sizes as the row strides."""
    if pixel_format == PIX_RGB24:
        return [(np.ascontiguousarray(frame).reshape(frame.shape[0], -1), frame.shape[1])]
    from ffmpeg_bridge.video_io import rgb_to_yuv

    planes = rgb_to_yuv(frame, "yuv420p").planes
    return [(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size), p.width) for p in planes]


class PriorLoadError(GVCError):
    """The prior cannot be loaded, or is not the one the stream was encoded with (GVC_EPRIOR)."""


class _Decoder:
    def __init__(self, header: SequenceHeader, prior: str | None, device: str, pixel_format: int, verify: bool):
        from gvc.priors import load_prior

        if pixel_format not in (PIX_YUV420P, PIX_RGB24):
            raise ParameterError(f"unknown pixel format {pixel_format}")
        self.header, self.pixel_format = header, pixel_format
        try:
            codec = GopCodec(load_prior(prior, device=device, header=header), header, device=device)
        except GVCError as e:
            raise PriorLoadError(str(e)) from None
        self.written: list[np.ndarray] = []  # frames of the GOP being written, until on_gop gives their pts
        self.queue: deque[tuple[int, np.ndarray]] = deque()
        self.sequence = SequenceDecoder(codec, self, verify, self._timed, None)
        self.flushed = False
        self.planes: list = []  # cffi buffers of the frame last returned: C reads them until the next call
        self.lock = threading.Lock()

    # the SequenceDecoder's writer and on_gop: frames wait in the queue, with their pts, for receive_frame
    def write(self, frame: np.ndarray) -> None:
        self.written.append(frame)

    def close(self) -> None:
        pass

    def _timed(self, record: GopRecord) -> None:
        self.queue.extend((record.first_frame + i, f) for i, f in enumerate(self.written))
        self.written = []

    def send(self, data: bytes, flags: int) -> None:
        if self.flushed:
            raise ParameterError("packet sent after gvc_decoder_flush (call gvc_decoder_reset first)")
        self.planes = []
        try:
            unit = GopUnit.from_bytes(data, self.header)
        except BitstreamError as e:
            self.sequence.push(e)  # counted; the GOP it held is concealed when the next packet shows the gap
            raise
        events = len(self.sequence.report.events)
        self.sequence.push(unit, reference=bool(flags & PACKET_REFERENCE))
        failed = [e for e in self.sequence.report.events[events:]
                  if e.problem is Problem.UNDECODABLE and e.gop == unit.gop_index]
        if failed:  # parsed but not decodable: concealed, its frames queued
            raise BitstreamError(str(failed[0]))

    def receive(self) -> tuple[int, np.ndarray] | None:
        self.planes = []
        return self.queue.popleft() if self.queue else None

    def flush(self) -> None:
        self.planes = []
        if not self.flushed:
            self.sequence.finish()
            self.flushed = True

    def reset(self) -> None:
        self.planes, self.written, self.flushed = [], [], False
        self.queue.clear()
        self.sequence.restart()

    def problems(self) -> int:
        return len(self.sequence.report.events)


def _status(e: BaseException) -> int:
    if isinstance(e, (PriorLoadError, PriorMismatchError)):
        return EPRIOR
    if isinstance(e, BitstreamError):
        return EBITSTREAM
    if isinstance(e, (ParameterError, GVCError)):
        return EINVAL
    return EINTERNAL


def install(ffi) -> None:
    """Define gvc.h's functions for the library whose cffi ``ffi`` is given."""

    def fail(e: BaseException) -> int:
        code = _status(e)
        text = str(e) if code != EINTERNAL else "".join(traceback.format_exception_only(type(e), e)).strip()
        _errors.buf = ffi.new("char[]", text.replace("\n", " ").encode("utf-8", "replace"))
        return code

    def call(fn):
        """Run fn() -> status; exceptions become an error status and this thread's last error."""
        try:
            return fn()
        except BaseException as e:  # noqa: BLE001 - nothing may unwind into C
            return fail(e)

    def decoder(handle) -> _Decoder:
        if handle == ffi.NULL:
            raise ParameterError("decoder is NULL")
        dec = ffi.from_handle(ffi.cast("void *", handle))
        if not isinstance(dec, _Decoder) or id(dec) not in _open:
            raise ParameterError("not an open decoder")
        return dec

    def locked(handle, fn):
        def run():
            dec = decoder(handle)
            with dec.lock:
                return fn(dec)
        return call(run)

    version = ffi.new("char[]", __version__.encode())

    @ffi.def_extern()
    def gvc_version():
        return version

    @ffi.def_extern()
    def gvc_last_error():
        buf = getattr(_errors, "buf", None)
        if buf is None:
            buf = _errors.buf = ffi.new("char[]", b"")
        return buf

    @ffi.def_extern()
    def gvc_decoder_options_default(opts):
        if opts != ffi.NULL:
            opts.prior, opts.device, opts.pixel_format, opts.verify = ffi.NULL, ffi.NULL, PIX_YUV420P, 1

    @ffi.def_extern()
    def gvc_decoder_open(header, size, opts, out):
        def run():
            if header == ffi.NULL or out == ffi.NULL:
                raise ParameterError("header and out must not be NULL")
            out[0] = ffi.NULL
            h = sequence_header(bytes(ffi.buffer(header, size)))
            text = lambda p: None if p == ffi.NULL else ffi.string(p).decode()
            prior, device, pix, verify = (None, "cpu", PIX_YUV420P, True) if opts == ffi.NULL else (
                text(opts.prior), text(opts.device) or "cpu", opts.pixel_format, bool(opts.verify))
            dec = _Decoder(h, prior, device, pix, verify)
            dec.handle = ffi.new_handle(dec)
            _open[id(dec)] = dec
            out[0] = ffi.cast("gvc_decoder *", dec.handle)
            return OK
        return call(run)

    @ffi.def_extern()
    def gvc_decoder_info(handle, info):
        def run(dec):
            if info == ffi.NULL:
                raise ParameterError("info is NULL")
            h = dec.header
            info.width, info.height = h.width, h.height
            info.fps_num, info.fps_den = h.fps.numerator, h.fps.denominator
            info.frame_count, info.gop_length, info.gop_overlap = h.frame_count, h.gop_length, h.gop_overlap
            ffi.memmove(info.mode, h.mode.encode() + b"\0", len(h.mode) + 1)
            ffi.memmove(info.prior_id, h.prior_id.encode()[:255] + b"\0", min(len(h.prior_id), 255) + 1)
            return OK
        return locked(handle, run)

    @ffi.def_extern()
    def gvc_decoder_send_packet(handle, data, size, flags):
        def run(dec):
            if data == ffi.NULL:
                raise ParameterError("packet data is NULL (end of stream is gvc_decoder_flush)")
            dec.send(bytes(ffi.buffer(data, size)), flags)
            return OK
        return locked(handle, run)

    @ffi.def_extern()
    def gvc_decoder_receive_frame(handle, frame):
        def run(dec):
            if frame == ffi.NULL:
                raise ParameterError("frame is NULL")
            got = dec.receive()
            if got is None:
                return EOF if dec.flushed else EAGAIN
            pts, rgb = got
            planes = frame_planes(rgb, dec.pixel_format)
            dec.planes = [ffi.from_buffer(rows) for rows, _ in planes]  # alive until the next call
            frame.width, frame.height, frame.pixel_format = dec.header.width, dec.header.height, dec.pixel_format
            frame.pts, frame.nb_planes = pts, len(planes)
            for i in range(3):
                rows, width = planes[i] if i < len(planes) else (None, 0)
                frame.data[i] = ffi.NULL if rows is None else ffi.cast("const uint8_t *", dec.planes[i])
                frame.linesize[i] = 0 if rows is None else rows.shape[1]
                frame.plane_width[i], frame.plane_height[i] = width, 0 if rows is None else rows.shape[0]
            return OK
        return locked(handle, run)

    @ffi.def_extern()
    def gvc_decoder_flush(handle):
        return locked(handle, lambda dec: dec.flush() or OK)

    @ffi.def_extern()
    def gvc_decoder_reset(handle):
        return locked(handle, lambda dec: dec.reset() or OK)

    @ffi.def_extern()
    def gvc_decoder_problems(handle):
        return locked(handle, lambda dec: dec.problems())

    @ffi.def_extern()
    def gvc_decoder_close(handle):
        def run():
            if handle != ffi.NULL:
                dec = decoder(handle)
                with dec.lock:
                    _open.pop(id(dec), None)
            return OK
        call(run)
