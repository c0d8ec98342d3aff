"""The Partial Contribution Representation (PCR): encoder and non-learned decoder.

PCR (Hausen & Robertson 2021, §2) describes how the flux of every pixel is shared among the
``n`` nearest sources with three tensors, in numpy order for one tile of shape ``(h, w)`` with
``b`` bands:

``center``    ``C^c (h, w)``          peak-1 Gaussians at the source centres, combined by max
``vectors``   ``C^v (h, w, n, 2)``    offsets ``(dy, dx)`` in pixels from each pixel to its n
                                     nearest source centres, nearest first
``fractions`` ``C^m (h, w, b, n)``    per band, the flux fraction of each of those n sources,
                                     summing to one over the n slots

Differences from the paper's prototype, each deliberate:

* Centres are sub-pixel floats; pixel ``(i, j)`` has its centre at ``(y, x) = (i, j)`` in both
  the encoder and the decoder, so there is no half-pixel mismatch.
* The n nearest sources are ordered by distance, ties broken by the sources' position
  (``y``, then ``x``) so that the encoding does not depend on the order sources are given in.
* Sources centred outside the tile take part like any other: their Gaussians, their votes and
  their flux fractions all enter, so their light is not given to sources inside the tile.
* Pixels where the n nearest sources' models are all zero (background far from every source)
  give their whole fraction to the nearest source (split equally on exact ties) instead of the
  prototype's uniform 1/n: background noise then stays with one source rather than being spread.
* With fewer than n sources the last (farthest) source is repeated in the remaining slots and its
  fraction is split equally between its copies. With no source at all, ``center`` is zero,
  ``vectors`` are zero and ``fractions`` are uniform; such a tile has no claimed pixels.

The decoder finds peaks right up to the tile edges, refines them to sub-pixel accuracy, resolves
each pixel's n votes to the nearest detected centre, and splits the image with the fractions, so
the deblended images add up to the input image on every claimed pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "N_SLOTS",
    "PAPER_CENTER_SIGMA",
    "PCR",
    "center_map",
    "nearest_sources",
    "encode",
    "Peaks",
    "SMOOTHING_TRUNCATE",
    "smoothing_radius",
    "smooth_center",
    "find_peaks",
    "VOTE_MODES",
    "MIXED_VOTE_RADIUS",
    "VOTE_MAP_MARGIN",
    "nearest_peaks_on_grid",
    "resolve_votes",
    "geometric_votes",
    "Decoded",
    "normalise_fractions",
    "deblend_images",
    "decode",
]

#: Number of sources each pixel is shared among (the paper's n).
N_SLOTS = 3
#: Width of the centre-map Gaussians in the paper (pixels).
PAPER_CENTER_SIGMA = 8.0


@dataclass
class PCR:
    """One tile's Partial Contribution Representation.

    Attributes
    ----------
    center : ndarray, float32 (h, w)
    vectors : ndarray, float32 (h, w, n, 2), (dy, dx) from the pixel to each source
    fractions : ndarray, float32 (h, w, b, n)
    source_index : ndarray, int64 (h, w, n)
        Index of the source (in the order the sources were given) of each slot; -1 where the
        tile has no source. Not part of the paper's PCR but handy for checks and losses.
    """

    center: np.ndarray
    vectors: np.ndarray
    fractions: np.ndarray
    source_index: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.center.shape


def _as_centers(centers_yx) -> np.ndarray:
    centers = np.asarray(centers_yx, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(centers)):
        raise ValueError("source centres must be finite")
    return centers


def center_map(centers_yx, shape: tuple[int, int], sigma: float = PAPER_CENTER_SIGMA,
               truncate: float = 4.0) -> np.ndarray:
    """Peak-1 Gaussians of width ``sigma`` at sub-pixel centres, combined by maximum.

    Centres may lie outside the frame; their Gaussians are clipped at its edges.

    Examples
    --------
    >>> c = center_map([[2.0, 3.0]], (5, 7), sigma=1.0)
    >>> float(c[2, 3]), round(float(c[2, 4]), 4)
    (1.0, 0.6065)
    """
    centers = _as_centers(centers_yx)
    h, w = shape
    out = np.zeros((h, w), dtype=np.float32)
    half = int(np.ceil(truncate * sigma))
    for cy, cx in centers:
        y0, y1 = max(int(np.floor(cy)) - half, 0), min(int(np.ceil(cy)) + half + 1, h)
        x0, x1 = max(int(np.floor(cx)) - half, 0), min(int(np.ceil(cx)) + half + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sigma) ** 2)
        np.maximum(out[y0:y1, x0:x1], np.outer(gy, gx).astype(np.float32),
                   out=out[y0:y1, x0:x1])
    return out


def nearest_sources(centers_yx, shape: tuple[int, int], n: int = N_SLOTS,
                    pixels_yx: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n`` nearest source centres of every pixel, nearest first.

    Ties in distance are broken by the sources' (y, x) position, which makes the result
    independent of the order the sources are given in. With fewer than ``n`` sources the last
    one is repeated.

    Returns
    -------
    ndarray of int64, shape (h, w, n) (or (P, n) for explicit ``pixels_yx``); -1 if no source.
    """
    centers = _as_centers(centers_yx)
    if pixels_yx is None:
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        pixels = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
        out_shape = (shape[0], shape[1], n)
    else:
        pixels = np.asarray(pixels_yx, dtype=np.float64).reshape(-1, 2)
        out_shape = (pixels.shape[0], n)
    n_src = len(centers)
    if n_src == 0:
        return np.full(out_shape, -1, dtype=np.int64)
    # canonical rank of each source: order by (y, x), then input index for exact duplicates
    rank = np.empty(n_src, dtype=np.int64)
    rank[np.lexsort((np.arange(n_src), centers[:, 1], centers[:, 0]))] = np.arange(n_src)
    # a few spare candidates so that every source tied with the n-th is among them
    k = min(n_src, n + 3)
    _, cand = cKDTree(centers).query(pixels, k=k)
    cand = cand.reshape(len(pixels), k)
    d2 = ((pixels[:, None, :] - centers[cand]) ** 2).sum(-1)  # exact, same for every caller
    order = np.lexsort((rank[cand], d2), axis=1)
    chosen = np.take_along_axis(cand, order, axis=1)[:, :n]
    if chosen.shape[1] < n:  # fewer sources than slots: repeat the farthest
        pad = np.repeat(chosen[:, -1:], n - chosen.shape[1], axis=1)
        chosen = np.concatenate([chosen, pad], axis=1)
    return chosen.reshape(out_shape)


def encode(centers_yx, source_images: np.ndarray, *, n: int = N_SLOTS,
           center_sigma: float = PAPER_CENTER_SIGMA) -> PCR:
    """Encode sources as PCR.

    Parameters
    ----------
    centers_yx : array_like, shape (N, 2)
        Sub-pixel source centres (y, x), 0-based; may lie outside the frame.
    source_images : ndarray, shape (N, b, h, w) or (N, h, w)
        Each source's noiseless flux image in this frame (or anything proportional to its
        fractions, e.g. a deblender's models). Negative values are clipped to zero.
    n : int
        Number of slots.
    center_sigma : float
        Width of the centre-map Gaussians in pixels (the paper used 8).

    Returns
    -------
    PCR

    Examples
    --------
    Two sources on a 1-D strip of pixels, each owning its half:

    >>> imgs = np.zeros((2, 1, 1, 6)); imgs[0, 0, 0, :3] = 1; imgs[1, 0, 0, 3:] = 1
    >>> p = encode([[0, 1], [0, 4]], imgs, n=2)
    >>> p.fractions[0, :, 0, 0].tolist()  # slot 0 = the nearest source owns each pixel
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> p.vectors[0, 0, 0].tolist(), p.vectors[0, 0, 1].tolist()
    ([0.0, 1.0], [0.0, 4.0])
    """
    centers = _as_centers(centers_yx)
    images = np.asarray(source_images, dtype=np.float64)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[0] != len(centers):
        raise ValueError("source_images must be (N, b, h, w) with one image per centre")
    n_src, n_band, h, w = images.shape
    if n_src == 0:
        return PCR(center=np.zeros((h, w), np.float32),
                   vectors=np.zeros((h, w, n, 2), np.float32),
                   fractions=np.full((h, w, n_band, n), 1.0 / n, np.float32),
                   source_index=np.full((h, w, n), -1, np.int64))
    idx = nearest_sources(centers, (h, w), n=n)  # (h, w, n)
    yy, xx = np.mgrid[0:h, 0:w]
    vectors = np.stack([centers[idx, 0] - yy[..., None], centers[idx, 1] - xx[..., None]],
                       axis=-1)
    # flux of each slot's source at each pixel and band: (h, w, b, n)
    flat = np.clip(images, 0.0, None).reshape(n_src, n_band, h * w)
    gathered = flat[idx.reshape(h * w, n).T, :, np.arange(h * w)[None, :]]  # (n, hw, b)
    slot_flux = gathered.transpose(1, 2, 0).reshape(h, w, n_band, n)
    # a source repeated in several slots shares its flux equally between its copies
    copies = (idx[..., :, None] == idx[..., None, :]).sum(-1)  # (h, w, n)
    slot_flux = slot_flux / copies[:, :, None, :]
    total = slot_flux.sum(-1, keepdims=True)
    # background: everything to the nearest source, split on exact distance ties
    d2 = (vectors ** 2).sum(-1)  # (h, w, n)
    nearest = np.isclose(d2, d2[..., :1], rtol=0, atol=1e-9).astype(np.float64)
    nearest = np.broadcast_to((nearest / nearest.sum(-1, keepdims=True))[:, :, None, :],
                              slot_flux.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(total > 0, slot_flux / np.where(total > 0, total, 1.0), nearest)
    return PCR(center=center_map(centers, (h, w), sigma=center_sigma),
               vectors=vectors.astype(np.float32),
               fractions=fractions.astype(np.float32),
               source_index=idx)


# --------------------------------------------------------------------------- decoding


@dataclass
class Peaks:
    """Detected centres: sub-pixel positions (y, x), their pixels and centre-map peak values.

    ``iy, ix`` is the pixel holding the maximum: it decides which block owns a peak when a
    mosaic is stitched, because the refined position may lie across a block border.
    """

    y: np.ndarray
    x: np.ndarray
    score: np.ndarray
    iy: np.ndarray
    ix: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def yx(self) -> np.ndarray:
        return np.stack([self.y, self.x], axis=1)


#: the matched filter's Gaussian is cut at this many widths (scipy's default)
SMOOTHING_TRUNCATE = 4.0


def smoothing_radius(smoothing: float) -> int:
    """Pixels the matched filter of :func:`smooth_center` reaches (its kernel's half-width).

    >>> smoothing_radius(2.0), smoothing_radius(0.0)
    (8, 0)
    """
    return int(SMOOTHING_TRUNCATE * smoothing + 0.5) if smoothing > 0 else 0


def smooth_center(center: np.ndarray, smoothing: float, center_sigma: float,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """The centre map through its matched filter, scaled so that an ideal peak reads 1.

    The network draws each source as a Gaussian of width ``center_sigma``; a Gaussian of width
    ``smoothing`` is the matched filter for it, so a peak is judged by its whole bump rather
    than by its highest pixel alone: single-pixel spikes in empty sky are damped, and so are
    pixel-level wobbles of the prediction (on validation tiles F1 rose by 0.013-0.018 with the
    same network, docs/architecture.md). The result is divided by the
    filter's response to an ideal, centred peak of 1, so thresholds keep their meaning: the
    fraction of an ideal peak. Invalid and non-finite pixels (and everything beyond the map)
    are left out by normalised convolution, not counted as zeros, so the response near a mask
    or the mosaic edge is a mean over what is there; they stay invalid (NaN) in the result.

    Examples
    --------
    An ideal peak reads 1; one whose pixel is on the edge of the map, about that (it is judged
    on the half of its bump that is there, and its own row weighs a little more):

    >>> c = center_map([[10.0, 12.0], [0.0, 30.0]], (24, 40), sigma=2.0)
    >>> s = smooth_center(c, 2.0, center_sigma=2.0)
    >>> round(float(s[10, 12]), 4), round(float(s[0, 30]), 2)
    (1.0, 1.07)
    """
    from scipy import ndimage

    center = np.asarray(center, dtype=np.float64)
    usable = np.isfinite(center)
    if valid is not None:
        usable &= np.asarray(valid, bool)
    if smoothing <= 0:
        return np.where(usable, center, np.nan).astype(np.float32)

    def blur(a):
        return ndimage.gaussian_filter(a, smoothing, mode="constant", cval=0.0,
                                       truncate=SMOOTHING_TRUNCATE)

    if usable.all():  # the usual case: the weight is separable, two 1-D profiles suffice
        wy, wx = (blur(np.ones(n)) for n in center.shape)
        weight = wy[:, None] * wx[None, :]
    else:
        weight = blur(usable.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = blur(np.where(usable, center, 0.0)) / weight
    return np.where(usable & (weight > 0), smoothed / _ideal_response(smoothing, center_sigma),
                    np.nan).astype(np.float32)


def _ideal_response(smoothing: float, center_sigma: float) -> float:
    """The matched filter's value at the centre of an ideal peak (1 at a pixel centre)."""
    from scipy import ndimage

    r = smoothing_radius(smoothing) + int(4 * center_sigma) + 1
    ideal = center_map([[r, r]], (2 * r + 1, 2 * r + 1), sigma=center_sigma)
    return float(ndimage.gaussian_filter(ideal, smoothing, mode="constant",
                                         truncate=SMOOTHING_TRUNCATE)[r, r])


def find_peaks(center: np.ndarray, *, threshold: float = 0.1, window: int = 7,
               valid: np.ndarray | None = None, refine: bool = True,
               smoothing: float = 0.0, center_sigma: float = PAPER_CENTER_SIGMA) -> Peaks:
    """Local maxima of a centre map above ``threshold``, up to the very edge.

    A pixel is a peak when it is the maximum of the ``window`` × ``window`` box around it
    (pixels outside the map count as ``-inf``, so edge rows and columns can hold peaks). A flat
    top of several equal pixels yields one peak, at its first pixel in row-major order. Peaks are
    refined to sub-pixel accuracy by a parabola through the logarithm of the 3 pixels in y and
    in x, exact for a Gaussian. With ``smoothing`` > 0 all this happens on the map's matched
    filter (:func:`smooth_center`, for Gaussians of width ``center_sigma``), and the scores are
    its values: fractions of an ideal peak.

    Examples
    --------
    >>> c = center_map([[0.3, 10.3], [7.2, 2.0]], (8, 12), sigma=2.0)
    >>> p = find_peaks(c)
    >>> np.round(p.yx, 3).tolist()
    [[0.3, 10.3], [7.2, 2.0]]

    A single-pixel spike in empty sky passes the bare maximum; through the matched filter it
    reads what it is, a small fraction of a source's bump, while the source keeps its score:

    >>> c = center_map([[12.0, 12.0]], (24, 24), sigma=2.0) * 0.8
    >>> c[4, 20] = 0.9
    >>> [round(float(s), 2) for s in find_peaks(c, threshold=0.5).score]
    [0.9, 0.8]
    >>> [round(float(s), 2) for s in find_peaks(c, threshold=0.5, smoothing=2.0,
    ...                                         center_sigma=2.0).score]
    [0.8]
    """
    center = smooth_center(center, smoothing, center_sigma, valid)
    work = np.where(np.isfinite(center), center, -np.inf).astype(np.float32)
    local_max = ndimage.maximum_filter(work, size=window, mode="constant", cval=-np.inf)
    is_peak = (work == local_max) & (work > threshold)
    # collapse plateaus: keep the first pixel of each connected group of equal maxima
    labels, n_lab = ndimage.label(is_peak, structure=np.ones((3, 3)))
    if n_lab == 0:
        empty = np.zeros(0, dtype=np.float64)
        none = np.zeros(0, dtype=np.int64)
        return Peaks(empty, empty.copy(), empty.astype(np.float32), none, none.copy())
    flat = np.flatnonzero(is_peak)  # row-major: a label's first entry is its first pixel
    _, first = np.unique(labels.ravel()[flat], return_index=True)
    py, px = np.unravel_index(np.sort(flat[first]), work.shape)
    score = work[py, px]
    y = py.astype(np.float64)
    x = px.astype(np.float64)
    if refine:
        y += _parabola_offset(work, py, px, axis=0)
        x += _parabola_offset(work, py, px, axis=1)
    return Peaks(y=y, x=x, score=score, iy=py.astype(np.int64), ix=px.astype(np.int64))


def _parabola_offset(work: np.ndarray, py: np.ndarray, px: np.ndarray, axis: int) -> np.ndarray:
    """Sub-pixel offset of a peak from a parabola through the log of three pixels.

    At the first or last row/column the three pixels are taken one-sidedly, so a source centred
    on (or just beyond) the edge is still placed with sub-pixel accuracy.
    """
    size = work.shape[axis]
    pos = py if axis == 0 else px
    if size < 3:
        return np.zeros(len(pos))
    mid = np.clip(pos, 1, size - 2)

    def at(offset):
        return work[mid + offset, px] if axis == 0 else work[py, mid + offset]

    f_m, f_0, f_p = at(-1), at(0), at(1)
    ok = (f_m > 0) & (f_p > 0) & (f_0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lm, l0, lp = np.log(f_m), np.log(f_0), np.log(f_p)
        denom = lm - 2 * l0 + lp
        vertex = mid + 0.5 * (lm - lp) / denom
    off = vertex - pos
    ok &= np.isfinite(off) & (denom < 0)
    # interior peaks cannot move past half a pixel; edge peaks may lie a little beyond the edge
    limit = np.where(mid == pos, 0.5, 3.0)
    return np.where(ok, np.clip(off, -limit, limit), 0.0)


VOTE_MODES = ("vectors", "geometric", "mixed")
#: ``mixed`` votes: pixels within this distance (px) of their nearest detected centre are
#: resolved geometrically, those farther by their claim vectors. Chosen on validation tiles
#: (benchmarks/vote_modes.py; docs/benchmarks.md, "Fluxes by vote mode"): among 4–20 px, 6 and
#: 8 px gave the lowest median |δ| of blended and of all sources, in the varied conditions and
#: at GOODS-S depth alike; 6 px by a hair overall.
MIXED_VOTE_RADIUS = 6.0
#: Margin (px) around a block of the grid that resolves its vector votes without a search.
VOTE_MAP_MARGIN = 64
@njit(cache=True, nogil=True)
def _bucket(points: np.ndarray, size: float):
    """Points sorted into square buckets of side ``size`` over their bounding box: the bucket
    grid's corner and shape, each bucket's first index into ``order``, and ``order``."""
    lo_y, lo_x = points[:, 0].min(), points[:, 1].min()
    ny = int((points[:, 0].max() - lo_y) // size) + 1
    nx = int((points[:, 1].max() - lo_x) // size) + 1
    cell = np.empty(len(points), np.int64)
    for i in range(len(points)):
        cell[i] = (int((points[i, 0] - lo_y) // size) * nx
                   + int((points[i, 1] - lo_x) // size))
    start = np.zeros(ny * nx + 1, np.int64)
    for i in range(len(points)):
        start[cell[i] + 1] += 1
    for i in range(ny * nx):
        start[i + 1] += start[i]
    order = np.empty(len(points), np.int64)  # a counting sort, stable: by index in a bucket
    filled = start[:-1].copy()
    for i in range(len(points)):
        order[filled[cell[i]]] = i
        filled[cell[i]] += 1
    return lo_y, lo_x, ny, nx, start, order


@njit(cache=True, nogil=True)
def _ring(points, lo_y, lo_x, ny, nx, start, order, size, qy, qx, r, radius2, found, n_found):
    """Add to ``found`` the points within ``sqrt(radius2)`` of (qy, qx) in the buckets of ring
    ``r`` (Chebyshev distance r in buckets from the query's bucket); the new count."""
    cy = int((qy - lo_y) // size)
    cx = int((qx - lo_x) // size)
    for i in range(max(cy - r, 0), min(cy + r, ny - 1) + 1):
        step = 1 if abs(i - cy) == r else 2 * r  # inner rows: only the ring's two ends
        for j in range(cx - r, cx + r + 1, step):
            if 0 <= j < nx:
                b = i * nx + j
                for t in range(start[b], start[b + 1]):
                    p = order[t]
                    if (qy - points[p, 0]) ** 2 + (qx - points[p, 1]) ** 2 <= radius2:
                        found[n_found] = p
                        n_found += 1
    return n_found


@njit(cache=True, nogil=True)
def _k_nearest_among(qy, qx, points, cand, n_cand, best_d, best_i):
    """The len(best_i) of ``cand[:n_cand]`` nearest to (qy, qx) into ``best_i`` (squared
    distances into ``best_d``), nearest first; equal distances: lower index first."""
    k = len(best_i)
    best_d[:] = np.inf
    best_i[:] = len(points)
    for t in range(n_cand):
        p = cand[t]
        d2 = (qy - points[p, 0]) ** 2 + (qx - points[p, 1]) ** 2
        u = k
        while u > 0 and (d2 < best_d[u - 1] or (d2 == best_d[u - 1] and p < best_i[u - 1])):
            if u < k:
                best_d[u] = best_d[u - 1]
                best_i[u] = best_i[u - 1]
            u -= 1
        if u < k:
            best_d[u] = d2
            best_i[u] = p


@njit(cache=True, nogil=True)
def _nearest_grid_core(points, size, oy, ox, valid, k, group):
    lo_y, lo_x, ny, nx, start, order = _bucket(points, size)
    h, w = valid.shape
    out = np.full((k, h, w), -1, np.int64)
    found = np.empty(len(points), np.int64)
    best_d = np.empty(k)
    best_i = np.empty(k, np.int64)
    half_diag = (group - 1) * np.sqrt(2.0) / 2
    # rings enough to cover every bucket from any query
    far = 2 + int(max(ny, nx) + (abs(oy - lo_y) + abs(ox - lo_x) + h + w) / size)
    for gy0 in range(0, h, group):
        for gx0 in range(0, w, group):
            cy = oy + gy0 + (group - 1) / 2
            cx = ox + gx0 + (group - 1) / 2
            # the k-th nearest distance from the group's centre: rings until no farther
            # bucket can hold anything nearer (a point r+1 rings away is >= r*size away)
            n_found = 0
            r = 0
            while True:
                n_found = _ring(points, lo_y, lo_x, ny, nx, start, order, size, cy, cx, r,
                                np.inf, found, n_found)
                _k_nearest_among(cy, cx, points, found, n_found, best_d, best_i)
                if best_d[k - 1] < (r * size) ** 2 or r > far:
                    break
                r += 1
            # every pixel of the group has its k nearest within kth + 2 half-diagonals of
            # the centre (it lies within one half-diagonal of it)
            reach = np.sqrt(best_d[k - 1]) + 2 * half_diag + 1e-6
            n_cand = 0
            r = 0
            while True:
                n_cand = _ring(points, lo_y, lo_x, ny, nx, start, order, size, cy, cx, r,
                               reach * reach, found, n_cand)
                if r * size > reach or r > far:
                    break
                r += 1
            for py in range(gy0, min(gy0 + group, h)):
                for px in range(gx0, min(gx0 + group, w)):
                    if not valid[py, px]:
                        continue
                    _k_nearest_among(oy + py, ox + px, points, found, n_cand, best_d, best_i)
                    out[:, py, px] = best_i
    return out


@njit(cache=True, nogil=True)
def _nearest_in_buckets(points, lo_y, lo_x, ny, nx, start, order, size, qy, qx, found):
    """Index of the point nearest to (qy, qx) (equal distances: lower index first), searching
    rings of buckets outwards until no farther bucket can hold anything nearer."""
    cy = int((qy - lo_y) // size)
    cx = int((qx - lo_x) // size)
    # rings enough to reach every bucket even from a query outside the bucket grid
    far = 2 + max(abs(cy), abs(cy - ny), abs(cx), abs(cx - nx)) + max(ny, nx)
    best_d = np.inf
    best_i = len(points)
    r = 0
    while True:
        n_found = _ring(points, lo_y, lo_x, ny, nx, start, order, size, qy, qx, r, np.inf,
                        found, 0)
        for t in range(n_found):
            p = found[t]
            d2 = (qy - points[p, 0]) ** 2 + (qx - points[p, 1]) ** 2
            if d2 < best_d or (d2 == best_d and p < best_i):
                best_d = d2
                best_i = p
        if best_d <= (r * size) ** 2 or r > far:
            return best_i
        r += 1


@njit(cache=True, nogil=True)
def _nearest_of(points, nearest, my, mx, ty, tx, buckets, found):
    """The point nearest to (ty, tx), looked up in the grid ``nearest`` (corner ``(my, mx)``)
    of each cell's k nearest points, or searched in the points' ``buckets`` where the lookup
    cannot be sure.

    The position lies within √2/2 px of its cell's centre c, so a point outside the cell's k
    nearest is at least d(c, k-th) − √2/2 from it: where one of the k is nearer than that
    (nearly always, for votes pointing at source centres), it is the nearest point."""
    k, gh, gw = nearest.shape
    cy = int(np.floor(ty - my + 0.5))
    cx = int(np.floor(tx - mx + 0.5))
    if 0 <= cy < gh and 0 <= cx < gw:
        best_d = np.inf
        best = -1
        for j in range(k):
            p = nearest[j, cy, cx]
            d2 = (ty - points[p, 0]) ** 2 + (tx - points[p, 1]) ** 2
            if d2 < best_d or (d2 == best_d and p < best):
                best_d = d2
                best = p
        if k == len(points):  # the k nearest are all the points there are
            return best
        q = nearest[k - 1, cy, cx]
        bound = np.sqrt((my + cy - points[q, 0]) ** 2 + (mx + cx - points[q, 1]) ** 2) \
            - np.sqrt(0.5)
        if bound > 0 and best_d < bound * bound:
            return best
    lo_y, lo_x, ny, nx, start, order, size = buckets
    return _nearest_in_buckets(points, lo_y, lo_x, ny, nx, start, order, size, ty, tx, found)


@njit(cache=True, nogil=True)
def _follows_vectors(nearest, iy, ix, points, y, x, radius2):
    """Whether a pixel at (y, x) (cell (iy, ix) of ``nearest``) votes by its vectors: always
    for ``radius2 < 0``, else when farther than sqrt(radius2) from its nearest point."""
    if radius2 < 0:
        return True
    f = nearest[0, iy, ix]
    return (y - points[f, 0]) ** 2 + (x - points[f, 1]) ** 2 > radius2


@njit(cache=True, nogil=True)
def _vector_votes_core(points, size, nearest, my, mx, vectors, step, oy, ox, voting, radius,
                       ids):
    """``ids[:, py, px]``: for every ``voting`` pixel farther than ``radius`` from its
    nearest point (``radius < 0``: every voting pixel), the points nearest to where its
    sample's vectors point: sample (i, j) of ``vectors (n, 2, sh, sw)`` (any float type and
    layout) lies at pixel (i·step, j·step) and serves the step × step pixels from there,
    each of which takes the sample's targets in its own order of distance (slots are ordered
    nearest-first, and near the border between two sources a pixel's order is not its
    sample's). Samples with non-finite vectors leave their pixels' ids as they are."""
    lo_y, lo_x, ny, nx, start, order = _bucket(points, size)
    buckets = (lo_y, lo_x, ny, nx, start, order, size)
    found = np.empty(len(points), np.int64)
    n = vectors.shape[0]
    h, w = voting.shape
    iy, ix = int(oy - my), int(ox - mx)  # the block's corner in the grid
    radius2 = radius * radius if radius >= 0 else -1.0
    best = np.empty(n, np.int64)
    target = np.empty((n, 2))
    distance = np.empty(n)
    rank = np.empty(n, np.int64)
    for si in range(vectors.shape[2]):
        for sj in range(vectors.shape[3]):
            y0, x0 = si * step, sj * step
            y1, x1 = min(h, y0 + step), min(w, x0 + step)
            wanted = False
            for py in range(y0, y1):
                for px in range(x0, x1):
                    wanted |= voting[py, px] and _follows_vectors(
                        nearest, iy + py, ix + px, points, oy + py, ox + px, radius2)
            finite = True
            for s in range(n):
                target[s, 0] = oy + y0 + np.float64(vectors[s, 0, si, sj])
                target[s, 1] = ox + x0 + np.float64(vectors[s, 1, si, sj])
                finite &= np.isfinite(target[s, 0]) and np.isfinite(target[s, 1])
            if not (wanted and finite):
                continue
            for s in range(n):
                best[s] = _nearest_of(points, nearest, my, mx, target[s, 0], target[s, 1],
                                      buckets, found)
            for py in range(y0, y1):
                for px in range(x0, x1):
                    if not (voting[py, px] and _follows_vectors(
                            nearest, iy + py, ix + px, points, oy + py, ox + px, radius2)):
                        continue
                    if step == 1:  # the pixel's own vectors, in the network's order
                        ids[:, py, px] = best
                        continue
                    for s in range(n):  # insertion sort: the sample's targets, nearest first
                        distance[s] = ((oy + py - target[s, 0]) ** 2
                                       + (ox + px - target[s, 1]) ** 2)
                        u = s
                        while u > 0 and distance[rank[u - 1]] > distance[s]:
                            rank[u] = rank[u - 1]
                            u -= 1
                        rank[u] = s
                    for s in range(n):
                        ids[s, py, px] = best[rank[s]]
    return ids


def nearest_peaks_on_grid(points: np.ndarray, shape: tuple[int, int],
                          origin: tuple[float, float], k: int, group: int = 16,
                          valid: np.ndarray | None = None) -> np.ndarray:
    """Indices (k, h, w) of the ``k`` points nearest to each pixel of a grid, nearest first
    (equal distances: lower index first; −1 at pixels not ``valid``). ``k`` must not exceed
    the number of points.

    As a k-d tree's ``query(pixels, k)``, for a whole grid at once: the points are put into
    square buckets; for each ``group`` × ``group`` pixels the k-th nearest distance from the
    group's centre bounds where any of its pixels' k nearest can be, the few points within that
    bound are gathered once, and each pixel picks its k among them. The result depends on the
    pixel only, never on the groups, so blocks of any size agree.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> points = rng.uniform(0, 300, (150, 2))
    >>> grid = nearest_peaks_on_grid(points, (150, 220), (40, -10), k=3)
    >>> yy, xx = np.mgrid[0:150, 0:220]
    >>> _, ref = cKDTree(points).query(np.stack([yy.ravel() + 40, xx.ravel() - 10], 1), k=3)
    >>> bool(np.all(grid.reshape(3, -1).T == ref))
    True
    """
    points = np.ascontiguousarray(points, np.float64).reshape(-1, 2)
    if not 1 <= k <= len(points):
        raise ValueError(f"k = {k} needs between 1 and {len(points)} points")
    h, w = shape
    extent = np.ptp(points, axis=0).prod() if len(points) > 1 else 0.0
    # buckets holding a few points each on average; never thinner than a group
    size = float(max(group, np.sqrt(4.0 * max(extent, 1.0) / len(points))))
    valid = np.ones((h, w), bool) if valid is None else np.ascontiguousarray(valid, bool)
    return _nearest_grid_core(points, size, float(origin[0]), float(origin[1]), valid, int(k),
                              int(group))


def resolve_votes(vectors: np.ndarray, peaks_yx: np.ndarray,
                  origin: tuple[float, float] = (0.0, 0.0),
                  valid: np.ndarray | None = None, mode: str = "vectors",
                  mixed_radius: float = MIXED_VOTE_RADIUS, step: int = 1) -> np.ndarray:
    """Resolve each pixel's n votes to the index of the nearest detected centre.

    ``mode="vectors"`` (the paper's decoder): slot k votes for the detected centre nearest to
    pixel + C^v[k]. ``mode="geometric"``: slot k goes to the k-th nearest detected centre of the
    pixel itself, ignoring C^v. Labels order slots nearest-first, so both agree where the
    vectors are right and every labelled source is detected. ``mode="mixed"``: geometric within
    ``mixed_radius`` of the pixel's nearest detected centre, vectors beyond. Near a
    detected source the geometric order is exact, while vectors pointing into a close pair can
    land on the wrong member; far from every detected centre, the labelled sources that were
    not detected still hold slots, the geometric order is shifted by them and a bright
    galaxy's faint wings go to a neighbour tens of pixels away, where its vectors still point
    at it. Which mode a shipped model uses is chosen on validation data.

    Parameters
    ----------
    vectors : ndarray (⌈h/step⌉, ⌈w/step⌉, n, 2)
        Predicted (dy, dx) to the n nearest sources, from every ``step``-th pixel: sample
        (i, j) from pixel (i·step, j·step), whose targets the step × step pixels from there
        share, each ranking them by its own distance to them (a run keeps every
        :data:`mosaic_pais.runtime.store.VECTOR_STEP`-th). A pixel whose sample is not finite is
        resolved geometrically.
    peaks_yx : ndarray (P, 2)
        Detected centres in the same frame as ``origin``.
    origin : (y0, x0)
        Position of pixel (0, 0) in the frame of ``peaks_yx`` (for blocks cut from a mosaic).
    valid : ndarray of bool (h, w), optional
        Pixels that may be claimed; others get -1. Required with ``step > 1`` (it gives the
        block's shape); by default the pixels whose vectors are finite.
    mode : {"vectors", "geometric", "mixed"}
    mixed_radius : float
        ``mixed`` mode: the distance (px) from the nearest detected centre within which
        pixels are resolved geometrically.
    step : int
        Pixels between the vectors' samples.

    Returns
    -------
    ndarray int64 (n, h, w): index into ``peaks_yx``, -1 for unclaimed pixels.
    """
    vectors = np.asarray(vectors)
    if mode not in VOTE_MODES:
        raise ValueError(f"vote mode must be one of {VOTE_MODES}, got {mode!r}")
    if valid is None:
        if step != 1:
            raise ValueError("valid (the block's pixels) is needed with step > 1")
        valid = np.all(np.isfinite(vectors), axis=(-1, -2))
    h, w = valid.shape
    n = vectors.shape[2]
    if vectors.shape[:2] != (-(-h // step), -(-w // step)):
        raise ValueError(f"vectors {vectors.shape[:2]} do not sample {h} x {w} pixels every "
                         f"{step}")
    peaks_yx = np.asarray(peaks_yx, dtype=np.float64).reshape(-1, 2)
    if len(peaks_yx) == 0:
        return np.full((n, h, w), -1, dtype=np.int64)
    if vectors.dtype not in (np.float32, np.float64):  # e.g. float16 as a run stores them
        vectors = vectors.astype(np.float32)
    good = np.ascontiguousarray(valid, bool)
    # one grid of each pixel's nearest peaks serves both the geometric slots and, spanning
    # the reach of nearly every vote around the block (|C^v| < 60 px: slots hold the three
    # nearest sources), the lookup of where the vectors point; in a frame shifted so that
    # pixels sit at whole coordinates
    margin = 0 if mode == "geometric" else VOTE_MAP_MARGIN
    shift = (origin[0] - np.floor(origin[0]), origin[1] - np.floor(origin[1]))
    oy, ox = float(np.floor(origin[0])), float(np.floor(origin[1]))
    points = peaks_yx - shift
    k = min(n, len(peaks_yx))
    grid = nearest_peaks_on_grid(points, (h + 2 * margin, w + 2 * margin),
                                 (oy - margin, ox - margin), k)
    ids = np.where(good, grid[:, margin:margin + h, margin:margin + w], -1)
    if k < n:  # fewer peaks than slots: repeat the farthest, as the encoder does
        ids = np.concatenate([ids, np.repeat(ids[-1:], n - k, axis=0)])
    if mode == "geometric":
        return ids
    extent = np.ptp(points, axis=0).prod() if len(points) > 1 else 0.0
    size = float(max(4.0, np.sqrt(4.0 * max(extent, 1.0) / len(points))))  # ~4 peaks a bucket
    radius = float(mixed_radius) if mode == "mixed" else -1.0
    return _vector_votes_core(points, size, grid, oy - margin, ox - margin,
                              np.transpose(vectors, (2, 3, 0, 1)), int(step), oy, ox, good,
                              radius, ids)


def geometric_votes(peaks_yx: np.ndarray, shape: tuple[int, int, int],
                    origin: tuple[float, float], valid: np.ndarray) -> np.ndarray:
    """Slot k of every ``valid`` pixel goes to its k-th nearest peak (``shape = (n, h, w)``);
    the ids (n, h, w) of :func:`resolve_votes` in geometric mode, which needs no C^v."""
    n, h, w = shape
    peaks_yx = np.asarray(peaks_yx, dtype=np.float64).reshape(-1, 2)
    if len(peaks_yx) == 0:
        return np.full(shape, -1, np.int64)
    k = min(n, len(peaks_yx))
    nearest = nearest_peaks_on_grid(peaks_yx, (h, w), origin, k, valid=valid)
    if k < n:  # fewer peaks than slots: repeat the farthest, as the encoder does
        nearest = np.concatenate([nearest, np.repeat(nearest[-1:], n - k, axis=0)])
    return nearest


@dataclass
class Decoded:
    """Result of decoding one tile.

    Attributes
    ----------
    peaks : Peaks
        The detected centres; source ``j`` is ``peaks[j]``.
    ids : ndarray int64 (n, h, w)
        Source index of each pixel's slot; -1 for unclaimed pixels.
    fractions : ndarray float32 (b, n, h, w)
        Flux fraction of each slot, normalised to sum to one over the slots.
    """

    peaks: Peaks
    ids: np.ndarray
    fractions: np.ndarray

    def deblend(self, image: np.ndarray) -> np.ndarray:
        """Per-source images (N, b, h, w) whose sum is ``image`` on every claimed pixel."""
        return deblend_images(image, self.ids, self.fractions, len(self.peaks))


def normalise_fractions(fractions: np.ndarray, axis: int = -1) -> np.ndarray:
    """Fractions made non-negative and summing exactly to one over ``axis`` (float64)."""
    f = np.clip(np.nan_to_num(np.asarray(fractions, np.float64), nan=0.0), 0.0, None)
    total = f.sum(axis=axis, keepdims=True)
    n = f.shape[axis]
    return np.where(total > 0, f / np.where(total > 0, total, 1.0), 1.0 / n)


def deblend_images(image: np.ndarray, ids: np.ndarray, fractions: np.ndarray,
                   n_sources: int) -> np.ndarray:
    """Split ``image`` (b, h, w) into ``n_sources`` images using slot ids and fractions.

    ``ids`` is (n, h, w) and ``fractions`` (b, n, h, w). Slots that resolve to the same
    source add up. Non-finite image pixels contribute nothing.
    """
    image = np.asarray(image, dtype=np.float64)
    n_band, h, w = image.shape
    out = np.zeros((n_band, n_sources * h * w), dtype=np.float64)
    img = np.nan_to_num(image.reshape(n_band, h * w), nan=0.0, posinf=0.0, neginf=0.0)
    frac = np.asarray(fractions, np.float64).reshape(n_band, ids.shape[0], h * w)
    pix = np.arange(h * w)
    for k in range(ids.shape[0]):
        src = ids[k].ravel()
        claimed = src >= 0
        flat_index = src[claimed] * (h * w) + pix[claimed]
        for b in range(n_band):
            out[b] += np.bincount(flat_index, weights=img[b, claimed] * frac[b, k, claimed],
                                  minlength=n_sources * h * w)
    out = out.reshape(n_band, n_sources, h, w).transpose(1, 0, 2, 3)
    return out.astype(np.float32)


def decode(image: np.ndarray, center: np.ndarray, vectors: np.ndarray, fractions: np.ndarray,
           *, threshold: float = 0.1, window: int = 7, valid: np.ndarray | None = None,
           vote: str = "vectors", smoothing: float = 0.0,
           center_sigma: float = PAPER_CENTER_SIGMA) -> Decoded:
    """Decode one tile's PCR into detected sources and their share of every pixel.

    Parameters
    ----------
    image : ndarray (b, h, w)
        The image the PCR describes (only used for shape checks here; call
        :meth:`Decoded.deblend` for the per-source images).
    center, vectors, fractions : ndarray
        ``C^c (h, w)``, ``C^v (h, w, n, 2)``, ``C^m (h, w, b, n)``.
    threshold, window : float, int
        Peak threshold on the centre map and the peak-finding box size.
    smoothing, center_sigma : float
        The centre map's matched filter (:func:`find_peaks`); 0 finds peaks on the bare map.
    valid : ndarray of bool (h, w), optional
        Pixels that may hold peaks and be claimed (e.g. not NaN, inside the mosaic).
    vote : {"vectors", "geometric", "mixed"}
        How slots are resolved to sources (see :func:`resolve_votes`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[0:32, 0:32]
    >>> srcs = np.stack([np.exp(-((yy - 8.2) ** 2 + (xx - 9.0) ** 2) / 8),
    ...                  np.exp(-((yy - 20.0) ** 2 + (xx - 22.7) ** 2) / 8)])[:, None]
    >>> image = srcs.sum(0)
    >>> p = encode([[8.2, 9.0], [20.0, 22.7]], srcs, center_sigma=2.0)
    >>> d = decode(image, p.center, p.vectors, p.fractions)
    >>> np.round(d.peaks.yx, 2).tolist()
    [[8.2, 9.0], [20.0, 22.7]]
    >>> bool(np.allclose(d.deblend(image).sum(0), image, atol=1e-6))
    True
    """
    image = np.asarray(image)
    h, w = center.shape
    if image.ndim != 3 or image.shape[1:] != (h, w):
        raise ValueError(f"image must be (b, {h}, {w}), got {image.shape}")
    if vectors.shape[:2] != (h, w) or fractions.shape[:2] != (h, w):
        raise ValueError("center, vectors and fractions must share (h, w)")
    if valid is None:
        valid = np.all(np.isfinite(image), axis=0)
    peaks = find_peaks(center, threshold=threshold, window=window, valid=valid,
                       smoothing=smoothing, center_sigma=center_sigma)
    ids = resolve_votes(vectors, peaks.yx, valid=valid, mode=vote)
    frac = normalise_fractions(fractions, axis=-1).astype(np.float32)  # (h, w, b, n)
    return Decoded(peaks=peaks, ids=ids, fractions=np.transpose(frac, (2, 3, 0, 1)))
