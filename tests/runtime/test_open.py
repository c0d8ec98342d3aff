"""Opening FITS and Zarr lazily, with every kind of FITS a survey produces, and bad input."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.open import MissingWCSWarning, convert, open_mosaic, pixel_to_world
from mosaic_pais.sim.scenes import tan_wcs


def _write(path, data, wcs=True, **kwargs):
    header = tan_wcs(*data.shape[-2:]).to_header() if wcs else fits.Header()
    header.update(kwargs)
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.fixture
def image(rng):
    return rng.normal(0, 1, (40, 60)).astype(np.float32)


def test_single_band_with_wcs_is_lazy(tmp_path, image):
    path = _write(tmp_path / "a.fits", image.astype(">f4"), FILTER="F160W")
    ds = open_mosaic(path)
    assert ds["image"].dims == ("band", "y", "x") and ds["image"].shape == (1, 40, 60)
    assert isinstance(ds["image"].data, da.Array)
    assert list(ds["band"].values) == ["F160W"]
    pickle.dumps(ds["image"].data)  # goes to distributed workers
    got = ds["image"].values
    assert got.dtype == np.float32 and got.dtype.byteorder in ("=", "|", "<")
    np.testing.assert_array_equal(got[0], image)
    ra, dec = pixel_to_world(ds, [0.0], [0.0])
    assert np.isfinite(ra).all() and np.isfinite(dec).all()


def test_several_files_cube_and_named_hdu(tmp_path, image):
    a = _write(tmp_path / "h.fits", image)
    b = _write(tmp_path / "j.fits", image * 2)
    ds = open_mosaic([a, b], bands=["H", "J"])
    np.testing.assert_array_equal(ds["image"].values[1], image * 2)
    cube = np.stack([image, image + 1])
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, header=tan_wcs(40, 60)
                                                          .to_header(), name="SCI")])
    hdul.writeto(tmp_path / "cube.fits")
    ds = open_mosaic(tmp_path / "cube.fits", hdu="SCI")
    assert ds["image"].shape == (2, 40, 60)
    np.testing.assert_array_equal(ds["image"].values[1], image + 1)
    assert open_mosaic(tmp_path / "cube.fits")["image"].shape == (2, 40, 60)  # first image HDU


def test_scaled_integer_and_compressed(tmp_path, image):
    ints = np.round(image * 100).astype(np.int16)
    hdu = fits.PrimaryHDU(ints, header=tan_wcs(40, 60).to_header())
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.01, 5.0
    hdu.writeto(tmp_path / "scaled.fits")
    with fits.open(tmp_path / "scaled.fits") as hdul:
        expected = hdul[0].data.astype(np.float32)
    np.testing.assert_allclose(open_mosaic(tmp_path / "scaled.fits")["image"].values[0], expected)
    comp = fits.CompImageHDU(image, header=tan_wcs(40, 60).to_header(),
                             compression_type="GZIP_1", quantize_level=0.0)
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(tmp_path / "comp.fits")
    np.testing.assert_array_equal(open_mosaic(tmp_path / "comp.fits")["image"].values[0], image)


def test_zarr_round_trip(tmp_path, image):
    path = _write(tmp_path / "a.fits", image, FILTER="F160W")
    out = convert([path], tmp_path / "a.zarr", progress=False, chunks=16)
    ds = open_mosaic(out)
    np.testing.assert_array_equal(ds["image"].values[0], image)
    assert ds.attrs["wcs_header"] and list(ds["band"].values) == ["F160W"]


def test_weights(tmp_path, image):
    path = _write(tmp_path / "a.fits", image)
    good = _write(tmp_path / "w.fits", np.ones_like(image))
    assert "weight" in open_mosaic(path, weights=[good])
    wrong = _write(tmp_path / "w2.fits", np.ones((10, 10), np.float32))
    with pytest.raises(BadInputError, match="shape"):
        open_mosaic(path, weights=[wrong])
    neg = _write(tmp_path / "w3.fits", -np.ones_like(image))
    with pytest.raises(BadInputError, match="negative"):
        open_mosaic(path, weights=[neg])


def test_missing_wcs_warns_and_gives_nan(tmp_path, image):
    path = _write(tmp_path / "a.fits", image, wcs=False)
    with pytest.warns(MissingWCSWarning):
        ds = open_mosaic(path)
    ra, dec = pixel_to_world(ds, [1.0], [2.0])
    assert np.isnan(ra).all() and np.isnan(dec).all()


@pytest.mark.parametrize("broken", [{"CTYPE1": "RA---XYZ"}, {"PC1_1": 0.0, "PC1_2": 0.0},
                                    {"CRVAL2": "not a number"}])
def test_broken_wcs_warns_and_gives_nan(tmp_path, image, broken):
    path = tmp_path / "broken.fits"
    header = tan_wcs(*image.shape).to_header()
    for key, value in broken.items():
        header[key] = value
    fits.PrimaryHDU(image, header=header).writeto(path)
    with pytest.warns(MissingWCSWarning):
        ds = open_mosaic(path)
    ra, _ = pixel_to_world(ds, [1.0], [2.0])
    assert np.isnan(ra).all()


def test_bad_files(tmp_path, image):
    (tmp_path / "text.fits").write_text("hello, not a FITS file")
    good = _write(tmp_path / "good.fits", image)
    truncated = tmp_path / "trunc.fits"
    truncated.write_bytes(good.read_bytes()[:5000])
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    fits.PrimaryHDU(np.ones(10, np.float32)).writeto(tmp_path / "one_d.fits")
    fits.PrimaryHDU(np.ones((2, 2, 4, 4), np.float32)).writeto(tmp_path / "four_d.fits")
    (tmp_path / "data.xyz").write_text("x")
    for name, match in (("text.fits", "FITS"), ("trunc.fits", "trunc"), ("empty.fits", "image"),
                        ("one_d.fits", "2-D"), ("four_d.fits", "2-D"), ("missing.fits", "no such"),
                        ("data.xyz", "unknown format")):
        with pytest.raises(BadInputError, match=match):
            open_mosaic(tmp_path / name)
    other = _write(tmp_path / "other.fits", np.ones((20, 20), np.float32))
    with pytest.raises(BadInputError, match="different shapes"):
        open_mosaic([good, other])


@pytest.mark.parametrize("large", [False, True], ids=["in memory", "decompressed once"])
def test_gzip_compressed_fits(tmp_path, image, monkeypatch, large):
    """``.fits.gz`` as surveys distribute mosaics: a small one read into memory, a large one
    decompressed once into the temporary folder and read lazily from there."""
    import gzip
    import shutil

    import mosaic_pais.runtime.open as open_mod

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    if large:
        monkeypatch.setattr(open_mod, "GZIP_IN_MEMORY", 0)
    plain = _write(tmp_path / "a.fits", image, FILTER="F160W")
    with open(plain, "rb") as source, gzip.open(tmp_path / "a.fits.gz", "wb") as out:
        shutil.copyfileobj(source, out)
    ds = open_mosaic(tmp_path / "a.fits.gz")
    np.testing.assert_array_equal(ds["image"].values[0], image)
    assert list(ds["band"].values) == ["F160W"] and ds.attrs["wcs_header"]
    assert len(list((tmp_path / "tmp").glob("mosaic-pais-*.fits"))) == int(large)
    (tmp_path / "bad.fits.gz").write_bytes(gzip.compress(b"SIMPLE  = nonsense" * 10))
    with pytest.raises(BadInputError, match="bad.fits.gz"):
        open_mosaic(tmp_path / "bad.fits.gz")


def test_drizzled_products_weight_extension_is_used_and_said(tmp_path, image, rng):
    from mosaic_pais.runtime.open import DrizzleWeightWarning

    weight = rng.uniform(1, 2, image.shape).astype(np.float32)
    header = tan_wcs(40, 60).to_header()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, header, name="SCI"),
                  fits.ImageHDU(weight, header, name="WHT"),
                  fits.ImageHDU(np.ones(image.shape, np.int32), name="CTX")]
                 ).writeto(tmp_path / "drz.fits")
    with pytest.warns(DrizzleWeightWarning, match="WHT extension"):
        ds = open_mosaic(tmp_path / "drz.fits")
    np.testing.assert_array_equal(ds["image"].values[0], image)
    np.testing.assert_array_equal(ds["weight"].values[0], weight)
    assert ds.attrs["weight_source"] == [str(tmp_path / "drz.fits") + "[WHT]"]
    other = _write(tmp_path / "w.fits", np.ones_like(image))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", DrizzleWeightWarning)  # given weights: nothing said
        given = open_mosaic(tmp_path / "drz.fits", weights=[other])
    np.testing.assert_array_equal(given["weight"].values[0], np.ones_like(image))


def test_converted_store_opens_without_a_warning(tmp_path, image):
    import warnings

    import xarray as xr

    path = convert([_write(tmp_path / "a.fits", image)], tmp_path / "a.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.open_zarr(path)
