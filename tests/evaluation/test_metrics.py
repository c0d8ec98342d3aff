"""Metrics on hand-made cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from mosaic_pais.cli import main
from mosaic_pais.errors import BadInputError
from mosaic_pais.evaluation.metrics import (
    encoding_efficacy,
    evaluate,
    evaluate_files,
    flux_errors_on_common_sources,
    flux_stats,
    match_catalogs,
)
from tests.conftest import gaussian_sources


def _truth(n=4):
    return Table({"x": np.arange(n) * 10.0, "y": np.zeros(n), "flux": np.full(n, 10.0),
                  "mag": np.array([20.0, 24.0, 26.0, 27.5])[:n],
                  "blendedness": np.array([0.0, 0.05, 0.2, 0.5])[:n],
                  "in_frame": np.ones(n, bool)})


def test_perfect_catalogue():
    truth = _truth()
    r = evaluate(Table({"x": truth["x"], "y": truth["y"], "flux": truth["flux"]}), truth)
    assert r["completeness"] == r["purity"] == r["f1"] == 1.0
    assert r["flux"]["median_abs"] == 0.0 and r["flux"]["bias"] == 0.0


def test_detection_beyond_radius_is_unmatched():
    truth = _truth(1)
    r = evaluate(Table({"x": [3.5], "y": [0.0], "flux": [10.0]}), truth, radius=3.0)
    assert r["completeness"] == 0.0 and r["purity"] == 0.0


def test_one_to_one_and_global_assignment():
    d, t = match_catalogs([[0, 0.5], [0, 0.8]], [[0, 0.0]], radius=3)
    assert len(d) == 1 and d[0] == 0
    # greedy would pair detection 0 with truth 0 (0.9 px) and leave truth 1 (2.6 px away) out
    d, t = match_catalogs([[0, 1.0], [0, 3.5]], [[0, 0.0], [0, 1.9]], radius=2.5)
    assert sorted(zip(d.tolist(), t.tolist(), strict=True)) == [(0, 0), (1, 1)]


def test_mag_limit_counts_faint_detections_as_genuine():
    truth = _truth()
    cat = Table({"x": truth["x"], "y": truth["y"], "flux": truth["flux"]})
    r = evaluate(cat[[0, 3]], truth, mag_limit=27.0)
    assert r["n_truth_counted"] == 3
    assert r["completeness"] == pytest.approx(1 / 3)
    assert r["purity"] == 1.0  # the detection of the 27.5 mag source is not a false positive


def test_flux_statistics_exact():
    s = flux_stats([-0.2, 0.0, 0.1, 0.3, 0.9])
    assert s["median_abs"] == pytest.approx(0.2)
    assert s["bias"] == pytest.approx(0.1)
    assert s["nmad"] == pytest.approx(1.4826 * 0.2)
    assert s["outlier_fraction"] == pytest.approx(0.2)


def test_blended_bins():
    truth = _truth()
    cat = Table({"x": truth["x"], "y": truth["y"], "flux": truth["flux"] * [1, 1, 1.5, 2]})
    r = evaluate(cat, truth)
    assert r["flux_blended"]["n"] == 2 and r["flux_blended"]["median_abs"] == pytest.approx(0.75)
    assert r["flux_isolated"]["median_abs"] == 0.0
    assert [row["n_truth"] for row in r["by_blendedness"]] == [1, 1, 1, 1]


def test_snr_bins():
    truth = _truth()
    truth["snr"] = [3.0, 12.0, 60.0, 7.0]
    cat = Table({"x": truth["x"][1:], "y": truth["y"][1:], "flux": truth["flux"][1:]})
    r = evaluate(cat, truth)
    assert [row["n_truth"] for row in r["by_snr"]] == [1, 1, 1, 0, 1]
    assert [row["completeness"] for row in r["by_snr"]] == [0.0, 1.0, 1.0, None, 1.0]
    assert "by_snr" not in evaluate(cat, _truth())


def test_snr_cut_counts_only_sources_above_it_and_keeps_purity_over_all():
    truth = _truth()
    truth["snr"] = [3.0, 12.0, 60.0, 7.0]
    cat = Table({"x": truth["x"][[0, 2]], "y": truth["y"][[0, 2]], "flux": truth["flux"][[0, 2]]})
    r = evaluate(cat, truth, snr_min=10.0)
    assert r["n_truth_counted"] == 2 and r["completeness"] == 0.5
    assert r["purity"] == 1.0  # the S/N 3 source's detection is not a false positive
    assert r["parameters"]["snr_min"] == 10.0
    with pytest.raises(ValueError, match="snr"):
        evaluate(cat, _truth(), snr_min=10.0)


def test_empty_inputs():
    d, t = match_catalogs(np.zeros((0, 2)), [[1, 1]])
    assert len(d) == len(t) == 0
    r = evaluate(Table({"x": [], "y": [], "flux": []}), _truth())
    assert r["completeness"] == 0.0 and r["purity"] is None


def test_large_random_matching_is_consistent(rng):
    truth = rng.uniform(0, 3000, (20000, 2))
    det = truth + rng.normal(0, 0.5, truth.shape)
    perm = rng.permutation(len(det))
    d, t = match_catalogs(det[perm], truth, radius=3)
    assert len(d) > 0.99 * len(truth)
    # shuffled detection d is truth perm[d], except where two noisy pairs swap optimally
    assert np.mean(perm[d] == t) > 0.99


def test_encoding_efficacy_identical_and_different():
    src = gaussian_sources([[20.0, 20.0]], (41, 41), 3.0, 10.0)[:, 0]
    same = encoding_efficacy(src, src, [(20.0, 20.0)])
    assert same["flux_abs_error"]["mean"] == 0.0 and same["ks_pvalue"]["mean"] == 1.0
    # the same flux moved into a ring at the edge of r90: the profiles differ grossly
    yy, xx = np.mgrid[0:41, 0:41]
    ring = np.where(np.abs(np.hypot(yy - 20, xx - 20) - 6.0) < 0.7, 1.0, 0.0)[None]
    ring *= src.sum() / ring.sum()
    diff = encoding_efficacy(src, ring, [(20.0, 20.0)])
    assert diff["ks_pvalue"]["mean"] < 0.1 < same["ks_pvalue"]["mean"]


def test_files_and_cli(tmp_path):
    truth = _truth()
    truth.write(tmp_path / "truth.fits")
    Table({"x": truth["x"], "y": truth["y"], "flux": truth["flux"]}).write(tmp_path / "cat.fits")
    assert evaluate_files(tmp_path / "cat.fits", tmp_path / "truth.fits")["f1"] == 1.0
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "cat.fits"),
                                       str(tmp_path / "truth.fits")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "evaluation.json").read_text())["f1"] == 1.0
    Table({"x": [1.0], "y": [2.0]}).write(tmp_path / "bad.fits")
    with pytest.raises(BadInputError, match="flux"):
        evaluate_files(tmp_path / "bad.fits", tmp_path / "truth.fits")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "bad.fits"),
                                       str(tmp_path / "truth.fits")])
    assert result.exit_code == 2
    assert "missing column(s) flux" in result.output
    assert "Traceback" not in result.output


def test_flux_errors_on_common_sources_use_one_sample():
    """A method that also recovers a hard, badly measured source is not penalised for it: the
    common sample holds only the truths every method recovers, blended ones apart."""
    truth = Table({"x": [10.0, 30.0, 50.0, 70.0], "y": [10.0] * 4,
                   "flux": [100.0, 100.0, 100.0, 10.0], "blendedness": [0.0, 0.5, 0.5, 0.9],
                   "in_frame": [True, True, True, True], "mag": [22.0, 22.0, 22.0, 28.0]})
    wide = Table({"x": [10.0, 30.0, 50.0, 70.0], "y": [10.0] * 4,
                  "flux": [110.0, 120.0, 300.0, 10.0]})  # also finds the hard one, at 50
    narrow = Table({"x": [10.0, 30.0], "y": [10.0, 10.0], "flux": [105.0, 90.0]})
    r = flux_errors_on_common_sources({"wide": wide, "narrow": narrow}, truth, mag_limit=27.0)
    assert r["n_common"] == 2  # the source at 70 is too faint to count, the one at 50 is lost
    assert r["wide"]["blended"]["n"] == r["narrow"]["blended"]["n"] == 1
    assert r["wide"]["blended"]["median_abs"] == pytest.approx(0.2)
    assert r["narrow"]["blended"]["median_abs"] == pytest.approx(0.1)
    assert r["wide"]["all"]["median_abs"] == pytest.approx(0.15)
