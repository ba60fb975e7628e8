"""The fused codebook search (gvc/kernels/codebook_triton.py) against the portable generator.

The Python-side layout (atom/block keys, padding, split plan, half-table lookup) is checked on the CPU through
``emulate``; the Triton kernel itself runs where CUDA is present, or on the CPU under TRITON_INTERPRET=1."""

from __future__ import annotations

import os

import pytest
import torch

from gvc import codebook as cb
from gvc.kernels import codebook_triton as ct

CASES = [(70, 1030), (33, 4), (5, 1), (300, 9001)]  # dims not multiples of 4 or of a tile; K not of BLOCK_K


def test_half_table_is_the_table():
    full = cb.normal_table()
    half = ct.half_table("cpu")
    i = torch.arange(65536)
    rebuilt = torch.where(i < 32768, -half[(32767 - i).clamp(min=0)], half[(i - 32768).clamp(min=0)])
    assert torch.equal(rebuilt, full)


@pytest.mark.parametrize("K,dim", CASES + [(16384, 230400)])
def test_plan_depends_on_shape_only_and_covers_dim(K, dim):
    p = ct.plan(K, dim)
    assert p == ct.plan(K, dim)
    assert p.blocks_per_split % ct.BLOCK_J == 0
    assert p.nblocks_padded >= p.nblocks == (dim + 3) // 4
    assert p.nblocks_padded - p.nblocks < p.blocks_per_split  # no split is pure padding
    assert p.grid == (-(-K // ct.BLOCK_K), p.splits)


@pytest.mark.parametrize("K,dim", CASES)
def test_layout_emulation_matches_portable_generator(K, dim):
    seed, step, frame = 11, 4, 2
    key = cb.codebook_key(seed, step, frame)
    r = torch.randn(dim, generator=torch.Generator().manual_seed(K + dim))
    p, ak, bk, rp = ct.layout(key, K, dim, r, "cpu")
    assert torch.equal(rp[dim:], torch.zeros(rp.numel() - dim))
    samples = ct.emulate(p, ak, bk, rp, ct.half_table("cpu"), atoms_only=True)
    assert torch.equal(samples[:, :dim], cb.atoms(seed, step, frame, range(K), dim))  # bit for bit
    ip = ct.emulate(p, ak, bk, rp, ct.half_table("cpu"))
    ref = cb.CodebookSearch(K, dim).inner_products(r, seed, step, frame)
    torch.testing.assert_close(ip, ref, rtol=1e-5, atol=1e-4 * float(r.abs().sum()) / dim ** 0.5)


def _kernel_device():
    if ct.triton is None:
        pytest.skip("Triton is not installed")
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    pytest.skip("needs CUDA (or TRITON_INTERPRET=1 to run the kernel on the CPU)")


@pytest.mark.parametrize("K,dim", CASES)
def test_kernel_atoms_bit_identical_and_inner_products(K, dim):
    dev = _kernel_device()
    seed, step, frame = 7, 9, 1
    key = cb.codebook_key(seed, step, frame)
    idx = torch.arange(K)
    got = ct.atoms(key, idx, dim, dev).cpu()
    assert torch.equal(got, cb.atoms(seed, step, frame, range(K), dim))
    r = torch.randn(dim, generator=torch.Generator().manual_seed(3))
    ip = ct.inner_products(key, K, dim, r, dev).cpu()
    ref = cb.CodebookSearch(K, dim).inner_products(r, seed, step, frame)
    torch.testing.assert_close(ip, ref, rtol=1e-5, atol=1e-4 * float(r.abs().sum()) / dim ** 0.5)


def test_search_fused_equals_torch_path():
    dev = _kernel_device()
    K, dim, M = 1024, 4096, 16
    r = torch.randn(dim, generator=torch.Generator().manual_seed(5))
    fused = cb.CodebookSearch(K, dim, device=dev, backend="torch", fused=True, compile=False)
    plain = cb.CodebookSearch(K, dim, device=dev, backend="torch", fused=False, compile=False)
    ipf, ipp = fused.inner_products(r, 1, 2, 3), plain.inner_products(r, 1, 2, 3)
    assert fused.fused, "the fused kernel fell back"
    a = ipp.abs().sort(descending=True).values.cpu()
    assert a[M - 1] - a[M] > 1e-3 * a[0]  # no near-tie at the cut, so the two selections must agree
    for x, y in zip(fused.topm(r, 1, 2, 3, M), plain.topm(r, 1, 2, 3, M)):
        assert torch.equal(x, y)
