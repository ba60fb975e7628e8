"""Tail-latent residual coding for I2V (docs/method.md §3): dead-zone uniform quantiser + rANS with fitted models.

Quantiser (one parameter, the step Δ)::

    q = sign(r) * floor(|r| / Δ + ρ)        ρ = rounding offset: 1/2 = plain rounding, < 1/2 = dead zone
    r̂ = q * Δ                               (float32 product, exact same bits on every platform)

so |r - r̂| <= max(ρ, 1 - ρ) * Δ.  ρ matters only to the encoder and to the probability model (it sets the
bin edges the model integrates over); it travels as one byte (ρ = byte / 256, default 102/256 ≈ 0.4).

Model.  The integers of a coding group are coded with a symmetric categorical distribution over [-K, K]
(K = the channel's largest |q|) built from a generalised-Gaussian density exp(-|t|^β), t = u / σ, u in units
of Δ, integrated (8-point midpoint rule) over each quantiser bin.  β is one of _SHAPES (multiples of 1/8,
one per channel), σ one of 256 log-spaced values (16 per octave, one per group).  The encoder picks them
by minimising the code length (including their own cost); the decoder rebuilds the identical integer table,
because it is computed with IEEE basic operations only (+ - * / sqrt floor ldexp: no libm exp or pow, no
reductions) and rounded to integers before it reaches the coder.  Everything after the fixed header goes
through one constriction ANS stack (32-bit words, 24-bit probabilities): per channel K (2 x 8 bits), β
(3 bits), then per non-empty group its σ (8 bits for the first, a fixed geometric model of the change
for the next ones) followed by the group's symbols.  constriction's quantisation of a float table is
deterministic given identical input; the format therefore depends on constriction's ``Categorical(...,
perfect=False)`` rule staying as it is (true of 0.4.x).

Modes (the encoder codes all three and keeps the smallest):

1. one group per channel (positions in raster order);
2. three passes per channel: A = (even row, even column), B = (odd, odd), C = the rest.  A is one group;
   B and C are split into activity classes, class = floor(2·log2(1 + s)) (capped at NCLS - 1) where
   s = 4·Σ|q| / n over the n already decoded neighbours (B: the four diagonal A positions; C: the four
   direct neighbours, from A and B);
3. as 2, and pass A of channel c > 0 is classed by the activity of channel c - 1 (co-located 5-point cross).

Payload: docs/bitstream.md §Residual payload (``container.bitstream.ResidualPayloadSyntax``): the model mode,
C, h, w, Δ (f32), ρ·256, then the ANS words (u32 big-endian; none when every value is zero).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from container import bitstream as bs
from gvc.errors import BitstreamError, ParameterError

__all__ = [
    "encode_residual",
    "decode_residual",
    "quantize_residual",
    "reference_residual_bytes",
    "DEFAULT_ROUNDING",
    "MAX_MAGNITUDE",
]

DEFAULT_ROUNDING = 0.4  # stored as 102/256; measured best of {1/2, 0.45, 0.4, 1/3, 1/4} over rates
MAX_MAGNITUDE = 1 << 15  # largest |q| the coder accepts (alphabet 2K+1 per table)

_MODE_CHANNEL = 1  # one model per channel
_MODE_CONTEXT = 2  # three passes, spatial activity contexts in passes B and C
_MODE_CONTEXT_X = 3  # as 2, plus pass A classed by the previous channel's activity
_SHAPES = (0.375, 0.5, 0.625, 0.75, 1.0, 1.5, 2.0)
_NSCALE = 256
_J = 8  # integration points per bin
_NCLS = 24  # activity classes: two per octave of neighbour magnitude, the last one open-ended

try:
    import constriction as _cs
except ImportError:  # pragma: no cover
    _cs = None


# ------------------------------------------------------------------------------- deterministic tables

_LN2 = 0.6931471805599453
_INV_LN2 = 1.4426950408889634
# Taylor coefficients of exp(-r) (1/k! with alternating signs), r in [0, ln 2)
_EXP_COEF = tuple((1.0 if k % 2 == 0 else -1.0) / float(math.factorial(k)) for k in range(14))


def _exp_neg(x: np.ndarray) -> np.ndarray:
    """exp(-x) for x >= 0 from IEEE basic operations only (bit-identical on every platform)."""
    x = np.minimum(x, 1000.0)
    k = np.floor(x * _INV_LN2)
    r = x - k * _LN2
    p = np.full_like(r, _EXP_COEF[-1])
    for c in _EXP_COEF[-2::-1]:
        p = p * r + c
    return np.ldexp(p, -k.astype(np.int32))


def _sigma(scale_idx: np.ndarray | int) -> np.ndarray:
    """σ in units of Δ: mantissa (16 + s % 16) / 16, exponent s // 16 - 5  ->  1/32 .. ~2000 (exact)."""
    s = np.asarray(scale_idx, dtype=np.int64)
    return np.ldexp((16 + (s % 16)).astype(np.float64) / 16.0, (s // 16 - 5).astype(np.int32))


def _pow_shape(t: np.ndarray, shape_idx: int) -> np.ndarray:
    """t ** β for β a multiple of 1/8 up to 2, from products of t, sqrt(t), t^(1/4), t^(1/8) (exact ops)."""
    k = int(round(_SHAPES[shape_idx] * 8))
    out = None
    r = t
    parts = []
    if k >= 16:
        parts.append(t * t)
        k -= 16
    if k >= 8:
        parts.append(t)
        k -= 8
    for bit in (4, 2, 1):
        r = np.sqrt(r)
        if k & bit:
            parts.append(r)
    for p in parts:
        out = p if out is None else out * p
    return out


def _bin_masses(
    shape_idx: int, scale_idx: np.ndarray, rho: float, K: int, exp=None, J: int = _J, mags: np.ndarray | None = None
) -> np.ndarray:
    """Unnormalised masses [len(scale_idx), K+1] of |q| = 0..K (one sign for m > 0), midpoint rule
    (only at the magnitudes ``mags``, in that order, when given)."""
    exp = _exp_neg if exp is None else exp
    sig = _sigma(np.atleast_1d(scale_idx))[:, None]  # [S, 1]
    m = (np.arange(K + 1) if mags is None else np.asarray(mags)).astype(np.float64)[None, :]  # [1, M]
    zw = 1.0 - rho  # half-width of the zero bin
    acc = np.zeros((sig.shape[0], m.shape[1]), dtype=np.float64)
    for j in range(J):
        frac = (j + 0.5) / J
        u = np.where(m == 0, zw * frac, m - rho + frac)
        acc = acc + exp(_pow_shape(u / sig, shape_idx))
    # zero bin spans 2*zw (both signs), a nonzero bin of one sign spans 1
    acc = np.where(m == 0, acc * (2.0 * zw), acc)
    return acc


def _magnitude_table(shape_idx: int, scale_idx: int, rho: float, K: int) -> np.ndarray:
    """Integer weights [K+1] of |q| = 0..K (one sign for m > 0), all >= 1: the exact, portable model.

    Normalised by the larger of the first two entries (the density decreases with |u|, so that is the
    largest one whatever K is): the table for a smaller K is a prefix of the table for a larger one."""
    acc = _bin_masses(shape_idx, np.array([scale_idx]), rho, K)[0]
    top = acc[: min(K + 1, 2)].max()
    return np.floor(np.ldexp(acc / top, 40)).astype(np.int64) + 1


class _TableCache:
    """Integer tables per (shape, scale) at the largest K asked for so far; smaller K take a prefix."""

    def __init__(self, rho: float):
        self.rho = rho
        self.tabs: dict[tuple[int, int], np.ndarray] = {}

    def get(self, bi: int, si: int, K: int) -> np.ndarray:
        t = self.tabs.get((bi, si))
        if t is None or len(t) <= K:
            t = _magnitude_table(bi, si, self.rho, K)
            self.tabs[(bi, si)] = t
        return t[: K + 1]


def _symbol_probs(mag_w: np.ndarray) -> np.ndarray:
    """Symmetric table over [-K, K] (symbol index = q + K) from magnitude weights (float64 of integers)."""
    return np.concatenate([mag_w[:0:-1], mag_w]).astype(np.float64)


# ------------------------------------------------------------------------------- quantiser


def quantize_residual(residual: torch.Tensor, step: float, rounding: float = DEFAULT_ROUNDING) -> np.ndarray:
    """The dead-zone quantiser's integers (int32 numpy array, same shape); ParameterError beyond MAX_MAGNITUDE."""
    r = residual.detach().to("cpu", torch.float64).numpy()
    q = np.sign(r) * np.floor(np.abs(r) / float(step) + rounding)
    if q.size and not float(np.abs(q).max()) <= MAX_MAGNITUDE:
        raise ParameterError(
            f"step {float(step):g} too small for this residual: |q| up to {float(np.abs(q).max()):g} "
            f"exceeds {MAX_MAGNITUDE}"
        )
    return q.astype(np.int32)


def _dequantize(q: np.ndarray, step: np.float32) -> np.ndarray:
    return q.astype(np.float32) * np.float32(step)


# ------------------------------------------------------------------------------- coding structure

_POS_A, _POS_B, _POS_C = 0, 1, 2
_DIAG = ((-1, -1), (-1, 1), (1, -1), (1, 1))
_CROSS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_CROSS0 = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def _phases(h: int, w: int) -> list[np.ndarray]:
    """Masks of the three passes: A = (even, even), B = (odd, odd), C = the rest."""
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    a = ((ii & 1) == 0) & ((jj & 1) == 0)
    b = ((ii & 1) == 1) & ((jj & 1) == 1)
    return [a, b, ~(a | b)]


def _activity_class(mag: np.ndarray, avail: np.ndarray, offsets) -> np.ndarray:
    """Context class of every position: floor(2 * log2(1 + s)), s = 4 * (sum of the available neighbours'
    |q|) // (number of available neighbours); integer arithmetic only (log2 via bit length)."""
    h, w = mag.shape
    pm = np.pad(np.where(avail, mag, 0), 1)
    pa = np.pad(avail.astype(np.int64), 1)
    s = np.zeros((h, w), np.int64)
    n = np.zeros((h, w), np.int64)
    for di, dj in offsets:
        s += pm[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
        n += pa[1 + di : 1 + di + h, 1 + dj : 1 + dj + w]
    s4 = (4 * s) // np.maximum(n, 1)
    v = s4 + 1
    # e = floor(log2 v); half step: v >= 2^e * sqrt2  <=>  v*v >= 2^(2e+1)
    e = np.zeros_like(v)
    t = v.copy()
    for sh in (32, 16, 8, 4, 2, 1):
        big = t >= (1 << sh)
        e += np.where(big, sh, 0)
        t = np.where(big, t >> sh, t)
    half = (v * v) >= (np.int64(1) << (2 * e + 1))
    return np.minimum(2 * e + half.astype(np.int64), _NCLS - 1)


def _pass_classes(mode: int, pas: int, qabs: np.ndarray, prev_abs: np.ndarray | None, masks) -> np.ndarray | None:
    """Class map for pass ``pas`` of one channel, or None for a single group."""
    if mode == _MODE_CHANNEL:
        return None
    if pas == _POS_A:
        if mode == _MODE_CONTEXT_X and prev_abs is not None:
            return _activity_class(prev_abs, np.ones_like(masks[0]), _CROSS0)
        return None
    if pas == _POS_B:
        return _activity_class(qabs, masks[0], _DIAG)
    return _activity_class(qabs, masks[0] | masks[1], _CROSS)


def _delta_probs() -> np.ndarray:
    """Model of the change of σ index between consecutive groups: weight 2^24 >> (|d| // 2), d in [-255, 255]."""
    d = np.abs(np.arange(-(_NSCALE - 1), _NSCALE))
    return np.maximum(np.right_shift(np.int64(1) << 24, np.minimum(d // 2, 40)), 1).astype(np.float64)


_DELTA_BITS = -np.log2(_delta_probs() / _delta_probs().sum())


# ------------------------------------------------------------------------------- fitting


def _fast_exp_neg(x: np.ndarray) -> np.ndarray:
    return np.exp(-x)


class _ChannelFit:
    """Per-channel log-probabilities of the magnitudes present, for all (β, σ) candidates (encoder only).

    Fast and approximate: numpy's exp, 4 points per bin, and the normaliser taken as the density's integral
    over the real line (the bins tile it), 2σΓ(1 + 1/β), so the cost does not grow with K."""

    def __init__(self, K: int, rho: float, hist_all: np.ndarray):
        self.present = np.nonzero(hist_all)[0]
        n = int(hist_all.sum())
        h = hist_all[self.present].astype(np.float64)
        mags = np.maximum(self.present.astype(np.float64), 0.5)
        self.cands: list[np.ndarray] = []
        self.logp: list[np.ndarray] = []
        for bi, beta in enumerate(_SHAPES):
            mean_pow = float((h * mags**beta).sum()) / max(n, 1)
            sig0 = max((beta * mean_pow) ** (1.0 / beta), 1.0 / 32)
            s0 = int(np.clip(np.round(16 * (np.log2(sig0) + 5) - 8), 0, _NSCALE - 1))
            # context groups have smaller and larger scales than the channel: cover 5 octaves down, 2 up
            cand = np.arange(max(0, s0 - 80), min(_NSCALE, s0 + 33))
            tab = _bin_masses(bi, cand, rho, K, exp=_fast_exp_neg, J=4, mags=self.present) + 1e-300
            log_total = np.log2(2.0 * _sigma(cand)) + math.lgamma(1.0 + 1.0 / beta) / math.log(2.0)
            self.cands.append(cand)
            self.logp.append(np.log2(tab) - log_total[:, None])  # [S, len(present)]

    def bits(self, bi: int, h: np.ndarray) -> np.ndarray:
        """Code length (bits, incl. signs) of a magnitude histogram (length K+1) for every σ candidate."""
        hp = h[self.present].astype(np.float64)
        signs = float(h[1:].sum())
        return -(self.logp[bi] @ hp) + signs


def _choose_params(fit: _ChannelFit, hists: list[np.ndarray]) -> tuple[int, list[int], float]:
    """Shape for the channel and σ index per non-empty group, minimising data + σ side-information bits."""
    best = (2, [], float("inf"))
    for bi in range(len(_SHAPES)):
        cand = fit.cands[bi]
        sig, total, prev = [], 0.0, None
        for h in hists:
            if not h.any():
                continue
            b = fit.bits(bi, h)
            if prev is None:
                side = np.full(b.shape, 8.0)
            else:
                side = _DELTA_BITS[np.clip(cand - prev + _NSCALE - 1, 0, 2 * _NSCALE - 2)]
            i = int(np.argmin(b + side))
            sig.append(int(cand[i]))
            total += float(b[i] + side[i])
            prev = int(cand[i])
        if total < best[2]:
            best = (bi, sig, total)
    return best


# ------------------------------------------------------------------------------- coding

_U256 = _U8 = _DELTA = None


def _models():
    global _U256, _U8, _DELTA
    if _U256 is None:
        _U256 = _cs.stream.model.Uniform(256)
        _U8 = _cs.stream.model.Uniform(8)
        _DELTA = _cs.stream.model.Categorical(_delta_probs(), perfect=False)
    return _U256, _U8, _DELTA


def _data_model(tables: _TableCache, bi: int, si: int, K: int):
    return _cs.stream.model.Categorical(_symbol_probs(tables.get(bi, si, K)), perfect=False)


_MODEL_NAMES = {v: k for k, v in bs.RESIDUAL_MODELS.items()}


def _payload(mode: int, shape: tuple[int, int, int], step: np.float32, rho_byte: int, words: np.ndarray) -> bytes:
    """The residual payload (docs/bitstream.md §Residual payload)."""
    C, h, w = shape
    header = dict(model=_MODEL_NAMES[mode], channels=C, height=h, width=w, step=float(step), rounding=rho_byte)
    return bs.ResidualPayloadSyntax.build(dict(header=header, words=words))


def _encode_mode(q: np.ndarray, step: np.float32, rho_byte: int, mode: int, fits: dict) -> bytes:
    C, h, w = q.shape
    rho = rho_byte / 256.0
    tables = fits.setdefault("tables", _TableCache(rho))
    u256, u8, delta = _models()
    masks = _phases(h, w) if mode != _MODE_CHANNEL else [np.ones((h, w), bool)]
    ops: list[tuple] = []  # (symbols int32 array, model) in decoding order
    prev_abs = None
    for c in range(C):
        qc = q[c]
        qabs = np.abs(qc).astype(np.int64)
        K = int(qabs.max()) if qc.size else 0
        ops.append((np.array([K >> 8, K & 0xFF], np.int32), u256))
        if K == 0:
            prev_abs = qabs
            continue
        groups: list[np.ndarray] = []  # symbol arrays in decoding order (possibly empty)
        for pas, m in enumerate(masks):
            cls = _pass_classes(mode, pas, qabs, prev_abs, masks)
            if cls is None:
                groups.append(qc[m])
            else:
                cm = cls[m]
                v = qc[m]
                groups.extend(v[cm == k] for k in range(_NCLS))
        hists = [np.bincount(np.abs(g), minlength=K + 1) for g in groups]
        if c not in fits:
            fits[c] = _ChannelFit(K, rho, np.bincount(qabs.reshape(-1), minlength=K + 1))
        bi, sig, _ = _choose_params(fits[c], hists)
        ops.append((np.array([bi], np.int32), u8))
        prev = None
        it = iter(sig)
        for g in groups:
            if g.size == 0:
                continue
            si = next(it)
            if prev is None:
                ops.append((np.array([si], np.int32), u256))
            else:
                ops.append((np.array([si - prev + _NSCALE - 1], np.int32), delta))
            prev = si
            ops.append(((g.astype(np.int64) + K).astype(np.int32), _data_model(tables, bi, si, K)))
        prev_abs = qabs
    coder = _cs.stream.stack.AnsCoder()
    for sym, model in reversed(ops):
        coder.encode_reverse(sym, model)
    return _payload(mode, q.shape, step, rho_byte, coder.get_compressed())


def encode_residual(residual: torch.Tensor, step: float, *, rounding: float = DEFAULT_ROUNDING) -> bytes:
    """Quantise ``residual`` (float [C, h, w]) with step ``step`` and entropy-code it; self-describing payload.

    ``rounding`` is the quantiser's rounding offset ρ (1/2 = nearest; smaller = dead zone), stored to 1/256.
    ``decode_residual(payload)`` returns exactly ``quantize_residual(residual, step, ρ) * float32(step)``.
    The encoder tries every model mode and keeps the smallest payload.
    """
    if _cs is None:  # pragma: no cover
        raise ParameterError("residual coding needs the 'constriction' package")
    if not isinstance(residual, torch.Tensor) or residual.dim() != 3:
        raise ParameterError("residual must be a torch tensor of shape [C, h, w]")
    try:
        step32 = np.float32(step)
    except (TypeError, ValueError):
        raise ParameterError(f"step must be a number, got {step!r}") from None
    if not (np.isfinite(step32) and step32 > 0):
        raise ParameterError(f"step must be a positive finite number, got {step!r}")
    rho_byte = int(round(float(rounding) * 256))
    if not 1 <= rho_byte <= 128:
        raise ParameterError(f"rounding offset must be in [1/256, 1/2], got {rounding}")
    rho = rho_byte / 256.0
    if not torch.isfinite(residual).all():
        raise ParameterError("residual contains NaN or infinite values")
    q = quantize_residual(residual, float(step32), rho)
    fits: dict = {}
    best = _encode_mode(q, step32, rho_byte, _MODE_CHANNEL, fits)
    if q.size and min(q.shape[1:]) >= 2:
        for mode in (_MODE_CONTEXT, _MODE_CONTEXT_X):
            p = _encode_mode(q, step32, rho_byte, mode, fits)
            if len(p) < len(best):
                best = p
    return best


def decode_residual(payload: bytes, *, max_elements: int = bs.MAX_RESIDUAL_ELEMENTS) -> torch.Tensor:
    """Inverse of :func:`encode_residual`: float32 [C, h, w].  Sizes are checked before anything is allocated."""
    if _cs is None:  # pragma: no cover
        raise ParameterError("residual coding needs the 'constriction' package")
    try:
        buf = bytes(payload)
    except TypeError:
        raise BitstreamError("residual payload must be bytes") from None
    p = bs.parse_syntax(bs.ResidualPayloadSyntax, buf, "residual payload")
    mode = bs.RESIDUAL_MODELS[p.header.model]
    C, h, w = p.header.channels, p.header.height, p.header.width
    if C * max(h * w, 1) > max_elements:
        raise BitstreamError(f"residual of {C}x{h}x{w} elements exceeds the limit of {max_elements}")
    step = np.float32(p.header.step)
    if not (np.isfinite(step) and step > 0):
        raise BitstreamError(f"residual payload has invalid step {float(step)!r}")
    rho_byte = p.header.rounding
    if not 1 <= rho_byte <= 128:
        raise BitstreamError(f"residual payload has invalid rounding offset {rho_byte}/256")
    rho = rho_byte / 256.0
    words = p.words
    u256, u8, delta = _models()
    q = np.zeros((C, h, w), dtype=np.int32)
    masks = _phases(h, w) if mode != _MODE_CHANNEL else [np.ones((h, w), bool)]
    tables = _TableCache(rho)
    try:
        coder = _cs.stream.stack.AnsCoder(words) if words.size else _cs.stream.stack.AnsCoder()
        prev_abs = None
        for c in range(C):
            hi_, lo_ = coder.decode(u256, 2)
            K = (int(hi_) << 8) | int(lo_)
            if K > MAX_MAGNITUDE:
                raise BitstreamError(f"residual payload: channel range {K} exceeds {MAX_MAGNITUDE}")
            qc = np.zeros((h, w), np.int32)
            if K:
                bi = int(coder.decode(u8, 1)[0])
                if bi >= len(_SHAPES):
                    raise BitstreamError(f"residual payload has unknown model shape {bi}")
                prev = None
                for pas, m in enumerate(masks):
                    cls = _pass_classes(mode, pas, np.abs(qc).astype(np.int64), prev_abs, masks)
                    sel = [m] if cls is None else [m & (cls == k) for k in range(_NCLS)]
                    for g in sel:
                        n = int(g.sum())
                        if n == 0:
                            continue
                        if prev is None:
                            si = int(coder.decode(u256, 1)[0])
                        else:
                            si = prev + int(coder.decode(delta, 1)[0]) - (_NSCALE - 1)
                            if not 0 <= si < _NSCALE:
                                raise BitstreamError(f"residual payload: model scale {si} out of range")
                        prev = si
                        sym = np.asarray(coder.decode(_data_model(tables, bi, si, K), n), dtype=np.int64)
                        qc[g] = (sym - K).astype(np.int32)
            q[c] = qc
            prev_abs = np.abs(qc).astype(np.int64)
        leftover = not coder.is_empty()
    except (ValueError, RuntimeError, OverflowError, AssertionError) as e:
        raise BitstreamError(f"residual payload: entropy decoding failed: {e}") from None
    if leftover:
        raise BitstreamError("residual payload: coded data left over after decoding (damaged payload)")
    return torch.from_numpy(_dequantize(q, step))


# ------------------------------------------------------------------------------- reference scheme


def reference_residual_bytes(residual: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The GVCC reference scheme, for comparison: per-channel max-abs normalisation, 8-bit uniform
    quantisation over [-max, max], zlib level 9.  Returns (bytes, reconstruction); bytes = zlib stream +
    4 bytes (float32 max) per channel, which the reference keeps as side metadata but a stream must carry."""
    r = residual.detach().to("cpu", torch.float32)
    C = r.shape[0]
    maxval = r.abs().reshape(C, -1).amax(dim=1).clamp(min=1e-6).reshape(C, *([1] * (r.dim() - 1)))
    qr = ((r / maxval + 1.0) * 255 / 2.0).round().clamp(0, 255)
    packed = qr.to(torch.uint8).numpy().tobytes()
    nbytes = len(zlib.compress(packed, 9)) + 4 * C
    rec = (qr * 2.0 / 255 - 1.0) * maxval
    return nbytes, rec
