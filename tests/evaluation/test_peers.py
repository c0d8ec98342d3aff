"""The classical baselines find obvious sources and behave on empty images."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_pais.evaluation.peers import run_photutils, run_photutils_bands, run_sep
from tests.conftest import gaussian_sources


@pytest.mark.parametrize("runner", [run_sep, run_photutils])
def test_two_separated_sources(runner, rng):
    centers = [[30.0, 25.0], [70.0, 80.0]]
    image = gaussian_sources(centers, (100, 110), 2.0, [5.0, 8.0]).sum((0, 1))
    image += rng.normal(0, 0.005, image.shape)
    table = runner(image.astype(np.float32), 0.005)
    assert len(table) == 2
    order = np.argsort(table["y"])
    np.testing.assert_allclose(np.stack([table["y"], table["x"]], 1)[order], centers, atol=0.3)
    np.testing.assert_allclose(np.asarray(table["flux"])[order], [5.0, 8.0], rtol=0.1)


@pytest.mark.parametrize("runner", [run_sep, run_photutils])
def test_empty_image(runner, rng):
    table = runner(rng.normal(0, 1e-3, (64, 64)).astype(np.float32), 1e-3)
    assert table.colnames == ["id", "x", "y", "flux"]
    assert len(table) <= 1  # a 1.5σ, 5-pixel threshold may catch one noise peak at most


def test_photutils_dual_image_measures_every_band_in_the_detection_segments(rng):
    """Detected on the first band; a second band twice as bright measures twice the flux in
    the same apertures, a third with nothing in it about none."""
    centers = [[30.0, 25.0], [70.0, 80.0]]
    image = gaussian_sources(centers, (100, 110), 2.0, [5.0, 8.0]).sum((0, 1))
    image += rng.normal(0, 0.005, image.shape)
    cube = np.stack([image, 2.0 * image, rng.normal(0, 0.005, image.shape)])
    table = run_photutils_bands(cube, 0.005, ["H", "J", "V"])
    single = run_photutils(image, 0.005)
    np.testing.assert_array_equal(table["flux"], single["flux"])
    np.testing.assert_array_equal(table["flux_H"], single["flux"])
    np.testing.assert_allclose(table["flux_J"], 2.0 * np.asarray(single["flux"]), rtol=1e-9)
    assert np.all(np.abs(table["flux_V"]) < 0.1)


def test_photutils_dual_image_on_an_empty_image_has_every_band_column(rng):
    table = run_photutils_bands(rng.normal(0, 1e-3, (2, 64, 64)), 1e-3, ["H", "J"])
    assert {"flux_H", "flux_J"} <= set(table.colnames)
