"""The classical baselines find obvious sources and behave on empty images."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_pais.evaluation.peers import run_photutils, run_sep
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
