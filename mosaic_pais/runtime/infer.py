"""Inference: the network over every tile of a block, each tile's core written to the store.

A block (a rectangle of tiles, the unit of a Dask task) reads its window of the mosaic once,
cuts from it what the network reads at once — groups of tiles as one window
(:func:`mosaic_pais.runtime.tile.network_windows`), padding outside the mosaic with zeros marked
invalid, never mirrored — runs them through the model and writes the cores of their PCR into
the global store.
Cores are disjoint and the store is chunked by block cores, so no two tasks touch the same
chunk. The model is loaded once per worker process (:func:`predictor_for`).
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from mosaic_pais.runtime.robust import clipped_std
from mosaic_pais.runtime.store import VECTOR_DTYPE, VECTOR_STEP, open_array, sampled, stored_region

__all__ = [
    "predictor_for",
    "TEXTURE_BLOCK",
    "estimate_noise",
    "estimate_noise_sigma",
    "CONTEXT_WINDOWS",
    "CONTEXT_MIN_VALID",
    "mosaic_contexts",
    "context_windows",
    "predict_block",
    "write_block",
]

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached_predictor(model_path: str, batch_size: int, precision: str):
    from mosaic_pais.nn.model import PAISPredictor

    return PAISPredictor(model_path, batch_size=batch_size, precision=precision)


def predictor_for(model_path: str | Path, batch_size: int = 16, precision: str = "float32"):
    """The model of this worker process, loaded on first use (one instance per process).

    On a distributed worker the :class:`~mosaic_pais.runtime.cluster.ModelPlugin` loads it at worker
    start-up, so the first task does not pay for it; the cache is the same.
    """
    with _LOCK:  # threads of one worker must not load the same model twice
        return _cached_predictor(str(model_path), int(batch_size), str(precision))


def _per_window(image, statistic, n_windows: int, size: int, seed: int) -> np.ndarray:
    """``statistic(band pixels)`` per band, the median over sample windows of the mosaic.

    Only the windows are read. ``statistic`` returns a tuple of figures; the median over
    windows, taken per band and figure, keeps a few crowded or empty windows from biasing
    them. The result is (band, figure); a band without any usable window gives NaN (checked
    by callers).
    """
    import warnings

    from mosaic_pais.runtime.tile import WindowReader, sample_windows

    values = []
    for y0, y1, x0, x1 in sample_windows(image.shape, n_windows, size, seed):
        if isinstance(image, WindowReader):  # read as the run reads it (sky subtracted)
            pixels, valid = image.read((y0, y1, x0, x1))
            block = np.where(valid, pixels, np.nan).astype(np.float64)
        else:
            block = np.asarray(image[:, y0:y1, x0:x1], dtype=np.float64)
        values.append([statistic(band) for band in block])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(np.asarray(values, np.float64), axis=0), np.float64)


def _pixel_noise(band: np.ndarray) -> float:
    return clipped_std(band[np.isfinite(band) & (band != 0)])


#: side (px) of the blocks over which :func:`estimate_noise` measures the noise texture
TEXTURE_BLOCK = 4


def _noise_and_texture(band: np.ndarray, block: int = TEXTURE_BLOCK) -> tuple[float, float]:
    """One window's pixel noise, and the noise of its block means × block / pixel noise."""
    pixel = _pixel_noise(band)
    h, w = (band.shape[0] // block) * block, (band.shape[1] // block) * block
    if h == 0 or w == 0 or not pixel > 0:  # no texture without noise (a flat or empty window)
        return pixel, np.nan
    cut = band[:h, :w]
    good = np.isfinite(cut) & (cut != 0)
    full = good.reshape(h // block, block, w // block, block).all(axis=(1, 3))
    means = np.where(good, cut, 0.0).reshape(h // block, block, w // block, block).mean(
        axis=(1, 3))
    return pixel, block * clipped_std(means[full]) / pixel


def estimate_noise(image, n_windows: int = 48, size: int = 256,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band pixel noise and noise texture of a (band, y, x) array (numpy or dask, or a
    :class:`~mosaic_pais.runtime.tile.WindowReader`).

    Both come from the same windows spread over the mosaic, and only those are read.

    * The **noise sigma** is the median absolute deviation of sigma-clipped pixels (sources
      are clipped away).
    * The **noise texture** says how much more noise there is on 4-px scales than white noise
      would have: the noise of 4×4-pixel block means over the pixel noise / 4. It is 1 for
      white noise, about 1.7 for drizzled HST data (noise correlated by a 0.6 px Gaussian),
      2.3 at 0.9 px. At the same pixel S/N, correlated noise makes more and brighter noise
      peaks, so the detection threshold follows it
      (:func:`mosaic_pais.nn.model.detection_threshold`).

    >>> rng = np.random.default_rng(1)
    >>> white = rng.normal(0, 2.0, (1, 256, 256))
    >>> sigma, texture = estimate_noise(white, n_windows=1)
    >>> round(float(sigma[0]), 1), round(float(texture[0]), 1)
    (2.0, 1.0)
    >>> from scipy.ndimage import gaussian_filter
    >>> drizzled = gaussian_filter(white[0], 0.6)[None]
    >>> 1.6 < float(estimate_noise(drizzled, n_windows=1)[1][0]) < 1.9
    True
    >>> estimate_noise(np.ones((1, 64, 64)), n_windows=1)  # flat: no noise, so no texture
    (array([0.]), array([nan]))
    """
    figures = _per_window(image, _noise_and_texture, n_windows, size, seed)
    return figures[:, 0], figures[:, 1]


def estimate_noise_sigma(image, n_windows: int = 48, size: int = 256, seed: int = 0) -> np.ndarray:
    """Robust per-band pixel noise of a (band, y, x) array: :func:`estimate_noise`'s first half.

    When the texture is wanted too, call :func:`estimate_noise`: it reads the windows once.
    """
    return _per_window(image, lambda band: (_pixel_noise(band),), n_windows, size, seed)[:, 0]


#: windows whose attention contexts are averaged into the mosaic's (:func:`mosaic_contexts`)
CONTEXT_WINDOWS = 32
#: a window with less than this share of valid pixels does not count towards them
CONTEXT_MIN_VALID = 0.5


def mosaic_contexts(image, predictor, noise_sigma, tile: int = 256,
                    n_windows: int = CONTEXT_WINDOWS, seed: int = 0) -> list[np.ndarray]:
    """The mosaic's attention contexts: each layer's, averaged over windows spread across it.

    FANet attention gives every pixel of a tile one summary of the whole tile. Per tile, that
    summary changes with whatever else the tile holds, so moving the tile grid (another margin)
    moves every prediction a little and faint sources flip across the threshold. The mosaic's
    summary, the mean over ``n_windows`` ``tile``-sized windows at seeded places
    (:func:`~mosaic_pais.runtime.tile.sample_windows`, the same for any grid, block size or resume),
    is what the network would read if it saw the whole mosaic, and the same for every tile.
    Windows mostly outside the data (less than :data:`CONTEXT_MIN_VALID` valid) are skipped
    while others can be found, so empty borders do not dilute it.

    Parameters
    ----------
    image : :class:`~mosaic_pais.runtime.tile.WindowReader` or (band, y, x) array
    predictor : :class:`~mosaic_pais.nn.model.PAISPredictor`
    noise_sigma : per-band noise, the model's input unit.
    tile : int
        Window side (a multiple of the network's lattice); windows pad beyond small mosaics.

    Returns
    -------
    list of ndarray (key_filters, filters), one per attention layer.
    """
    data, valid = context_windows(image, tile, n_windows, seed)
    return predictor.attention_contexts(data, noise_sigma, valid)


def context_windows(image, tile: int = 256, n_windows: int = CONTEXT_WINDOWS,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The windows (n, b, tile, tile) and their validity (n, tile, tile) that
    :func:`mosaic_contexts` averages: seeded places, those at least
    :data:`CONTEXT_MIN_VALID` valid, up to ``4·n_windows`` tried; all tried if none is.

    >>> image = np.ones((1, 300, 1000), np.float32)
    >>> image[:, :, 600:] = np.nan  # two fifths of the mosaic hold no data
    >>> data, valid = context_windows(image, n_windows=8)
    >>> data.shape, bool(valid.mean(axis=(1, 2)).min() >= CONTEXT_MIN_VALID)
    ((8, 1, 256, 256), True)
    """
    from mosaic_pais.runtime.tile import WindowReader, sample_windows

    reader = image if isinstance(image, WindowReader) else WindowReader(image)
    kept, tried = [], []
    for y0, _, x0, _ in sample_windows(reader.shape, 4 * n_windows, tile, seed):
        window = reader.read((y0, y0 + tile, x0, x0 + tile))
        tried.append(window)
        if window[1].mean() >= CONTEXT_MIN_VALID:
            kept.append(window)
            if len(kept) == n_windows:
                break
    chosen = kept or tried
    return np.stack([d for d, _ in chosen]), np.stack([v for _, v in chosen])


def predict_block(window: np.ndarray, valid: np.ndarray, networks: list, window_origin: tuple,
                  core: tuple, predictor, noise_sigma, tile_size: int,
                  with_vectors: bool = True, contexts: list | None = None) -> dict:
    """PCR of a block's core from its window.

    Parameters
    ----------
    window : (b, H, W) float32
        The block's read window (zeros outside the mosaic).
    valid : (H, W) bool
        Inside the mosaic and finite.
    networks : list of ((wy0, wy1, wx0, wx1), (cy0, cy1, cx0, cx1))
        What the network reads at once and the part of the block's core it predicts, in
        mosaic coordinates (:func:`mosaic_pais.runtime.tile.network_windows`; one tile each, or
        groups of tiles).
    window_origin : (y, x) of the window's pixel (0, 0) in the mosaic.
    core : (y0, y1, x0, x1) the block's core in the mosaic.
    predictor : callable like :class:`~mosaic_pais.nn.model.PAISPredictor`.
    noise_sigma : per-band noise, the model's input unit.
    tile_size : side of the grid's tiles: the network reads as many pixels at once as
        ``predictor.batch_size`` tiles hold, whatever the size of its windows.
    with_vectors : bool
        Whether to keep C^v (a run resolving votes geometrically never reads it).
    contexts : list of ndarray, optional
        The mosaic's attention contexts (:func:`mosaic_contexts`) instead of each window's own.

    Returns
    -------
    dict with ``center (h, w)``, ``vectors (n, 2, h, w)`` (NaN where invalid; absent without
    ``with_vectors``) and ``fractions (b, n, h, w)`` (0 where invalid) for the core.
    """
    oy, ox = window_origin
    y0, y1, x0, x1 = core
    h, w = y1 - y0, x1 - x0
    n_band = window.shape[0]
    n_slots = predictor.n_slots
    out = {"center": np.zeros((h, w), np.float32),
           "fractions": np.zeros((n_band, n_slots, h, w), np.float32)}
    if with_vectors:  # every VECTOR_STEP-th pixel of the mosaic (store.VECTOR_STEP)
        (sy0, sy1), (sx0, sx1) = sampled(y0, y1), sampled(x0, x1)
        out["vectors"] = np.full((n_slots, 2, sy1 - sy0, sx1 - sx0), np.nan, VECTOR_DTYPE)
    by_shape: dict[tuple[int, int], list] = {}  # windows of one shape go through as a batch
    for net in networks:
        (wy0, wy1, wx0, wx1), _ = net
        by_shape.setdefault((wy1 - wy0, wx1 - wx0), []).append(net)
    budget = max(1, getattr(predictor, "batch_size", 16)) * tile_size ** 2
    for (wh, ww), nets in by_shape.items():
        per_call = max(1, budget // (wh * ww))
        for start in range(0, len(nets), per_call):
            _predict_windows(nets[start:start + per_call], window, valid, (oy, ox), core,
                             predictor, noise_sigma, with_vectors, contexts, out)
    return out


def _predict_windows(nets: list, window: np.ndarray, valid: np.ndarray, origin: tuple,
                     core: tuple, predictor, noise_sigma, with_vectors: bool,
                     contexts: list | None, out: dict) -> None:
    """Network windows of one shape through the model; their cores copied into ``out``."""
    oy, ox = origin
    y0, x0 = core[0], core[2]
    cuts = [(slice(wy0 - oy, wy1 - oy), slice(wx0 - ox, wx1 - ox))
            for (wy0, wy1, wx0, wx1), _ in nets]
    batch = np.stack([window[(slice(None), *cut)] for cut in cuts])
    masks = np.stack([valid[cut] for cut in cuts])
    pred = predictor(batch, noise_sigma, masks,
                     outputs=("center", "vectors", "fractions") if with_vectors
                     else ("center", "fractions"), contexts=contexts)
    for i, ((wy0, _, wx0, _), (cy0, cy1, cx0, cx1)) in enumerate(nets):
        src = (slice(cy0 - wy0, cy1 - wy0), slice(cx0 - wx0, cx1 - wx0))
        dst = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        ok = masks[i][src]
        out["center"][dst] = np.where(ok, pred.center[i][src], 0.0)
        if with_vectors:  # the samples inside this window's core, on the mosaic's lattice
            (sy0, sy1), (sx0, sx1) = sampled(cy0, cy1), sampled(cx0, cx1)
            pick = (slice(sy0 * VECTOR_STEP - wy0, cy1 - wy0, VECTOR_STEP),
                    slice(sx0 * VECTOR_STEP - wx0, cx1 - wx0, VECTOR_STEP))
            vec = np.transpose(pred.vectors[i][pick], (2, 3, 0, 1))  # (n, 2, sh, sw)
            base_y, base_x = sampled(y0, y0)[0], sampled(x0, x0)[0]
            out["vectors"][:, :, sy0 - base_y:sy1 - base_y, sx0 - base_x:sx1 - base_x] = \
                np.where(masks[i][pick], vec, np.nan)
        frac = np.transpose(pred.fractions[i][src], (2, 3, 0, 1))  # (b, n, h, w)
        out["fractions"][(slice(None), slice(None), *dst)] = np.where(ok, frac, 0.0)


def write_block(store: str | Path, scratch: str | Path, core: tuple, result: dict) -> None:
    """Write one block's core: the centre map into the PCR store, raw fractions (and vectors,
    when kept) into the scratch store."""
    y0, y1, x0, x1 = core
    open_array(store, "center", mode="r+")[y0:y1, x0:x1] = result["center"]
    open_array(scratch, "raw_fractions", mode="r+")[:, :, y0:y1, x0:x1] = result["fractions"]
    if "vectors" in result:
        vy0, vy1, vx0, vx1 = stored_region("vectors", core)
        open_array(scratch, "vectors", mode="r+")[:, :, vy0:vy1, vx0:vx1] = result["vectors"]
