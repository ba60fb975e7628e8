"""The portable Gaussian codebook: determinism, portability (numpy / torch / CUDA), statistics, search."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from gvc import codebook as cb
from gvc.errors import ParameterError

# Pinned from this implementation (generator GVC-CB1).  A change here breaks every existing bitstream.
GOLDEN_ATOMS = dict(seed=20260601, step=3, frame=5, indices=[0, 1, 7, 16383, 2**40, 2**63 - 1], dim=1001)
GOLDEN_ATOMS_SHA256 = "874ed8ab6e8f9d6718cb3792829a0ea86516ea3e6c5e79d7f0f65fe6fbd7d11e"
GOLDEN_SMALL_SHA256 = "4ecdcc6b5668a19e076690436e136d45e1e397c08ffc9120b2d2c85427520d72"  # (0,0,0), k<4, D=8
TABLE_SHA256 = "1cfbba1e07e34386a57626f82aeb43e6ed54ba70a3ea6b7d964dc66a841074a8"


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().numpy().astype("<f4").tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# table and golden values
# ---------------------------------------------------------------------------------------------------------
def test_table_pinned_and_shape():
    t = cb.normal_table()
    assert t.dtype == torch.float32 and t.shape == (65536,)
    assert cb.NORMAL_TABLE_SHA256 == TABLE_SHA256
    assert _sha(t) == TABLE_SHA256
    assert bool((t[1:] > t[:-1]).all())  # strictly increasing
    assert torch.equal(t, -t.flip(0))  # exactly symmetric
    assert abs(float(t.double().mean())) < 1e-12
    assert abs(float(t.double().std(unbiased=False)) - 1) < 1e-4
    assert cb.normal_table() is t  # cached


def test_golden_atoms_hash():
    assert _sha(cb.atoms(**GOLDEN_ATOMS)) == GOLDEN_ATOMS_SHA256
    assert _sha(cb.atoms(0, 0, 0, range(4), 8)) == GOLDEN_SMALL_SHA256


def test_reference_scalar_implementation_matches():
    for seed, step, frame, k, dim in [(0, 0, 0, 0, 9), (1, 2, 3, 12345, 13), (2**64 - 1, 16, 8, 2**63 - 1, 6)]:
        ref = torch.tensor(cb.atoms_reference(seed, step, frame, k, dim), dtype=torch.float32)
        assert torch.equal(cb.atoms(seed, step, frame, [k], dim)[0], ref)


# ---------------------------------------------------------------------------------------------------------
# portability and determinism
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 3, 4, 37, 1000])
def test_torch_cpu_equals_numpy(dim):
    for seed, step, frame in [(0, 0, 0), (7, 16, 8), (2**64 - 1, 2**32, 2**64 - 1)]:
        idx = [0, 1, 2, 99, 2**31, 2**62 + 5, 2**63 - 1]
        a = cb.atoms(seed, step, frame, idx, dim)
        b = cb.atoms(seed, step, frame, idx, dim, backend="torch")
        assert a.dtype == b.dtype == torch.float32 and a.shape == (len(idx), dim)
        assert torch.equal(a, b)


def test_rows_independent_of_batching():
    full = cb.atoms(11, 2, 3, range(10), 333)
    assert torch.equal(cb.atoms(11, 2, 3, [5], 333)[0], full[5])
    assert torch.equal(cb.atoms(11, 2, 3, [9, 2, 5], 333), full[[9, 2, 5]])
    assert torch.equal(cb.atoms(11, 2, 3, np.arange(10), 333), full)
    assert torch.equal(cb.atoms(11, 2, 3, torch.arange(10), 333), full)
    # numpy path with many rows / threads, and the torch path with tiny tiles
    big = cb.atoms(11, 2, 3, range(200), 2000)
    assert torch.equal(cb.atoms(11, 2, 3, range(200), 2000, threads=1), big)
    assert torch.equal(cb.atoms(11, 2, 3, range(200), 2000, threads=3), big)
    assert torch.equal(cb._atoms_torch(cb.codebook_key(11, 2, 3), torch.arange(200), 2000, "cpu", tile_rows=7), big)
    # prefix property across dims (documented)
    assert torch.equal(cb.atoms(11, 2, 3, range(10), 100), full[:, :100])


def test_segmented_chunks(monkeypatch):
    """Dimensions above one chunk are generated in block segments: same atoms, same inner products."""
    D = 70_001  # 17,501 blocks: several segments, last block partial
    a = cb.atoms(4, 5, 6, [0, 3, 2**50], D)
    assert torch.equal(a, cb.atoms(4, 5, 6, [0, 3, 2**50], D, backend="torch"))
    assert torch.equal(a, cb.atoms(4, 5, 6, [0, 3, 2**50], D, threads=3))
    r = torch.randn(D, generator=torch.Generator().manual_seed(2))
    ip = cb.CodebookSearch(12, D, threads=1).inner_products(r, 4, 5, 6)
    ref = cb.atoms(4, 5, 6, range(12), D).double() @ r.double()
    assert torch.allclose(ip.double(), ref, rtol=1e-5, atol=2e-3)
    assert torch.equal(ip, cb.CodebookSearch(12, D, threads=4).inner_products(r, 4, 5, 6))
    D2 = 9001
    small = cb.atoms(4, 5, 6, range(40), D2)
    ip2 = cb.CodebookSearch(40, D2, threads=1).inner_products(r[:D2], 4, 5, 6)
    for words in (1, 2000, 5000):  # one row per chunk and many segments, or several rows per chunk
        monkeypatch.setattr(cb, "_CHUNK_WORDS_1", words)
        monkeypatch.setattr(cb, "_CHUNK_WORDS_N", words)
        assert torch.equal(cb.atoms(4, 5, 6, [0, 3, 2**50], D), a)
        assert torch.equal(cb.atoms(4, 5, 6, range(40), D2, threads=2), small)
        for th in (1, 3):
            assert torch.equal(cb.CodebookSearch(12, D, threads=th).inner_products(r, 4, 5, 6), ip)
            assert torch.equal(cb.CodebookSearch(40, D2, tile_bytes=1, threads=th).inner_products(r[:D2], 4, 5, 6),
                               ip2)


def test_determinism_across_calls():
    a = cb.atoms(3, 1, 4, range(5), 500)
    b = cb.atoms(3, 1, 4, range(5), 500)
    assert torch.equal(a, b)


def test_keys_separate_inputs():
    # the reference's seed*100003 + step*10007 + frame aliases these; the hashed key must not
    base = cb.atoms(0, 1, 0, [0], 64)
    assert not torch.equal(base, cb.atoms(0, 0, 10007, [0], 64))
    assert not torch.equal(cb.atoms(1, 0, 0, [0], 64), cb.atoms(0, 10, 3, [0], 64))
    keys = {cb.codebook_key(s, st, f) for s in range(4) for st in range(40) for f in range(40)}
    assert len(keys) == 4 * 40 * 40
    # swapping the roles of step and frame gives another codebook
    assert cb.codebook_key(0, 1, 2) != cb.codebook_key(0, 2, 1)


def test_bad_arguments():
    with pytest.raises(ParameterError):
        cb.atoms(-1, 0, 0, [0], 4)
    with pytest.raises(ParameterError):
        cb.atoms(0, 2**64, 0, [0], 4)
    with pytest.raises(ParameterError):
        cb.atoms(0, 0, 0, [-1], 4)
    with pytest.raises(ParameterError):
        cb.atoms(0, 0, 0, [0], 0)
    with pytest.raises(ParameterError):
        cb.atoms(0, 0, 0, [0], 4, device="cuda", backend="numpy")
    with pytest.raises(ParameterError):
        cb.CodebookSearch(16, 8).topm(torch.zeros(8), 0, 0, 0, 17)
    with pytest.raises(ParameterError):
        cb.CodebookSearch(16, 8).topm(torch.zeros(9), 0, 0, 0, 2)
    with pytest.raises(ParameterError):
        cb.CodebookSearch(16, 8).topm(torch.full((8,), float("nan")), 0, 0, 0, 2)
    with pytest.raises(ParameterError):
        cb.combine(0, 0, 0, [1, 1], [True, True], 8)
    with pytest.raises(ParameterError):
        cb.combine(0, 0, 0, [1, 2], [True], 8)


# ---------------------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------------------
def test_marginal_statistics():
    x = cb.atoms(123, 4, 5, range(100), 10_000).double().reshape(-1)  # 1e6 samples
    n = x.numel()
    assert abs(float(x.mean())) < 5 / n**0.5
    assert abs(float(x.std()) - 1) < 0.005
    # third and fourth moments of a normal
    z = (x - x.mean()) / x.std()
    assert abs(float((z**3).mean())) < 0.02
    assert abs(float((z**4).mean()) - 3) < 0.05
    # the 16-bit words fill all table cells roughly uniformly: fraction beyond 3 sigma
    assert abs(float((x.abs() > 3).double().mean()) - 0.0026998) < 0.0006


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_no_correlation_between_neighbours():
    D = 40_000
    tol = 5 / D**0.5
    a = cb.atoms(9, 5, 3, range(4), D)
    pairs = [
        (a[0], a[1]), (a[1], a[2]), (a[0], a[3]),                           # neighbouring atoms
        (a[0], cb.atoms(9, 6, 3, [0], D)[0]),                               # neighbouring steps
        (a[0], cb.atoms(9, 5, 4, [0], D)[0]),                               # neighbouring frames
        (a[0], cb.atoms(10, 5, 3, [0], D)[0]),                              # neighbouring seeds
        (a[0], cb.atoms(9, 3, 5, [0], D)[0]),                               # step <-> frame swapped
    ]
    for x, y in pairs:
        assert abs(_corr(x, y)) < tol
    # within an atom: lag 1 (same 64-bit word), lag 4 (next block), lag 3
    for lag in (1, 3, 4):
        assert abs(_corr(a[0, :-lag], a[0, lag:])) < tol


# ---------------------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------------------
def _brute_topm(seed, step, frame, K, D, r, M):
    A = cb.atoms(seed, step, frame, range(K), D).double()
    ip = A @ r.double()
    order = sorted(range(K), key=lambda k: (-abs(float(ip[k])), k))[:M]
    idx = sorted(order)
    return idx, [bool(ip[k] >= 0) for k in idx], ip


def test_topm_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    K, D, M = 300, 1000, 20
    r = torch.randn(D, generator=g)
    s = cb.CodebookSearch(K, D)
    idx, signs = s.topm(r, 5, 6, 7, M)
    bi, bs, ip = _brute_topm(5, 6, 7, K, D, r, M)
    assert idx.dtype == torch.int64 and signs.dtype == torch.bool
    assert idx.tolist() == bi and signs.tolist() == bs
    ip32 = s.inner_products(r, 5, 6, 7)
    assert torch.allclose(ip32.double(), ip, rtol=1e-5, atol=1e-3)


def test_topm_ties_break_to_lower_index():
    s = cb.CodebookSearch(50, 16)
    idx, signs = s.topm(torch.zeros(16), 0, 0, 0, 5)
    assert idx.tolist() == [0, 1, 2, 3, 4] and signs.tolist() == [True] * 5


def test_topm_independent_of_tiles_and_threads():
    g = torch.Generator().manual_seed(1)
    K, D, M = 1000, 2500, 33
    r = torch.randn(D, generator=g)
    ref = cb.CodebookSearch(K, D, threads=1).inner_products(r, 1, 2, 3)
    for tb, th in [(1, 1), (40_000, 2), (16 << 20, 3), (123_457, 4)]:
        s = cb.CodebookSearch(K, D, tile_bytes=tb, threads=th)
        assert torch.equal(s.inner_products(r, 1, 2, 3), ref)
    i0, s0 = cb.CodebookSearch(K, D, tile_bytes=1).topm(r, 1, 2, 3, M)
    i1, s1 = cb.CodebookSearch(K, D).topm(r, 1, 2, 3, M)
    assert torch.equal(i0, i1) and torch.equal(s0, s1)
    # torch path (the CUDA code) on the CPU: same selection, inner products to float32 accuracy
    K = 200
    st = cb.CodebookSearch(K, D, backend="torch", tile_bytes=100_000)
    ipt = st.inner_products(r, 1, 2, 3)
    assert torch.allclose(ipt, ref[:K], rtol=1e-4, atol=1e-3)
    i2, s2 = cb._select_topm(ipt, M)
    i3, s3 = cb.CodebookSearch(K, D).topm(r, 1, 2, 3, M)
    assert torch.equal(i2, i3) and torch.equal(s2, s3)


def test_topm_recovers_planted_atoms():
    K, D = 512, 4096
    A = cb.atoms(77, 1, 1, [10, 200, 311], D)
    r = 3 * A[0] - 2 * A[1] + A[2]
    idx, signs = cb.CodebookSearch(K, D).topm(r, 77, 1, 1, 3)
    assert idx.tolist() == [10, 200, 311] and signs.tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------------------------
# combine
# ---------------------------------------------------------------------------------------------------------
def test_combine_normalisation_and_order():
    D = 5000
    idx = [3, 17, 40, 41, 999]
    signs = [True, False, False, True, True]
    z = cb.combine(8, 2, 1, idx, signs, D)
    assert z.dtype == torch.float32 and z.shape == (D,)
    assert abs(float(z.double().std(unbiased=False)) - 1) < 1e-6  # population std
    A = cb.atoms(8, 2, 1, idx, D).double()
    s = torch.tensor([1.0 if b else -1.0 for b in signs], dtype=torch.float64)
    ref = (s[:, None] * A).sum(0)
    ref = ref / ref.std(unbiased=False)
    assert torch.allclose(z.double(), ref, rtol=0, atol=1e-5)
    # unordered input: same noise bit for bit
    perm = [4, 0, 3, 1, 2]
    z2 = cb.combine(8, 2, 1, [idx[i] for i in perm], [signs[i] for i in perm], D)
    assert torch.equal(z, z2)
    z3 = cb.combine(8, 2, 1, torch.tensor(idx), torch.tensor(signs), D)
    assert torch.equal(z, z3)


@pytest.mark.parametrize("M", [1, 2, 64])
def test_combine_torch_equals_numpy(M):
    D = 4000
    idx = list(range(5, 5 + 3 * M, 3))
    signs = [(i * 7) % 3 != 0 for i in range(M)]
    a = cb.combine(1, 2, 3, idx, signs, D)
    b = cb.combine(1, 2, 3, idx, signs, D, backend="torch")
    assert torch.equal(a, b)


def test_encoder_decoder_roundtrip():
    """What the codec does: search, then both sides combine the chosen atoms into the same noise."""
    K, D, M = 256, 2048, 16
    r = torch.randn(D, generator=torch.Generator().manual_seed(3))
    idx, signs = cb.CodebookSearch(K, D).topm(r, 42, 0, 0, M)
    z_enc = cb.combine(42, 0, 0, idx, signs, D)
    z_dec = cb.combine(42, 0, 0, idx.tolist(), signs.tolist(), D)
    assert torch.equal(z_enc, z_dec)
    assert _corr(z_enc, r) > 0.1  # the chosen noise points towards the residual (random: ~0.02)


# ---------------------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bit_identical_to_numpy():
    assert _sha(cb.normal_table("cuda")) == TABLE_SHA256
    g = cb.atoms(**GOLDEN_ATOMS, device="cuda")
    assert g.device.type == "cuda" and _sha(g) == GOLDEN_ATOMS_SHA256
    for dim in (5, 1000, 25344):
        idx = [0, 1, 2, 1000, 16383, 2**40 + 3, 2**63 - 1]
        a = cb.atoms(9, 16, 8, idx, dim)
        b = cb.atoms(9, 16, 8, idx, dim, device="cuda")
        assert torch.equal(a, b.cpu())
    # combine: the noise z is identical on both sides
    idx = list(range(7, 7 + 64 * 13, 13))
    signs = [bool((i * 5) % 7 > 2) for i in range(64)]
    for dim in (1000, 25344):
        assert torch.equal(cb.combine(3, 4, 5, idx, signs, dim),
                           cb.combine(3, 4, 5, idx, signs, dim, device="cuda").cpu())
    # the search picks the same atoms (inner products may differ in the last bits)
    K, D, M = 2048, 25344, 32
    r = torch.randn(D, generator=torch.Generator().manual_seed(5))
    i0, s0 = cb.CodebookSearch(K, D).topm(r, 1, 2, 3, M)
    i1, s1 = cb.CodebookSearch(K, D, device="cuda", tile_bytes=1 << 20).topm(r.cuda(), 1, 2, 3, M)
    assert torch.equal(i0, i1.cpu()) and torch.equal(s0, s1.cpu())
    i2, s2 = cb.CodebookSearch(K, D, device="cuda", compile=False).topm(r.cuda(), 1, 2, 3, M)
    assert torch.equal(i0, i2.cpu()) and torch.equal(s0, s2.cpu())
    ip0 = cb.CodebookSearch(K, D).inner_products(r, 1, 2, 3)
    ip1 = cb.CodebookSearch(K, D, device="cuda").inner_products(r.cuda(), 1, 2, 3)
    assert torch.allclose(ip0, ip1.cpu(), rtol=1e-4, atol=1e-2)
