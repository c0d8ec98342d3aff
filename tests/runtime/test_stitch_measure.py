"""Stitching and measuring over a chunked store equal the single-piece answer."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_pais.pcr import center_map, encode, find_peaks
from mosaic_pais.runtime.measure import (
    claim_footprints,
    combine,
    finalize,
    footprint_bins,
    measure_image,
    measure_region,
)
from mosaic_pais.runtime.stitch import merge_peaks, peaks_in_region, resolve_region, resolved_region
from mosaic_pais.runtime.store import (
    SCRATCH_VARIABLES,
    VARIABLES,
    VECTOR_STEP,
    block_is_done,
    create_store,
    open_array,
    record_block,
    sampled_sizes,
)
from tests.conftest import gaussian_sources

H, W = 150, 170
NOISE = 0.005  # the pixel noise the footprints' isophote refers to


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(3)
    centers = np.zeros((0, 2))
    while len(centers) < 40:  # at least 4 px apart: every source must be found
        c = rng.uniform(0, [H, W])
        if len(centers) == 0 or np.hypot(*(centers - c).T).min() >= 4:
            centers = np.vstack([centers, c])
    sources = gaussian_sources(centers, (H, W), rng.uniform(1, 3, 40), rng.uniform(1, 20, 40))
    return centers, sources, encode(centers, sources, center_sigma=2.0)


resolved: dict = {}  # chunk size -> (ids, fractions) as resolved, before the footprints


def _stitch(tmp_path, scene, chunk):
    centers, sources, pcr = scene
    store, scratch = tmp_path / f"pcr{chunk}.zarr", tmp_path / f"v{chunk}.zarr"
    sizes = {"band": 1, "slot": 3, "component": 2, "y": H, "x": W}
    create_store(store, VARIABLES, sizes, {"y": chunk, "x": chunk})
    create_store(scratch, SCRATCH_VARIABLES, *sampled_sizes(sizes, {"y": chunk, "x": chunk}))
    open_array(store, "center", "r+")[:] = pcr.center
    open_array(scratch, "raw_fractions", "r+")[:] = np.transpose(pcr.fractions, (2, 3, 0, 1))
    sampled = pcr.vectors[::VECTOR_STEP, ::VECTOR_STEP]  # as a run keeps them
    open_array(scratch, "vectors", "r+")[:] = np.transpose(sampled, (2, 3, 0, 1))
    regions = [(y, min(y + chunk, H), x, min(x + chunk, W))
               for y in range(0, H, chunk) for x in range(0, W, chunk)]
    peaks = merge_peaks([peaks_in_region(store, r, (H, W), 0.1, 5) for r in regions])
    yx = np.stack([peaks["y"], peaks["x"]], 1)
    ids = np.full((3, H, W), -2, np.int64)
    frac = np.full((1, 3, H, W), np.nan, np.float32)
    for r in regions:
        ids[:, r[0]:r[1], r[2]:r[3]], frac[:, :, r[0]:r[1], r[2]:r[3]] = resolve_region(
            scratch, r, yx, 0.01, store=store)
    assert np.all(ids >= -1) and np.all(np.isfinite(frac))  # the regions tile the mosaic
    # the second measuring pass reads back what stitching resolved, block by block
    for r in regions:
        stored_ids, stored_frac = resolved_region(store, scratch, r, 0.01)
        np.testing.assert_array_equal(stored_ids, ids[:, r[0]:r[1], r[2]:r[3]])
        np.testing.assert_array_equal(stored_frac, frac[:, :, r[0]:r[1], r[2]:r[3]])
    resolved[chunk] = ids.copy(), frac.copy()
    image = sources.sum(0)

    def measure(ids, frac):
        return combine([measure_region(image[:, r[0]:r[1], r[2]:r[3]],
                                       ids[:, r[0]:r[1], r[2]:r[3]],
                                       frac[:, :, r[0]:r[1], r[2]:r[3]], peaks["y"], peaks["x"],
                                       (r[0], r[2]), (H, W)) for r in regions],
                       len(peaks["id"]), 1)

    first = measure(ids, frac)
    profiles = combine([measure_region(image[:, r[0]:r[1], r[2]:r[3]], ids[:, r[0]:r[1], r[2]:r[3]],
                                       frac[:, :, r[0]:r[1], r[2]:r[3]], peaks["y"], peaks["x"],
                                       (r[0], r[2]), (H, W), profiles_only=True)
                        for r in regions], len(peaks["id"]), 1)
    assert set(profiles) == {"hist", "count"}  # the first pass's cheaper form sums the same
    for key in profiles:
        np.testing.assert_allclose(profiles[key], first[key], rtol=1e-12, atol=1e-12)
    radius, n_bins = footprint_bins(first, NOISE)
    claimed = [claim_footprints(ids[:, r[0]:r[1], r[2]:r[3]], frac[:, :, r[0]:r[1], r[2]:r[3]],
                                peaks["y"], peaks["x"], (r[0], r[2]), n_bins) for r in regions]
    for r, (i, f) in zip(regions, claimed, strict=True):
        ids[:, r[0]:r[1], r[2]:r[3]] = i
        frac[:, :, r[0]:r[1], r[2]:r[3]] = f
    columns = finalize(measure(ids, frac), peaks, ["F160W"], False, radius)
    return peaks, ids, frac, columns


@pytest.mark.parametrize("chunk", [38, 64])  # a run's chunks are even: vectors are sampled
def test_chunked_equals_single_piece(tmp_path, scene, chunk):
    whole = _stitch(tmp_path, scene, max(H, W))
    part = _stitch(tmp_path, scene, chunk)
    np.testing.assert_array_equal(whole[0]["id"], part[0]["id"])
    np.testing.assert_allclose(whole[0]["y"], part[0]["y"], atol=1e-9)
    np.testing.assert_array_equal(whole[1], part[1])
    np.testing.assert_allclose(whole[2], part[2], rtol=1e-6)
    for key in ("flux", "kron_radius", "r50", "npix", "a", "blend_fraction"):
        np.testing.assert_allclose(whole[3][key], part[3][key], rtol=1e-9, atol=1e-12,
                                   err_msg=key)
    # the in-memory path gives the same catalogue as the chunked one
    ids0, frac0 = resolved[max(H, W)]
    cols, _, _ = measure_image(scene[1].sum(0), ids0, frac0, whole[0], ["F160W"], NOISE)
    for key in ("flux", "kron_radius", "r90", "npix"):
        np.testing.assert_allclose(cols[key], part[3][key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize(("chunk", "inner"), [(23, 23), (64, 64), (64, 16)])
def test_chunked_matched_filter_peaks_equal_the_whole_map(tmp_path, rng, chunk, inner):
    """The halo holds the matched filter's kernel: block by block, with a masked region
    (centre map exactly 0, as the pipeline writes it), the peaks are those of the whole map;
    also when the centre map is stored as shards of smaller inner chunks (``inner``)."""
    centers = rng.uniform(0, [H, W], (60, 2))
    # a sigmoid is never exactly 0: the floor keeps valid pixels apart from masked ones
    center = (center_map(centers, (H, W), sigma=2.0) + 1e-4) * rng.uniform(0.5, 1.0, (H, W))
    center = center.astype(np.float32)
    valid = np.ones((H, W), bool)
    valid[40:70, 90:130] = False
    center[~valid] = 0.0
    store = tmp_path / "pcr.zarr"
    sizes = {"band": 1, "slot": 3, "component": 2, "y": H, "x": W}
    create_store(store, VARIABLES, sizes, {"y": chunk, "x": chunk}, inner_target=inner)
    stored = open_array(store, "center", "r+")
    assert stored.chunks == (inner, inner)
    assert stored.shards == (None if inner == chunk else (chunk, chunk))
    regions = [(y, min(y + chunk, H), x, min(x + chunk, W))
               for y in range(0, H, chunk) for x in range(0, W, chunk)]
    for r in regions:  # block by block, as a run writes
        stored[r[0]:r[1], r[2]:r[3]] = center[r[0]:r[1], r[2]:r[3]]
    np.testing.assert_array_equal(stored[:], center)
    finding = {"window": 5, "smoothing": 2.0, "center_sigma": 2.0}
    peaks = merge_peaks([peaks_in_region(store, r, (H, W), 0.3, **finding)
                         for r in regions])
    whole = find_peaks(center, threshold=0.3, valid=valid, **finding)
    order = np.lexsort((whole.ix, whole.iy))
    assert len(peaks["id"]) == len(whole) > 20
    np.testing.assert_allclose(peaks["y"], whole.y[order], atol=1e-6)
    np.testing.assert_allclose(peaks["x"], whole.x[order], atol=1e-6)
    np.testing.assert_allclose(peaks["score"], whole.score[order], rtol=1e-6)


def test_sources_found_once_and_flux_conserved(tmp_path, scene):
    centers, sources, _ = scene
    peaks, ids, frac, columns = _stitch(tmp_path, scene, 42)
    image = sources.sum(0)
    assert len(peaks["id"]) == len(centers)
    claimed = (frac[0] * (ids >= 0)).sum(0)  # each pixel's claimed share
    np.testing.assert_allclose(columns["flux"].sum(), (image[0] * claimed).sum(), rtol=1e-9)
    assert (claimed < 1 - 1e-6).any()  # far from every source, pixels are unclaimed
    # every truth source matched, positions and fluxes exact for this perfect PCR
    d = np.hypot(centers[:, None, 0] - peaks["y"][None], centers[:, None, 1] - peaks["x"][None])
    nearest = d.argmin(1)
    assert len(set(nearest)) == len(centers) and d.min(1).max() < 1e-3
    # the footprints hold nearly all of each noiseless Gaussian's flux
    np.testing.assert_allclose(columns["flux"][nearest], sources.sum((1, 2, 3)), rtol=0.05)


def test_measurements_of_a_gaussian():
    sigma, flux = 2.5, 100.0
    shape = (64, 64)
    src = gaussian_sources([[32.0, 31.0]], shape, sigma, flux)
    ids = np.zeros((3, *shape), np.int64)
    frac = np.zeros((1, 3, *shape))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([32.0]), "x": np.array([31.0]),
             "score": np.array([1.0])}
    col, _, _ = measure_image(src[0], ids, frac, peaks, ["F160W"], noise_sigma=1e-3)
    # the footprint (2.5 first-moment radii: 7.8 px for this Gaussian) holds 99.3% of it
    assert col["kron_radius"][0] == pytest.approx(2.5 * 1.2533 * sigma, rel=0.03)
    assert col["flux"][0] == pytest.approx(flux * (1 - np.exp(-0.5 * 3.133 ** 2)), rel=0.01)
    # a pixel-sampled profile: radii agree with the continuous ones to a few per cent
    assert col["r50"][0] == pytest.approx(1.1774 * sigma, rel=0.07)
    assert col["r90"][0] == pytest.approx(2.1460 * sigma, rel=0.07)
    assert col["a"][0] == pytest.approx(sigma, rel=0.05)
    assert col["b"][0] == pytest.approx(sigma, rel=0.05)
    assert col["npix"][0] == pytest.approx(np.pi * col["kron_radius"][0] ** 2, rel=0.15)
    assert col["flags"][0] == 0


def test_shape_is_central_when_the_detected_centre_is_off():
    """a, b, theta are the moments about the light's own centroid, not the detected centre."""
    sigma_y, sigma_x, flux = 1.5, 3.0, 100.0
    shape = (64, 64)
    yy, xx = np.mgrid[0:64, 0:64]
    src = flux * np.exp(-0.5 * (((yy - 32) / sigma_y) ** 2 + ((xx - 31) / sigma_x) ** 2))
    ids = np.zeros((3, *shape), np.int64)
    frac = np.zeros((1, 3, *shape))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([32.0]), "x": np.array([32.5]),
             "score": np.array([1.0])}  # 1.5 px off along the major axis
    col, _, _ = measure_image(src[None], ids, frac, peaks, ["F160W"], noise_sigma=1e-3)
    assert col["a"][0] == pytest.approx(sigma_x, rel=0.06)
    assert col["b"][0] == pytest.approx(sigma_y, rel=0.06)
    assert abs(col["theta"][0]) < 1.0
    # the light's barycentre, not the detected centre (1.5 px away); the footprint is a
    # circle about the detected centre, so a little of the far side is cut
    assert col["xcentroid"][0] == pytest.approx(31.0, abs=0.15)
    assert col["ycentroid"][0] == pytest.approx(32.0, abs=0.02)


def test_block_records_detect_corruption(tmp_path):
    sizes = {"band": 1, "slot": 3, "y": 20, "x": 20}
    store = create_store(tmp_path / "s.zarr", VARIABLES, sizes, {"y": 10, "x": 10})
    open_array(store, "center", "r+")[0:10, 0:10] = 0.5
    record_block(store, "infer", "0_0", ["center"], (0, 10, 0, 10))
    assert block_is_done(store, "infer", "0_0")
    assert not block_is_done(store, "infer", "0_1")
    open_array(store, "center", "r+")[3, 3] = 0.9  # a partial or corrupt rewrite
    assert not block_is_done(store, "infer", "0_0")


def test_no_sources_give_an_empty_catalogue():
    image = np.random.default_rng(0).normal(0, 1, (1, 40, 40))
    peaks = {"id": np.zeros(0, np.int64), "y": np.zeros(0), "x": np.zeros(0),
             "score": np.zeros(0)}
    cols, ids, _ = measure_image(image, np.full((3, 40, 40), -1), np.zeros((1, 3, 40, 40)),
                                 peaks, ["F160W"], noise_sigma=1.0)
    assert all(len(v) == 0 for v in cols.values()) and (ids == -1).all()


def test_noise_does_not_widen_the_ellipse():
    """Shapes come from the light inside the isophotal radius: a noisy source measures as its
    noiseless self would. (Over the whole footprint, a Gaussian of σ = 2.5 px at S/N ~ 40
    came out 45% too large.)"""
    shape = (64, 64)
    ids = np.zeros((3, *shape), np.int64)
    frac = np.zeros((1, 3, *shape))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([32.0]), "x": np.array([31.0]),
             "score": np.array([1.0])}
    yy, xx = np.mgrid[0:64, 0:64]
    clean = 100.0 / (2 * np.pi * 1.5 * 3.0) * np.exp(
        -0.5 * (((yy - 32) / 1.5) ** 2 + ((xx - 31) / 3.0) ** 2))[None]
    rng = np.random.default_rng(0)
    for noise in (0.1, 0.3):
        ref, _, _ = measure_image(clean, ids, frac, peaks, ["F160W"], noise_sigma=noise)
        axes = []
        for _ in range(30):
            noisy = clean + rng.normal(0.0, noise, clean.shape)
            col, _, _ = measure_image(noisy, ids, frac, peaks, ["F160W"], noise_sigma=noise)
            axes.append((col["a"][0], col["b"][0], col["theta"][0]))
        a, b, theta = np.median(axes, axis=0)
        # the positive part of the noise still adds a little: most to the short axis
        assert a == pytest.approx(ref["a"][0], rel=0.05)
        assert b == pytest.approx(ref["b"][0], rel=0.1)
        assert abs(theta) < 5.0  # the major axis along x
        assert ref["a"][0] > 1.3 * ref["b"][0]


def test_no_ellipse_without_positive_light():
    shape = (32, 32)
    ids = np.zeros((3, *shape), np.int64)
    frac = np.zeros((1, 3, *shape))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0]), "y": np.array([16.0]), "x": np.array([16.0]),
             "score": np.array([1.0])}
    image = -np.ones((1, *shape))
    col, _, _ = measure_image(image, ids, frac, peaks, ["F160W"], noise_sigma=1.0)
    assert np.isnan(col["a"][0]) and np.isnan(col["b"][0]) and np.isnan(col["theta"][0])


def test_a_shape_is_given_only_where_the_light_defines_one():
    """A source whose isophote holds two pixels has no ellipse (NaN, flag 8); a resolved one
    has an angle in (−90°, 90°]."""
    from mosaic_pais.runtime.measure import FLAG_NO_SHAPE

    shape = (32, 32)
    image = np.zeros((1, *shape))
    image[0, 10, 10:12] = 50.0  # two pixels in a row: a = 0.5 px, b = 0
    src = gaussian_sources([[22.0, 20.0]], shape, 2.0, 400.0)[0]
    image += src
    ids = np.full((3, *shape), -1, np.int64)
    ids[0] = np.where(np.arange(shape[0])[:, None] < 16, 0, 1)
    frac = np.zeros((1, 3, *shape))
    frac[0, 0] = 1.0
    peaks = {"id": np.array([0, 1]), "y": np.array([10.0, 22.0]), "x": np.array([10.5, 20.0]),
             "score": np.array([1.0, 1.0])}
    col, _, _ = measure_image(image, ids, frac, peaks, ["F160W"], noise_sigma=1.0)
    assert np.isnan([col["a"][0], col["b"][0], col["theta"][0]]).all()
    assert col["flags"][0] & FLAG_NO_SHAPE and not col["flags"][1] & FLAG_NO_SHAPE
    assert np.isfinite(col["a"][1]) and -90 < col["theta"][1] <= 90


def test_sharing_counts_only_light_another_source_holds():
    """The sharing part of ``flux_err`` sums f · f_others · I: a pixel split with a neighbour
    counts, a share dropped beyond every footprint or a source held in two slots does not."""
    image = np.full((1, 1, 3), 10.0)
    ids = np.array([[[0, 0, 0]], [[1, -1, 0]], [[-1, -1, -1]]], np.int64)  # (slot, y, x)
    frac = np.zeros((1, 3, 1, 3))
    frac[0, 0] = 0.6  # slot 0: source 0 everywhere
    frac[0, 1, 0, 0] = 0.4  # a neighbour holds the rest of the first pixel
    frac[0, 1, 0, 2] = 0.4  # source 0 again, in a second slot
    part = measure_region(image, ids, frac, np.array([0.0, 0.0]), np.array([0.0, 5.0]),
                          (0, 0), (1, 3))
    by_id = dict(zip(part["id"].tolist(), part["sharing"][0].tolist(), strict=True))
    assert by_id[0] == pytest.approx(0.6 * 0.4 * 10.0)  # only the first pixel is shared
    assert by_id[1] == pytest.approx(0.4 * 0.6 * 10.0)
