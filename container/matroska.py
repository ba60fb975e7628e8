"""Matroska (.mkv) mapping for GVC streams.

Why not PyAV for muxing: every PyAV way of adding an output stream checks the codec id against the
Matroska muxer, so a codec FFmpeg does not know cannot be written with its FourCC, extradata and
keyframe flags (raw/intra-only carrier codecs lose the keyframe flags). The muxer below writes EBML
itself; reading uses EBML for the header-level elements (CodecPrivate, tags, attachments) and PyAV
(``av.open``) for the packets.

Mapping
-------
* One video track, CodecID ``V_MS/VFW/FOURCC``. CodecPrivate = 40-byte little-endian BITMAPINFOHEADER
  (biSize=40, biWidth, biHeight, biPlanes=1, biBitCount=24, biCompression=FourCC ``GVC1``, rest 0)
  followed by the GVC sequence header. ``ffmpeg -i`` shows ``Video: none (GVC1 / 0x31435647)``.
  Readers take the bytes after the first 40 (FFmpeg's remuxer rewrites biSize as 40+extradata).
* PixelWidth/PixelHeight; DefaultDuration = round(1e9 / fps) ns (nominal frame duration).
* Timestamps: TimestampScale = 1,000,000 ns (1 ms), the value FFmpeg's muxer also uses, so a
  ``-c copy`` remux keeps every timestamp. Frame index ``n`` is stored as
  ``t(n) = floor(n * 1000 / fps + 1/2)`` ms; a block's duration is ``t(pts + duration) - t(pts)``.
  Reading inverts with ``n = floor(t * fps / 1000 + 1/2)``; this is exact for fps < 1000 (rounding
  error <= 0.5 ms < half a frame), e.g. 30000/1001, 24000/1001, 25, 10.
* The exact frame rate is also written as the global tag ``GVC_FRAME_RATE`` ("30000/1001"); the
  reader uses it when present (and hides it from ``tags``), else DefaultDuration approximated by the
  nearest fraction with denominator <= 1001.
* Each GOP unit is one BlockGroup{Block, BlockDuration[, ReferenceBlock]} (a GOP covers many frames,
  so every block carries its duration explicitly; no lacing). A BlockGroup without ReferenceBlock
  is a keyframe; a non-keyframe unit (e.g. an I2V GOP depending on the previous GOP) carries
  ReferenceBlock = (previous block's timestamp - this block's timestamp), or -1 for a first block.
  FFmpeg/PyAV read this back as ``packet.is_keyframe``.
* A new Cluster starts at every keyframe and whenever the int16 relative block timestamp would
  overflow (32.767 s).
* Seekable output: sized Segment and Clusters, Info/Duration, Cues (one CuePoint per keyframe) and a
  SeekHead; these are patched on close. Non-seekable output (pipe, stdout): unknown-size Segment and
  Clusters, no Duration, no Cues; every block is written and flushed as soon as it arrives.
* Tags: one global Tag of SimpleTags (name -> string). Attachments: the sequence header as
  ``gvc-sequence-header.bin`` (application/octet-stream) plus the caller's (name, mime, bytes).
* Segment Info: MuxingApp/WritingApp ``GVC <version>``, optional Title. Output is deterministic
  (no dates, UIDs derived from content).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
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
CLUSTER, TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, BLOCK_DURATION, REFERENCE_BLOCK = (
    0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1, 0x9B, 0xFB)
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION, CUE_RELATIVE_POSITION = (
    0x1C53BB6B, 0xBB, 0xB3, 0xB7, 0xF7, 0xF1, 0xF0)
TAGS, TAG, TARGETS, SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x1254C367, 0x7373, 0x63C0, 0x67C8, 0x45A3, 0x4487
TAG_UID_TARGETS = (0x63C5, 0x63C9, 0x63C4, 0x63C6)  # TagTrackUID, TagEditionUID, TagChapterUID, TagAttachmentUID
ATTACHMENTS, ATTACHED_FILE, FILE_NAME, FILE_MEDIA_TYPE, FILE_DATA, FILE_UID = (
    0x1941A469, 0x61A7, 0x466E, 0x4660, 0x465C, 0x46AE)
VOID, CRC32 = 0xEC, 0xBF

CODEC_ID_VFW = "V_MS/VFW/FOURCC"
TIMESTAMP_SCALE_NS = 1_000_000
SEQUENCE_HEADER_ATTACHMENT = "gvc-sequence-header.bin"
FRAME_RATE_TAG = "GVC_FRAME_RATE"
BITMAPINFOHEADER = struct.Struct("<IiiHH4sIiiII")  # 40 bytes
_TRACK_NUMBER = 1
_MAX_REL_TS = 32767
_MAX_METADATA_SIZE = 256 << 20  # Info/Tracks/Tags/Attachments/SeekHead/EBML header read into memory
_MAX_HEADER_SIZE = 4096  # EBML header
_TOP_LEVEL = {SEEK_HEAD, INFO, TRACKS, TAGS, ATTACHMENTS, CLUSTER, CUES, VOID, CRC32, 0x1043A770, 0x1B538667}


@dataclass
class MkvPacket:
    data: bytes
    pts: int  # first frame index covered
    duration: int  # number of frames covered
    keyframe: bool


def _frame_to_ms(frame: int, fps: Fraction) -> int:
    return math.floor(Fraction(frame * 1000) / fps + Fraction(1, 2))


def _time_to_frame(t: Fraction, fps: Fraction) -> int:
    return math.floor(t * fps + Fraction(1, 2))


def _version() -> str:
    try:
        from gvc._version import __version__
        return __version__
    except Exception:  # pragma: no cover - gvc is always importable in the project
        return "unknown"


def _uid(*parts: bytes) -> int:
    h = hashlib.sha256(b"\x00".join(parts)).digest()
    return int.from_bytes(h[:8], "big") or 1


def _is_seekable(f) -> bool:
    try:
        if not f.seekable():
            return False
        f.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False


# ------------------------------------------------------------------------------------------ writer
class MatroskaWriter:
    """Write a GVC stream (sequence header + GOP units) as a Matroska file; see the module docstring."""

    def __init__(self, file, *, width: int, height: int, fps: Fraction, codec_private: bytes,
                 fourcc: bytes = b"GVC1", tags: dict[str, str] | None = None,
                 attachments: list[tuple[str, str, bytes]] | None = None, title: str | None = None):
        fps = Fraction(fps)
        if not (isinstance(width, int) and isinstance(height, int) and 0 < width < 1 << 31
                and 0 < height < 1 << 31):
            raise ParameterError(f"invalid frame size {width}x{height}")
        if not 0 < fps < 1000:
            raise ParameterError(f"frame rate {fps} outside (0, 1000) fps supported by the Matroska mapping")
        fourcc = bytes(fourcc)
        if len(fourcc) != 4:
            raise ParameterError(f"FourCC must be 4 bytes, got {fourcc!r}")
        codec_private = bytes(codec_private)
        attachments = [(str(n), str(m), bytes(d)) for n, m, d in (attachments or [])]
        names = [SEQUENCE_HEADER_ATTACHMENT] + [n for n, _, _ in attachments]
        if len(set(names)) != len(names):
            raise ParameterError(f"duplicate attachment names (or one named {SEQUENCE_HEADER_ATTACHMENT})")
        tags = dict(tags or {})
        if any(k.upper() == FRAME_RATE_TAG for k in tags):
            raise ParameterError(f"tag name {FRAME_RATE_TAG} is reserved")

        self.width, self.height, self.fps = width, height, fps
        self._own = isinstance(file, (str, bytes, os.PathLike))
        self._f: BinaryIO = open(file, "wb") if self._own else file
        self._seekable = _is_seekable(self._f)
        self._base = self._f.tell() if self._seekable else 0
        self._pos = 0  # bytes written so far, relative to _base
        self._closed = False
        self._prev_ts: int | None = None
        self._prev_end_frame: int | None = None
        self._end_ms = 0
        self._cluster_ts: int | None = None
        self._cluster_blocks: list[bytes] = []
        self._cluster_keyframe_cues: list[tuple[int, int]] = []  # (block ts, offset inside cluster payload)
        self._cues: list[tuple[int, int, int]] = []  # (ts, cluster position in segment, relative position)

        try:
            self._write_header(width, height, fps, codec_private, fourcc, tags, attachments, title)
        except BaseException:
            if self._own:
                self._f.close()
            raise

    # -- header
    def _write_header(self, width, height, fps, codec_private, fourcc, tags, attachments, title):
        version = _version()
        ebml_header = master(
            EBML, uint(EBML_VERSION, 1), uint(EBML_READ_VERSION, 1), uint(EBML_MAX_ID_LENGTH, 4),
            uint(EBML_MAX_SIZE_LENGTH, 8), string(DOC_TYPE, "matroska"), uint(DOC_TYPE_VERSION, 4),
            uint(DOC_TYPE_READ_VERSION, 2))

        info_children = [uint(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS), string(MUXING_APP, f"GVC {version}"),
                         string(WRITING_APP, f"GVC {version}")]
        if title:
            info_children.append(string(TITLE, title))
        if self._seekable:
            info_children.append(float64(DURATION, 0.0))  # patched on close
        info = master(INFO, *info_children)

        bmih = BITMAPINFOHEADER.pack(40, width, height, 1, 24, fourcc, 0, 0, 0, 0, 0)
        track = master(
            TRACK_ENTRY, uint(TRACK_NUMBER, _TRACK_NUMBER), uint(TRACK_UID, _uid(b"track", codec_private)),
            uint(TRACK_TYPE, 1), uint(FLAG_LACING, 0), string(CODEC_ID, CODEC_ID_VFW),
            ebml.element(CODEC_PRIVATE, bmih + codec_private),
            uint(DEFAULT_DURATION, round(Fraction(10**9) / fps)),
            master(VIDEO, uint(PIXEL_WIDTH, width), uint(PIXEL_HEIGHT, height)))
        tracks = master(TRACKS, track)

        all_tags = list(tags.items()) + [(FRAME_RATE_TAG, f"{fps.numerator}/{fps.denominator}")]
        tags_el = master(TAGS, master(TAG, master(TARGETS), *(
            master(SIMPLE_TAG, string(TAG_NAME, str(k)), string(TAG_STRING, str(v))) for k, v in all_tags)))

        files = [(SEQUENCE_HEADER_ATTACHMENT, "application/octet-stream", codec_private)] + attachments
        att_el = master(ATTACHMENTS, *(
            master(ATTACHED_FILE, string(FILE_NAME, n), string(FILE_MEDIA_TYPE, m),
                   ebml.element(FILE_DATA, d), uint(FILE_UID, _uid(b"file", n.encode(), d)))
            for n, m, d in files))

        # SeekHead: fixed-width positions so its size does not depend on them; Cues is patched later.
        def seek_entry(el_id: int, pos: int, width: int) -> bytes:
            return master(SEEK, ebml.element(SEEK_ID, encode_id(el_id)), uint(SEEK_POSITION, pos, width))

        entries = [(INFO, info), (TRACKS, tracks), (TAGS, tags_el), (ATTACHMENTS, att_el)]
        n_entries = len(entries) + (1 if self._seekable else 0)
        placeholder = master(SEEK_HEAD, *(seek_entry(INFO, 0, 8) for _ in range(n_entries)))
        pos = len(placeholder)
        seeks = []
        for el_id, data in entries:
            seeks.append(seek_entry(el_id, pos, 8))
            pos += len(data)
        if self._seekable:
            seeks.append(seek_entry(CUES, 0, 8))
        seek_head = master(SEEK_HEAD, *seeks)
        assert len(seek_head) == len(placeholder)

        segment_head = encode_id(SEGMENT) + (encode_size(0, 8) if self._seekable else ebml.UNKNOWN_SIZE_VINT)
        self._segment_size_at = len(ebml_header) + 4
        self._segment_start = len(ebml_header) + len(segment_head)  # segment data start (relative to _base)
        if self._seekable:
            self._cues_seekpos_at = self._segment_start + len(seek_head) - 8
            self._duration_at = self._segment_start + len(seek_head) + len(info) - 8
        self._emit(ebml_header + segment_head + seek_head + info + tracks + tags_el + att_el)
        self.header_bytes = self._pos  # container overhead before the first cluster
        self._flush()

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far, counting a cluster still buffered for its size field (≈12 bytes of head)."""
        pending = sum(map(len, self._cluster_blocks)) + 12 if self._cluster_blocks else 0
        return self._pos + pending

    # -- low-level output
    def _emit(self, data: bytes) -> None:
        self._f.write(data)
        self._pos += len(data)

    def _flush(self) -> None:
        try:
            self._f.flush()
        except (AttributeError, OSError):
            pass

    def _patch(self, rel_pos: int, data: bytes) -> None:
        self._f.seek(self._base + rel_pos)
        self._f.write(data)

    # -- clusters
    def _start_cluster(self, ts: int) -> None:
        self._flush_cluster()
        self._cluster_ts = ts
        if not self._seekable:
            self._emit(encode_id(CLUSTER) + ebml.UNKNOWN_SIZE_VINT + uint(TIMESTAMP, ts))

    def _flush_cluster(self) -> None:
        if self._cluster_ts is None or not self._seekable:
            return
        payload_head = uint(TIMESTAMP, self._cluster_ts)
        payload_len = len(payload_head) + sum(map(len, self._cluster_blocks))
        cluster_pos = self._pos - self._segment_start
        head = encode_id(CLUSTER) + encode_size(payload_len)
        for ts, offset in self._cluster_keyframe_cues:
            self._cues.append((ts, cluster_pos, len(payload_head) + offset))
        self._emit(head + payload_head)
        for b in self._cluster_blocks:
            self._emit(b)
        self._cluster_blocks = []
        self._cluster_keyframe_cues = []
        self._cluster_ts = None

    def write(self, packet: MkvPacket) -> None:
        if self._closed:
            raise ParameterError("write() on a closed MatroskaWriter")
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
        if self._cluster_ts is None or keyframe or ts - self._cluster_ts > _MAX_REL_TS:
            self._start_cluster(ts)
        rel = ts - self._cluster_ts
        block = ebml.element(BLOCK, encode_size(_TRACK_NUMBER) + struct.pack(">hB", rel, 0)
                             + bytes(packet.data))
        children = [block, uint(BLOCK_DURATION, end - ts)]
        if not keyframe:
            children.append(sint(REFERENCE_BLOCK, (self._prev_ts - ts) if self._prev_ts is not None else -1))
        group = master(BLOCK_GROUP, *children)
        if self._seekable:
            if keyframe:
                self._cluster_keyframe_cues.append((ts, sum(map(len, self._cluster_blocks))))
            self._cluster_blocks.append(group)
        else:
            self._emit(group)
            self._flush()
        self._prev_ts = ts
        self._prev_end_frame = pts + dur
        self._end_ms = max(self._end_ms, end)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._flush_cluster()
            if self._seekable:
                cues_pos = self._pos - self._segment_start
                points = [master(CUE_POINT, uint(CUE_TIME, ts), master(
                    CUE_TRACK_POSITIONS, uint(CUE_TRACK, _TRACK_NUMBER), uint(CUE_CLUSTER_POSITION, cpos),
                    uint(CUE_RELATIVE_POSITION, rpos))) for ts, cpos, rpos in self._cues]
                if points:
                    self._emit(master(CUES, *points))
                else:  # keep the SeekHead entry valid: point it at an empty Cues element
                    self._emit(master(CUES))
                end = self._pos
                self._patch(self._segment_size_at, encode_size(end - self._segment_start, 8))
                self._patch(self._cues_seekpos_at, cues_pos.to_bytes(8, "big"))
                self._patch(self._duration_at, struct.pack(">d", float(self._end_ms)))
                self._f.seek(self._base + end)
            self._flush()
        finally:
            if self._own:
                self._f.close()

    def __enter__(self) -> "MatroskaWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------ reader
class MatroskaReader:
    """Read a GVC Matroska file: header-level facts from EBML, packets demuxed with PyAV."""

    def __init__(self, path_or_file, *, fourcc: bytes | None = b"GVC1"):
        self._own = isinstance(path_or_file, (str, bytes, os.PathLike))
        if self._own:
            try:
                self._f = open(path_or_file, "rb")
            except OSError as exc:
                raise BitstreamError(f"cannot open Matroska file {os.fsdecode(path_or_file)}: "
                                     f"{exc.strerror}") from None
        elif _is_seekable(path_or_file):
            self._f = path_or_file
        else:  # a pipe: PyAV and the EBML parser both need random access
            self._f = io.BytesIO(path_or_file.read())
        self._av = None
        try:
            self._base = self._f.tell()
            self._size = self._f.seek(0, os.SEEK_END) - self._base
            self._parse(fourcc)
            self._open_av()
        except BaseException:
            self.close()
            raise

    # -- EBML
    def _read_at(self, pos: int, n: int) -> bytes:
        self._f.seek(self._base + pos)
        return self._f.read(n)

    def _header_at(self, pos: int, end: int) -> tuple[int, int | None, int]:
        buf = self._read_at(pos, min(12, end - pos))
        return ebml.read_header(buf, 0, len(buf), base=pos)

    def _load(self, pos: int, size: int, end: int, what: str) -> bytes:
        if size > _MAX_METADATA_SIZE:
            raise BitstreamError(f"invalid Matroska: {what} element declares {size} bytes (limit "
                                 f"{_MAX_METADATA_SIZE})")
        if pos + size > end:
            raise BitstreamError(f"truncated Matroska file: {what} element needs {size} bytes, "
                                 f"{end - pos} left")
        data = self._read_at(pos, size)
        if len(data) != size:
            raise BitstreamError(f"truncated Matroska file: short read in {what}")
        return data

    def _parse(self, want_fourcc: bytes | None) -> None:
        size = self._size
        if size < 4 or self._read_at(0, 4) != encode_id(EBML):
            raise BitstreamError("not a Matroska file: no EBML header")
        el_id, hsize, hlen = self._header_at(0, size)
        if hsize is None or hsize > _MAX_HEADER_SIZE:
            raise BitstreamError(f"invalid Matroska: EBML header size {hsize!r} is out of bounds")
        head = self._load(hlen, hsize, size, "EBML header")
        doctype = None
        for cid, a, b in ebml.iter_children(head, 0, len(head), "EBML header"):
            if cid == DOC_TYPE:
                doctype = ebml.parse_string(head[a:b], "DocType")
        if doctype not in ("matroska", "webm"):
            raise BitstreamError(f"not a Matroska file: EBML DocType is {doctype!r}")

        pos = hlen + hsize
        while True:  # skip Void/CRC between the EBML header and the Segment
            el_id, seg_size, seg_hlen = self._header_at(pos, size)
            if el_id == SEGMENT:
                break
            if el_id not in (VOID, CRC32) or seg_size is None:
                raise BitstreamError(f"invalid Matroska: expected a Segment, found element 0x{el_id:X}")
            pos += seg_hlen + seg_size
        seg_start = pos + seg_hlen
        if seg_size is None:
            seg_end = size
        else:
            seg_end = seg_start + seg_size
            if seg_end > size:
                raise BitstreamError(f"truncated Matroska file: Segment declares {seg_size} bytes, "
                                     f"only {size - seg_start} present")
        self._seg_start, self._seg_end = seg_start, seg_end

        found: dict[int, bytes] = {}
        seek_targets: dict[int, int] = {}
        pos = seg_start
        while pos < seg_end:
            el_id, el_size, el_hlen = self._header_at(pos, seg_end)
            data_start = pos + el_hlen
            if el_id == CLUSTER:
                pos = self._skip_cluster(data_start, el_size, seg_end)
                continue
            if el_size is None:
                raise BitstreamError(f"invalid Matroska: unknown-size element 0x{el_id:X} at byte {pos}")
            if data_start + el_size > seg_end:
                raise BitstreamError(f"truncated Matroska file: element 0x{el_id:X} at byte {pos} declares "
                                     f"{el_size} bytes, only {seg_end - data_start} present")
            if el_id in (SEEK_HEAD, INFO, TRACKS, TAGS, ATTACHMENTS) and el_id not in found:
                found[el_id] = self._load(data_start, el_size, seg_end, _NAMES[el_id])
                if el_id == SEEK_HEAD:
                    seek_targets.update(self._parse_seek_head(found[el_id]))
            pos = data_start + el_size
        # Elements only reachable through the SeekHead (e.g. Tags written after the clusters).
        for el_id, rel in seek_targets.items():
            if el_id in found or el_id not in (INFO, TRACKS, TAGS, ATTACHMENTS):
                continue
            p = seg_start + rel
            if p >= seg_end:
                raise BitstreamError(f"truncated Matroska file: SeekHead points past the end ({_NAMES[el_id]})")
            got_id, el_size, el_hlen = self._header_at(p, seg_end)
            if got_id != el_id or el_size is None:
                raise BitstreamError(f"invalid Matroska: SeekHead entry for {_NAMES[el_id]} points elsewhere")
            found[el_id] = self._load(p + el_hlen, el_size, seg_end, _NAMES[el_id])

        if TRACKS not in found:
            raise BitstreamError("invalid Matroska: no Tracks element")
        self._parse_info(found.get(INFO, b""))
        self._parse_tracks(found[TRACKS], want_fourcc)
        self._parse_tags(found.get(TAGS, b""))
        self._parse_attachments(found.get(ATTACHMENTS, b""))
        if self._duration_ms is not None:
            self.duration_frames = _time_to_frame(
                Fraction(self._duration_ms) * Fraction(self._timestamp_scale, 10**9), self.fps)
        else:
            self.duration_frames = None

    def _skip_cluster(self, data_start: int, el_size: int | None, seg_end: int) -> int:
        """Return the position after a Cluster, checking that each child fits in the file."""
        if el_size is not None:
            end = data_start + el_size
            if end > seg_end:
                raise BitstreamError(f"truncated Matroska file: Cluster at byte {data_start} declares "
                                     f"{el_size} bytes, only {seg_end - data_start} present")
        else:
            end = seg_end
        pos = data_start
        while pos < end:
            el_id, size, hlen = self._header_at(pos, end)
            if el_size is None and el_id in _TOP_LEVEL and el_id not in (VOID, CRC32):
                return pos  # an unknown-size cluster ends where the next top-level element starts
            if size is None:
                raise BitstreamError(f"invalid Matroska: unknown-size element 0x{el_id:X} in a Cluster")
            if pos + hlen + size > end:
                raise BitstreamError(f"truncated Matroska file: block element at byte {pos} declares "
                                     f"{size} bytes, only {end - pos - hlen} present")
            pos += hlen + size
        return end

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
        self._duration_ms: float | None = None
        self.title: str | None = None
        self.writing_app: str | None = None
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Info"):
            if cid == TIMESTAMP_SCALE:
                self._timestamp_scale = ebml.parse_uint(data[a:b], "TimestampScale")
            elif cid == DURATION:
                self._duration_ms = ebml.parse_float(data[a:b], "Duration")
            elif cid == TITLE:
                self.title = ebml.parse_string(data[a:b], "Title")
            elif cid == WRITING_APP:
                self.writing_app = ebml.parse_string(data[a:b], "WritingApp")
        if self._timestamp_scale == 0:
            raise BitstreamError("invalid Matroska: TimestampScale is 0")
        if self._duration_ms is not None and not (math.isfinite(self._duration_ms) and self._duration_ms >= 0):
            self._duration_ms = None

    def _parse_tracks(self, data: bytes, want_fourcc: bytes | None) -> None:
        seen = []
        video_index = -1  # PyAV stream.id is not the track number: match by order among video tracks
        for cid, a, b in ebml.iter_children(data, 0, len(data), "Tracks"):
            if cid != TRACK_ENTRY:
                continue
            t = {"number": None, "type": None, "codec": None, "private": b"", "default_duration": None,
                 "width": None, "height": None}
            for eid, c, d in ebml.iter_children(data, a, b, "TrackEntry"):
                v = data[c:d]
                if eid == TRACK_NUMBER:
                    t["number"] = ebml.parse_uint(v, "TrackNumber")
                elif eid == TRACK_TYPE:
                    t["type"] = ebml.parse_uint(v, "TrackType")
                elif eid == CODEC_ID:
                    t["codec"] = ebml.parse_string(v, "CodecID")
                elif eid == CODEC_PRIVATE:
                    t["private"] = bytes(v)
                elif eid == DEFAULT_DURATION:
                    t["default_duration"] = ebml.parse_uint(v, "DefaultDuration")
                elif eid == VIDEO:
                    for vid, e, f in ebml.iter_children(data, c, d, "Video"):
                        if vid == PIXEL_WIDTH:
                            t["width"] = ebml.parse_uint(data[e:f], "PixelWidth")
                        elif vid == PIXEL_HEIGHT:
                            t["height"] = ebml.parse_uint(data[e:f], "PixelHeight")
            if t["type"] == 1:
                video_index += 1
            if t["type"] != 1 or t["codec"] != CODEC_ID_VFW or len(t["private"]) < 40:
                seen.append(t["codec"])
                continue
            fourcc = t["private"][16:20]
            if want_fourcc is not None and fourcc != want_fourcc:
                seen.append(f"{t['codec']}:{fourcc!r}")
                continue
            if t["number"] is None:
                raise BitstreamError("invalid Matroska: video track without TrackNumber")
            bi_size, bi_w, bi_h, *_ = BITMAPINFOHEADER.unpack(t["private"][:40])
            self.track_number = t["number"]
            self._video_index = video_index
            self.fourcc = fourcc
            # GVC writes biSize=40; FFmpeg's remuxer writes biSize=40+len(extradata) and pads odd-sized
            # extradata with one zero byte, so biSize (when it covers more than the header) is the end.
            end = bi_size if 40 < bi_size <= len(t["private"]) else len(t["private"])
            self.codec_private = t["private"][40:end]
            self.width = t["width"] if t["width"] is not None else abs(bi_w)
            self.height = t["height"] if t["height"] is not None else abs(bi_h)
            self._default_duration = t["default_duration"]
            return
        what = (want_fourcc or b"V_MS/VFW/FOURCC").decode("latin-1")
        raise BitstreamError(f"no {what} video track in the Matroska file (tracks: {seen or 'none'})")

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
            try:
                fps = Fraction(fps_tag)
                if fps > 0:
                    self.fps = fps
            except (ValueError, ZeroDivisionError):
                pass
        if self.fps is None:
            if not self._default_duration:
                raise BitstreamError("invalid Matroska: the video track has no DefaultDuration (frame rate)")
            self.fps = Fraction(10**9, self._default_duration).limit_denominator(1001)

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

    # -- PyAV
    def _open_av(self):
        import av

        self._f.seek(self._base)
        try:
            container = av.open(self._f, "r", format="matroska")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise BitstreamError(f"PyAV cannot open the Matroska file: {exc}") from None
        videos = list(container.streams.video)
        stream = videos[self._video_index] if self._video_index < len(videos) else None
        if stream is None:
            container.close()
            raise BitstreamError(f"PyAV found no stream for Matroska track {self.track_number}")
        self._av, self._av_stream, self._av_fresh = container, stream, True

    def packets(self) -> Iterator[MkvPacket]:
        """Demux the GVC track with PyAV, in file order."""
        import av

        if self._av is None or not self._av_fresh:
            if self._av is not None:
                self._av.close()
            self._open_av()
        self._av_fresh = False
        container, stream = self._av, self._av_stream
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(self._timestamp_scale, 10**9)
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                start = _time_to_frame(pkt.pts * tb, self.fps)
                end = _time_to_frame((pkt.pts + (pkt.duration or 0)) * tb, self.fps)
                yield MkvPacket(data=bytes(pkt), pts=start, duration=end - start,
                                keyframe=bool(pkt.is_keyframe))
        except av.FFmpegError as exc:
            raise BitstreamError(f"PyAV failed to demux the Matroska file: {exc}") from None

    def close(self) -> None:
        if self._av is not None:
            self._av.close()
            self._av = None
        if self._own:
            self._f.close()

    def __enter__(self) -> "MatroskaReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_NAMES = {SEEK_HEAD: "SeekHead", INFO: "Info", TRACKS: "Tracks", TAGS: "Tags", ATTACHMENTS: "Attachments",
          CUES: "Cues", CLUSTER: "Cluster"}
