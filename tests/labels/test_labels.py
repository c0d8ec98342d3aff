"""``mosaic-pais labels`` on a small real cutout (GOODS-S 1903, F160W) and fine-tuning on it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from mosaic_pais.cli import main
from mosaic_pais.labels.scarlet import LabelConfig, make_labels, tile_origins
from mosaic_pais.training.dataset import load_split

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
PSF = os.path.join(DATA, "tinytim_f160w_psf.fits")
# three catalogue sources of cutout 1903 near its centre, already aligned to the image
SOURCES_YX = [(124.0, 126.0), (87.0, 133.0), (111.0, 201.0)]


@pytest.fixture(scope="module")
def cutout(tmp_path_factory):
    """A 128×160 crop of the real F160W cutout: two 128-px tiles (x origins 0 and 32)."""
    folder = tmp_path_factory.mktemp("cut")
    image = np.load(os.path.join(DATA, "pcr_1903_f160w.npz"))["image"].astype(np.float32)
    y0, x0 = 60, 60  # the third source lies beyond the first tile, within its margin
    crop = image[y0:y0 + 128, x0:x0 + 160]
    path = folder / "f160w.fits"
    fits.PrimaryHDU(crop).writeto(path)
    cat = folder / "cat.csv"
    yx = np.asarray(SOURCES_YX) - [y0, x0]
    Table({"x": yx[:, 1], "y": yx[:, 0]}).write(cat)
    return {"image": path, "catalog": cat, "folder": folder}


def _cli(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def labelled(cutout, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    result = _cli(["labels", cutout["image"], "--catalog", cutout["catalog"], "--psf", PSF,
                   "--output", out, "--pixel-scale", "0.06", "--tile", "128", "--margin", "16",
                   "--max-iter", "3", "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_labels_written_and_readable(labelled):
    data = load_split(labelled / "train")
    n = len(tile_origins(128, 160, 128, 128))
    assert data["image"].shape == (n, 1, 128, 128)
    assert data["vectors"].shape == (n, 128, 128, 3, 2)
    assert data["fractions"].shape == (n, 128, 128, 1, 3)
    np.testing.assert_allclose(data["fractions"].astype(np.float32).sum(-1), 1.0, atol=2e-3)
    assert data["center"].max() > 0.99  # a centre-map peak at each catalogued source
    report = json.loads((labelled / "labels_train.json").read_text())
    assert report["n_labelled"] == n and report["n_failed"] == 0
    # the TinyTim PSF is at 0.13″/px: resampled to the image's 0.06″/px
    assert report["psfs"][0]["resampled"] and report["psfs"][0]["final_shape"][0] > 27
    # sources centred outside a tile but inside its margin are modelled there too
    assert any(t["n_modelled"] > t["n_in_tile"] for t in report["tiles"])


def test_failed_fit_is_flagged_and_the_batch_goes_on(cutout, tmp_path, monkeypatch):
    import mosaic_pais.labels.scarlet as labels

    real_fit = labels.fit_scene
    calls = []

    def flaky(data, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("forced failure")
        return real_fit(data, *args, **kwargs)

    monkeypatch.setattr(labels, "fit_scene", flaky)
    cfg = LabelConfig(tile=128, margin=16, max_iter=2, workers=1, pixel_scale=0.06)
    report = make_labels([cutout["image"]], cutout["catalog"], [PSF], tmp_path, config=cfg,
                         progress=False)
    assert report["n_failed"] == 1 and "forced failure" in report["failed"][0]["error"]
    assert report["n_labelled"] == report["n_tiles"] - 1 >= 1
    assert len(load_split(tmp_path / "train")["image"]) == report["n_labelled"]


@pytest.mark.parametrize("rows, reason", [
    ({"a": [1.0], "b": [2.0]}, "no position columns"),
    ({"x": [500.0, -90.0], "y": [10.0, 10.0]}, "none of its 2 sources lies on"),
])
def test_bad_catalogue_exits_2_with_one_line(cutout, tmp_path, rows, reason):
    cat = tmp_path / "bad.csv"
    Table(rows).write(cat)
    result = _cli(["labels", cutout["image"], "--catalog", cat, "--psf", PSF, "--output",
                   tmp_path / "out", "--pixel-scale", "0.06", "--quiet"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0]


def test_psf_scale_without_image_scale_is_refused(cutout, tmp_path):
    result = _cli(["labels", cutout["image"], "--catalog", cutout["catalog"], "--psf", PSF,
                   "--output", tmp_path / "out", "--quiet"])
    assert result.exit_code == 2 and "--pixel-scale" in result.output


def test_fine_tune_from_a_model_on_real_labels(labelled, tmp_path):
    import keras

    from mosaic_pais.nn.model import build_pais_model, load_model

    keras.utils.set_random_seed(1)
    start = tmp_path / "start.keras"
    build_pais_model(filters=(4, 8, 8, 8, 8)).save(start)
    run = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"batch": 2, "checkpoint_minutes": 60}))  # one cheap step
    result = _cli(["train", "--data", labelled, "--output", run, "--from", start, "--steps",
                   "1", "--config", config])
    assert result.exit_code == 0, result.output
    model = load_model(run / "model.keras")
    assert model.inputs[0].shape[-1] == 2  # one band + the validity channel


def test_alignment_reads_windows_of_a_lazy_image_and_finds_the_shift():
    import dask.array as da

    from mosaic_pais.labels.scarlet import measure_alignment

    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (2, 300, 260))
    yy, xx = np.mgrid[0:300, 0:260]
    centers = rng.uniform([0, 0], [300, 260], (60, 2))
    for cy, cx in centers:  # every source 1 px below and 1 px left of its catalogue position
        image += 30 * np.exp(-((yy - cy - 1) ** 2 + (xx - cx + 1) ** 2) / 6)[None]
    whole = measure_alignment(image, centers, np.ones(2))
    assert whole["median_dy_dx"] == pytest.approx([1.0, -1.0], abs=0.5) and whole["misaligned"]
    lazy = measure_alignment(da.from_array(image, chunks=70), centers, np.ones(2))
    assert lazy == whole  # the same windows, filtered the same way, as in memory
