"""Augmentations keep the labels consistent with the transformed image's own encoding."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_pais.pcr import encode
from mosaic_pais.training import augment
from tests.conftest import gaussian_sources

SHAPE = (64, 64)


def sample_for(centers):
    sources = gaussian_sources(centers, SHAPE, 3.0, 10.0)
    p = encode(centers, sources, center_sigma=2.0)
    return {"image": sources.sum(0).astype(np.float32), "valid": np.ones(SHAPE, np.float32),
            "center": p.center, "vectors": p.vectors, "fractions": p.fractions}


@pytest.fixture
def centers(rng):
    return rng.uniform(6, 58, (7, 2))


def assert_same(a, b, atol=1e-5):
    for key in ("image", "center", "vectors", "fractions"):
        np.testing.assert_allclose(a[key], b[key], atol=atol, err_msg=key)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_matches_encoding_of_rotated_scene(centers, k):
    c = centers
    for _ in range(k):
        c = np.stack([SHAPE[1] - 1 - c[:, 1], c[:, 0]], 1)
    assert_same(augment.rot90(sample_for(centers), k), sample_for(c))


@pytest.mark.parametrize("axis", [0, 1])
def test_flip_matches_encoding_of_flipped_scene(centers, axis):
    c = centers.copy()
    c[:, axis] = SHAPE[axis] - 1 - c[:, axis]
    assert_same(augment.flip(sample_for(centers), axis), sample_for(c))


@pytest.mark.parametrize("angle", [0.3, 1.9, -2.5])
def test_arbitrary_rotation_turns_vectors_the_right_way(centers, angle):
    """Vectors of the rotated sample equal the rotated scene's own encoding.

    Only pixels off the Voronoi edges are compared: there the nearest-pixel sampling may pick
    the neighbouring source, which is the expected (and tiny) label noise of the method.
    """
    cy = cx = (SHAPE[0] - 1) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    oy, ox = centers[:, 0] - cy, centers[:, 1] - cx
    rotated_centers = np.stack([cos * oy - sin * ox + cy, cos * ox + sin * oy + cx], 1)
    got = augment.rotate(sample_for(centers), angle)
    want = sample_for(rotated_centers)
    valid = got["valid"] > 0
    err = np.abs(got["vectors"][..., 0, :] - want["vectors"][..., 0, :]).max(-1)[valid]
    assert np.mean(err < 1e-3) > 0.95
    # and the wrong sign convention (the prototype's defect) would fail this check
    wrong = augment.rotate(sample_for(centers), -angle)
    err_wrong = np.abs(wrong["vectors"][..., 0, :] - want["vectors"][..., 0, :]).max(-1)[valid]
    assert np.mean(err_wrong < 1e-3) < 0.5
    # the image moved with the labels
    good = valid & (want["center"] > 0.5)
    np.testing.assert_allclose(got["center"][good], want["center"][good], atol=0.08)
    assert np.corrcoef(got["image"][0][valid], want["image"][0][valid])[0, 1] > 0.99


def test_rotation_marks_pixels_from_outside_invalid(centers):
    got = augment.rotate(sample_for(centers), np.pi / 4)
    assert got["valid"][0, 0] == 0 and got["valid"][32, 32] == 1
    assert got["image"][0, 0, 0] == 0


def test_random_augment_keeps_shapes_and_is_seeded(centers):
    s = sample_for(centers)
    a = augment.random_augment(s, np.random.default_rng(5), crop_size=32, rotate_probability=0.5)
    b = augment.random_augment(s, np.random.default_rng(5), crop_size=32, rotate_probability=0.5)
    assert a["image"].shape == (1, 32, 32) and a["vectors"].shape == (32, 32, 3, 2)
    assert_same(a, b, atol=0)


def test_crop_keeps_vectors_pointing_at_sources(centers):
    s = sample_for(centers)
    c = augment.crop(s, 10, 20, 32)
    np.testing.assert_array_equal(c["vectors"], s["vectors"][10:42, 20:52])
