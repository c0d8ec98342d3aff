"""The simulator: deterministic, self-consistent truth, mosaics with a valid WCS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from mosaic_pais.errors import BadInputError
from mosaic_pais.sim.scenes import (
    NOISE_CORRELATION_SIGMA,
    ZEROPOINT,
    correlated_noise,
    simulate_mosaic,
    simulate_scene,
)


@pytest.fixture(scope="module")
def scene():
    return simulate_scene((96, 128), seed=11, density=2.0, pair_fraction=0.2)


def test_deterministic(scene):
    again = simulate_scene((96, 128), seed=11, density=2.0, pair_fraction=0.2)
    np.testing.assert_array_equal(scene.image, again.image)
    assert scene.truth.as_array().tolist() == again.truth.as_array().tolist()
    other = simulate_scene((96, 128), seed=12, density=2.0, pair_fraction=0.2)
    assert not np.array_equal(scene.image, other.image)


def test_image_is_sources_plus_noise(scene):
    np.testing.assert_allclose(scene.image, scene.sources.sum(0) + scene.noise, atol=1e-6)
    assert scene.noise.std() == pytest.approx(scene.noise_sigma, rel=0.1)


@pytest.mark.parametrize("correlation", [0.0, NOISE_CORRELATION_SIGMA, 0.9])
def test_noise_texture_keeps_its_sigma(correlation):
    noise = correlated_noise(np.random.default_rng(3), (512, 512), 2.0, correlation)
    assert noise.std() == pytest.approx(2.0, rel=0.02)
    neighbour = np.corrcoef(noise[:, 1:].ravel(), noise[:, :-1].ravel())[0, 1]
    if correlation == 0:
        assert abs(neighbour) < 0.02  # white
    else:  # drizzle-like: 0.6 px gives the adjacent-pixel correlation measured on GOODS-S
        assert 0.3 < neighbour < 0.95
        assert (correlation == NOISE_CORRELATION_SIGMA) == (0.4 < neighbour < 0.55)


def test_truth_consistency(scene):
    t = scene.truth
    assert len(t) == len(scene.sources) > 5
    np.testing.assert_allclose(t["flux_in_frame"], scene.sources.sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(t["mag"], ZEROPOINT - 2.5 * np.log10(t["flux"]), atol=1e-9)
    assert np.all(t["flux_in_frame"] <= t["flux"] * 1.001)
    # compact sources well inside the frame keep (almost) all their flux; the truth position
    # is where a source was drawn, which for parametric galaxies and stars is their noiseless
    # image's centroid (real COSMOS galaxies carry their stamps' noise, whose centroid wanders)
    inside = (t["x"] > 20) & (t["x"] < 108) & (t["y"] > 20) & (t["y"] < 76) & (t["r50"] < 4)
    assert (inside & (t["kind"] != "real")).any()
    for i in np.flatnonzero(inside):
        img = scene.sources[i, 0].astype(np.float64)
        assert img.sum() == pytest.approx(t["flux"][i], rel=0.02)
        if t["kind"][i] == "real":
            continue
        yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
        assert (img * yy).sum() / img.sum() == pytest.approx(t["y"][i], abs=0.05)
        assert (img * xx).sum() / img.sum() == pytest.approx(t["x"][i], abs=0.05)
    assert set(t["kind"]) <= {"real", "parametric", "star"}
    assert np.all((t["blendedness"] >= 0) & (t["blendedness"] <= 1))


def test_sources_outside_spill_in(scene):
    t = scene.truth
    outside = ~t["in_frame"]
    assert outside.any()
    assert np.all(t["flux_in_frame"][outside] > 0)


def test_pair_fraction_makes_more_close_pairs():
    def close_pairs(pair_fraction):
        s = simulate_scene((128, 128), seed=5, density=1.5, pair_fraction=pair_fraction)
        xy = np.stack([s.truth["x"], s.truth["y"]], 1)
        d = np.hypot(*(xy[:, None] - xy[None]).T)
        return int(((d > 0) & (d < 10)).sum() // 2)

    assert close_pairs(0.5) > close_pairs(0.0)


def test_bad_arguments(tmp_path):
    with pytest.raises(BadInputError):
        simulate_mosaic(tmp_path, size=8)
    with pytest.raises(BadInputError):
        simulate_scene((32, 32), seed=0, density=-1)


def test_mosaic_fits_with_wcs(tmp_path):
    info = simulate_mosaic(tmp_path / "a", size=300, seed=3, block=128)
    simulate_mosaic(tmp_path / "b", size=300, seed=3, block=128)
    with fits.open(info["mosaic"]) as a, fits.open(tmp_path / "b" / "mosaic.fits") as b:
        np.testing.assert_array_equal(a[0].data, b[0].data)
        assert a[0].data.shape == (300, 300)
        wcs = WCS(a[0].header)
        assert wcs.has_celestial
    truth = Table.read(info["truth"])
    assert len(truth) == info["n_sources"] > 10
    ra, dec = wcs.pixel_to_world_values(truth["x"], truth["y"])
    np.testing.assert_allclose(ra, truth["ra"], atol=1e-9)
    np.testing.assert_allclose(dec, truth["dec"], atol=1e-9)
    assert len(np.unique(truth["id"])) == len(truth)


def test_mosaic_sources_far_outside_the_edge(tmp_path):
    # a dense, small mosaic puts sources up to 20 px outside every edge
    info = simulate_mosaic(tmp_path, size=64, seed=2, density=8.0, block=32)
    truth = Table.read(info["truth"])
    assert np.all(truth["flux_in_frame"] > 0)


def test_mosaic_noise_texture(tmp_path):
    for correlation, expected in ((0.0, (-0.03, 0.03)), (None, (0.4, 0.55))):
        out = tmp_path / f"corr{correlation}"
        texture = {} if correlation is None else {"noise_correlation": correlation}
        simulate_mosaic(out, size=256, seed=2, density=0.0, **texture)
        with fits.open(out / "mosaic.fits") as hdul:
            data = hdul[0].data.astype(float)
            assert hdul[0].header["NOISECOR"] == (NOISE_CORRELATION_SIGMA if correlation is None
                                                  else correlation)
        neighbour = np.corrcoef(data[:, 1:].ravel(), data[:, :-1].ravel())[0, 1]
        assert expected[0] < neighbour < expected[1]


def test_noise_texture_is_measured_through_sources_and_masks():
    """The estimator (mosaic_pais.runtime.infer) tells the simulator's textures apart on scenes with
    their sources, and ignores masked (zero) and NaN regions."""
    from mosaic_pais.runtime.infer import estimate_noise, estimate_noise_sigma

    measured = {}
    for correlation in (0.0, NOISE_CORRELATION_SIGMA, 0.9):
        image = simulate_scene((256, 256), seed=11, density=1.5,
                               noise_correlation=correlation).image.copy()
        image[:, :40, :] = 0.0  # a masked strip
        image[:, 100:120, 50:90] = np.nan
        sigma, texture = estimate_noise(image, n_windows=1)
        measured[correlation] = float(texture[0])
        assert sigma[0] > 0
        assert sigma[0] == estimate_noise_sigma(image, n_windows=1)[0]
    assert measured[0.0] == pytest.approx(1.0, abs=0.1)
    assert 1.5 < measured[NOISE_CORRELATION_SIGMA] < 2.0 < measured[0.9] < 2.6


def test_real_galaxies_come_without_their_stamps_noise():
    """A faint COSMOS stamp is mostly noise around a small galaxy: drawn as GalSim's
    RealGalaxy it put a square of that noise into the scene, 0.8 times GOODS-S's noise at
    15-25 px from the galaxy; drawn by the simulator, nothing is left there."""
    import galsim

    from mosaic_pais.sim.scenes import (
        PIXEL_SCALE,
        f160w_psf,
        flux_of,
        real_galaxy,
        real_galaxy_catalog,
        real_galaxy_mags,
    )

    index, noise = 85, 0.0046  # stamp 85, H = 25.5; GOODS-S F160W pixel noise
    flux = float(flux_of(real_galaxy_mags()[index]))
    yy, xx = np.mgrid[0:161, 0:161]
    ring = (np.hypot(yy - 80, xx - 80) >= 15) & (np.hypot(yy - 80, xx - 80) < 25)

    def ring_std(gal):
        image = galsim.Convolve(gal, f160w_psf()).drawImage(
            nx=161, ny=161, scale=PIXEL_SCALE, method="no_pixel").array
        return image[ring].std() / noise

    raw = galsim.RealGalaxy(real_galaxy_catalog(), index=index, flux=flux)
    assert ring_std(raw) > 0.5
    assert ring_std(real_galaxy(index).withFlux(flux)) < 0.05
    assert real_galaxy(index).flux == pytest.approx(1.0)


@pytest.fixture(scope="module")
def four_band():
    from mosaic_pais.sim.bands import FOUR_BANDS

    return simulate_scene((160, 160), seed=11, density=3.0, bands=FOUR_BANDS)


def test_four_band_scene_keeps_the_f160w_population_and_noise(four_band):
    single = simulate_scene((160, 160), seed=11, density=3.0)
    det = four_band.bands.index("F160W")
    assert four_band.image.shape == (4, 160, 160) and four_band.sources.shape[1] == 4
    np.testing.assert_array_equal(four_band.noise[det], single.noise[0])
    np.testing.assert_array_equal(four_band.truth["x"], single.truth["x"])
    np.testing.assert_allclose(four_band.truth["flux"], single.truth["flux"])
    plain = np.asarray(single.truth["kind"]) != "real"  # real galaxies gain a red core
    np.testing.assert_allclose(four_band.sources[plain, det], single.sources[plain, 0],
                               atol=1e-6)


def test_four_band_truth_fluxes_are_what_is_drawn(four_band):
    from mosaic_pais.sim.bands import FOUR_BANDS

    t = four_band.truth
    inside = (t["x"] > 40) & (t["x"] < 120) & (t["y"] > 40) & (t["y"] < 120) & (t["mag"] < 26)
    assert inside.sum() >= 1
    for k, band in enumerate(FOUR_BANDS):
        drawn = four_band.sources[np.asarray(inside), k].sum(axis=(1, 2))
        np.testing.assert_allclose(drawn, t[f"flux_{band}"][inside], rtol=0.02, err_msg=band)
        np.testing.assert_allclose(four_band.image[k], four_band.sources[:, k].sum(0)
                                   + four_band.noise[k], atol=1e-5)
        assert abs(four_band.noise[k].std() / four_band.noise_sigma[k] - 1) < 0.1, band


def test_four_band_fractions_differ_from_band_to_band(four_band):
    """Colour gradients: a pixel's shares among sources are not the same in every band."""
    h, v = four_band.bands.index("F160W"), four_band.bands.index("F606W")
    src = four_band.sources.astype(np.float64)
    total = src.sum(0)
    lit = (total[h] > 5 * four_band.noise_sigma[h]) & (total[v] > 5 * four_band.noise_sigma[v])
    shares = src[:, :, lit] / np.maximum(total[:, lit], 1e-12)
    spread = np.abs(shares[:, v] - shares[:, h]).max(0)
    assert np.mean(spread > 0.05) > 0.05


def test_bad_band_sets_are_refused():
    for bands in (("F814W", "F160W"), ("F606W",), ("F160W", "F160W")):
        with pytest.raises(BadInputError, match="bands"):
            simulate_scene((32, 32), seed=1, bands=bands)


@pytest.fixture(scope="module")
def hsc_scene():
    from mosaic_pais.sim.bands import SURVEYS

    return simulate_scene((96, 96), seed=12, density=1.0, bands=SURVEYS["HSC"].bands)


def test_hsc_scene_is_drawn_on_its_own_grid_depth_and_seeing(hsc_scene):
    from mosaic_pais.sim.bands import BANDS, SURVEYS

    survey = SURVEYS["HSC"]
    t = hsc_scene.truth
    assert hsc_scene.image.shape == (5, 96, 96)
    assert t.meta["PIXSCALE"] == 0.168 and t.meta["ZEROPNT"] == 27.0
    assert survey.seeing[0] <= t.meta["SEEING"] <= survey.seeing[1]
    # every band at its own reference depth (the default noise_sigma is the reference)
    np.testing.assert_allclose(hsc_scene.noise_sigma,
                               [BANDS[b].noise_sigma for b in survey.bands])
    # a frame of as many HSC pixels holds (0.168 / 0.06)² = 7.8 times the sources
    from mosaic_pais.sim.scenes import draw_population

    n = [len(draw_population(np.random.default_rng(3), 256, 256, margin=0, density=10.0,
                             pixel_scale=scale)["mag"]) for scale in (0.06, 0.168)]
    assert 6.5 < n[1] / n[0] < 9.5


def test_hsc_truth_is_the_detection_bands_flux(hsc_scene):
    t = hsc_scene.truth
    det = hsc_scene.bands.index("HSC-I")
    np.testing.assert_allclose(t["flux"], t["flux_HSC-I"])
    np.testing.assert_allclose(t["mag"], 27.0 - 2.5 * np.log10(t["flux"]))
    inside = (t["x"] > 28) & (t["x"] < 68) & (t["y"] > 28) & (t["y"] < 68)
    assert inside.sum() >= 1
    drawn = hsc_scene.sources[np.asarray(inside), det].sum(axis=(1, 2))
    np.testing.assert_allclose(drawn, t["flux"][inside], rtol=0.03)


def test_hsc_seeing_changes_from_scene_to_scene():
    from mosaic_pais.sim.bands import SURVEYS, seeing_psfs

    fwhm = [seeing_psfs(np.random.default_rng(s), SURVEYS["HSC"], ["HSC-I", "HSC-G"])
            for s in range(20)]
    i_band = [p["HSC-I"].obj_list[0].fwhm for p in fwhm]
    assert max(i_band) / min(i_band) > 2
    # bluer bands see worse (Kolmogorov λ^-0.2, within the per-band scatter)
    ratios = [p["HSC-G"].obj_list[0].fwhm / p["HSC-I"].obj_list[0].fwhm for p in fwhm]
    assert 1.0 < np.median(ratios) < 1.12


def test_bands_of_two_surveys_are_refused():
    with pytest.raises(BadInputError, match="one survey"):
        simulate_scene((32, 32), seed=1, bands=("F160W", "HSC-I"))
    with pytest.raises(BadInputError, match="detection band"):
        simulate_scene((32, 32), seed=1, bands=("HSC-G",))
