"""Realistic simulated HST WFC3/IR F160W scenes and mosaics, with their exact truth.

Modelled on the Hubble Legacy Field GOODS-S F160W mosaic at 0.06″/px:

* **Galaxies**: the 100 real COSMOS galaxies of ``shared/data/cosmos_real_galaxies`` through
  ``galsim.RealGalaxy`` (randomly rotated, flipped and rescaled), and parametric bulge + disk
  galaxies (de Vaucouleurs + exponential, random B/T, axis ratio and orientation). A real galaxy
  is only made brighter than its catalogue magnitude by at most 0.5 mag, so its own (deconvolved)
  COSMOS noise is never amplified into visible structure.
* **Stars**: the PSF itself, ~8% of sources, more among the bright ones.
* **PSF**: the TinyTim F160W model (27×27 at the native 0.13″/px), used as a
  ``galsim.InterpolatedImage`` at its own scale and drawn with ``method="no_pixel"``: TinyTim
  images already include the native pixel response, so convolving with the 0.06″ pixel again
  would widen the PSF.
* **Counts and sizes**: about 250 sources per arcmin² to H = 28.5 (``density`` = 1), dN/dm
  rising 0.3 dex/mag fainter than H = 22 and 0.15 dex/mag brighter; half-light radii
  r50 ≈ 0.3″·10^(−0.1(H−24)) with 0.15 dex scatter.
* **Noise**: Gaussian, σ = 0.0046 e⁻/s per pixel by default (measured on the real cutout 1903),
  correlated like drizzled data: white noise smoothed by a Gaussian of 0.6 px, which gives the
  measured neighbour correlations (0.50 adjacent, 0.23 diagonal, 0.05 at 2 px), then rescaled.
* **Edges**: sources are placed up to ``margin`` px outside the frame, so light spills in.

Magnitudes are AB with the F160W zero point 25.94 for e⁻/s. Everything is deterministic for a
given seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError
from mosaic_pais.sim.bands import BANDS, check_bands, draw_colours, seeing_psfs, survey_of

__all__ = [
    "SIMULATOR_VERSION",
    "PIXEL_SCALE",
    "ZEROPOINT",
    "DEFAULT_NOISE_SIGMA",
    "NOISE_CORRELATION_SIGMA",
    "SURFACE_DENSITY",
    "STAR_FRACTION",
    "REAL_FRACTION",
    "MAX_STAMP_HALF",
    "HELD_OUT_REAL_GALAXIES",
    "REAL_GALAXY_POOLS",
    "data_dir",
    "sim_data_dir",
    "SIM_DATA",
    "Scene",
    "f160w_psf",
    "real_galaxy_catalog",
    "galaxy_mask",
    "real_galaxy",
    "real_galaxy_mags",
    "flux_of",
    "mag_of",
    "draw_population",
    "real_galaxy_pool",
    "render_stamp",
    "band_flux_scale",
    "band_flux",
    "correlated_noise",
    "noise_texture_factor",
    "simulate_scene",
    "matched_filter_snr",
    "blendedness",
    "tan_wcs",
    "simulate_mosaic",
]


#: recorded in every simulation-based result (docs/results): 2 draws real galaxies without
#: their COSMOS stamps' noise (:func:`real_galaxy`), 1 drew whole stamps
SIMULATOR_VERSION = 2
PIXEL_SCALE = 0.06          # arcsec / px
ZEROPOINT = 25.94           # AB mag of 1 e-/s in F160W
DEFAULT_NOISE_SIGMA = 0.0046
NOISE_CORRELATION_SIGMA = 0.6  # px
SURFACE_DENSITY = 250.0     # sources / arcmin² brighter than MAG_MAX at density 1
MAG_MIN, MAG_MAX = 18.0, 28.5
STAR_FRACTION = 0.08
REAL_FRACTION = 0.45
MAX_STAMP_HALF = 80
#: The 20 of the 100 COSMOS galaxies kept for testing only (a fixed random choice): training
#: and validation scenes draw their real galaxies from the other 80 (``real_galaxies="train"``),
#: so test scenes drawn with ``real_galaxies="held_out"`` hold morphologies no model has seen.
HELD_OUT_REAL_GALAXIES = tuple(sorted(int(i) for i in
                                      np.random.default_rng(20261206).permutation(100)[:20]))
REAL_GALAXY_POOLS = ("all", "train", "held_out")

_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SIM_DATA = Path(__file__).resolve().parent / "data"


def data_dir() -> Path:
    """The survey data folder of a development checkout (real images the tests and
    benchmarks report on; not shipped): ``MOSAIC_PAIS_DATA``, or the ``shared/data`` folder
    beside the checkout."""
    import os

    env = os.environ.get("MOSAIC_PAIS_DATA")
    if env:
        return Path(env)
    for candidate in (_DATA, Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return _DATA


def sim_data_dir() -> Path:
    """The simulator's real galaxies and PSFs: shipped in the package (``sim/data``, with
    their licences); ``MOSAIC_PAIS_SIM_DATA`` points to another folder of that layout."""
    import os

    return Path(os.environ.get("MOSAIC_PAIS_SIM_DATA") or SIM_DATA)


@dataclass
class Scene:
    """A simulated scene and its truth.

    Attributes
    ----------
    image : (1, h, w) float32, ``sources.sum(0) + noise``
    sources : (N, 1, h, w) float32 noiseless images of every truth source (incl. those centred
        outside the frame)
    noise : (1, h, w) float32
    truth : astropy Table
    noise_sigma : float
    bands : tuple of str
    """

    image: np.ndarray
    sources: np.ndarray
    noise: np.ndarray
    truth: object
    noise_sigma: float
    bands: tuple = ("F160W",)


def f160w_psf():
    """The TinyTim F160W PSF as a GalSim profile (includes the native pixel response).

    Centred on its centroid, so that a star or a galaxy drawn at a position has its light's
    centroid there (TinyTim's image is 0.2 px off its own centre); :func:`~mosaic_pais.sim.
    bands.band_psf` of ``"F160W"``.
    """
    from mosaic_pais.sim.bands import band_psf

    return band_psf("F160W")


@functools.lru_cache(maxsize=1)
def real_galaxy_catalog():
    import galsim

    folder = sim_data_dir() / "cosmos_real_galaxies"
    cat = galsim.RealGalaxyCatalog("real_galaxy_catalog_26_extension_example.fits",
                                   dir=str(folder))
    return cat


#: a real galaxy keeps the pixels of its COSMOS stamp where the stamp, smoothed by a Gaussian of
#: STAMP_SMOOTHING px, is above STAMP_THRESHOLD times that smoothed image's noise, in the
#: connected regions reaching within STAMP_CORE px of the stamp's centre, grown by
#: STAMP_GROW px and with edges softened over STAMP_SOFTEN px (all in the stamp's 0.03″ pixels)
STAMP_SMOOTHING, STAMP_THRESHOLD, STAMP_CORE, STAMP_GROW, STAMP_SOFTEN = 2.0, 3.0, 6.0, 4, 1.5


def galaxy_mask(stamp: np.ndarray) -> np.ndarray:
    """Weights (0–1) of a COSMOS stamp's pixels that belong to its galaxy; 0 on its noise.

    The stamp's noise is measured on its outer 8 px frame. Where nothing near the centre is
    detected, the pixels within STAMP_CORE px of it are kept.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> galaxy = np.exp(-0.5 * ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 9)
    >>> stamp = galaxy + rng.normal(0, 0.02, (64, 64))
    >>> mask = galaxy_mask(stamp)
    >>> float(mask[31, 31]), float(mask[2, 2]), bool(0.0 < mask.mean() < 0.3)
    (1.0, 0.0, True)
    """
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(stamp, float), STAMP_SMOOTHING)
    frame = np.concatenate([smooth[:8].ravel(), smooth[-8:].ravel(), smooth[8:-8, :8].ravel(),
                            smooth[8:-8, -8:].ravel()])
    noise = 1.4826 * np.median(np.abs(frame - np.median(frame)))
    regions, _ = ndimage.label(smooth > STAMP_THRESHOLD * noise)
    yy, xx = np.mgrid[0:stamp.shape[0], 0:stamp.shape[1]]
    core = np.hypot(yy - (stamp.shape[0] - 1) / 2, xx - (stamp.shape[1] - 1) / 2) < STAMP_CORE
    keep = np.isin(regions, np.unique(regions[core & (regions > 0)]))
    if not keep.any():
        keep = core
    grown = ndimage.binary_dilation(keep, iterations=STAMP_GROW)
    return np.clip(ndimage.gaussian_filter(grown.astype(float), STAMP_SOFTEN), 0.0, 1.0)


@functools.cache
def real_galaxy(index: int):
    """COSMOS galaxy ``index`` of unit flux, without the noise of its stamp.

    GalSim's ``RealGalaxy`` draws the whole HST stamp, and with it a square of COSMOS's noise
    around the galaxy (PSF-convolved, about 0.6–1.9 times GOODS-S F160W's noise at 15–25 px for
    the brightest and for faint stamps scaled to their magnitudes): a textured box in the scene
    that no real image has, with peaks of its own. Here the stamp keeps only its galaxy's
    pixels (:func:`galaxy_mask`) before GalSim deconvolves its PSF.
    """
    import galsim

    gal = galsim.RealGalaxy(real_galaxy_catalog(), index=int(index), flux=1.0)
    stamp = gal.gal_image
    cleaned = galsim.Image(stamp.array * galaxy_mask(stamp.array), scale=stamp.scale)
    # the stamp's own noise description (``_gal_noise``), not the PSF-deconvolved one that
    # ``gal.noise`` computes (about 3 s per galaxy): only the galaxy image is ever drawn, and it
    # is the same either way
    return galsim.RealGalaxy.makeFromImage(cleaned, gal.original_psf,
                                           gal._gal_noise).withFlux(1.0)


@functools.lru_cache(maxsize=1)
def real_galaxy_mags() -> np.ndarray:
    from astropy.table import Table

    folder = sim_data_dir() / "cosmos_real_galaxies"
    return np.asarray(Table.read(folder / "real_galaxy_catalog_26_extension_example.fits")["MAG"],
                      float)


def flux_of(mag):
    return 10 ** (-0.4 * (np.asarray(mag, float) - ZEROPOINT))


def mag_of(flux):
    with np.errstate(divide="ignore", invalid="ignore"):
        return ZEROPOINT - 2.5 * np.log10(np.asarray(flux, float))


def _sample_mags(rng: np.random.Generator, n: int) -> np.ndarray:
    grid = np.linspace(MAG_MIN, MAG_MAX, 2001)
    slope = np.where(grid < 22.0, 0.15, 0.30)
    log_dn = np.cumsum(slope) * (grid[1] - grid[0])
    pdf = 10 ** (log_dn - log_dn.max())
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    return np.interp(rng.uniform(0, 1, n), cdf, grid)


def draw_population(rng: np.random.Generator, height: float, width: float, *, margin: float,
                    density: float = 1.0, pair_fraction: float = 0.0,
                    star_fraction: float = STAR_FRACTION, real_galaxies: str = "all",
                    pixel_scale: float = PIXEL_SCALE) -> dict:
    """Positions, magnitudes and shape parameters of the sources of a frame (plus margin).

    ``real_galaxies`` is the pool the real COSMOS galaxies come from: ``"all"`` 100,
    ``"train"`` the 80 not in :data:`HELD_OUT_REAL_GALAXIES`, ``"held_out"`` those 20.
    Positions and sizes are in pixels of ``pixel_scale`` (″/px); magnitudes are F160W's.
    """
    area = (height + 2 * margin) * (width + 2 * margin) * (pixel_scale / 60.0) ** 2
    n = int(rng.poisson(SURFACE_DENSITY * density * area))
    y = rng.uniform(-margin, height + margin, n)
    x = rng.uniform(-margin, width + margin, n)
    if pair_fraction > 0 and n:
        n_pair = int(rng.binomial(n, pair_fraction))
        hosts = rng.choice(n, n_pair, replace=False) if n_pair else np.zeros(0, int)
        sep = rng.uniform(2.0, 10.0, n_pair)
        ang = rng.uniform(0, 2 * np.pi, n_pair)
        y = np.concatenate([y, y[hosts] + sep * np.sin(ang)])
        x = np.concatenate([x, x[hosts] + sep * np.cos(ang)])
        n = len(y)
    mag = _sample_mags(rng, n)
    r50 = 0.3 * 10 ** (-0.1 * (mag - 24.0)) * 10 ** rng.normal(0, 0.15, n)
    r50 = np.clip(r50, 0.05, 2.5) / pixel_scale  # px, intrinsic
    p_star = np.clip(star_fraction * np.where(mag < 21, 3.0, 1.0), 0, 0.5)
    u = rng.uniform(0, 1, n)
    kind = np.where(u < p_star, "star", np.where(u < p_star + REAL_FRACTION, "real",
                                                  "parametric"))
    real_mags = real_galaxy_mags()
    pool = real_galaxy_pool(real_galaxies, len(real_mags))
    real_index = np.full(n, -1)
    for i in np.flatnonzero(kind == "real"):
        allowed = pool[real_mags[pool] - 0.5 <= mag[i]]
        if len(allowed) == 0:
            kind[i] = "parametric"
        else:
            real_index[i] = rng.choice(allowed)
    return {
        "y": y, "x": x, "mag": mag, "r50_intrinsic": r50, "kind": kind,
        "real_index": real_index,
        "q": rng.uniform(0.25, 1.0, n), "angle": rng.uniform(0, 2 * np.pi, n),
        "bulge_fraction": rng.beta(1.2, 3.0, n), "flip": rng.uniform(0, 1, n) < 0.5,
        "rescale": np.exp(rng.uniform(np.log(0.6), np.log(1.6), n)),
        "pixel_scale": float(pixel_scale),
    }


def real_galaxy_pool(name: str, n_galaxies: int = 100) -> np.ndarray:
    """Indices of the COSMOS galaxies a scene may draw from (see :func:`draw_population`).

    Examples
    --------
    >>> [len(real_galaxy_pool(name)) for name in ("all", "train", "held_out")]
    [100, 80, 20]
    """
    if name not in REAL_GALAXY_POOLS:
        raise BadInputError(f"real_galaxies must be one of {', '.join(REAL_GALAXY_POOLS)} "
                            f"(got {name!r})")
    every = np.arange(n_galaxies)
    held = np.isin(every, HELD_OUT_REAL_GALAXIES)
    return {"all": every, "train": every[~held], "held_out": every[held]}[name]


#: half-light radius (arcsec, before the galaxy's rescaling) of a real galaxy's red core
REAL_CORE_RADIUS = 0.08
#: in a ground-based scene, sources fainter than this (F160W AB) are drawn as Gaussians seen
#: through a Gaussian of the seeing's FWHM: far below the seeing's detection limit their shape
#: is lost in the noise, while their light, two thirds of the sources, still makes the
#: background it should; a Gaussian through a Gaussian is drawn in real space, each in a few
#: hundredths of the time of a profile through a Moffat
SEEING_FAINT_MAG = 27.0


def _profile(pop: dict, i: int, band: str = "F160W", colours: dict | None = None):
    """The PSF-convolved GalSim profile of source ``i`` in ``band``; its flux is the source's
    flux in that band over its F160W flux, both in AB units (1 without ``colours``: F160W
    alone, :func:`mosaic_pais.sim.bands.draw_colours`)."""
    import galsim

    from mosaic_pais.sim.bands import band_psf, band_weights

    if pop.get("psfs") and pop["mag"][i] > SEEING_FAINT_MAG:
        return _faint_seen(pop, i, band, colours)
    psf = pop["psfs"][band] if pop.get("psfs") else band_psf(band)
    kind = pop["kind"][i]
    if kind == "star":
        if colours is None:
            return psf
        return psf.withFlux(sum(band_weights(colours, i, band, 0.0)))
    if kind == "real":
        gal = real_galaxy(int(pop["real_index"][i])).dilate(float(pop["rescale"][i]))
        if pop["flip"][i]:
            gal = gal.transform(-1.0, 0.0, 0.0, 1.0)
        gal = gal.rotate(float(pop["angle"][i]) * galsim.radians)
        if colours is not None:  # the galaxy itself and its red core
            core = galsim.DeVaucouleurs(half_light_radius=REAL_CORE_RADIUS
                                        * float(pop["rescale"][i]))
            main, red = band_weights(colours, i, band, _bulge_share(pop, colours, i))
            gal = galsim.Add([gal.withFlux(main), core.withFlux(red)]) if red > 0 else \
                gal.withFlux(main)
    else:
        r_arcsec = float(pop["r50_intrinsic"][i]) * _scale_of(pop)
        bt = float(pop["bulge_fraction"][i])
        disk = galsim.Exponential(half_light_radius=r_arcsec)
        bulge = galsim.DeVaucouleurs(half_light_radius=0.6 * r_arcsec)
        if colours is None:
            gal = (bt * bulge + (1 - bt) * disk).withFlux(1.0)
        else:
            main, red = band_weights(colours, i, band, _bulge_share(pop, colours, i))
            gal = disk.withFlux(main) + bulge.withFlux(red)
        gal = gal.shear(q=float(pop["q"][i]), beta=float(pop["angle"][i]) * galsim.radians)
    if pop.get("psfs"):  # seeing: wings folded at 2% (not 0.5%) keep the FFTs of a cuspy
        # core under a sharp seeing small; drawn fluxes move by < 0.1%
        return galsim.Convolve(gal, psf, gsparams=_seeing_gsparams())
    return galsim.Convolve(gal, psf)


def _faint_seen(pop: dict, i: int, band: str, colours: dict | None):
    """A faint source of a ground-based scene (:data:`SEEING_FAINT_MAG`): a Gaussian of its
    half-light radius (none for a star) through a Gaussian of the band's seeing FWHM, with the
    source's flux in that band."""
    import galsim

    from mosaic_pais.sim.bands import band_weights

    seeing = galsim.Gaussian(fwhm=pop["seeing_fwhm"][band])
    flux = 1.0 if colours is None else sum(band_weights(colours, i, band,
                                                        _bulge_share(pop, colours, i)))
    if pop["kind"][i] == "star":
        return seeing.withFlux(flux)
    size = float(pop["r50_intrinsic"][i] * pop["rescale"][i]) * _scale_of(pop)
    return galsim.Convolve(galsim.Gaussian(half_light_radius=size), seeing).withFlux(flux)


@functools.cache
def _seeing_gsparams():  # made on first use: galsim imports lazily
    import galsim

    return galsim.GSParams(folding_threshold=2e-2)


def _scale_of(pop: dict) -> float:
    """The pixel scale (″/px) a population's positions and sizes are in."""
    return float(pop.get("pixel_scale", PIXEL_SCALE))


def band_flux_scale(band: str) -> float:
    """e⁻/s in ``band`` of a source as bright (AB) as one of 1 e⁻/s in F160W.

    >>> band_flux_scale("F160W")
    1.0
    """
    return float(10 ** (0.4 * (BANDS[band].zeropoint - ZEROPOINT)))


def render_stamp(pop: dict, i: int, band: str = "F160W",
                 colours: dict | None = None) -> tuple[np.ndarray, int, int]:
    """Source ``i`` drawn on its own stamp in ``band``: (image, y0, x0) with the stamp's
    top-left pixel.

    The stamp is centred on the source's pixel and holds ≥ 99.5% of its flux (up to
    ``MAX_STAMP_HALF``); the sub-pixel position is applied by GalSim as an offset. Every band
    of a source uses the same stamp.
    """
    import galsim

    prof = _profile(pop, i, band, colours)
    flux = float(flux_of(pop["mag"][i]))
    if colours is not None:
        flux *= float(prof.flux) * band_flux_scale(band)
    cy, cx = float(pop["y"][i]), float(pop["x"][i])
    iy, ix = int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))
    half = int(np.clip(np.ceil(5 * pop["r50_intrinsic"][i] * pop["rescale"][i] + 10),
                       pop.get("psf_half", 12), MAX_STAMP_HALF))
    img = galsim.ImageF(2 * half + 1, 2 * half + 1, scale=_scale_of(pop))
    prof.withFlux(flux).drawImage(image=img, method="no_pixel",
                                  offset=(cx - ix, cy - iy))
    return img.array.astype(np.float64), iy - half, ix - half


def _paste(target: np.ndarray, stamp: np.ndarray, y0: int, x0: int, origin=(0, 0)) -> None:
    """Add ``stamp`` at mosaic position (y0, x0) into ``target`` whose (0,0) is ``origin``."""
    ty0, tx0 = y0 - origin[0], x0 - origin[1]
    h, w = target.shape
    sy0, sx0 = max(0, -ty0), max(0, -tx0)
    sy1 = min(stamp.shape[0], h - ty0)
    sx1 = min(stamp.shape[1], w - tx0)
    if sy0 < sy1 and sx0 < sx1:
        target[ty0 + sy0:ty0 + sy1, tx0 + sx0:tx0 + sx1] += stamp[sy0:sy1, sx0:sx1]


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float,
                     correlation: float = NOISE_CORRELATION_SIGMA) -> np.ndarray:
    """Gaussian noise with std ``sigma``, smoothed by a Gaussian of ``correlation`` px.

    The default gives the pixel correlations of drizzled HST data; 0 gives white noise.
    """
    from scipy import ndimage

    white = rng.normal(0.0, 1.0, shape)
    if correlation <= 0:
        return (white * sigma).astype(np.float32)
    smooth = ndimage.gaussian_filter(white, correlation, mode="wrap")
    # std of unit white noise after a separable normalised kernel k: Σk² (the 2-D variance is
    # (Σk²)²), known in advance, so every realisation has the same expected sigma
    return (smooth * sigma / noise_texture_factor(correlation)).astype(np.float32)


def noise_texture_factor(correlation: float) -> float:
    """How much noise correlated by ``correlation`` px lowers a source's matched-filter S/N.

    With the same per-pixel σ, noise smoothed by a normalised kernel k has 1/Σk² (2-D) times
    the power of white noise at low frequencies, so the S/N of a source wider than the kernel
    falls by sqrt(Σk²) = Σk²_1D: 1 for white noise, 0.50 at 0.6 px (GOODS-S), 0.31 at 0.9 px.

    >>> round(noise_texture_factor(0.0), 2), round(noise_texture_factor(0.6), 2)
    (1.0, 0.5)
    """
    if correlation <= 0:
        return 1.0
    half = max(4, int(np.ceil(4 * correlation)))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / correlation) ** 2)
    k /= k.sum()
    return float((k ** 2).sum())


def _truth_table(pop: dict, keep: np.ndarray, stamps: list, shape, origin=(0, 0)):
    """Truth rows for sources ``keep``: their drawn positions, r50 measured on full stamps.

    The position is where the source was drawn: the profile's centre, which for a real COSMOS
    galaxy is the centre of its HST stamp. A flux-weighted centroid of the stamp would not
    do: the stamp carries COSMOS's own noise, and its centroid lies more than 1 px from the
    stamp centre for 44% of real galaxies at S/N ≥ 20, more than 3 px for 11%.
    """
    from astropy.table import Table

    n = len(keep)
    ty, tx = np.asarray(pop["y"][keep], float), np.asarray(pop["x"][keep], float)
    flux, r50 = np.zeros(n), np.zeros(n)
    for j, (stamp, y0, x0) in enumerate(stamps):
        total = stamp.sum()
        yy, xx = np.mgrid[0:stamp.shape[0], 0:stamp.shape[1]]
        flux[j] = float(flux_of(pop["mag"][keep[j]]))
        r = np.hypot(yy + y0 - ty[j], xx + x0 - tx[j]).ravel()
        order = np.argsort(r)
        cum = np.cumsum(stamp.ravel()[order])
        r50[j] = r[order][np.searchsorted(cum, 0.5 * total)]
    h, w = shape
    in_frame = (ty - origin[0] >= -0.5) & (ty - origin[0] < h - 0.5) & (
        tx - origin[1] >= -0.5) & (tx - origin[1] < w - 0.5)
    table = Table()
    table["x"], table["y"] = tx, ty
    table["flux"] = flux
    table["mag"] = mag_of(flux)
    table["kind"] = np.asarray(pop["kind"][keep]).astype("U10")
    # which of the COSMOS stamps a real galaxy is (-1 for the others): errors can be traced to it
    table["cosmos_index"] = np.asarray(pop["real_index"][keep], np.int64)
    table["r50"] = r50
    table["in_frame"] = in_frame
    return table


def simulate_scene(shape=(256, 256), *, seed: int, density: float = 1.0,
                   noise_sigma: float | None = None, pair_fraction: float = 0.05,
                   star_fraction: float = STAR_FRACTION, margin: float = 20.0,
                   noise_correlation: float | None = None,
                   real_galaxies: str = "all", bands=("F160W",)) -> Scene:
    """Simulate one F160W-like scene with its truth, or the same scene in several bands.

    Parameters
    ----------
    shape : (h, w)
    seed : int
    density : float
        Source density relative to GOODS-S deep (≈250 per arcmin² to H = 28.5).
    noise_sigma : float, optional
        Pixel noise in e⁻/s (default: GOODS-S deep, 0.0046).
    pair_fraction : float
        Fraction of sources given an extra companion 2–10 px away (mergers, chance pairs).
    margin : float
        Sources are centred up to this far (px) outside the frame.
    noise_correlation : float, optional
        Width (px) of the Gaussian that correlates the noise (default 0.6, measured on
        GOODS-S); 0 gives white noise.
    real_galaxies : {"all", "train", "held_out"}
        Which COSMOS galaxies the scene's real galaxies come from (:func:`real_galaxy_pool`).
    bands : tuple of str
        The bands to render (:data:`mosaic_pais.sim.bands.BANDS`, F160W among them), e.g.
        :data:`~mosaic_pais.sim.bands.FOUR_BANDS`. With more than F160W every source gets
        colours (:func:`~mosaic_pais.sim.bands.draw_colours`) and every band its own PSF, depth
        (``noise_sigma`` scales them all: it is F160W's) and noise texture (each band's own
        unless ``noise_correlation`` is given). The F160W population and noise are those of
        the single-band scene of the same seed. The bands of Subaru HSC
        (:data:`~mosaic_pais.sim.bands.SURVEYS`) make a ground-based scene on their 0.168″ grid,
        each with the seeing the scene draws; there ``noise_sigma`` scales every band's
        reference depth as it scales F160W's, and the truth's ``flux`` and ``mag`` are HSC-I's.

    Returns
    -------
    Scene
        ``truth`` columns: id, x, y (0-based, where the source was drawn: the centre of its
        profile, the flux-weighted centroid for a parametric galaxy or a star), flux (total
        e⁻/s), mag, flux_in_frame, kind, r50 (px, with PSF), in_frame, blendedness
        (docs/metrics.md), snr (the white-noise matched-filter S/N of the source's light in
        the frame, :func:`matched_filter_snr`); with several bands also ``flux_<BAND>``
        (total e⁻/s in each band), and blendedness and snr are F160W's.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1 or density < 0:
        raise BadInputError(f"bad scene: shape {shape}, density {density}")
    sigma = DEFAULT_NOISE_SIGMA if noise_sigma is None else float(noise_sigma)
    bands = check_bands(bands)
    survey = survey_of(bands)
    given_correlation = noise_correlation
    det_spec = BANDS[survey.detection_band]
    if noise_correlation is None:
        noise_correlation = NOISE_CORRELATION_SIGMA if survey.detection_band == "F160W" \
            else det_spec.noise_correlation
    # the detection band's pixel noise: ``noise_sigma`` is F160W's, other surveys' depths scale
    # with it from their reference depth
    det_sigma = det_spec.noise_sigma * sigma / DEFAULT_NOISE_SIGMA
    if survey.detection_band == "F160W":
        det_sigma = sigma
    rng = np.random.default_rng([int(seed), 160])
    pop = draw_population(rng, h, w, margin=margin, density=density,
                          pair_fraction=pair_fraction, star_fraction=star_fraction,
                          real_galaxies=real_galaxies, pixel_scale=survey.pixel_scale)
    _add_seeing(pop, survey, bands, int(seed))
    noise_det = correlated_noise(rng, (h, w), det_sigma, noise_correlation)
    colours = None if bands == ("F160W",) else draw_colours(
        np.random.default_rng([int(seed), 606]), pop)
    sigmas, noise = _band_noise(bands, int(seed), (h, w), sigma, given_correlation,
                                noise_det, survey.detection_band, det_sigma)
    det = bands.index(survey.detection_band)
    stamps, keep, images = [], [], []
    for i in range(len(pop["y"])):
        drawn = [render_stamp(pop, i, band, colours) for band in bands]
        frames = np.zeros((len(bands), h, w))
        for frame, (stamp, y0, x0) in zip(frames, drawn, strict=True):
            _paste(frame, stamp, y0, x0)
        if frames[det].sum() <= 0 and not (0 <= pop["y"][i] < h and 0 <= pop["x"][i] < w):
            continue  # entirely outside: not part of this scene
        stamps.append(drawn[det])
        keep.append(i)
        images.append(frames)
    keep = np.asarray(keep, int)
    sources = (np.stack(images) if images else np.zeros((0, len(bands), h, w))
               ).astype(np.float32)
    truth = _truth_table(pop, keep, stamps, (h, w))
    truth.add_column(np.arange(len(keep), dtype=np.int64), name="id", index=0)
    if survey.detection_band != "F160W":  # the detection band's flux, in its own units
        truth["flux"] = [band_flux(pop, colours, i, survey.detection_band) for i in keep]
        with np.errstate(divide="ignore"):
            truth["mag"] = det_spec.zeropoint - 2.5 * np.log10(np.asarray(truth["flux"]))
    truth["flux_in_frame"] = sources[:, det].sum(axis=(1, 2)).astype(np.float64)
    truth["blendedness"] = blendedness(sources[:, det:det + 1])
    truth["snr"] = matched_filter_snr(sources[:, det:det + 1], det_sigma)
    if colours is not None:
        for band in bands:
            truth[f"flux_{band}"] = [band_flux(pop, colours, i, band) for i in keep]
    image = (sources.sum(0) + noise).astype(np.float32)
    truth.meta.update({"SEED": int(seed), "DENSITY": density, "NOISE": sigma,
                       "NOISECOR": noise_correlation,
                       "PAIRFRAC": pair_fraction, "REALPOOL": real_galaxies,
                       "ZEROPNT": det_spec.zeropoint, "PIXSCALE": survey.pixel_scale,
                       "BANDS": ",".join(bands)})
    if pop.get("psfs"):
        truth.meta["SEEING"] = pop["seeing"]
    return Scene(image=image, sources=sources, noise=noise.astype(np.float32), truth=truth,
                 noise_sigma=sigma if len(bands) == 1 else np.asarray(sigmas), bands=bands)


def _add_seeing(pop: dict, survey, bands: tuple, seed: int) -> None:
    """A ground-based scene's PSFs (:func:`mosaic_pais.sim.bands.seeing_psfs`), from their own
    random stream, and the stamp half-size that holds their wings."""
    psfs = seeing_psfs(np.random.default_rng([seed, 168]), survey, bands)
    if psfs is None:
        return
    # each band's Moffat FWHM (″): the first member of its convolution with the pixel
    pop["seeing_fwhm"] = {band: float(p.obj_list[0].fwhm) for band, p in psfs.items()}
    fwhm = max(pop["seeing_fwhm"].values()) / survey.pixel_scale
    pop["psfs"] = psfs
    pop["seeing"] = pop["seeing_fwhm"][survey.detection_band]
    # a Moffat of β 2.5 holds ~99% of its light within 4 FWHM
    pop["psf_half"] = int(min(MAX_STAMP_HALF, np.ceil(4 * fwhm) + 2))


def _band_noise(bands: tuple, seed: int, shape: tuple, sigma: float,
                correlation: float | None, noise_det: np.ndarray, detection_band: str,
                det_sigma: float):
    """Every band's pixel noise and noise image: the detection band's as given (``det_sigma``,
    ``noise_det``), the others at their own depth relative to F160W's reference and their own
    texture (or ``correlation`` when given), each from its own random stream."""
    sigmas, planes = [], []
    for k, band in enumerate(bands):
        if band == detection_band:
            sigmas.append(det_sigma)
            planes.append(noise_det)
            continue
        spec = BANDS[band]
        band_sigma = spec.noise_sigma * sigma / DEFAULT_NOISE_SIGMA
        band_correlation = spec.noise_correlation if correlation is None else correlation
        sigmas.append(band_sigma)
        planes.append(correlated_noise(np.random.default_rng([seed, 160, k + 1]), shape,
                                       band_sigma, band_correlation))
    return sigmas, np.stack(planes)


def band_flux(pop: dict, colours: dict, i: int, band: str) -> float:
    """Total flux (e⁻/s) of source ``i`` in ``band``, as :func:`render_stamp` draws it."""
    from mosaic_pais.sim.bands import band_weights

    share = _bulge_share(pop, colours, i)
    return float(flux_of(pop["mag"][i]) * sum(band_weights(colours, i, band, share))
                 * band_flux_scale(band))


def _bulge_share(pop: dict, colours: dict, i: int) -> float:
    """The share of source ``i``'s F160W light in its red component: a parametric galaxy's
    bulge, a real galaxy's core, none for a star."""
    kind = pop["kind"][i]
    if kind == "star":
        return 0.0
    return float(colours["core_fraction"][i] if kind == "real" else pop["bulge_fraction"][i])


def matched_filter_snr(sources: np.ndarray, noise_sigma) -> np.ndarray:
    """Matched-filter S/N ``sqrt(Σ S²)/σ`` of noiseless source images (N, b, h, w), over bands.

    The S/N of an ideal detector if the noise were white; drizzle-correlated noise has more
    power on a source's scales, so the real S/N is lower (about half for GOODS-S-like noise,
    :func:`noise_texture_factor`).
    """
    sigma = np.asarray(noise_sigma, np.float64).reshape(1, -1, 1, 1)
    if len(sources) == 0:
        return np.zeros(0)
    return np.sqrt(((np.asarray(sources, np.float64) / sigma) ** 2).sum(axis=(1, 2, 3)))


def blendedness(sources: np.ndarray) -> np.ndarray:
    """β_k = 1 − (S_k·S_k)/(S_all·S_k) of noiseless per-source images (N, b, h, w)."""
    if len(sources) == 0:
        return np.zeros(0)
    flat = sources[:, 0].reshape(len(sources), -1).astype(np.float64)
    total = flat.sum(0)
    self_dot = (flat * flat).sum(1)
    all_dot = flat @ total
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(all_dot > 0, 1.0 - self_dot / all_dot, 0.0)
    return np.clip(beta, 0.0, 1.0)


def tan_wcs(height: int, width: int, ra: float = 53.12, dec: float = -27.80,
            pixel_scale: float = PIXEL_SCALE):
    """A north-up TAN WCS of ``pixel_scale`` ″/px (0.06 by default) centred on (ra, dec)
    (GOODS-S by default)."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(width + 1) / 2.0, (height + 1) / 2.0]
    wcs.wcs.cd = [[-pixel_scale / 3600.0, 0.0], [0.0, pixel_scale / 3600.0]]
    return wcs


def _render_strip(args) -> tuple[np.ndarray, list]:
    """Rows [y0, y1) of a mosaic (noiseless + noise) and the truth rows owned by the strip."""
    pop, y0, y1, width, seed, sigma, correlation, strip_index = args
    halo = MAX_STAMP_HALF + 1
    noiseless = np.zeros((y1 - y0 + 2 * halo, width))
    owned, stamps = [], []
    near = np.flatnonzero((pop["y"] >= y0 - halo) & (pop["y"] < y1 + halo))
    rendered = {}
    for i in near:
        stamp, sy, sx = render_stamp(pop, i)
        rendered[i] = (stamp, sy, sx)
        _paste(noiseless, stamp, sy, sx, origin=(y0 - halo, 0))
    for i in near:
        cy = pop["y"][i]
        if y0 - 0.5 <= cy < y1 - 0.5 or (strip_index == 0 and cy < y0 - 0.5) or (
                y1 == pop["height"] and cy >= y1 - 0.5):
            stamp, sy, sx = rendered[i]
            # blendedness against everything else on the stamp's footprint
            patch = np.zeros_like(stamp)
            ty0 = sy - (y0 - halo)
            ys = slice(max(ty0, 0), min(ty0 + stamp.shape[0], noiseless.shape[0]))
            xs = slice(max(sx, 0), min(sx + stamp.shape[1], width))
            if ys.stop <= ys.start or xs.stop <= xs.start:
                continue  # entirely outside (a negative stop would wrap around)
            py = slice(ys.start - ty0, ys.stop - ty0)
            px = slice(xs.start - sx, xs.stop - sx)
            patch[py, px] = noiseless[ys, xs]
            clipped = np.zeros_like(stamp)
            clipped[py, px] = stamp[py, px]
            sk = clipped.sum()
            if sk <= 0:
                continue
            dot_all = (patch * clipped).sum()
            beta = 1.0 - (clipped * clipped).sum() / dot_all if dot_all > 0 else 0.0
            owned.append((i, float(np.clip(beta, 0, 1)), float(sk)))
            stamps.append(rendered[i])
    rng = np.random.default_rng([int(seed), 161, strip_index])
    noise = correlated_noise(rng, (y1 - y0, width), sigma, correlation)
    image = (noiseless[halo:halo + y1 - y0] + noise).astype(np.float32)
    return image, [(o, s) for o, s in zip(owned, stamps, strict=True)]


def simulate_mosaic(output, *, size: int, seed: int = 0, density: float = 1.0,
                    noise_sigma: float | None = None, pair_fraction: float = 0.05,
                    block: int = 1024, progress: bool = False, processes: int = 1,
                    noise_correlation: float | None = None) -> dict:
    """Simulate a ``size`` × ``size`` mosaic into ``output/mosaic.fits`` and ``truth.fits``.

    The mosaic is rendered strip by strip (``block`` rows, plus a halo so that sources crossing
    strip borders are whole) and streamed into the FITS file, so memory stays bounded by one
    strip however large the mosaic. ``noise_correlation`` is the width (px) of the Gaussian
    that correlates the noise, as in :func:`simulate_scene` (default 0.6; 0: white noise).
    """
    from astropy.io import fits
    from astropy.table import vstack
    from tqdm import tqdm

    size = int(size)
    if size < 16:
        raise BadInputError(f"--size must be at least 16 pixels (got {size})")
    if density < 0:
        raise BadInputError(f"--density must be non-negative (got {density})")
    if noise_correlation is None:
        noise_correlation = NOISE_CORRELATION_SIGMA
    if noise_correlation < 0 or (noise_sigma is not None and noise_sigma < 0):
        raise BadInputError(f"noise sigma and correlation must be non-negative (got "
                            f"{noise_sigma}, {noise_correlation})")
    sigma = DEFAULT_NOISE_SIGMA if noise_sigma is None else float(noise_sigma)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([int(seed), 162])
    pop = draw_population(rng, size, size, margin=20.0, density=density,
                          pair_fraction=pair_fraction)
    pop["height"] = size
    wcs = tan_wcs(size, size)
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = size
    header["NAXIS2"] = size
    header.update(wcs.to_header())
    header["BUNIT"] = "electron/s"
    header["FILTER"] = "F160W"
    header["ZEROPNT"] = (ZEROPOINT, "AB mag of 1 e-/s")
    header["NOISE"] = (sigma, "pixel noise sigma, e-/s")
    header["NOISECOR"] = (noise_correlation, "px, Gaussian correlating the noise (0: white)")
    header["SEED"] = int(seed)
    header["ORIGIN"] = "mosaic-pais simulate"
    strips = [(pop, y0, min(y0 + block, size), size, seed, sigma, noise_correlation, k)
              for k, y0 in enumerate(range(0, size, block))]
    tmp = output / ".mosaic.fits.tmp"
    tmp.unlink(missing_ok=True)  # StreamingHDU would append to a leftover of a killed run
    rows = []
    shdu = fits.StreamingHDU(tmp, header)
    try:
        if processes > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(processes)
            results = pool.imap(_render_strip, strips)
        else:
            pool = None
            results = map(_render_strip, strips)
        for image, owned in tqdm(results, total=len(strips), desc="simulate",
                                 disable=not progress):
            shdu.write(image)
            if owned:
                keep = np.array([o[0][0] for o in owned])
                table = _truth_table(pop, keep, [o[1] for o in owned], (size, size))
                table["flux_in_frame"] = [o[0][2] for o in owned]
                table["blendedness"] = [o[0][1] for o in owned]
                rows.append(table)
        if pool is not None:
            pool.close()
    finally:
        shdu.close()
    tmp.replace(output / "mosaic.fits")
    truth = vstack(rows) if rows else _truth_table(pop, np.zeros(0, int), [], (size, size))
    truth.add_column(np.arange(len(truth), dtype=np.int64), name="id", index=0)
    ra, dec = wcs.pixel_to_world_values(np.asarray(truth["x"]), np.asarray(truth["y"]))
    truth["ra"], truth["dec"] = ra, dec
    truth.meta.update({"SEED": int(seed), "DENSITY": density, "NOISE": sigma,
                       "NOISECOR": noise_correlation,
                       "ZEROPNT": ZEROPOINT, "PIXSCALE": PIXEL_SCALE})
    truth.write(output / ".truth.fits.tmp", format="fits", overwrite=True)
    (output / ".truth.fits.tmp").replace(output / "truth.fits")
    return {"mosaic": output / "mosaic.fits", "truth": output / "truth.fits",
            "n_sources": len(truth)}
