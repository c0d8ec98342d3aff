"""Total fluxes: footprint sums divided by the share of light the footprint holds under the PSF."""

import numpy as np
import pytest

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, model_metadata
from mosaic_pais.runtime.measure import (
    band_corrections,
    combine,
    footprint_bins,
    footprint_r50,
    matched_weights,
    measure_image,
    measure_region,
)
from mosaic_pais.runtime.pipeline import psf_path
from mosaic_pais.runtime.total_flux import MAX_CORRECTION, GrowthCurves, read_psf

SHAPE = (96, 96)


@pytest.fixture(scope="module")
def shipped_psf():
    path = psf_path(None, DEFAULT_MODEL_PATH, model_metadata())
    assert path is not None and path.is_file(), "the shipped model card names its PSF"
    return read_psf(path)


@pytest.fixture(scope="module")
def curves(shipped_psf):
    return GrowthCurves.from_psf(shipped_psf)


def render(psf: np.ndarray, centre, scale_length: float, flux: float) -> np.ndarray:
    """PSF ⊗ exponential disk (scale length 0: the PSF alone) at a sub-pixel ``centre``, by
    Fourier shift and convolution on a grid large enough that nothing wraps."""
    n = SHAPE[0]
    idx = np.fft.fftfreq(n, 1 / n)
    sub = (np.arange(5) + 0.5) / 5 - 0.5
    if scale_length > 0:
        disk = sum(np.exp(-np.hypot(idx[:, None] + a, idx[None, :] + b) / scale_length)
                   for a in sub for b in sub)
    else:
        disk = np.zeros((n, n))
        disk[0, 0] = 1.0
    kernel = np.zeros((n, n))
    h, w = psf.shape
    kernel[:h, :w] = psf / psf.sum()
    yy, xx = np.mgrid[:h, :w]
    cy, cx = (kernel[:h, :w] * yy).sum(), (kernel[:h, :w] * xx).sum()
    ky, kx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    shift = np.exp(-2j * np.pi * (ky * (centre[0] - cy) + kx * (centre[1] - cx)))
    image = np.fft.ifft2(np.fft.fft2(disk / disk.sum()) * np.fft.fft2(kernel) * shift).real
    return flux * image


def measure_one(image: np.ndarray, centre, growth):
    ids = np.zeros((3, *SHAPE), np.int64)
    ids[1:] = -1
    frac = np.zeros((1, 3, *SHAPE))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([centre[0]]), "x": np.array([centre[1]]),
             "score": np.array([1.0])}
    columns, _, _ = measure_image(image[None], ids, frac, peaks, ["F160W"], noise_sigma=1e-3,
                                  growth=growth)
    return columns


@pytest.mark.parametrize("scale_length", [0.0, 1.0, 3.0])
def test_total_flux_of_psf_convolved_discs(shipped_psf, curves, scale_length):
    """A star and two exponential discs through the shipped PSF, noiseless, off the pixel
    grid: the footprint misses 5–15% of their light, the total flux is within 2%."""
    centre, flux = (48.3, 47.6), 1000.0
    image = render(shipped_psf, centre, scale_length, flux)
    col = measure_one(image, centre, curves)
    assert col["flux_aper"][0] < 0.96 * flux  # what the correction is for
    assert col["flux"][0] == pytest.approx(flux, rel=0.02)
    assert col["flux"][0] == pytest.approx(col["flux_aper"][0] * col["aperture_correction"][0])
    assert col["flux_err"][0] == pytest.approx(measure_one(image, centre, None)["flux_err"][0]
                                               * col["aperture_correction"][0])


def test_without_a_psf_the_flux_is_the_footprint_sum(shipped_psf):
    centre = (48.0, 48.0)
    col = measure_one(render(shipped_psf, centre, 1.0, 500.0), centre, None)
    assert col["aperture_correction"][0] == 1.0
    assert col["flux"][0] == col["flux_aper"][0]


def test_correction_bounds_and_order(curves):
    radius = np.full(5, 5.0)
    point = curves.truncated_r50(radius[:1])[0, 0]
    r50 = np.array([point - 0.5, point, point + 0.5, 10.0, np.nan])
    factor = curves.correction(r50, radius)
    assert np.all(factor >= 1.0) and np.all(factor <= MAX_CORRECTION)
    # more compact than the PSF and unmeasured count as a point; larger sources get more
    assert factor[0] == factor[1] == factor[4]
    assert factor[1] < factor[2] <= factor[3]
    # a larger footprint misses less of a point source
    assert curves.correction(r50[1:2], np.array([8.0]))[0] < factor[1]


def test_curves_do_not_depend_on_where_the_psf_sits(shipped_psf, curves):
    padded = np.zeros((90, 80))
    padded[3:3 + shipped_psf.shape[0], 11:11 + shipped_psf.shape[1]] = 5 * shipped_psf
    np.testing.assert_allclose(GrowthCurves.from_psf(padded).enclosed, curves.enclosed,
                               atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((9, 9)), np.full((9, 9), np.nan), np.ones(9)])
def test_bad_psf_refused(bad):
    with pytest.raises(ValueError, match="PSF"):
        GrowthCurves.from_psf(bad)


def test_a_sharper_band_loses_less_light_beyond_the_same_footprint(shipped_psf, curves):
    """In a multi-band run each band is measured in the detection band's footprints: a band
    whose PSF is sharper gets a smaller factor for the same source, the detection band its
    own factor, and one PSF for all bands the same factor for all."""
    sharp = GrowthCurves.from_psf(shipped_psf[::2, ::2])  # half the width on the same pixels
    r50, radius = np.array([2.0, 3.0, np.nan]), np.array([5.0, 8.0, 5.0])
    per_band = band_corrections([curves, sharp], r50, radius, 2)
    np.testing.assert_array_equal(per_band[0], curves.correction(r50, radius))
    assert np.all(per_band[1] < per_band[0]) and np.all(per_band[1] >= 1.0)
    same = band_corrections(curves, r50, radius, 2)
    np.testing.assert_array_equal(same[0], same[1])
    with pytest.raises(ValueError, match="3 PSFs for 2 bands"):
        band_corrections([curves] * 3, r50, radius, 2)


def test_a_sharper_band_of_a_point_source_is_made_total_by_its_own_psf(shipped_psf, curves):
    """A star drawn with the sharp PSF, measured in the footprint the wide band sets, comes
    out total in its band (its r50 set by the wide band, where it was measured)."""
    sharp_psf = shipped_psf[::2, ::2]
    sharp = GrowthCurves.from_psf(sharp_psf)
    centre = (48.3, 47.6)
    image = np.stack([render(shipped_psf, centre, 0.0, 2.0), render(sharp_psf, centre, 0.0, 2.0)])
    ids = np.zeros((3, *SHAPE), np.int64)
    ids[1:] = -1
    frac = np.zeros((2, 3, *SHAPE))
    frac[:, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([centre[0]]), "x": np.array([centre[1]]),
             "score": np.array([1.0])}
    columns, _, _ = measure_image(image, ids, frac, peaks, ["W", "S"], noise_sigma=[1e-3, 1e-3],
                                  growth=[curves, sharp])
    np.testing.assert_allclose([columns["flux_W"][0], columns["flux_S"][0]], 2.0, rtol=0.02)


def _two_band_measure(image: np.ndarray, centres, growth, noise=1e-3):
    """Both bands of ``image`` measured with every source's true footprint of light: each
    pixel given to the nearest centre (one slot), as a perfect deblend of separated sources."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    centres = np.asarray(centres, float)
    nearest = np.argmin([np.hypot(yy - y, xx - x) for y, x in centres], axis=0)
    ids = np.full((3, *SHAPE), -1, np.int64)
    ids[0] = nearest
    frac = np.zeros((2, 3, *SHAPE))
    frac[:, 0] = 1.0
    peaks = {"id": np.arange(len(centres)), "y": centres[:, 0], "x": centres[:, 1],
             "score": np.ones(len(centres))}
    columns, _, _ = measure_image(image, ids, frac, peaks, ["W", "S"], noise_sigma=[noise] * 2,
                                  growth=growth)
    return columns


@pytest.mark.parametrize("scale_length", [0.0, 1.0, 3.0])
def test_a_colour_through_two_psfs_is_the_sources(shipped_psf, curves, scale_length):
    """A disc of one colour seen through a wide and a sharp PSF: the matched sums weight both
    bands alike, and each band's model of the disc turns them into the same colour."""
    sharp_psf = shipped_psf[::2, ::2]
    centre = (47.6, 48.3)
    image = np.stack([render(shipped_psf, centre, scale_length, 2.0),
                      render(sharp_psf, centre, scale_length, 3.0)])
    columns = _two_band_measure(image, [centre], [curves, GrowthCurves.from_psf(sharp_psf)])
    assert columns["flux_S"][0] / columns["flux_W"][0] == pytest.approx(1.5, rel=0.02)
    assert columns["flux_W"][0] == pytest.approx(2.0, rel=0.05)


def test_matched_colours_take_in_less_noise_than_footprint_sums(shipped_psf, curves, rng):
    """A faint blue band: weighted by the source's profile, its colour scatters less over
    noise realisations than the ratio of the two bands' footprint sums does."""
    centre = (48.0, 48.0)
    clean = np.stack([render(shipped_psf, centre, 1.5, 200.0),
                      render(shipped_psf, centre, 1.5, 100.0)])
    matched, summed = [], []
    for _ in range(40):
        noisy = clean + rng.normal(0, [[[0.05]], [[0.5]]], clean.shape)
        with_psf = _two_band_measure(noisy, [centre], curves, noise=0.5)
        matched.append(with_psf["flux_S"][0] / with_psf["flux_W"][0])
        plain = _two_band_measure(noisy, [centre], None, noise=0.5)
        summed.append(plain["flux_S"][0] / plain["flux_W"][0])
    assert np.median(matched) == pytest.approx(0.5, rel=0.05)
    assert np.std(matched) < 0.8 * np.std(summed)


def test_matched_sums_need_no_second_look_at_the_profiles(shipped_psf, curves):
    """The matched weights are chosen from the first pass's profiles before the second pass
    (:func:`footprint_r50`): that r50 is the one the catalogue reports, and block by block the
    matched sums add up to the whole image's."""
    centres = [(30.4, 40.2), (60.7, 52.9)]
    image = sum(np.stack([render(shipped_psf, c, h, f), render(shipped_psf, c, h, g)])
                for c, h, f, g in zip(centres, (1.0, 2.5), (5.0, 8.0), (2.0, 9.0), strict=True))
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    ids = np.full((3, *SHAPE), -1, np.int64)
    ids[0] = np.argmin([np.hypot(yy - y, xx - x) for y, x in centres], axis=0)
    frac = np.zeros((2, 3, *SHAPE))
    frac[:, 0] = 1.0
    y, x = np.array(centres).T
    first = combine([measure_region(image, ids, frac, y, x, (0, 0), SHAPE, profiles_only=True)],
                    2, 2)
    radius, n_bins = footprint_bins(first, 1e-3)
    peaks = {"id": np.arange(2), "y": y, "x": x, "score": np.ones(2)}
    columns, kept_ids, kept_frac = measure_image(image, ids, frac, peaks, ["W", "S"], [1e-3] * 2,
                                                 growth=curves)
    np.testing.assert_allclose(footprint_r50(first, n_bins), columns["r50"], rtol=1e-9)
    matched = matched_weights(curves, first, radius, 2)
    whole = measure_region(image, kept_ids, kept_frac, y, x, (0, 0), SHAPE, matched=matched)
    halves = combine([measure_region(image[:, a:b], kept_ids[:, a:b], kept_frac[:, :, a:b], y, x,
                                     (a, 0), SHAPE, matched=matched)
                      for a, b in ((0, 45), (45, SHAPE[0]))], 2, 2)
    assert np.all(whole["matched"] > 0)
    np.testing.assert_allclose(halves["matched"], whole["matched"], rtol=1e-12)


def test_a_source_without_light_in_the_detection_band_keeps_its_own_sums(shipped_psf, curves):
    """No colour can be scaled from a detection band whose total is not positive (a faint
    core in a dip of noise): the other band keeps its own footprint sum, made total, and
    does not take the detection band's sign."""
    sharp_psf = shipped_psf[::2, ::2]
    centre = (47.6, 48.3)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    ring = (np.abs(np.hypot(yy - centre[0], xx - centre[1]) - 4.5) < 0.4).astype(float)
    detection = render(shipped_psf, centre, 0.0, 0.5) - ring / ring.sum()
    image = np.stack([detection, render(sharp_psf, centre, 0.0, 3.0)])
    columns = _two_band_measure(image, [centre], [curves, GrowthCurves.from_psf(sharp_psf)])
    assert columns["flux_W"][0] < 0
    assert columns["flux_S"][0] == pytest.approx(3.0, rel=0.05)
