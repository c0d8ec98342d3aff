"""Robust statistics of a window's pixels: medians, MADs and sigma clipping on sorted values.

Every image estimates its noise (:func:`mosaic_pais.runtime.infer.estimate_noise`) and its sky
(:mod:`mosaic_pais.runtime.background`) by clipping about a median, round after round. Done
with masks, each round costs two selections over all the values; a small image (a single
tile, a stamp) then spends as long on them as the network spends on it. Sorted once, the values
a round keeps are a slice, its median is read off the middle of the slice, and its median
absolute deviation is the middle of two sorted halves, found by bisection: the rounds cost
next to nothing beyond the sort. The figures are those of the masked computations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_TO_SIGMA", "sorted_median", "sorted_mad", "clipped_std", "clipped_mode"]

#: scales the median absolute deviation of Gaussian noise to its standard deviation
MAD_TO_SIGMA = 1.482602218505602


def sorted_median(ordered: np.ndarray) -> float:
    """The median of ascending values (NaN if there are none).

    >>> sorted_median(np.array([1.0, 2.0, 4.0, 8.0])), sorted_median(np.array([3.0]))
    (3.0, 3.0)
    """
    n = len(ordered)
    if n == 0:
        return np.nan
    return float(0.5 * (ordered[(n - 1) // 2] + ordered[n // 2]))


def _kth_of_two(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """The ``k``-th smallest (from 0) of the values of two ascending arrays, by bisection on
    how many of them come from ``a``."""
    lo, hi = max(0, k + 1 - len(b)), min(k + 1, len(a))
    while lo < hi:
        i = (lo + hi) // 2
        if a[i] < b[k - i]:  # a's (i+1)-th is below b's (k+1-i)-th: take more of a
            lo = i + 1
        else:
            hi = i
    j = k + 1 - lo
    return float(max(a[lo - 1] if lo > 0 else -np.inf, b[j - 1] if j > 0 else -np.inf))


def sorted_mad(ordered: np.ndarray, centre: float) -> float:
    """The median of ``|x − centre|`` over ascending values ``x`` (NaN if there are none).

    >>> values = np.array([1.0, 2.0, 4.0, 8.0, 9.0])
    >>> sorted_mad(values, 4.0) == float(np.median(np.abs(values - 4.0)))
    True
    """
    n = len(ordered)
    if n == 0:
        return np.nan
    split = int(np.searchsorted(ordered, centre, "left"))
    below = centre - ordered[:split][::-1]  # ascending distances of the values below
    above = ordered[split:] - centre
    return 0.5 * (_kth_of_two(below, above, (n - 1) // 2)
                  + _kth_of_two(below, above, n // 2))


def clipped_std(values: np.ndarray, sigma: float = 3.0, maxiters: int = 5) -> float:
    """Standard deviation of ``values`` clipped about their median at ``sigma`` times the
    MAD's σ, as astropy's ``SigmaClip(sigma, maxiters, stdfunc="mad_std")`` then ``std``: a
    value once clipped stays clipped during the rounds, and the last round's bounds decide
    over all values. NaN for fewer than 16 values.

    >>> values = np.concatenate([np.linspace(-1.0, 1.0, 101), [50.0]])
    >>> clipped_std(values) == float(np.std(values[:-1]))
    True
    """
    ordered = np.sort(np.asarray(values, np.float64).ravel())
    if ordered.size < 16:
        return np.nan
    lo, hi = 0, ordered.size
    bounds = (-np.inf, np.inf)
    for _ in range(maxiters):
        kept = ordered[lo:hi]
        centre = sorted_median(kept)
        spread = MAD_TO_SIGMA * sorted_mad(kept, centre)
        bounds = (centre - sigma * spread, centre + sigma * spread)
        new_lo = max(lo, int(np.searchsorted(ordered, bounds[0], "left")))
        new_hi = min(hi, int(np.searchsorted(ordered, bounds[1], "right")))
        if (new_lo, new_hi) == (lo, hi):
            break
        lo, hi = new_lo, new_hi
    final = ordered[np.searchsorted(ordered, bounds[0], "left"):
                    np.searchsorted(ordered, bounds[1], "right")]
    return float(np.std(final))


def clipped_mode(values: np.ndarray, rounds: int = 3, kappa: float = 3.0) -> float:
    """SExtractor's estimate of the sky under ``values`` (NaN values are not samples).

    ``rounds`` rounds of clipping at ``kappa``σ about the median (σ = 1.4826 × the MAD), then
    the mode estimate 2.5·median − 1.5·mean, unless the mean and median differ by 30% of the
    kept values' standard deviation or more (a crowded cell), where the median is kept. NaN
    without samples.

    >>> rng = np.random.default_rng(0)
    >>> sky = 10.0 + rng.normal(0.0, 1.0, 4096)
    >>> sky[:200] += 30.0                       # a galaxy's pixels
    >>> abs(clipped_mode(sky) - 10.0) < 0.15
    True
    """
    ordered = np.sort(np.asarray(values, np.float64).ravel())
    ordered = ordered[: np.count_nonzero(np.isfinite(ordered))]  # NaNs sort last
    lo, hi = 0, ordered.size
    for _ in range(rounds):
        kept = ordered[lo:hi]
        if kept.size == 0:
            return np.nan
        centre = sorted_median(kept)
        spread = 1.4826 * sorted_mad(kept, centre)
        # |x − c| is V-shaped over sorted x, so the values within the bound are a slice
        inside = np.flatnonzero(np.abs(kept - centre) <= kappa * spread)
        if inside.size == 0:
            return np.nan
        lo, hi = lo + int(inside[0]), lo + int(inside[-1]) + 1
    kept = ordered[lo:hi]
    if kept.size == 0:
        return np.nan
    median, mean, std = sorted_median(kept), float(np.mean(kept)), float(np.std(kept))
    return median if abs(mean - median) >= 0.3 * std else 2.5 * median - 1.5 * mean
