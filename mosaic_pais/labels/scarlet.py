"""Training labels from real images: scarlet2 deblends at catalogue positions, encoded as PCR.

This is the paper's recipe for its real-data labels (SCARLET models of catalogued sources turned
into PCR), without the prototype's defects:

* The image is fitted as it is, in its own units: no ``flux − min(flux)`` pedestal, which would
  add a constant that the models must absorb and that skews every flux fraction.
* Each 256×256 tile is fitted on a cutout extended by a margin (32 px by default) wherever the
  image continues, and every catalogued source whose centre lies in that cutout is modelled, so
  that the light of neighbours just outside the tile is not given to the sources inside it. Those
  neighbours also enter the PCR encoding (centres outside the tile are allowed there).
* PSFs are resampled to the image's pixel scale when the PSF file's scale differs (the TinyTim
  WFC3/IR PSFs are at 0.13″/px, the GOODS-S mosaics at 0.06″/px). A PSF of unknown scale is
  refused rather than silently used at the wrong scale.
* Catalogue-to-image alignment is measured (catalogue position → brightest smoothed pixel
  nearby) and reported; ``align=True`` removes a global offset before fitting.

Each tile is one Dask task (threaded scheduler); a tile whose fit fails is recorded with the
reason and left out, never stopping the batch. The labelled tiles are written with
:func:`mosaic_pais.training.dataset.write_shard` in the simulated training set's format (plus a
``valid`` array where tiles are padded beyond the image), so ``mosaic-pais train --data DIR``
reads them.

scarlet2 and JAX are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import dask
import numpy as np
from astropy.io import fits
from tqdm import tqdm

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.infer import estimate_noise_sigma
from mosaic_pais.runtime.open import MissingWCSWarning, open_mosaic
from mosaic_pais.runtime.tile import WindowReader
from mosaic_pais.training.dataset import write_shard

__all__ = [
    "PIXEL_COLUMNS",
    "SKY_COLUMNS",
    "LabelConfig",
    "read_catalog",
    "pixel_scale_of",
    "resample_psf",
    "load_psfs",
    "measure_alignment",
    "tile_origins",
    "fit_scene",
    "label_tile",
    "noise_from_weights",
    "make_labels",
]

#: scarlet2 keeps the scene and the parameter set being built in class attributes
#: (``Scenery.scene``, ``Parameterization.parameters``), so two threads building scenes at once
#: would mix their sources. Building is serialised with this lock; fitting runs in parallel.
_SCARLET_BUILD_LOCK = threading.Lock()

#: Catalogue column pairs recognised (lower case), with the index base of pixel positions.
PIXEL_COLUMNS = (("x", "y", 0), ("x_image", "y_image", 1), ("xcentroid", "ycentroid", 0),
                 ("x_pix", "y_pix", 0))
SKY_COLUMNS = (("ra", "dec"), ("alpha_j2000", "delta_j2000"), ("raj2000", "decj2000"),
               ("ra_deg", "dec_deg"))


@dataclass
class LabelConfig:
    """Parameters of a labelling run (saved in the report and the shards' attrs).

    Attributes
    ----------
    tile : int
        Side of the labelled tiles (the network's tile size).
    stride : int or None
        Step between tiles (default: ``tile``, i.e. disjoint tiles).
    margin : int
        Pixels around a tile that are fitted too, so that neighbours just outside are modelled.
    max_iter, e_rel : int, float
        scarlet2 optimiser iterations and relative convergence criterion.
    center_sigma : float
        Width of the centre-map Gaussians (the simulated training set's value by default).
    n_slots : int
        Number of PCR slots.
    shard_size : int
        Tiles per Zarr shard (also the batch of tiles computed at once, bounding memory).
    workers : int
        Threads of the local Dask scheduler.
    align : bool
        Shift the catalogue by the measured median offset to the image before fitting.
    pixel_scale, psf_scale : float or None
        Arcsec per pixel of the image and of the PSF files, when their headers do not say.
    split : str
        Sub-folder of the output (``train`` or ``val``).
    save_models : bool
        Also write each tile's per-source scarlet2 models to ``models/tile_NNNNN.npz``.
    """

    tile: int = 256
    stride: int | None = None
    margin: int = 32
    max_iter: int = 200
    e_rel: float = 1e-4
    center_sigma: float = 2.0
    n_slots: int = 3
    shard_size: int = 50
    workers: int = 2
    align: bool = False
    pixel_scale: float | None = None
    psf_scale: float | None = None
    split: str = "train"
    save_models: bool = False


# --------------------------------------------------------------------------- inputs


def _wcs_of(header_string: str | None):
    if not header_string:
        return None
    from astropy.io import fits
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(fits.Header.fromstring(header_string))


def read_catalog(path: str | Path, shape: tuple[int, int], wcs_header: str | None = None
                 ) -> tuple[np.ndarray, dict]:
    """Source centres (y, x), 0-based pixels, from a FITS, CSV or ECSV table.

    Pixel columns (``x``/``y`` 0-based; SExtractor's 1-based ``X_IMAGE``/``Y_IMAGE``) are used
    when present, else ``ra``/``dec`` in degrees through the image's WCS. Rows with non-finite
    positions are dropped.

    Returns
    -------
    centers : ndarray (N, 2)
        Every finite catalogue position (on the image or not).
    info : dict
        Which columns were used and how many rows were read, dropped and on the image.

    Raises
    ------
    BadInputError
        Unreadable table, no usable columns, sky columns without a WCS, or no source on the
        image.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"catalogue {path}: no such file")
    try:
        name = path.name.lower()
        if name.endswith((".fits", ".fit", ".fits.gz")):
            table = Table.read(path, mask_invalid=False)
        elif name.endswith(".ecsv"):
            table = Table.read(path, format="ascii.ecsv")
        elif name.endswith(".csv"):
            table = Table.read(path, format="ascii.csv")
        else:
            table = Table.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise BadInputError(f"catalogue {path}: not a readable table "
                            f"({type(exc).__name__})") from exc
    lower = {c.lower(): c for c in table.colnames}
    info: dict = {"path": str(path), "rows": len(table)}
    centers = None
    for cx, cy, base in PIXEL_COLUMNS:
        if cx in lower and cy in lower:
            x = np.asarray(table[lower[cx]], float) - base
            y = np.asarray(table[lower[cy]], float) - base
            centers = np.stack([y, x], axis=1)
            info["columns"] = [lower[cx], lower[cy]]
            info["index_base"] = base
            break
    if centers is None:
        for cra, cdec in SKY_COLUMNS:
            if cra in lower and cdec in lower:
                wcs = _wcs_of(wcs_header)
                if wcs is None:
                    raise BadInputError(f"catalogue {path}: has {lower[cra]}/{lower[cdec]} but "
                                        "the image has no celestial WCS; give x/y columns")
                x, y = wcs.celestial.all_world2pix(np.asarray(table[lower[cra]], float),
                                                   np.asarray(table[lower[cdec]], float), 0)
                centers = np.stack([y, x], axis=1)
                info["columns"] = [lower[cra], lower[cdec]]
                break
    if centers is None:
        raise BadInputError(f"catalogue {path}: no position columns (need x/y, X_IMAGE/Y_IMAGE "
                            f"or ra/dec); found {', '.join(table.colnames[:12]) or 'none'}")
    finite = np.all(np.isfinite(centers), axis=1)
    centers = centers[finite]
    h, w = shape
    on = ((centers[:, 0] >= -0.5) & (centers[:, 0] < h - 0.5) & (centers[:, 1] >= -0.5)
          & (centers[:, 1] < w - 0.5))
    info.update({"dropped_non_finite": int((~finite).sum()), "on_image": int(on.sum())})
    if not on.any():
        raise BadInputError(f"catalogue {path}: none of its {len(centers)} sources lies on the "
                            f"{w}×{h} image (check the columns and the WCS)")
    return centers, info


def pixel_scale_of(header) -> float | None:
    """Arcsec per pixel from a FITS header: ``PIXSCALE``/``PIXSCAL1`` or the celestial WCS."""
    if header is None:
        return None
    for key in ("PIXSCALE", "PIXSCAL1", "PIXELSCL"):
        if key in header and float(header[key]) > 0:
            return float(header[key])
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial:
            return None
        return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
    except Exception:  # noqa: BLE001 - a broken WCS gives no scale
        return None


def resample_psf(psf: np.ndarray, from_scale: float, to_scale: float,
                 max_size: int = 63) -> np.ndarray:
    """A PSF image resampled from ``from_scale`` to ``to_scale`` arcsec/px, centred, sum 1.

    The centre (the array's middle) stays the centre; cubic interpolation of the surface
    brightness, trimmed to an odd side of at most ``max_size`` and renormalised.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:27, 0:27]
    >>> g = np.exp(-((yy - 13) ** 2 + (xx - 13) ** 2) / (2 * 1.0 ** 2))
    >>> r = resample_psf(g / g.sum(), 0.13, 0.065)  # twice finer pixels: twice as wide
    >>> r.shape, round(float(r.sum()), 6)
    ((55, 55), 1.0)
    >>> round(float(np.sqrt((r * (np.arange(55) - 27) ** 2).sum())), 2)
    2.0
    """
    from scipy import ndimage

    psf = np.nan_to_num(np.asarray(psf, np.float64))
    zoom = from_scale / to_scale
    n_in = max(psf.shape)
    n = int(np.ceil(n_in * zoom))
    n = min(n if n % 2 else n + 1, max_size if max_size % 2 else max_size - 1)
    cy, cx = (psf.shape[0] - 1) / 2.0, (psf.shape[1] - 1) / 2.0
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    out = ndimage.map_coordinates(psf, [(yy - c) / zoom + cy, (xx - c) / zoom + cx], order=3,
                                  mode="constant", cval=0.0)
    out = np.clip(out, 0.0, None)
    total = out.sum()
    return out / total if total > 0 else out


def load_psfs(paths, n_bands: int, image_scale: float | None,
              psf_scale: float | None = None) -> tuple[np.ndarray, list[dict]]:
    """PSF images (b, s, s) at the image's pixel scale, one per band (one file for all is ok).

    Raises
    ------
    BadInputError
        Wrong number of files, unreadable or empty PSF, or a PSF scale known but the image's
        not (the PSF would be used at the wrong scale).
    """
    from astropy.io import fits

    paths = [Path(p) for p in paths]
    if len(paths) not in (1, n_bands):
        raise BadInputError(f"{len(paths)} PSF files for {n_bands} bands (give 1 or {n_bands})")
    images, info = [], []
    for path in paths:
        if not path.is_file():
            raise BadInputError(f"PSF {path}: no such file")
        try:
            with fits.open(path) as hdul:
                hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
                if hdu is None:
                    raise BadInputError(f"PSF {path}: no image data")
                data = np.asarray(hdu.data, np.float64)
                header = hdu.header
        except BadInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
            raise BadInputError(f"PSF {path}: not a readable FITS file ({exc})") from exc
        data = np.squeeze(data)
        if data.ndim == 3 and len(paths) == 1 and data.shape[0] == n_bands:
            planes = list(data)
        elif data.ndim == 2:
            planes = [data]
        else:
            raise BadInputError(f"PSF {path}: expected a 2-D image, got shape {data.shape}")
        scale = psf_scale if psf_scale is not None else pixel_scale_of(header)
        for plane in planes:
            if not np.isfinite(plane).all() or plane.sum() <= 0:
                raise BadInputError(f"PSF {path}: non-finite values or no positive flux")
            entry = {"path": str(path), "shape": list(plane.shape), "scale": scale,
                     "image_scale": image_scale, "resampled": False}
            if scale is not None and image_scale is None:
                raise BadInputError(f"PSF {path} is at {scale}″/px but the image's pixel scale "
                                    "is unknown (no WCS): give --pixel-scale")
            if scale is not None and abs(scale / image_scale - 1) > 1e-3:
                plane = resample_psf(plane, scale, image_scale)
                entry["resampled"] = True
            else:
                plane = plane / plane.sum()
            entry["final_shape"] = list(plane.shape)
            images.append(plane)
            info.append(entry)
    if len(images) == 1 and n_bands > 1:
        images, info = images * n_bands, info * n_bands
    # a common odd size, padding with zeros around the centre
    side = max(max(p.shape) for p in images)
    side += 1 - side % 2
    stack = np.zeros((len(images), side, side))
    for i, p in enumerate(images):
        oy, ox = (side - p.shape[0]) // 2, (side - p.shape[1]) // 2
        stack[i, oy:oy + p.shape[0], ox:ox + p.shape[1]] = p
    return stack, info


def measure_alignment(image, centers_yx: np.ndarray, noise_sigma: np.ndarray,
                      radius: int = 8, min_snr: float = 5.0, max_sources: int = 2000) -> dict:
    """Offset (dy, dx) from catalogue positions to the brightest smoothed pixel nearby.

    The detection image is the noise-weighted sum of the bands smoothed with a 1.5 px Gaussian;
    only sources whose peak there has S/N ≥ ``min_snr`` and that lie ``radius`` px inside the
    image count. A well aligned catalogue has median offsets near 0 (the peak of an irregular
    galaxy need not be its catalogue centroid, so single offsets of a pixel or two are normal).
    ``image`` (band, y, x) may be a dask array: only a window around each of at most
    ``max_sources`` sources (an even sample of the catalogue) is read.
    """
    from scipy import ndimage

    from mosaic_pais.runtime.tile import read_window

    smooth, truncate = 1.5, 4.0
    pad = int(truncate * smooth + 0.5) + 1  # the filter's reach: windows are filtered exactly
    sigma = np.asarray(noise_sigma, np.float64).reshape(-1, 1, 1)
    delta = np.zeros((2 * pad + 1, 2 * pad + 1))
    delta[pad, pad] = 1.0
    # the smoothed white noise's standard deviation, from the filter's own kernel
    noise = np.sqrt((ndimage.gaussian_filter(delta, smooth, truncate=truncate) ** 2).sum())
    scale = np.sqrt((1.0 / sigma ** 2).sum()) * noise
    _, h, w = image.shape
    centers = np.asarray(centers_yx, float).reshape(-1, 2)
    if len(centers) > max_sources:
        centers = centers[np.linspace(0, len(centers) - 1, max_sources).astype(int)]
    offsets = []
    for cy, cx in centers:
        iy, ix = int(round(cy)), int(round(cx))
        if not (radius <= iy < h - radius and radius <= ix < w - radius):
            continue
        # the window clipped to the image is filtered as the whole image would be: reflected
        # at the image's edges, and wide enough that its other borders do not reach the patch
        y0, y1 = max(iy - radius - pad, 0), min(iy + radius + pad + 1, h)
        x0, x1 = max(ix - radius - pad, 0), min(ix + radius + pad + 1, w)
        img, _ = read_window(image, (y0, y1, x0, x1))
        det = ndimage.gaussian_filter((img / sigma ** 2).sum(0), smooth, truncate=truncate)
        patch = det[iy - radius - y0:iy + radius + 1 - y0,
                    ix - radius - x0:ix + radius + 1 - x0] / scale
        py, px = np.unravel_index(np.argmax(patch), patch.shape)
        if patch[py, px] < min_snr:
            continue
        offsets.append((py + iy - radius - cy, px + ix - radius - cx))
    offsets = np.asarray(offsets).reshape(-1, 2)
    out = {"n_measured": int(len(offsets)), "radius_px": radius, "min_snr": min_snr}
    if len(offsets):
        med = np.median(offsets, axis=0)
        out.update({"median_dy_dx": [round(float(v), 2) for v in med],
                    "within_1.5px_fraction": float(np.mean(np.hypot(*offsets.T) <= 1.5)),
                    "misaligned": bool(len(offsets) >= 3 and np.hypot(*med) > 1.0)})
    else:
        out.update({"median_dy_dx": None, "within_1.5px_fraction": None, "misaligned": False})
    return out


# --------------------------------------------------------------------------- fitting


def tile_origins(h: int, w: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of tiles covering an h×w image (the last row/column flush with the edge).

    Images smaller than a tile give one tile at (0, 0), padded later.

    Examples
    --------
    >>> tile_origins(300, 256, 256, 256)
    [(0, 0), (44, 0)]
    """
    def starts(n):
        if n <= tile:
            return [0]
        s = list(range(0, n - tile + 1, stride))
        if s[-1] != n - tile:
            s.append(n - tile)
        return s

    return [(y, x) for y in starts(h) for x in starts(w)]


def fit_scene(data: np.ndarray, weights: np.ndarray, psf: np.ndarray, centers_yx: np.ndarray,
              *, max_iter: int = 200, e_rel: float = 1e-4) -> tuple[np.ndarray, dict]:
    """Fit one scarlet2 source per centre to ``data`` and render each in the observed frame.

    Parameters
    ----------
    data, weights : ndarray (b, h, w)
        Image and inverse-variance weights (0 = ignore the pixel).
    psf : ndarray (b, s, s)
        Observed PSF per band, at the image's pixel scale.
    centers_yx : ndarray (N, 2)
        Source centres inside the frame, 0-based pixels.

    Returns
    -------
    models : ndarray (N, b, h, w)
        Each source's model convolved with the observed PSF (what it contributes to the image).
    info : dict
        Initial box side of each source and the reduced χ² of the fit.

    Raises
    ------
    RuntimeError
        The fit produced non-finite models.
    """
    import jax.numpy as jnp
    import scarlet2 as s2
    from numpyro.distributions import constraints

    s2.set_validation(False)  # its checks print to stdout from worker threads
    data = np.asarray(data, np.float64)
    weights = np.asarray(weights, np.float64)
    centers_yx = np.asarray(centers_yx, np.float64).reshape(-1, 2)
    inits = [_init_source(data, weights, c, centers_yx) for c in centers_yx]
    with _SCARLET_BUILD_LOCK:
        obs = s2.Observation(jnp.asarray(data), jnp.asarray(weights),
                             psf=s2.ArrayPSF(jnp.asarray(psf, dtype=float)))
        frame = s2.Frame.from_observations(obs)
        with s2.Scene(frame) as scene:
            for (cy, cx), (spectrum, morph, _) in zip(centers_yx, inits, strict=True):
                s2.Source(jnp.array([cy, cx]), jnp.asarray(spectrum), jnp.asarray(morph))
        with s2.Parameters(scene):
            for i, src in enumerate(scene.sources):
                s2.Parameter(src.spectrum, name=f"spectrum:{i}", constraint=constraints.positive,
                             stepsize=s2.relative_step)
                s2.Parameter(src.morphology, name=f"morph:{i}",
                             constraint=constraints.unit_interval, stepsize=0.05)
    fitted = scene.fit(obs, max_iter=max_iter, e_rel=e_rel, progress_bar=False)
    models = np.stack([np.asarray(obs.render(fitted.evaluate_source(src)))
                       for src in fitted.sources])
    if not np.all(np.isfinite(models)):
        raise RuntimeError("scarlet2 returned non-finite models")
    resid = data - models.sum(0)
    good = weights > 0
    chi2 = float((weights * resid ** 2)[good].sum() / max(int(good.sum()), 1))
    return models, {"box_sizes": [int(i[2]) for i in inits], "reduced_chi2": chi2}


def _init_source(data: np.ndarray, weights: np.ndarray, center: np.ndarray,
                 centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Spectrum and free-form morphology of one source, from the image itself.

    scarlet2's Gaussian-moment initialisation picks the box by the colour of its edge; with four
    HST bands of different depth that stops at the smallest box for extended galaxies, whose
    outskirts are then never modelled (measured on cutout 1903: the big galaxies stayed
    compact and their light was left in the residual). Here the box grows while the mean S/N
    of its edge in the noise-weighted band sum is above 1, and the morphology starts as the
    positive image in that box restricted to the pixels nearer this centre than any other
    (so a neighbour's light does not start inside it); the fit then reshapes it freely.

    Returns
    -------
    spectrum (b,), morphology (s, s) in (0, 1), and the box side s.
    """
    b, h, w = data.shape
    ivar = np.array([np.median(wb[wb > 0]) if np.any(wb > 0) else 0.0 for wb in weights])
    snr = (data * ivar[:, None, None]).sum(0) / np.sqrt(max(ivar.sum(), 1e-30))
    cy, cx = int(np.floor(center[0])), int(np.floor(center[1]))

    def cut(img, half):
        ys, xs = np.arange(cy - half, cy + half + 1), np.arange(cx - half, cx + half + 1)
        inside = ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
        block = img[..., np.clip(ys, 0, h - 1)[:, None], np.clip(xs, 0, w - 1)[None, :]]
        return np.where(inside, block, 0.0), inside

    size = 11
    for size in (11, 17, 25, 35, 47, 61, 77, 97):
        block, inside = cut(snr, size // 2)
        edge = np.concatenate([block[0], block[-1], block[:, 0], block[:, -1]])
        edge_in = np.concatenate([inside[0], inside[-1], inside[:, 0], inside[:, -1]])
        if not edge_in.any() or edge[edge_in].mean() < 1.0:
            break
    half = size // 2
    yy, xx = np.mgrid[cy - half:cy + half + 1, cx - half:cx + half + 1].astype(np.float64)
    d_self = (yy - center[0]) ** 2 + (xx - center[1]) ** 2
    nearest_other = np.full(yy.shape, np.inf)
    for oy, ox in centers:
        if oy == center[0] and ox == center[1]:
            continue
        nearest_other = np.minimum(nearest_other, (yy - oy) ** 2 + (xx - ox) ** 2)
    own = d_self <= nearest_other
    block, _ = cut(data, half)
    morph = np.where(own, np.clip(block, 0.0, None).sum(0), 0.0)
    peak = morph.max()
    if not np.isfinite(peak) or peak <= 0:  # nothing positive: a faint point-like start
        morph = np.exp(-d_self / 2.0)
        peak = 1.0
    morph = np.clip(morph / peak, 1e-6, 1 - 1e-6)
    spectrum = (block * morph).sum((1, 2)) / (morph ** 2).sum()  # least squares amplitude
    spectrum = np.clip(np.nan_to_num(spectrum), 1e-3 / np.sqrt(np.maximum(ivar, 1e-30)), None)
    return spectrum, morph, size


def label_tile(image, weights, psf: np.ndarray, centers: np.ndarray,
               noise_sigma: np.ndarray, origin: tuple[int, int], cfg: LabelConfig) -> dict:
    """Fit and encode one tile; never raises (a failure is returned as ``ok: False``).

    ``image`` and ``weights`` are :class:`~mosaic_pais.runtime.tile.WindowReader` s: only the tile
    and its margin are read. Without weights (None), every valid pixel weighs 1/noise².

    Returns
    -------
    dict
        ``ok``, ``origin``, ``error`` (on failure), ``sample`` (the training sample: image,
        valid, center, vectors, fractions, noise_sigma), ``models`` and ``centers`` (tile frame)
        and fit diagnostics.
    """
    from mosaic_pais.pcr import encode

    t0 = time.time()
    y0, x0 = origin
    b, h, w = image.shape
    t, m = cfg.tile, cfg.margin
    cy0, cy1 = max(y0 - m, 0), min(y0 + t + m, h)
    cx0, cx1 = max(x0 - m, 0), min(x0 + t + m, w)
    out: dict = {"origin": [int(y0), int(x0)], "ok": False}
    try:
        window = (cy0, cy1, cx0, cx1)
        data, valid = image.read(window)
        data = data.astype(np.float64)
        if weights is None:
            inv_var = 1.0 / np.asarray(noise_sigma, np.float64) ** 2
            wts = np.broadcast_to(inv_var[:, None, None], data.shape)
        else:
            wts, finite = weights.read(window)
            valid &= finite
        wts = np.where(valid, np.asarray(wts, np.float64), 0.0)
        data = np.where(valid, data, 0.0)
        rel = np.asarray(centers, float) - [cy0, cx0]
        inside = ((rel[:, 0] >= 0) & (rel[:, 0] <= cy1 - cy0 - 1) & (rel[:, 1] >= 0)
                  & (rel[:, 1] <= cx1 - cx0 - 1))
        rel = rel[inside]
        in_tile = ((centers[inside, 0] >= y0 - 0.5) & (centers[inside, 0] < y0 + t - 0.5)
                   & (centers[inside, 1] >= x0 - 0.5) & (centers[inside, 1] < x0 + t - 0.5))
        out.update({"n_modelled": int(len(rel)), "n_in_tile": int(in_tile.sum())})
        if not in_tile.any():
            out["error"] = "no catalogue source in the tile"
            out["skipped"] = True
            return out
        models, info = fit_scene(data, wts, psf, rel, max_iter=cfg.max_iter, e_rel=cfg.e_rel)
        out.update(info)
        # the tile's part of the cutout, padded with invalid pixels where the image ends
        ty, tx = y0 - cy0, x0 - cx0
        th, tw = min(t, cy1 - cy0 - ty), min(t, cx1 - cx0 - tx)
        tile_models = np.zeros((len(rel), b, t, t))
        tile_models[:, :, :th, :tw] = models[:, :, ty:ty + th, tx:tx + tw]
        tile_image = np.zeros((b, t, t), np.float32)
        tile_image[:, :th, :tw] = data[:, ty:ty + th, tx:tx + tw]
        valid = np.zeros((t, t), np.float32)
        valid[:th, :tw] = (wts[:, ty:ty + th, tx:tx + tw] > 0).any(0)
        tile_centers = rel - [ty, tx]
        pcr = encode(tile_centers, tile_models, n=cfg.n_slots, center_sigma=cfg.center_sigma)
        out["sample"] = {"image": tile_image, "valid": valid, "center": pcr.center,
                         "vectors": pcr.vectors, "fractions": pcr.fractions,
                         "noise_sigma": np.asarray(noise_sigma, np.float32)}
        out["models"] = tile_models.astype(np.float32)
        out["centers"] = tile_centers
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - a failed tile is data, the batch goes on
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
    out["seconds"] = round(time.time() - t0, 2)
    return out


# --------------------------------------------------------------------------- the command


def noise_from_weights(weights, n_windows: int = 16, size: int = 256, seed: int = 0
                       ) -> np.ndarray:
    """Per-band noise σ = 1/sqrt(median weight) over the valid weights (> 0, finite) of
    ``n_windows`` windows spread over a (band, y, x) weight map, numpy or dask (only the
    windows are read). NaN for a band without a valid weight.

    Examples
    --------
    >>> w = np.full((1, 300, 400), 4.0)
    >>> w[0, :50] = 0.0  # masked rows do not count
    >>> noise_from_weights(w).tolist()
    [0.5]
    """
    from mosaic_pais.runtime.tile import read_window, sample_windows

    n_band = weights.shape[0]
    samples: list[list[np.ndarray]] = [[] for _ in range(n_band)]
    for window in sample_windows(weights.shape, n_windows, size, seed):
        block, finite = read_window(weights, window)
        for band in range(n_band):
            samples[band].append(block[band][finite & (block[band] > 0)])
    values = [np.concatenate(s) for s in samples]
    return np.array([np.sqrt(1.0 / np.median(v)) if v.size else np.nan for v in values])


def make_labels(images, catalog, psfs, output, *, weights=None, bands=None,
                config: LabelConfig | None = None, overwrite: bool = False,
                progress: bool = True) -> dict:
    """Label tiles of real images with scarlet2 deblends at catalogue positions.

    Parameters
    ----------
    images : list of paths
        One FITS file per band (or one cube), as for ``mosaic-pais run``.
    catalog : path
        FITS, CSV or ECSV table with x/y (0-based) or ra/dec columns.
    psfs : list of paths
        One PSF FITS image per band (or one for all bands).
    output : path
        Training set folder; shards go to ``output/<split>/``, the report to
        ``output/labels_<split>.json``.
    weights : list of paths, optional
        Inverse-variance maps per band (default: uniform weights from a robust noise estimate).
    config : LabelConfig

    Returns
    -------
    dict
        The report (also written as JSON): tiles labelled, failed (with reasons) and skipped,
        alignment, PSF handling, timings.
    """
    cfg = config or LabelConfig()
    stride = cfg.stride or cfg.tile
    if cfg.tile < 32 or stride < 1 or cfg.margin < 0:
        raise BadInputError("tile must be ≥ 32 px, stride ≥ 1 and margin ≥ 0")
    output = Path(output)
    split_dir = output / cfg.split
    if split_dir.exists() and any(split_dir.glob("shard_*.zarr")) and not overwrite:
        raise BadInputError(f"{split_dir} already holds shards; use --overwrite to replace them")
    ds, noise = _open_for_labels(images, bands, weights)
    # lazy: tiles and the alignment read only their windows, so a mosaic need not fit in memory
    image = ds["image"].data
    n_band, h, w = image.shape
    wcs_header = ds.attrs.get("wcs_header")
    header_scale = pixel_scale_of(fits.Header.fromstring(wcs_header)) if wcs_header else None
    image_scale = cfg.pixel_scale if cfg.pixel_scale is not None else header_scale
    psf, psf_info = load_psfs(psfs, n_band, image_scale, cfg.psf_scale)
    centers, cat_info = read_catalog(catalog, (h, w), wcs_header)
    centers, alignment = _aligned_centres(image, centers, noise, cfg.align)
    origins = tile_origins(h, w, cfg.tile, stride)
    report: dict = {
        "command": "mosaic-pais labels", "images": [str(p) for p in images],
        "weights": [str(p) for p in weights] if weights else None, "catalog": cat_info,
        "psfs": psf_info, "bands": list(ds.attrs.get("bands", [])),
        "image_shape": [n_band, h, w], "pixel_scale": image_scale,
        "noise_sigma": noise.tolist(), "alignment": alignment,
        "config": {**asdict(cfg), "stride": stride}, "tiles": [], "failed": [], "skipped": [],
        "shards": []}
    split_dir.mkdir(parents=True, exist_ok=True)
    for old in split_dir.glob("shard_*.zarr"):
        shutil.rmtree(old)
    if cfg.save_models:
        (output / "models").mkdir(parents=True, exist_ok=True)
    readers = (WindowReader(image), WindowReader(ds["weight"].data) if "weight" in ds else None)
    t_start = time.time()
    bar = tqdm(total=len(origins), desc="labels (tiles)", disable=not progress)
    for shard, first in enumerate(range(0, len(origins), cfg.shard_size)):
        chunk = list(enumerate(origins))[first:first + cfg.shard_size]
        with _TqdmCallback(bar):
            results = _label_tiles(chunk, readers, psf, centers, noise, cfg)
        samples = _sort_results(chunk, results, shard, report, cfg, output / "models")
        if samples:
            attrs = _shard_attrs(report, cfg, catalog, alignment, shard, first)
            report["shards"].append(str(write_shard(split_dir / f"shard_{shard:05d}.zarr",
                                                    samples, attrs)))
    bar.close()
    report |= {"n_tiles": len(origins), "n_labelled": len(report["tiles"]),
               "n_failed": len(report["failed"]), "n_skipped": len(report["skipped"]),
               "seconds": round(time.time() - t_start, 1)}
    output.mkdir(parents=True, exist_ok=True)
    (output / f"labels_{cfg.split}.json").write_text(
        json.dumps(report, indent=2, default=_jsonable))
    return report


def _open_for_labels(images, bands, weights):
    """The mosaic (lazily) and its noise per band, from the weights or a robust estimate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingWCSWarning)  # handled: pixel columns still work
        ds = open_mosaic(list(images), bands=bands, weights=weights)
    if "weight" in ds:
        noise = noise_from_weights(ds["weight"].data)
    else:
        noise = np.asarray(estimate_noise_sigma(ds["image"].data, n_windows=16), np.float64)
    if not np.all(np.isfinite(noise) & (noise > 0)):
        raise BadInputError("cannot estimate the noise of every band (empty or constant image)")
    return ds, noise


def _aligned_centres(image, centers: np.ndarray, noise: np.ndarray, align: bool):
    """The catalogue's centres, shifted onto the light by their median offset when ``align``
    and at least 3 sources measure it, and the alignment report."""
    alignment = measure_alignment(image, centers, noise)
    applied = [0.0, 0.0]
    if align and alignment["median_dy_dx"] is not None and alignment["n_measured"] >= 3:
        applied = list(alignment["median_dy_dx"])
        centers = centers + np.asarray(applied)
        alignment["after_shift"] = measure_alignment(image, centers, noise)
    alignment["applied_shift_dy_dx"] = applied
    return centers, alignment


def _label_tiles(chunk: list, readers: tuple, psf, centers, noise, cfg: LabelConfig) -> tuple:
    """The tiles of one shard fitted on the threaded scheduler, one task each."""
    image, weights = readers
    tasks = [dask.delayed(label_tile, pure=False)(image, weights, psf, centers, noise, origin,
                                                  cfg, dask_key_name=f"label-tile-{i}")
             for i, origin in chunk]
    return dask.compute(*tasks, scheduler="threads", num_workers=max(cfg.workers, 1))


def _sort_results(chunk: list, results, shard: int, report: dict, cfg: LabelConfig,
                  models_dir: Path) -> list:
    """Each tile's result into the report (labelled, skipped or failed); the labelled
    samples, and their scarlet2 models when asked for."""
    samples = []
    for (i, _), res in zip(chunk, results, strict=True):
        entry = {k: v for k, v in res.items() if k not in ("sample", "models", "centers")}
        entry["index"] = i
        if res["ok"]:
            entry["shard"] = shard
            entry["position_in_shard"] = len(samples)
            samples.append(res["sample"])
            report["tiles"].append(entry)
            if cfg.save_models:
                np.savez_compressed(models_dir / f"tile_{i:05d}.npz", models=res["models"],
                                    centers=res["centers"], origin=np.asarray(res["origin"]),
                                    image=res["sample"]["image"],
                                    valid=res["sample"]["valid"])
        elif res.get("skipped"):
            report["skipped"].append(entry)
        else:
            report["failed"].append(entry)
    return samples


def _shard_attrs(report: dict, cfg: LabelConfig, catalog, alignment: dict, shard: int,
                 first: int) -> dict:
    """What a shard of real labels records about where they come from."""
    attrs = {"source": "mosaic-pais labels (scarlet2)", "split": cfg.split,
             "center_sigma": cfg.center_sigma, "n_slots": cfg.n_slots,
             "images": report["images"], "catalog": str(catalog),
             "bands": report["bands"], "pixel_scale": report["pixel_scale"],
             "alignment_median_dy_dx": alignment["median_dy_dx"],
             "applied_shift_dy_dx": alignment["applied_shift_dy_dx"],
             "tiles": [e for e in report["tiles"] if e.get("shard") == shard],
             "failed": [e for e in report["failed"]
                        if first <= e["index"] < first + cfg.shard_size]}
    return json.loads(json.dumps(attrs, default=_jsonable))


def _jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


class _TqdmCallback:
    """Advance a tqdm bar as each tile task of a local Dask computation finishes."""

    def __init__(self, bar):
        from dask.callbacks import Callback

        outer = self

        class _Cb(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                name = key[0] if isinstance(key, tuple) else key
                if str(name).startswith("label-tile-"):
                    outer.bar.update(1)

        self.bar = bar
        self._cb = _Cb()

    def __enter__(self):
        self._cb.__enter__()
        return self

    def __exit__(self, *exc):
        self._cb.__exit__(*exc)
