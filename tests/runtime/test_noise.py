"""The noise estimate's sigma clipping: the same figure as astropy's, on the data it meets."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import SigmaClip

from mosaic_pais.runtime.background import estimate_sky
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.runtime.robust import clipped_std


@pytest.mark.parametrize("size", [16, 257, 4096, 65536])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clipped_std_equals_astropy_sigma_clip(size, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 2.0, size)
    values[: size // 20] += rng.exponential(20.0, size // 20)  # sources' light in the window
    clipped = SigmaClip(sigma=3.0, maxiters=5, stdfunc="mad_std")(values)
    assert clipped_std(values) == pytest.approx(float(np.std(clipped.compressed())),
                                                 rel=1e-12)


def test_too_few_values_give_no_noise():
    assert np.isnan(clipped_std(np.arange(15.0)))


def test_noise_of_each_band_of_a_tile():
    rng = np.random.default_rng(4)
    image = rng.normal(0.0, 1.0, (3, 256, 256)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    sigma, texture = estimate_noise(image, n_windows=1)
    # the std of Gaussian noise clipped at ±3σ is 0.987 of its σ
    np.testing.assert_allclose(sigma, 0.987 * np.array([1.0, 2.0, 0.5]), rtol=0.01)
    np.testing.assert_allclose(texture, 1.0, atol=0.05)


def _masked_mode(samples: np.ndarray) -> np.ndarray:
    """SExtractor's clipped sky estimate per row computed with masks, as written out in its
    manual: the reference the sorted computation must reproduce."""
    work = samples.copy()
    for _ in range(3):
        median = np.nanmedian(work, axis=1, keepdims=True)
        sigma = 1.4826 * np.nanmedian(np.abs(work - median), axis=1, keepdims=True)
        work[np.abs(work - median) > 3 * sigma] = np.nan
    median, mean = np.nanmedian(work, axis=1), np.nanmean(work, axis=1)
    crowded = np.abs(mean - median) >= 0.3 * np.nanstd(work, axis=1)
    return np.where(crowded, median, 2.5 * median - 1.5 * mean)


@pytest.mark.parametrize("seed", range(6))
def test_sky_levels_equal_the_masked_computation(seed):
    from mosaic_pais.runtime.robust import clipped_mode

    rng = np.random.default_rng(seed)
    samples = rng.normal(5.0, 2.0, (4, 4096))
    samples[:, :300] += rng.exponential(15.0, (4, 300))  # a galaxy in each cell
    samples[1, rng.random(4096) < 0.5] = np.nan  # half the cell off the data
    samples[2] = np.round(samples[2])  # integer counts: ties
    samples[3] = np.nan  # a cell with no sample
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = _masked_mode(samples)
    got = np.array([clipped_mode(row) for row in samples])
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


def test_sky_of_a_flat_image_is_its_level():
    sky = estimate_sky(np.full((2, 256, 256), 3.5), mesh=128)
    np.testing.assert_array_equal(sky.levels, 3.5)
