"""The sky background: a coarse map of the sky level, estimated once and subtracted wherever
the image is read.

The network was trained on sky-subtracted images (drizzled HST mosaics are), in units of the
noise. An image that still holds its sky, as a ground-based frame does, reaches it tens or
hundreds of σ above zero everywhere, and the network then finds almost nothing (3 of the 65
objects SExtractor finds on a ground-based R-band frame, ``tests/data``). So, as
SExtractor does by default (``BACK_SIZE``, ``BACK_FILTERSIZE``), every run estimates the sky on
a mesh of ``mesh`` × ``mesh`` px cells, median-filters the cell values over 3 × 3 cells, and
subtracts the map interpolated between the cells' centres, in inference and in the
measurements alike. On an image already sky-subtracted the map is close to zero.

:func:`mesh_levels` reduces a strip of whole mesh rows to its cells' levels (a task of the
run, reading only that strip); :func:`sky_map` turns all the levels into a :class:`SkyMap`;
:func:`estimate_sky` does both on an array in memory or on a dask array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mosaic_pais.runtime.robust import clipped_mode

__all__ = [
    "DEFAULT_MESH",
    "FILTER_CELLS",
    "MIN_VALID_SHARE",
    "SAMPLES_PER_SIDE",
    "SkyMap",
    "mesh_levels",
    "sky_map",
    "strips",
    "strip_levels",
    "estimate_sky",
    "subtract_sky",
]

#: cell side (px). SExtractor's default is 64; galaxies at HST resolution are large (tens of
#: pixels), and a cell that one galaxy fills measures the galaxy, not the sky
DEFAULT_MESH = 128
#: cells over which the cell levels are median-filtered (SExtractor's BACK_FILTERSIZE)
FILTER_CELLS = 3
#: a cell with fewer valid pixels than this share takes the level of the nearest good cell
MIN_VALID_SHARE = 0.25
#: pixels sampled along a cell side, evenly spaced (the sky varies slowly: 64 × 64 pixels 2 px
#: apart pin a cell's level to about 0.03σ, its 3 × 3 median to about 0.015σ; half as many
#: per side, twice as noisy, moved a 768² simulated run's catalogue by 10% under a sloping
#: sky, tests/test_background.py, because the shipped network reads the mean level)
SAMPLES_PER_SIDE = 64


@dataclass(frozen=True)
class SkyMap:
    """The sky levels of a mesh of cells (band, cells_y, cells_x), cell side ``mesh`` px."""

    levels: np.ndarray
    mesh: int

    def window(self, window: tuple[int, int, int, int]) -> np.ndarray:
        """The sky (band, h, w) over a (y0, y1, x0, x1) window: bilinear between cell centres,
        extrapolated to the image edges, constant beyond.

        >>> sky = SkyMap(np.array([[[0.0, 4.0]]]), mesh=4)
        >>> sky.window((0, 1, -2, 10))[0, 0].tolist()
        [-2.0, -2.0, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.0, 6.0]
        """
        y0, y1, x0, x1 = window
        wy = _interpolation_weights(np.arange(y0, y1), self.mesh, self.levels.shape[1])
        wx = _interpolation_weights(np.arange(x0, x1), self.mesh, self.levels.shape[2])
        # only the cells the window touches, and two matrix products: (h × i)(i × j)(j × w)
        rows = np.flatnonzero(wy.any(axis=0))
        cols = np.flatnonzero(wx.any(axis=0))
        wy, wx = wy[:, rows], wx[:, cols]
        levels = self.levels[:, rows][:, :, cols]
        return np.stack([wy @ band @ wx.T for band in levels]).astype(np.float32)

    def to_json(self) -> dict:
        return {"mesh": self.mesh, "levels": self.levels.tolist()}

    @classmethod
    def from_json(cls, value: dict) -> SkyMap:
        return cls(np.asarray(value["levels"], np.float64), int(value["mesh"]))


def _interpolation_weights(coords: np.ndarray, mesh: int, n_cells: int) -> np.ndarray:
    """Linear-interpolation weights (len(coords), n_cells) of pixels between cell centres,
    extrapolated over the outer half cells (a sloping sky keeps its slope to the edge) and
    held beyond them."""
    rows = np.arange(len(coords))
    weights = np.zeros((len(coords), n_cells))
    if n_cells == 1:
        weights[:, 0] = 1.0
        return weights
    position = np.clip((coords + 0.5) / mesh - 0.5, -0.5, n_cells - 0.5)
    lo = np.clip(np.floor(position).astype(int), 0, n_cells - 2)
    t = position - lo
    weights[rows, lo] = 1 - t
    weights[rows, lo + 1] = t
    return weights


def _clipped_level(samples: np.ndarray) -> np.ndarray:
    """SExtractor's sky estimate of each row of ``samples`` (NaN: not a sample):
    :func:`mosaic_pais.runtime.robust.clipped_mode`, three rounds of clipping at 3σ about the
    median, then the mode estimate (the median in a crowded cell)."""
    return np.array([clipped_mode(row) for row in samples], np.float64)


def mesh_levels(strip: np.ndarray, valid: np.ndarray, mesh: int) -> np.ndarray:
    """The sky level of each cell of a strip of whole mesh rows.

    ``strip`` is (band, h, w) with h a multiple of ``mesh`` except for the mosaic's last row
    of cells; ``valid`` (h, w) marks the pixels that count. Returns (band, cells_y, cells_x),
    NaN where a cell has too few valid pixels (:data:`MIN_VALID_SHARE`).
    """
    import warnings

    n_band, h, w = strip.shape
    ny, nx = -(-h // mesh), -(-w // mesh)
    step = max(1, mesh // SAMPLES_PER_SIDE)
    levels = np.full((n_band, ny, nx), np.nan)
    for iy in range(ny):
        rows = slice(iy * mesh, min((iy + 1) * mesh, h), step)
        cells = []
        for ix in range(nx):
            cols = slice(ix * mesh, min((ix + 1) * mesh, w), step)
            cells.append((rows, cols))
        size = max(len(range(*r.indices(h))) * len(range(*c.indices(w))) for r, c in cells)
        samples = np.full((n_band, nx, size), np.nan)
        usable = np.zeros(nx, bool)
        for ix, (r, c) in enumerate(cells):
            ok = valid[r, c]
            share = ok.mean() if ok.size else 0.0
            usable[ix] = share >= MIN_VALID_SHARE
            values = np.where(ok, strip[:, r, c], np.nan).reshape(n_band, -1)
            samples[:, ix, :values.shape[1]] = values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: NaN, as meant
            for b in range(n_band):
                levels[b, iy] = np.where(usable, _clipped_level(samples[b]), np.nan)
    return levels


def sky_map(levels: np.ndarray, mesh: int) -> SkyMap:
    """The cells' levels (band, cells_y, cells_x; NaN where unknown) as a smooth sky map.

    Unknown cells take the level of the nearest known one; then each level is the median of
    the :data:`FILTER_CELLS` × :data:`FILTER_CELLS` cells around it, so that one bright galaxy
    filling a cell does not make a hole in the sky. With no known cell at all the sky is 0.

    >>> levels = np.full((1, 3, 3), 10.0)
    >>> levels[0, 1, 1] = 50.0          # a cell that a galaxy fills
    >>> levels[0, 0, 2] = np.nan        # a cell off the data
    >>> sky_map(levels, 64).levels[0].tolist()
    [[10.0, 10.0, 10.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.0]]
    """
    from scipy import ndimage

    levels = np.asarray(levels, np.float64).copy()
    for b in range(levels.shape[0]):
        known = np.isfinite(levels[b])
        if not known.any():
            levels[b] = 0.0
            continue
        if not known.all():
            nearest = ndimage.distance_transform_edt(~known, return_distances=False,
                                                     return_indices=True)
            levels[b] = levels[b][tuple(nearest)]
        levels[b] = ndimage.median_filter(levels[b], size=FILTER_CELLS, mode="nearest")
    return SkyMap(levels, int(mesh))


def strips(height: int, mesh: int, rows_per_strip: int = 4) -> list[tuple[int, int]]:
    """(y0, y1) of strips of whole mesh rows covering ``height`` px.

    >>> strips(1000, 128, rows_per_strip=4)
    [(0, 512), (512, 1000)]
    """
    side = mesh * rows_per_strip
    return [(y0, min(y0 + side, height)) for y0 in range(0, height, side)]


def strip_levels(rows: tuple[int, int], *, image, mesh: int) -> np.ndarray:
    """The cells' levels (:func:`mesh_levels`) of the strip of rows ``rows`` of a (band, y, x)
    array, or of a :class:`~mosaic_pais.runtime.tile.WindowReader` (how a run's task gets it)."""
    from mosaic_pais.runtime.tile import WindowReader

    reader = image if isinstance(image, WindowReader) else WindowReader(image)
    strip, valid = reader.read((rows[0], rows[1], 0, reader.shape[2]))
    return mesh_levels(strip, valid, mesh)


def estimate_sky(image, mesh: int = DEFAULT_MESH) -> SkyMap:
    """The sky map of a (band, y, x) numpy or dask array, read strip by strip.

    >>> rng = np.random.default_rng(0)
    >>> image = 100.0 + rng.normal(0, 1.0, (1, 256, 512))
    >>> sky = estimate_sky(image, mesh=128)
    >>> sky.levels.shape, bool(np.allclose(sky.levels, 100.0, atol=0.1))
    ((1, 2, 4), True)
    """
    parts = [strip_levels(rows, image=image, mesh=mesh) for rows in strips(image.shape[1], mesh)]
    return sky_map(np.concatenate(parts, axis=1), mesh)


def subtract_sky(image: np.ndarray, mesh: int = DEFAULT_MESH) -> np.ndarray:
    """A (band, y, x) image in memory with its sky subtracted as a run subtracts it (NaN
    pixels stay NaN).

    >>> image = np.full((1, 64, 64), 7.0)
    >>> float(np.abs(subtract_sky(image)).max())
    0.0
    """
    _, h, w = image.shape
    return image - estimate_sky(image, mesh).window((0, h, 0, w))
