"""Pictures: ``mosaic-pais show`` and ``mosaic-pais evaluate --plots`` on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner
from PIL import Image

from mosaic_pais.cli import main
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import simulate_mosaic


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 333² simulated mosaic (dense, so that there are blends) run with the shipped model."""
    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no shipped model")
    sim = tmp_path_factory.mktemp("sim")
    simulate_mosaic(sim, size=333, seed=7, block=128, density=2.0)
    out = tmp_path_factory.mktemp("run") / "run"
    table, _ = run([sim / "mosaic.fits"], out, progress=False, tiles_per_block=2)
    assert len(table) > 5
    return sim, out, table


def _png(path):
    image = np.asarray(Image.open(path).convert("L"), float)
    return image


def test_show_draws_the_chosen_source(tiny_run, tmp_path):
    _, out, table = tiny_run
    source = int(table["id"][np.argmax(table["flux"])])
    target = tmp_path / "pictures" / "one.png"
    result = CliRunner().invoke(main, ["show", str(out), "--id", str(source),
                                       "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert str(target) in result.output
    image = _png(target)
    assert image.shape[1] > 1200 and image.shape[0] > 600  # overview + four panels
    assert image.std() > 10  # not a blank canvas


def test_show_default_source_and_output(tiny_run):
    from mosaic_pais.runtime.show import choose_source

    _, out, table = tiny_run
    chosen = choose_source(table)
    result = CliRunner().invoke(main, ["show", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / f"show_{chosen}.png").is_file()
    row = table[np.flatnonzero(table["id"] == chosen)[0]]
    blended = (table["blend_fraction"] > 0.1) & ((table["flags"] & 1) == 0)
    assert blended.any()  # a dense scene has blends
    assert row["blend_fraction"] > 0.1 and not row["flags"] & 1
    brightness = table["flux"] / (table["r50"] ** 2 + 1)
    assert brightness[table["id"] == chosen][0] == brightness[blended].max()


def test_show_bad_input(tiny_run, tmp_path):
    _, out, table = tiny_run
    missing = int(table["id"].max()) + 1000
    result = CliRunner().invoke(main, ["show", str(out), "--id", str(missing)])
    assert result.exit_code == 2
    assert f"source id {missing} is not in" in result.output
    result = CliRunner().invoke(main, ["show", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a finished mosaic-pais run" in result.output


def test_evaluate_plots(tiny_run, tmp_path):
    sim, out, table = tiny_run
    result = CliRunner().invoke(main, ["evaluate", str(out / "catalog.fits"),
                                       str(sim / "truth.fits"), "--plots", str(tmp_path / "p"),
                                       "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    for name in ("completeness.png", "flux_error.png"):
        path = tmp_path / "p" / name
        assert f"wrote {path}" in result.output
        image = _png(path)
        assert image.shape[0] > 300 and image.std() > 10


def test_plots_from_the_api_match_the_numbers(tiny_run, tmp_path):
    import mosaic_pais
    from mosaic_pais.evaluation.plots import truth_matches

    sim, out, _ = tiny_run
    truth = Table.read(sim / "truth.fits")
    catalog = Table.read(out / "catalog.fits")
    result = mosaic_pais.evaluate(out, sim / "truth.fits", plots=tmp_path)
    assert [p.rsplit("/", 1)[1] for p in result["plots"]] == ["completeness.png",
                                                             "flux_error.png"]
    # the plotted points are the evaluation's matches
    # at the magnitude limit the evaluation uses by default (H < 27)
    _, counted, matched, delta, _ = truth_matches(catalog, truth, 3.0, 27.0)
    assert (counted & matched).sum() == result["n_matched_counted"]
    assert np.median(np.abs(delta[counted & matched])) == pytest.approx(
        result["flux"]["median_abs"])
