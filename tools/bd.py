"""Bjøntegaard deltas (VCEG-M33): BD-rate and BD-metric (BD-PSNR) between two rate-distortion curves.

Each curve is fitted with a polynomial of degree 3 (``min(3, points - 1)`` when a curve has fewer than 4
points) in the natural log of the rate; both fits are integrated over the range the two curves share and
the mean difference is returned. ``None`` when the curves do not overlap or a curve has fewer than 2 points.

* ``bd_rate``: fit log-rate as a function of the metric, over the shared metric range; the result is the
  average rate difference of ``test`` against ``anchor`` in percent (negative = ``test`` needs fewer bits).
* ``bd_metric``: fit the metric as a function of log-rate, over the shared log-rate range; the result is
  the average metric difference ``test - anchor`` (dB for PSNR).

``bd_rate_figure`` and ``bd_metric_figure`` also say what the figure rests on: the shared range (metric
values for BD-rate, rates for BD-metric) and its width in decades of rate. A figure fitted over less than
:data:`NARROW_DECADES` of a log-rate decade is an extrapolation in all but name and is flagged ``narrow``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NARROW_DECADES = 0.2  # a BD figure over less than 20 % of a log10-rate decade is flagged


@dataclass(frozen=True)
class BDFigure:
    value: float | None  # BD-rate in %, or BD-metric in the metric's unit; None without overlap
    overlap: tuple[float, float] | None  # shared metric range (BD-rate) or shared rate range (BD-metric)
    decades: float | None  # width of the rate range the figure rests on, in log10 decades

    @property
    def narrow(self) -> bool:
        return bool(self.decades is not None and self.decades < NARROW_DECADES)

    def as_dict(self) -> dict:
        return {"value": self.value, "overlap": list(self.overlap) if self.overlap else None,
                "decades": self.decades, "narrow": self.narrow}


NONE = BDFigure(None, None, None)


def _clean(rates, metrics) -> tuple[np.ndarray, np.ndarray] | None:
    pairs = sorted((float(r), float(m)) for r, m in zip(rates, metrics)
                   if r is not None and m is not None and r > 0 and math.isfinite(r) and math.isfinite(m))
    if len(pairs) < 2:
        return None
    r, m = np.array(pairs).T
    return np.log(r), m


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.polyfit(x, y, min(3, len(x) - 1))


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean of the polynomial fit of y(x) over [lo, hi]."""
    poly = np.polyint(_fit(x, y))
    return float((np.polyval(poly, hi) - np.polyval(poly, lo)) / (hi - lo))


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    return (float(lo), float(hi)) if hi > lo else None


def _decades(log_rate_span: float) -> float:
    return float(abs(log_rate_span) / math.log(10.0))


def bd_rate_figure(anchor_rates, anchor_metrics, test_rates, test_metrics) -> BDFigure:
    """BD-rate (%) with the shared metric range; its rate width is the narrower of the two curves' fitted
    log-rate spans over that metric range."""
    a, t = _clean(anchor_rates, anchor_metrics), _clean(test_rates, test_metrics)
    if a is None or t is None:
        return NONE
    span = _overlap(a[1], t[1])
    if span is None:
        return NONE
    diff = _mean_over(t[1], t[0], *span) - _mean_over(a[1], a[0], *span)
    widths = [np.polyval(_fit(c[1], c[0]), span[1]) - np.polyval(_fit(c[1], c[0]), span[0]) for c in (a, t)]
    return BDFigure(float((math.exp(diff) - 1.0) * 100.0), span, min(_decades(w) for w in widths))


def bd_metric_figure(anchor_rates, anchor_metrics, test_rates, test_metrics) -> BDFigure:
    """BD-metric (test - anchor) with the shared rate range (in rate units, not logs)."""
    a, t = _clean(anchor_rates, anchor_metrics), _clean(test_rates, test_metrics)
    if a is None or t is None:
        return NONE
    span = _overlap(a[0], t[0])
    if span is None:
        return NONE
    value = _mean_over(t[0], t[1], *span) - _mean_over(a[0], a[1], *span)
    return BDFigure(value, (math.exp(span[0]), math.exp(span[1])), _decades(span[1] - span[0]))


def bd_rate(anchor_rates, anchor_metrics, test_rates, test_metrics) -> float | None:
    """Average rate difference of test vs anchor in percent at equal metric, or None."""
    return bd_rate_figure(anchor_rates, anchor_metrics, test_rates, test_metrics).value


def bd_metric(anchor_rates, anchor_metrics, test_rates, test_metrics) -> float | None:
    """Average metric difference test - anchor at equal rate (BD-PSNR for PSNR), or None."""
    return bd_metric_figure(anchor_rates, anchor_metrics, test_rates, test_metrics).value
