"""Classical detectors run on the same images as the model: sep (SExtractor) and photutils.

Both return an astropy Table with ``id``, ``x``, ``y`` (0-based numpy convention, as the
catalogue contract) and ``flux`` (Kron, like SExtractor's FLUX_AUTO), so that
:func:`mosaic_pais.evaluation.metrics.evaluate` treats all methods alike.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.table import Table

from mosaic_pais.errors import require_extra

__all__ = ["SEXTRACTOR_FILTER", "run_sep", "run_photutils", "run_photutils_bands"]

# SExtractor's default.conv: a 3×3 pyramid
SEXTRACTOR_FILTER = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])


def _empty(bands=None) -> Table:
    table = Table({"id": np.zeros(0, np.int64), "x": np.zeros(0), "y": np.zeros(0),
                   "flux": np.zeros(0)})
    for band in bands or ():
        table[f"flux_{band}"] = np.zeros(0)
    return table


def run_sep(image: np.ndarray, noise_sigma: float | None = None, *, thresh: float = 1.5,
            minarea: int = 5, deblend_nthresh: int = 32, deblend_cont: float = 0.005,
            subtract_background: bool = True) -> Table:
    """SExtractor-like detection, deblending and Kron photometry with ``sep``.

    Settings follow SExtractor's common deep-field defaults: a 1.5σ threshold on the image
    filtered with default.conv, 5 connected pixels, 32 deblending sub-thresholds and a minimum
    contrast of 0.005; fluxes in 2.5 Kron radii (at least 3.5, in units of the ellipse axes),
    like FLUX_AUTO. ``noise_sigma``
    sets the threshold's σ (else sep's background RMS).
    """
    require_extra("peers", "run_sep")
    import sep

    data = np.ascontiguousarray(np.nan_to_num(np.asarray(image, np.float64)))
    sep.set_extract_pixstack(max(3_000_000, data.size))
    sep.set_sub_object_limit(4096)
    if subtract_background:
        bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
        data = data - bkg.back()
        rms = bkg.globalrms
    else:
        rms = float(np.std(data))
    err = float(noise_sigma) if noise_sigma else rms
    try:
        objects = sep.extract(data, thresh, err=err, minarea=minarea,
                              filter_kernel=SEXTRACTOR_FILTER, deblend_nthresh=deblend_nthresh,
                              deblend_cont=deblend_cont)
    except Exception:  # noqa: BLE001 - sep raises on pathological images: report nothing found
        return _empty()
    if len(objects) == 0:
        return _empty()
    x, y = objects["x"], objects["y"]
    a, b, theta = objects["a"], objects["b"], np.clip(objects["theta"], -np.pi / 2, np.pi / 2)
    kron, _ = sep.kron_radius(data, x, y, a, b, theta, 6.0)
    # SExtractor's PHOT_AUTOPARAMS 2.5, 3.5: 2.5 Kron radii, never under 3.5 (units of a, b)
    good = np.isfinite(kron) & (kron > 0)
    scale = np.where(good, np.maximum(2.5 * kron, 3.5), 3.5)
    flux, _, _ = sep.sum_ellipse(data, x, y, a, b, theta, scale, subpix=5)
    return Table({"id": np.arange(len(x), dtype=np.int64), "x": x, "y": y, "flux": flux})


def _photutils_segments(data: np.ndarray, sigma: float, nsigma: float, npixels: int,
                        nlevels: int, contrast: float):
    """photutils' deblended segmentation of a background-subtracted image and the smoothed
    image it was found on; None when nothing is detected."""
    from astropy.convolution import convolve
    from photutils.segmentation import deblend_sources, detect_sources, make_2dgaussian_kernel

    smoothed = convolve(data, make_2dgaussian_kernel(3.0, size=5))
    segm = detect_sources(smoothed, nsigma * sigma, npixels)
    if segm is None:
        return None, smoothed
    try:
        segm = deblend_sources(smoothed, segm, npixels, n_levels=nlevels, contrast=contrast,
                               progress_bar=False)
    except Exception:  # noqa: BLE001 - keep the undeblended map rather than fail
        pass
    return segm, smoothed


def _subtract_median(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The image less its sigma-clipped median (NaN as 0), and its sigma-clipped std."""
    from astropy.stats import sigma_clipped_stats

    data = np.nan_to_num(np.asarray(image, np.float64))
    _, median, std = sigma_clipped_stats(data, sigma=3.0)
    return data - median, float(std)


def run_photutils(image: np.ndarray, noise_sigma: float | None = None, *, nsigma: float = 1.5,
                  npixels: int = 5, nlevels: int = 32, contrast: float = 0.005) -> Table:
    """photutils: detect_sources + deblend_sources on a smoothed image, SourceCatalog Kron."""
    return run_photutils_bands(np.asarray(image)[None], noise_sigma, nsigma=nsigma,
                               npixels=npixels, nlevels=nlevels, contrast=contrast)


def run_photutils_bands(images: np.ndarray, noise_sigma: float | None = None,
                        bands=None, *, nsigma: float = 1.5, npixels: int = 5,
                        nlevels: int = 32, contrast: float = 0.005) -> Table:
    """photutils in dual-image mode: detected and deblended on the first band of ``images``
    (band, y, x), each band measured in the same segments and the same Kron apertures.

    ``noise_sigma`` is the first band's (else its sigma-clipped std); ``flux`` is the first
    band's Kron flux and, with ``bands`` (their names), ``flux_<band>`` each band's.
    """
    require_extra("peers", "run_photutils")
    from photutils.segmentation import SourceCatalog
    from photutils.utils import NoDetectionsWarning

    planes = [_subtract_median(band) for band in np.asarray(images)]
    data, std = planes[0]
    sigma = float(noise_sigma) if noise_sigma else std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm, smoothed = _photutils_segments(data, sigma, nsigma, npixels, nlevels, contrast)
        if segm is None:
            return _empty(bands)
        detection = SourceCatalog(data, segm, convolved_data=smoothed)
        x = np.asarray(detection.x_centroid, float)
        y = np.asarray(detection.y_centroid, float)
        fluxes = [np.asarray(detection.kron_flux, float)]
        for plane, _ in planes[1:]:
            fluxes.append(np.asarray(SourceCatalog(plane, segm, detection_catalog=detection)
                                     .kron_flux, float))
    good = np.isfinite(x) & np.isfinite(y)
    table = Table({"id": np.arange(good.sum(), dtype=np.int64), "x": x[good], "y": y[good],
                   "flux": fluxes[0][good]})
    for band, flux in zip(bands or (), fluxes, strict=False):
        table[f"flux_{band}"] = flux[good]
    return table
