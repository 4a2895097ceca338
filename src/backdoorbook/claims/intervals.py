"""95 % confidence intervals for the effects the claims test.

- :func:`wilson`: one proportion (Wilson score interval; Wilson, JASA 1927);
- :func:`newcombe`: the difference of two *independent* proportions (Newcombe's hybrid score
  interval, method 10 of Newcombe, Statistics in Medicine 1998);
- :func:`paired_bootstrap`: the difference of two means over the *same* units (images,
  episodes), by a seeded bootstrap that resamples units (``scipy.stats.bootstrap`` with
  ``paired=True``, BCa where it is defined, else percentile);
- :func:`ratio_bootstrap`: the difference of two pooled rates over the same clusters (victim
  pixels grouped by image, for instance), resampling the clusters.

Rates and differences are in percent (points). Every function returns an :class:`Interval`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval, in percent (points), over ``n`` units."""

    value: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _wilson_fraction(k: int, n: int, confidence: float) -> tuple[float, float]:
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    z, p = _z(confidence), k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The rate ``k / n`` (percent) with its Wilson score interval."""
    low, high = _wilson_fraction(k, n, confidence)
    return Interval(100 * k / n, 100 * low, 100 * high, n)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> Interval:
    """``k1/n1 - k2/n2`` (points) for independent samples, with Newcombe's hybrid score interval."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson_fraction(k1, n1, confidence)
    l2, u2 = _wilson_fraction(k2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(100 * d, 100 * low, 100 * high, min(n1, n2))


def _bootstrap(data: tuple[np.ndarray, ...], statistic, seed: int, confidence: float) -> tuple:
    rng = np.random.default_rng(seed)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():  # a degenerate BCa falls back to the percentile interval
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # BCa's acceleration of a constant
            result = stats.bootstrap(
                data,
                statistic,
                paired=True,
                vectorized=True,
                axis=-1,
                n_resamples=RESAMPLES,
                confidence_level=confidence,
                method=method,
                random_state=rng,
            )
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return math.nan, math.nan


def paired_bootstrap(a, b, *, seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """``mean(a) - mean(b)`` over paired units (per-unit values, e.g. 0/1 successes in percent or
    per-episode rates), with a seeded bootstrap interval over the units.

    Constant differences (every unit agrees) have a zero-width interval at the difference.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(
            f"need two paired 1-D samples of one length >= 2, got {a.shape}, {b.shape}"
        )
    value = float(a.mean() - b.mean())
    if np.ptp(a - b) == 0:
        return Interval(value, value, value, len(a))
    low, high = _bootstrap((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), seed, confidence)
    return Interval(value, low, high, len(a))


def ratio_bootstrap(
    hits_a, hits_b, totals, *, seed: int = 0, confidence: float = CONFIDENCE
) -> Interval:
    """``100 * (sum(hits_a) - sum(hits_b)) / sum(totals)`` (points) over shared clusters.

    ``hits_a``, ``hits_b`` and ``totals`` hold one count per cluster (e.g. per image: victim
    pixels flipped under two conditions, and the image's victim pixels); the bootstrap resamples
    clusters, so pixels of one image move together. ``n`` is the number of clusters.
    """
    hits_a, hits_b = np.asarray(hits_a, dtype=float), np.asarray(hits_b, dtype=float)
    totals = np.asarray(totals, dtype=float)
    if not hits_a.shape == hits_b.shape == totals.shape or hits_a.ndim != 1 or len(totals) < 2:
        raise ValueError("need three 1-D count arrays of one length >= 2")
    if totals.sum() <= 0:
        raise ValueError("the clusters hold no units: the rates are undefined")

    def statistic(x, y, t, axis):
        return 100 * (x.sum(axis) - y.sum(axis)) / t.sum(axis)

    value = float(statistic(hits_a, hits_b, totals, 0))
    if not (hits_a - hits_b).any():
        return Interval(value, value, value, len(totals))
    low, high = _bootstrap((hits_a, hits_b, totals), statistic, seed, confidence)
    return Interval(value, low, high, len(totals))
