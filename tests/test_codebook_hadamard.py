"""The structured "hadamard" codebook family: fast-transform inner products equal the explicit atoms',
atoms are +-1 and reproducible, selection and combine follow the Gaussian family's rules."""

from __future__ import annotations

import pytest
import torch

from gvc import codebook as cb
from gvc import codebook_hadamard as hd


def _hadamard(n: int) -> torch.Tensor:
    i = torch.arange(n)
    return (1 - 2 * hd._parity(i[:, None] & i[None, :])).float()


@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_fwht_is_the_natural_order_hadamard_matrix(n):
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(hd.fwht(x), x @ _hadamard(n).t(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("K,dim", [(64, 100), (16, 1), (300, 64), (1024, 1000)])  # K > N takes several scrambles
def test_inner_products_equal_explicit_atoms(K, dim):
    key = cb.codebook_key(3, 1, 2)
    r = torch.randn(dim, generator=torch.Generator().manual_seed(dim))
    A = hd.atoms(key, range(K), dim)
    assert set(A.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(hd.inner_products(key, K, dim, r), A @ r, rtol=1e-4, atol=1e-3)
    if dim >= 64:  # distinct atoms: no two rows alike (rows of one scramble, or of different scrambles)
        assert torch.unique(A, dim=0).shape[0] == K


def test_scramble_depends_on_key_and_is_a_permutation_prefix():
    pos, sign = hd.scramble(cb.codebook_key(1, 2, 3), 0, 1000)
    assert pos.unique().numel() == 1000 and int(pos.max()) < hd.transform_size(1000) == 1024
    pos2, _ = hd.scramble(cb.codebook_key(1, 2, 4), 0, 1000)
    assert not torch.equal(pos, pos2)
    assert 400 < int((sign > 0).sum()) < 600


def test_search_and_combine_with_family():
    K, dim, M = 256, 777, 8
    r = torch.randn(dim, generator=torch.Generator().manual_seed(1))
    s = cb.CodebookSearch(K, dim, family="hadamard")
    idx, sg = s.topm(r, 5, 6, 7, M)
    ip = hd.atoms(cb.codebook_key(5, 6, 7), range(K), dim) @ r
    best = torch.sort(ip.abs().argsort(descending=True)[:M]).values
    assert torch.equal(idx, best) and torch.equal(sg, ip[idx] >= 0)
    z = cb.combine(5, 6, 7, idx, sg, dim, family="hadamard")
    A = hd.atoms(cb.codebook_key(5, 6, 7), idx, dim)
    seq = A[0] * (1 if sg[0] else -1)
    for a, s_ in zip(A[1:], sg[1:]):
        seq = seq + a if s_ else seq - a
    assert torch.equal(hd.signed_sum(cb.codebook_key(5, 6, 7), idx.tolist(), sg.tolist(), dim), seq)
    assert torch.equal(z, torch.from_numpy(cb._combine_np(A.numpy(), sg.tolist())))  # the Gaussian family's rule
    assert z.shape == (dim,) and abs(float(z.std(unbiased=False)) - 1) < 1e-5
    assert float(z @ r) > 0  # the chosen signed atoms point along the residual
    assert not torch.equal(z, cb.combine(5, 6, 7, idx, sg, dim))  # another family, other atoms
    with pytest.raises(Exception, match="family"):
        cb.CodebookSearch(K, dim, family="fft")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_atoms_identical():
    key = cb.codebook_key(9, 9, 9)
    assert torch.equal(hd.atoms(key, [0, 5, 3000], 2000, "cuda").cpu(), hd.atoms(key, [0, 5, 3000], 2000))
