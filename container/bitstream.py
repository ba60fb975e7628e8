"""GVC bitstream v4: the one place where the syntax lives; encoder and decoder both use it.

A stream is a sequence of *units* (compare NAL units): a sequence header first, then one GOP unit per
GOP. Every unit is framed the same way so a reader can skip a damaged unit and resynchronise:

    sync "GVCU" | unit type u8 | payload length VarInt | payload | CRC-32 u32 over everything before it

Every byte of every payload is one of the ``construct`` structures below, one definition per syntax
element, each citing its section of docs/bitstream.md (in the manner of vc2_conformance). Fixed-width
integers and floats are big-endian; every length, count and size is a ``VarInt`` (LEB128, construct's
own); the unit's CRC-32 is the only checksum. The field tables of docs/bitstream.md are generated from
these structures (``python -m container.spec``) and a test keeps them in agreement.

Parsing validates semantics too: every enum against its defined values, every size and count against
the limits of the spec and, with :func:`check_gop`, a GOP unit against its sequence header. A violation
is a one-line :class:`BitstreamError`.
"""

from __future__ import annotations

import hashlib
import io
import math
import zlib
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import BinaryIO, Iterator

import construct as cs
import numpy as np
from construct import this

from gvc.errors import BitstreamError

VERSION = 4
#: versions this decoder reads: v3 is v4 without ``autoencoder_dtype`` (its streams decoded with an fp32 autoencoder)
READ_VERSIONS = (3, 4)
SYNC = b"GVCU"
UNIT_PREFIX_MAX_BYTES = 9  # sync + type + a VarInt length of at most 4 bytes (MAX_UNIT_BYTES < 2^28)
CRC_BYTES = 4

# Limits of the spec: a parser rejects anything beyond them before allocating.
MAX_UNIT_BYTES = 64 << 20
MAX_PAYLOAD_FIELD_BYTES = 32 << 20
MAX_DIMENSION = 8192
MAX_FRAMES = 1 << 24
MAX_GOP_LENGTH = 1025
MAX_PROMPT_BYTES = 4096
MAX_PRIOR_ID_BYTES = 255
MAX_ANCHORS = 2
MAX_ANCHOR_PAD = 64
MAX_K = 1 << 20
MAX_M = 1024
MAX_RESIDUAL_ELEMENTS = 1 << 24

# Enumerations: name -> coded value. Docs §"Enumerations"; a parser refuses any other value.
UNIT_TYPES = {"sequence_header": 1, "gop": 2}
MODES = {"t2v": 0, "i2v": 1, "flf2v": 2}
PIXEL_FORMATS = {"yuv420p": 0, "yuv422p": 1, "yuv444p": 2, "gray": 3}
COLOR_RANGES = {"tv": 0, "pc": 1}
INDEX_CODINGS = {"combinatorial": 0}
ENTROPY_CODERS = {"raw": 0, "ans-laplace": 1}
COMPUTE_DTYPES = {"fp32": 0, "bf16": 1, "fp16": 2}
CODEBOOK_FAMILIES = {"gaussian": 0, "hadamard": 1}
ANCHOR_ROLES = {"first": 0, "last": 1}
ANCHOR_CODECS = {"av1-intra": 1, "hevc-intra": 2, "webp": 3, "png": 4, "jpeg": 5}
COLOR_TRANSFORMS = {"ycbcr601": 0, "rgb": 1}
RESIDUAL_MODELS = {"channel": 1, "context": 2, "context_cross": 3}
#: anchor roles each mode may carry (I2V: a keyframe GOP carries its own first frame)
MODE_ANCHOR_ROLES = {"t2v": (), "i2v": ("first",), "flf2v": ("first", "last")}


class DefinedEnum(cs.Enum):
    """An enumeration whose parser refuses values the spec does not define (construct's Enum lets them through)."""

    def _decode(self, obj, context, path):
        if obj not in self.decmapping:
            defined = ", ".join(f"{v}={k}" for k, v in sorted(self.encmapping.items(), key=lambda kv: kv[1]))
            raise cs.MappingError(f"undefined value {obj} (defined: {defined})", path=path)
        return self.decmapping[obj]


class UnsignedBits(cs.BitsInteger):
    """An unsigned integer of n bits, MSB first, where n may be 0 (the value is then 0, no bits)."""

    def _parse(self, stream, context, path):
        return 0 if cs.evaluate(self.length, context) == 0 else super()._parse(stream, context, path)

    def _build(self, obj, stream, context, path):
        if cs.evaluate(self.length, context) == 0:
            if obj != 0:
                raise cs.IntegerError(f"value {obj} does not fit in 0 bits", path=path)
            return obj
        return super()._build(obj, stream, context, path)


class WordArray(cs.Adapter):
    """u32 big-endian words up to the end of the enclosing payload, as a numpy uint32 array."""

    def __init__(self):
        super().__init__(cs.GreedyBytes)

    def _decode(self, obj, context, path):
        if len(obj) % 4:
            raise cs.ValidationError(f"{len(obj)} bytes are not a whole number of 32-bit words", path=path)
        return np.frombuffer(obj, dtype=">u4").astype(np.uint32)

    def _encode(self, obj, context, path):
        return np.asarray(obj, dtype=np.uint32).astype(">u4").tobytes()


# -- §Unit framing ------------------------------------------------------------------------------------

UnitPrefixSyntax = cs.Struct(
    "sync" / cs.Const(SYNC),                                # §Unit framing: resynchronisation code
    "unit_type" / DefinedEnum(cs.Int8ub, **UNIT_TYPES),     # §Unit framing
    "length" / cs.VarInt,                                   # §Unit framing: payload bytes, ≤ MAX_UNIT_BYTES
)

UnitSyntax = cs.Struct(                                     # §Unit framing
    "body" / cs.RawCopy(cs.Struct(
        *UnitPrefixSyntax.subcons,
        cs.Check(this.length <= MAX_UNIT_BYTES),
        "payload" / cs.Bytes(this.length),
    )),
    "crc32" / cs.Checksum(cs.Int32ub, lambda data: zlib.crc32(data), this.body.data),
)

# -- §Sequence header ---------------------------------------------------------------------------------

SequenceHeaderSyntax = cs.Struct(
    "version" / cs.Int8ub,                                  # §Versioning: first, so any decoder can refuse
    "profile" / cs.Int8ub,                                  # §Sequence header
    "mode" / DefinedEnum(cs.Int8ub, **MODES),               # §Sequence header: mode
    "width" / cs.VarInt,                                    # §Sequence header: picture size
    "height" / cs.VarInt,
    "fps_num" / cs.VarInt,                                  # §Sequence header: exact frame rate
    "fps_den" / cs.VarInt,
    "frame_count" / cs.VarInt,                              # §Sequence header: 0 = unknown (live)
    "pixel_format" / DefinedEnum(cs.Int8ub, **PIXEL_FORMATS),
    "color_range" / DefinedEnum(cs.Int8ub, **COLOR_RANGES),
    "gop_length" / cs.VarInt,                               # §Sequence header: GOP plan L
    "gop_overlap" / cs.VarInt,                              # §Sequence header: GOP plan O
    "prior_id" / cs.PascalString(cs.VarInt, "ascii"),       # §Sequence header: prior
    "prior_sha256" / cs.Bytes(32),
    "latent_channels" / cs.VarInt,                          # §Sequence header: latent geometry
    "spatial_stride" / cs.VarInt,
    "temporal_stride" / cs.VarInt,
    "steps" / cs.VarInt,                                    # §Sequence header: sampler
    "ode_tail" / cs.VarInt,
    "gamma" / cs.Float32b,
    "shift" / cs.Float32b,
    "seed" / cs.Int32ub,
    "compute_dtype" / DefinedEnum(cs.Int8ub, **COMPUTE_DTYPES),  # §Sequence header: arithmetic to replay
    "autoencoder_dtype" / cs.If(this.version >= 4, DefinedEnum(cs.Int8ub, **COMPUTE_DTYPES)),  # §Sequence header (v4)
    "codebook_family" / DefinedEnum(cs.Int8ub, **CODEBOOK_FAMILIES),  # §Codebook
    "codebook_k" / cs.VarInt,                               # §Sequence header: codebook defaults
    "codebook_m" / cs.VarInt,
    "codebook_m_tail" / cs.VarInt,
    "tail_latent_frames" / cs.VarInt,
    "codebook_span" / cs.VarInt,                            # §Sequence header: latent frames per codebook set
    "index_coding" / DefinedEnum(cs.Int8ub, **INDEX_CODINGS),  # §Index-set payload
    "entropy_coder" / DefinedEnum(cs.Int8ub, **ENTROPY_CODERS),  # §Residual payload
)

# -- §Anchor payload ----------------------------------------------------------------------------------

AnchorPictureSyntax = cs.Struct(                            # §Anchor payload: one coded picture
    "flags" / cs.BitStruct(
        "reserved" / cs.Const(0, cs.BitsInteger(3)),
        "header_stripped" / cs.Flag,                        # webp: RIFF header, av1: temporal delimiter removed
        "color_transform" / DefinedEnum(cs.BitsInteger(4), **COLOR_TRANSFORMS),
    ),
    "pad_w" / cs.VarInt,                                    # columns to crop on the right, ≤ MAX_ANCHOR_PAD
    "pad_h" / cs.VarInt,                                    # rows to crop at the bottom
    cs.Check(lambda c: c.pad_w <= MAX_ANCHOR_PAD and c.pad_h <= MAX_ANCHOR_PAD),
    "data" / cs.GreedyBytes * "bytes to the end of the payload: the image codec's stream for one intra picture",
)

AnchorSyntax = cs.Struct(                                   # §GOP unit: anchors
    "role" / DefinedEnum(cs.Int8ub, **ANCHOR_ROLES),
    "codec" / DefinedEnum(cs.Int8ub, **ANCHOR_CODECS),
    "picture" / cs.Prefixed(cs.VarInt, cs.RawCopy(AnchorPictureSyntax)),
)

# -- §Residual payload --------------------------------------------------------------------------------

ResidualHeaderSyntax = cs.Struct(                           # §Residual payload: header
    "model" / DefinedEnum(cs.Int8ub, **RESIDUAL_MODELS),
    "channels" / cs.VarInt,
    "height" / cs.VarInt,
    "width" / cs.VarInt,
    "step" / cs.Float32b,                                   # quantiser step Δ
    "rounding" / cs.Int8ub,                                 # ρ·256, 1..128
)

ResidualPayloadSyntax = cs.Struct(                          # §Residual payload
    "header" / ResidualHeaderSyntax,
    "words" / WordArray() * "u32[] big-endian rANS words to the end of the payload (none when every value is 0)",
)

# -- §Index-set payload -------------------------------------------------------------------------------
# Parameterised by what the GOP unit and the prior imply: parse/build with
# rank_bits=[⌈log2 C(K, M_s)⌉ per set] and atoms=[M_s per set], in step-major set order.

IndexSetSyntax = cs.Struct(                                 # §Index-set payload: one set
    "rank" / UnsignedBits(lambda c: c._params.rank_bits[c._._index]) * "u(⌈log2 C(K, M)⌉) colex rank of the M indices",
    "signs" / cs.Array(lambda c: c._params.atoms[c._._index], cs.Flag) * "flag[M]: 1 = +1, in ascending index order",
)

IndexSetsSyntax = cs.Bitwise(cs.Struct(                     # §Index-set payload
    "sets" / cs.Array(lambda c: len(c._params.atoms), IndexSetSyntax) * "IndexSet[S], S = SDE steps × codebook sets, step-major",
    "padding" / cs.Const(0, UnsignedBits(lambda c: -(sum(c._params.rank_bits) + sum(c._params.atoms)) % 8))
    * "u(0..7) = 0: closes the payload on a byte",
    cs.Terminated,
))

# -- §GOP unit ----------------------------------------------------------------------------------------

GopUnitSyntax = cs.Struct(
    "gop_index" / cs.VarInt,                                # §GOP unit
    "first_frame" / cs.VarInt,                              # = gop_index·(L − O)
    "frame_count" / cs.VarInt,                              # source frames spanned, ≤ L
    "flags" / cs.BitStruct(
        "keyframe" / cs.Flag,
        "has_prompt" / cs.Flag,
        "has_residual" / cs.Flag,
        "reserved" / cs.Const(0, cs.BitsInteger(5)),
    ),
    "codebook_k" / cs.VarInt,                               # §GOP unit: this GOP's codebook (rate control)
    "codebook_m" / cs.VarInt,
    "codebook_m_tail" / cs.VarInt,
    "m_plus_steps" / cs.VarInt,
    "prompt" / cs.If(this.flags.has_prompt, cs.PascalString(cs.VarInt, "utf8")),
    "anchors" / cs.PrefixedArray(cs.VarInt, AnchorSyntax),  # §Anchor payload
    "indices" / cs.Prefixed(cs.VarInt, cs.GreedyBytes) * "VarInt length + IndexSets (parsed with this GOP's K and M per set)",
    "residual" / cs.If(this.flags.has_residual, cs.Prefixed(cs.VarInt, cs.RawCopy(ResidualPayloadSyntax))),
    "frame_hash" / cs.Bytes(16),                            # §GOP unit: frame hash
)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BitstreamError(what)


def parse_syntax(syntax: cs.Construct, data: bytes, what: str, **params):
    """Parse ``data`` with a structure; any construct error becomes a one-line BitstreamError naming the field."""
    try:
        return syntax.parse(data, **params)
    except cs.ConstructError as e:
        lines = str(e).splitlines()
        where = (getattr(e, "path", None) or "").replace("(parsing)", "").strip(" ->")
        msg = lines[-1] if lines else type(e).__name__
        raise BitstreamError(f"malformed {what}: {where + ': ' if where else ''}{msg}") from None


def _unsupported_version(version: int) -> str:
    why = "re-encode the source with this GVC" if version < VERSION else "a newer GVC wrote it"
    readable = " and ".join(map(str, READ_VERSIONS))
    return f"bitstream version {version} is not supported: this decoder reads versions {readable} ({why})"


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
    steps: int  # the codec's settings: no defaults here, CodecConfig holds them (gvc/codec.py make_header)
    ode_tail: int
    gamma: float
    shift: float
    seed: int
    codebook_k: int
    codebook_m: int
    codebook_m_tail: int
    tail_latent_frames: int
    codebook_span: int  # latent frames per codebook set; 0 = the whole GOP latent
    pixel_format: str = "yuv420p"
    color_range: str = "tv"
    index_coding: str = "combinatorial"
    entropy_coder: str = "ans-laplace"
    profile: int = 0
    compute_dtype: str = "fp32"  # transformer arithmetic the encoder used; the decoder replays it
    autoencoder_dtype: str = "fp32"  # the autoencoder's (VAE encode of anchors, VAE decode); v3 streams: fp32
    codebook_family: str = "gaussian"
    version: int = VERSION

    def validate(self) -> "SequenceHeader":
        _check(self.version in READ_VERSIONS, _unsupported_version(self.version))
        for name, values in (("mode", MODES), ("pixel_format", PIXEL_FORMATS), ("color_range", COLOR_RANGES),
                             ("index_coding", INDEX_CODINGS), ("entropy_coder", ENTROPY_CODERS),
                             ("compute_dtype", COMPUTE_DTYPES), ("autoencoder_dtype", COMPUTE_DTYPES),
                             ("codebook_family", CODEBOOK_FAMILIES)):
            _check(getattr(self, name) in values, f"unknown {name} {getattr(self, name)!r} (defined: {', '.join(values)})")
        _check(self.version >= 4 or self.autoencoder_dtype == "fp32", "a version 3 header cannot record autoencoder_dtype")
        _check(0 <= self.profile <= 255, f"profile {self.profile} outside 0..255")
        _check(0 <= self.codebook_span <= MAX_GOP_LENGTH, f"codebook span {self.codebook_span} outside 0..{MAX_GOP_LENGTH}")
        _check(16 <= self.width <= MAX_DIMENSION and 16 <= self.height <= MAX_DIMENSION,
               f"picture size {self.width}x{self.height} outside 16..{MAX_DIMENSION}")
        _check(self.fps > 0 and self.fps <= 1000, f"frame rate {self.fps} outside (0, 1000]")
        _check(0 <= self.frame_count <= MAX_FRAMES, f"frame count {self.frame_count} outside 0..{MAX_FRAMES} (0 = unknown)")
        _check(1 <= self.gop_length <= MAX_GOP_LENGTH, f"GOP length {self.gop_length} outside 1..{MAX_GOP_LENGTH}")
        overlap = 0 if self.mode == "t2v" else 1
        _check(self.gop_overlap == overlap and overlap < self.gop_length,
               f"GOP overlap {self.gop_overlap} in {self.mode} (the mode needs {overlap}, below the GOP length)")
        _check(0 < len(self.prior_id) <= MAX_PRIOR_ID_BYTES and self.prior_id.isascii(),
               f"prior id must be 1..{MAX_PRIOR_ID_BYTES} ASCII characters")
        _check(1 <= self.latent_channels <= 1024 and 1 <= self.spatial_stride <= 64 and 1 <= self.temporal_stride <= 16,
               "latent geometry out of range")
        _check(1 <= self.steps <= 200 and 0 <= self.ode_tail < self.steps, "sampler steps out of range")
        _check(math.isfinite(self.gamma) and 0 <= self.gamma <= 10 and math.isfinite(self.shift) and 0.1 <= self.shift <= 20,
               f"sampler γ {self.gamma} or shift {self.shift} out of range (γ in [0, 10], shift in [0.1, 20])")
        _check(0 <= self.seed < 2**32, f"seed {self.seed} outside 0..2^32-1")
        _check(2 <= self.codebook_k <= MAX_K, f"codebook size K={self.codebook_k} outside 2..{MAX_K}")
        _check(1 <= self.codebook_m <= min(MAX_M, self.codebook_k - 1) and 1 <= self.codebook_m_tail <= min(MAX_M, self.codebook_k),
               f"atoms per step M={self.codebook_m}, M_tail={self.codebook_m_tail} outside 1..min(K-1, {MAX_M})")
        _check(self.mode == "i2v" or (self.codebook_m_tail == self.codebook_m and self.tail_latent_frames == 0),
               "only I2V has tail latent frames with their own M")
        _check(0 <= self.tail_latent_frames <= MAX_GOP_LENGTH, f"tail latent frames {self.tail_latent_frames} out of range")
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
        _check(len(payload) > 0, "empty sequence header")
        _check(payload[0] in READ_VERSIONS, _unsupported_version(payload[0]))
        c = parse_syntax(SequenceHeaderSyntax, payload, "sequence header")
        if c.autoencoder_dtype is None:  # v3: the field did not exist, autoencoders ran in fp32
            c.autoencoder_dtype = "fp32"
        _check(c.fps_den > 0, "frame rate denominator is zero")
        _check(c.fps_num <= 1 << 32 and c.fps_den <= 1 << 32, "frame rate terms larger than 2^32")
        kw = {f.name: c[f.name] for f in fields(cls) if f.name != "fps"}
        return cls(fps=Fraction(c.fps_num, c.fps_den), **kw).validate()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SequenceHeader":
        unit_type, payload = parse_unit(data)
        _check(unit_type == "sequence_header", f"expected a sequence header unit, found {unit_type}")
        return cls.from_payload(payload)


@dataclass
class Anchor:
    """One coded anchor picture of a GOP: ``data`` is its anchor payload (§Anchor payload, built by gvc/anchors.py)."""

    role: str  # "first" | "last"
    codec: int  # a value of ANCHOR_CODECS
    data: bytes


@dataclass
class GopUnit:
    gop_index: int
    first_frame: int
    frame_count: int
    codebook_k: int
    codebook_m: int
    codebook_m_tail: int
    indices: bytes  # §Index-set payload (IndexSetsSyntax, parsed by gvc/entropy/combinatorial.py)
    m_plus_steps: int = 0
    keyframe: bool = True
    prompt: str | None = None
    anchors: list[Anchor] = field(default_factory=list)
    residual: bytes | None = None  # §Residual payload (ResidualPayloadSyntax, coded by gvc/entropy/residual.py)
    frame_hash: bytes = bytes(16)

    def validate(self) -> "GopUnit":
        _check(0 <= self.first_frame and 0 <= self.gop_index and self.first_frame + self.frame_count <= MAX_FRAMES,
               f"GOP {self.gop_index} at frame {self.first_frame} lies beyond the {MAX_FRAMES}-frame limit")
        _check(1 <= self.frame_count <= MAX_GOP_LENGTH, f"GOP frame count {self.frame_count} outside 1..{MAX_GOP_LENGTH}")
        _check(2 <= self.codebook_k <= MAX_K, f"GOP codebook size K={self.codebook_k} outside 2..{MAX_K}")
        _check(1 <= self.codebook_m <= min(MAX_M, self.codebook_k - 1) and 1 <= self.codebook_m_tail <= min(MAX_M, self.codebook_k),
               f"GOP atoms per step M={self.codebook_m}, M_tail={self.codebook_m_tail} out of range for K={self.codebook_k}")
        _check(self.m_plus_steps == 0 or self.codebook_m_tail < self.codebook_k,
               "GOP adds an atom on some steps but M_tail already equals K")
        _check(self.m_plus_steps <= 200, f"GOP m_plus_steps {self.m_plus_steps} above the 200-step limit")
        _check(len(self.anchors) <= MAX_ANCHORS, f"{len(self.anchors)} anchors (at most {MAX_ANCHORS})")
        roles = [a.role for a in self.anchors]
        _check(all(r in ANCHOR_ROLES for r in roles) and len(set(roles)) == len(roles), f"GOP anchor roles {roles} invalid or repeated")
        _check(all(a.codec in ANCHOR_CODECS.values() for a in self.anchors), "unknown anchor codec")
        _check(self.prompt is None or len(self.prompt.encode()) <= MAX_PROMPT_BYTES, f"prompt longer than {MAX_PROMPT_BYTES} bytes")
        for name, blob in [("anchor", a.data) for a in self.anchors] + [("indices", self.indices), ("residual", self.residual or b"")]:
            _check(len(blob) <= MAX_PAYLOAD_FIELD_BYTES, f"{name} payload larger than {MAX_PAYLOAD_FIELD_BYTES} bytes")
        _check(len(self.frame_hash) == 16, "frame hash must be 16 bytes")
        return self

    def to_bytes(self) -> bytes:
        self.validate()
        payload = GopUnitSyntax.build(dict(
            gop_index=self.gop_index, first_frame=self.first_frame, frame_count=self.frame_count,
            flags=dict(keyframe=self.keyframe, has_prompt=self.prompt is not None, has_residual=self.residual is not None),
            codebook_k=self.codebook_k, codebook_m=self.codebook_m, codebook_m_tail=self.codebook_m_tail,
            m_plus_steps=self.m_plus_steps, prompt=self.prompt,
            anchors=[dict(role=a.role, codec=_codec_name(a.codec), picture=dict(data=a.data)) for a in self.anchors],
            indices=self.indices, residual=None if self.residual is None else dict(data=self.residual),
            frame_hash=self.frame_hash,
        ))
        return build_unit("gop", payload)

    @classmethod
    def from_payload(cls, payload: bytes, header: SequenceHeader | None = None) -> "GopUnit":
        c = parse_syntax(GopUnitSyntax, payload, "GOP unit")
        unit = cls(
            gop_index=c.gop_index, first_frame=c.first_frame, frame_count=c.frame_count,
            codebook_k=c.codebook_k, codebook_m=c.codebook_m, codebook_m_tail=c.codebook_m_tail,
            m_plus_steps=c.m_plus_steps, keyframe=bool(c.flags.keyframe), prompt=c.prompt,
            anchors=[Anchor(str(a.role), ANCHOR_CODECS[str(a.codec)], bytes(a.picture.data)) for a in c.anchors],
            indices=bytes(c.indices), residual=None if c.residual is None else bytes(c.residual.data),
            frame_hash=bytes(c.frame_hash),
        ).validate()
        if header is not None:
            check_gop(unit, header)
        return unit

    @classmethod
    def from_bytes(cls, data: bytes, header: SequenceHeader | None = None) -> "GopUnit":
        """Parse a GOP unit; with ``header``, also check it against the sequence header (:func:`check_gop`)."""
        unit_type, payload = parse_unit(data)
        _check(unit_type == "gop", f"expected a GOP unit, found {unit_type}")
        return cls.from_payload(payload, header)


def _codec_name(codec_id: int) -> str:
    for name, value in ANCHOR_CODECS.items():
        if value == codec_id:
            return name
    raise BitstreamError(f"unknown anchor codec id {codec_id!r}")


def check_gop(unit: GopUnit, header: SequenceHeader) -> None:
    """A GOP unit against its sequence header (§GOP unit): position in the GOP plan, counts, what the mode allows.

    Everything the decoder would otherwise trust: first_frame = gop_index·(L − O), frame_count ≤ L and within
    the header's frame count when known, anchors, prompt and residual only where the mode has them, the
    keyframe flag saying whether the GOP carries its own first frame, and the residual's size equal to the
    latent frame's."""
    g = unit.gop_index
    step = header.gop_length - header.gop_overlap
    _check(unit.first_frame == g * step,
           f"GOP {g} claims first frame {unit.first_frame}, the header's GOP plan puts it at {g * step}")
    _check(unit.frame_count <= header.gop_length, f"GOP {g} spans {unit.frame_count} frames, the GOP length is {header.gop_length}")
    if header.frame_count:
        _check(unit.first_frame + unit.frame_count <= header.frame_count,
               f"GOP {g} (frames {unit.first_frame}..{unit.first_frame + unit.frame_count - 1}) lies beyond "
               f"the header's {header.frame_count} frames")
    _check(unit.m_plus_steps <= header.steps - header.ode_tail,
           f"GOP {g} adds atoms on {unit.m_plus_steps} steps, the sampler has {header.steps - header.ode_tail} noisy steps")
    _check(header.mode == "i2v" or unit.codebook_m_tail == unit.codebook_m, f"GOP {g}: only I2V has a separate M_tail")
    roles = [a.role for a in unit.anchors]
    allowed = MODE_ANCHOR_ROLES[header.mode]
    _check(all(r in allowed for r in roles), f"GOP {g} carries anchors {roles}; {header.mode} allows {list(allowed) or 'none'}")
    if header.mode == "t2v":
        _check(unit.keyframe, f"GOP {g}: every T2V GOP is a keyframe")
    else:
        _check(unit.keyframe == ("first" in roles), f"GOP {g}: keyframe flag {unit.keyframe} but first anchor "
                                                     f"{'present' if 'first' in roles else 'absent'}")
        _check(g > 0 or unit.keyframe, "GOP 0 must carry its first frame (keyframe)")
    _check(unit.prompt is None or header.mode == "t2v", f"GOP {g}: a prompt in {header.mode} (T2V only)")
    if unit.residual is not None:
        _check(header.mode == "i2v", f"GOP {g}: a residual in {header.mode} (I2V only)")
        r = parse_syntax(ResidualHeaderSyntax, unit.residual, "residual payload")
        s = header.spatial_stride
        # spatial_stride is the padding granularity, not the latent's scale (Wan: 16 = VAE stride 8 x patch 2, so its
        # latent is ceil(H/16)*2 rows): the exact shape is checked where the residual meets the latent (gvc.codec);
        # here only the bound that keeps a hostile payload from allocating more: no latent exceeds the padded picture.
        bound = (header.latent_channels, -(-header.height // s) * s, -(-header.width // s) * s)
        _check(r.channels == bound[0] and r.height <= bound[1] and r.width <= bound[2],
               f"GOP {g}: residual of {r.channels}x{r.height}x{r.width}, larger than the padded picture "
               f"({bound[0]}x{bound[1]}x{bound[2]})")


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


def _legacy_version(data: bytes) -> int | None:
    """The version of a v1/v2 stream's first unit (u32 length framing), else None.

    A v3 or v4 unit's VarInt length is never 0 (no payload is empty), while a v1/v2 sequence header unit has a u32
    length whose two high bytes are 0, then the version byte (1 or 2)."""
    if len(data) >= 10 and data[:4] == SYNC and data[4] == UNIT_TYPES["sequence_header"] and data[5:7] == b"\0\0":
        return data[9] if data[9] in (1, 2) else None
    return None


def _unit_prefix(data: bytes) -> tuple[str, int, int]:
    """(unit type, payload length, prefix bytes) of the unit at the start of ``data`` (≥ 1 complete prefix)."""
    legacy = _legacy_version(data)
    _check(legacy is None, _unsupported_version(legacy or 0))
    f = io.BytesIO(data[:UNIT_PREFIX_MAX_BYTES])
    try:
        c = UnitPrefixSyntax.parse_stream(f)
    except cs.ConstructError as e:
        raise BitstreamError(f"malformed unit header: {str(e).splitlines()[-1]}") from None
    _check(c.length <= MAX_UNIT_BYTES, f"unit length {c.length} exceeds the limit of {MAX_UNIT_BYTES}")
    return str(c.unit_type), c.length, f.tell()


def parse_unit(data: bytes) -> tuple[str, bytes]:
    """Parse one complete unit (framing + CRC); returns (unit type, payload)."""
    _check(data[:4] == SYNC, "unit does not start with the GVCU sync code")
    _, length, prefix = _unit_prefix(data)
    total = prefix + length + CRC_BYTES
    _check(len(data) >= total, f"unit truncated: {len(data)} of {total} bytes")
    try:
        c = UnitSyntax.parse(data)
    except cs.ChecksumError:
        raise BitstreamError("unit CRC-32 mismatch (corrupted data)") from None
    except cs.ConstructError as e:
        raise BitstreamError(f"malformed unit: {str(e).splitlines()[-1]}") from None
    return str(c.body.value.unit_type), bytes(c.body.value.payload)


class UnitReader:
    """Splits a byte stream (file or pipe, no seeking) into units.

    A unit whose framing or CRC is damaged is reported as a :class:`BitstreamError` *value* and the
    reader resynchronises on the next sync code, so one damaged GOP never takes the others with it.
    Memory stays bounded by the largest unit. A v1/v2 stream is refused (raised) at its first unit.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._buf = bytearray()
        self._eof = False
        self._first = True

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
            self._fill(UNIT_PREFIX_MAX_BYTES + 1)  # the longest prefix, and one byte more to spot a legacy stream
            if len(self._buf) < 6:
                self._buf.clear()
                yield BitstreamError("stream truncated inside a unit header")
                return
            if self._buf[:4] != SYNC:
                self._skip_to_sync(1)
                yield BitstreamError("lost sync: skipped damaged bytes to the next unit")
                continue
            if self._first:
                legacy = _legacy_version(bytes(self._buf[:10]))
                if legacy is not None:
                    raise BitstreamError(_unsupported_version(legacy))
                self._first = False
            try:
                _, length, prefix = _unit_prefix(bytes(self._buf[:UNIT_PREFIX_MAX_BYTES]))
            except BitstreamError as e:
                self._skip_to_sync(1)
                yield BitstreamError(f"unit header corrupted: {e}")
                continue
            total = prefix + length + CRC_BYTES
            if not self._fill(total):
                self._skip_to_sync(1)
                yield BitstreamError(f"unit truncated or length {length} corrupted")
                continue
            unit = bytes(self._buf[:total])
            if zlib.crc32(unit[:-CRC_BYTES]) != int.from_bytes(unit[-CRC_BYTES:], "big"):
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
