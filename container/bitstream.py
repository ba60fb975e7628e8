"""GVC bitstream v2 (reads v1): the one place where the syntax lives; encoder and decoder both use it.

A stream is a sequence of *units* (compare NAL units): a sequence header first, then one GOP unit per
GOP. Every unit is framed the same way so a reader can skip a damaged unit and resynchronise:

    sync "GVCU" | unit type u8 | payload length u32 | payload | CRC-32 u32 over everything before it

All integers are big-endian, floats IEEE-754 binary32 big-endian. docs/bitstream.md documents every
field; its field tables are generated from the structures below (``python -m container.spec``) and a
test keeps them in agreement.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import BinaryIO, Iterator

import construct as cs
import numpy as np
from construct import this

from gvc.errors import BitstreamError

VERSION = 2
READABLE_VERSIONS = (1, 2)  # v1 = v2 without codebook_span (implicitly 1)
SYNC = b"GVCU"
UNIT_PREFIX_BYTES = 9  # sync + type + length
UNIT_OVERHEAD_BYTES = UNIT_PREFIX_BYTES + 4  # + CRC-32

# Limits of the spec: a parser rejects anything beyond them before allocating.
MAX_UNIT_BYTES = 64 << 20
MAX_PAYLOAD_FIELD_BYTES = 32 << 20
MAX_DIMENSION = 8192
MAX_FRAMES = 1 << 24
MAX_GOP_LENGTH = 1025
MAX_PROMPT_BYTES = 4096
MAX_ANCHORS = 2
MAX_K = 1 << 20
MAX_M = 1024

UNIT_TYPES = {"sequence_header": 1, "gop": 2}
MODES = {"t2v": 0, "i2v": 1, "flf2v": 2}
PIXEL_FORMATS = {"yuv420p": 0, "yuv422p": 1, "yuv444p": 2, "gray": 3}
COLOR_RANGES = {"tv": 0, "pc": 1}
INDEX_CODINGS = {"combinatorial": 0}
ENTROPY_CODERS = {"raw": 0, "ans-laplace": 1}
ANCHOR_ROLES = {"first": 0, "last": 1}

UnitSyntax = cs.Struct(
    "body" / cs.RawCopy(cs.Struct(
        "sync" / cs.Const(SYNC),
        "unit_type" / cs.Enum(cs.Int8ub, **UNIT_TYPES),
        "length" / cs.Int32ub,
        cs.Check(this.length <= MAX_UNIT_BYTES),
        "payload" / cs.Bytes(this.length),
    )),
    "crc32" / cs.Checksum(cs.Int32ub, lambda data: zlib.crc32(data), this.body.data),
)

SequenceHeaderSyntax = cs.Struct(
    "version" / cs.Int8ub,
    "profile" / cs.Int8ub,
    "mode" / cs.Enum(cs.Int8ub, **MODES),
    "width" / cs.Int16ub,
    "height" / cs.Int16ub,
    "fps_num" / cs.Int32ub,
    "fps_den" / cs.Int32ub,
    "frame_count" / cs.Int32ub,
    "pixel_format" / cs.Enum(cs.Int8ub, **PIXEL_FORMATS),
    "color_range" / cs.Enum(cs.Int8ub, **COLOR_RANGES),
    "gop_length" / cs.Int16ub,
    "gop_overlap" / cs.Int8ub,
    "prior_id" / cs.PascalString(cs.Int8ub, "ascii"),
    "prior_sha256" / cs.Bytes(32),
    "latent_channels" / cs.Int16ub,
    "spatial_stride" / cs.Int8ub,
    "temporal_stride" / cs.Int8ub,
    "steps" / cs.Int8ub,
    "ode_tail" / cs.Int8ub,
    "gamma" / cs.Float32b,
    "shift" / cs.Float32b,
    "seed" / cs.Int32ub,
    "codebook_k" / cs.Int32ub,
    "codebook_m" / cs.Int16ub,
    "codebook_m_tail" / cs.Int16ub,
    "tail_latent_frames" / cs.Int8ub,
    "index_coding" / cs.Enum(cs.Int8ub, **INDEX_CODINGS),
    "entropy_coder" / cs.Enum(cs.Int8ub, **ENTROPY_CODERS),
    # v2: latent frames per codebook set (0 = the whole GOP latent); absent in v1 streams, where it is 1
    "codebook_span" / cs.If(this.version >= 2, cs.Int16ub),
)

AnchorSyntax = cs.Struct(
    "role" / cs.Enum(cs.Int8ub, **ANCHOR_ROLES),
    "codec" / cs.Int8ub,
    "data" / cs.Prefixed(cs.Int32ub, cs.GreedyBytes),
)

GopUnitSyntax = cs.Struct(
    "gop_index" / cs.Int32ub,
    "first_frame" / cs.Int32ub,
    "frame_count" / cs.Int16ub,
    "flags" / cs.BitStruct(
        "keyframe" / cs.Flag,
        "has_prompt" / cs.Flag,
        "has_residual" / cs.Flag,
        "reserved" / cs.BitsInteger(5),
    ),
    "codebook_k" / cs.Int32ub,
    "codebook_m" / cs.Int16ub,
    "codebook_m_tail" / cs.Int16ub,
    "m_plus_steps" / cs.Int8ub,
    "prompt" / cs.If(this.flags.has_prompt, cs.PascalString(cs.Int16ub, "utf8")),
    "anchors" / cs.PrefixedArray(cs.Int8ub, AnchorSyntax),
    "indices" / cs.Prefixed(cs.Int32ub, cs.GreedyBytes),
    "residual" / cs.If(this.flags.has_residual, cs.Prefixed(cs.Int32ub, cs.GreedyBytes)),
    "frame_hash" / cs.Bytes(16),
)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BitstreamError(what)


def _parse(syntax: cs.Construct, data: bytes, what: str):
    try:
        return syntax.parse(data)
    except cs.ConstructError as e:
        raise BitstreamError(f"malformed {what}: {str(e).splitlines()[0]}") from None


def _enum_name(value) -> str:
    return str(value)


@dataclass
class SequenceHeader:
    mode: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    gop_length: int
    gop_overlap: int
    prior_id: str
    prior_sha256: bytes
    latent_channels: int
    spatial_stride: int
    temporal_stride: int
    steps: int = 20
    ode_tail: int = 3
    gamma: float = 3.0
    shift: float = 3.0
    seed: int = 0
    codebook_k: int = 256
    codebook_m: int = 8
    codebook_m_tail: int = 8
    tail_latent_frames: int = 0
    pixel_format: str = "yuv420p"
    color_range: str = "tv"
    index_coding: str = "combinatorial"
    entropy_coder: str = "ans-laplace"
    profile: int = 0
    codebook_span: int = 1  # latent frames per codebook set; 0 = the whole GOP latent
    version: int = VERSION

    def validate(self) -> "SequenceHeader":
        _check(self.version in READABLE_VERSIONS,
               f"unsupported bitstream version {self.version} (this decoder reads {', '.join(map(str, READABLE_VERSIONS))})")
        _check(0 <= self.codebook_span <= MAX_GOP_LENGTH, f"codebook span {self.codebook_span} outside 0..{MAX_GOP_LENGTH}")
        _check(self.version >= 2 or self.codebook_span == 1, "a v1 header cannot carry a codebook span other than 1")
        _check(self.mode in MODES, f"unknown mode {self.mode!r}")
        _check(16 <= self.width <= MAX_DIMENSION and 16 <= self.height <= MAX_DIMENSION,
               f"picture size {self.width}x{self.height} outside 16..{MAX_DIMENSION}")
        _check(self.fps > 0 and self.fps <= 1000, f"frame rate {self.fps} outside (0, 1000]")
        _check(0 <= self.frame_count <= MAX_FRAMES, f"frame count {self.frame_count} outside 0..{MAX_FRAMES} (0 = unknown)")
        _check(1 <= self.gop_length <= MAX_GOP_LENGTH, f"GOP length {self.gop_length} outside 1..{MAX_GOP_LENGTH}")
        _check(0 <= self.gop_overlap < self.gop_length, f"GOP overlap {self.gop_overlap} not below GOP length")
        _check(1 <= self.latent_channels <= 1024 and 1 <= self.spatial_stride <= 64 and 1 <= self.temporal_stride <= 16,
               "latent geometry out of range")
        _check(1 <= self.steps <= 200 and 0 <= self.ode_tail < self.steps, "sampler steps out of range")
        _check(2 <= self.codebook_k <= MAX_K, f"codebook size K={self.codebook_k} outside 2..{MAX_K}")
        _check(1 <= self.codebook_m <= min(MAX_M, self.codebook_k) and 1 <= self.codebook_m_tail <= min(MAX_M, self.codebook_k),
               "atoms per step M outside 1..min(K, 1024)")
        _check(len(self.prior_sha256) == 32, "prior hash must be 32 bytes")
        return self

    def to_bytes(self) -> bytes:
        self.validate()
        d = asdict(self)
        fps = Fraction(d.pop("fps"))
        payload = SequenceHeaderSyntax.build(dict(d, fps_num=fps.numerator, fps_den=fps.denominator))
        return build_unit("sequence_header", payload)

    @classmethod
    def from_payload(cls, payload: bytes) -> "SequenceHeader":
        c = _parse(SequenceHeaderSyntax, payload, "sequence header")
        _check(c.fps_den > 0, "frame rate denominator is zero")
        kw = {f.name: c[f.name] for f in fields(cls) if f.name != "fps"}
        for k in ("mode", "pixel_format", "color_range", "index_coding", "entropy_coder"):
            kw[k] = _enum_name(kw[k])
        if kw["codebook_span"] is None:  # a v1 stream: one codebook per (step, latent frame)
            kw["codebook_span"] = 1
        return cls(fps=Fraction(c.fps_num, c.fps_den), **kw).validate()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SequenceHeader":
        unit_type, payload = parse_unit(data)
        _check(unit_type == "sequence_header", f"expected a sequence header unit, found {unit_type}")
        return cls.from_payload(payload)


@dataclass
class Anchor:
    role: str  # "first" | "last"
    codec: int
    data: bytes


@dataclass
class GopUnit:
    gop_index: int
    first_frame: int
    frame_count: int
    codebook_k: int
    codebook_m: int
    codebook_m_tail: int
    indices: bytes
    m_plus_steps: int = 0
    keyframe: bool = True
    prompt: str | None = None
    anchors: list[Anchor] = field(default_factory=list)
    residual: bytes | None = None
    frame_hash: bytes = bytes(16)

    def validate(self) -> "GopUnit":
        _check(1 <= self.frame_count <= MAX_GOP_LENGTH, f"GOP frame count {self.frame_count} outside 1..{MAX_GOP_LENGTH}")
        _check(2 <= self.codebook_k <= MAX_K, f"GOP codebook size K={self.codebook_k} outside 2..{MAX_K}")
        _check(1 <= self.codebook_m <= min(MAX_M, self.codebook_k - 1) and 1 <= self.codebook_m_tail <= min(MAX_M, self.codebook_k),
               "GOP atoms per step M out of range")
        _check(len(self.anchors) <= MAX_ANCHORS, f"{len(self.anchors)} anchors (at most {MAX_ANCHORS})")
        _check(self.prompt is None or len(self.prompt.encode()) <= MAX_PROMPT_BYTES, f"prompt longer than {MAX_PROMPT_BYTES} bytes")
        for name, blob in [("anchor", a.data) for a in self.anchors] + [("indices", self.indices), ("residual", self.residual or b"")]:
            _check(len(blob) <= MAX_PAYLOAD_FIELD_BYTES, f"{name} payload larger than {MAX_PAYLOAD_FIELD_BYTES} bytes")
        _check(len(self.frame_hash) == 16, "frame hash must be 16 bytes")
        return self

    def to_bytes(self) -> bytes:
        self.validate()
        payload = GopUnitSyntax.build(dict(
            gop_index=self.gop_index, first_frame=self.first_frame, frame_count=self.frame_count,
            flags=dict(keyframe=self.keyframe, has_prompt=self.prompt is not None,
                       has_residual=self.residual is not None, reserved=0),
            codebook_k=self.codebook_k, codebook_m=self.codebook_m, codebook_m_tail=self.codebook_m_tail,
            m_plus_steps=self.m_plus_steps, prompt=self.prompt,
            anchors=[dict(role=a.role, codec=a.codec, data=a.data) for a in self.anchors],
            indices=self.indices, residual=self.residual, frame_hash=self.frame_hash,
        ))
        return build_unit("gop", payload)

    @classmethod
    def from_payload(cls, payload: bytes) -> "GopUnit":
        c = _parse(GopUnitSyntax, payload, "GOP unit")
        return cls(
            gop_index=c.gop_index, first_frame=c.first_frame, frame_count=c.frame_count,
            codebook_k=c.codebook_k, codebook_m=c.codebook_m, codebook_m_tail=c.codebook_m_tail,
            m_plus_steps=c.m_plus_steps, keyframe=bool(c.flags.keyframe), prompt=c.prompt,
            anchors=[Anchor(str(a.role), a.codec, bytes(a.data)) for a in c.anchors],
            indices=bytes(c.indices), residual=None if c.residual is None else bytes(c.residual),
            frame_hash=bytes(c.frame_hash),
        ).validate()

    @classmethod
    def from_bytes(cls, data: bytes) -> "GopUnit":
        unit_type, payload = parse_unit(data)
        _check(unit_type == "gop", f"expected a GOP unit, found {unit_type}")
        return cls.from_payload(payload)


def frame_hash(frames_uint8) -> bytes:
    """First 16 bytes of SHA-256 over the decoded frames (uint8 RGB, frame-major) a GOP outputs."""
    h = hashlib.sha256()
    for f in frames_uint8:
        h.update(np.ascontiguousarray(f, dtype=np.uint8).tobytes())
    return h.digest()[:16]


# -- unit framing ----------------------------------------------------------------------------------

def build_unit(unit_type: str, payload: bytes) -> bytes:
    _check(len(payload) <= MAX_UNIT_BYTES, f"unit payload larger than {MAX_UNIT_BYTES} bytes")
    return UnitSyntax.build(dict(body=dict(value=dict(unit_type=unit_type, length=len(payload), payload=payload))))


def parse_unit(data: bytes) -> tuple[str, bytes]:
    """Parse one complete unit (framing + CRC); returns (unit type, payload)."""
    _check(len(data) >= UNIT_OVERHEAD_BYTES, f"unit truncated: {len(data)} bytes")
    _check(data[:4] == SYNC, "unit does not start with the GVCU sync code")
    length = int.from_bytes(data[5:9], "big")
    _check(length <= MAX_UNIT_BYTES, f"unit length {length} exceeds the limit of {MAX_UNIT_BYTES}")
    _check(len(data) >= UNIT_OVERHEAD_BYTES + length, f"unit truncated: {len(data)} of {UNIT_OVERHEAD_BYTES + length} bytes")
    try:
        c = UnitSyntax.parse(data)
    except cs.ChecksumError:
        raise BitstreamError("unit CRC-32 mismatch (corrupted data)") from None
    except cs.ConstructError as e:
        raise BitstreamError(f"malformed unit: {str(e).splitlines()[0]}") from None
    return str(c.body.value.unit_type), bytes(c.body.value.payload)


class UnitReader:
    """Splits a byte stream (file or pipe, no seeking) into units.

    A unit whose framing or CRC is damaged is reported as a :class:`BitstreamError` *value* and the
    reader resynchronises on the next sync code, so one damaged GOP never takes the others with it.
    Memory stays bounded by the largest unit.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._buf = bytearray()
        self._eof = False

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n and not self._eof:
            chunk = self._stream.read(max(n - len(self._buf), 1 << 16))
            if not chunk:
                self._eof = True
            self._buf += chunk
        return len(self._buf) >= n

    def _skip_to_sync(self, start: int) -> None:
        while True:
            at = self._buf.find(SYNC, start)
            if at >= 0:
                del self._buf[:at]
                return
            keep = len(self._buf) - 3
            if keep > 0:
                del self._buf[:keep]
            if not self._fill(len(self._buf) + 1):
                self._buf.clear()
                return
            start = 0

    def __iter__(self) -> Iterator[bytes | BitstreamError]:
        while True:
            if not self._fill(1):
                return
            if not self._fill(UNIT_PREFIX_BYTES):
                self._buf.clear()
                yield BitstreamError("stream truncated inside a unit header")
                return
            if self._buf[:4] != SYNC:
                self._skip_to_sync(1)
                yield BitstreamError("lost sync: skipped damaged bytes to the next unit")
                continue
            length = int.from_bytes(self._buf[5:9], "big")
            total = UNIT_OVERHEAD_BYTES + length
            if length > MAX_UNIT_BYTES or not self._fill(total):
                self._skip_to_sync(1)
                yield BitstreamError(f"unit truncated or length {length} corrupted")
                continue
            unit = bytes(self._buf[:total])
            if zlib.crc32(unit[:-4]) != int.from_bytes(unit[-4:], "big"):
                self._skip_to_sync(1)
                yield BitstreamError("unit CRC-32 mismatch (corrupted data)")
                continue
            del self._buf[:total]
            yield unit


# -- the elementary stream (.gvc) --------------------------------------------------------------------

def write_elementary(stream: BinaryIO, header: SequenceHeader, gops: list[GopUnit] | None = None) -> None:
    stream.write(header.to_bytes())
    for g in gops or []:
        stream.write(g.to_bytes())


def read_elementary(stream: BinaryIO) -> tuple[SequenceHeader, Iterator[bytes | BitstreamError]]:
    """The sequence header plus an iterator over the following units' bytes (or errors for damaged ones)."""
    units = iter(UnitReader(stream))
    first = next(units, None)
    _check(first is not None, "empty stream")
    if isinstance(first, BitstreamError):
        raise BitstreamError(f"sequence header damaged: {first}")
    return SequenceHeader.from_bytes(first), units


def is_elementary(data: bytes) -> bool:
    return data[:4] == SYNC
