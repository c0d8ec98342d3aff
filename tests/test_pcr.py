"""The PCR encoder and decoder: exact properties on small synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_pais.pcr import (
    MIXED_VOTE_RADIUS,
    center_map,
    deblend_images,
    decode,
    encode,
    find_peaks,
    nearest_peaks_on_grid,
    nearest_sources,
    resolve_votes,
)
from tests.conftest import gaussian_sources


def test_fractions_sum_to_one_and_vectors_point_at_sources(random_scene):
    centers, sources, shape = random_scene
    p = encode(centers, sources, center_sigma=2.0)
    assert p.center.shape == shape
    assert p.vectors.shape == (*shape, 3, 2)
    assert p.fractions.shape == (*shape, 1, 3)
    np.testing.assert_allclose(p.fractions.sum(-1), 1.0, atol=1e-6)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    target = np.stack([yy, xx], -1)[:, :, None, :] + p.vectors
    np.testing.assert_allclose(target, centers[p.source_index], atol=1e-4)
    # slots are ordered by distance
    d = np.linalg.norm(p.vectors, axis=-1)
    assert np.all(np.diff(d, axis=-1) >= -1e-5)


def test_encoding_does_not_depend_on_source_order(random_scene, rng):
    centers, sources, _ = random_scene
    a = encode(centers, sources)
    perm = rng.permutation(len(centers))
    b = encode(centers[perm], sources[perm])
    np.testing.assert_array_equal(a.center, b.center)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.fractions, b.fractions)


def test_ties_are_broken_by_position_not_input_order():
    # pixel (2, 2) is exactly 2 px from both sources
    centers = np.array([[2.0, 0.0], [2.0, 4.0]])
    for order in ([0, 1], [1, 0]):
        idx = nearest_sources(centers[order], (5, 5), n=2)
        chosen = centers[order][idx[2, 2, 0]]
        np.testing.assert_array_equal(chosen, [2.0, 0.0])  # smaller x wins


def test_decode_of_encode_recovers_sources_and_conserves_flux(random_scene):
    centers, sources, shape = random_scene
    image = sources.sum(0)
    p = encode(centers, sources, center_sigma=2.0)
    d = decode(image, p.center, p.vectors, p.fractions, threshold=0.1, window=5)
    deblends = d.deblend(image)
    # every pixel is claimed once there are peaks, so the deblends sum to the image
    np.testing.assert_allclose(deblends.sum(0), image, rtol=1e-5, atol=1e-7)
    inside = (centers[:, 0] > 0) & (centers[:, 0] < shape[0] - 1) & (
        centers[:, 1] > 0) & (centers[:, 1] < shape[1] - 1)
    sep = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(sep, np.inf)
    isolated = inside & (sep.min(1) >= 4)
    dist = np.linalg.norm(centers[isolated][:, None] - d.peaks.yx[None], axis=-1)
    assert np.all(dist.min(1) < 0.05)


def test_sources_beyond_the_edge_keep_their_flux():
    shape = (32, 32)
    centers = np.array([[16.0, 10.0], [16.0, 33.5]])  # the second one is outside the frame
    sources = gaussian_sources(centers, shape, [2.0, 3.0], [10.0, 30.0])
    p = encode(centers, sources, center_sigma=2.0)
    # the inside source's share of the right-hand edge pixels is small: the outside source
    # takes its own light instead of it being absorbed
    frac_inside = np.where(p.source_index == 0, p.fractions[:, :, 0, :], 0).sum(-1)
    assert frac_inside[16, 31] < 0.01
    # and the outside source is found at the edge with sub-pixel accuracy beyond it
    peaks = find_peaks(p.center)
    assert len(peaks) == 2
    assert abs(peaks.x[1] - 33.5) < 0.6


def test_fewer_sources_than_slots_repeat_the_last_and_split_its_fraction():
    shape = (16, 16)
    centers = np.array([[4.0, 4.0], [10.0, 12.0]])
    sources = gaussian_sources(centers, shape, 2.0, [5.0, 5.0])
    p = encode(centers, sources, n=3)
    # slots 1 and 2 hold the same (farther) source, its fraction split equally
    assert np.all(p.source_index[..., 1] == p.source_index[..., 2])
    np.testing.assert_allclose(p.fractions[..., 1], p.fractions[..., 2], atol=1e-7)
    one = encode(centers[:1], sources[:1], n=3)
    assert np.all(one.source_index == 0)
    np.testing.assert_allclose(one.fractions, 1.0 / 3.0, atol=1e-6)


def test_no_sources():
    p = encode(np.zeros((0, 2)), np.zeros((0, 1, 8, 8)))
    assert not p.center.any() and not p.vectors.any()
    np.testing.assert_allclose(p.fractions.sum(-1), 1.0)
    d = decode(np.ones((1, 8, 8)), p.center, p.vectors, p.fractions)
    assert len(d.peaks) == 0 and np.all(d.ids == -1)
    assert d.deblend(np.ones((1, 8, 8))).shape == (0, 1, 8, 8)


def test_background_goes_to_the_nearest_source():
    shape = (40, 40)
    centers = np.array([[5.0, 5.0], [30.0, 30.0]])
    sources = np.zeros((2, 1, *shape))
    sources[0, 0, 5, 5] = 1.0
    sources[1, 0, 30, 30] = 1.0
    p = encode(centers, sources, n=2)
    np.testing.assert_array_equal(p.fractions[20, 0, 0], [1.0, 0.0])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_of_the_scene_rotates_the_encoding(random_scene, k):
    centers, sources, shape = random_scene
    p = encode(centers, sources)
    rotated_sources = np.rot90(sources, k, axes=(2, 3))
    c = centers.copy()
    h, w = shape
    for _ in range(k):  # np.rot90 sends (y, x) to (w - 1 - x, y)
        c = np.stack([w - 1 - c[:, 1], c[:, 0]], 1)
        h, w = w, h
    q = encode(c, rotated_sources)
    np.testing.assert_allclose(np.rot90(p.center, k), q.center, atol=1e-6)
    np.testing.assert_allclose(np.rot90(p.fractions, k), q.fractions, atol=1e-6)
    vec = np.rot90(p.vectors, k)
    for _ in range(k):
        vec = np.stack([-vec[..., 1], vec[..., 0]], -1)
    np.testing.assert_allclose(vec, q.vectors, atol=1e-4)


def test_flip_of_the_scene_flips_the_encoding(random_scene):
    centers, sources, shape = random_scene
    p = encode(centers, sources)
    q = encode(np.stack([centers[:, 0], shape[1] - 1 - centers[:, 1]], 1), sources[..., ::-1])
    np.testing.assert_allclose(p.center[:, ::-1], q.center, atol=1e-6)
    np.testing.assert_allclose(p.fractions[:, ::-1], q.fractions, atol=1e-6)
    np.testing.assert_allclose(p.vectors[:, ::-1] * [1, -1], q.vectors, atol=1e-4)


def test_peaks_in_the_last_row_and_column_are_found():
    c = center_map([[15.0, 15.0], [0.0, 0.0], [15.0, 0.0]], (16, 16), sigma=2.0)
    peaks = find_peaks(c)
    np.testing.assert_allclose(sorted(map(tuple, peaks.yx)), [(0, 0), (15, 0), (15, 15)],
                               atol=1e-6)


def test_plateau_gives_one_peak():
    c = np.zeros((9, 9), np.float32)
    c[4, 4:6] = 0.8
    assert len(find_peaks(c, refine=False)) == 1


def test_subpixel_refinement_is_exact_for_gaussians(rng):
    centers = rng.uniform(3, 29, (1, 2))
    peaks = find_peaks(center_map(centers, (32, 32), sigma=2.0))
    np.testing.assert_allclose(peaks.yx, centers, atol=1e-3)


def test_matched_filter_keeps_exact_positions_and_ideal_scores(rng):
    centers = rng.uniform(10, 54, (6, 2))
    centers = centers[np.hypot(*(centers[:, None] - centers[None]).transpose(2, 0, 1)
                               ).__add__(np.eye(len(centers)) * 99).min(1) > 12]
    peaks = find_peaks(center_map(centers, (64, 64), sigma=2.0), threshold=0.5,
                       smoothing=2.0, center_sigma=2.0)
    order = np.lexsort((peaks.x, peaks.y))
    expected = centers[np.lexsort((centers[:, 1], centers[:, 0]))]
    # a smoothed Gaussian is a wider Gaussian: the log-parabola stays exact
    np.testing.assert_allclose(peaks.yx[order], expected, atol=1e-3)
    # an ideal peak reads about 1 whatever its sub-pixel phase
    np.testing.assert_allclose(peaks.score, 1.0, atol=0.05)


def test_matched_filter_steadies_scores_against_pixel_level_changes(rng):
    """Independent pixel-level changes of the same map (prediction noise) move the filtered
    peak value much less than the bare maximum."""
    centers = np.array([[16.0 + 32 * i, 16.0 + 32 * j] for i in range(4) for j in range(4)])
    centers += rng.uniform(-0.5, 0.5, centers.shape)
    ideal = center_map(centers, (128, 128), sigma=2.0) * 0.8
    scores = {0.0: [], 2.0: []}
    for _ in range(2):  # two "tilings": the same map with independent pixel-level changes
        c = ideal + rng.normal(0, 0.03, ideal.shape).astype(np.float32)
        for smoothing in scores:
            p = find_peaks(c, threshold=0.3, window=5, smoothing=smoothing, center_sigma=2.0)
            assert len(p) == len(centers)
            scores[smoothing].append(p.score[np.lexsort((p.x, p.y))])
    change = {k: np.std(v[0] - v[1]) for k, v in scores.items()}
    assert change[2.0] < 0.6 * change[0.0]  # about half here


def test_matched_filter_leaves_masked_pixels_out():
    c = center_map([[20.0, 20.0]], (40, 40), sigma=2.0)
    valid = np.ones_like(c, bool)
    valid[:, 22:] = False  # a mask 2 px from the source: its centre map there reads 0
    c[~valid] = 0.0
    masked = find_peaks(c, threshold=0.5, smoothing=2.0, center_sigma=2.0, valid=valid)
    assert len(masked) == 1 and masked.score[0] > 0.95
    # read as "no source here", the zeros would have cost the source part of its score
    zeros = find_peaks(c, threshold=0.1, smoothing=2.0, center_sigma=2.0)
    assert zeros.score[0] < 0.9


def test_votes_resolve_to_nearest_detected_centre_with_origin():
    vectors = np.zeros((2, 2, 1, 2), np.float32)
    vectors[..., 0, 1] = 10.0  # every pixel points 10 px to the right
    peaks = np.array([[100.0, 110.0], [100.0, 200.0]])
    ids = resolve_votes(vectors, peaks, origin=(100.0, 100.0))
    assert np.all(ids == 0)
    ids = resolve_votes(vectors, peaks, origin=(100.0, 180.0))
    assert np.all(ids == 1)


def test_invalid_pixels_are_not_claimed_and_do_not_enter_deblends(random_scene):
    centers, sources, shape = random_scene
    image = sources.sum(0)
    image[0, 10:20, 10:20] = np.nan
    p = encode(centers, sources)
    d = decode(image, p.center, p.vectors, p.fractions)
    assert np.all(d.ids[:, 10:20, 10:20] == -1)
    deblends = d.deblend(image)
    assert np.all(np.isfinite(deblends))
    good = np.isfinite(image)
    np.testing.assert_allclose(deblends.sum(0)[good], image[good], rtol=1e-5, atol=1e-7)


def test_duplicate_votes_add_up():
    image = np.ones((1, 1, 1))
    ids = np.array([[[0]], [[0]], [[1]]])
    fractions = np.array([0.25, 0.25, 0.5]).reshape(1, 3, 1, 1)
    out = deblend_images(image, ids, fractions, 2)
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.5, 0.5])


def test_multiband_fractions():
    shape = (24, 24)
    centers = np.array([[8.0, 8.0], [15.0, 15.0]])
    band1 = gaussian_sources(centers, shape, 2.0, [1.0, 4.0])
    band2 = gaussian_sources(centers, shape, 2.0, [4.0, 1.0])
    sources = np.concatenate([band1, band2], axis=1)
    p = encode(centers, sources)
    assert p.fractions.shape == (*shape, 2, 3)
    assert p.fractions[12, 12, 0].max() != pytest.approx(p.fractions[12, 12, 1].max())
    image = sources.sum(0)
    d = decode(image, p.center, p.vectors, p.fractions)
    np.testing.assert_allclose(d.deblend(image).sum(0), image, rtol=1e-5, atol=1e-8)


def test_geometric_votes_go_to_the_k_nearest_peaks():
    vectors = np.full((1, 3, 3, 2), 50.0, np.float32)  # useless vectors are ignored
    peaks = np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 10.0]])
    ids = resolve_votes(vectors, peaks, mode="geometric")
    assert ids[:, 0, 0].tolist() == [0, 1, 2]
    assert ids[:, 0, 2].tolist() == [1, 0, 2]
    two = resolve_votes(vectors, peaks[:2], mode="geometric")
    assert two[:, 0, 0].tolist() == [0, 1, 1]  # fewer peaks than slots: the last repeats
    with pytest.raises(ValueError):
        resolve_votes(vectors, peaks, mode="magic")


def test_mixed_votes_are_geometric_near_a_peak_and_follow_the_vectors_beyond():
    # a bright source at x = 0 and a detected neighbour at x = 30 on a 1 × 40 strip; an
    # undetected labelled source at x = 26 takes slot 0 of the pixels around it, so the
    # network's slots there are (undetected, neighbour, bright), which the vectors say
    h, w = 1, 40
    peaks = np.array([[0.0, 0.0], [0.0, 30.0]])
    labelled_x = np.array([0.0, 26.0, 30.0])
    xx = np.arange(w, dtype=np.float64)
    order = np.argsort(np.abs(labelled_x[None, :] - xx[:, None]), axis=1, kind="stable")
    vectors = np.zeros((h, w, 3, 2), np.float32)
    vectors[0, :, :, 1] = labelled_x[order] - xx[:, None]
    geometric = resolve_votes(vectors, peaks, mode="geometric")
    by_vectors = resolve_votes(vectors, peaks, mode="vectors")
    mixed = resolve_votes(vectors, peaks, mode="mixed")
    near = np.abs(xx - np.where(xx < 15, 0.0, 30.0)) <= MIXED_VOTE_RADIUS
    np.testing.assert_array_equal(mixed[:, 0, near], geometric[:, 0, near])
    np.testing.assert_array_equal(mixed[:, 0, ~near], by_vectors[:, 0, ~near])
    # at x = 20 the bright source is slot 2 of the network but slot 1 geometrically: the
    # geometric order would hand slot 0's share (the undetected source's) to the neighbour
    assert geometric[:, 0, 20].tolist() == [1, 0, 0] and mixed[:, 0, 20].tolist() == [1, 1, 0]
    assert mixed[:, 0, 2].tolist() == geometric[:, 0, 2].tolist() == [0, 1, 1]


@pytest.mark.parametrize("seed", range(6))
def test_nearest_peaks_on_grid_is_brute_force_with_ties_to_the_lower_index(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    points = rng.uniform(-60, 260, (n, 2))
    if seed % 2 == 0:  # integer positions: many exactly equal distances
        points = np.round(points)
    k = min(3, n)
    h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    origin = tuple(float(v) for v in rng.integers(-80, 200, 2))
    valid = rng.uniform(size=(h, w)) > 0.1
    grid = nearest_peaks_on_grid(points, (h, w), origin, k, valid=valid)
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (yy.ravel()[:, None] + origin[0] - points[:, 0]) ** 2 \
        + (xx.ravel()[:, None] + origin[1] - points[:, 1]) ** 2
    expected = np.array([np.lexsort((np.arange(n), row))[:k] for row in d2]).T.reshape(k, h, w)
    np.testing.assert_array_equal(grid, np.where(valid, expected, -1))
    # a block cut out of the grid agrees with the grid: no dependence on pixel groups
    part = nearest_peaks_on_grid(points, (h - h // 3, w - w // 2),
                                 (origin[0] + h // 3, origin[1] + w // 2), k)
    np.testing.assert_array_equal(part, expected[:, h // 3:, w // 2:])


@pytest.mark.parametrize("seed", range(4))
def test_vector_votes_are_brute_force_nearest_centres(seed):
    # votes land in the owner map, on its Voronoi edges, and far beyond it (searched)
    rng = np.random.default_rng(seed)
    n_peaks = int(rng.integers(1, 80))
    peaks = rng.uniform(-40, 200, (n_peaks, 2))
    h, w = int(rng.integers(1, 70)), int(rng.integers(1, 70))
    vectors = rng.normal(0, 30, (h, w, 3, 2))
    vectors[rng.uniform(size=(h, w)) < 0.05, 1, 0] = 400.0  # far beyond the map's margin
    vectors = vectors.astype(np.float16)  # as a run stores them
    origin = tuple(float(v) for v in rng.uniform(-20, 150, 2))
    ids = resolve_votes(vectors, peaks, origin=origin)
    yy, xx = np.mgrid[0:h, 0:w]
    target = vectors.astype(np.float64) + np.stack([yy + origin[0], xx + origin[1]], -1)[:, :, None]
    d2 = ((target[..., None, :] - peaks) ** 2).sum(-1)  # (h, w, n, P)
    np.testing.assert_array_equal(ids, np.moveaxis(d2.argmin(-1), -1, 0))


@pytest.mark.parametrize("mode", ["vectors", "mixed"])
def test_sampled_vectors_serve_their_step_by_step_pixels(mode):
    # every pixel votes where its sample's vectors point, ranking those targets by its own
    # distance to them: as if each pixel had vectors from itself to its sample's targets,
    # nearest first; a sample that is not finite leaves its pixels geometric
    rng = np.random.default_rng(5)
    peaks = rng.uniform(-10, 60, (25, 2))
    h, w, step = 45, 38, 2
    sampled = rng.normal(0, 12, (-(-h // step), -(-w // step), 3, 2)).astype(np.float16)
    sampled[3, 4] = np.nan
    valid = rng.uniform(size=(h, w)) > 0.05
    origin = (100.0, -20.0)
    ids = resolve_votes(sampled, peaks, origin=origin, valid=valid, mode=mode, step=step)
    yy, xx = np.mgrid[0:h, 0:w]
    targets = sampled[yy // step, xx // step].astype(np.float64)  # from each pixel's sample
    targets[..., 0] += (yy // step * step)[..., None]
    targets[..., 1] += (xx // step * step)[..., None]
    pixel = np.stack([yy, xx], -1)[:, :, None]
    rank = np.argsort(((targets - pixel) ** 2).sum(-1), axis=-1, kind="stable")
    full = np.take_along_axis(targets, rank[..., None], axis=2) - pixel
    nan = ~np.isfinite(full).all(axis=(-1, -2))
    expected = resolve_votes(np.where(nan[..., None, None], 0.0, full), peaks, origin=origin,
                             valid=valid, mode=mode)
    geometric = resolve_votes(full, peaks, origin=origin, valid=valid, mode="geometric")
    expected[:, nan] = geometric[:, nan]
    np.testing.assert_array_equal(ids, expected)
    assert nan.sum() == 4 and np.all(ids[:, ~valid] == -1)
    with pytest.raises(ValueError, match="valid"):
        resolve_votes(sampled, peaks, step=step)
    with pytest.raises(ValueError, match="do not sample"):
        resolve_votes(sampled, peaks, valid=valid[:-2], step=step)
