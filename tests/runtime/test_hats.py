"""Catalogues past one mosaic: two overlapping mosaics' runs as HATS catalogues, cross-matched
by LSDB on a real two-worker Dask cluster."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner

from mosaic_pais.cli import main
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import simulate_mosaic

pytest.importorskip("lsdb")
OVERLAP = (256, 384)  # mosaic columns both cut-outs hold


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """One simulated 640² field cut into two mosaics that overlap over 128 columns (each with
    its own WCS), each run on its own."""
    sim = tmp_path_factory.mktemp("field")
    simulate_mosaic(sim, size=640, seed=11, block=128, density=1.5)
    with fits.open(sim / "mosaic.fits") as hdul:
        data, wcs = hdul[0].data, WCS(hdul[0].header)
    runs = []
    for name, (x0, x1) in (("west", (0, 384)), ("east", (256, 640))):
        path = sim / f"{name}.fits"
        fits.PrimaryHDU(data[:, x0:x1], wcs[:, x0:x1].to_header()).writeto(path)
        out = tmp_path_factory.mktemp("runs") / name
        table, _ = run([path], out, progress=False)
        runs.append((out, table, x0))
    return runs


def test_runs_become_one_hats_catalogue_that_lsdb_crossmatches(two_runs, tmp_path):
    import lsdb
    from distributed import Client, LocalCluster

    from mosaic_pais.runtime.hats import export_hats

    (west, west_table, _), (east, east_table, east_x0) = two_runs
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        export_hats([west], tmp_path / "west_hats", client=client, progress=False)
        export_hats([east], tmp_path / "east_hats", client=client, progress=False)
        export_hats([west, east], tmp_path / "field_hats", client=client, progress=False)
        both = lsdb.open_catalog(tmp_path / "field_hats").compute()
        with warnings.catch_warnings():
            # no margin cache: a pair split by a HEALPix border can be missed (the bound below
            # allows for it); LSDB says so with a warning, which this suite turns into an error
            warnings.filterwarnings("ignore", message=".*does not have a margin cache")
            matched = lsdb.open_catalog(tmp_path / "west_hats").crossmatch(
                lsdb.open_catalog(tmp_path / "east_hats"), radius_arcsec=0.2).compute()
    assert len(both) == len(west_table) + len(east_table)
    assert set(both["run"]) == {"west", "east"}
    np.testing.assert_allclose(np.sort(both.loc[both["run"] == "west", "flux"]),
                               np.sort(np.asarray(west_table["flux"])))
    # the sources in the overlap, away from both mosaics' edges, are found in both
    x = np.asarray(west_table["x"])
    inner = (x > OVERLAP[0] + 16) & (x < OVERLAP[1] - 16)
    assert inner.sum() >= 5
    assert len(matched) >= 0.8 * inner.sum()
    assert (matched["_dist_arcsec"] < 0.2).all()
    # the same source in both: its position in the east mosaic is its west one shifted
    west_x = matched["x_west_hats"].to_numpy()
    east_x = matched["x_east_hats"].to_numpy()
    assert np.median(np.abs(west_x - (east_x + east_x0))) < 0.5


def test_the_command_and_its_refusals(two_runs, tmp_path):
    (west, _, _), _ = two_runs
    result = CliRunner().invoke(main, ["hats", str(west), "--output", str(tmp_path / "h"),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(main, ["hats", str(west), "--output", str(tmp_path / "h")])
    assert again.exit_code == 2 and "exists" in again.output
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    bad = CliRunner().invoke(main, ["hats", str(not_a_run), "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a finished" in bad.output
