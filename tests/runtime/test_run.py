"""The whole run on small mosaics: contracts, the same answer every way, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from mosaic_pais.cli import main
from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import simulate_mosaic, tan_wcs

CATALOG_COLUMNS = ["id", "x", "y", "ra", "dec", "flux", "flux_err", "r50", "r90", "a", "b",
                   "theta", "npix", "blend_fraction", "score", "flags"]


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate_mosaic(out, size=333, seed=7, block=128)
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """The shipped model when present; the plumbing does not depend on its quality."""
    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, build_pais_model

    if DEFAULT_MODEL_PATH.exists():
        return DEFAULT_MODEL_PATH
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_pais_model(filters=(4, 8, 8, 8, 8)).save(path)
    return path


def _run(mosaic, out, model_path, **kwargs):
    kwargs.setdefault("threshold", 0.3)
    return run([mosaic / "mosaic.fits"], out, model=model_path, progress=False, **kwargs)


@pytest.fixture(scope="module")
def reference(mosaic, model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    table, pcr = _run(mosaic, out, model_path, tiles_per_block=1)
    return out, table, pcr


@pytest.fixture(scope="module")
def together(mosaic, model_path, tmp_path_factory):
    """The default blocks and network windows: one block, whose 2 × 2 tiles are one window."""
    out = tmp_path_factory.mktemp("together")
    table, _ = _run(mosaic, out, model_path)
    return out, table


def test_outputs_follow_the_contract(reference):
    out, table, pcr = reference
    for name in ("catalog.fits", "catalog.parquet", "pcr.zarr", "segmentation.fits",
                 "overview.png", "run.json"):
        assert (out / name).exists(), name
    assert not (out / "work").exists()
    cat = Table.read(out / "catalog.fits", mask_invalid=False)
    for column in CATALOG_COLUMNS + ["flux_F160W"]:
        assert column in cat.colnames, column
    assert cat["id"].dtype.kind == "i" and cat["id"].dtype.itemsize == 8
    assert len(np.unique(cat["id"])) == len(cat)
    assert np.isfinite(cat["ra"]).all() and np.isfinite(cat["dec"]).all()
    # without a weight map the errors come from the measured noise: positive, and at least
    # the pixel noise over each source's pixels (σ·sqrt(npix)·texture is the most it can be
    # without the sharing and estimator terms; Σf² ≤ npix)
    assert np.isfinite(cat["flux_err"]).all() and (cat["flux_err"] > 0).all()
    sigma = json.loads((out / "run.json").read_text())["parameters"]["noise_sigma"][0]
    assert (cat["flux_err"] >= 0.5 * sigma).all()
    assert np.all(cat["flux_err_F160W"] == cat["flux_err"])
    assert set(pcr.data_vars) >= {"center", "ids", "fractions"}
    assert pcr["ids"].dims == ("slot", "y", "x") and pcr["ids"].dtype == np.int64
    assert pcr["fractions"].dims == ("band", "slot", "y", "x")
    provenance = json.loads((out / "run.json").read_text())
    assert len(provenance["model"]["sha256"]) == 64
    assert provenance["n_sources"] == len(cat)


def test_catalogue_units_magnitudes_and_metadata(reference):
    """Read back by astropy and by pyarrow: every dimensional column with its unit, AB
    magnitudes from the header's zero point, and what made the catalogue."""
    import astropy.units as u
    import pyarrow.parquet as pq

    out, _, _ = reference
    cat = Table.read(out / "catalog.fits")
    assert cat["flux"].unit == u.electron / u.s == cat["flux_err"].unit
    assert cat["x"].unit == u.pix and cat["r50"].unit == u.pix
    assert cat["ra"].unit == u.deg and cat["theta"].unit == u.deg
    assert cat["score"].unit is None and cat["blend_fraction"].unit is None
    good = cat["flux"] > 0
    np.testing.assert_allclose(cat["mag"][good], 25.94 - 2.5 * np.log10(cat["flux"][good]),
                               atol=1e-9)
    np.testing.assert_allclose(cat["mag_err"][good],
                               1.0857362 * cat["flux_err"][good] / cat["flux"][good], rtol=1e-6)
    assert cat.meta["MAGZSRC"] == "ZEROPNT" and cat.meta["MPVERS"]
    assert len(cat.meta["MODELSHA"]) == 64 and "counter-clockwise" in cat.meta["THETA"]
    schema = pq.read_schema(out / "catalog.parquet")
    assert schema.field("flux").metadata[b"unit"] == b"electron / s"
    assert schema.field("x").metadata[b"unit"] == b"pix"
    assert schema.metadata[b"MAGSYS"] == b"AB"


def test_segmentation_map_labels_pixels_by_catalogue_id(reference, mosaic):
    """segmentation.fits: int32 on the input's WCS, each pixel the catalogue id of the source
    holding its largest fraction (0: sky), as photutils reads segmentation maps."""
    from astropy.wcs import WCS
    from photutils.segmentation import SegmentationImage

    from mosaic_pais.runtime.segmentation import owner_labels

    out, table, pcr = reference
    with fits.open(out / "segmentation.fits") as hdul:
        labels, header = hdul[0].data, hdul[0].header
    assert labels.dtype.kind == "i" and labels.dtype.itemsize == 4
    assert labels.shape == pcr["ids"].shape[1:]
    np.testing.assert_array_equal(labels, owner_labels(pcr["ids"].values,
                                                       pcr["fractions"].values[0]))
    segments = SegmentationImage(labels)
    assert set(segments.labels) <= set(np.asarray(table["id"]))
    assert table["id"].min() >= 1 and (labels == 0).any()
    # a source's own pixel is its own
    x, y = np.round(table["x"]).astype(int), np.round(table["y"]).astype(int)
    inside = (x >= 0) & (y >= 0) & (y < labels.shape[0]) & (x < labels.shape[1])
    assert np.mean(labels[y[inside], x[inside]] == np.asarray(table["id"])[inside]) > 0.9
    sky = WCS(fits.getheader(mosaic / "mosaic.fits")).celestial
    np.testing.assert_allclose(WCS(header).celestial.wcs.crval, sky.wcs.crval)
    np.testing.assert_allclose(WCS(header).celestial.wcs.crpix, sky.wcs.crpix)


def test_flux_is_conserved(reference, mosaic):
    from mosaic_pais.runtime.background import SkyMap

    out, table, pcr = reference
    image = fits.getdata(mosaic / "mosaic.fits").astype(np.float64)
    # the run measures the image with its sky subtracted (the map is in run.json)
    sky = SkyMap.from_json(json.loads((out / "run.json").read_text())["background"])
    image = image - sky.window((0, image.shape[0], 0, image.shape[1]))[0]
    ids = pcr["ids"].values
    fractions = pcr["fractions"].values[0].astype(np.float64)
    share = np.where(ids >= 0, fractions, 0).sum(0)  # each pixel's share held by sources
    # the footprint sums add up to the claimed image flux; the total fluxes are them divided
    # by the share of light each footprint holds under the model's PSF
    assert table["flux_aper"].sum() == pytest.approx((image * share).sum(), rel=1e-4)
    np.testing.assert_allclose(table["flux"], table["flux_aper"] * table["aperture_correction"])
    assert np.all(table["aperture_correction"] >= 1)
    assert share.max() <= 1 + 1e-5
    # every pixel is claimed whole or in part unless it lies beyond every footprint
    assert 0.05 < (share > 0).mean() < 1


def test_block_size_does_not_change_the_catalogue(reference, mosaic, model_path, tmp_path):
    _, table, _ = reference
    # one tile per block reads tiles on their own (tile.window_tiles); so must three
    other, _ = _run(mosaic, tmp_path / "b", model_path, tiles_per_block=3, tiles_per_window=1)
    _assert_same(table, other)


def test_another_margin_reads_the_same_context_and_finds_the_same_sources(reference, mosaic,
                                                                          model_path, tmp_path):
    """Margin 48 reads 288² windows (the network's lattice); the attention context is still
    averaged over 256² windows, so only the pixels near the tiles' borders see another input,
    and the catalogue hardly moves."""
    out, table, _ = reference
    other, _ = _run(mosaic, tmp_path / "m48", model_path, margin=48)
    params = [json.loads((d / "run.json").read_text())["parameters"]
              for d in (out, tmp_path / "m48")]
    assert params[1]["tile_window"] == 288
    assert params[0]["context_window"] == params[1]["context_window"] == 256
    # every source of the reference has a counterpart within 0.5 px, bar the odd one at the
    # threshold, and the counts agree as closely
    d = np.hypot(np.asarray(table["x"])[:, None] - np.asarray(other["x"])[None],
                 np.asarray(table["y"])[:, None] - np.asarray(other["y"])[None])
    assert (d.min(1) < 0.5).mean() >= 0.95
    assert abs(len(other) - len(table)) <= max(2, 0.05 * len(table))


def test_tiles_read_together_find_the_same_sources_as_tiles_read_apart(together, mosaic,
                                                                         model_path, tmp_path):
    """By default the network reads groups of tiles as one window (their cores see each
    other's pixels instead of zeros beyond each tile's border); read one by one, the tiles
    give the same sources but for the odd one at the threshold."""
    out, table = together
    apart, _ = _run(mosaic, tmp_path / "apart", model_path, tiles_per_window=1)
    small, _ = _run(mosaic, tmp_path / "small", model_path, tiles_per_block=1)
    params = [json.loads((d / "run.json").read_text())["parameters"]
              for d in (out, tmp_path / "apart", tmp_path / "small")]
    # windows never span blocks: one tile per block reads every tile on its own
    assert [p["tiles_per_window"] for p in params] == [8, 1, 1]
    _assert_same(apart, small)
    d = np.hypot(np.asarray(table["x"])[:, None] - np.asarray(apart["x"])[None],
                 np.asarray(table["y"])[:, None] - np.asarray(apart["y"])[None])
    assert (d.min(1) < 0.5).mean() >= 0.95
    assert abs(len(apart) - len(table)) <= max(2, 0.05 * len(table))


def test_default_threshold_follows_the_noise_texture(reference, mosaic, model_path, tmp_path):
    """Without --threshold, the card's threshold for the mosaic's measured noise texture; the
    run records both, and the catalogue is the one that threshold gives."""
    from mosaic_pais.nn.model import detection_threshold, model_metadata
    from mosaic_pais.runtime.background import SkyMap
    from mosaic_pais.runtime.infer import estimate_noise
    from mosaic_pais.runtime.open import open_mosaic
    from mosaic_pais.runtime.tile import WindowReader

    table, _ = run([mosaic / "mosaic.fits"], tmp_path / "d", model=model_path, progress=False,
                   tiles_per_block=3)
    provenance = json.loads((tmp_path / "d" / "run.json").read_text())
    parameters = provenance["parameters"]
    # measured as the run reads the image: with its sky subtracted
    image = WindowReader(open_mosaic([mosaic / "mosaic.fits"])["image"].data,
                         SkyMap.from_json(provenance["background"]))
    texture = float(estimate_noise(image)[1][0])
    assert parameters["noise_texture"] == pytest.approx(texture)
    assert 1.5 < texture < 2.0  # the simulator's drizzle-like noise
    assert parameters["threshold"] == detection_threshold(model_metadata(model_path), texture)
    explicit, _ = _run(mosaic, tmp_path / "e", model_path, tiles_per_block=3,
                       threshold=parameters["threshold"])
    _assert_same(table, explicit)


def test_shipped_model_finds_the_simulated_sources(tmp_path):
    """The real model with its card's settings (threshold by noise texture, matched-filter
    peaks) on a simulated mosaic it never saw: a floor well below the benchmarked F1 (0.83 at
    this depth and texture, docs/benchmarks.md), so that a broken decoder or card fails here."""
    from mosaic_pais.evaluation.metrics import evaluate
    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, model_metadata

    simulate_mosaic(tmp_path / "sim", size=1024, seed=23, block=256)
    table, _ = run([tmp_path / "sim" / "mosaic.fits"], tmp_path / "run", progress=False)
    parameters = json.loads((tmp_path / "run" / "run.json").read_text())["parameters"]
    assert parameters["peak_smoothing"] == model_metadata(DEFAULT_MODEL_PATH)["peak_smoothing_px"]
    truth = Table.read(tmp_path / "sim" / "truth.fits")
    result = evaluate(table, truth, mag_limit=27.0)
    assert result["n_truth_counted"] > 60
    assert result["f1"] > 0.7, result
    # total fluxes through the shipped PSF's curve of growth: the footprint sums alone are
    # biased low by 0.13 on such scenes (docs/benchmarks.md)
    assert parameters["psf"].endswith("pais_f160w_psf.fits")
    assert abs(result["flux"]["bias"]) < 0.07, result["flux"]


def _assert_same(a, b):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a["id"], b["id"])
    np.testing.assert_allclose(a["x"], b["x"], atol=1e-3)
    np.testing.assert_allclose(a["y"], b["y"], atol=1e-3)
    np.testing.assert_allclose(a["flux"], b["flux"], rtol=1e-5, atol=1e-9)


def test_local_cluster_two_workers(reference, together, mosaic, model_path, tmp_path):
    """Tiles read one by one in four blocks, and the default network windows, on two workers."""
    from distributed import Client, LocalCluster

    _, table, _ = reference
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        other, _ = _run(mosaic, tmp_path / "c", model_path, tiles_per_block=1, client=client)
        windows, _ = _run(mosaic, tmp_path / "w", model_path, client=client)
    _assert_same(table, other)
    _assert_same(together[1], windows)
    # what the workers' tasks spent their time on came back from both workers
    timings = json.loads((tmp_path / "c" / "run.json").read_text())["timings_s"]
    parts = timings["task_parts"]
    for part in ("sky: levels", "infer: network", "infer: Zarr writes", "stitch: peaks",
                 "stitch: vote resolution", "measure: sums", "measure: segmentation labels"):
        assert parts[part] > 0, part
    infer = sum(v for k, v in parts.items() if k.startswith("infer: "))
    assert infer <= 2 * timings["infer"] + 1.0  # two workers, one task each at a time


@pytest.mark.parametrize("inner_chunk", [None, 64])
def test_resume_recomputes_only_missing_blocks(reference, mosaic, model_path, tmp_path,
                                               monkeypatch, inner_chunk):
    """Also with the centre map in shards of inner chunks (as blocks larger than 384 px store
    it), where the corrupting write below rewrites one inner chunk of a shard."""
    from mosaic_pais.runtime import store
    from mosaic_pais.runtime.store import open_array

    if inner_chunk:
        monkeypatch.setattr(store, "INNER_CHUNK", inner_chunk)
    _, table, _ = reference
    out = tmp_path / "r"
    _run(mosaic, out, model_path, tiles_per_block=1, keep_work=True)
    center = open_array(out / "pcr.zarr", "center")
    if inner_chunk:  # blocks of one tile: 192² cores
        assert center.chunks == (64, 64) and center.shards == (192, 192)
    else:
        assert center.shards is None
    done = sorted((out / "pcr.zarr.done" / "infer").glob("*.json"))
    assert len(done) == 4
    # pretend the run died: one block never recorded, another half-written (corrupt)
    done[0].unlink()
    region = json.loads(done[1].read_text())["region"]
    open_array(out / "pcr.zarr", "center", "r+")[region[0], region[2]] = 0.123
    run_json = json.loads((out / "run.json").read_text())
    resumed, _ = _run(mosaic, out, model_path, tiles_per_block=1, resume=True)
    assert json.loads((out / "run.json").read_text())["timings_s"]["infer_blocks"] == 2
    assert run_json["timings_s"]["infer_blocks"] == 4
    _assert_same(table, resumed)


def test_vector_votes_and_vote_mode_is_part_of_a_resume(reference, mosaic, model_path,
                                                         tmp_path):
    """Claim vectors are stored only when votes use them (vector and mixed votes); a resume
    must keep the vote mode."""
    from mosaic_pais.runtime.store import open_array

    _, table, _ = reference
    out = tmp_path / "v"
    vec_table, _ = _run(mosaic, out, model_path, tiles_per_block=1, vote="vectors",
                        keep_work=True)
    assert np.isfinite(open_array(out / "work" / "vectors.zarr", "vectors")[:]).any()
    np.testing.assert_array_equal(table["id"], vec_table["id"])  # the same peaks
    flux = np.asarray(vec_table["flux"])
    np.testing.assert_allclose(flux.sum(), np.asarray(table["flux"]).sum(), rtol=0.2)
    with pytest.raises(BadInputError, match="other inputs or parameters"):
        _run(mosaic, out, model_path, tiles_per_block=1, vote="geometric", resume=True)
    geo = tmp_path / "g"
    _run(mosaic, geo, model_path, tiles_per_block=1, vote="geometric", keep_work=True)
    assert not np.isfinite(open_array(geo / "work" / "vectors.zarr", "vectors")[:]).any()
    mixed = tmp_path / "m"
    mixed_table, _ = _run(mosaic, mixed, model_path, tiles_per_block=1, vote="mixed",
                          keep_work=True)
    assert np.isfinite(open_array(mixed / "work" / "vectors.zarr", "vectors")[:]).any()
    np.testing.assert_array_equal(table["id"], mixed_table["id"])
    np.testing.assert_allclose(np.asarray(mixed_table["flux"]).sum(),
                               np.asarray(table["flux"]).sum(), rtol=0.2)


def test_refuses_to_overwrite(reference, mosaic, model_path):
    out, _, _ = reference
    with pytest.raises(BadInputError, match="--overwrite"):
        _run(mosaic, out, model_path)


def test_odd_sizes_nan_regions_and_several_bands(tmp_path, model_path):
    rng = np.random.default_rng(0)
    for shape in ((37, 51), (300, 70)):
        data = rng.normal(0, 0.005, shape).astype(np.float32)
        data[5:9, 5:40] = np.nan
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        data += (3.0 * np.exp(-((yy - 20) ** 2 + (xx - 25) ** 2) / 8)).astype(np.float32)
        path = tmp_path / f"odd{shape[0]}.fits"
        fits.PrimaryHDU(data, header=tan_wcs(*shape).to_header()).writeto(path)
        table, pcr = run([path], tmp_path / f"out{shape[0]}", model=model_path, progress=False)
        assert pcr["ids"].shape == (3, *shape)
        assert np.all(pcr["ids"].values[:, 5:9, 5:40] == -1)  # NaN pixels are claimed by none
    two = tmp_path / "two.fits"
    fits.PrimaryHDU(np.stack([data, data])).writeto(two)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BadInputError, match="band"):
            run([two], tmp_path / "two", model=model_path, progress=False)


def test_cli_bad_input_exit_2(tmp_path, model_path):
    (tmp_path / "x.fits").write_text("not fits")
    fits.PrimaryHDU(np.full((64, 64), np.nan, np.float32),
                    header=tan_wcs(64, 64).to_header()).writeto(tmp_path / "nan.fits")
    fits.PrimaryHDU(np.zeros((64, 64), np.float32),
                    header=tan_wcs(64, 64).to_header()).writeto(tmp_path / "zero.fits")
    runner = CliRunner()
    for name in ("x.fits", "nan.fits", "zero.fits", "missing.fits"):
        result = runner.invoke(main, ["run", str(tmp_path / name), "--output",
                                      str(tmp_path / f"o_{name}"), "--model", str(model_path),
                                      "--quiet"])
        assert result.exit_code == 2, (name, result.output)
        assert "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output  # one line


def test_stamps_add_up_to_the_image(reference):
    from astropy.io import fits as pyfits

    out, table, _ = reference
    brightest = int(table["id"][np.argmax(table["flux"])])
    result = CliRunner().invoke(main, ["stamps", str(out), "--ids", f"{brightest}",
                                       "--size", "41"])
    assert result.exit_code == 0, result.output
    with pyfits.open(out / "stamps" / f"stamp_{brightest}.fits") as hdul:
        deblend, image = hdul["DEBLEND"].data, hdul["IMAGE"].data
        assert deblend.shape == image.shape == (1, 41, 41) or deblend.shape[1] <= 41
        assert np.all(np.abs(deblend) <= np.abs(image) + 1e-6)
    bad = CliRunner().invoke(main, ["stamps", str(out), "--ids", "999999"])
    assert bad.exit_code == 2 and "not in" in bad.output
