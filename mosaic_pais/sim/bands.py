"""The four HST bands of the Hubble Legacy Field GOODS-S mosaics, and the colours of sources.

A four-band scene renders F606W and F850LP (ACS/WFC) and F125W and F160W (WFC3/IR) on the
mosaics' common 0.06″/px grid, each band with its own TinyTim PSF (ACS's sampled at 0.0495″/px,
WFC3/IR's at 0.13″/px; GalSim interpolates each at its own scale), its own depth and its own
noise texture.

Colours. A source's light is a main body and, for galaxies, a compact bulge. The main body's
colour F606W − F160W is drawn from a distribution whose median reddens with brightness, as
the galaxies detected in the real four-band GOODS-S cutouts do
(``benchmarks/four_band_scenes.py`` compares them); the other bands follow one SED shape
(:attr:`BandSpec.sed_weight`: a colour c in F606W − F160W is ``sed_weight · c`` in
X − F160W). The bulge is redder than the main body by :data:`BULGE_EXCESS` ± its scatter, so
a galaxy's colour changes from its centre outwards and the share of a pixel's light that each
source holds differs from band to band. Real COSMOS galaxies get a compact red core the same
way (:data:`REAL_CORE_FRACTION` of their F160W light at most).

Ground-based scenes (Subaru Hyper Suprime-Cam, bands HSC-G to HSC-Y on its 0.168″/px coadd
grid, :data:`SURVEYS`) draw the same population over the same sky area, their colours from the
same SED shape, and each scene its own seeing (:func:`seeing_psfs`), since a ground-based
PSF changes from night to night and no fixed PSF would teach a model to read others.

Depths and textures of the HST bands are those measured on the real cutout 1903 (its pixel
noise per band, scaled so that F160W is the F160W simulator's 0.0046 e⁻/s; 4 × 4 block noise
over pixel noise 1.3 for ACS and 1.9–2.0 for WFC3/IR). Zero points are the instruments'
published AB zero points for 1 e⁻/s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mosaic_pais.errors import BadInputError

__all__ = [
    "BandSpec",
    "BANDS",
    "Survey",
    "SURVEYS",
    "survey_of",
    "seeing_psfs",
    "FOUR_BANDS",
    "DETECTION_BAND",
    "COLOUR_MEDIAN_AT_24",
    "COLOUR_SLOPE",
    "COLOUR_SCATTER",
    "BULGE_EXCESS",
    "REAL_CORE_FRACTION",
    "check_bands",
    "band_psf",
    "draw_colours",
    "band_weights",
]


@dataclass(frozen=True)
class BandSpec:
    """One band: its TinyTim PSF file (``sim/data/tinytim_psfs``; None for a ground-based band,
    whose PSF is the seeing each scene draws), AB zero point of one unit of its images, pixel
    noise in those units at its survey's reference depth, the width (px) of the Gaussian that
    correlates its noise, and how much of a colour F606W − F160W its colour against F160W is."""

    psf_file: str | None
    zeropoint: float
    noise_sigma: float
    noise_correlation: float
    sed_weight: float
    #: effective wavelength (nm): how the seeing changes from band to band
    wavelength: float = 0.0


BANDS = {
    "F606W": BandSpec("v.fits", 26.49, 0.0037, 0.45, 1.0, 590.0),
    "F850LP": BandSpec("z.fits", 24.86, 0.0017, 0.45, 0.4, 905.0),
    "F125W": BandSpec("j.fits", 26.23, 0.0049, 0.6, 0.15, 1250.0),
    "F160W": BandSpec("h.fits", 25.94, 0.0046, 0.6, 0.0, 1540.0),
    # Subaru Hyper Suprime-Cam coadds (zero point 27 AB): pixel noise from the variance planes
    # of a real HSC COSMOS blend (scarlet's tutorial data); noise correlated by 0.5 px, a
    # texture of 1.4 (a real, mostly empty HSC field measures 1.1-1.5 per band)
    "HSC-G": BandSpec(None, 27.0, 0.0127, 0.5, 1.15, 475.0),
    "HSC-R": BandSpec(None, 27.0, 0.0141, 0.5, 0.85, 620.0),
    "HSC-I": BandSpec(None, 27.0, 0.0203, 0.5, 0.6, 770.0),
    "HSC-Z": BandSpec(None, 27.0, 0.0333, 0.5, 0.4, 890.0),
    "HSC-Y": BandSpec(None, 27.0, 0.0666, 0.5, 0.3, 1000.0),
}


@dataclass(frozen=True)
class Survey:
    """The bands one scene can hold: their pixel grid (″/px), the band a scene's detection
    figures (truth flux, S/N, blendedness) are taken in, and every band in the order a model
    of the survey reads them (the detection band first)."""

    name: str
    pixel_scale: float
    detection_band: str
    bands: tuple
    #: range (″) of the seeing FWHM at the detection band's wavelength a scene draws
    #: log-uniformly; None for space-based bands with fixed PSFs
    seeing: tuple | None = None


SURVEYS = {
    "HST": Survey("HST", 0.06, "F160W", ("F160W", "F125W", "F850LP", "F606W")),
    # seeing from PSF-matched coadds (0.2″) to poor nights (1.1″)
    "HSC": Survey("HSC", 0.168, "HSC-I", ("HSC-I", "HSC-Z", "HSC-Y", "HSC-R", "HSC-G"),
                  seeing=(0.2, 1.1)),
}
#: the four-band scenes' bands: F160W first (a run's first band is its detection band: the
#: ``flux`` column, footprints and segmentation follow it), then bluer and bluer
FOUR_BANDS = ("F160W", "F125W", "F850LP", "F606W")
#: the band whose magnitudes, sizes and truth positions a scene is drawn in
DETECTION_BAND = "F160W"
#: the main body's F606W − F160W: median at H = 24, change per magnitude fainter, scatter
COLOUR_MEDIAN_AT_24, COLOUR_SLOPE, COLOUR_SCATTER = 1.25, -0.25, 1.0
#: how much redder (F606W − F160W) a bulge is than its galaxy's main body, and its scatter
BULGE_EXCESS = (0.8, 0.3)
#: the most of a real galaxy's F160W light its red core holds (times a Beta(1.2, 3) draw)
REAL_CORE_FRACTION = 0.5
#: stars' F606W − F160W: median and scatter
STAR_COLOUR = (1.5, 1.0)


def survey_of(bands) -> Survey:
    """The survey whose bands these are, refused in one line unless they are distinct bands
    of one survey, its detection band among them.

    >>> survey_of(["HSC-I", "HSC-G"]).pixel_scale
    0.168
    """
    bands = tuple(str(b) for b in bands)
    for survey in SURVEYS.values():
        if (set(bands) <= set(survey.bands) and survey.detection_band in bands
                and len(set(bands)) == len(bands)):
            return survey
    raise BadInputError(f"bands {', '.join(bands)}: give distinct bands of one survey, its "
                        "detection band included: " + "; ".join(
                            f"{', '.join(s.bands)} ({s.detection_band} included)"
                            for s in SURVEYS.values()))


def check_bands(bands) -> tuple[str, ...]:
    """The bands as a tuple, refused in one line unless they are distinct bands of one
    survey with its detection band (:func:`survey_of`)."""
    survey_of(bands)
    return tuple(str(b) for b in bands)


def seeing_psfs(rng: np.random.Generator, survey: Survey, bands) -> dict | None:
    """A ground-based scene's PSF in each band: Moffat profiles (β 2.5–4.5, the shape of
    atmospheric seeing with a telescope's wings) whose FWHM is drawn log-uniformly in the
    survey's seeing range at the detection band and scales as λ^−0.2 (Kolmogorov turbulence)
    to the others, times ±5% of night-to-night scatter per band. The pixel response is
    included (drawn with ``method="no_pixel"`` on the survey's grid). None for a survey of
    fixed PSFs.

    >>> psfs = seeing_psfs(np.random.default_rng(0), SURVEYS["HSC"], ["HSC-I", "HSC-G"])
    >>> sorted(psfs), float(psfs["HSC-G"].flux)
    (['HSC-G', 'HSC-I'], 1.0)
    """
    if survey.seeing is None:
        return None
    import galsim

    low, high = np.log(survey.seeing[0]), np.log(survey.seeing[1])
    fwhm = float(np.exp(rng.uniform(low, high)))
    beta = float(rng.uniform(2.5, 4.5))
    ref = BANDS[survey.detection_band].wavelength
    pixel = galsim.Pixel(survey.pixel_scale)
    return {band: galsim.Convolve(galsim.Moffat(
        beta=beta, fwhm=fwhm * (BANDS[band].wavelength / ref) ** -0.2
        * float(rng.uniform(0.95, 1.05))), pixel) for band in bands}


@functools.cache
def band_psf(band: str):
    """The band's TinyTim PSF as a GalSim profile of unit flux (its native pixel response
    included, so drawn with ``method="no_pixel"``), centred on its centroid so that a source
    drawn at a position has its light's centroid there."""
    import galsim
    from astropy.io import fits

    from mosaic_pais.sim.scenes import sim_data_dir

    if BANDS[band].psf_file is None:
        raise ValueError(f"{band} has no fixed PSF: its scenes draw their seeing "
                         "(seeing_psfs)")
    path = sim_data_dir() / "tinytim_psfs" / BANDS[band].psf_file
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float64)
        scale = float(hdul[0].header["PIXSCALE"])
    data = data / data.sum()
    yy, xx = np.mgrid[0:data.shape[0], 0:data.shape[1]]
    # GalSim centres an InterpolatedImage on the image's true centre, (n − 1)/2
    dy = (data * yy).sum() - (data.shape[0] - 1) / 2
    dx = (data * xx).sum() - (data.shape[1] - 1) / 2
    psf = galsim.InterpolatedImage(galsim.Image(data, scale=scale), flux=1.0)
    return psf.shift(-dx * scale, -dy * scale)


def draw_colours(rng: np.random.Generator, pop: dict) -> dict:
    """Each source's main-body colour F606W − F160W, its bulge's excess, and (real galaxies)
    the share of its F160W light in a red core; from their own random stream, so that a
    scene's F160W population is the same with or without colours.

    >>> pop = {"mag": np.array([20.0, 26.0]), "kind": np.array(["parametric", "star"])}
    >>> c = draw_colours(np.random.default_rng(0), pop)
    >>> sorted(c), c["core_fraction"].tolist()
    (['bulge_excess', 'colour', 'core_fraction'], [0.0, 0.0])
    """
    n = len(pop["mag"])
    mag = np.asarray(pop["mag"], float)
    colour = (COLOUR_MEDIAN_AT_24 + COLOUR_SLOPE * (mag - 24.0)
              + rng.normal(0.0, COLOUR_SCATTER, n))
    star = np.asarray(pop["kind"]) == "star"
    colour[star] = rng.normal(*STAR_COLOUR, star.sum())
    excess = np.clip(rng.normal(*BULGE_EXCESS, n), 0.0, None)
    core = REAL_CORE_FRACTION * rng.beta(1.2, 3.0, n)
    core[np.asarray(pop["kind"]) != "real"] = 0.0
    return {"colour": np.clip(colour, -0.5, 4.5), "bulge_excess": excess,
            "core_fraction": core}


def band_weights(colours: dict, i: int, band: str, bulge_fraction: float) -> tuple[float, float]:
    """Source ``i``'s main body and bulge in ``band``, as multiples of its F160W flux.

    ``bulge_fraction`` is the bulge's (or red core's) share of the F160W light; the colours
    make each component fainter in bluer bands by ``sed_weight`` times its colour.

    >>> colours = {"colour": np.array([1.0]), "bulge_excess": np.array([0.5])}
    >>> [round(w, 3) for w in band_weights(colours, 0, "F160W", 0.3)]
    [0.7, 0.3]
    >>> main, bulge = band_weights(colours, 0, "F606W", 0.3)
    >>> float(round(-2.5 * np.log10(main / 0.7), 2)), float(round(-2.5 * np.log10(bulge / 0.3), 2))
    (1.0, 1.5)
    """
    weight = BANDS[band].sed_weight
    main = 10 ** (-0.4 * weight * colours["colour"][i])
    bulge = 10 ** (-0.4 * weight * (colours["colour"][i] + colours["bulge_excess"][i]))
    return float((1.0 - bulge_fraction) * main), float(bulge_fraction * bulge)
