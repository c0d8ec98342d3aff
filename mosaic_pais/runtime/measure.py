"""Per-source measurements as reductions over the global (ids, fractions) maps.

Nothing here builds a dense per-source image: each block reduces its pixels to sums indexed by
the global ids present in it (one compiled loop over the pixels), and the partial sums of all
blocks are added (:func:`combine`). Radial profiles are kept as histograms (0.5 px bins about
the detected centre); everything else is one sum per source, so the sums of a mosaic's tens of
thousands of sources stay small. Two passes: the first gives each source's profile and so its
footprint radius (:func:`footprint_bins`); the second (:func:`claim_footprints`, then
:func:`measure_region` again) drops every claim beyond its source's footprint and sums what is
left — r50 and r90 from its profile, the second moments from its sums. :func:`measure_image`
runs both passes on one image in memory.

Columns and how they are measured:

``flux``
    Total deblended flux in the detection band: ``flux_aper`` times ``aperture_correction``,
    the share of the light that the footprint misses under the PSF, for the source's size
    (:mod:`mosaic_pais.runtime.total_flux`; 1 when the run has no PSF).
``flux_<BAND>``
    Each band's total flux, the detection band's ``flux`` times the source's colour, as
    multi-band survey catalogues scale aperture colours to a total. The colour comes from
    *matched sums*: each band's deblended light (its own fractions) weighted pixel by pixel
    by the source's model surface brightness (the PSF ⊗ exponential disk whose size matches
    its r50, flat inside the PSF's half-light radius), over the same weighted sum of that
    model seen through the band's own PSF. Weighting by the profile gives the colour with
    the least background noise and keeps a neighbour's light in the source's outskirts out
    of it; the footprint sums a band's noise over every pixel equally, where a red source
    has little blue light. Without a PSF, or with one band, each band's flux is its
    footprint sum.
``flux_aper``
    Deblended flux inside the source's footprint: the sum, over the pixels the source claims,
    of its fraction times the image. PAIS gives every pixel to some source, background
    included; summing a faint source's whole share of the sky would add the noise of hundreds
    of pixels to it. So a source claims only the pixels within its *footprint radius*
    (``kron_radius``): 2.5 first-moment radii of its deblended profile (at least 3.5 px),
    the moment taken inside 2.5 times its 1σ isophotal radius (:func:`footprint_bins`).
    Pixels beyond every claimant's footprint stay unclaimed (id −1), and the fluxes add up to
    the image summed over the claimed shares of pixels (flux conservation).
``flux_err``, ``flux_err_<BAND>``
    The pixel noise through the fractions (from the weight maps, or from the run's measured
    noise and its texture) and the error that sharing a pixel's light adds
    (:func:`flux_errors`); for a band scaled by its colour, the same terms of its matched
    sums and the detection band's relative error, in quadrature.
``x``, ``y``
    The network's sub-pixel centre (the centre map is trained on the simulated sources'
    positions: centroids of parametric galaxies and stars, stamp centres of real galaxies).
``xcentroid``, ``ycentroid``
    The barycentre of the same light the shapes are measured on (below): the source's positive
    deblended light within its isophotal radius, as SExtractor's X_IMAGE, Y_IMAGE.
``r50``, ``r90``
    Radii enclosing 50% and 90% of ``flux_aper``.
``a``, ``b``, ``theta``
    Second-moment ellipse (px, px, degrees in (−90°, 90°] counter-clockwise from +x) of the
    source's positive deblended light within its isophotal radius (where its mean surface brightness
    in 1 px rings first drops below the noise, :func:`isophotal_radius`), about that light's
    own centroid. Taken over its whole footprint, the noise of hundreds of sky pixels made a
    faint source look larger and rounder than it is (a Gaussian of σ = 2.5 px at S/N ~ 40
    came out as 3.6 px); within the isophote a noisy source measures as its noiseless self
    would, and like SExtractor's isophotal shapes, faint sources look smaller than their
    full profile.
``npix``
    Pixels where the source holds a fraction > 0.
``blend_fraction``
    Share of the source's deblended flux in pixels that other sources also hold.
``flags``
    1 its footprint touches the mosaic edge, 2 its footprint touches masked/NaN pixels,
    4 deblend uncertain (over half the flux in shared pixels and a centre-map peak below 0.5),
    8 no shape: the light inside the isophote is too small to give one (minor axis below
    ``MIN_SHAPE_AXIS``; ``a``, ``b`` and ``theta`` are NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit
from scipy import ndimage

from mosaic_pais.runtime.total_flux import GrowthCurves

__all__ = [
    "BIN",
    "N_BINS",
    "SUM_KEYS",
    "PROFILE_KEYS",
    "radial_bin",
    "measure_region",
    "combine",
    "ISOPHOTE_SIGMA",
    "MIN_FOOTPRINT",
    "MOMENT_LIMIT",
    "isophotal_radius",
    "shape_bins",
    "footprint_bins",
    "claim_footprints",
    "measure_image",
    "finalize",
    "flux_errors",
    "band_corrections",
    "BAND_KEYS",
    "FRACTION_ERROR",
    "RELATIVE_FLUX_ERROR",
    "NOISE_ERROR_SCALE",
    "invalid_neighbourhood",
    "MATCHED_POWER",
    "footprint_r50",
    "matched_weights",
    "FLAG_EDGE",
    "FLAG_MASKED",
    "FLAG_UNCERTAIN",
    "FLAG_NO_SHAPE",
    "MIN_SHAPE_AXIS",
]

BIN = 0.5        # radial histogram bin width (px)
N_BINS = 160     # up to 80 px; the last bin also holds everything farther
FLAG_EDGE, FLAG_MASKED, FLAG_UNCERTAIN, FLAG_NO_SHAPE = 1, 2, 4, 8
#: px: the smallest minor axis a shape is given with; below it the light inside the isophote
#: is one or two pixels (a pixel's own second moment is 0.29 px) and the ellipse and its angle
#: are noise
MIN_SHAPE_AXIS = 0.3


SUM_KEYS = ("flux", "var", "sharing", "npix", "shared_flux", "hist", "count", "edge", "masked",
            "sum_w", "sum_y", "sum_x", "sum_yy", "sum_xx", "sum_xy",
            "matched", "matched_var", "matched_sharing")
#: sums kept per band and source; the ``matched`` ones weight each pixel by the source's
#: model profile (:func:`matched_weights`)
BAND_KEYS = ("flux", "var", "sharing", "matched", "matched_var", "matched_sharing")
#: error of a shared pixel's fraction, per unit of ``f · f_others`` (the source's fraction times
#: the other sources' of the pixel), when the model card gives none
#: (``fraction_error``): the part of ``flux_err`` that sharing light adds
FRACTION_ERROR = 0.1
#: the error of the estimator itself relative to the flux (light outside the footprint, the
#: fractions' own error), when the model card gives none (``relative_flux_error``)
RELATIVE_FLUX_ERROR = 0.0
#: how much larger the scatter of faint sources' fluxes is than their pixel noise says (the
#: centre's and the footprint's own noise), when the model card gives none
#: (``noise_error_scale``)
NOISE_ERROR_SCALE = 1.0
#: the radial profiles, the only sums kept per bin (sources × N_BINS), and all the first pass
#: needs; the other sums are one number per source ((band, source) for flux and var)
PROFILE_KEYS = ("hist", "count")


def _zero_sums(keys, n_sources: int, n_band: int) -> dict:
    """Zeroed sums of ``keys`` over ``n_sources`` sources, each in its shape."""
    return {key: np.zeros((n_band, n_sources) if key in BAND_KEYS else
                          (n_sources, N_BINS) if key in PROFILE_KEYS else n_sources)
            for key in keys}


@njit(cache=True, nogil=True, inline="always")
def radial_bin(dy: float, dx: float) -> int:
    """Index of the 0.5 px radial bin of a pixel at (dy, dx) from its source's centre.

    The one definition shared by the profiles (:func:`measure_region`, which folds everything
    beyond the last bin into it) and the footprint test (:func:`claim_footprints`), so that a
    source's claimed flux is exactly its profile summed over its footprint.
    """
    return int(math.sqrt(dy * dy + dx * dx) / BIN)


@njit(cache=True, nogil=True)
def _present_ids(ids, n_sources):
    """The sorted ids present in a block and each id's row in the block's sums (-1 absent)."""
    row = np.full(n_sources, -1, np.int64)
    for src in ids.ravel():
        if src >= 0:
            row[src] = 0
    present = np.flatnonzero(row >= 0)
    row[present] = np.arange(len(present))
    return present, row


@njit(cache=True, nogil=True)
def _held_by_others(ids, frac, b, s, i, j):
    """The fraction of pixel (i, j) in band b that sources other than slot s's hold: a share
    dropped beyond every footprint (id −1), or a second slot of the same source, is shared
    with no one."""
    others = 0.0
    for t in range(ids.shape[0]):
        if t != s and ids[t, i, j] >= 0 and ids[t, i, j] != ids[s, i, j]:
            others += np.float64(frac[b, t, i, j])
    return others


@njit(cache=True, nogil=True)
def _sum_core(img, ids, frac, peak_y, peak_x, oy, ox, row, mosaic_h, mosaic_w,  # noqa: C901
              weights, invalid_near, shape_bins, matched_size, matched_table, profiles_only,
              out):
    """Every pixel's slots added into the block's sums ``out`` (see :data:`SUM_KEYS`); the
    moments only over each source's first ``shape_bins`` radial bins (none given: all); the
    matched sums with each pixel weighted by ``matched_table`` (sizes × bins) at the
    source's fractional size ``matched_size`` (none given: not summed).

    One compiled pass over the pixels with every sum in it: split into functions, numba would
    read each pixel's slots once per function."""
    (flux, var, sharing, npix, shared_flux, hist, count, edge, masked, sum_w, sum_y, sum_x,
     sum_yy, sum_xx, sum_xy, matched, matched_var, matched_sharing) = out
    n_band, n_slots, h, w = frac.shape
    has_weights = weights.shape[0] > 0
    has_matched = matched_table.shape[0] > 0
    n_sizes = matched_table.shape[0]
    has_near = invalid_near.shape[0] > 0
    has_shape_bins = shape_bins.shape[0] > 0
    first = np.zeros(n_slots, np.bool_)
    for i in range(h):
        gy = i + oy
        for j in range(w):
            gx = j + ox
            if not profiles_only:
                # distinct sources holding a fraction > 0 of the pixel (detection band)
                n_first = 0
                for s in range(n_slots):
                    first[s] = ids[s, i, j] >= 0 and frac[0, s, i, j] > 0
                    for t in range(s):
                        if first[s] and ids[t, i, j] == ids[s, i, j] and frac[0, t, i, j] > 0:
                            first[s] = False
                    n_first += first[s]
                shared = n_first >= 2
                on_edge = gy == 0 or gx == 0 or gy == mosaic_h - 1 or gx == mosaic_w - 1
                near = has_near and invalid_near[i, j]
            for s in range(n_slots):
                src = ids[s, i, j]
                if src < 0:
                    continue
                r = row[src]
                dy = gy - peak_y[src]
                dx = gx - peak_x[src]
                rbin = min(radial_bin(dy, dx), N_BINS - 1)
                value = img[0, i, j]
                f0 = np.float64(frac[0, s, i, j])
                det = f0 * (value if np.isfinite(value) else 0.0)
                hist[r, rbin] += det
                count[r, rbin] += f0
                if profiles_only:
                    continue
                pixel_weight = 0.0
                if has_matched:
                    lo = min(int(matched_size[src]), n_sizes - 2)
                    t = matched_size[src] - lo
                    pixel_weight = ((1.0 - t) * matched_table[lo, rbin]
                                    + t * matched_table[lo + 1, rbin])
                for b in range(n_band):
                    value = img[b, i, j]
                    fb = np.float64(frac[b, s, i, j])
                    finite = value if np.isfinite(value) else 0.0
                    flux[b, r] += fb * finite
                    # without weights, in units of the noise variance (finalize scales it)
                    pixel_var = 1.0
                    if has_weights:
                        pixel_var = (1.0 / np.float64(weights[b, i, j]) if weights[b, i, j] > 0
                                     else 0.0)
                    var[b, r] += fb * fb * pixel_var
                    share = fb * _held_by_others(ids, frac, b, s, i, j) * max(finite, 0.0)
                    sharing[b, r] += share
                    if has_matched:
                        matched[b, r] += pixel_weight * fb * finite
                        matched_var[b, r] += pixel_weight * pixel_weight * fb * fb * pixel_var
                        matched_sharing[b, r] += pixel_weight * share
                if first[s]:
                    npix[r] += 1.0
                    # pixels where the source meets the mosaic edge or masked pixels
                    if on_edge:
                        edge[r] += 1.0
                    if near:
                        masked[r] += 1.0
                if shared:
                    shared_flux[r] += det
                if not has_shape_bins or rbin < shape_bins[src]:
                    pos = max(det, 0.0)  # moments of the positive part (noise can be < 0)
                    sum_w[r] += pos
                    sum_y[r] += pos * dy
                    sum_x[r] += pos * dx
                    sum_yy[r] += pos * dy * dy
                    sum_xx[r] += pos * dx * dx
                    sum_xy[r] += pos * dx * dy


def _floating(array) -> np.ndarray:
    """A C-contiguous float32 or float64 array (the kernels are compiled for both)."""
    array = np.asarray(array)
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(array, dtype)


def measure_region(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray,
                   peak_y: np.ndarray, peak_x: np.ndarray, origin: tuple[int, int],
                   mosaic_shape: tuple[int, int], weights: np.ndarray | None = None,
                   invalid_near: np.ndarray | None = None,
                   shape_bins: np.ndarray | None = None,
                   matched: tuple[np.ndarray, np.ndarray] | None = None,
                   profiles_only: bool = False) -> dict:
    """Partial sums of one block.

    Parameters
    ----------
    image : (b, h, w) float
    ids : (n, h, w) int64, global ids (-1 none)
    fractions : (b, n, h, w)
    peak_y, peak_x : global arrays of source centres, indexed by id
    origin : mosaic position of pixel (0, 0) of the block
    weights : (b, h, w) inverse-variance weights, optional
    invalid_near : (h, w) bool, pixels next to (or being) masked/NaN pixels
    shape_bins : (n_sources,) int, optional
        Per global id, the radial bins the shapes' moments take (:func:`isophotal_radius`);
        all of the claimed pixels by default.
    matched : (sizes, table), optional
        The weights of the matched sums (:func:`matched_weights`); without, they stay 0.
    profiles_only : bool
        Only the radial profiles (``hist`` and ``count``), all that the first pass needs for
        the footprints (:func:`footprint_bins`).

    Returns
    -------
    dict of arrays indexed by position in ``dict["id"]`` (the ids present in the block).
    """
    n_band = image.shape[0]
    peak_y = np.ascontiguousarray(peak_y, np.float64)
    peak_x = np.ascontiguousarray(peak_x, np.float64)
    ids = np.ascontiguousarray(ids, np.int64)
    present, row = _present_ids(ids, len(peak_y))
    k = len(present)
    if k == 0:
        return {"id": present}
    sums = _zero_sums(SUM_KEYS, k, n_band)
    _sum_core(_floating(image), ids, _floating(fractions), peak_y, peak_x,
              float(origin[0]), float(origin[1]), row, int(mosaic_shape[0]),
              int(mosaic_shape[1]),
              np.zeros((0, 0, 0), np.float32) if weights is None else _floating(weights),
              np.zeros((0, 0), bool) if invalid_near is None
              else np.ascontiguousarray(invalid_near, bool),
              np.zeros(0, np.int64) if shape_bins is None
              else np.ascontiguousarray(shape_bins, np.int64),
              *(_no_matched() if matched is None else
                (np.ascontiguousarray(matched[0], np.float64),
                 np.ascontiguousarray(matched[1], np.float64))),
              profiles_only, tuple(sums.values()))
    keys = PROFILE_KEYS if profiles_only else SUM_KEYS
    return {"id": present, **{key: sums[key] for key in keys}}


def _no_matched() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0), np.zeros((0, N_BINS))


def combine(parts: list[dict], n_sources: int, n_band: int) -> dict:
    """Add the blocks' partial sums into arrays over all ``n_sources`` global ids (the keys
    the parts have: all of them, or the profiles of a first pass)."""
    keys = next((set(p) for p in parts if len(p["id"])), set(SUM_KEYS))
    total = _zero_sums([key for key in SUM_KEYS if key in keys], n_sources, n_band)
    for part in parts:
        ids = part["id"]  # unique within a part, so plain indexed addition is exact
        if len(ids) == 0:
            continue
        for key, value in total.items():
            if key in BAND_KEYS:  # (band, source)
                value[:, ids] += part[key]
            else:
                value[ids] += part[key]
    return total


def _radius_enclosing(cum: np.ndarray, target: np.ndarray) -> np.ndarray:
    """First radius where the cumulative profile (sources × bins) reaches ``target``."""
    edges = (np.arange(cum.shape[1]) + 1) * BIN
    reached = cum >= target[:, None]
    idx = np.where(reached.any(1), reached.argmax(1), cum.shape[1] - 1)
    prev = np.where(idx > 0, cum[np.arange(len(idx)), np.maximum(idx - 1, 0)], 0.0)
    cur = cum[np.arange(len(idx)), idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((target - prev) / (cur - prev), 0.0, 1.0)
    frac = np.where(np.isfinite(frac), frac, 1.0)
    return edges[idx] - BIN + frac * BIN


ISOPHOTE_SIGMA = 1.0   # the isophote bounding where a footprint's first moment is taken
MIN_FOOTPRINT = 3.5    # px, like SExtractor's minimum Kron radius
MOMENT_LIMIT = 2.5     # the first moment is taken inside this many isophotal radii
#: the matched sums weight a pixel by its source's model surface brightness to this power:
#: 1 is the weight that gives a known profile's flux with the least background noise, and
#: keeps a neighbour's light in the source's outskirts out of its colours
MATCHED_POWER = 1.0


def isophotal_radius(total: dict, noise_sigma: float) -> np.ndarray:
    """Each source's isophotal radius (px): the outer edge of the last 1 px ring, counted
    from the centre, whose mean deblended surface brightness is at least ``ISOPHOTE_SIGMA``
    times the pixel noise (the central ring always counts), from the first pass's profiles.

    >>> hist = np.zeros((1, N_BINS)); count = np.zeros((1, N_BINS))
    >>> count[0, :8] = 2 * np.pi * (np.arange(8) + 0.5) * BIN * BIN
    >>> hist[0, :8] = 10.0 * count[0, :8]
    >>> isophotal_radius({"hist": hist, "count": count}, noise_sigma=1.0).tolist()
    [4.0]
    """
    hist, count = total["hist"], total["count"]
    k = len(hist)
    rings_flux = hist[:, : N_BINS // 2 * 2].reshape(k, N_BINS // 2, 2).sum(-1)
    rings_area = count[:, : N_BINS // 2 * 2].reshape(k, N_BINS // 2, 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sb = rings_flux / rings_area
    below = ~(mean_sb >= ISOPHOTE_SIGMA * float(noise_sigma))  # NaN (no pixels) counts as below
    below[:, 0] = False  # the central ring always belongs to the source
    first_below = np.where(below.any(1), below.argmax(1), below.shape[1])
    return first_below * 2 * BIN


def shape_bins(total: dict, noise_sigma: float) -> np.ndarray:
    """The radial bins inside each source's isophotal radius: those its shape is measured on."""
    return np.round(isophotal_radius(total, noise_sigma) / BIN).astype(np.int64)


def footprint_bins(total: dict, noise_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Each source's footprint radius (px) and the number of radial bins it spans.

    From the first pass's profiles: the isophotal radius is where the mean deblended surface
    brightness in 1 px rings first drops below ``ISOPHOTE_SIGMA`` times the pixel noise; the
    first-moment radius r1 of the positive profile is taken inside 2.5 isophotal radii (at
    least 6 px), so that the noise of a faint source's large share of the sky cannot inflate
    it; the footprint radius is 2.5·r1, at least ``MIN_FOOTPRINT``, as SExtractor's Kron
    aperture.

    Examples
    --------
    A source whose profile is 10σ per pixel out to 4 px and nothing beyond:

    >>> hist = np.zeros((1, N_BINS)); count = np.zeros((1, N_BINS))
    >>> count[0, :8] = 2 * np.pi * (np.arange(8) + 0.5) * BIN * BIN
    >>> hist[0, :8] = 10.0 * count[0, :8]
    >>> radius, n_bins = footprint_bins({"hist": hist, "count": count}, noise_sigma=1.0)
    >>> round(float(radius[0]), 2), int(n_bins[0])
    (6.64, 14)
    """
    hist = total["hist"]
    r_iso = isophotal_radius(total, noise_sigma)
    limit = np.clip(MOMENT_LIMIT * r_iso, 6.0, N_BINS * BIN)
    centres = (np.arange(N_BINS) + 0.5) * BIN
    positive = np.clip(hist, 0.0, None) * (centres[None, :] < limit[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        r1 = (positive * centres[None, :]).sum(1) / positive.sum(1)
    radius = np.clip(np.where(np.isfinite(r1), 2.5 * r1, MIN_FOOTPRINT), MIN_FOOTPRINT, limit)
    return radius, np.ceil(radius / BIN).astype(np.int64)


def footprint_r50(total: dict, n_bins: np.ndarray) -> np.ndarray:
    """Each source's r50 inside its footprint (the first ``n_bins`` radial bins), from the
    first pass's profiles: the ``r50`` the second pass will measure, known before it."""
    hist = np.asarray(total["hist"], np.float64) * (np.arange(N_BINS)[None, :]
                                                    < np.asarray(n_bins)[:, None])
    r50 = _radius_enclosing(np.cumsum(hist, axis=1), 0.5 * hist.sum(1))
    return np.where(hist.sum(1) > 0, r50, np.nan)


def _detection_curves(growth) -> GrowthCurves:
    return growth if isinstance(growth, GrowthCurves) else growth[0]


def matched_weights(growth: GrowthCurves | Sequence[GrowthCurves] | None, total: dict,
                    footprint_radius: np.ndarray, n_bands: int
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """The pixel weights of the matched sums, from the first pass's profiles: each source's
    size in the detection band's model family (:meth:`GrowthCurves.sizes`) and the family's
    surface brightness per radial bin, to the power ``MATCHED_POWER``. None for a single
    band or without a PSF (the bands' fluxes are then their footprint sums)."""
    if growth is None or n_bands < 2:
        return None
    first = _detection_curves(growth)
    n_bins = np.ceil(np.asarray(footprint_radius, np.float64) / BIN).astype(np.int64)
    sizes = first.sizes(footprint_r50(total, n_bins), footprint_radius)
    return sizes, first.matched_weights(N_BINS, MATCHED_POWER)


@njit(cache=True, nogil=True)
def _claim_core(ids, fractions, peak_y, peak_x, oy, ox, n_bins, reshare):
    n_slots, h, w = ids.shape
    n_bands = fractions.shape[0]
    for i in range(h):
        for j in range(w):
            dropped = False
            for s in range(n_slots):
                src = ids[s, i, j]
                if src >= 0 and radial_bin(i + oy - peak_y[src],
                                           j + ox - peak_x[src]) >= n_bins[src]:
                    ids[s, i, j] = -1
                    dropped = True
            if not dropped:
                continue
            for b in range(n_bands):
                given = 0.0
                kept = 0.0
                for s in range(n_slots):
                    given += fractions[b, s, i, j]
                    if ids[s, i, j] >= 0:
                        kept += fractions[b, s, i, j]
                scale = given / kept if reshare and kept > 0 else 1.0
                for s in range(n_slots):
                    if ids[s, i, j] < 0:
                        fractions[b, s, i, j] = 0.0
                    else:
                        fractions[b, s, i, j] *= scale


def claim_footprints(ids: np.ndarray, fractions: np.ndarray, peak_y: np.ndarray,
                     peak_x: np.ndarray, origin: tuple[int, int], n_bins: np.ndarray,
                     reshare: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Drop every claim of a pixel that lies beyond its source's footprint.

    ``ids (n, h, w)`` and ``fractions (b, n, h, w)`` of a block at ``origin``; ``n_bins`` per
    global id from :func:`footprint_bins`. Dropped slots get id −1 and fraction 0. The other
    slots keep their fractions, so a pixel's dropped share is in no source; with ``reshare``
    they share it in proportion to their own, so that a pixel some source still claims is
    given out whole. The test is the radial-bin index of the histograms (:func:`radial_bin`).

    Examples
    --------
    >>> ids = np.array([0, 1]).reshape(2, 1, 1)
    >>> fractions = np.array([0.6, 0.4]).reshape(1, 2, 1, 1)
    >>> peak_y, peak_x = np.array([0.0, 9.0]), np.array([0.0, 0.0])
    >>> n_bins = np.array([20, 4])  # the second source's footprint ends 2 px from its centre
    >>> claim_footprints(ids, fractions, peak_y, peak_x, (0, 0), n_bins)[1].ravel().tolist()
    [0.6, 0.0]
    >>> claim_footprints(ids, fractions, peak_y, peak_x, (0, 0), n_bins,
    ...                  reshare=True)[1].ravel().tolist()
    [1.0, 0.0]
    """
    ids = np.array(ids, dtype=np.int64, copy=True, order="C")
    fractions = _floating(fractions).copy()
    _claim_core(ids, fractions, np.ascontiguousarray(peak_y, np.float64),
                np.ascontiguousarray(peak_x, np.float64), float(origin[0]), float(origin[1]),
                np.ascontiguousarray(n_bins, np.int64), bool(reshare))
    return ids, fractions


def measure_image(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray, peaks: dict,
                  bands: list[str], noise_sigma, weights: np.ndarray | None = None,
                  invalid_near: np.ndarray | None = None, noise_texture=None,
                  fraction_error=FRACTION_ERROR,
                  relative_error=RELATIVE_FLUX_ERROR,
                  noise_scale=NOISE_ERROR_SCALE,
                  growth: GrowthCurves | Sequence[GrowthCurves] | None = None,
                  matched: bool = True, reshare: bool = False
                  ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Both measuring passes on one in-memory image (a single tile, or a test's reference).

    ``noise_sigma`` is the detection band's (a number) or every band's; the footprints follow
    the detection band's. ``matched=False`` keeps every band's footprint sums (the
    comparison the matched sums are judged by). ``reshare`` gives a claim dropped beyond its
    source's footprint to the pixel's other claimants (:func:`claim_footprints`).

    Returns the catalogue columns and the footprint-limited ``ids`` and ``fractions``.
    """
    sigma = np.asarray(noise_sigma, np.float64).reshape(-1)
    noise_sigma = float(sigma[0])
    n = len(peaks["id"])
    args = (peaks["y"], peaks["x"], (0, 0), image.shape[1:])
    first = combine([measure_region(image, ids, fractions, *args, profiles_only=True)], n,
                    image.shape[0])
    radius, n_bins = footprint_bins(first, noise_sigma)
    ids, fractions = claim_footprints(ids, fractions, peaks["y"], peaks["x"], (0, 0), n_bins,
                                      reshare)
    part = measure_region(image, ids, fractions, *args, weights=weights,
                          invalid_near=invalid_near, shape_bins=shape_bins(first, noise_sigma),
                          matched=matched_weights(growth, first, radius, image.shape[0])
                          if matched else None)
    columns = finalize(combine([part], n, image.shape[0]), peaks, bands, weights is not None,
                       radius, noise_sigma=sigma, noise_texture=noise_texture,
                       fraction_error=fraction_error, relative_error=relative_error,
                       noise_scale=noise_scale, growth=growth)
    return columns, ids, fractions


def finalize(total: dict, peaks: dict, bands: list[str], has_weights: bool,
             footprint_radius: np.ndarray, noise_sigma=None, noise_texture=None,
             fraction_error=FRACTION_ERROR,
             relative_error=RELATIVE_FLUX_ERROR,
             noise_scale=NOISE_ERROR_SCALE,
             growth: GrowthCurves | Sequence[GrowthCurves] | None = None) -> dict:
    """Catalogue columns (a dict of arrays) from the second pass's combined sums.

    With ``growth`` (the PSF's curves, :class:`~mosaic_pais.runtime.total_flux.GrowthCurves`),
    ``flux`` is the footprint sum times the source's ``aperture_correction`` (the footprint sum
    itself is ``flux_aper``); without, the correction is 1. ``growth`` is one PSF's curves for
    every band, or one per band (the first the detection band's); each band's fluxes get the
    factor of its own PSF (:func:`band_corrections`).

    ``noise_sigma`` (per band) and ``noise_texture`` (:func:`mosaic_pais.runtime.infer.
    estimate_noise`) give ``flux_err`` where there are no weights; see :func:`flux_errors`.
    """
    hist = total["hist"]
    cum = np.cumsum(hist, axis=1)
    flux = total["flux"]
    r50 = _radius_enclosing(cum, 0.5 * flux[0])
    r90 = _radius_enclosing(cum, 0.9 * flux[0])
    bad = flux[0] <= 0
    r50[bad] = np.nan
    r90[bad] = np.nan
    weight = np.where(total["sum_w"] > 0, total["sum_w"], np.nan)  # the light the moments sum
    with np.errstate(invalid="ignore", divide="ignore"):
        # central moments: about the light's own mean, not the detected centre
        my, mx = total["sum_y"] / weight, total["sum_x"] / weight
        myy = total["sum_yy"] / weight - my * my
        mxx = total["sum_xx"] / weight - mx * mx
        mxy = total["sum_xy"] / weight - mx * my
        half_trace = 0.5 * (mxx + myy)
        root = np.sqrt((0.5 * (mxx - myy)) ** 2 + mxy ** 2)
        # positive weights: the matrix is positive semi-definite but for round-off
        a = np.sqrt(np.clip(half_trace + root, 0.0, None))
        b = np.sqrt(np.clip(half_trace - root, 0.0, None))
        # y grows along rows, so the angle from +x towards +y is counter-clockwise on a display
        # with the origin at the lower left (as astronomical images are shown)
        theta = np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy))
        theta = np.where(theta <= -90.0, theta + 180.0, theta)  # one range: (-90, 90]
    no_shape = ~(b >= MIN_SHAPE_AXIS)
    a, b, theta = (np.where(no_shape, np.nan, v) for v in (a, b, theta))

    with np.errstate(invalid="ignore", divide="ignore"):
        blend = np.where(flux[0] != 0, total["shared_flux"] / flux[0], 0.0)
    flags = np.zeros(len(hist), np.int32)
    flags |= np.where(total["edge"] > 0, FLAG_EDGE, 0).astype(np.int32)
    flags |= np.where(total["masked"] > 0, FLAG_MASKED, 0).astype(np.int32)
    flags |= np.where((blend > 0.5) & (peaks["score"] < 0.5), FLAG_UNCERTAIN, 0).astype(np.int32)
    flags |= np.where(no_shape, FLAG_NO_SHAPE, 0).astype(np.int32)

    # each source's size in the detection band's model family, chosen once for every band
    sizes = None if growth is None else _detection_curves(growth).sizes(r50, footprint_radius)
    corrections = band_corrections(growth, r50, footprint_radius, len(bands), sizes=sizes)
    error_terms = (has_weights, noise_sigma, noise_texture, fraction_error, relative_error,
                   noise_scale)
    fluxes = flux * corrections
    errors = flux_errors(total, *error_terms) * corrections
    if growth is not None and len(bands) > 1 and "matched" in total:
        fluxes, errors = _matched_bands(total, growth, sizes, footprint_radius, fluxes, errors,
                                        error_terms)
    # a detection that holds no pixel (its neighbours' votes took them all) measured nothing:
    # its flux is 0 with no error to give, not 0 ± 0
    errors[:, total["npix"] == 0] = np.nan
    columns = {
        "id": peaks["id"].astype(np.int64),
        "x": peaks["x"].astype(np.float64),
        "y": peaks["y"].astype(np.float64),
        "flux": fluxes[0],
        "flux_err": errors[0],
    }
    for i, band in enumerate(bands):
        columns[f"flux_{band}"] = fluxes[i]
        columns[f"flux_err_{band}"] = errors[i]
    columns.update({
        "flux_aper": flux[0], "aperture_correction": corrections[0],
        "r50": r50, "r90": r90, "kron_radius": np.asarray(footprint_radius, np.float64),
        # the isophotal barycentre, as SExtractor's X_IMAGE (x, y are the network's centre)
        "xcentroid": peaks["x"] + mx, "ycentroid": peaks["y"] + my,
        "a": a, "b": b, "theta": theta,
        "npix": total["npix"].astype(np.int64), "blend_fraction": blend,
        "score": peaks["score"].astype(np.float32), "flags": flags,
    })
    return columns


def _matched_bands(total: dict, growth, sizes: np.ndarray, footprint_radius: np.ndarray,
                   fluxes: np.ndarray, errors: np.ndarray, error_terms: tuple
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every band's total flux as the detection band's times the source's colour in the
    matched sums: each band's weighted sum over its own model's (:meth:`GrowthCurves.
    matched_norm`), so that a band of another PSF gets the same colour as the light of the
    model would. The detection band keeps its own; a source whose detection band's total or
    matched sum is not positive keeps its footprint sums. Errors: the band's weighted noise and
    sharing through the same factor, and the detection band's relative error (the total
    every band is scaled to) in quadrature."""
    first = _detection_curves(growth)
    curves = [first] * len(fluxes) if isinstance(growth, GrowthCurves) else list(growth)
    n_bins = np.ceil(np.asarray(footprint_radius, np.float64) / BIN).astype(np.int64)
    table = first.matched_weights(N_BINS, MATCHED_POWER)
    norms = np.stack([first.matched_norm(sizes, n_bins, table,
                                         in_band=None if band is first else band)
                      for band in curves])
    matched = np.asarray(total["matched"], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = fluxes[0] * norms[0] / (matched[0] * norms)  # weighted sum → total flux
        relative = errors[0] / np.abs(fluxes[0])
    # a colour needs light in the detection band: without it, a band keeps its own sum
    usable = (matched[0] > 0) & (fluxes[0] > 0) & (norms > 0) & np.isfinite(scale)
    usable[0] = False  # the detection band's total is its own footprint's
    scale = np.where(usable, scale, 0.0)
    weighted = {"var": total["matched_var"] * scale ** 2,
                "sharing": total["matched_sharing"] * np.abs(scale), "flux": scale * matched}
    with np.errstate(invalid="ignore"):
        matched_errors = np.hypot(flux_errors(weighted, *error_terms),
                                  weighted["flux"] * relative)
    return (np.where(usable, weighted["flux"], fluxes),
            np.where(usable, matched_errors, errors))


def band_corrections(growth: GrowthCurves | Sequence[GrowthCurves] | None, r50: np.ndarray,
                     footprint_radius: np.ndarray, n_bands: int,
                     sizes: np.ndarray | None = None) -> np.ndarray:
    """``(band, source)``: each band's factor from footprint sum to total flux.

    ``growth`` is None (factors 1), one PSF's curves for all bands, or one per band. Sizes are
    chosen in the detection band, where ``r50`` is measured (``sizes``, when the caller has
    them: :meth:`GrowthCurves.sizes`); another band's factor is that of the same model seen
    through its own PSF (:meth:`GrowthCurves.correction`).

    >>> band_corrections(None, np.array([1.0, 2.0]), np.array([3.0, 3.0]), 2).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    if growth is None:
        return np.ones((n_bands, len(r50)))
    if isinstance(growth, GrowthCurves):
        return np.broadcast_to(growth.correction(r50, footprint_radius, sizes=sizes),
                               (n_bands, len(r50)))
    if len(growth) != n_bands:
        raise ValueError(f"{len(growth)} PSFs for {n_bands} bands")
    first = growth[0]
    sizes = first.sizes(r50, footprint_radius) if sizes is None else sizes
    return np.stack([first.correction(r50, footprint_radius, sizes=sizes,
                                      in_band=None if band is first else band)
                     for band in growth])


def _per_band(value, n_bands: int, unknown: float) -> np.ndarray:
    """``(n_bands, 1)`` values from one for every band or one per band; ``unknown`` where
    none is given or it is not finite."""
    if value is None:
        return np.full((n_bands, 1), unknown)
    values = np.broadcast_to(np.asarray(value, np.float64).reshape(-1), (n_bands,))
    return np.where(np.isfinite(values), values, unknown)[:, None]


def flux_errors(total: dict, has_weights: bool, noise_sigma=None,
                noise_texture=None, fraction_error=FRACTION_ERROR,
                relative_error=RELATIVE_FLUX_ERROR,
                noise_scale=NOISE_ERROR_SCALE) -> np.ndarray:
    """Each source's flux error per band, ``(band, source)``.

    Three parts, added in quadrature:

    * the pixel noise through the fractions, ``Σ f² σ²`` — σ² from the weight maps when given
      (inverse variances), else the run's measured noise per band — times ``texture²``: noise
      correlated over a few pixels (drizzled data) adds up faster than white noise over a
      source's footprint, by the texture's square (the noise of 4×4-pixel sums against white
      noise's; ``noise_texture`` one for every band, or each band's own: bands drizzled with
      other kernels or pixel fractions have other textures), and times ``noise_scale²`` (the
      card's ``noise_error_scale``): the noise also moves a faint source's centre and
      footprint, which the pixel sum does not see;
    * the sharing of light, ``fraction_error · Σ f f_others I``, where ``f_others`` is what the
      pixel's other sources hold (their fractions after the footprints; a share dropped beyond
      every footprint is no one's and is not counted): a pixel's fraction is only known to
      some precision where it is shared, and the errors of neighbouring pixels go together,
      so they add linearly. ``fraction_error`` is calibrated on validation tiles (the model
      card's ``fraction_error``; benchmarks/flux_errors.py);
    * the estimator's own error, ``relative_error · |flux|`` (light beyond the footprint, the
      fractions' error on isolated sources), also calibrated on validation tiles (the card's
      ``relative_flux_error``).

    Each constant is one for every band or one per band (a multi-band card calibrates each
    band's own). NaN where neither weights nor a noise sigma are given.

    Examples
    --------
    >>> total = {"var": np.array([[4.0]]), "sharing": np.array([[0.0]]),
    ...          "flux": np.array([[10.0]])}
    >>> flux_errors(total, False, noise_sigma=[0.5], noise_texture=1.0).tolist()
    [[1.0]]
    >>> flux_errors(total, False, noise_sigma=[0.5], noise_texture=2.0).tolist()
    [[2.0]]

    Each band with its own texture:

    >>> two = {key: np.repeat(value, 2, axis=0) for key, value in total.items()}
    >>> flux_errors(two, False, noise_sigma=[0.5, 0.5], noise_texture=[1.0, 2.0]).tolist()
    [[1.0], [2.0]]

    and its own constants, as a multi-band card gives them:

    >>> flux_errors(two, False, noise_sigma=[0.5, 0.5], noise_texture=1.0,
    ...             noise_scale=[1.0, 3.0]).tolist()
    [[1.0], [3.0]]
    """
    var = np.asarray(total["var"], np.float64)
    if not has_weights:
        if noise_sigma is None:
            return np.full(var.shape, np.nan)
        sigma = np.broadcast_to(np.asarray(noise_sigma, np.float64).reshape(-1), (len(var),))
        var = var * sigma[:, None] ** 2
    n = len(var)
    texture = _per_band(noise_texture, n, 1.0)  # 1: white noise
    scale = _per_band(noise_scale, n, NOISE_ERROR_SCALE)
    sharing = (_per_band(fraction_error, n, FRACTION_ERROR)
               * np.asarray(total["sharing"], np.float64))
    estimator = (_per_band(relative_error, n, RELATIVE_FLUX_ERROR)
                 * np.abs(np.asarray(total["flux"], np.float64)))
    return np.sqrt(var * (scale * texture) ** 2 + sharing ** 2 + estimator ** 2)


def invalid_neighbourhood(valid: np.ndarray) -> np.ndarray:
    """Pixels that are invalid or touch an invalid pixel (8-connected).

    >>> valid = np.ones((4, 5), bool)
    >>> int(invalid_neighbourhood(valid).sum()), int(invalid_neighbourhood(~valid).sum())
    (0, 20)
    >>> valid[0, 0] = False
    >>> invalid_neighbourhood(valid).astype(int)[:3, :3].tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    """
    valid = np.asarray(valid, bool)
    if valid.all():  # most blocks of a mosaic: no dilation needed
        return np.zeros(valid.shape, bool)
    return ndimage.binary_dilation(~valid, structure=np.ones((3, 3), bool))
