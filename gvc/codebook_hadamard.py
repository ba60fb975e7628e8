"""Structured codebook family "hadamard" (issue 15.4): atoms are rows of a randomly signed, scrambled
Walsh-Hadamard transform, so all K inner products cost O(N log N) instead of O(K D).

For a codebook key (gvc.codebook.codebook_key) and dimension D, let N = the smallest power of two >= D and
b = log2 N.  Atom k belongs to scramble c = k // N and is row i = k mod N of it (K > N takes several scrambles)::

    skey(c)  = mix(key + mix(c ^ TAG_SCRAMBLE))
    pos(c)   = the first D entries of argsort_n( int64( mix(skey(c) + mix(n ^ TAG_PERM)) ) ), n = 0 .. N-1
               (a stable ascending sort of the 64-bit words read as two's-complement integers)
    sign(c)  = -1 where int64( mix(skey(c) + mix(d ^ TAG_SIGN)) ) < 0, else +1,  d = 0 .. D-1
    atom_k[d] = sign(c)[d] * (-1) ** popcount(i & pos(c)[d])

``mix`` is GVC-CB1's SplitMix64 finaliser (gvc/codebook.py).  Atoms take the values +-1 (unit variance, like the
Gaussian family's), so ``combine`` (signed sum in ascending index order, then division by the exact population
std) applies unchanged.  The atoms are integers: bit-identical on every device.

Inner products: scatter u[pos[d]] = sign[d] * r[d] into zeros(N); then <atom_(c, i), r> = (H_N u)[i] with H_N the
natural-order (Sylvester) Hadamard matrix, H[i, j] = (-1) ** popcount(i & j), one fast transform per scramble.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gvc import codebook as cb
from gvc.errors import ParameterError

FAMILIES = cb.CODEBOOK_FAMILIES
TAG_SCRAMBLE = 0x5CA3B1E5D00DFEED
TAG_PERM = 0x7E8A5F0C3B2D4E61
TAG_SIGN = 0x3C6EF372FE94F82B


def transform_size(dim: int) -> int:
    """N: the smallest power of two >= dim."""
    return 1 << max(0, (int(dim) - 1).bit_length())


def _scramble_key(key: int, c: int) -> int:
    return cb._mix_py(key + cb._mix_py(c ^ TAG_SCRAMBLE))


def _hashes(skey: int, n: int, tag: int, device) -> torch.Tensor:
    h = cb._mix_torch_(torch.arange(n, dtype=torch.int64, device=device).bitwise_xor_(cb._s64(tag)))
    h.add_(cb._s64(skey))
    return cb._mix_torch_(h)


_recent: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # the encoder's search, then its combine, share one


def scramble(key: int, c: int, dim: int, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(pos int64 [dim], sign float32 [dim]) of scramble ``c`` of codebook ``key`` (see the module doc)."""
    k = (key, c, dim, str(torch.device(device)))
    got = _recent.get(k)
    if got is None:
        got = _scramble(key, c, dim, device)
        if len(_recent) >= 8:
            _recent.pop(next(iter(_recent)))
        _recent[k] = got
    return got


def _scramble(key: int, c: int, dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    skey = _scramble_key(key, c)
    n = transform_size(dim)
    pos = torch.sort(_hashes(skey, n, TAG_PERM, device), stable=True).indices[:dim]
    sign = torch.where(_hashes(skey, dim, TAG_SIGN, device) < 0, -1.0, 1.0).to(torch.float32)
    return pos, sign


def _parity(x: torch.Tensor) -> torch.Tensor:
    """popcount(x) & 1 for non-negative int64 x < 2**62, elementwise."""
    for s in (32, 16, 8, 4, 2, 1):
        x = x ^ (x >> s)
    return x & 1


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised Walsh-Hadamard transform along the last axis (length a power of two), natural order."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ParameterError(f"fwht needs a power-of-two length, got {n}")
    lead = x.shape[:-1]
    y = x.reshape(-1, n)
    h = 1
    while h < n:
        y = y.view(y.shape[0], n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return y.reshape(*lead, n)


def atoms(key: int, indices, dim: int, device="cpu") -> torch.Tensor:
    """float32 [len(indices), dim]: atoms of the hadamard family (values +-1)."""
    idx = torch.as_tensor(cb._as_index_array(indices), dtype=torch.int64)
    dim = cb._check_dim(dim)
    n = transform_size(dim)
    out = torch.empty((idx.numel(), dim), dtype=torch.float32, device=device)
    scr = {}
    for row, k in enumerate(idx.tolist()):
        c, i = divmod(k, n)
        if c not in scr:
            scr[c] = scramble(key, c, dim, device)
        pos, sign = scr[c]
        out[row] = sign * (1.0 - 2.0 * _parity(pos & i).to(torch.float32))
    return out


def inner_products(key: int, K: int, dim: int, residual: torch.Tensor, device="cpu") -> torch.Tensor:
    """float32 [K]: <atom_k, residual> for k < K, by one fast transform per scramble."""
    n = transform_size(dim)
    r = residual.reshape(-1).to(device, torch.float32)
    ip = torch.empty(K, dtype=torch.float32, device=device)
    for c in range(math.ceil(K / n)):
        pos, sign = scramble(key, c, dim, device)
        u = torch.zeros(n, dtype=torch.float32, device=device)
        u[pos] = sign * r
        m = min(n, K - c * n)
        ip[c * n:c * n + m] = fwht(u)[:m]
    return ip


def signed_sum(key: int, indices: np.ndarray, signs: list[bool], dim: int, device="cpu") -> torch.Tensor:
    """float32 [dim]: sum_k sign_k * atom_k, by one fast transform per scramble: v[i_k] = +-1, w = H v,
    z[d] = sign[d] * w[pos[d]].  The values are integers of magnitude <= len(indices) < 2**24, exact in float32
    whatever the order of the additions, so this equals the sequential ascending sum bit for bit."""
    n = transform_size(dim)
    z = torch.zeros(dim, dtype=torch.float32, device=device)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    values = np.where(np.asarray(signs, dtype=bool), 1.0, -1.0).astype(np.float32)
    for c in np.unique(idx // n).tolist():
        chosen = idx // n == c  # one scatter per scramble (the indices are distinct), not one write per atom
        v = torch.zeros(n, dtype=torch.float32, device=device)
        v[torch.from_numpy(idx[chosen] % n).to(device)] = torch.from_numpy(values[chosen]).to(device)
        pos, sign = scramble(key, c, dim, device)
        z += sign * fwht(v)[pos]
    return z


def combine(key: int, indices: np.ndarray, signs: list[bool], dim: int, device="cpu") -> torch.Tensor:
    """GVC's one combine rule (signed sum, then division by the exact population std) on this family's atoms."""
    z = signed_sum(key, indices, signs, dim, device)
    if torch.device(device).type == "cpu":
        return torch.from_numpy(cb._combine_np(z.numpy()[None], [True]))
    return cb._combine_torch(z[None], [True])


__all__ = ["FAMILIES", "atoms", "combine", "signed_sum", "fwht", "inner_products", "scramble", "transform_size"]
