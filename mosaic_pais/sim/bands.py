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

Depths and textures are those measured on the real cutout 1903 (its pixel noise per band,
scaled so that F160W is the F160W simulator's 0.0046 e⁻/s; 4 × 4 block noise over pixel noise
1.3 for ACS and 1.9–2.0 for WFC3/IR). Zero points are the instruments' published AB zero
points for 1 e⁻/s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mosaic_pais.errors import BadInputError

__all__ = [
    "BandSpec",
    "BANDS",
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
    """One band: its TinyTim PSF file (``sim/data/tinytim_psfs``), AB zero point of 1 e⁻/s,
    GOODS-S pixel noise (e⁻/s), the width (px) of the Gaussian that correlates its noise, and
    how much of a colour F606W − F160W its colour against F160W is."""

    psf_file: str
    zeropoint: float
    noise_sigma: float
    noise_correlation: float
    sed_weight: float


BANDS = {
    "F606W": BandSpec("v.fits", 26.49, 0.0037, 0.45, 1.0),
    "F850LP": BandSpec("z.fits", 24.86, 0.0017, 0.45, 0.4),
    "F125W": BandSpec("j.fits", 26.23, 0.0049, 0.6, 0.15),
    "F160W": BandSpec("h.fits", 25.94, 0.0046, 0.6, 0.0),
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


def check_bands(bands) -> tuple[str, ...]:
    """The bands as a tuple, refused in one line unless all are known and F160W is one."""
    bands = tuple(str(b) for b in bands)
    unknown = [b for b in bands if b not in BANDS]
    if unknown or DETECTION_BAND not in bands or len(set(bands)) != len(bands):
        raise BadInputError(f"bands {', '.join(bands)}: give distinct bands among "
                            f"{', '.join(BANDS)}, F160W included")
    return bands


@functools.cache
def band_psf(band: str):
    """The band's TinyTim PSF as a GalSim profile of unit flux (its native pixel response
    included, so drawn with ``method="no_pixel"``), centred on its centroid so that a source
    drawn at a position has its light's centroid there."""
    import galsim
    from astropy.io import fits

    from mosaic_pais.sim.scenes import sim_data_dir

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
