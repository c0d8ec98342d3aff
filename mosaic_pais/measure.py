"""Per-source measurements as reductions over the global (ids, fractions) maps.

Nothing here builds a dense per-source image: each block reduces its pixels to sums indexed by
the global ids present in it (``np.bincount``), and the partial sums of all blocks are added
(:func:`combine`). Radial profiles are kept as histograms (0.5 px bins about the detected
centre). Two passes: the first gives each source's profile and so its footprint radius
(:func:`footprint_bins`); the second (:func:`claim_footprints`, then :func:`measure_region`
again) drops every claim beyond its source's footprint and sums what is left — r50, r90 and the
second moments come from the same histograms. :func:`measure_image` runs both passes on one
image in memory.

Columns (DESIGN.md contract) and how they are measured:

``flux``, ``flux_<BAND>``
    Deblended flux inside the source's footprint: the sum, over the pixels the source claims,
    of its fraction times the image. PAIS gives every pixel to some source, background
    included; summing a faint source's whole share of the sky would add the noise of hundreds
    of pixels to it. So a source claims only the pixels within its *footprint radius*
    (``kron_radius``): 2.5 first-moment radii of its deblended profile (at least 3.5 px),
    the moment taken inside 2.5 times its 1σ isophotal radius (:func:`footprint_bins`).
    Pixels beyond every claimant's footprint stay unclaimed (id −1), and the fluxes add up to
    the image summed over the claimed shares of pixels (flux conservation).
``flux_err``
    From the weight map (inverse variance): sqrt(Σ fraction² / weight); NaN without weights.
``x``, ``y``
    The network's sub-pixel centre (the centre map is trained on flux-weighted centroids).
``r50``, ``r90``
    Radii enclosing 50% and 90% of ``flux``.
``a``, ``b``, ``theta``
    Second-moment ellipse (px, px, degrees counter-clockwise from +x) of the claimed pixels'
    positive deblended light, about that light's own centroid.
``npix``
    Pixels where the source holds a fraction > 0.
``blend_fraction``
    Share of the source's deblended flux in pixels that other sources also hold.
``flags``
    1 its footprint touches the mosaic edge, 2 its footprint touches masked/NaN pixels,
    4 deblend uncertain (over half the flux in shared pixels and a centre-map peak below 0.5).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BIN = 0.5        # radial histogram bin width (px)
N_BINS = 160     # up to 80 px; the last bin also holds everything farther
FLAG_EDGE, FLAG_MASKED, FLAG_UNCERTAIN = 1, 2, 4


def radial_bin(gy: np.ndarray, gx: np.ndarray, peak_y: np.ndarray, peak_x: np.ndarray,
               src: np.ndarray) -> np.ndarray:
    """Index of the 0.5 px radial bin of mosaic pixels (gy, gx) about their sources' centres.

    The one definition shared by the profiles (:func:`measure_region`, which folds everything
    beyond the last bin into it) and the footprint test (:func:`claim_footprints`), so that a
    source's claimed flux is exactly its profile summed over its footprint.
    """
    return (np.hypot(gy - peak_y[src], gx - peak_x[src]) / BIN).astype(np.int64)


def measure_region(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray,
                   peak_y: np.ndarray, peak_x: np.ndarray, origin: tuple[int, int],
                   mosaic_shape: tuple[int, int], weights: np.ndarray | None = None,
                   invalid_near: np.ndarray | None = None, profiles_only: bool = False) -> dict:
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
    profiles_only : bool
        Only the radial profiles (``hist`` and ``count``), all that the first pass needs for
        the footprints (:func:`footprint_bins`).

    Returns
    -------
    dict of arrays indexed by position in ``dict["id"]`` (the ids present in the block).
    """
    n_band, h, w = image.shape
    n_slots = ids.shape[0]
    present = np.unique(ids[ids >= 0])
    k = len(present)
    if k == 0:
        return {"id": present}
    img = np.nan_to_num(np.asarray(image, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    frac = np.asarray(fractions, np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    gy, gx = yy + origin[0], xx + origin[1]
    out = {"id": present, "hist": np.zeros((k, N_BINS)), "count": np.zeros((k, N_BINS))}
    if not profiles_only:
        on_edge = ((gy == 0) | (gx == 0) | (gy == mosaic_shape[0] - 1)
                   | (gx == mosaic_shape[1] - 1))
        touches_edge = bool(on_edge.any())
        near_invalid = invalid_near is not None and bool(invalid_near.any())
        # distinct sources holding a fraction > 0 of each pixel (detection band)
        held = (ids >= 0) & (frac[0] > 0)
        first = held.copy()
        for s in range(1, n_slots):
            for t in range(s):
                first[s] &= ~(held[t] & (ids[t] == ids[s]))
        shared = first.sum(0) >= 2
        out.update({"flux": np.zeros((n_band, k)), "var": np.zeros((n_band, k)),
                    "npix": np.zeros(k), "shared_flux": np.zeros(k),
                    "edge": np.zeros((k, N_BINS)), "masked": np.zeros((k, N_BINS)),
                    **{key: np.zeros((k, N_BINS)) for key in
                       ("hist_y", "hist_x", "hist_yy", "hist_xx", "hist_xy")}})
        inv_w = None
        if weights is not None:
            with np.errstate(divide="ignore"):
                inv_w = np.where(weights > 0, 1.0 / np.asarray(weights, np.float64), 0.0)
    for s in range(n_slots):
        sel = ids[s] >= 0
        if not sel.any():
            continue
        src = ids[s][sel]
        local = np.searchsorted(present, src)
        rbin = np.minimum(radial_bin(gy[sel], gx[sel], peak_y, peak_x, src), N_BINS - 1)
        flat = local * N_BINS + rbin
        det = frac[0, s][sel] * img[0][sel]
        profiles = [("hist", det), ("count", frac[0, s][sel])]
        if not profiles_only:
            for b in range(n_band):
                contrib = frac[b, s][sel] * img[b][sel]
                out["flux"][b] += np.bincount(local, weights=contrib, minlength=k)
                if inv_w is not None:
                    out["var"][b] += np.bincount(
                        local, weights=frac[b, s][sel] ** 2 * inv_w[b][sel], minlength=k)
            uniq = first[s][sel]
            out["npix"] += np.bincount(local, weights=uniq, minlength=k)
            out["shared_flux"] += np.bincount(local, weights=det * shared[sel], minlength=k)
            # where the source meets the mosaic edge or masked pixels (by radius, like the rest)
            if touches_edge:  # most blocks lie inside the mosaic: nothing to count
                profiles.append(("edge", uniq & on_edge[sel]))
            if near_invalid:
                profiles.append(("masked", uniq & invalid_near[sel]))
            dy = gy[sel] - peak_y[src]
            dx = gx[sel] - peak_x[src]
            pos = np.clip(det, 0.0, None)  # moments use the positive part (noise can be < 0)
            profiles += [("hist_y", pos * dy), ("hist_x", pos * dx), ("hist_yy", pos * dy * dy),
                         ("hist_xx", pos * dx * dx), ("hist_xy", pos * dx * dy)]
        for key, weight in profiles:
            out[key] += np.bincount(flat, weights=weight, minlength=k * N_BINS).reshape(
                k, N_BINS)
    return out


def combine(parts: list[dict], n_sources: int, n_band: int) -> dict:
    """Add the blocks' partial sums into arrays over all ``n_sources`` global ids (the keys
    the parts have: all of them, or the profiles of a first pass)."""
    total = {"flux": np.zeros((n_band, n_sources)), "var": np.zeros((n_band, n_sources)),
             "npix": np.zeros(n_sources), "shared_flux": np.zeros(n_sources)}
    for key in ("hist", "count", "hist_y", "hist_x", "hist_yy", "hist_xx", "hist_xy", "edge",
                "masked"):
        total[key] = np.zeros((n_sources, N_BINS))
    keys = next((set(p) for p in parts if len(p["id"])), None)
    if keys is not None:
        total = {key: value for key, value in total.items() if key in keys}
    for part in parts:
        ids = part["id"]
        if len(ids) == 0:
            continue
        for key, value in total.items():
            if key in ("flux", "var"):  # (band, source)
                np.add.at(value, (slice(None), ids), part[key])
            else:
                np.add.at(value, ids, part[key])
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
    hist, count = total["hist"], total["count"]
    k = len(hist)
    rings_flux = hist[:, : N_BINS // 2 * 2].reshape(k, N_BINS // 2, 2).sum(-1)
    rings_area = count[:, : N_BINS // 2 * 2].reshape(k, N_BINS // 2, 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sb = rings_flux / rings_area
    below = ~(mean_sb >= ISOPHOTE_SIGMA * float(noise_sigma))  # NaN (no pixels) counts as below
    below[:, 0] = False  # the central ring always belongs to the source
    first_below = np.where(below.any(1), below.argmax(1), below.shape[1])
    r_iso = first_below * 2 * BIN  # outer edge of the last ring above the isophote (px)
    limit = np.clip(MOMENT_LIMIT * r_iso, 6.0, N_BINS * BIN)
    centres = (np.arange(N_BINS) + 0.5) * BIN
    positive = np.clip(hist, 0.0, None) * (centres[None, :] < limit[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        r1 = (positive * centres[None, :]).sum(1) / positive.sum(1)
    radius = np.clip(np.where(np.isfinite(r1), 2.5 * r1, MIN_FOOTPRINT), MIN_FOOTPRINT, limit)
    return radius, np.ceil(radius / BIN).astype(np.int64)


def claim_footprints(ids: np.ndarray, fractions: np.ndarray, peak_y: np.ndarray,
                     peak_x: np.ndarray, origin: tuple[int, int], n_bins: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Drop every claim of a pixel that lies beyond its source's footprint.

    ``ids (n, h, w)`` and ``fractions (b, n, h, w)`` of a block at ``origin``; ``n_bins`` per
    global id from :func:`footprint_bins`. Dropped slots get id −1 and fraction 0; the other
    slots keep their fractions, so a pixel's unclaimed share is simply not in any source.
    The test is the radial-bin index of the histograms (:func:`radial_bin`).
    """
    ids = np.array(ids, copy=True)
    fractions = np.array(fractions, copy=True)
    h, w = ids.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    gy, gx = yy + origin[0], xx + origin[1]
    for s in range(ids.shape[0]):
        sel = ids[s] >= 0
        src = ids[s][sel]
        outside = np.zeros_like(sel)
        outside[sel] = radial_bin(gy[sel], gx[sel], peak_y, peak_x, src) >= n_bins[src]
        ids[s][outside] = -1
        fractions[:, s][:, outside] = 0.0
    return ids, fractions


def measure_image(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray, peaks: dict,
                  bands: list[str], noise_sigma: float, weights: np.ndarray | None = None,
                  invalid_near: np.ndarray | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Both measuring passes on one in-memory image (a single tile, or a test's reference).

    Returns the catalogue columns and the footprint-limited ``ids`` and ``fractions``.
    """
    n = len(peaks["id"])
    args = (peaks["y"], peaks["x"], (0, 0), image.shape[1:])
    first = combine([measure_region(image, ids, fractions, *args, profiles_only=True)], n,
                    image.shape[0])
    radius, n_bins = footprint_bins(first, noise_sigma)
    ids, fractions = claim_footprints(ids, fractions, peaks["y"], peaks["x"], (0, 0), n_bins)
    part = measure_region(image, ids, fractions, *args, weights=weights,
                          invalid_near=invalid_near)
    columns = finalize(combine([part], n, image.shape[0]), peaks, bands, weights is not None,
                       radius)
    return columns, ids, fractions


def finalize(total: dict, peaks: dict, bands: list[str], has_weights: bool,
             footprint_radius: np.ndarray) -> dict:
    """Catalogue columns (a dict of arrays) from the second pass's combined sums."""
    hist = total["hist"]
    positive = np.clip(hist, 0.0, None)
    cum = np.cumsum(hist, axis=1)
    flux = total["flux"]
    r50 = _radius_enclosing(cum, 0.5 * flux[0])
    r90 = _radius_enclosing(cum, 0.9 * flux[0])
    bad = flux[0] <= 0
    r50[bad] = np.nan
    r90[bad] = np.nan
    wpos = positive.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # central moments: about the light's own mean, not the detected centre
        my, mx = total["hist_y"].sum(1) / wpos, total["hist_x"].sum(1) / wpos
        myy = total["hist_yy"].sum(1) / wpos - my * my
        mxx = total["hist_xx"].sum(1) / wpos - mx * mx
        mxy = total["hist_xy"].sum(1) / wpos - mx * my
    with np.errstate(invalid="ignore"):  # sources without positive flux give NaN shapes
        half_trace = 0.5 * (mxx + myy)
        root = np.sqrt(np.clip((0.5 * (mxx - myy)) ** 2 + mxy ** 2, 0.0, None))
        a = np.sqrt(np.clip(half_trace + root, 0.0, None))
        b = np.sqrt(np.clip(half_trace - root, 0.0, None))
        # y grows along rows, so the angle from +x towards +y is counter-clockwise on a display
        # with the origin at the lower left (as astronomical images are shown)
        theta = np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy))

    with np.errstate(invalid="ignore", divide="ignore"):
        blend = np.where(flux[0] != 0, total["shared_flux"] / flux[0], 0.0)
    flags = np.zeros(len(hist), np.int32)
    flags |= np.where(total["edge"].sum(1) > 0, FLAG_EDGE, 0).astype(np.int32)
    flags |= np.where(total["masked"].sum(1) > 0, FLAG_MASKED, 0).astype(np.int32)
    flags |= np.where((blend > 0.5) & (peaks["score"] < 0.5), FLAG_UNCERTAIN, 0).astype(np.int32)

    columns = {
        "id": peaks["id"].astype(np.int64),
        "x": peaks["x"].astype(np.float64),
        "y": peaks["y"].astype(np.float64),
        "flux": flux[0],
        "flux_err": np.sqrt(total["var"][0]) if has_weights else np.full(len(hist), np.nan),
    }
    for i, band in enumerate(bands):
        columns[f"flux_{band}"] = flux[i]
        if has_weights:
            columns[f"flux_err_{band}"] = np.sqrt(total["var"][i])
    columns.update({
        "r50": r50, "r90": r90, "kron_radius": np.asarray(footprint_radius, np.float64),
        "a": a, "b": b, "theta": theta,
        "npix": total["npix"].astype(np.int64), "blend_fraction": blend,
        "score": peaks["score"].astype(np.float32), "flags": flags,
    })
    return columns


def invalid_neighbourhood(valid: np.ndarray) -> np.ndarray:
    """Pixels that are invalid or touch an invalid pixel (8-connected)."""
    return ndimage.binary_dilation(~valid, structure=np.ones((3, 3), bool))
