"""The Python API mirrors the commands and `import mosaic_pais` stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from mosaic_pais.cli import main


def test_import_is_light():
    code = ("import sys, mosaic_pais; mosaic_pais.run; mosaic_pais.open_mosaic; "
            "mosaic_pais.simulate; mosaic_pais.evaluate; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'galsim', 'scarlet2', 'jax')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_names():
    import mosaic_pais
    from mosaic_pais.evaluation.metrics import evaluate

    assert callable(mosaic_pais.run) and callable(evaluate)
    assert callable(mosaic_pais.simulate) and callable(mosaic_pais.evaluate)
    assert callable(mosaic_pais.simulate_scene) and callable(mosaic_pais.open_mosaic)
    assert callable(mosaic_pais.simulate_mosaic) and callable(mosaic_pais.decode)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "mosaic_pais", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("run", "simulate", "evaluate", "demo", "convert", "stamps", "train"):
        assert command in out


def test_simulate_and_evaluate_stay_functions_after_submodule_imports():
    # importing a submodule sets the package attribute of that name; no submodule may be
    # called simulate or evaluate, whatever was imported before
    code = ("import importlib, inspect, pkgutil, mosaic_pais; "
            "names = [m.name for m in pkgutil.iter_modules(mosaic_pais.__path__)]; "
            "assert 'simulate' not in names and 'evaluate' not in names, names; "
            "import mosaic_pais.evaluation.metrics, mosaic_pais.sim.scenes, mosaic_pais.api; "
            "from mosaic_pais import simulate, evaluate; "
            "assert inspect.isfunction(simulate) and inspect.isfunction(evaluate); "
            "assert inspect.isfunction(mosaic_pais.simulate); "
            "assert inspect.isfunction(mosaic_pais.evaluate); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_evaluate_accepts_tables_paths_and_run_dirs(tmp_path):
    import mosaic_pais

    truth = Table({"x": [10.0, 40.0, 70.0], "y": [10.0, 20.0, 30.0], "flux": [1.0, 2.0, 4.0],
                   "mag": [25.9, 25.2, 24.4]})
    catalog = Table({"x": [10.5, 40.2], "y": [10.0, 19.5], "flux": [1.1, 1.8]})
    (tmp_path / "run").mkdir()
    catalog.write(tmp_path / "run" / "catalog.fits")
    truth.write(tmp_path / "truth.fits")
    by_table = mosaic_pais.evaluate(catalog, truth)
    by_path = mosaic_pais.evaluate(tmp_path / "run", str(tmp_path / "truth.fits"),
                                   plots=tmp_path / "plots")
    assert by_table["completeness"] == by_path["completeness"] == 2 / 3
    assert by_table["purity"] == 1.0
    assert by_path["catalog"] == str(tmp_path / "run" / "catalog.fits")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["completeness.png",
                                                                       "flux_error.png"]
    with pytest.raises(mosaic_pais.BadInputError, match="missing column"):
        mosaic_pais.evaluate(Table({"x": [1.0], "y": [1.0]}), truth)


def test_simulate_in_memory_is_the_scene_and_mosaic_is_the_command(tmp_path):
    import mosaic_pais
    from mosaic_pais.sim.scenes import simulate_scene

    ds, truth = mosaic_pais.simulate(size=(40, 56), seed=3)
    scene = simulate_scene((40, 56), seed=3)
    np.testing.assert_array_equal(ds["image"].values, scene.image)
    assert len(truth) == len(scene.truth)
    ds2, truth2 = mosaic_pais.simulate(tmp_path / "a", size=64, seed=3)
    out = CliRunner().invoke(main, ["simulate", "--output", str(tmp_path / "b"), "--size", "64",
                                    "--seed", "3"])
    assert out.exit_code == 0, out.output
    np.testing.assert_array_equal(np.asarray(ds2["image"].values)[0],
                                  fits.getdata(tmp_path / "b" / "mosaic.fits"))
    assert len(truth2) == len(Table.read(tmp_path / "b" / "truth.fits"))
    with pytest.raises(mosaic_pais.BadInputError, match="square"):
        mosaic_pais.simulate(tmp_path / "c", size=(64, 80))
