"""Anchor-frame image coding for the I2V and FLF2V modes (docs/method.md §3).

Anchors are single RGB frames coded with an image codec that PyAV's bundled FFmpeg can both encode and decode
in-process, so that a GVC stream is self-contained and decodes with PyAV alone.

``encode_anchor`` returns ``(codec_id, payload)``: the payload is the anchor payload of docs/bitstream.md
§Anchor payload (``container.bitstream.AnchorPictureSyntax``: colour transform, header-stripped flag, right and
bottom crop, then the codec's elementary stream for one intra picture); the GOP unit stores the id and the role.
The unit's CRC-32 covers it. The picture size itself comes from the codec's own headers.  Odd sizes (4:2:0 needs even ones) and pictures
below a codec's minimum size are padded by edge replication and cropped back on decode.

Colour conversion is ours, not swscale's: the decoder side (YCbCr -> RGB, bilinear chroma upsampling) is pure
integer numpy arithmetic, and the codecs' decoders are bit-exact by their specifications (AV1/dav1d, HEVC, VP8),
so the same payload gives the same pixels on every platform.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

from container import bitstream as bs
from gvc.errors import BitstreamError, ParameterError

# SVT-AV1 logs its banner to stderr unless told otherwise; 1 = errors only.  Respect an explicit setting.
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402  (after SVT_LOG)

ANCHOR_CODECS: dict[int, str] = {v: k for k, v in bs.ANCHOR_CODECS.items()}  # id -> name (ids: the spec's)
_NAME_TO_ID = bs.ANCHOR_CODECS

#: Winner of ``python -m tools.anchor_codecs`` (best RGB PSNR at equal bytes on the real clips).
DEFAULT_ANCHOR_CODEC: int = 1
DEFAULT_QUALITY: float = 50.0
#: Decoded pictures larger than this many pixels are refused (guards allocations on hostile payloads).
MAX_ANCHOR_PIXELS: int = 1 << 26

_CT_YCBCR601 = "ycbcr601"
_CT_RGB = "rgb"
_AV1_TD = b"\x12\x00"


# --------------------------------------------------------------------------------------------- colour


def _rgb_to_ycbcr(rgb: np.ndarray, bit_depth: int, subsample: bool) -> list[np.ndarray]:
    """Full-range BT.601 (JFIF) RGB -> Y, Cb, Cr planes at ``bit_depth`` (scale 2**(bd-8)); encoder side only."""
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735891647856 * r - 0.331264108352144 * g + 0.5 * b
    cr = 0.5 * r - 0.418687589158345 * g - 0.081312410841655 * b
    if subsample:
        h, w = y.shape
        cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    k = 1 << (bit_depth - 8)
    hi = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    out = []
    for p, off in ((y, 0.0), (cb, 128.0), (cr, 128.0)):
        out.append(np.clip(np.floor((p + off) * k + 0.5), 0, hi).astype(dtype))
    return out


def _upsample2_x16(c: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling with centred chroma siting, result scaled by 16 (exact integers)."""
    c = c.astype(np.int64)
    # vertical: rows 2i -> 3*c[i] + c[i-1], 2i+1 -> 3*c[i] + c[i+1] (edges replicated)
    up = np.concatenate([c[:1], c[:-1]], axis=0)
    dn = np.concatenate([c[1:], c[-1:]], axis=0)
    v = np.empty((2 * c.shape[0], c.shape[1]), np.int64)
    v[0::2] = 3 * c + up
    v[1::2] = 3 * c + dn
    lf = np.concatenate([v[:, :1], v[:, :-1]], axis=1)
    rt = np.concatenate([v[:, 1:], v[:, -1:]], axis=1)
    out = np.empty((v.shape[0], 2 * v.shape[1]), np.int64)
    out[:, 0::2] = 3 * v + lf
    out[:, 1::2] = 3 * v + rt
    return out


# 16.16 fixed-point inverse matrix (JFIF)
_CR_R = 91881  # 1.402
_CB_G = 22554  # 0.344136
_CR_G = 46802  # 0.714136
_CB_B = 116130  # 1.772


def _ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int) -> np.ndarray:
    """Integer inverse of :func:`_rgb_to_ycbcr`; chroma may be half size (4:2:0). Deterministic everywhere."""
    lk = bit_depth - 8
    h, w = y.shape
    if cb.shape != y.shape:
        cb16 = _upsample2_x16(cb)[:h, :w]
        cr16 = _upsample2_x16(cr)[:h, :w]
    else:
        cb16 = cb.astype(np.int64) * 16
        cr16 = cr.astype(np.int64) * 16
    mid = 16 * (128 << lk)
    cb16 = cb16 - mid
    cr16 = cr16 - mid
    y20 = y.astype(np.int64) << 20
    sh = 20 + lk
    half = 1 << (sh - 1)
    r = (y20 + _CR_R * cr16 + half) >> sh
    g = (y20 - _CB_G * cb16 - _CR_G * cr16 + half) >> sh
    b = (y20 + _CB_B * cb16 + half) >> sh
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = np.clip(r, 0, 255)
    out[..., 1] = np.clip(g, 0, 255)
    out[..., 2] = np.clip(b, 0, 255)
    return out


# ------------------------------------------------------------------------------------------ PyAV glue

_PIXFMT = {  # pix_fmt -> (bit depth, subsampled)
    "yuv420p": (8, True),
    "yuvj420p": (8, True),
    "yuv444p": (8, False),
    "yuvj444p": (8, False),
    "yuv420p10le": (10, True),
    "yuv444p10le": (10, False),
}


def _frame_from_planes(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, pix_fmt)
    for plane, arr in zip(frame.planes, planes):
        itemsize = arr.dtype.itemsize
        buf = np.zeros((plane.height, plane.line_size // itemsize), dtype=arr.dtype.newbyteorder("<"))
        buf[: arr.shape[0], : arr.shape[1]] = arr
        plane.update(buf.tobytes())
    return frame


def _planes_from_frame(frame: av.VideoFrame) -> tuple[list[np.ndarray], int]:
    fmt = frame.format.name
    if fmt not in _PIXFMT:
        raise BitstreamError(f"anchor decoded to unsupported pixel format {fmt}")
    bd, _ = _PIXFMT[fmt]
    dtype = np.dtype("u1") if bd == 8 else np.dtype("<u2")
    out = []
    for plane in frame.planes:
        a = np.frombuffer(memoryview(plane), dtype=dtype)
        a = a.reshape(plane.height, plane.line_size // dtype.itemsize)[:, : plane.width]
        out.append(a.astype(np.uint16 if bd > 8 else np.uint8))
    return out, bd


def _encode_frame(codec: str, frame: av.VideoFrame, options: dict[str, str]) -> bytes:
    cc = av.CodecContext.create(codec, "w")
    cc.width = frame.width
    cc.height = frame.height
    cc.pix_fmt = frame.format.name
    cc.time_base = Fraction(1, 25)
    cc.framerate = Fraction(25, 1)
    cc.options = options
    frame.pts = 0
    try:
        packets = list(cc.encode(frame)) + list(cc.encode(None))
    except av.error.FFmpegError as e:  # pragma: no cover - encoder failures are environment problems
        raise ParameterError(f"anchor encoder {codec} failed: {e}") from None
    data = b"".join(bytes(p) for p in packets)
    if not data:  # pragma: no cover
        raise ParameterError(f"anchor encoder {codec} produced no data")
    return data


def _decode_frame(decoder: str, data: bytes, max_pixels: int) -> av.VideoFrame:
    try:
        cc = av.CodecContext.create(decoder, "r")
        # explode: report (rather than conceal) the damage the decoder notices
        cc.options = {"max_pixels": str(int(max_pixels)), "err_detect": "explode"}
        cc.thread_count = 1
        frames = list(cc.decode(av.Packet(data)))
        frames += list(cc.decode(None))
    except av.error.FFmpegError as e:
        msg = str(e).replace("\n", " ")
        raise BitstreamError(f"anchor {decoder} decode failed: {msg}") from None
    except (ValueError, MemoryError, RuntimeError) as e:
        raise BitstreamError(f"anchor {decoder} decode failed: {e}") from None
    if len(frames) != 1:
        raise BitstreamError(f"anchor {decoder} stream holds {len(frames)} pictures, expected 1")
    return frames[0]


# ------------------------------------------------------------------------------------------ codecs


@dataclass(frozen=True)
class _Codec:
    name: str
    min_size: int  # smallest width/height the encoder accepts
    even: bool  # needs even sizes (4:2:0)
    levels: int  # number of quality levels on the native grid (index 0 = worst)
    encode: Callable[[np.ndarray, int], tuple[str, bool, bytes]]  # (padded rgb, level) -> (transform, stripped, stream)
    decode: Callable[[bool, bytes, int], np.ndarray]  # (header stripped, stream, max_pixels) -> padded rgb


# --- AV1 intra (SVT-AV1 encoder, dav1d decoder).  CRF 70 .. 1 in quarter steps (SVT-AV1 >= 3 "extended CRF").
_AV1_CRF_MAX, _AV1_CRF_MIN = 70.0, 1.0
_AV1_LEVELS = int((_AV1_CRF_MAX - _AV1_CRF_MIN) * 4) + 1
AV1_PIX_FMT = "yuv420p10le"
AV1_PRESET = 4
AV1_PARAMS = "avif=1:tune=1"


def _av1_encode(rgb: np.ndarray, level: int) -> tuple[str, bool, bytes]:
    crf = _AV1_CRF_MAX - level / 4.0
    bd, sub = _PIXFMT[AV1_PIX_FMT]
    frame = _frame_from_planes(_rgb_to_ycbcr(rgb, bd, sub), AV1_PIX_FMT)
    params = f"{AV1_PARAMS}:crf={crf:g}" if AV1_PARAMS else f"crf={crf:g}"
    data = _encode_frame("libsvtav1", frame, {"preset": str(AV1_PRESET), "svtav1-params": params})
    stripped = data.startswith(_AV1_TD)
    if stripped:
        data = data[len(_AV1_TD) :]
    return _CT_YCBCR601, stripped, data


def _av1_decode(stripped: bool, data: bytes, max_pixels: int) -> np.ndarray:
    if stripped:
        data = _AV1_TD + data
    return _yuv_frame_to_rgb(_decode_frame("libdav1d", data, max_pixels))


# --- HEVC intra (x265 encoder, FFmpeg hevc decoder).  QP 51 .. 0.
HEVC_PIX_FMT = "yuv420p10le"
HEVC_PRESET = "slower"
HEVC_PARAMS = "tune=psnr"


def _hevc_encode(rgb: np.ndarray, level: int) -> tuple[str, bool, bytes]:
    qp = 51 - level
    bd, sub = _PIXFMT[HEVC_PIX_FMT]
    frame = _frame_from_planes(_rgb_to_ycbcr(rgb, bd, sub), HEVC_PIX_FMT)
    params = f"log-level=none:info=0:keyint=1:hash=0:qp={qp}"
    if HEVC_PARAMS:
        params += ":" + HEVC_PARAMS
    data = _encode_frame("libx265", frame, {"preset": HEVC_PRESET, "x265-params": params})
    return _CT_YCBCR601, False, data


def _hevc_decode(stripped: bool, data: bytes, max_pixels: int) -> np.ndarray:
    return _yuv_frame_to_rgb(_decode_frame("hevc", data, max_pixels))


# --- WebP lossy (libwebp encoder, FFmpeg's native webp/VP8 decoder).  Quality 0 .. 100 in steps of 0.5.
WEBP_METHOD = 6


def _webp_encode(rgb: np.ndarray, level: int) -> tuple[str, bool, bytes]:
    q = level / 2.0
    frame = _frame_from_planes(_rgb_to_ycbcr(rgb, 8, True), "yuv420p")
    data = _encode_frame("libwebp", frame, {"quality": f"{q:g}", "compression_level": str(WEBP_METHOD)})
    stripped = False
    # simple lossy file: RIFF <size> WEBP 'VP8 ' <size> <vp8 frame> [pad]; keep only the VP8 frame
    if len(data) >= 20 and data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8 ":
        (n,) = struct.unpack_from("<I", data, 16)
        if 20 + n <= len(data):
            data = data[20 : 20 + n]
            stripped = True
    return _CT_YCBCR601, stripped, data


def _webp_decode(stripped: bool, data: bytes, max_pixels: int) -> np.ndarray:
    if stripped:
        n = len(data)
        chunk = b"VP8 " + struct.pack("<I", n) + data + (b"\x00" if n & 1 else b"")
        data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
    return _yuv_frame_to_rgb(_decode_frame("webp", data, max_pixels))


# --- PNG (lossless RGB)


def _png_encode(rgb: np.ndarray, level: int) -> tuple[str, bool, bytes]:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    data = _encode_frame("png", frame, {"compression_level": "9", "pred": "mixed"})
    return _CT_RGB, False, data


def _png_decode(stripped: bool, data: bytes, max_pixels: int) -> np.ndarray:
    frame = _decode_frame("png", data, max_pixels)
    if frame.format.name != "rgb24":
        raise BitstreamError(f"anchor png decoded to {frame.format.name}, expected rgb24")
    p = frame.planes[0]
    a = np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : 3 * p.width]
    return a.reshape(p.height, p.width, 3).copy()


# --- JPEG (FFmpeg mjpeg), fallback.  qscale 31 .. 1, forced through qmin = qmax.
JPEG_PIX_FMT = "yuvj420p"


def _jpeg_encode(rgb: np.ndarray, level: int) -> tuple[str, bool, bytes]:
    bd, sub = _PIXFMT[JPEG_PIX_FMT]
    frame = _frame_from_planes(_rgb_to_ycbcr(rgb, bd, sub), JPEG_PIX_FMT)
    qs = str(31 - level)
    opts = {"huffman": "optimal", "flags": "+bitexact", "qmin": qs, "qmax": qs, "strict": "-1"}
    data = _encode_frame("mjpeg", frame, opts)
    return _CT_YCBCR601, False, data


def _jpeg_decode(stripped: bool, data: bytes, max_pixels: int) -> np.ndarray:
    return _yuv_frame_to_rgb(_decode_frame("mjpeg", data, max_pixels))


def _yuv_frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    planes, bd = _planes_from_frame(frame)
    if len(planes) != 3:
        raise BitstreamError(f"anchor decoded to {frame.format.name}, expected 3 planes")
    return _ycbcr_to_rgb(planes[0], planes[1], planes[2], bd)


_CODECS: dict[int, _Codec] = {
    1: _Codec("av1-intra", 4, True, _AV1_LEVELS, _av1_encode, _av1_decode),
    2: _Codec("hevc-intra", 16, True, 52, _hevc_encode, _hevc_decode),
    3: _Codec("webp", 1, True, 201, _webp_encode, _webp_decode),
    4: _Codec("png", 1, False, 1, _png_encode, _png_decode),
    5: _Codec("jpeg", 1, True, 31, _jpeg_encode, _jpeg_decode),
}


# ------------------------------------------------------------------------------------------ helpers


def _codec_id(codec: int | str) -> int:
    if isinstance(codec, str):
        if codec not in _NAME_TO_ID:
            raise ParameterError(f"unknown anchor codec {codec!r} (known: {', '.join(_NAME_TO_ID)})")
        return _NAME_TO_ID[codec]
    if isinstance(codec, bool) or not isinstance(codec, (int, np.integer)) or int(codec) not in _CODECS:
        raise ParameterError(f"unknown anchor codec id {codec!r} (known: {sorted(_CODECS)})")
    return int(codec)


def _pad(rgb: np.ndarray, spec: _Codec) -> tuple[np.ndarray, int, int]:
    h, w, _ = rgb.shape
    th, tw = max(h, spec.min_size), max(w, spec.min_size)
    if spec.even:
        th += th & 1
        tw += tw & 1
    if (th, tw) != (h, w):
        rgb = np.pad(rgb, ((0, th - h), (0, tw - w), (0, 0)), mode="edge")
    return rgb, tw - w, th - h


def _payload(color_transform: str, stripped: bool, pw: int, ph: int, data: bytes) -> bytes:
    """The anchor payload (docs/bitstream.md §Anchor payload)."""
    flags = dict(header_stripped=stripped, color_transform=color_transform)
    return bs.AnchorPictureSyntax.build(dict(flags=flags, pad_w=pw, pad_h=ph, data=data))


def quality_to_level(codec: int | str, quality: float) -> int:
    """Index on the codec's native quality grid (0 = worst) for a codec-agnostic quality 0..100."""
    spec = _CODECS[_codec_id(codec)]
    return int(round(float(quality) / 100.0 * (spec.levels - 1)))


def level_to_quality(codec: int | str, level: int) -> float:
    """Inverse of :func:`quality_to_level` (the smallest quality that maps onto ``level``'s grid point)."""
    spec = _CODECS[_codec_id(codec)]
    return 100.0 * level / max(spec.levels - 1, 1)


# ------------------------------------------------------------------------------------------ API


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ParameterError("anchor must be a uint8 array of shape [H, W, 3]")
    h, w, _ = rgb.shape
    if h < 1 or w < 1 or h * w > MAX_ANCHOR_PIXELS or max(h, w) > 16383:
        raise ParameterError(f"anchor size {w}x{h} out of range (1..16383 per side, <= {MAX_ANCHOR_PIXELS} pixels)")


def fit_anchor(
    rgb: np.ndarray,
    *,
    codec: int | str = DEFAULT_ANCHOR_CODEC,
    quality: float | None = None,
    max_bytes: int | None = None,
) -> tuple[int, bytes, float]:
    """:func:`encode_anchor`, also returning the quality actually used (on the codec's grid)."""
    cid = _codec_id(codec)
    spec = _CODECS[cid]
    _check_rgb(rgb)
    if quality is not None:
        try:
            q = float(quality)
        except (TypeError, ValueError):
            raise ParameterError(f"anchor quality must be a number, got {quality!r}") from None
        if not 0.0 <= q <= 100.0:
            raise ParameterError(f"anchor quality {quality} out of range 0..100")
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1
    ):
        raise ParameterError(f"max_bytes must be a positive integer, got {max_bytes!r}")

    padded, pw, ph = _pad(np.ascontiguousarray(rgb), spec)
    cache: dict[int, bytes] = {}

    def payload(level: int) -> bytes:
        if level not in cache:
            transform, stripped, data = spec.encode(padded, level)
            cache[level] = _payload(transform, stripped, pw, ph, data)
        return cache[level]

    if quality is None:
        top = spec.levels - 1 if max_bytes is not None else quality_to_level(cid, DEFAULT_QUALITY)
    else:
        top = quality_to_level(cid, quality)
    if max_bytes is None or len(payload(top)) <= max_bytes:
        return cid, payload(top), level_to_quality(cid, top)

    # Largest level in [0, top] whose payload fits.  Sizes are monotone in practice; log(size) is close to
    # linear in the level, so guess by interpolation (bisection every other step keeps the worst case
    # logarithmic).  Typically 3-5 encodes.
    def logsize(level: int) -> float:
        return math.log(len(payload(level)))

    target = math.log(max_bytes)
    hi, lo = top, None  # hi: known not to fit
    step = max(1, spec.levels // 12)
    guess = hi - step
    while lo is None:
        g = max(guess, 0)
        if len(payload(g)) <= max_bytes:
            lo = g
        elif g == 0:
            raise ParameterError(
                f"anchor cannot fit in {max_bytes} bytes with {spec.name}: smallest payload is "
                f"{len(payload(0))} bytes"
            )
        else:
            # extrapolate with the slope seen between g and hi (at least one step further down)
            slope = (logsize(hi) - logsize(g)) / (hi - g)
            jump = (logsize(g) - target) / slope if slope > 0 else 2 * (hi - g)
            hi, guess = g, g - max(1, int(math.ceil(jump * 1.25)))
    bisect = False
    while hi - lo > 1:
        if bisect:
            g = (lo + hi) // 2
        else:
            a, b = logsize(lo), logsize(hi)
            frac = (target - a) / (b - a) if b > a else 0.5
            g = min(max(int(round(lo + frac * (hi - lo))), lo + 1), hi - 1)
        width = hi - lo
        if len(payload(g)) <= max_bytes:
            lo = g
        else:
            hi = g
        bisect = (hi - lo) > width // 2 and not bisect
    return cid, payload(lo), level_to_quality(cid, lo)


def encode_anchor(
    rgb: np.ndarray,
    *,
    codec: int | str = DEFAULT_ANCHOR_CODEC,
    quality: float | None = None,
    max_bytes: int | None = None,
) -> tuple[int, bytes]:
    """Code one RGB picture (uint8 [H, W, 3], any size) as an anchor; returns ``(codec_id, payload)``.

    ``quality`` is a codec-agnostic knob, 0 (smallest) .. 100 (best), mapped onto the codec's native grid
    (AV1: CRF 70..1 in quarter steps, HEVC: QP 51..0, WebP: quality 0..100 in half steps, JPEG: qscale 31..1;
    PNG is lossless and ignores it); default :data:`DEFAULT_QUALITY`.  With ``max_bytes``, the largest quality
    (not above ``quality`` when given) whose payload fits is searched for; ParameterError when even the lowest
    quality does not fit.
    """
    cid, data, _ = fit_anchor(rgb, codec=codec, quality=quality, max_bytes=max_bytes)
    return cid, data


def decode_anchor(codec_id: int, payload: bytes, *, max_pixels: int = MAX_ANCHOR_PIXELS,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an anchor payload to uint8 [H, W, 3].  Same bytes give the same pixels (integer colour path).

    With ``size`` = (width, height) (the stream's picture size), a picture of any other size is refused, and the
    image decoder is not allowed to allocate more than that size plus the largest crop.

    Damage raises BitstreamError: the unit's CRC-32 covers the payload, its fields are checked as it is parsed,
    and the decoders run with FFmpeg's ``err_detect=explode``.
    """
    if isinstance(codec_id, bool) or not isinstance(codec_id, (int, np.integer)) or int(codec_id) not in _CODECS:
        raise BitstreamError(f"unknown anchor codec id {codec_id!r}")
    spec = _CODECS[int(codec_id)]
    try:
        payload = bytes(payload)
    except TypeError:
        raise BitstreamError("anchor payload must be bytes") from None
    p = bs.parse_syntax(bs.AnchorPictureSyntax, payload, f"{spec.name} anchor payload")
    if (p.flags.color_transform == _CT_RGB) != (spec.name == "png"):
        raise BitstreamError(f"{spec.name} anchor payload has colour transform {p.flags.color_transform}")
    pw, ph = p.pad_w, p.pad_h
    if size is not None:
        max_pixels = min(max_pixels, (size[0] + bs.MAX_ANCHOR_PAD) * (size[1] + bs.MAX_ANCHOR_PAD))
    img = spec.decode(p.flags.header_stripped, bytes(p.data), max_pixels)
    h, w, _ = img.shape
    if pw >= w or ph >= h:
        raise BitstreamError(f"anchor crop {pw}x{ph} exceeds the decoded {w}x{h} picture")
    if size is not None and (w - pw, h - ph) != tuple(size):
        raise BitstreamError(f"anchor picture is {w - pw}x{h - ph}, the stream's pictures are {size[0]}x{size[1]}")
    return np.ascontiguousarray(img[: h - ph, : w - pw])
