"""Total fluxes from footprint sums: the light beyond a footprint, from the PSF's curve of growth.

A footprint sum (:mod:`mosaic_pais.runtime.measure`) misses the light beyond the footprint:
the PSF's wings alone hold 13% of a point source's light beyond 6 px at F160W (0.06″/px), and
an extended galaxy loses more. SExtractor's ``MAG_AUTO`` and photutils' Kron fluxes miss it
the same way; surveys correct their Kron fluxes for it with the PSF's curve of growth. This
module goes one step further, so that extended sources are corrected too: each source is taken
as the PSF convolved with an exponential disk whose scale length makes the model's light,
*truncated at the same footprint*, enclose half of itself at the source's measured ``r50``;
the footprint sum is divided by the share of that model's light the footprint holds.

The model family is a choice: between a point source (scale length 0) and an exponential disk
of 30 px it spans stars, discs and most of a bulge's light; a de Vaucouleurs profile has more
light in its far wings than any member and stays a few per cent low. The factor is capped
(:data:`MAX_CORRECTION`), so that a noisy profile cannot blow a faint source's flux up.

Examples
--------
A Gaussian PSF of σ = 1.5 px and two sources measured inside 3 px: a point source (its r50
inside the footprint is the PSF's own) and a larger one:

>>> y, x = np.mgrid[-20:21, -20:21]
>>> curves = GrowthCurves.from_psf(np.exp(-(x ** 2 + y ** 2) / (2 * 1.5 ** 2)))
>>> point_r50 = curves.truncated_r50(np.array([3.0]))[0, 0]
>>> factors = curves.correction(np.array([point_r50, 1.8]), np.array([3.0, 3.0]))
>>> np.round(factors, 3).tolist()  # 1 / the PSF's encircled energy, then more
[1.17, 1.339]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GrowthCurves", "MAX_CORRECTION", "SCALE_LENGTHS", "read_psf"]

BIN = 0.5  # px: the radial bins of the measured profiles (mosaic_pais.runtime.measure.BIN)
MAX_CORRECTION = 2.0
#: the exponential scale lengths (px) of the model family; 0 is the PSF alone
SCALE_LENGTHS = np.concatenate([[0.0], np.geomspace(0.2, 30.0, 40)])
_GRID = 256  # px: the model images (a 30 px disk holds 99.9% of its light within 128 px)
_OFFSETS = ((0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5))  # sub-pixel centres averaged
_SUBPIXELS = 5  # per pixel side, to sample the disks' cusps


@dataclass(frozen=True)
class GrowthCurves:
    """Curves of growth of the model family: ``enclosed[s, k]`` is the share of the light of
    PSF ⊗ exponential(``scale_lengths[s]``) in the pixels whose centres lie within
    ``edges[k] = (k + 1)·BIN`` px of the source's centre, averaged over sub-pixel centres."""

    edges: np.ndarray
    enclosed: np.ndarray
    scale_lengths: np.ndarray

    @classmethod
    def from_psf(cls, psf: np.ndarray, scale_lengths: np.ndarray = SCALE_LENGTHS
                 ) -> GrowthCurves:
        """The curves for a PSF image sampled on the mosaic's pixels (any size, any centre:
        it is normalised and centred on its own centroid)."""
        psf = np.asarray(psf, np.float64)
        if psf.ndim != 2 or not np.all(np.isfinite(psf)) or psf.sum() <= 0:
            raise ValueError("the PSF must be a finite 2-D image with positive total")
        psf_ft = _centred_transform(psf)
        radius = _wrapped_radius()
        edges = (np.arange(_GRID // 2 / BIN, dtype=np.int64) + 1) * BIN
        curves = np.zeros((len(scale_lengths), len(edges)))
        offsets = [(_shift_phase(dy, dx),
                    np.minimum((radius(dy, dx) / BIN).astype(np.int64), len(edges) - 1).ravel())
                   for dy, dx in _OFFSETS]
        for s, h in enumerate(scale_lengths):
            model_ft = _disk_transform(h) * psf_ft
            for shift, bins in offsets:
                image = np.fft.irfft2(model_ft * shift, s=(_GRID, _GRID))
                ring = np.bincount(bins, image.ravel(), len(edges))
                curves[s] += np.cumsum(ring) / image.sum()
        curves /= len(_OFFSETS)
        return cls(edges, np.maximum.accumulate(curves, axis=1),
                   np.asarray(scale_lengths, np.float64))

    def _enclosed_at(self, radius: np.ndarray) -> np.ndarray:
        """``(sizes, sources)``: each model's share of light inside each source's footprint
        (the radial bins below ``ceil(radius / BIN)``, as the footprint sums them)."""
        k = np.clip(np.ceil(np.asarray(radius, np.float64) / BIN).astype(np.int64) - 1,
                    0, len(self.edges) - 1)
        return self.enclosed[:, k]

    def truncated_r50(self, radius: np.ndarray) -> np.ndarray:
        """``(sizes, sources)``: each model's r50 measured inside each footprint radius."""
        half = 0.5 * self._enclosed_at(radius)
        return _interp_rows(half, self.enclosed, self.edges)

    def sizes(self, r50: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """Each source's model as a fractional index into ``scale_lengths``: the one whose r50
        measured inside the source's footprint radius ``radius`` equals the measured ``r50``,
        interpolated between the family's sizes (clipped to its range: a source more compact
        than the PSF is taken as a point; a non-finite ``r50`` gives the point source)."""
        r50 = np.asarray(r50, np.float64)
        model_r50 = self.truncated_r50(radius)
        target = np.where(np.isfinite(r50), r50, model_r50[0])
        target = np.clip(target, model_r50[0], model_r50[-1])
        upper = np.clip((model_r50 < target).sum(0), 1, len(self.scale_lengths) - 1)
        cols = np.arange(len(target))
        lo, hi = model_r50[upper - 1, cols], model_r50[upper, cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(np.where(hi > lo, (target - lo) / (hi - lo), 0.0), 0.0, 1.0)
        return upper - 1 + t

    def correction(self, r50: np.ndarray, radius: np.ndarray,
                   max_factor: float = MAX_CORRECTION,
                   in_band: GrowthCurves | None = None,
                   sizes: np.ndarray | None = None) -> np.ndarray:
        """The factor from each footprint sum to a total flux, at most ``max_factor``.

        ``r50`` is each source's radius enclosing half its footprint sum and ``radius`` its
        footprint radius (px); the source's model is chosen by :meth:`sizes` (or given as
        ``sizes``, its result, when several bands share it).

        ``in_band``: the curves of another band's PSF (the same family of sizes). The size is
        still chosen by this band's curves, where ``r50`` was measured, and the factor is that
        of the same exponential disk seen through the other PSF: in a multi-band run every band
        is measured in the detection band's footprints, and a sharper PSF loses less light
        beyond them.

        >>> y, x = np.mgrid[-20:21, -20:21]
        >>> wide = GrowthCurves.from_psf(np.exp(-(x ** 2 + y ** 2) / (2 * 1.5 ** 2)))
        >>> sharp = GrowthCurves.from_psf(np.exp(-(x ** 2 + y ** 2) / (2 * 0.8 ** 2)))
        >>> r50, radius = np.array([2.0]), np.array([4.0])
        >>> bool(wide.correction(r50, radius, in_band=sharp)[0] < wide.correction(r50, radius)[0])
        True
        """
        curves = self if in_band is None else self._same_sizes(in_band)
        if sizes is None:
            sizes = self.sizes(r50, radius)
        share = _at_sizes(curves._enclosed_at(radius).T, sizes)
        return np.minimum(1.0 / share, max_factor)

    def _same_sizes(self, other: GrowthCurves) -> GrowthCurves:
        if not np.array_equal(other.scale_lengths, self.scale_lengths):
            raise ValueError("the two bands' curves must share their family of sizes")
        return other

    def rings(self, n_bins: int) -> np.ndarray:
        """``(sizes, n_bins)``: each model's share of light in each radial bin of ``BIN`` px
        (the pixels whose centres lie in it)."""
        return np.diff(self.enclosed[:, :n_bins], axis=1, prepend=0.0)

    def surface_brightness(self, n_bins: int) -> np.ndarray:
        """``(sizes, n_bins)``: each model's mean surface brightness per pixel in each radial
        bin, for a total flux of 1 (its light in the bin over the bin's area)."""
        k = np.arange(n_bins)
        return self.rings(n_bins) / (np.pi * ((k + 1) ** 2 - k ** 2) * BIN ** 2)

    def matched_weights(self, n_bins: int, power: float = 1.0) -> np.ndarray:
        """``(sizes, n_bins)``: the weight of a pixel in each radial bin for a source of each
        size: the model's surface brightness to ``power``, flat inside the PSF's half-light
        radius. Flat there because a pixel's share of a compact source's light depends on
        where in the pixel its centre falls, and the curves average that over sub-pixel
        centres: weighted by the model's own cusp, a sharp band's flux would depend on it."""
        sb = self.surface_brightness(n_bins)
        core = int(np.searchsorted(self.enclosed[0], 0.5)) + 1  # bins inside the PSF's r50
        sb[:, :core] = sb[:, min(core, n_bins) - 1:min(core, n_bins)]
        return sb ** power

    def matched_norm(self, sizes: np.ndarray, n_bins: np.ndarray, weight_table: np.ndarray,
                     in_band: GrowthCurves | None = None) -> np.ndarray:
        """Each source's weighted sum of its own model of unit flux: the radial bins below
        ``n_bins`` weighted by ``weight_table`` (sizes × bins), both at the source's fractional
        size ``sizes`` (:meth:`sizes`). A weighted sum of the source's pixels over this is its
        flux, if its light follows the model. ``in_band``: the model through another band's
        PSF, weighted as in this one."""
        curves = self if in_band is None else self._same_sizes(in_band)
        n = weight_table.shape[1]
        inside = np.arange(n)[None, :] < np.asarray(n_bins)[:, None]
        weights = _rows_at_sizes(weight_table, sizes)
        return (weights * _rows_at_sizes(curves.rings(n), sizes) * inside).sum(1)


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x[s], xp[s], fp)`` for every row ``s`` at once (``xp`` rows non-decreasing,
    within [0, 1]): one search over the rows laid end to end, each shifted above the last."""
    n_rows, n = xp.shape
    shift = 2.0 * np.arange(n_rows)[:, None]
    j = np.searchsorted((xp + shift).ravel(), (x + shift).ravel(), side="right")
    j = j.reshape(x.shape) - 1 - n * np.arange(n_rows)[:, None]
    lo = np.clip(j, 0, n - 2)
    rows = np.arange(n_rows)[:, None]
    x0, x1 = xp[rows, lo], xp[rows, lo + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = fp[lo] + (x - x0) * (fp[lo + 1] - fp[lo]) / (x1 - x0)
    return np.where(j < 0, fp[0], np.where(j >= n - 1, fp[-1], inner))


def _bracket(sizes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The lower of the two tabulated sizes around each fractional size index (of ``n``
    sizes) and the weight of the upper one."""
    lo = np.clip(np.floor(sizes).astype(np.int64), 0, n - 2)
    return lo, sizes - lo


def _rows_at_sizes(table: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(sources, bins)``: the rows of ``table`` (sizes × bins) at each source's fractional
    size index, interpolated between the two nearest sizes."""
    lo, t = _bracket(sizes, len(table))
    return (1 - t)[:, None] * table[lo] + t[:, None] * table[lo + 1]


def _at_sizes(table: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``table[source, size]`` (sources × sizes) at each source's fractional size index."""
    lo, t = _bracket(sizes, table.shape[1])
    rows = np.arange(len(sizes))
    return (1 - t) * table[rows, lo] + t * table[rows, lo + 1]


def _wrapped_radius():
    """Distances on the periodic model grid from a centre at (dy, dx) near the origin."""
    idx = (np.arange(_GRID) + _GRID // 2) % _GRID - _GRID // 2

    def radius(dy: float, dx: float) -> np.ndarray:
        return np.hypot(idx[:, None] - dy, idx[None, :] - dx)

    return radius


def _shift_phase(dy: float, dx: float) -> np.ndarray:
    """The Fourier factor that moves an image on the grid by (dy, dx) px."""
    ky = np.fft.fftfreq(_GRID)[:, None]
    kx = np.fft.rfftfreq(_GRID)[None, :]
    return np.exp(-2j * np.pi * (ky * dy + kx * dx))


def _centred_transform(psf: np.ndarray) -> np.ndarray:
    """The PSF's transform on the model grid, normalised, its centroid at the origin."""
    y0, x0 = max(psf.shape[0] - _GRID, 0) // 2, max(psf.shape[1] - _GRID, 0) // 2
    psf = psf[y0:y0 + _GRID, x0:x0 + _GRID]  # a larger image keeps its central 256²
    h, w = psf.shape
    padded = np.zeros((_GRID, _GRID))
    padded[:h, :w] = psf / psf.sum()
    yy, xx = np.mgrid[:h, :w]
    cy, cx = float((padded[:h, :w] * yy).sum()), float((padded[:h, :w] * xx).sum())
    return np.fft.rfft2(padded) * _shift_phase(-cy, -cx)


def _disk_transform(scale_length: float) -> np.ndarray:
    """The transform of a unit-flux exponential disk at the origin, sampled per pixel by
    averaging ``_SUBPIXELS²`` points (a delta function for scale length 0)."""
    if scale_length <= 0:
        return np.ones((_GRID, _GRID // 2 + 1))
    idx = (np.arange(_GRID) + _GRID // 2) % _GRID - _GRID // 2
    sub = (np.arange(_SUBPIXELS) + 0.5) / _SUBPIXELS - 0.5
    disk = np.zeros((_GRID, _GRID))
    for oy in sub:
        for ox in sub:
            disk += np.exp(-np.hypot(idx[:, None] + oy, idx[None, :] + ox) / scale_length)
    return np.fft.rfft2(disk / disk.sum())


def read_psf(path) -> np.ndarray:
    """A PSF image from the primary (or first image) HDU of a FITS file."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is not None and np.ndim(hdu.data) == 2:
                return np.asarray(hdu.data, np.float64)
    raise ValueError(f"{path}: no 2-D image in the file")
