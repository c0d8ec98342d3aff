"""Shared fixtures: small synthetic scenes with exact answers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Property tests draw the same examples on every run by default, so that a CI run is the run
# that was checked; `HYPOTHESIS_PROFILE=explore make test` draws new ones each run to look
# for cases nobody has tried, each failure to be kept as a fixed test (as
# test_bad_input.test_run_on_a_mostly_infinite_image).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
DATA = os.path.join(os.path.dirname(__file__), "data")


def gaussian_sources(centers, shape, sigmas=2.0, fluxes=1.0):
    """Per-source images (N, 1, h, w) of circular Gaussians, normalised to ``fluxes``."""
    centers = np.asarray(centers, float).reshape(-1, 2)
    sigmas = np.broadcast_to(np.asarray(sigmas, float), len(centers))
    fluxes = np.broadcast_to(np.asarray(fluxes, float), len(centers))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    out = np.zeros((len(centers), 1, *shape))
    for i, ((cy, cx), s, f) in enumerate(zip(centers, sigmas, fluxes, strict=True)):
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        out[i, 0] = f * np.exp(-r2 / (2 * s * s)) / (2 * np.pi * s * s)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def random_scene(rng):
    """20 Gaussian sources on a 64×80 frame, some centred up to 6 px outside it."""
    shape = (64, 80)
    centers = np.stack([rng.uniform(-6, shape[0] + 6, 20), rng.uniform(-6, shape[1] + 6, 20)], 1)
    sources = gaussian_sources(centers, shape, rng.uniform(1.0, 4.0, 20), rng.uniform(1, 50, 20))
    return centers, sources, shape
