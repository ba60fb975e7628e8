"""Matroska (.mkv) mapping for GVC streams: a lean EBML muxer and a bounded, streaming EBML demuxer.

Why our own EBML both ways: every PyAV way of adding an output stream checks the codec id against the
Matroska muxer, so a codec FFmpeg does not know cannot be written with its FourCC, extradata and keyframe
flags; and reading the blocks from the same walk that reads the header parses each file once, with our
own limits on sizes, element counts and truncation (PyAV is not imported here).

Mapping (what a player or ``ffmpeg -c copy`` needs, nothing more; byte budget in docs/bitstream.md,
"Matroska byte budget")
-------
* EBML header: DocType ``matroska`` only; every other EBML header element has the value its default
  gives (EBML 1, IDs <= 4 bytes, sizes <= 8 bytes, DocTypeVersion/ReadVersion 1: only Matroska v1
  elements are written). With extra tracks (audio, subtitles) SimpleBlocks are used, so DocTypeVersion
  and DocTypeReadVersion 2 are written.
* One video track (number 1), CodecID ``V_MS/VFW/FOURCC``. CodecPrivate = 40-byte little-endian
  BITMAPINFOHEADER (biSize=40, biWidth, biHeight, biPlanes=1, biBitCount=24, biCompression=FourCC
  ``GVC1``, rest 0) followed by the GVC sequence header. ``ffmpeg -i`` shows
  ``Video: none (GVC1 / 0x31435647)``. Readers take the bytes after the first 40 (FFmpeg's remuxer
  rewrites biSize as 40+extradata).
* PixelWidth/PixelHeight; DefaultDuration = round(1e9 / fps) ns (nominal frame duration).
* Timestamps: TimestampScale is the default 1,000,000 ns (1 ms, also FFmpeg's), so a ``-c copy``
  remux keeps every timestamp. Frame index ``n`` is stored as ``t(n) = floor(n * 1000 / fps + 1/2)`` ms;
  a block's duration is ``t(pts + duration) - t(pts)``. Reading inverts with
  ``n = floor(t * fps / 1000 + 1/2)``; exact for fps < 1000 (rounding error <= 0.5 ms < half a frame).
* The frame rate is read back from DefaultDuration as the nearest fraction with denominator <= 1001
  (exact for 30000/1001, 24000/1001, 25, 10, ...). Only a rate that this cannot give back exactly is
  also written as the global tag ``GVC_FRAME_RATE`` ("p/q"); the reader prefers the tag when present,
  parsed strictly (bounded digits), and hides it from ``tags``. GVC streams also carry the exact rate
  in the sequence header.
* Each GOP unit is one BlockGroup{Block, BlockDuration[, ReferenceBlock]} (a GOP covers many frames, so
  every block carries its duration; no lacing). A BlockGroup without ReferenceBlock is a keyframe; a
  non-keyframe unit carries ReferenceBlock = (previous block's timestamp - this block's timestamp), or
  -1 for a first block. FFmpeg reads this back as the keyframe flag.
* A new Cluster starts at every keyframe and whenever a relative block timestamp would leave int16 or
  the cluster would pass 256 MiB. A Cluster's size field is 4 bytes: written as "unknown" and, in a
  seekable file, patched when the cluster ends. Every block is written and flushed when it arrives, so
  an interrupted write keeps every finished block.
* Seekable output: the Segment is written with an unknown size and placeholders (Void elements of the
  same length) for the SeekHead (one entry: Cues) and Info/Duration; on close the Cues (one CuePoint per
  keyframe) are appended and the Segment size, SeekHead, Duration and last Cluster size are patched.
  A file whose writer was killed is therefore a valid live-layout file. Non-seekable output (pipe,
  stdout): unknown-size Segment and Clusters, no SeekHead, Duration or Cues.
* Info: MuxingApp and WritingApp ``gvc`` (mandatory elements, kept short), optional Title. Tags (one
  global Tag of SimpleTags) and Attachments only when the caller gives some. Output is deterministic
  (no dates; UIDs derived from content).
* Extra tracks (:class:`MkvTrack`: audio, subtitles) are copied packet for packet: numbers 2, 3, ...,
  blocks with nanosecond timestamps (stored in ms, like FFmpeg's muxer), SimpleBlock for keyframes
  without a duration, else a BlockGroup.

Reading walks the file once, front to back, from a file or a pipe: EBML header, Segment, the header
elements before the first Cluster (plus, in a seekable file, those the SeekHead points to after the
clusters), then the Clusters as blocks are requested. Limits: metadata elements are read into memory
only below small caps (:data:`METADATA_CAPS`), a block below ``max_block_bytes``, and at most
:data:`MAX_IDLE_ELEMENTS` elements may follow one another without a block (a file of millions of Void
elements is refused in milliseconds). A truncated file yields every complete block, then raises one
``BitstreamError`` starting with "truncated Matroska file".
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

from container import ebml
from container.ebml import encode_id, encode_size, float64, master, sint, string, uint
from gvc.errors import BitstreamError, ParameterError

# ------------------------------------------------------------------------------------ element IDs
EBML = 0x1A45DFA3
EBML_VERSION, EBML_READ_VERSION, EBML_MAX_ID_LENGTH, EBML_MAX_SIZE_LENGTH = 0x4286, 0x42F7, 0x42F2, 0x42F3
DOC_TYPE, DOC_TYPE_VERSION, DOC_TYPE_READ_VERSION = 0x4282, 0x4287, 0x4285
SEGMENT = 0x18538067
SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION, MUXING_APP, WRITING_APP, TITLE = (
    0x1549A966, 0x2AD7B1, 0x4489, 0x4D80, 0x5741, 0x7BA9)
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE, FLAG_LACING = (
    0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83, 0x9C)
CODEC_ID, CODEC_PRIVATE, DEFAULT_DURATION, VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = (
    0x86, 0x63A2, 0x23E383, 0xE0, 0xB0, 0xBA)
LANGUAGE, TRACK_NAME, CODEC_DELAY, SEEK_PRE_ROLL = 0x22B59C, 0x536E, 0x56AA, 0x56BB
AUDIO, SAMPLING_FREQUENCY, CHANNELS, BIT_DEPTH = 0xE1, 0xB5, 0x9F, 0x6264
CLUSTER, TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, BLOCK_DURATION, REFERENCE_BLOCK = (
    0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1, 0x9B, 0xFB)
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION, CUE_RELATIVE_POSITION = (
    0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7, 0xF1, 0xF0)
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487
TAG_UID_TARGETS = (0x63C5, 0x63C9, 0x63C4, 0x63C6)  # TagTrackUID, TagEditionUID, TagChapterUID, TagAttachmentUID
ATTACHMENTS, ATTACHED_FILE, FILE_NAME, FILE_MEDIA_TYPE, FILE_DATA, FILE_UID = (
    0x1941A469, 0x61A7, 0x466E, 0x4660, 0x465C, 0x46AE)
CHAPTERS, VOID, CRC32 = 0x1043A770, 0xEC, 0xBF

CODEC_ID_VFW = "V_MS/VFW/FOURCC"
TIMESTAMP_SCALE_NS = 1_000_000
MUXER_NAME = "gvc"  # MuxingApp and WritingApp: mandatory, kept short (every byte counts at GVC's rates)
FRAME_RATE_TAG = "GVC_FRAME_RATE"
BITMAPINFOHEADER = struct.Struct("<IiiHH4sIiiII")  # 40 bytes
TRACK_TYPE_VIDEO, TRACK_TYPE_AUDIO, TRACK_TYPE_SUBTITLE = 1, 2, 17
_GVC_TRACK = 1
_REL_TS = range(-32768, 32768)  # a block's int16 timestamp relative to its cluster
_CLUSTER_SIZE_BYTES = 4  # width of a Cluster's size field, patched when the cluster ends
_MAX_CLUSTER_PAYLOAD = (1 << 7 * _CLUSTER_SIZE_BYTES) - 2

# Reading limits. Metadata is read into memory only below these caps (the EBML header, SeekHead, Info,
# Tracks: refused above; Tags and Attachments: skipped with a warning above). A GVC sequence header is
# about 100 bytes; audio CodecPrivate (Vorbis, ASS) stays within tens of kilobytes.
METADATA_CAPS = {EBML: 4 << 10, SEEK_HEAD: 64 << 10, INFO: 64 << 10, TRACKS: 256 << 10,
                 TAGS: 256 << 10, ATTACHMENTS: 1 << 20, CUES: 16 << 20}
MAX_CODEC_PRIVATE = 16 << 10  # of the GVC track
MAX_BLOCK_BYTES = (64 << 20) + 4096  # a GVC unit is at most 64 MiB (container.bitstream.MAX_UNIT_BYTES)
MAX_IDLE_ELEMENTS = 4096  # elements in a row without a block of a known track (Void, empty Clusters, ...)
MAX_TRACKS = 64
_MAX_GROUP_CHILDREN = 64  # a BlockGroup holds a Block and a few small elements
_OPTIONAL = (TAGS, ATTACHMENTS, CUES)  # skipped (with a warning) rather than refused when over their cap
_HEADER_ELEMENTS = (SEEK_HEAD, INFO, TRACKS, TAGS, ATTACHMENTS)
_TOP_LEVEL = {SEEK_HEAD, INFO, TRACKS, TAGS, ATTACHMENTS, CLUSTER, CUES, CHAPTERS, 0x1B538667}
_FRAME_RATE_TEXT = re.compile(r"(\d{1,9})(?:/(\d{1,9})|\.(\d{1,9}))?")
_NAMES = {EBML: "EBML header", SEEK_HEAD: "SeekHead", INFO: "Info", TRACKS: "Tracks", TAGS: "Tags",
          ATTACHMENTS: "Attachments", CUES: "Cues", CLUSTER: "Cluster", SIMPLE_BLOCK: "SimpleBlock",
          BLOCK_GROUP: "BlockGroup"}


@dataclass
class MkvPacket:
    """A block of the GVC track, timed in frames."""
    data: bytes
    pts: int  # first frame index covered
    duration: int  # number of frames covered
    keyframe: bool


@dataclass
class MkvTrack:
    """A track other than the GVC video track (audio, subtitles), carried packet for packet."""
    type: int  # TRACK_TYPE_AUDIO, TRACK_TYPE_SUBTITLE, ...
    codec_id: str  # Matroska CodecID, e.g. "A_AAC", "A_OPUS", "S_TEXT/UTF8"
    codec_private: bytes = b""
    number: int = 0  # assigned by the writer (2, 3, ...); the file's TrackNumber when read
    language: str | None = None
    name: str | None = None
    default_duration: int | None = None  # ns
    codec_delay: int | None = None  # ns (Opus)
    seek_pre_roll: int | None = None  # ns (Opus)
    sampling_frequency: float | None = None  # audio
    channels: int | None = None  # audio
    bit_depth: int | None = None  # audio
    width: int | None = None  # video
    height: int | None = None  # video


# FFmpeg codec name -> Matroska CodecID, for codecs whose packets and extradata Matroska stores as they
# are: the tracks ``gvc encode`` copies beside the video.
COPYABLE_CODECS = {
    "aac": "A_AAC", "opus": "A_OPUS", "vorbis": "A_VORBIS", "flac": "A_FLAC", "mp3": "A_MPEG/L3",
    "mp2": "A_MPEG/L2", "ac3": "A_AC3", "eac3": "A_EAC3", "pcm_s16le": "A_PCM/INT/LIT",
    "pcm_s24le": "A_PCM/INT/LIT", "pcm_f32le": "A_PCM/FLOAT/IEEE",
    "subrip": "S_TEXT/UTF8", "srt": "S_TEXT/UTF8", "ass": "S_TEXT/ASS", "ssa": "S_TEXT/SSA", "webvtt": "S_TEXT/WEBVTT",
}
OPUS_SEEK_PRE_ROLL_NS = 80_000_000  # what FFmpeg writes (RFC 7845: 80 ms of pre-roll after a seek)


def copied_track(source) -> MkvTrack:
    """The Matroska declaration of a track copied from another file. ``source`` describes it as FFmpeg
    does (fields kind, codec, extradata, language, title, sample_rate, channels, sample_bytes, priming:
    ``ffmpeg_bridge.tracks.SourceTrack``); its codec must be in :data:`COPYABLE_CODECS`."""
    codec_id = COPYABLE_CODECS[source.codec]
    t = MkvTrack(type=TRACK_TYPE_AUDIO if source.kind == "audio" else TRACK_TYPE_SUBTITLE, codec_id=codec_id,
                 codec_private=bytes(source.extradata), language=source.language, name=source.title)
    if source.kind != "audio":
        return t
    t.sampling_frequency, t.channels = float(source.sample_rate), source.channels
    if codec_id.startswith("A_PCM"):
        t.bit_depth = 8 * source.sample_bytes
    priming, rate = source.priming, source.sample_rate
    if codec_id == "A_OPUS" and len(t.codec_private) >= 12:
        priming, rate = struct.unpack_from("<H", t.codec_private, 10)[0], 48000  # OpusHead pre-skip
        t.seek_pre_roll = OPUS_SEEK_PRE_ROLL_NS
    if priming:
        # FFmpeg presents the priming samples before 0 (pts - CodecDelay); Matroska stores them from
        # CodecDelay on: a copied packet is written at its presentation time + codec_delay.
        t.codec_delay = round(Fraction(priming * 10**9, rate))
    return t


@dataclass
class MkvBlock:
    """A block of any track, timed in nanoseconds (Matroska's own unit, TimestampScale applied)."""
    track: int
    data: bytes
    time_ns: int  # the stored time; FFmpeg presents an audio block at time_ns - its track's codec_delay
    duration_ns: int | None  # None: the block carries none and its track has no DefaultDuration
    keyframe: bool


def _frame_to_ms(frame: int, fps: Fraction) -> int:
    return math.floor(Fraction(frame * 1000) / fps + Fraction(1, 2))


def _time_to_frame(t: Fraction, fps: Fraction) -> int:
    return math.floor(t * fps + Fraction(1, 2))


def _rate_from_default_duration(ns: int) -> Fraction:
    return Fraction(10**9, ns).limit_denominator(1001)


def _uid(*parts: bytes) -> int:
    """A 32-bit UID derived from content (deterministic output; 4 bytes are unique enough in one file)."""
    h = hashlib.sha256(b"\x00".join(parts)).digest()
    return int.from_bytes(h[:4], "big") or 1


def _void(total: int) -> bytes:
    """A Void element of exactly ``total`` bytes (2 <= total <= 128): a placeholder patched on close."""
    return bytes([VOID, 0x80 | (total - 2)]) + bytes(total - 2)


def _is_seekable(f) -> bool:
    try:
        if not f.seekable():
            return False
        f.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def parse_frame_rate(text: str) -> Fraction | None:
    """A frame rate tag ("30000/1001", "25", "29.97") with at most 9 digits per number, in (0, 1000) fps;
    None for anything else (``Fraction("1e99999999")`` would take forever)."""
    m = _FRAME_RATE_TEXT.fullmatch(text.strip())
    if not m:
        return None
    whole, den, frac = m.groups()
    rate = Fraction(int(whole), int(den)) if den and int(den) else (
        Fraction(f"{whole}.{frac}") if frac else Fraction(int(whole)) if den is None else None)
    return rate if rate is not None and 0 < rate < 1000 else None


# ------------------------------------------------------------------------------------------ writer
class MatroskaWriter:
    """Write a GVC stream (sequence header + GOP units) as a Matroska file; see the module docstring."""

    def __init__(self, file, *, width: int, height: int, fps: Fraction, codec_private: bytes,
                 fourcc: bytes = b"GVC1", tags: dict[str, str] | None = None,
                 attachments: list[tuple[str, str, bytes]] | None = None, title: str | None = None,
                 tracks: list[MkvTrack] | None = None):
        fps = Fraction(fps)
        if not (isinstance(width, int) and isinstance(height, int) and 0 < width < 1 << 31
                and 0 < height < 1 << 31):
            raise ParameterError(f"invalid frame size {width}x{height}")
        if not 0 < fps < 1000:
            raise ParameterError(f"frame rate {fps} outside (0, 1000) fps supported by the Matroska mapping")
        fourcc = bytes(fourcc)
        if len(fourcc) != 4:
            raise ParameterError(f"FourCC must be 4 bytes, got {fourcc!r}")
        attachments = [(str(n), str(m), bytes(d)) for n, m, d in (attachments or [])]
        if len({n for n, _, _ in attachments}) != len(attachments):
            raise ParameterError("duplicate attachment names")
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if any(k.upper() == FRAME_RATE_TAG for k in tags):
            raise ParameterError(f"tag name {FRAME_RATE_TAG} is reserved")
        self.tracks = [MkvTrack(**{**vars(t), "number": _GVC_TRACK + 1 + i}) for i, t in enumerate(tracks or [])]
        if len(self.tracks) >= MAX_TRACKS:
            raise ParameterError(f"too many tracks ({len(self.tracks) + 1}, at most {MAX_TRACKS})")

        self.width, self.height, self.fps = width, height, fps
        self._own = isinstance(file, (str, bytes, os.PathLike))
        self._f: BinaryIO = open(file, "wb") if self._own else file
        self._seekable = _is_seekable(self._f)
        self._base = self._f.tell() if self._seekable else 0
        self._pos = 0  # bytes written so far, relative to _base
        self._closed = False
        self._prev_ts: int | None = None  # of the GVC track's previous block
        self._prev_end_frame: int | None = None
        self._end_ms = 0
        self._cluster_ts: int | None = None
        self._cluster_at = 0  # position of the open cluster's size field
        self._cues: list[tuple[int, int]] = []  # (keyframe timestamp, cluster position in the segment)

        try:
            self._write_header(bytes(codec_private), fourcc, tags, attachments, title)
        except BaseException:
            if self._own:
                self._f.close()
            raise

    # -- header
    def _write_header(self, codec_private, fourcc, tags, attachments, title):
        ebml_children = [string(DOC_TYPE, "matroska")]
        if self.tracks:  # SimpleBlock is a Matroska v2 element
            ebml_children += [uint(DOC_TYPE_VERSION, 2), uint(DOC_TYPE_READ_VERSION, 2)]
        ebml_header = master(EBML, *ebml_children)

        info_children = [string(MUXING_APP, MUXER_NAME), string(WRITING_APP, MUXER_NAME)]
        if title:
            info_children.append(string(TITLE, title))
        duration_at = sum(map(len, info_children))
        if self._seekable:
            info_children.append(_void(len(float64(DURATION, 0.0))))  # Duration, patched on close
        info = master(INFO, *info_children)
        duration_at += len(info) - sum(map(len, info_children))  # + Info's own header

        bmih = BITMAPINFOHEADER.pack(40, self.width, self.height, 1, 24, fourcc, 0, 0, 0, 0, 0)
        video = master(
            TRACK_ENTRY, uint(TRACK_NUMBER, _GVC_TRACK), uint(TRACK_UID, _uid(b"track", codec_private)),
            uint(TRACK_TYPE, TRACK_TYPE_VIDEO), string(CODEC_ID, CODEC_ID_VFW),
            ebml.element(CODEC_PRIVATE, bmih + codec_private),
            uint(DEFAULT_DURATION, round(Fraction(10**9) / self.fps)),
            master(VIDEO, uint(PIXEL_WIDTH, self.width), uint(PIXEL_HEIGHT, self.height)))
        tracks = master(TRACKS, video, *(_track_entry(t) for t in self.tracks))

        if _rate_from_default_duration(round(Fraction(10**9) / self.fps)) != self.fps:
            tags = {**tags, FRAME_RATE_TAG: f"{self.fps.numerator}/{self.fps.denominator}"}
        head = [info, tracks]
        if tags:
            head.append(master(TAGS, master(TAG, master(TARGETS), *(
                master(SIMPLE_TAG, string(TAG_NAME, k), string(TAG_STRING, v)) for k, v in tags.items()))))
        if attachments:
            head.append(master(ATTACHMENTS, *(
                master(ATTACHED_FILE, string(FILE_NAME, n), string(FILE_MEDIA_TYPE, m),
                       ebml.element(FILE_DATA, d), uint(FILE_UID, _uid(b"file", n.encode(), d)))
                for n, m, d in attachments)))

        seek_head = _void(len(_seek_head(0))) if self._seekable else b""  # patched on close
        segment_head = encode_id(SEGMENT) + ebml.UNKNOWN_SIZE_VINT  # size patched on close
        self._segment_size_at = len(ebml_header) + len(encode_id(SEGMENT))
        self._segment_start = len(ebml_header) + len(segment_head)
        self._duration_at = self._segment_start + len(seek_head) + duration_at
        self._emit(ebml_header + segment_head + seek_head + b"".join(head))
        self.header_bytes = self._pos  # container bytes before the first cluster
        self._flush()

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (the Cues and the SeekHead come at close)."""
        return self._pos

    # -- low-level output
    def _emit(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def _flush(self) -> None:
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()  # a write error (full disk) surfaces here, at once

    def _patch(self, rel_pos: int, data: bytes) -> None:
        self._f.seek(self._base + rel_pos)
        self._f.write(data)
        self._f.seek(self._base + self._pos)

    # -- clusters
    def _start_cluster(self, ts: int) -> None:
        """Open a Cluster at ``ts`` (at 0 for a negative time, e.g. AAC priming: its block sits before it)."""
        self._end_cluster()
        ts = max(ts, 0)
        head = encode_id(CLUSTER) + b"\x1f\xff\xff\xff" + uint(TIMESTAMP, ts)  # 4-byte unknown size
        self._cluster_ts, self._cluster_at = ts, self._pos + len(encode_id(CLUSTER))
        self._emit(head)

    def _end_cluster(self) -> None:
        if self._cluster_ts is not None and self._seekable:
            size = self._pos - self._cluster_at - _CLUSTER_SIZE_BYTES
            self._patch(self._cluster_at, encode_size(size, _CLUSTER_SIZE_BYTES))
        self._cluster_ts = None

    def _fits_cluster(self, ts: int, nbytes: int) -> bool:
        return (self._cluster_ts is not None and ts - self._cluster_ts in _REL_TS
                and self._pos + nbytes - self._cluster_at <= _MAX_CLUSTER_PAYLOAD)

    def write(self, packet: MkvPacket) -> None:
        """Write one GVC unit covering frames [pts, pts + duration)."""
        self._check_open()
        pts, dur = packet.pts, packet.duration
        if not isinstance(pts, int) or pts < 0:
            raise ParameterError(f"packet pts must be a non-negative int, got {pts!r}")
        if not isinstance(dur, int) or dur < 1:
            raise ParameterError(f"packet duration must be a positive int, got {dur!r}")
        if self._prev_end_frame is not None and pts < self._prev_end_frame:
            raise ParameterError(f"packet pts {pts} overlaps the previous packet ending at frame "
                                 f"{self._prev_end_frame}")
        ts = _frame_to_ms(pts, self.fps)
        end = _frame_to_ms(pts + dur, self.fps)
        keyframe = bool(packet.keyframe)
        data = bytes(packet.data)
        extra = [uint(BLOCK_DURATION, end - ts)]
        if not keyframe:
            extra.append(sint(REFERENCE_BLOCK, (self._prev_ts - ts) if self._prev_ts is not None else -1))
        if keyframe or not self._fits_cluster(ts, len(data) + 64):
            self._start_cluster(ts)
            if keyframe and self._seekable:
                self._cues.append((ts, self._cluster_at - len(encode_id(CLUSTER)) - self._segment_start))
        self._emit(master(BLOCK_GROUP, ebml.element(BLOCK, _block_head(_GVC_TRACK, ts - self._cluster_ts) + data),
                          *extra))
        self._flush()
        self._prev_ts = ts
        self._prev_end_frame = pts + dur
        self._end_ms = max(self._end_ms, end)

    def write_block(self, track: int, data: bytes, time_ns: int, duration_ns: int | None = None,
                    keyframe: bool = True) -> None:
        """Write one packet of an extra track (numbered as in ``self.tracks``), copied as it is.

        Blocks are stored in file order: give them in (roughly) increasing time, interleaved with the
        GVC units (a block more than 32.7 s away from its cluster's start opens a new cluster)."""
        self._check_open()
        if not any(t.number == track for t in self.tracks):
            raise ParameterError(f"no extra track number {track} (tracks: {[t.number for t in self.tracks]})")
        ts = round(Fraction(time_ns, TIMESTAMP_SCALE_NS))
        data = bytes(data)
        if not self._fits_cluster(ts, len(data) + 64):
            self._start_cluster(ts)
        rel = ts - self._cluster_ts
        if keyframe and duration_ns is None:
            self._emit(ebml.element(SIMPLE_BLOCK, _block_head(track, rel, 0x80) + data))
        else:
            extra = []
            if duration_ns is not None:
                extra.append(uint(BLOCK_DURATION, round(Fraction(duration_ns, TIMESTAMP_SCALE_NS))))
            if not keyframe:
                extra.append(sint(REFERENCE_BLOCK, -1))
            self._emit(master(BLOCK_GROUP, ebml.element(BLOCK, _block_head(track, rel) + data), *extra))
        self._flush()
        if duration_ns is not None:
            self._end_ms = max(self._end_ms, ts + round(Fraction(duration_ns, TIMESTAMP_SCALE_NS)))

    def _check_open(self) -> None:
        if self._closed:
            raise ParameterError("write() on a closed MatroskaWriter")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._end_cluster()
            if self._seekable:
                cues_pos = self._pos - self._segment_start
                self._emit(master(CUES, *(master(CUE_POINT, uint(CUE_TIME, ts), master(
                    CUE_TRACK_POSITIONS, uint(CUE_TRACK, _GVC_TRACK), uint(CUE_CLUSTER_POSITION, cpos)))
                    for ts, cpos in self._cues)))
                self._patch(self._segment_size_at, encode_size(self._pos - self._segment_start, 8))
                self._patch(self._segment_start, _seek_head(cues_pos))
                self._patch(self._duration_at, float64(DURATION, float(self._end_ms)))
            self._flush()
        finally:
            if self._own:
                self._f.close()

    def __enter__(self) -> "MatroskaWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _seek_head(cues_pos: int) -> bytes:
    """The SeekHead: one entry, the Cues (Info and Tracks come first and need none); 8-byte position."""
    return master(SEEK_HEAD, master(SEEK, ebml.element(SEEK_ID, encode_id(CUES)),
                                    uint(SEEK_POSITION, cues_pos, 8)))


def _block_head(track: int, rel_ts: int, flags: int = 0) -> bytes:
    return encode_size(track) + struct.pack(">hB", rel_ts, flags)


def _track_entry(t: MkvTrack) -> bytes:
    children = [uint(TRACK_NUMBER, t.number), uint(TRACK_UID, _uid(b"track", str(t.number).encode(),
                                                                   t.codec_id.encode(), t.codec_private)),
                uint(TRACK_TYPE, t.type), string(CODEC_ID, t.codec_id)]
    if t.codec_private:
        children.append(ebml.element(CODEC_PRIVATE, t.codec_private))
    for el_id, value, put in ((LANGUAGE, t.language, string), (TRACK_NAME, t.name, string),
                              (DEFAULT_DURATION, t.default_duration, uint), (CODEC_DELAY, t.codec_delay, uint),
                              (SEEK_PRE_ROLL, t.seek_pre_roll, uint)):
        if value is not None:
            children.append(put(el_id, value))
    if t.type == TRACK_TYPE_AUDIO:
        audio = [float64(SAMPLING_FREQUENCY, float(t.sampling_frequency or 8000.0)), uint(CHANNELS, t.channels or 1)]
        if t.bit_depth:
            audio.append(uint(BIT_DEPTH, t.bit_depth))
        children.append(master(AUDIO, *audio))
    elif t.type == TRACK_TYPE_VIDEO and t.width and t.height:
        children.append(master(VIDEO, uint(PIXEL_WIDTH, t.width), uint(PIXEL_HEIGHT, t.height)))
    return master(TRACK_ENTRY, *children)


# ------------------------------------------------------------------------------------------ reader
class _Truncated(Exception):
    """The input ended inside an element (internal: turned into a BitstreamError with context)."""


class _Input:
    """Sequential, buffered reading of a file or a pipe with the absolute position tracked; seeks only
    when the file allows it. Each element header costs one small slice, not a system call."""

    CHUNK = 1 << 16

    def __init__(self, f, seekable: bool):
        self.f, self.seekable = f, seekable
        self.base = f.tell() if seekable else 0
        self.size = (f.seek(0, os.SEEK_END) - self.base) if seekable else None
        if seekable:
            f.seek(self.base)
        self.buf, self.off, self.pos = b"", 0, 0  # self.pos is the file position of buf[off]

    def _fill(self, n: int) -> int:
        """Make n bytes available if the input has them; return how many are."""
        while len(self.buf) - self.off < n:
            chunk = self.f.read(max(self.CHUNK, n - (len(self.buf) - self.off)))
            if not chunk:
                break
            self.buf = self.buf[self.off:] + chunk
            self.off = 0
        return min(n, len(self.buf) - self.off)

    def at_end(self) -> bool:
        return self._fill(1) == 0

    def header(self, end: int | None) -> tuple[int, int | None, int]:
        """The element header at the current position: (ID, size or None, header length); not consumed."""
        in_file = self._fill(12)
        avail = in_file if end is None else min(in_file, end - self.pos)
        try:
            if avail <= 0:
                raise BitstreamError("truncated: no element header")
            return ebml.read_header(self.buf, self.off, self.off + avail, base=self.pos - self.off)
        except BitstreamError as exc:
            if in_file < 12 and str(exc).startswith("truncated"):
                raise _Truncated() from None  # the input ended: truncation, not a bad element
            raise BitstreamError(f"invalid Matroska: {exc}") from None

    def read(self, n: int) -> bytes:
        if self._fill(n) < n:
            raise _Truncated()
        data = self.buf[self.off:self.off + n]
        self.off += n
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if len(self.buf) - self.off >= n:
            self.off += n
            self.pos += n
        elif self.seekable:
            if self.size is not None and self.pos + n > self.size:
                raise _Truncated()
            self.seek(self.pos + n)
        else:  # a pipe: read and drop
            n -= len(self.buf) - self.off
            self.pos += len(self.buf) - self.off
            self.buf, self.off = b"", 0
            while n:
                chunk = self.f.read(min(n, self.CHUNK))
                if not chunk:
                    raise _Truncated()
                n -= len(chunk)
                self.pos += len(chunk)

    def seek(self, pos: int) -> None:
        self.f.seek(self.base + pos)
        self.buf, self.off, self.pos = b"", 0, pos


class MatroskaReader:
    """Read a Matroska file with a GVC track (or, with ``fourcc=None``, any V_MS/VFW/FOURCC track) from
    a path, a file or a pipe; see the module docstring for the limits and the truncation behaviour."""

    def __init__(self, path_or_file, *, fourcc: bytes | None = b"GVC1", max_block_bytes: int = MAX_BLOCK_BYTES):
        self._own = isinstance(path_or_file, (str, bytes, os.PathLike))
        if self._own:
            try:
                self._f = open(path_or_file, "rb")
            except OSError as exc:
                raise BitstreamError(f"cannot open Matroska file {os.fsdecode(path_or_file)}: "
                                     f"{exc.strerror}") from None
        else:
            self._f = path_or_file
        self.max_block_bytes = max_block_bytes
        self.warnings: list[str] = []
        self._read_blocks = False
        try:
            self._in = _Input(self._f, _is_seekable(self._f))
            self._parse(fourcc)
        except _Truncated:
            self.close()
            raise BitstreamError("truncated Matroska file: it ends inside the header elements") from None
        except BaseException:
            self.close()
            raise

    # -- header elements
    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    def _load(self, el_id: int, size: int | None, what_end: int | None) -> bytes | None:
        """The payload of the header element at the current position (its header already consumed);
        None (and skipped, with a warning) for an optional element over its cap."""
        name = _NAMES.get(el_id, f"0x{el_id:X}")
        if size is None:
            raise BitstreamError(f"invalid Matroska: unknown-size {name} element")
        if size > METADATA_CAPS[el_id]:
            if el_id in _OPTIONAL:
                self._warn(f"Matroska {name} element of {size} bytes skipped (limit {METADATA_CAPS[el_id]})")
                self._in.skip(size)
                return None
            raise BitstreamError(f"invalid Matroska: {name} element of {size} bytes is over the limit of "
                                 f"{METADATA_CAPS[el_id]}")
        if what_end is not None and self._in.pos + size > what_end:
            raise BitstreamError(f"invalid Matroska: {name} element runs past the end of its parent")
        return self._in.read(size)

    def _parse(self, want_fourcc: bytes | None) -> None:
        inp = self._in
        if inp._fill(4) < 4 or inp.buf[inp.off:inp.off + 4] != encode_id(EBML):
            raise BitstreamError("not a Matroska file: no EBML header")
        el_id, hsize, hlen = inp.header(None)
        if hsize is None or hsize > METADATA_CAPS[EBML]:
            raise BitstreamError(f"invalid Matroska: EBML header size {hsize!r} is out of bounds")
        inp.skip(hlen)
        head = self._load(EBML, hsize, None)
        doctype = "matroska"  # the default DocType
        for cid, a, b in ebml.iter_children(head, 0, len(head), "EBML header"):
            if cid == DOC_TYPE:
                doctype = ebml.parse_string(head[a:b], "DocType")
        if doctype not in ("matroska", "webm"):
            raise BitstreamError(f"not a Matroska file: EBML DocType is {doctype!r}")

        for _ in range(MAX_IDLE_ELEMENTS):  # skip Void/CRC between the EBML header and the Segment
            el_id, seg_size, seg_hlen = inp.header(None)
            inp.skip(seg_hlen)
            if el_id == SEGMENT:
                break
            if el_id not in (VOID, CRC32) or seg_size is None:
                raise BitstreamError(f"invalid Matroska: expected a Segment, found element 0x{el_id:X}")
            inp.skip(seg_size)
        else:
            raise BitstreamError(f"invalid Matroska: more than {MAX_IDLE_ELEMENTS} elements before the Segment")
        self._seg_start = inp.pos
        self._seg_end = None if seg_size is None else inp.pos + seg_size
        if inp.size is not None and self._seg_end is not None and self._seg_end > inp.size:
            self._warn(f"truncated Matroska file: Segment declares {seg_size} bytes, "
                       f"{inp.size - self._seg_start} present")

        found: dict[int, bytes] = {}
        seek_targets: dict[int, int] = {}
        for _ in range(MAX_IDLE_ELEMENTS):
            if self._seg_end is not None and inp.pos >= self._seg_end or inp.at_end():
                break
            el_id, el_size, el_hlen = inp.header(self._seg_end)
            if el_id == CLUSTER:
                break
            inp.skip(el_hlen)
            if el_id in _HEADER_ELEMENTS and el_id not in found:
                data = self._load(el_id, el_size, self._seg_end)
                if data is not None:
                    found[el_id] = data
                    if el_id == SEEK_HEAD:
                        seek_targets.update(self._parse_seek_head(data))
            elif el_size is None:
                raise BitstreamError(f"invalid Matroska: unknown-size element 0x{el_id:X} in the Segment")
            else:
                inp.skip(el_size)
        else:
            raise BitstreamError(f"invalid Matroska: more than {MAX_IDLE_ELEMENTS} elements before the first Cluster")
        self._first_cluster = inp.pos  # where the blocks start (or the data ends)
        self._seek_targets = seek_targets  # the Cues' position, for a seek
        if inp.seekable:  # header elements only the SeekHead points to (FFmpeg writes Tags after the clusters)
            for el_id, rel in seek_targets.items():
                if el_id in _HEADER_ELEMENTS and el_id != SEEK_HEAD and el_id not in found:
                    data = self._load_at(el_id, self._seg_start + rel)
                    if data is not None:
                        found[el_id] = data
            inp.seek(self._first_cluster)

        if TRACKS not in found:
            raise BitstreamError("invalid Matroska: no Tracks element")
        self._parse_info(found.get(INFO, b""))
        self._parse_tracks(found[TRACKS], want_fourcc)
        self._parse_tags(found.get(TAGS, b""))
        self._parse_attachments(found.get(ATTACHMENTS, b""))

    def _load_at(self, el_id: int, pos: int) -> bytes | None:
        name = _NAMES[el_id]
        if pos >= self._in.size:
            self._warn(f"Matroska SeekHead entry for {name} points past the end of the file: ignored")
            return None
        self._in.seek(pos)
        try:
            got_id, size, hlen = self._in.header(None)
            if got_id != el_id:
                self._warn(f"Matroska SeekHead entry for {name} points elsewhere: ignored")
                return None
            self._in.skip(hlen)
            return self._load(el_id, size, None)
        except _Truncated:
            self._warn(f"truncated Matroska file: {name} element after the clusters is cut: ignored")
            return None

    @staticmethod
    def _parse_seek_head(data: bytes) -> dict[int, int]:
        out = {}
        for cid, a, b in ebml.iter_children(data, 0, len(data), "SeekHead"):
            if cid != SEEK:
                continue
            sid = spos = None
            for gid, c, d in ebml.iter_children(data, a, b, "Seek"):
                if gid == SEEK_ID:
                    sid = ebml.parse_uint(data[c:d], "SeekID")
                elif gid == SEEK_POSITION:
                    spos = ebml.parse_uint(data[c:d], "SeekPosition")
            if sid is not None and spos is not None:
                out.setdefault(sid, spos)
        return out

    def _parse_info(self, data: bytes) -> None:
        self._timestamp_scale = TIMESTAMP_SCALE_NS
        self._duration: float | None = None  # in TimestampScale units
        self.title: str | None = None
        self.writing_app: str | None = None
        self.muxing_app: str | None = None
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Info"):
            if cid == TIMESTAMP_SCALE:
                self._timestamp_scale = ebml.parse_uint(data[a:b], "TimestampScale")
            elif cid == DURATION:
                self._duration = ebml.parse_float(data[a:b], "Duration")
            elif cid == TITLE:
                self.title = ebml.parse_string(data[a:b], "Title")
            elif cid == WRITING_APP:
                self.writing_app = ebml.parse_string(data[a:b], "WritingApp")
            elif cid == MUXING_APP:
                self.muxing_app = ebml.parse_string(data[a:b], "MuxingApp")
        if not 0 < self._timestamp_scale <= 10**9:
            raise BitstreamError(f"invalid Matroska: TimestampScale {self._timestamp_scale} outside 1..1e9 ns")
        if self._duration is not None and not (math.isfinite(self._duration) and 0 <= self._duration < 2**63):
            self._warn(f"Matroska Duration {self._duration} ignored")
            self._duration = None

    def _parse_tracks(self, data: bytes, want_fourcc: bytes | None) -> None:
        seen = []
        self.tracks: dict[int, MkvTrack] = {}  # every track but the GVC one, by number
        self.track_number = None
        gvc = None
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Tracks"):
            if cid != TRACK_ENTRY:
                continue
            t = _parse_track_entry(data, a, b)
            if t.number is None or t.number in self.tracks or t.number == self.track_number:
                raise BitstreamError(f"invalid Matroska: track without a TrackNumber or numbered twice ({t.number})")
            if len(self.tracks) >= MAX_TRACKS:
                raise BitstreamError(f"invalid Matroska: more than {MAX_TRACKS} tracks")
            is_gvc = (gvc is None and t.type == TRACK_TYPE_VIDEO and t.codec_id == CODEC_ID_VFW
                      and len(t.codec_private) >= 40
                      and (want_fourcc is None or t.codec_private[16:20] == want_fourcc))
            if is_gvc:
                gvc, self.track_number = t, t.number
            else:
                seen.append(t.codec_id if t.codec_id != CODEC_ID_VFW or len(t.codec_private) < 40
                            else f"{t.codec_id}:{t.codec_private[16:20]!r}")
                self.tracks[t.number] = t
        if gvc is None:
            what = (want_fourcc or b"V_MS/VFW/FOURCC").decode("latin-1")
            raise BitstreamError(f"no {what} video track in the Matroska file (tracks: {seen or 'none'})")
        private = gvc.codec_private
        bi_size, bi_w, bi_h, *_ = BITMAPINFOHEADER.unpack(private[:40])
        self.fourcc = private[16:20]
        # GVC writes biSize=40; FFmpeg's remuxer writes biSize=40+len(extradata) and pads odd-sized
        # extradata with one zero byte, so biSize (when it covers more than the header) is the end.
        end = bi_size if 40 < bi_size <= len(private) else len(private)
        self.codec_private = private[40:end]
        if len(self.codec_private) > MAX_CODEC_PRIVATE:
            raise BitstreamError(f"invalid Matroska: CodecPrivate of {len(self.codec_private)} bytes is over "
                                 f"the limit of {MAX_CODEC_PRIVATE}")
        self.width = gvc.width if gvc.width is not None else abs(bi_w)
        self.height = gvc.height if gvc.height is not None else abs(bi_h)
        self._default_duration = gvc.default_duration

    def _parse_tags(self, data: bytes) -> None:
        self.tags: dict[str, str] = {}
        fps_tag = None
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Tags"):
            if cid != TAG:
                continue
            is_global = True
            simple = []
            for eid, c, d in ebml.iter_children(data, a, b, "Tag"):
                if eid == TARGETS:
                    for tid, e, f in ebml.iter_children(data, c, d, "Targets"):
                        if tid in TAG_UID_TARGETS and ebml.parse_uint(data[e:f], "tag target UID"):
                            is_global = False
                elif eid == SIMPLE_TAG:
                    name = value = None
                    for sid, e, f in ebml.iter_children(data, c, d, "SimpleTag"):
                        if sid == TAG_NAME:
                            name = ebml.parse_string(data[e:f], "TagName")
                        elif sid == TAG_STRING:
                            value = ebml.parse_string(data[e:f], "TagString")
                    if name is not None and value is not None:
                        simple.append((name, value))
            if not is_global:
                continue
            for name, value in simple:
                if name.upper() == FRAME_RATE_TAG:
                    fps_tag = value
                else:
                    self.tags.setdefault(name, value)
        self.fps = None
        if fps_tag is not None:
            self.fps = parse_frame_rate(fps_tag)
            if self.fps is None:
                self._warn(f"Matroska tag {FRAME_RATE_TAG}={fps_tag[:40]!r} is not a frame rate p/q in (0, 1000) "
                           f"with at most 9 digits per number: ignored")
        if self.fps is None:
            if not self._default_duration:
                raise BitstreamError("invalid Matroska: the video track has no DefaultDuration (frame rate)")
            self.fps = _rate_from_default_duration(self._default_duration)
            if not 0 < self.fps < 1000:
                raise BitstreamError(f"invalid Matroska: DefaultDuration {self._default_duration} ns gives a "
                                     f"frame rate outside (0, 1000) fps")

    def _parse_attachments(self, data: bytes) -> None:
        self.attachments: dict[str, bytes] = {}
        self.attachment_types: dict[str, str] = {}
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Attachments"):
            if cid != ATTACHED_FILE:
                continue
            name = mime = payload = None
            for eid, c, d in ebml.iter_children(data, a, b, "AttachedFile"):
                if eid == FILE_NAME:
                    name = ebml.parse_string(data[c:d], "FileName")
                elif eid == FILE_MEDIA_TYPE:
                    mime = ebml.parse_string(data[c:d], "FileMediaType")
                elif eid == FILE_DATA:
                    payload = bytes(data[c:d])
            if name is not None and payload is not None:
                self.attachments.setdefault(name, payload)
                self.attachment_types.setdefault(name, mime or "")

    @property
    def duration_frames(self) -> int | None:
        """The Info Duration in frames (None in a live file, which has none)."""
        if self._duration is None:
            return None
        return _time_to_frame(Fraction(self._duration) * Fraction(self._timestamp_scale, 10**9), self.fps)

    # -- blocks
    def blocks(self, start: int | None = None) -> Iterator[MkvBlock]:
        """Every block of every known track, in file order (from the Cluster at byte `start`, a seek). A
        truncated file yields every complete block, then raises BitstreamError("truncated Matroska file:
        ..."). A pipe can be walked once."""
        if self._read_blocks and not self._in.seekable:
            raise BitstreamError("the Matroska blocks of a pipe can be read only once")
        self._read_blocks = True
        inp, seg_end = self._in, self._seg_end
        if inp.seekable:
            inp.seek(start or self._first_cluster)
        self._idle = 0
        while seg_end is None or inp.pos < seg_end:
            if inp.at_end():
                if seg_end is not None:
                    raise BitstreamError(f"truncated Matroska file: the Segment ends at byte {inp.pos}, "
                                         f"{seg_end - inp.pos} bytes before its declared end")
                return  # a live file (unknown-size Segment) ends where the data ends
            start = inp.pos
            try:
                self._tick(start)
                el_id, size, hlen = inp.header(seg_end)
                inp.skip(hlen)
                if el_id != CLUSTER:
                    if size is None:
                        raise BitstreamError(f"invalid Matroska: unknown-size element 0x{el_id:X} at byte {start}")
                    inp.skip(size)
                    continue
                end = None if size is None else inp.pos + size
                if end is not None and seg_end is not None and end > seg_end:
                    raise BitstreamError(f"invalid Matroska: Cluster at byte {start} runs past the Segment")
                yield from self._cluster_blocks(end, seg_end)
            except _Truncated:
                raise BitstreamError(f"truncated Matroska file: it ends inside the element at byte {inp.pos} "
                                     f"(Cluster at byte {start})") from None

    def _cue_cluster(self, ms: int) -> int | None:
        """Byte position of the Cluster holding the last keyframe at or before `ms` (TimestampScale units)
        by the Cues; None without Cues (a pipe, a live file) or with none early enough."""
        rel = self._seek_targets.get(CUES)
        if rel is None or not self._in.seekable:
            return None
        data = self._load_at(CUES, self._seg_start + rel)
        best = None
        for cid, a, b in ebml.iter_children(data or b"", 0, len(data or b""), "Cues"):
            if cid != CUE_POINT:
                continue
            t = pos = None
            for eid, c, d in ebml.iter_children(data, a, b, "CuePoint"):
                if eid == CUE_TIME:
                    t = ebml.parse_uint(data[c:d], "CueTime")
                elif eid == CUE_TRACK_POSITIONS:
                    for pid, e, f in ebml.iter_children(data, c, d, "CueTrackPositions"):
                        if pid == CUE_CLUSTER_POSITION:
                            pos = ebml.parse_uint(data[e:f], "CueClusterPosition")
            if t is not None and pos is not None and t <= ms and (best is None or t >= best[0]):
                best = (t, pos)
        return None if best is None else self._seg_start + best[1]

    def _tick(self, pos: int) -> None:
        """Count one element that is not a block of a known track; refuse a file of endless filler."""
        self._idle += 1
        if self._idle > MAX_IDLE_ELEMENTS:
            raise BitstreamError(f"invalid Matroska: more than {MAX_IDLE_ELEMENTS} elements in a row without "
                                 f"a block (at byte {pos})")

    def _cluster_blocks(self, end: int | None, seg_end: int | None) -> Iterator[MkvBlock]:
        inp = self._in
        limit = end if end is not None else seg_end
        cluster_ts = 0
        while limit is None or inp.pos < limit:
            if end is None and inp.at_end():
                return
            pos = inp.pos
            el_id, size, hlen = inp.header(limit)
            if end is None and (el_id in _TOP_LEVEL or el_id == EBML):
                return  # an unknown-size cluster ends where the next top-level element starts
            self._tick(pos)
            if size is None:
                raise BitstreamError(f"invalid Matroska: unknown-size element 0x{el_id:X} in a Cluster")
            if limit is not None and pos + hlen + size > limit:
                raise BitstreamError(f"invalid Matroska: element 0x{el_id:X} at byte {pos} runs past its Cluster")
            if el_id in (SIMPLE_BLOCK, BLOCK_GROUP) and size > self.max_block_bytes:
                raise BitstreamError(f"invalid Matroska: {_NAMES[el_id]} of {size} bytes at byte {pos} is over "
                                     f"the limit of {self.max_block_bytes}")
            inp.skip(hlen)
            block = None
            if el_id == TIMESTAMP:
                cluster_ts = ebml.parse_uint(inp.read(size), "Cluster Timestamp")
            elif el_id == SIMPLE_BLOCK:
                block = self._block(inp.read(size), cluster_ts, None, None, pos)
            elif el_id == BLOCK_GROUP:
                block = self._block_group(inp.read(size), cluster_ts, pos)
            else:
                inp.skip(size)
            if block is not None:
                self._idle = 0
                yield block

    def _block_group(self, data: bytes, cluster_ts: int, pos: int) -> MkvBlock | None:
        body, duration, keyframe = None, None, True
        for i, (cid, a, b) in enumerate(ebml.iter_children(data, 0, len(data), "BlockGroup")):
            if i == _MAX_GROUP_CHILDREN:
                raise BitstreamError(f"invalid Matroska: BlockGroup at byte {pos} has over {i} elements")
            if cid == BLOCK:
                body = data[a:b]
            elif cid == BLOCK_DURATION:
                duration = ebml.parse_uint(data[a:b], "BlockDuration")
            elif cid == REFERENCE_BLOCK:
                keyframe = False
        if body is None:
            raise BitstreamError(f"invalid Matroska: BlockGroup at byte {pos} without a Block")
        return self._block(body, cluster_ts, keyframe, duration, pos)

    def _block(self, body: bytes, cluster_ts: int, keyframe: bool | None, duration: int | None,
               pos: int) -> MkvBlock | None:
        """A block of a known track (None for another); ``keyframe`` None: a SimpleBlock, flagged inside."""
        track, n, _ = ebml.read_vint(body, 0, len(body), "block track number", base=pos)
        if len(body) < n + 3:
            raise BitstreamError(f"invalid Matroska: block at byte {pos} shorter than its header")
        rel, flags = struct.unpack_from(">hB", body, n)
        entry = self.tracks.get(track)
        if track != self.track_number and entry is None:
            return None  # a block of an undeclared track: skipped (counts against the idle budget)
        if flags & 0x06:
            raise BitstreamError(f"laced Matroska blocks are not supported (track {track}, block at byte {pos})")
        scale = self._timestamp_scale
        default = self._default_duration if track == self.track_number else entry.default_duration
        duration_ns = duration * scale if duration is not None else default
        return MkvBlock(track=track, data=body[n + 3:], time_ns=(cluster_ts + rel) * scale,
                        duration_ns=duration_ns, keyframe=bool(flags & 0x80) if keyframe is None else keyframe)

    def packets(self, from_frame: int | None = None) -> Iterator[MkvPacket]:
        """The GVC track's blocks, in file order, timed in frames; `from_frame`: from the last keyframe at
        or before that frame, found through the Cues (from the first block where there are none)."""
        for b in self.blocks(None if not from_frame else self._cue_cluster(_frame_to_ms(from_frame, self.fps))):
            if b.track != self.track_number:
                continue
            start = _time_to_frame(Fraction(b.time_ns, 10**9), self.fps)
            end = _time_to_frame(Fraction(b.time_ns + (b.duration_ns or 0), 10**9), self.fps)
            yield MkvPacket(data=b.data, pts=start, duration=end - start, keyframe=b.keyframe)

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> "MatroskaReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_bytes(data: bytes, what: str) -> bytes:
    return bytes(data)


# TrackEntry children read into MkvTrack fields: element ID -> (field, parser); Video and Audio are masters.
_TRACK_FIELDS = {
    TRACK_NUMBER: ("number", ebml.parse_uint), TRACK_TYPE: ("type", ebml.parse_uint),
    CODEC_ID: ("codec_id", ebml.parse_string), CODEC_PRIVATE: ("codec_private", _as_bytes),
    DEFAULT_DURATION: ("default_duration", ebml.parse_uint), LANGUAGE: ("language", ebml.parse_string),
    TRACK_NAME: ("name", ebml.parse_string), CODEC_DELAY: ("codec_delay", ebml.parse_uint),
    SEEK_PRE_ROLL: ("seek_pre_roll", ebml.parse_uint),
    PIXEL_WIDTH: ("width", ebml.parse_uint), PIXEL_HEIGHT: ("height", ebml.parse_uint),
    SAMPLING_FREQUENCY: ("sampling_frequency", ebml.parse_float), CHANNELS: ("channels", ebml.parse_uint),
    BIT_DEPTH: ("bit_depth", ebml.parse_uint),
}


def _parse_track_entry(data: bytes, a: int, b: int, what: str = "TrackEntry") -> MkvTrack:
    t = MkvTrack(type=0, codec_id="", number=None)
    _read_fields(t, data, a, b, what)
    t.default_duration = t.default_duration or None  # 0 means none
    return t


def _read_fields(t: MkvTrack, data: bytes, a: int, b: int, what: str) -> None:
    for eid, c, d in ebml.iter_children(data, a, b, what):
        if eid in (VIDEO, AUDIO):
            _read_fields(t, data, c, d, "Video" if eid == VIDEO else "Audio")
        elif eid in _TRACK_FIELDS:
            name, parse = _TRACK_FIELDS[eid]
            setattr(t, name, parse(data[c:d], name))
