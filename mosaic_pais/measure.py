"""Per-source measurements as reductions over the global (ids, fractions) maps.

Nothing here builds a dense per-source image: each block reduces its pixels to sums indexed by
the global ids present in it (``np.bincount``), and the partial sums of all blocks are added
(:func:`combine`). Radial profiles are kept as histograms (0.5 px bins about the detected
centre), which give the Kron aperture, r50, r90 and the second moments in one pass.

Columns (DESIGN.md contract) and how they are measured:

``flux``, ``flux_<BAND>``
    Deblended flux: the sum over every pixel the source claims of its fraction times the image.
    These add up to the image summed over claimed pixels (flux conservation).
``flux_kron``
    The deblended flux inside a circular Kron aperture (2.5·r1, at least 3.5 px) of the
    source's deblended image: less noisy for faint sources in sparse fields, whose claimed
    area holds much background.
``flux_err``
    From the weight map (inverse variance): sqrt(Σ fraction² / weight); NaN without weights.
``x``, ``y``
    The network's sub-pixel centre (the centre map is trained on flux-weighted centroids).
``r50``, ``r90``
    Radii enclosing 50% and 90% of ``flux_kron``.
``a``, ``b``, ``theta``
    Second-moment ellipse (px, px, degrees counter-clockwise from +x) inside the Kron aperture.
``npix``
    Pixels where the source holds a fraction > 0.
``blend_fraction``
    Share of the source's deblended flux in pixels that other sources also hold.
``flags``
    1 its Kron aperture touches the mosaic edge, 2 its Kron aperture touches masked/NaN pixels,
    4 deblend uncertain (over half the flux in shared pixels and a centre-map peak below 0.5).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BIN = 0.5        # radial histogram bin width (px)
N_BINS = 160     # up to 80 px; the last bin also holds everything farther
FLAG_EDGE, FLAG_MASKED, FLAG_UNCERTAIN = 1, 2, 4


def measure_region(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray,
                   peak_y: np.ndarray, peak_x: np.ndarray, origin: tuple[int, int],
                   mosaic_shape: tuple[int, int], weights: np.ndarray | None = None,
                   invalid_near: np.ndarray | None = None) -> dict:
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
    on_edge = (gy == 0) | (gx == 0) | (gy == mosaic_shape[0] - 1) | (gx == mosaic_shape[1] - 1)

    # distinct sources holding a fraction > 0 of each pixel (detection band)
    held = (ids >= 0) & (frac[0] > 0)
    first = held.copy()
    for s in range(1, n_slots):
        for t in range(s):
            first[s] &= ~(held[t] & (ids[t] == ids[s]))
    n_holders = first.sum(0)
    shared = n_holders >= 2

    out = {"id": present,
           "flux": np.zeros((n_band, k)), "var": np.zeros((n_band, k)),
           "npix": np.zeros(k), "shared_flux": np.zeros(k),
           "edge": np.zeros((k, N_BINS)), "masked": np.zeros((k, N_BINS)),
           "hist": np.zeros((k, N_BINS)),
           "hist_yy": np.zeros((k, N_BINS)), "hist_xx": np.zeros((k, N_BINS)),
           "hist_xy": np.zeros((k, N_BINS))}
    inv_w = None
    if weights is not None:
        with np.errstate(divide="ignore"):
            inv_w = np.where(weights > 0, 1.0 / np.asarray(weights, np.float64), 0.0)
    for s in range(n_slots):
        sel = ids[s] >= 0
        if not sel.any():
            continue
        local = np.searchsorted(present, ids[s][sel])
        for b in range(n_band):
            contrib = frac[b, s][sel] * img[b][sel]
            out["flux"][b] += np.bincount(local, weights=contrib, minlength=k)
            if inv_w is not None:
                out["var"][b] += np.bincount(local, weights=frac[b, s][sel] ** 2 * inv_w[b][sel],
                                             minlength=k)
        det = frac[0, s][sel] * img[0][sel]
        uniq = first[s][sel]
        out["npix"] += np.bincount(local, weights=uniq, minlength=k)
        out["shared_flux"] += np.bincount(local, weights=det * shared[sel], minlength=k)
        src = ids[s][sel]
        dy = gy[sel] - peak_y[src]
        dx = gx[sel] - peak_x[src]
        rbin = np.minimum((np.hypot(dy, dx) / BIN).astype(np.int64), N_BINS - 1)
        flat = local * N_BINS + rbin
        # where the source meets the mosaic edge or masked pixels, by radius: flagged later
        # only if that happens inside its Kron aperture, not anywhere in its claimed area
        out["edge"] += np.bincount(flat, weights=uniq & on_edge[sel],
                                   minlength=k * N_BINS).reshape(k, N_BINS)
        if invalid_near is not None:
            out["masked"] += np.bincount(flat, weights=uniq & invalid_near[sel],
                                         minlength=k * N_BINS).reshape(k, N_BINS)
        pos = np.clip(det, 0.0, None)  # moments use the positive part (noise can be negative)
        for key, weight in (("hist", det), ("hist_yy", pos * dy * dy),
                            ("hist_xx", pos * dx * dx), ("hist_xy", pos * dx * dy)):
            out[key] += np.bincount(flat, weights=weight, minlength=k * N_BINS).reshape(
                k, N_BINS)
    return out


def combine(parts: list[dict], n_sources: int, n_band: int) -> dict:
    """Add the blocks' partial sums into arrays over all ``n_sources`` global ids."""
    total = {"flux": np.zeros((n_band, n_sources)), "var": np.zeros((n_band, n_sources)),
             "npix": np.zeros(n_sources), "shared_flux": np.zeros(n_sources)}
    for key in ("hist", "hist_yy", "hist_xx", "hist_xy", "edge", "masked"):
        total[key] = np.zeros((n_sources, N_BINS))
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


def finalize(total: dict, peaks: dict, bands: list[str], has_weights: bool) -> dict:
    """Catalogue columns (a dict of arrays) from the combined sums."""
    hist = total["hist"]
    centres = (np.arange(N_BINS) + 0.5) * BIN
    positive = np.clip(hist, 0.0, None)
    # Kron radius, iterated: the first moment is measured inside 3 Kron radii of the last guess
    limit = np.full(len(hist), 32.0)
    kron = np.full(len(hist), 3.5)
    for _ in range(3):
        inside = centres[None, :] < limit[:, None]
        wsum = (positive * inside).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r1 = (positive * inside * centres[None, :]).sum(1) / wsum
        kron = np.clip(np.where(np.isfinite(r1), 2.5 * r1, 3.5), 3.5, N_BINS * BIN)
        limit = 3.0 * kron
    in_kron = centres[None, :] < kron[:, None]
    cum = np.cumsum(hist, axis=1)
    flux_kron = (hist * in_kron).sum(1)
    r50 = _radius_enclosing(cum, 0.5 * flux_kron)
    r90 = _radius_enclosing(cum, 0.9 * flux_kron)
    bad = flux_kron <= 0
    r50[bad] = np.nan
    r90[bad] = np.nan
    wpos = (positive * in_kron).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        myy = (total["hist_yy"] * in_kron).sum(1) / wpos
        mxx = (total["hist_xx"] * in_kron).sum(1) / wpos
        mxy = (total["hist_xy"] * in_kron).sum(1) / wpos
    with np.errstate(invalid="ignore"):  # sources without positive flux give NaN shapes
        half_trace = 0.5 * (mxx + myy)
        root = np.sqrt(np.clip((0.5 * (mxx - myy)) ** 2 + mxy ** 2, 0.0, None))
        a = np.sqrt(np.clip(half_trace + root, 0.0, None))
        b = np.sqrt(np.clip(half_trace - root, 0.0, None))
        # y grows along rows, so the angle from +x towards +y is counter-clockwise on a display
        # with the origin at the lower left (as astronomical images are shown)
        theta = np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy))

    flux = total["flux"]
    with np.errstate(invalid="ignore", divide="ignore"):
        blend = np.where(flux[0] != 0, total["shared_flux"] / flux[0], 0.0)
    flags = np.zeros(len(hist), np.int32)
    flags |= np.where((total["edge"] * in_kron).sum(1) > 0, FLAG_EDGE, 0).astype(np.int32)
    flags |= np.where((total["masked"] * in_kron).sum(1) > 0, FLAG_MASKED, 0).astype(np.int32)
    flags |= np.where((blend > 0.5) & (peaks["score"] < 0.5), FLAG_UNCERTAIN, 0).astype(np.int32)

    columns = {
        "id": peaks["id"].astype(np.int64),
        "x": peaks["x"].astype(np.float64),
        "y": peaks["y"].astype(np.float64),
        "flux": flux[0],
        "flux_err": np.sqrt(total["var"][0]) if has_weights else np.full(len(hist), np.nan),
        "flux_kron": flux_kron,
    }
    for i, band in enumerate(bands):
        columns[f"flux_{band}"] = flux[i]
        if has_weights:
            columns[f"flux_err_{band}"] = np.sqrt(total["var"][i])
    columns.update({
        "r50": r50, "r90": r90, "kron_radius": kron, "a": a, "b": b, "theta": theta,
        "npix": total["npix"].astype(np.int64), "blend_fraction": blend,
        "score": peaks["score"].astype(np.float32), "flags": flags,
    })
    return columns


def invalid_neighbourhood(valid: np.ndarray) -> np.ndarray:
    """Pixels that are invalid or touch an invalid pixel (8-connected)."""
    return ndimage.binary_dilation(~valid, structure=np.ones((3, 3), bool))
