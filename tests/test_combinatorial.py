"""Index sets coded as combinations (colex rank) and the index-set payload (container IndexSetsSyntax)."""

from __future__ import annotations

import math
import random
import time
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gvc.entropy.combinatorial import (
    combination_bits,
    index_sets_nbytes,
    pack_index_sets,
    rank_combination,
    unpack_index_sets,
    unrank_combination,
)
from gvc.errors import BitstreamError, ParameterError


@st.composite
def index_set(draw, max_k=65536, max_m=256):
    K = draw(st.integers(2, max_k))
    M = draw(st.integers(1, min(K, max_m)))
    rng = random.Random(draw(st.integers(0, 2**32)))
    mode = draw(st.sampled_from(["random", "low", "high", "spread"]))
    if mode == "low":
        idx = list(range(M))
    elif mode == "high":
        idx = list(range(K - M, K))
    elif mode == "spread":
        idx = sorted(set(round(i * (K - 1) / max(1, M - 1)) for i in range(M)))
        idx += sorted(set(range(K)) - set(idx))[: M - len(idx)] if len(idx) < M else []
    else:
        idx = rng.sample(range(K), M)
    signs = [rng.random() < 0.5 for _ in range(M)]
    return K, sorted(idx), signs


def test_combination_bits():
    assert combination_bits(10, 3) == 7  # C = 120
    assert combination_bits(5, 5) == 0 and combination_bits(5, 0) == 0 and combination_bits(1, 1) == 0
    assert combination_bits(2, 1) == 1 and combination_bits(3, 1) == 2 and combination_bits(4, 1) == 2
    assert combination_bits(16384, 64) == 600  # docs/method.md: about 600 instead of 64 * 14 = 896
    for K, M in [(256, 8), (16384, 64), (65536, 256), (1000, 999)]:
        C = math.comb(K, M)
        b = combination_bits(K, M)
        assert 2 ** (b - 1) < C <= 2**b
    with pytest.raises(ParameterError):
        combination_bits(0, 0)
    with pytest.raises(ParameterError):
        combination_bits(10, 11)
    with pytest.raises(ParameterError):
        combination_bits(10, -1)


@pytest.mark.parametrize("K,M", [(10, 3), (8, 1), (8, 8), (9, 0), (12, 6)])
def test_rank_is_a_bijection(K, M):
    seen = {}
    for c in combinations(range(K), M):
        r = rank_combination(c, K)
        assert 0 <= r < math.comb(K, M) and r not in seen
        seen[r] = list(c)
        assert unrank_combination(r, K, M) == list(c)
    assert len(seen) == math.comb(K, M)


@given(index_set())
@settings(max_examples=300, deadline=None)
def test_rank_unrank_roundtrip(case):
    K, idx, _ = case
    r = rank_combination(idx, K)
    assert 0 <= r < math.comb(K, len(idx))
    assert unrank_combination(r, K, len(idx)) == idx
    shuffled = idx[::-1]
    assert rank_combination(shuffled, K) == r  # the set is unordered


def test_rank_extremes():
    for K, M in [(65536, 256), (16384, 64), (2, 1), (3, 2)]:
        C = math.comb(K, M)
        assert unrank_combination(0, K, M) == list(range(M))
        assert unrank_combination(C - 1, K, M) == list(range(K - M, K))
        assert rank_combination(list(range(K - M, K)), K) == C - 1


def test_rank_errors():
    with pytest.raises(BitstreamError):
        unrank_combination(120, 10, 3)
    with pytest.raises(BitstreamError):
        unrank_combination(-1, 10, 3)
    with pytest.raises(ParameterError):
        rank_combination([1, 1, 2], 10)
    with pytest.raises(ParameterError):
        rank_combination([1, 10], 10)
    with pytest.raises(ParameterError):
        rank_combination([-1, 3], 10)
    with pytest.raises(ParameterError):
        rank_combination([0, 1, 2], 2)
    with pytest.raises(ParameterError):
        unrank_combination(0, 10, 11)


def test_payload_bit_layout_is_the_specs():
    """docs/bitstream.md §Index-set payload, worked by hand: K = 10, M = 3 gives 7 rank bits.
    {1, 2, 3}: rank C(1,1)+C(2,2)+C(3,3) = 3 -> 0000011, signs 1 0 1; {0, 5, 9}: rank 0+C(5,2)+C(9,3) = 94
    -> 1011110, signs 0 0 1; then four zero padding bits: 00000111 01101111 00010000."""
    sets = [([1, 2, 3], [True, False, True]), ([0, 5, 9], [False, False, True])]
    assert pack_index_sets(sets, 10, [3, 3]) == bytes([0b00000111, 0b01101111, 0b00010000])


def test_a_set_of_all_k_indices_has_no_rank_bits():
    sets = [([0, 1, 2, 3], [True, True, False, True])]
    payload = pack_index_sets(sets, 4, [4])
    assert payload == bytes([0b11010000])
    assert unpack_index_sets(payload, 4, [4]) == sets


@given(st.lists(index_set(max_k=65536, max_m=256), min_size=1, max_size=6), st.data())
@settings(max_examples=60, deadline=None)
def test_pack_unpack_roundtrip(cases, data):
    # one K for the whole payload; sets drawn for larger K are clipped into it
    K = data.draw(st.integers(max(len(c[1]) for c in cases), 65536))
    sets, Ms = [], []
    for _, idx, signs in cases:
        rng = random.Random(len(idx) * 7919 + K)
        idx = sorted(rng.sample(range(K), len(idx)))
        sets.append((idx, signs))
        Ms.append(len(idx))
    payload = pack_index_sets(sets, K, Ms)
    bits = sum(combination_bits(K, M) + M for M in Ms)
    assert len(payload) == (bits + 7) // 8 == index_sets_nbytes(K, Ms)
    assert unpack_index_sets(payload, K, Ms) == [(list(i), list(s)) for i, s in sets]


def test_pack_unordered_input_keeps_sign_pairing():
    K = 100
    sets = [([50, 3, 77], [True, False, True])]
    out = unpack_index_sets(pack_index_sets(sets, K, [3]), K, [3])
    assert out == [([3, 50, 77], [False, True, True])]


def test_pack_errors_and_corruption():
    K, Ms = 10, [3, 3]
    sets = [([1, 2, 3], [True, False, True]), ([0, 5, 9], [False, False, True])]
    payload = pack_index_sets(sets, K, Ms)
    assert len(payload) == 3  # 2 * (7 + 3) = 20 bits
    with pytest.raises(ParameterError):
        pack_index_sets(sets, K, [3])
    with pytest.raises(ParameterError):
        pack_index_sets([([1, 2], [True, True])], K, [3])
    with pytest.raises(ParameterError):
        pack_index_sets([([1, 1, 2], [True] * 3)], K, [3])
    with pytest.raises(ParameterError):
        pack_index_sets(sets, K, [3, 11])
    with pytest.raises(BitstreamError):
        unpack_index_sets(payload[:-1], K, Ms)  # truncated
    with pytest.raises(BitstreamError):
        unpack_index_sets(payload + b"\0", K, Ms)  # trailing garbage
    with pytest.raises(BitstreamError):
        unpack_index_sets(payload[:-1] + bytes([payload[-1] | 1]), K, Ms)  # non-zero padding
    # rank field set to 127 >= C(10, 3) = 120: corrupted
    bad = bytearray(payload)
    bad[0] = 0xFE | (bad[0] & 1)
    with pytest.raises(BitstreamError):
        unpack_index_sets(bytes(bad), K, Ms)


def test_unpack_speed():
    """153 step-frames of M = 64 out of K = 16384 (one 33-frame GOP) unpack well under a second."""
    rng = random.Random(0)
    K, Ms = 16384, [64] * 153
    sets = [(sorted(rng.sample(range(K), 64)), [rng.random() < 0.5 for _ in range(64)]) for _ in Ms]
    payload = pack_index_sets(sets, K, Ms)
    assert len(payload) == (153 * (600 + 64) + 7) // 8
    t = time.perf_counter()
    out = unpack_index_sets(payload, K, Ms)
    dt = time.perf_counter() - t
    assert out == sets
    assert dt < 1.0, dt
