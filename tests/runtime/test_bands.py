"""Several bands: the model that takes them, their order, per-band measurements."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from mosaic_pais.cli import main
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, load_model
from mosaic_pais.nn.widen import with_bands
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.runtime.store import open_array
from mosaic_pais.sim.bands import FOUR_BANDS
from mosaic_pais.sim.scenes import simulate_scene, tan_wcs

TWO_BANDS = ("F125W", "F160W")


@pytest.fixture(scope="module")
def band_files(tmp_path_factory):
    """The four bands of one simulated scene, one FITS file each, with a WCS."""
    folder = tmp_path_factory.mktemp("bands")
    scene = simulate_scene((288, 320), seed=4_000_001, density=1.5, bands=FOUR_BANDS)
    header = tan_wcs(288, 320).to_header()
    paths = {}
    for k, band in enumerate(FOUR_BANDS):
        paths[band] = folder / f"{band}.fits"
        fits.PrimaryHDU(scene.image[k], header=header).writeto(paths[band])
    return paths


@pytest.fixture(scope="module")
def two_band_model(tmp_path_factory):
    """The shipped F160W model made to read F125W and F160W (nn.widen.with_bands), with a
    card naming those bands in that order."""
    folder = tmp_path_factory.mktemp("model")
    path = folder / "pais_two.keras"
    with_bands(load_model(), 2).save(path)
    card = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text())
    card["bands"] = list(TWO_BANDS)
    path.with_suffix(".json").write_text(json.dumps(card))
    shutil.copy(DEFAULT_MODEL_PATH.with_name(card["psf"]["file"]), folder)
    return path


def test_a_band_set_no_shipped_model_takes_is_refused_in_one_line(band_files, tmp_path):
    three = FOUR_BANDS[:3]
    result = CliRunner().invoke(main, ["run", *[str(band_files[b]) for b in three],
                                       "--bands", ",".join(three),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no shipped model takes the bands" in result.output
    assert "mosaic-pais train" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "catalog.fits").exists()


def test_a_model_refuses_bands_it_does_not_take(band_files, two_band_model, tmp_path):
    result = CliRunner().invoke(main, ["run", str(band_files["F606W"]), str(band_files["F160W"]),
                                       "--bands", "F606W,F160W", "--model", str(two_band_model),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "the model takes the bands F125W, F160W" in result.output


@pytest.fixture(scope="module")
def both_orders(band_files, two_band_model, tmp_path_factory):
    runs = {}
    for order in (TWO_BANDS, TWO_BANDS[::-1]):
        out = tmp_path_factory.mktemp("run")
        table, _ = run([band_files[b] for b in order], out, bands=list(order),
                       model=two_band_model, progress=False, precision="float32")
        runs[order] = (out, table)
    return runs


def test_bands_in_another_order_give_the_same_catalogue(both_orders):
    (out_a, a), (out_b, b) = both_orders.values()
    assert len(a) > 5
    assert a.colnames == b.colnames
    assert {"flux_F125W", "flux_err_F125W", "flux_F160W", "flux_err_F160W"} <= set(a.colnames)
    for name in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    for out in (out_a, out_b):
        assert json.loads((out / "run.json").read_text())["inputs"]["bands"] == list(TWO_BANDS)
        assert Table.read(out / "catalog.fits").meta["BANDS"] == ",".join(TWO_BANDS)


def test_every_band_shares_all_of_its_light(both_orders):
    """Per band, a pixel whose every slot holds a source gives those sources all of its
    light, and no pixel gives more than it has: each band's deblends add up to that band's
    image within the sources' footprints (light beyond a footprint stays unassigned)."""
    out, table = next(iter(both_orders.values()))
    fractions = np.asarray(open_array(out / "pcr.zarr", "fractions")[:])  # (band, slot, y, x)
    ids = np.asarray(open_array(out / "pcr.zarr", "ids")[:])
    whole = (ids >= 1).all(axis=0)
    assert fractions.shape[0] == 2 and whole.sum() > 500
    for band in range(2):
        total = fractions[band].sum(axis=0)
        np.testing.assert_allclose(total[whole], 1.0, atol=1e-5)
        assert total.max() <= 1.0 + 1e-5
    assert np.all(np.isfinite(table["flux_F125W"])) and np.all(table["flux_F160W"] > 0)


def test_deblended_stamps_per_band_follow_the_run_not_the_input_order(both_orders):
    from mosaic_pais.runtime.stamps import source_stamp

    (out_a, a), (out_b, _) = both_orders.values()
    brightest = int(a["id"][np.argmax(a["flux"])])
    one, other = source_stamp(out_a, brightest), source_stamp(out_b, brightest)
    assert one["bands"] == other["bands"] == list(TWO_BANDS)
    assert one["deblend"].shape[0] == 2 and one["deblend"].sum() > 0
    np.testing.assert_array_equal(one["deblend"], other["deblend"])


def test_each_band_is_made_total_with_its_own_psf(band_files, two_band_model, both_orders,
                                                  tmp_path):
    """One PSF per band (in the order the images are given): the detection band (the card's
    first, F125W) keeps its fluxes and the sizes it sets, the other band given a sharper PSF
    loses less light beyond the same footprints and gets smaller totals; run.json names both
    files in the model's band order."""
    psf_file = two_band_model.with_name(
        json.loads(two_band_model.with_suffix(".json").read_text())["psf"]["file"])
    sharp = tmp_path / "sharp.fits"
    fits.PrimaryHDU(fits.getdata(psf_file)[::2, ::2]).writeto(sharp)
    given = TWO_BANDS[::-1]  # F160W first: the PSFs follow the images, not the card
    out = tmp_path / "out"
    table, _ = run([band_files[b] for b in given], out, bands=list(given), model=two_band_model,
                   progress=False, precision="float32", psf=f"{sharp},{psf_file}")
    _, reference = both_orders[TWO_BANDS]
    for name in ("flux_aper", "flux", "flux_F125W", "aperture_correction"):
        np.testing.assert_array_equal(table[name], reference[name], err_msg=name)
    bright = np.asarray(reference["flux_F160W"]) > 0
    assert bright.sum() > 5
    assert np.all(np.asarray(table["flux_F160W"])[bright]
                  < np.asarray(reference["flux_F160W"])[bright])
    named = json.loads((out / "run.json").read_text())["parameters"]["psf"]
    assert named == f"{psf_file},{sharp}"


def test_the_shipped_four_band_model_runs_on_four_band_files(band_files, tmp_path):
    """``mosaic-pais run`` on four band files with ``--bands`` picks the shipped four-band
    model: a catalogue with every band's flux and error, each band made total with its own PSF
    (run.json names four files), and every band's fractions sharing all of its light."""
    given = ("F606W", "F160W", "F850LP", "F125W")  # not the card's order
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *[str(band_files[b]) for b in given],
                                       "--bands", ",".join(given), "--output", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    table = Table.read(out / "catalog.fits")
    assert len(table) > 10
    holds_pixels = np.asarray(table["npix"]) > 0
    assert holds_pixels.sum() > 10
    for band in FOUR_BANDS:
        assert np.all(np.isfinite(table[f"flux_{band}"])), band
        assert np.all(table[f"flux_err_{band}"][holds_pixels] > 0), band
        assert np.all(np.isnan(table[f"flux_err_{band}"][~holds_pixels])), band
    provenance = json.loads((out / "run.json").read_text())
    assert provenance["inputs"]["bands"] == list(FOUR_BANDS)
    assert provenance["model"]["card"]["name"] == "pais_fourband"
    assert len(provenance["parameters"]["psf"].split(",")) == 4
    fractions = np.asarray(open_array(out / "pcr.zarr", "fractions")[:])
    ids = np.asarray(open_array(out / "pcr.zarr", "ids")[:])
    whole = (ids >= 1).all(axis=0)
    for band in range(4):
        np.testing.assert_allclose(fractions[band].sum(axis=0)[whole], 1.0, atol=1e-5)


HSC = ("HSC-I", "HSC-Z", "HSC-Y", "HSC-R", "HSC-G")


@pytest.fixture(scope="module")
def hsc_files(tmp_path_factory):
    """The five HSC bands of one simulated HSC scene, one FITS file each with a WCS on the
    0.168″ grid, and each band's PSF (the scene's own seeing) in a file."""
    from mosaic_pais.sim.bands import SURVEYS, seeing_psfs

    folder = tmp_path_factory.mktemp("hsc")
    seed = 4_000_002
    scene = simulate_scene((192, 192), seed=seed, bands=HSC)
    psfs = seeing_psfs(np.random.default_rng([seed, 168]), SURVEYS["HSC"], HSC)
    header = tan_wcs(192, 192, ra=150.1, dec=2.2, pixel_scale=0.168).to_header()
    images, psf_files = {}, {}
    for k, band in enumerate(HSC):
        images[band] = folder / f"{band}.fits"
        fits.PrimaryHDU(scene.image[k], header=header).writeto(images[band])
        psf = psfs[band].drawImage(nx=41, ny=41, scale=0.168, method="no_pixel").array
        psf_files[band] = folder / f"{band}_psf.fits"
        fits.PrimaryHDU((psf / psf.sum()).astype(np.float32)).writeto(psf_files[band])
    return images, psf_files


def test_the_shipped_hsc_model_runs_on_hsc_files_in_any_order(hsc_files, tmp_path):
    """HSC band files with ``--bands`` pick the shipped HSC model; each band is made total
    with the PSF given for it, and the bands given in another order give the same catalogue."""
    images, psfs = hsc_files
    tables = []
    for k, given in enumerate((HSC, ("HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"))):
        out = tmp_path / f"out{k}"
        result = CliRunner().invoke(main, [
            "run", *[str(images[b]) for b in given], "--bands", ",".join(given),
            "--psf", ",".join(str(psfs[b]) for b in given), "--output", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        provenance = json.loads((out / "run.json").read_text())
        assert provenance["model"]["card"]["name"] == "pais_hsc"
        assert provenance["inputs"]["bands"] == list(HSC)
        tables.append(Table.read(out / "catalog.fits"))
    assert len(tables[0]) > 10
    for band in HSC:
        np.testing.assert_allclose(tables[0][f"flux_{band}"], tables[1][f"flux_{band}"],
                                   rtol=1e-5, err_msg=band)
        corrected = np.asarray(tables[0][f"flux_{band}"]) > np.asarray(tables[0]["flux_aper"])
        assert band != "HSC-I" or corrected.mean() > 0.5
