"""Stitching: one global, deduplicated list of sources from the blocks' PCR.

This is the one place where blocks meet (like dask-image's label stitching):

1. **Peaks.** Each block looks for peaks of the global centre map in its core plus a halo
   derived from the peak finder (:func:`peak_halo`): wide enough that a peak near a core border
   is judged on its whole box, with the pixels needed for sub-pixel refinement. A peak belongs
   to the block whose core holds its maximum pixel, so none is counted twice or lost. Global ids
   are ranks in row-major order of that pixel: the same whatever the blocks or the cluster.
2. **Votes.** Every pixel's n claim vectors point somewhere; each vote is resolved to the
   nearest global peak. Fractions below ``min_fraction`` are dropped and the rest renormalised,
   so "the source holds a fraction > 0 of this pixel" means something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosaic_pais.pcr import find_peaks, normalise_fractions, resolve_votes
from mosaic_pais.store import open_array

Region = tuple[int, int, int, int]  # (y0, y1, x0, x1), a block's core in mosaic pixels


def peak_halo(window: int) -> int:
    """Halo (px) a block needs around its core to find peaks exactly as on the whole map.

    The maximum filter needs ``window // 2`` pixels; refining a peak needs one more; and a flat
    top (rare, but sigmoid outputs can saturate) must be seen whole to pick its first pixel, for
    which the box size again is ample.
    """
    return window // 2 + 1 + window


def peaks_in_region(store: str | Path, region: Region, shape: tuple[int, int],
                    threshold: float, window: int) -> dict:
    """Peaks of the global centre map whose maximum pixel lies in ``region``."""
    y0, y1, x0, x1 = region
    halo = peak_halo(window)
    wy0, wx0 = max(y0 - halo, 0), max(x0 - halo, 0)
    wy1, wx1 = min(y1 + halo, shape[0]), min(x1 + halo, shape[1])
    center = np.asarray(open_array(store, "center")[wy0:wy1, wx0:wx1])
    peaks = find_peaks(center, threshold=threshold, window=window)
    iy, ix = peaks.iy + wy0, peaks.ix + wx0
    own = (iy >= y0) & (iy < y1) & (ix >= x0) & (ix < x1)
    return {"iy": iy[own], "ix": ix[own], "y": peaks.y[own] + wy0, "x": peaks.x[own] + wx0,
            "score": peaks.score[own]}


def merge_peaks(parts: list[dict]) -> dict:
    """Concatenate per-block peaks and sort them into global id order (row-major pixel)."""
    keys = ("iy", "ix", "y", "x", "score")
    merged = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in keys}
    order = np.lexsort((merged["ix"], merged["iy"]))
    out = {k: v[order] for k, v in merged.items()}
    out["id"] = np.arange(len(order), dtype=np.int64)
    return out


def resolve_region(scratch: str | Path, region: Region, peaks_yx: np.ndarray,
                   min_fraction: float = 0.01, vote: str = "vectors"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Global ids and cleaned fractions of one block's core, returned and written to the
    scratch store (the measuring pass writes the final, footprint-limited ones to pcr.zarr)."""
    y0, y1, x0, x1 = region
    raw = open_array(scratch, "raw_fractions")
    frac = np.asarray(raw[:, :, y0:y1, x0:x1], dtype=np.float64)  # (b, n, h, w)
    if vote == "geometric":  # C^v was never stored; valid pixels are those given fractions
        valid = frac[0].sum(0) > 0
        vectors = np.broadcast_to(np.zeros(2), (*valid.shape, frac.shape[1], 2))
    else:
        vec = np.asarray(open_array(scratch, "vectors")[:, :, y0:y1, x0:x1])  # (n, 2, h, w)
        vectors = np.transpose(vec, (2, 3, 0, 1))
        valid = np.all(np.isfinite(vectors), axis=(-1, -2))
    ids = resolve_votes(vectors, peaks_yx, origin=(y0, x0), valid=valid, mode=vote)
    frac = np.where(frac >= min_fraction, frac, 0.0)
    frac = normalise_fractions(frac, axis=1)
    frac = np.where((ids >= 0)[None], frac, 0.0)
    open_array(scratch, "ids", mode="r+")[:, y0:y1, x0:x1] = ids
    frac = frac.astype(np.float32)
    open_array(scratch, "fractions", mode="r+")[:, :, y0:y1, x0:x1] = frac
    return ids, frac
