"""The whole run on real images it was never trained on: real WCS, ragged edges, a real sky."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.runtime.pipeline import run

DATA = Path(__file__).parent / "data"


@pytest.mark.slow
def test_positions_on_the_sky_of_a_real_candels_section(tmp_path):
    """A real CANDELS GOODS-S F160W section (0.05″/px, data only in its middle, NaN around):
    every bright galaxy of the Kartaltepe et al. catalogue that lies on the data is in the
    catalogue, at its published RA/Dec to within 0.2″ (4 px), and nothing is detected off
    the data."""
    import pandas as pd
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    path = DATA / "candels_f160w_sect22.fits"
    table, _ = run([path], tmp_path / "run", progress=False)
    with warnings.catch_warnings():  # its CD cards are written in a non-standard way
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            data = hdul[0].data
            wcs = WCS(hdul[0].header)
    bright = pd.read_csv(DATA / "kartaltepe_candels_sect22.csv")
    x, y = wcs.world_to_pixel_values(bright["RA"].to_numpy(), bright["DEC"].to_numpy())
    inside = (x > 0) & (y > 0) & (x < data.shape[1] - 1) & (y < data.shape[0] - 1)
    on_data = np.zeros(len(bright), bool)
    on_data[inside] = np.isfinite(data[np.round(y[inside]).astype(int),
                                       np.round(x[inside]).astype(int)])
    assert on_data.sum() >= 4
    published = SkyCoord(bright["RA"].to_numpy()[on_data] * u.deg,
                         bright["DEC"].to_numpy()[on_data] * u.deg)
    found = SkyCoord(np.asarray(table["ra"]) * u.deg, np.asarray(table["dec"]) * u.deg)
    _, separation, _ = published.match_to_catalog_sky(found)
    assert np.all(separation < 0.2 * u.arcsec), separation.to(u.arcsec)
    ix = np.round(np.asarray(table["x"])).astype(int)
    iy = np.round(np.asarray(table["y"])).astype(int)
    assert np.isfinite(data[iy, ix]).all()


@pytest.mark.slow
def test_a_real_ground_based_frame_with_its_sky(tmp_path):
    """A real ESO R-band CCD frame, sky and all (6,850 counts, σ 65): with the sky subtracted
    the shipped model finds what SExtractor found there (its catalogue beside the frame,
    1-based positions) about as well as on HST data it was trained for."""
    with pytest.warns(UserWarning, match="no usable celestial WCS"):
        table, _ = run([DATA / "galaxies_cut_256.fits"], tmp_path / "run", progress=False)
    sextractor = np.loadtxt(DATA / "galaxies_cut_256.sextractor.cat")
    reference = np.stack([sextractor[:, 3] - 1, sextractor[:, 4] - 1], 1)
    d, t = match_catalogs(np.stack([table["x"], table["y"]], 1), reference, radius=3.0)
    assert len(t) / len(reference) > 0.85 and len(d) / len(table) > 0.85
    level = json.loads((tmp_path / "run" / "run.json").read_text())["background"]
    assert level["median_level"][0] == pytest.approx(6851.0, abs=5)  # SExtractor: 6851.0
    assert isinstance(Table.read(tmp_path / "run" / "catalog.fits"), Table)
