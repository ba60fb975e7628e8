"""Every codec default and limit, in one place (compare diffusers' ``register_to_config``).

:class:`CodecConfig` is the single source: each field carries its default, its allowed range or choices
and its help text. The command line builds its options from these fields (:func:`option`), the sampler
and the header builder take their values from a config, and the tools construct one. Limits that the
bitstream itself imposes (modes, GOP length, prompt size) are read from the spec in ``container/``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace

from container.bitstream import ANCHOR_CODECS as _ANCHOR_CODECS
from container.bitstream import MAX_GOP_LENGTH, MAX_PROMPT_BYTES
from container.bitstream import CODEBOOK_FAMILIES as _WIRE_FAMILIES
from container.bitstream import MODES as _WIRE_MODES

from .dtypes import DTYPE_CHOICES
from .errors import ParameterError

CODEBOOK_FAMILIES = tuple(_WIRE_FAMILIES)  # gaussian, hadamard: the header's enum (gvc.codebook implements both)

MODES = tuple(_WIRE_MODES)  # names from the bitstream's mode enum: t2v, i2v, flf2v

# --quality is M, the atoms chosen per (SDE step, codebook set); the codebook size K follows this
# ladder (docs/method.md §2: the reference sweeps (8, 256) ... (64, 16384) ... (256, 65536)).
K_LADDER = ((1, 16), (2, 64), (4, 128), (8, 256), (16, 1024), (32, 4096), (64, 16384), (128, 32768), (256, 65536))
MAX_QUALITY = K_LADDER[-1][0]
LADDER = "ladder"  # a lever left at this follows the quality knob (gvc/ladder.py)


def codebook_size(m: int) -> int:
    """K for M atoms: the ladder entry of the smallest rung >= M."""
    if not 1 <= m <= MAX_QUALITY:
        raise ParameterError(f"quality (atoms per step) must be in 1..{MAX_QUALITY}, got {m}")
    return next(k for rung, k in K_LADDER if rung >= m)


def setting(default, help: str, *, lo=None, hi=None, choices=None, what: str | None = None):
    """A config field: its default, its range [lo, hi] or choices, and the text the CLI shows."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "choices": choices, "what": what})


@dataclass
class CodecConfig:
    """What an encode is: codec parameters plus the prior, device and rate target that run it."""

    mode: str = setting("i2v", "t2v: indices only; i2v: coded first frame, GOPs chained; flf2v: first+last anchors",
                        choices=MODES)
    quality: int = setting(8, "the bitrate knob: atoms per step and codebook set M; the codebook size K follows the "
                              "ladder M->K " + ", ".join(f"{m}->{k}" for m, k in K_LADDER) + " (the next rung up), "
                              "and the residual step and anchor quality follow M (gvc/ladder.py)",
                           lo=1, hi=MAX_QUALITY, what="quality (atoms per step)")
    tail_quality: int | None = setting(None, "M_tail for I2V's last latent frames (default: 2·M, below K)",
                                       lo=1, hi=MAX_QUALITY, what="tail quality")
    tail_latent_frames: int = setting(2, "I2V latent frames at the end of a GOP that get M_tail atoms", lo=0, hi=255)
    gop_length: int = setting(33, "frames per GOP (must be valid for the prior)", lo=1, hi=MAX_GOP_LENGTH,
                              what="GOP length")
    steps: int = setting(20, "sampling steps", lo=1, hi=200)
    ode_tail: int = setting(3, "final steps without noise, carrying no bits (below steps)", lo=0, hi=199)
    gamma: float = setting(3.0, "SDE diffusion scale γ", lo=0.0, hi=10.0)
    shift: float = setting(3.0, "timestep shift", lo=0.1, hi=20.0)
    seed: int = setting(0, "codebook and initial-noise seed", lo=0, hi=2**32 - 1)
    residual_step: float | None | str = setting(LADDER, "I2V tail-latent residual quantiser step; 0 disables the "
                                                "residual; ladder = follows --quality", lo=1e-3, hi=100.0,
                                                what="residual step")
    anchor_codec: str | int | None = setting(None, "anchor image codec: " + ", ".join(_ANCHOR_CODECS)
                                             + " (default: the best measured one, av1-intra)")
    anchor_quality: float | str = setting(LADDER, "anchor image quality; ladder = follows --quality", lo=0.0, hi=100.0,
                                          what="anchor quality")
    prompt: str = setting("", "T2V text prompt stored in the stream")
    codebook_span: int | None = setting(None, "latent frames per codebook set, 0 = one set for the whole GOP "
                                              "(default: the prior's)", lo=0, hi=MAX_GOP_LENGTH, what="codebook span")
    codebook_family: str = setting("hadamard", "codebook atoms: hadamard (signed, scrambled Walsh-Hadamard rows: "
                                               "O(D log D) search, RD equal to gaussian's within 0.05 dB), or gaussian "
                                               "(the paper's)", choices=CODEBOOK_FAMILIES)
    refresh: int = setting(0, "I2V: code a first anchor every N GOPs, making that GOP a self-contained keyframe "
                              "(a cut for gvc-dist, a seek point); 0 = only GOP 0", lo=0, hi=1 << 16)
    prior: str = setting("default", "'default', 'analytic', a shipped prior's name or a local weights folder")
    device: str = setting("cpu", "cpu or cuda")
    dtype: str = setting("auto", "transformer arithmetic of Wan priors (auto: bf16 on CUDA, fp32 on CPU); the stream "
                                 "records it", choices=DTYPE_CHOICES)
    vae_dtype: str = setting("auto", "VAE arithmetic of Wan priors (auto: bf16 on CUDA, 1.6x faster than fp32; fp32 on "
                                     "CPU); the stream records it", choices=DTYPE_CHOICES)
    target_kbps: float | None = setting(None, "choose the knob per GOP to hit this bitrate at the input's frame rate",
                                        lo=0.01, hi=1e6, what="target bitrate (kbps)")

    def __post_init__(self):
        """Levers left at LADDER take the ladder's values for this mode and quality (explicit values win), with
        the settings of the card of the prior named in ``prior`` (gvc.zoo.ladder_of)."""
        from .ladder import levers
        from .zoo import ladder_of

        self.residual_from_ladder = self.residual_step == LADDER
        chosen = levers(self.mode, self.quality, ladder_of(self.prior)["i2v_residual"])
        if self.residual_step == LADDER:
            self.residual_step = chosen.residual_step
        if self.anchor_quality == LADDER:
            self.anchor_quality = chosen.anchor_quality

    def for_prior_card(self, card: dict | None, prior: str) -> "CodecConfig":
        """This config with the ladder settings of a loaded prior's card (GopCodec.for_encoding: the prior object
        is what encodes, whatever ``self.prior`` names); levers the caller set stay as they are."""
        from .ladder import levers
        from .zoo import ladder_settings

        if not self.residual_from_ladder:
            return self
        step = levers(self.mode, self.quality, ladder_settings(card or {}, prior)["i2v_residual"]).residual_step
        return self if step == self.residual_step else replace(self, residual_step=step)

    def levers(self) -> dict:
        """The levers this encode uses, as --stats-json and the tools record them: M (None under rate control,
        which picks it per GOP), the I2V residual step (None: no residual) and the anchor quality (None in
        T2V, which has no anchors)."""
        return {"m": None if self.target_kbps else self.quality,
                "residual_step": self.residual_step if self.mode == "i2v" else None,
                "anchor_quality": self.anchor_quality if self.mode != "t2v" else None}

    def validate(self) -> "CodecConfig":
        for f in fields(self):
            check(f.name, getattr(self, f.name))
        if self.mode != "t2v" and self.gop_length < 2:  # I2V/FLF2V GOPs share a boundary frame
            raise ParameterError(f"GOP length must be in 2..{MAX_GOP_LENGTH} in {self.mode}, got {self.gop_length}")
        check_sampler(self.steps, self.ode_tail, self.gamma, self.shift)
        if len(self.prompt.encode()) > MAX_PROMPT_BYTES:
            raise ParameterError(f"prompt longer than {MAX_PROMPT_BYTES} bytes")
        return self

    def tail_atoms(self, m: int) -> int:
        """M_tail for base M (header and every GOP unit): I2V's adaptive allocation gives the last latent
        frames twice the atoms, below K; the other modes use M everywhere."""
        if self.mode != "i2v":
            return m
        if self.tail_quality is not None and m == self.quality:
            return self.tail_quality
        return min(2 * m, codebook_size(m) - 1)

    def codes_first_anchor(self, gop_index: int) -> bool:
        """Whether GOP `gop_index` carries its own coded first anchor (I2V and FLF2V GOP 0, I2V refresh GOPs)."""
        if self.mode == "t2v":
            return False
        return gop_index == 0 or (self.mode == "i2v" and self.refresh > 0 and gop_index % self.refresh == 0)

    @property
    def m_tail(self) -> int:
        return self.tail_atoms(self.quality)

    @property
    def tail_frames(self) -> int:
        """Latent frames that get M_tail: only I2V has a tail."""
        return self.tail_latent_frames if self.mode == "i2v" else 0

    @property
    def gop_overlap(self) -> int:
        """Source frames shared by consecutive GOPs: the boundary anchor of I2V and FLF2V."""
        return 0 if self.mode == "t2v" else 1


def _field(name: str):
    return next(f for f in fields(CodecConfig) if f.name == name)


def default(name: str):
    """The default of a config field."""
    f = _field(name)
    return f.default if f.default is not MISSING else f.default_factory()


def limits(name: str) -> tuple:
    """(lo, hi) of a numeric config field."""
    m = _field(name).metadata
    return m["lo"], m["hi"]


def help_text(name: str) -> str:
    """The help of a config field with its range and default, as the CLI shows it."""
    m = _field(name).metadata
    parts = [m["help"]]
    if m["lo"] is not None:
        parts.append(f"{_num(m['lo'])}..{_num(m['hi'])}")
    d = default(name)
    if d is not None and d != "":
        parts.append(f"default {d}")
    return "; ".join(parts)


def check(name: str, value) -> None:
    """Raise ParameterError when `value` is outside the field's range or choices (None = unset is allowed)."""
    m = _field(name).metadata
    if value is None:
        return
    if m["choices"] is not None and value not in m["choices"]:
        raise ParameterError(f"{name} must be one of {', '.join(m['choices'])}, got {value!r}")
    if m["lo"] is not None and not m["lo"] <= value <= m["hi"]:
        raise ParameterError(f"{m['what'] or name} must be in {_num(m['lo'])}..{_num(m['hi'])}, got {_num(value)}")


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def check_sampler(steps: int, ode_tail: int, gamma: float, shift: float) -> None:
    """The sampler's parameters (also read back from a stream header) within the config's limits."""
    for name, value in (("steps", steps), ("gamma", gamma), ("shift", shift)):
        check(name, value)
    if not 0 <= ode_tail < steps:
        raise ParameterError(f"ode_tail must be in 0..steps-1, got {ode_tail}")


@dataclass
class DecodeConfig:
    """What a decode needs beyond the stream: where to run and which prior weights to use."""

    prior: str | None = None  # None: the one named in the stream
    device: str = "cpu"
    verify: bool = True  # compare the decoded frames with the encoder's frame hash
    max_pixels: int | None = None  # pixels per GOP (W·H·L) a stream may ask for; None: from available memory
    max_frames: int | None = None  # frames a decode may write; None: the spec's limit (gvc.limits)
    dtype: str | None = None  # only for streams that do not record it (the header's compute_dtype wins)
