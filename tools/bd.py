"""Bjøntegaard deltas (VCEG-M33): BD-rate and BD-metric (BD-PSNR) between two rate-distortion curves.

Each curve is fitted with a polynomial of degree 3 (``min(3, points - 1)`` when a curve has fewer than 4
points) in the natural log of the rate; both fits are integrated over the range the two curves share and
the mean difference is returned. ``None`` when the curves do not overlap or a curve has fewer than 2 points.

* ``bd_rate``: fit log-rate as a function of the metric, over the shared metric range; the result is the
  average rate difference of ``test`` against ``anchor`` in percent (negative = ``test`` needs fewer bits).
* ``bd_metric``: fit the metric as a function of log-rate, over the shared log-rate range; the result is
  the average metric difference ``test - anchor`` (dB for PSNR).
"""

from __future__ import annotations

import math

import numpy as np


def _clean(rates, metrics) -> tuple[np.ndarray, np.ndarray] | None:
    pairs = sorted((float(r), float(m)) for r, m in zip(rates, metrics)
                   if r is not None and m is not None and r > 0 and math.isfinite(r) and math.isfinite(m))
    if len(pairs) < 2:
        return None
    r, m = np.array(pairs).T
    return np.log(r), m


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the polynomial fit of y(x) over [lo, hi]."""
    degree = min(3, len(x) - 1)
    poly = np.polyint(np.polyfit(x, y, degree))
    return float((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    return (float(lo), float(hi)) if hi > lo else None


def bd_rate(anchor_rates, anchor_metrics, test_rates, test_metrics) -> float | None:
    """Average rate difference of test vs anchor in percent at equal metric, or None."""
    a, t = _clean(anchor_rates, anchor_metrics), _clean(test_rates, test_metrics)
    if a is None or t is None:
        return None
    span = _overlap(a[1], t[1])
    if span is None:
        return None
    diff = _mean_over(t[1], t[0], *span) - _mean_over(a[1], a[0], *span)
    return float((math.exp(diff) - 1.0) * 100.0)


def bd_metric(anchor_rates, anchor_metrics, test_rates, test_metrics) -> float | None:
    """Average metric difference test - anchor at equal rate (BD-PSNR for PSNR), or None."""
    a, t = _clean(anchor_rates, anchor_metrics), _clean(test_rates, test_metrics)
    if a is None or t is None:
        return None
    span = _overlap(a[0], t[0])
    if span is None:
        return None
    return _mean_over(t[0], t[1], *span) - _mean_over(a[0], a[1], *span)
