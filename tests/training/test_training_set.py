"""Simulated training sets: labels of detectable sources only, shards kept only when alike."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mosaic_pais.sim.scenes import matched_filter_snr
from mosaic_pais.training.dataset import (
    build_training_set,
    label_scene,
    labelled,
    scene_conditions,
    split_scene,
)


def test_only_detectable_sources_are_labelled():
    scene = split_scene("train", 0)
    snr = matched_filter_snr(scene.sources, scene.noise_sigma)
    assert (snr < 5).any() and (snr >= 5).any()
    every = label_scene(scene, min_snr=0.0)
    visible = label_scene(scene, min_snr=5.0)
    # fewer centre-map peaks: each labelled source has its peak of ~1 in the frame or beyond it
    assert visible["center"].sum() < every["center"].sum()
    np.testing.assert_allclose(visible["fractions"].sum(-1), 1.0, atol=1e-5)


def test_shards_are_rebuilt_when_labelled_differently(tmp_path):
    out = build_training_set(tmp_path, "val", 2, shard_size=2, min_snr=5.0, progress=False)
    shard = out / "shard_00000.zarr"
    first = zarr.open_group(str(shard), mode="r")["center"][...]
    build_training_set(tmp_path, "val", 2, shard_size=2, min_snr=5.0, progress=False)
    np.testing.assert_array_equal(zarr.open_group(str(shard), mode="r")["center"][...], first)
    build_training_set(tmp_path, "val", 2, shard_size=2, min_snr=0.0, progress=False)
    group = zarr.open_group(str(shard), mode="r")
    assert group.attrs["label_min_snr"] == 0.0
    assert group["center"][...].astype(float).sum() > first.astype(float).sum()
    # a shard labelled at stamp centroids (older sets record no label_positions) is rebuilt
    group = zarr.open_group(str(shard), mode="r+")
    del group.attrs["label_positions"]
    group.attrs["label_min_snr"] = 5.0
    build_training_set(tmp_path, "val", 2, shard_size=2, min_snr=5.0, progress=False)
    group = zarr.open_group(str(shard), mode="r")
    assert group.attrs["label_positions"] == "drawn"
    np.testing.assert_array_equal(group["center"][...], first)


def test_a_set_holds_tiles_of_its_tile_size(tmp_path):
    out = build_training_set(tmp_path, "val", 2, shard_size=2, tile_size=64, progress=False)
    group = zarr.open_group(str(out / "shard_00000.zarr"), mode="r")
    assert group.attrs["tile_size"] == 64 and group["image"].shape[-2:] == (64, 64)
    build_training_set(tmp_path, "val", 2, shard_size=2, tile_size=96, progress=False)
    group = zarr.open_group(str(out / "shard_00000.zarr"), mode="r")
    assert group.attrs["tile_size"] == 96 and group["image"].shape[-2:] == (96, 96)


def test_conditions_vary_the_noise_texture():
    conditions = [scene_conditions(1_000_000 + i) for i in range(400)]
    correlation = np.array([c["noise_correlation"] for c in conditions])
    white = correlation == 0
    assert 0.15 < white.mean() < 0.35
    assert np.all((correlation[~white] >= 0.3) & (correlation[~white] <= 0.9))
    scene = split_scene("train", int(np.flatnonzero(white)[0]))
    assert scene.truth.meta["NOISECOR"] == 0.0
    # an override replaces the seed's own draw
    assert split_scene("train", 0, noise_correlation=0.6).truth.meta["NOISECOR"] == 0.6


def test_texture_factor_matches_the_noise_a_matched_filter_sees():
    # a PSF-sized source: its matched-filter output on correlated noise of per-pixel sigma 1
    from mosaic_pais.sim.scenes import correlated_noise, noise_texture_factor

    yy, xx = np.mgrid[-12:13, -12:13]
    template = np.exp(-0.5 * (yy ** 2 + xx ** 2) / 1.5 ** 2)
    rng = np.random.default_rng(0)
    for correlation in (0.0, 0.6, 0.9):
        noise = correlated_noise(rng, (1024, 1024), 1.0, correlation)
        # filter responses on a grid of independent placements
        responses = [(noise[y:y + 25, x:x + 25] * template).sum()
                     for y in range(0, 999, 40) for x in range(0, 999, 40)]
        snr_ratio = np.sqrt((template ** 2).sum()) / np.std(responses)
        assert snr_ratio == pytest.approx(noise_texture_factor(correlation), rel=0.15)


def test_tiles_with_large_galaxies_are_drawn_more_often():
    """extended_oversampling favours a tile holding a large galaxy over one of compact sources;
    with it at 0 (and no blend oversampling) tiles are drawn uniformly."""
    from mosaic_pais.pcr import encode
    from mosaic_pais.training.dataset import tile_weights

    yy, xx = np.mgrid[0:64, 0:64]

    def tile(scale_length):
        centres = [[20.0, 20.0], [44.0, 44.0]]
        light = np.stack([np.exp(-np.hypot(yy - cy, xx - cx) / scale_length)
                          for cy, cx in centres])[:, None]
        pcr = encode(centres, light, n=3)
        return light.sum(axis=0) * 0.5, pcr

    samples = [tile(1.0), tile(8.0)]  # compact sources, then two large discs
    data = {"image": np.stack([s[0] for s in samples]).astype(np.float32),
            "noise_sigma": np.full((2, 1), 0.01, np.float32),
            "center": np.stack([s[1].center for s in samples]),
            "vectors": np.stack([s[1].vectors for s in samples]),
            "fractions": np.stack([s[1].fractions for s in samples])}
    assert tile_weights(data, 0.0, 0.0) is None
    weights = tile_weights(data, 0.0, 1.0)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[1] > 2 * weights[0]


def test_a_sky_offset_moves_the_input_and_not_the_labels():
    """``sky_offset_sigma``: each crop on a sky a little off zero, a constant in units of its
    noise; the labels (where the sources are, whose light is whose) stay as they are."""
    from mosaic_pais.training.train import TrainConfig, training_batches

    labelled = label_scene(split_scene("train", 3))
    data = {key: labelled[key][None] for key in ("image", "valid", "center", "vectors",
                                                 "fractions", "noise_sigma")}
    settings = {"batch": 1, "crop": 64, "mask_probability": 0.0, "seed": 0}
    plain = next(training_batches(data, TrainConfig(**settings), np.random.default_rng(5)))
    offset = next(training_batches(data, TrainConfig(**settings, sky_offset_sigma=0.1),
                           np.random.default_rng(5)))
    for key in ("center", "vectors", "fractions", "valid"):
        np.testing.assert_array_equal(plain[1][key], offset[1][key])
    shift = offset[0][..., 0] - plain[0][..., 0]  # S/N channel; the last is validity
    valid = plain[0][..., -1] > 0
    assert valid.mean() > 0.5
    assert np.all(offset[0][..., 0][~valid] == 0)  # masked pixels stay 0
    assert 1e-4 < abs(float(shift[valid].mean())) < 0.5
    np.testing.assert_allclose(shift[valid], shift[valid].mean(), atol=1e-4)
    np.testing.assert_array_equal(offset[0][..., -1], plain[0][..., -1])


def test_tile_skies_are_subtracted_as_a_run_subtracts_them():
    """``background_mesh``: each training tile's sky estimated on the run's cells and
    subtracted, so that a pedestal is gone and the simulation's faint-source floor too."""
    from mosaic_pais.runtime.background import DEFAULT_MESH, subtract_sky
    from mosaic_pais.training.dataset import subtract_tile_skies

    scene = split_scene("train", 3)
    images = np.stack([scene.image, scene.image + np.float32(5 * scene.noise_sigma)])
    out = subtract_tile_skies(images, DEFAULT_MESH)
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_allclose(out[0], subtract_sky(scene.image), atol=1e-7)
    np.testing.assert_allclose(out[1], out[0], atol=1e-3 * scene.noise_sigma)
    # what is taken away from a tile on a zero sky is its faint sources' floor: small, positive
    floor = float(np.median(scene.image - out[0])) / scene.noise_sigma
    assert 0 < floor < 0.2


def test_training_scenes_never_draw_the_held_out_galaxies():
    from mosaic_pais.sim.scenes import HELD_OUT_REAL_GALAXIES, simulate_scene

    drawn = set()
    for i in range(6):
        truth = split_scene("train", i, shape=(128, 128)).truth
        drawn |= set(int(c) for c in truth["cosmos_index"] if c >= 0)
        truth = split_scene("val", i, shape=(128, 128)).truth
        drawn |= set(int(c) for c in truth["cosmos_index"] if c >= 0)
    assert drawn and not drawn & set(HELD_OUT_REAL_GALAXIES)
    held = simulate_scene((128, 128), seed=3_000_000, density=2.0, real_galaxies="held_out")
    used = set(int(c) for c in held.truth["cosmos_index"] if c >= 0)
    assert used and used <= set(HELD_OUT_REAL_GALAXIES)


def test_flux_weights_sum_to_each_sources_flux_share():
    scene = split_scene("train", 1, shape=(128, 128))
    sample = label_scene(scene)
    weight = sample["flux_weight"].astype(np.float64)  # (h, w, n)
    share = sample["fractions"][..., 0, :].astype(np.float64)
    # Σ_pixels weight·fraction over all slots = Σ_sources (their flux in the slots / flux):
    # at most the number of labelled sources, and close to it (3 slots hold almost all light)
    n_labelled = int(labelled(scene).sum())
    total = (weight * share).sum()
    assert 0.8 * n_labelled < total <= n_labelled + 1e-3


def test_four_band_flux_weights_are_each_bands_own():
    from mosaic_pais.training.dataset import slot_flux_weight

    bands = ("F160W", "F125W", "F850LP", "F606W")
    scene = split_scene("train", 2, shape=(128, 128), bands=bands)
    sample = label_scene(scene)
    weight = sample["flux_weight"].astype(np.float64)  # (h, w, b, n)
    assert weight.shape == (128, 128, 4, 3)
    share = sample["fractions"].astype(np.float64)  # (h, w, b, n)
    n_labelled = int(labelled(scene).sum())
    for band in range(4):  # each band's weights hold each source's flux in that band
        total = (weight[:, :, band] * share[:, :, band]).sum()
        assert 0.7 * n_labelled < total <= n_labelled + 1e-3
    # a single band's per-band weights are the summed ones
    one = scene.sources[labelled(scene)][:, :1]
    index = np.argsort(-one[:, 0], axis=0)[:3].transpose(1, 2, 0)
    np.testing.assert_array_equal(slot_flux_weight(one, index, per_band=True)[..., 0, :],
                                  slot_flux_weight(one, index))
