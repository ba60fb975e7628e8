"""Rate control: choose the single knob M (plus a fine part, one extra atom on the first SDE steps)
so a GOP lands on a bit budget. Index bits are known exactly before encoding (combinatorial coding
has a fixed size for given K and M); anchors and residual are estimated from what was already coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .config import MAX_QUALITY, codebook_size
from .entropy.combinatorial import combination_bits
from .gop import atoms_per_set, codebook_sets


@lru_cache(maxsize=None)
def _set_bits(k: int, m: int) -> int:
    return combination_bits(k, m) + m


def index_bits(ms: list[int], k: int) -> int:
    """Bits of a GOP's packed index sets (before padding to a byte)."""
    return sum(_set_bits(k, m) for m in ms)


@dataclass(frozen=True)
class KnobSetting:
    m: int
    m_plus_steps: int
    bits: int


def settings(sde_steps: int, latent_frames: int, tail_frames: int, tail_of, span: int = 1) -> list[KnobSetting]:
    """Every (M, m_plus_steps) with its index bits, increasing in bits. `tail_of(m)` gives M_tail."""
    sets = codebook_sets(latent_frames, span)
    out = []
    for m in range(1, MAX_QUALITY):
        k = codebook_size(m)
        if m + 1 >= k:
            continue
        for plus in range(sde_steps + 1):
            ms = atoms_per_set(m, tail_of(m), tail_frames, plus, sde_steps, sets)
            out.append(KnobSetting(m, plus, (index_bits(ms, k) + 7) // 8 * 8))
    return sorted(out, key=lambda s: s.bits)


def choose(budget_bits: float, other_bits: float, options: list[KnobSetting]) -> KnobSetting:
    """The setting whose total (index + other) bits is closest to the budget."""
    target = budget_bits - other_bits
    return min(options, key=lambda s: abs(s.bits - target))
