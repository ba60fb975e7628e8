"""Picture-quality figures shared by the codec, its CLI and the tools (no I/O, no ffmpeg: a ground-floor module)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape; 100.0 for identical arrays (and the cap)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("psnr: empty arrays")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return 100.0
    return float(min(100.0, 10.0 * np.log10(255.0**2 / mse)))
