"""Bad input gives exit status 2 and one line, or runs correctly; never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mosaic_pais.cli import main
from mosaic_pais.sim.scenes import tan_wcs


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import keras

    from mosaic_pais.nn.model import build_pais_model

    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    build_pais_model(filters=(4, 8, 8, 8, 8)).save(path)
    return path


def _cli(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def _write(path, data, header=None):
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def test_inf_integer_and_big_endian_images_run(tmp_path, model_path):
    rng = np.random.default_rng(0)
    base = rng.normal(0, 5, (80, 90))
    base[40:44, 40:44] += 200
    cases = {"inf": np.where(base > 12, np.inf, base).astype(np.float32),
             "int": np.round(base).astype(np.int16),
             "big": base.astype(">f8")}
    for name, data in cases.items():
        path = _write(tmp_path / f"{name}.fits", data, tan_wcs(80, 90).to_header())
        result = _cli(["run", path, "--output", tmp_path / f"out_{name}", "--model", model_path,
                       "--quiet"])
        assert result.exit_code == 0, (name, result.output)


def test_weight_maps_checked(tmp_path, model_path):
    data = np.random.default_rng(1).normal(0, 1, (64, 64)).astype(np.float32)
    image = _write(tmp_path / "i.fits", data, tan_wcs(64, 64).to_header())
    wrong = _write(tmp_path / "w.fits", np.ones((10, 10), np.float32))
    negative = _write(tmp_path / "n.fits", -np.ones((64, 64), np.float32))
    for weight, word in ((wrong, "shape"), (negative, "negative")):
        result = _cli(["run", image, "--weights", weight, "--output", tmp_path / f"o{word}",
                       "--model", model_path, "--quiet"])
        assert result.exit_code == 2 and word in result.output
        assert result.output.strip().count("\n") == 0


def test_model_must_be_keras(tmp_path):
    data = np.ones((64, 64), np.float32)
    image = _write(tmp_path / "i.fits", data, tan_wcs(64, 64).to_header())
    (tmp_path / "model.h5").write_bytes(b"pickle-ish")
    result = _cli(["run", image, "--output", tmp_path / "o", "--model", tmp_path / "model.h5"])
    assert result.exit_code == 2 and ".keras" in result.output


def test_output_directory_is_not_overwritten(tmp_path, model_path):
    data = np.random.default_rng(2).normal(0, 1, (64, 64)).astype(np.float32)
    image = _write(tmp_path / "i.fits", data, tan_wcs(64, 64).to_header())
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = _cli(["run", image, "--output", out, "--model", model_path, "--quiet"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "precious.txt").read_text() == "keep me"


def test_unreadable_memory_limit_exits_2_before_writing(tmp_path, model_path):
    data = np.random.default_rng(2).normal(0, 1, (64, 64)).astype(np.float32)
    image = _write(tmp_path / "i.fits", data, tan_wcs(64, 64).to_header())
    result = _cli(["run", image, "--output", tmp_path / "o", "--model", model_path, "--cluster",
                   "--memory-limit", "lots", "--quiet"])
    assert result.exit_code == 2 and "--memory-limit" in result.output
    assert result.output.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_run_on_small_images_property(tmp_path_factory, model_path, data):
    """Any small image, NaN pattern and value range: exit 0 with a valid catalogue, or 2."""
    shape = data.draw(st.tuples(st.integers(1, 70), st.integers(1, 70)))
    values = st.one_of(st.floats(-1e3, 1e3, width=32), st.just(np.nan), st.just(np.inf),
                       st.just(0.0))
    image = data.draw(arrays(np.float32, shape, elements=values))
    folder = tmp_path_factory.mktemp("prop")
    path = _write(folder / "i.fits", image, tan_wcs(*shape).to_header())
    result = _cli(["run", path, "--output", folder / "o", "--model", model_path, "--quiet"])
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        from astropy.table import Table

        cat = Table.read(folder / "o" / "catalog.fits", mask_invalid=False)
        assert np.all((cat["x"] >= -3) & (cat["x"] <= shape[1] + 2))
        assert np.all((cat["y"] >= -3) & (cat["y"] <= shape[0] + 2))
    else:
        assert result.output.strip().count("\n") == 0


def test_run_on_a_mostly_infinite_image(tmp_path, model_path):
    """A case the property test above found: 35 finite pixels among infinities give a tiny
    noise estimate, and the overview's stretch overflowed float32 (a RuntimeWarning, exit 1)."""
    image = np.load(Path(__file__).parent / "data" / "mostly_infinite_40x21.npy")
    path = _write(tmp_path / "i.fits", image, tan_wcs(*image.shape).to_header())
    result = _cli(["run", path, "--output", tmp_path / "o", "--model", model_path, "--quiet"])
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        assert (tmp_path / "o" / "overview.png").exists()


@pytest.mark.parametrize("config,reason", [
    ('{"background_mesh": -128}', "background_mesh must be 0"),
    ('{"crop": 0, "dropout": 1.5}', "crop must be a whole number of at least 1"),
    ('{"cropp": 64}', "unknown key(s) cropp"),
    ('{"crop": ', "cannot read training configuration"),
])
def test_bad_training_configuration_exits_2_before_simulating(tmp_path, config, reason):
    """Checked before any training tile is simulated, so a typo costs nothing."""
    path = tmp_path / "config.json"
    path.write_text(config)
    result = _cli(["train", "--data", tmp_path / "data", "--output", tmp_path / "run",
                   "--config", path, "--simulate-tiles", 5])
    assert result.exit_code == 2
    assert reason in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_unreadable_psf_exits_2_before_writing(tmp_path, model_path):
    data = np.random.default_rng(3).normal(0, 1, (64, 64)).astype(np.float32)
    image = _write(tmp_path / "i.fits", data, tan_wcs(64, 64).to_header())
    (tmp_path / "psf.fits").write_text("not a FITS file")
    result = _cli(["run", image, "--output", tmp_path / "o", "--model", model_path,
                   "--psf", tmp_path / "psf.fits", "--quiet"])
    assert result.exit_code == 2 and "PSF" in result.output
    assert result.output.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("command", "extra"), [
    (["simulate", "--output", "{tmp}/sim", "--size", "64"], "sim"),
    (["demo", "--output", "{tmp}/demo"], "sim"),
    (["train", "--data", "{tmp}/data", "--output", "{tmp}/train"], "train"),
])
def test_a_missing_extra_is_named_in_one_line(tmp_path, monkeypatch, command, extra):
    """As in an install without the extra: GalSim not found."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "galsim" else real(name, *a))
    result = _cli([arg.format(tmp=tmp_path) for arg in command])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert f"pip install 'mosaic-pais[{extra}]'" in result.output and "galsim" in result.output
    assert not any(tmp_path.iterdir())
