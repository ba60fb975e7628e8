"""Index sets coded as combinations: exactly ceil(log2 C(K, M)) bits for an unordered set of M of K indices.

Rank: the combinatorial number system (colex order).  For sorted distinct c_0 < c_1 < ... < c_{M-1},
rank = sum_i C(c_i, i + 1), a bijection onto [0, C(K, M)).

The payload is docs/bitstream.md §Index-set payload (``container.bitstream.IndexSetsSyntax``): per set (one per
(SDE step, codebook set), in the caller's order) the rank in ``combination_bits(K, M)`` bits, then M sign bits
(1 = +1) in ascending index order, MSB first, sets unaligned, zero-padded to a whole byte.
"""

from __future__ import annotations

import math
from typing import Sequence

from container import bitstream as bs
from gvc.errors import BitstreamError, ParameterError

__all__ = [
    "K_MAX",
    "combination_bits",
    "rank_combination",
    "unrank_combination",
    "index_sets_bits",
    "index_sets_nbytes",
    "pack_index_sets",
    "unpack_index_sets",
]

K_MAX = 1 << 32  # largest codebook size the index coder accepts


def _check_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            import numpy as np  # numpy / torch integer scalars

            if isinstance(v, np.integer):
                return int(v)
        except ImportError:  # pragma: no cover
            pass
        if hasattr(v, "__index__") and not isinstance(v, bool):
            return int(v.__index__())
        raise ParameterError(f"{name} must be an integer, got {type(v).__name__}")
    return v


def _check_KM(K, M) -> tuple[int, int]:
    K = _check_int("K", K)
    M = _check_int("M", M)
    if not 1 <= K <= K_MAX:
        raise ParameterError(f"K must be in [1, {K_MAX}], got {K}")
    if not 0 <= M <= K:
        raise ParameterError(f"M must be in [0, K={K}], got {M}")
    return K, M


def combination_bits(K: int, M: int) -> int:
    """ceil(log2(C(K, M))); 0 when C(K, M) == 1."""
    K, M = _check_KM(K, M)
    return (math.comb(K, M) - 1).bit_length()


def rank_combination(indices: Sequence[int], K: int) -> int:
    """Colex rank in [0, C(K, M)) of a set of M distinct indices in [0, K) (any order accepted)."""
    try:
        c = sorted(_check_int("index", i) for i in indices)
    except TypeError as e:
        raise ParameterError(f"indices must be integers: {e}") from None
    K, M = _check_KM(K, len(c))
    if c and (c[0] < 0 or c[-1] >= K):
        raise ParameterError(f"indices must be in [0, {K})")
    for a, b in zip(c, c[1:]):
        if a == b:
            raise ParameterError(f"index {a} appears twice")
    comb = math.comb
    return sum(comb(ci, i + 1) for i, ci in enumerate(c))


def _largest_c(rank: int, i: int, lo: int, hi: int) -> tuple[int, int]:
    """(c, C(c, i)) for the largest c in [lo, hi] with C(c, i) <= rank, given C(lo, i) <= rank.

    C(c, i) is nondecreasing in c.  Start from the estimate C(c, i) ~ (c - (i-1)/2)^i / i! (usually exact
    or off by one), gallop to a bracket, bisect: about two math.comb calls per index.
    """
    comb = math.comb
    if rank == 0 or lo == hi:
        return lo, comb(lo, i)
    g = int(math.exp((math.log(rank) + math.lgamma(i + 1)) / i) + (i - 1) / 2)
    g = min(max(g, lo), hi)
    vg = comb(g, i)
    step = 1
    if vg <= rank:  # a = g is valid; look upwards for the first invalid b
        a, va = g, vg
        b = hi + 1  # sentinel: C(hi + 1, i) treated as > rank
        while a + step < b:
            v = comb(a + step, i)
            if v <= rank:
                a, va = a + step, v
                step *= 2
            else:
                b = a + step
                break
    else:  # b = g is invalid; look downwards for a valid a
        b = g
        a, va = lo, None
        while b - step > lo:
            v = comb(b - step, i)
            if v <= rank:
                a, va = b - step, v
                break
            b -= step
            step *= 2
        if va is None:
            va = comb(lo, i)
    while b - a > 1:
        mid = (a + b) >> 1
        v = comb(mid, i)
        if v <= rank:
            a, va = mid, v
        else:
            b = mid
    return a, va


def unrank_combination(rank: int, K: int, M: int) -> list[int]:
    """Inverse of rank_combination: the sorted indices; BitstreamError if rank is not in [0, C(K, M))."""
    K, M = _check_KM(K, M)
    rank = _check_int("rank", rank)
    if not 0 <= rank < math.comb(K, M):
        raise BitstreamError(f"combination rank {rank} out of range for C({K}, {M})")
    out = [0] * M
    hi = K - 1
    for i in range(M, 0, -1):
        c, v = _largest_c(rank, i, i - 1, hi)  # C(i-1, i) = 0 <= rank
        out[i - 1] = c
        rank -= v
        hi = c - 1
    return out


def index_sets_bits(K: int, Ms: Sequence[int]) -> int:
    """Bits used by pack_index_sets (before padding): sum of combination_bits(K, M) + M."""
    return sum(combination_bits(K, M) + _check_KM(K, M)[1] for M in Ms)


def index_sets_nbytes(K: int, Ms: Sequence[int]) -> int:
    """Bytes of pack_index_sets' output for these (K, Ms)."""
    return (index_sets_bits(K, Ms) + 7) // 8


def _as_list(x) -> list:
    if hasattr(x, "tolist"):
        x = x.tolist()
    return list(x)


def _params(K: int, Ms: Sequence[int]) -> dict:
    """The parameters IndexSetsSyntax is parsed and built with: rank bits and atoms per set."""
    Ms = [_check_KM(K, M)[1] for M in Ms]
    return dict(rank_bits=[combination_bits(K, M) for M in Ms], atoms=Ms)


def pack_index_sets(sets: list[tuple[Sequence[int], Sequence[bool]]], K: int, Ms: list[int]) -> bytes:
    """Code one (indices, signs) set per (step, codebook set); set i must have Ms[i] distinct indices.

    Indices may come in any order; signs belong to the index at the same position.
    """
    if len(sets) != len(Ms):
        raise ParameterError(f"{len(sets)} index sets but {len(Ms)} values of M")
    K = _check_KM(K, 0)[0]
    coded = []
    for n, ((indices, signs), M) in enumerate(zip(sets, Ms)):
        idx = [_check_int("index", i) for i in _as_list(indices)]
        sg = [bool(s) for s in _as_list(signs)]
        if len(idx) != M or len(sg) != M:
            raise ParameterError(f"set {n}: expected {M} indices and signs, got {len(idx)} and {len(sg)}")
        pairs = sorted(zip(idx, sg))
        coded.append(dict(rank=rank_combination([p[0] for p in pairs], K), signs=[p[1] for p in pairs]))
    return bs.IndexSetsSyntax.build(dict(sets=coded), **_params(K, Ms))


def unpack_index_sets(data: bytes, K: int, Ms: list[int]) -> list[tuple[list[int], list[bool]]]:
    """Inverse of pack_index_sets: per set, (sorted indices, their signs).

    ``data`` must be exactly index_sets_nbytes(K, Ms) long with zero padding bits, else BitstreamError.
    """
    params = _params(K, Ms)
    need = (sum(params["rank_bits"]) + sum(params["atoms"]) + 7) // 8
    if len(data) != need:
        raise BitstreamError(f"index-set payload is {len(data)} bytes, expected {need}")
    parsed = bs.parse_syntax(bs.IndexSetsSyntax, bytes(data), "index-set payload", **params)
    return [(unrank_combination(s.rank, K, M), list(s.signs)) for s, M in zip(parsed.sets, params["atoms"])]
