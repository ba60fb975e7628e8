"""Fused codebook search (Triton): atoms are generated tile by tile in registers and multiplied into the
residual there; the K x D atoms never exist in memory (issue 15.3).

One program owns ``BLOCK_K`` atoms and one split of the 4-sample blocks; per tile of ``BLOCK_J`` blocks it
computes the GVC-CB1 words ``mix(atom_key + block_key)`` (gvc/codebook.py), looks the four 16-bit fields up in
the inverse-CDF table and accumulates ``table[field] * r[4j + w]``.  The table is symmetric (TABLE[i] =
-TABLE[65535 - i], checked when the half table is built), so the kernel gathers from its positive half,
128 KiB, which stays in L1, and applies the sign: the sample values are exactly the portable generator's.

Per-split partial sums go to ``partial[split, K]`` and are added in a fixed order by torch, so the result
depends only on (K, dim) (the split plan never looks at the GPU), never on scheduling.  ``ATOMS`` mode writes
the samples instead of accumulating them: the same code path, used to check the kernel against the portable
generator bit for bit.

Everything a kernel launch needs is prepared by :func:`layout` (plain torch, runs on the CPU too) and
:func:`emulate` reproduces the kernel's arithmetic in torch, so the Python-side layout is tested without a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gvc import codebook as cb

BLOCK_K = 32  # atoms per program
BLOCK_J = 64  # 4-sample blocks per tile (256 samples); 32 x 64 was the fastest of 6 shapes on an H200
TARGET_PROGRAMS = 2048  # split the dimension until about this many programs run (depends on K and dim only)
HALF = 32768

_half_tables: dict[str, torch.Tensor] = {}


def half_table(device) -> torch.Tensor:
    """float32 [32768]: TABLE[32768 + m] (the non-negative half); TABLE[i] = -half[32767 - i] for i < 32768."""
    dev = torch.device(device)
    t = _half_tables.get(str(dev))
    if t is None:
        full = cb.normal_table("cpu")
        if not torch.equal(full[:HALF], -full.flip(0)[:HALF]):
            raise RuntimeError("the inverse-CDF table is not symmetric; the fused search cannot use its half")
        t = full[HALF:].contiguous().to(dev)
        _half_tables[str(dev)] = t
    return t


@dataclass(frozen=True)
class Plan:
    K: int
    dim: int
    nblocks: int  # ceil(dim / 4)
    splits: int  # programs along the dimension
    blocks_per_split: int  # a multiple of BLOCK_J
    nblocks_padded: int  # splits * blocks_per_split

    @property
    def grid(self) -> tuple[int, int]:
        return (math.ceil(self.K / BLOCK_K), self.splits)


def plan(K: int, dim: int) -> Plan:
    """Split of the dimension for (K, dim); a pure function of them (results do not depend on the GPU)."""
    nb = (dim + 3) // 4
    tiles = math.ceil(nb / BLOCK_J)
    k_programs = math.ceil(K / BLOCK_K)
    splits = max(1, min(tiles, math.ceil(TARGET_PROGRAMS / k_programs)))
    per = math.ceil(tiles / splits) * BLOCK_J
    splits = math.ceil(nb / per)
    return Plan(K, dim, nb, splits, per, splits * per)


def layout(key: int, K: int, dim: int, residual: torch.Tensor, device) -> tuple[Plan, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(plan, atom keys int64 [K], block keys int64 [nblocks_padded], residual float32 [4 * nblocks_padded]).

    Atom k's key is GVC-CB1's ``atom_key(k)``, block j's ``block_key(j)``; the residual is zero-padded past
    ``dim`` so padded samples (and padded blocks) add exact zeros."""
    dev = torch.device(device)
    p = plan(K, dim)
    akeys = cb._atom_keys_torch(key, torch.arange(K, dtype=torch.int64, device=dev))
    bkeys = cb._mix_torch_(torch.arange(p.nblocks_padded, dtype=torch.int64, device=dev).bitwise_xor_(cb._s64(cb.TAG_BLOCK)))
    r = torch.zeros(4 * p.nblocks_padded, dtype=torch.float32, device=dev)
    r[:dim] = residual.reshape(-1).to(dev, torch.float32)
    return p, akeys, bkeys, r


def emulate(p: Plan, akeys: torch.Tensor, bkeys: torch.Tensor, r: torch.Tensor, table_half: torch.Tensor,
            atoms_only: bool = False) -> torch.Tensor:
    """The kernel's arithmetic in torch (CPU): inner products float32 [K] (or, ``atoms_only``, the samples
    float32 [K, 4 * nblocks_padded]), accumulated per program and tile like the kernel, up to the order of the
    additions inside a tile."""
    z = akeys[:, None] + bkeys[None, :]
    cb._mix_torch_(z)
    fields = torch.stack([(z >> (16 * w)) & 0xFFFF for w in range(4)], dim=-1).reshape(p.K, -1)
    neg = fields < HALF
    m = torch.where(neg, (HALF - 1) - fields, fields - HALF)
    v = table_half[m]
    v = torch.where(neg, -v, v)
    if atoms_only:
        return v
    partial = (v * r[None, :]).reshape(p.K, p.splits, -1).sum(dim=2)  # [K, splits]
    return partial.t().sum(dim=0)


# ---------------------------------------------------------------------------------------------------------
# the kernel (defined only where Triton imports)
# ---------------------------------------------------------------------------------------------------------
try:  # pragma: no cover - exercised on CUDA machines and under TRITON_INTERPRET=1
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = tl = None


def available(device) -> bool:
    """Whether the fused kernel can run on ``device`` (CUDA with Triton, or anything under TRITON_INTERPRET=1)."""
    import os

    if triton is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


if triton is not None:

    @triton.jit
    def _mix(z):
        z = z ^ (z >> 30)
        z = z * 0xBF58476D1CE4E5B9
        z = z ^ (z >> 27)
        z = z * 0x94D049BB133111EB
        z = z ^ (z >> 31)
        return z

    @triton.jit
    def _search_kernel(akeys_ptr, bkeys_ptr, r_ptr, half_ptr, out_ptr, K, TILES: tl.constexpr,
                       BLOCK_K: tl.constexpr, BLOCK_J: tl.constexpr, ATOMS: tl.constexpr):
        pid_k = tl.program_id(0)
        pid_s = tl.program_id(1)
        offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
        kmask = offs_k < K
        ak = tl.load(akeys_ptr + offs_k, mask=kmask, other=0).to(tl.uint64, bitcast=True)
        acc = tl.zeros([BLOCK_K, BLOCK_J], dtype=tl.float32)
        blocks_per_split = TILES * BLOCK_J
        j_first = pid_s * blocks_per_split
        for t in range(0, TILES):
            offs_j = j_first + t * BLOCK_J + tl.arange(0, BLOCK_J)
            bk = tl.load(bkeys_ptr + offs_j).to(tl.uint64, bitcast=True)
            z = _mix(ak[:, None] + bk[None, :])
            for w in tl.static_range(4):
                f = ((z >> (16 * w)) & 0xFFFF).to(tl.int32)
                neg = f < 32768
                m = tl.where(neg, 32767 - f, f - 32768)
                v = tl.load(half_ptr + m)
                if ATOMS:
                    v = tl.where(neg, -v, v)
                    n_pad = tl.num_programs(1) * blocks_per_split * 4
                    ptr = out_ptr + offs_k[:, None].to(tl.int64) * n_pad + (offs_j[None, :] * 4 + w)
                    tl.store(ptr, v, mask=kmask[:, None])
                else:
                    rw = tl.load(r_ptr + offs_j * 4 + w)
                    acc += v * tl.where(neg, -rw[None, :], rw[None, :])
        if not ATOMS:
            tl.store(out_ptr + pid_s * K + offs_k, tl.sum(acc, axis=1), mask=kmask)


def inner_products(key: int, K: int, dim: int, residual: torch.Tensor, device) -> torch.Tensor:
    """float32 [K] on ``device``: <atom_k, residual> for the codebook ``key`` (fused kernel)."""
    p, akeys, bkeys, r = layout(key, K, dim, residual, device)
    partial = torch.empty((p.splits, K), dtype=torch.float32, device=akeys.device)
    _search_kernel[p.grid](akeys, bkeys, r, half_table(akeys.device), partial, K, p.blocks_per_split // BLOCK_J,
                           BLOCK_K=BLOCK_K, BLOCK_J=BLOCK_J, ATOMS=False, num_warps=4)
    return partial.sum(dim=0)


def atoms(key: int, indices: torch.Tensor, dim: int, device) -> torch.Tensor:
    """float32 [n, dim]: the atoms ``indices`` generated by the kernel's own code path (for checks)."""
    dev = torch.device(device)
    n = int(indices.numel())
    p = plan(n, dim)
    akeys = cb._atom_keys_torch(key, indices.to(dev, torch.int64).reshape(-1))
    bkeys = cb._mix_torch_(torch.arange(p.nblocks_padded, dtype=torch.int64, device=dev).bitwise_xor_(cb._s64(cb.TAG_BLOCK)))
    out = torch.empty((n, 4 * p.nblocks_padded), dtype=torch.float32, device=dev)
    _search_kernel[p.grid](akeys, bkeys, out, half_table(dev), out, n, p.blocks_per_split // BLOCK_J,
                           BLOCK_K=BLOCK_K, BLOCK_J=BLOCK_J, ATOMS=True, num_warps=4)
    return out[:, :dim]


__all__ = ["BLOCK_J", "BLOCK_K", "Plan", "atoms", "available", "emulate", "half_table", "inner_products", "layout", "plan"]
