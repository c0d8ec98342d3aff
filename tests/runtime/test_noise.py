"""The noise estimate's sigma clipping: the same figure as astropy's, on the data it meets."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip

from mosaic_pais.runtime.infer import _clipped_std, estimate_noise


@pytest.mark.parametrize("size", [16, 257, 4096, 65536])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clipped_std_equals_astropy_sigma_clip(size, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 2.0, size)
    values[: size // 20] += rng.exponential(20.0, size // 20)  # sources' light in the window
    clipped = SigmaClip(sigma=3.0, maxiters=5, stdfunc="mad_std")(values)
    assert _clipped_std(values) == pytest.approx(float(np.std(clipped.compressed())),
                                                 rel=1e-12)


def test_too_few_values_give_no_noise():
    assert np.isnan(_clipped_std(np.arange(15.0)))


def test_noise_of_each_band_of_a_tile():
    rng = np.random.default_rng(4)
    image = rng.normal(0.0, 1.0, (3, 256, 256)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    sigma, texture = estimate_noise(image, n_windows=1)
    # the std of Gaussian noise clipped at ±3σ is 0.987 of its σ
    np.testing.assert_allclose(sigma, 0.987 * np.array([1.0, 2.0, 0.5]), rtol=0.01)
    np.testing.assert_allclose(texture, 1.0, atol=0.05)
