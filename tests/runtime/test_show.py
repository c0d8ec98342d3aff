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


def test_show_region_and_overview_from_the_stores(tiny_run, tmp_path):
    """``show --region`` draws that part at native resolution (reading it alone), ``--ra
    --dec`` the same about a sky position, ``--overview`` from the stored preview."""
    from mosaic_pais.runtime.show import read_preview

    _, out, table = tiny_run
    preview, factor = read_preview(out / "pcr.zarr")
    assert factor == 1 and preview.shape == (333, 333)
    target = tmp_path / "region.png"
    result = CliRunner().invoke(main, ["show", str(out), "--region", "40,168,60,188",
                                       "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert _png(target).std() > 5
    inner = (table["x"] > 50) & (table["x"] < 280) & (table["y"] > 50) & (table["y"] < 280)
    row = table[inner][np.argmax(table["flux"][inner])]
    sky = CliRunner().invoke(main, ["show", str(out), "--ra", str(float(row["ra"])),
                                    "--dec", str(float(row["dec"])), "--size", "64"])
    assert sky.exit_code == 0, sky.output
    again = CliRunner().invoke(main, ["show", str(out), "--overview"])
    assert again.exit_code == 0 and (out / "show_overview.png").exists()
    for bad in (["--region", "10,5,0,20"], ["--region", "a,b"], ["--ra", "1.0"],
                ["--region", "5000,5100,0,20"]):
        refused = CliRunner().invoke(main, ["show", str(out), *bad])
        assert refused.exit_code == 2 and refused.output.count("\n") == 1, (bad, refused.output)


def _axes_pixels(fig, ax) -> np.ndarray:
    """The grey levels drawn inside ``ax`` (rows from the top)."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba(), float)
    box = ax.get_window_extent()
    height = rgba.shape[0]
    cut = rgba[int(height - box.y1) + 2:int(height - box.y0) - 2, int(box.x0) + 2:int(box.x1) - 2]
    return cut[..., :3].mean(-1)


def _block_mean(image: np.ndarray, n: int) -> np.ndarray:
    h, w = image.shape
    ys = np.linspace(0, h, n + 1).astype(int)
    xs = np.linspace(0, w, n + 1).astype(int)
    return np.array([[image[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean() for j in range(n)]
                     for i in range(n)])


def test_overview_of_a_survey_size_mosaic_shows_the_image():
    """A 24,576² mosaic with 150,000 sources (the preview 2,048², each pixel 12² mosaic
    pixels): the sources are too many to draw one by one, so the picture shows the image
    under a density layer, and what is drawn follows the image (a bright band of galaxies
    and an empty corner), not a carpet of markers."""
    from astropy.table import Table

    from mosaic_pais.runtime.overview import overview_figure, separable
    from mosaic_pais.sim.scenes import tan_wcs

    rng = np.random.default_rng(3)
    factor, side = 12, 2048
    yy, xx = np.mgrid[:side, :side]
    preview = rng.normal(0, 1 / factor, (side, side))
    preview += 3.0 * np.exp(-((yy - 0.6 * side) / (0.08 * side)) ** 2)  # a bright band
    preview[: side // 4, : side // 4] = np.nan  # no data in a corner
    n = 150_000
    catalog = Table({"x": rng.uniform(0, side * factor, n), "y": rng.uniform(0, side * factor, n),
                     "a": np.full(n, 2.0), "b": np.full(n, 1.5), "theta": np.zeros(n),
                     "kron_radius": np.full(n, 6.0), "flux": np.ones(n),
                     "blend_fraction": np.zeros(n), "flags": np.zeros(n, int)})
    assert not separable(catalog, (side * factor, side * factor))
    wcs = tan_wcs(side * factor, side * factor).to_header_string()
    fig = overview_figure(preview, factor, catalog, sigma=1.0, wcs_header=wcs)
    drawn = _axes_pixels(fig, fig.axes[0])
    # rows from the top in the picture, from the bottom in the preview (origin lower)
    expected = _block_mean(np.nan_to_num(np.arcsinh(preview * factor / 3))[::-1], 32)
    seen = _block_mean(drawn, 32)
    correlation = np.corrcoef(expected.ravel(), seen.ravel())[0, 1]
    assert correlation < -0.6, correlation  # grey_r: bright sky is drawn dark
    assert seen.std() > 10  # not a uniform carpet
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == []
    assert "RA" in fig.axes[0].coords[0].get_axislabel()
