"""The batch recipes against a real SLURM: the one-node cluster of deploy/local_slurm.sh.

``mosaic-pais run --cluster slurm`` with two worker jobs gives the local run's catalogue; the
sbatch script of deploy/ finishes and writes its outputs; a worker job cancelled mid-run is
survived; a whole run cancelled with ``scancel`` and resumed gives the same catalogue; a run
whose every worker job dies ends with one line instead of waiting for ever.
Skipped where no SLURM answers (``sinfo``); CI starts one first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import simulate_mosaic
from tests.runtime.test_reliability import _wait_for
from tests.runtime.test_run import _assert_same

REPO = Path(__file__).resolve().parents[2]
JOB_NAME = "mosaic-pais-test"


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "alloc"))


pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(not _slurm_up(), reason="no SLURM cluster answers (sinfo)")]

JOBQUEUE = f"""
jobqueue:
  slurm:
    name: {JOB_NAME}
    cores: 1
    processes: 1
    memory: 5GB
    walltime: "01:00:00"
    queue: debug
    local-directory: /tmp
    interface: null
    job-extra-directives: []
"""


def _env(tmp_path: Path, extra: str = "") -> dict:
    """The environment of a run whose ``jobqueue.slurm`` section is :data:`JOBQUEUE` and the
    lines ``extra``."""
    config = tmp_path / "dask-config"
    config.mkdir(exist_ok=True)
    # the worker jobs' logs beside the test's files, not in the directory pytest runs from
    (config / "jobqueue.yaml").write_text(JOBQUEUE + f"    log-directory: {tmp_path / 'logs'}\n"
                                          + extra)
    return {**os.environ, "DASK_CONFIG": str(config), "TF_CPP_MIN_LOG_LEVEL": "3",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "mosaic_pais", *map(str, args)]


def _jobs(name: str = JOB_NAME) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-t", "RUNNING", "-o", "%i"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def _blocks_done(out: Path) -> int:
    return len(list((out / "pcr.zarr.done" / "infer").glob("*.json")))


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A 4096² simulated mosaic and its catalogue from a local run."""
    sim = tmp_path_factory.mktemp("sim4096")
    simulate_mosaic(sim, size=4096, seed=31, processes=2)
    table, _ = run([sim / "mosaic.fits"], tmp_path_factory.mktemp("local") / "run",
                   progress=False)
    return sim / "mosaic.fits", table


@pytest.fixture(scope="module")
def small_field(tmp_path_factory):
    """A 1024² simulated mosaic and its catalogue from a local run, one tile per block (as
    the runs below: the blocks set which tiles the network reads together)."""
    sim = tmp_path_factory.mktemp("sim1024")
    simulate_mosaic(sim, size=1024, seed=32)
    table, _ = run([sim / "mosaic.fits"], tmp_path_factory.mktemp("local") / "run",
                   progress=False, tiles_per_block=1)
    return sim / "mosaic.fits", table


def test_run_on_two_slurm_worker_jobs_gives_the_local_catalogue(field, tmp_path):
    image, local = field
    out = tmp_path / "slurm_run"
    result = subprocess.run(_cli("run", image, "--output", out, "--cluster", "slurm",
                                 "--workers", 2, "--quiet"),
                            env=_env(tmp_path), capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    catalog = Table.read(out / "catalog.fits")
    _assert_same(local, catalog)
    assert json.loads((out / "run.json").read_text())["parameters"]["cluster"] == "slurm"
    # its segmentation map as photutils reads it: every label a catalogue id, and nearly
    # every source owning pixels (a source whose every pixel a brighter one holds more of
    # owns none)
    from astropy.io import fits
    from photutils.segmentation import SegmentationImage

    segments = SegmentationImage(fits.getdata(out / "segmentation.fits"))
    ids = set(np.asarray(catalog["id"]).tolist())
    assert set(segments.labels.tolist()) <= ids
    assert len(segments.labels) >= 0.95 * len(ids)
    assert _wait_for(lambda: not _jobs(), timeout=120)  # the worker jobs end with the run


def test_the_sbatch_script_finishes_and_writes_its_outputs(small_field, tmp_path):
    image, local = small_field
    out = tmp_path / "batch_run"
    result = subprocess.run(
        ["sbatch", "--wait", "--nodes=1", "--ntasks=2", "--cpus-per-task=1", "--mem=10G",
         f"--output={tmp_path}/job-%j.log", f"--chdir={tmp_path}",
         str(REPO / "deploy" / "slurm_batch.sh"), str(image), str(out), "--tiles-per-block",
         "1", "--quiet"], env=_env(tmp_path), capture_output=True, text=True, timeout=3600)
    logs = "".join(p.read_text() for p in tmp_path.glob("job-*.log"))
    assert result.returncode == 0, result.stderr + logs[-3000:]
    for name in ("catalog.fits", "segmentation.fits", "overview.png", "run.json"):
        assert (out / name).exists(), name
    _assert_same(local, Table.read(out / "catalog.fits"))


def test_a_worker_job_cancelled_mid_run_is_survived(small_field, tmp_path):
    image, local = small_field
    out = tmp_path / "one_cancelled"
    proc = subprocess.Popen(_cli("run", image, "--output", out, "--cluster", "slurm",
                                 "--workers", 2, "--tiles-per-block", 1, "--quiet"),
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert _wait_for(lambda: len(_jobs()) == 2 and _blocks_done(out) >= 1
                         or proc.poll() is not None)
        jobs = _jobs()
        assert proc.poll() is None and len(jobs) == 2, "the run ended before a job was cancelled"
        subprocess.run(["scancel", jobs[0]], check=True)
        _, stderr = proc.communicate(timeout=3600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    _assert_same(local, Table.read(out / "catalog.fits"))


def test_a_cancelled_run_resumes_to_the_same_catalogue(small_field, tmp_path):
    image, local = small_field
    out = tmp_path / "cancelled"
    command = " ".join(_cli("run", image, "--output", out, "--tiles-per-block", 1, "--quiet"))
    job = subprocess.run(["sbatch", "--parsable", "--job-name=mosaic-pais-whole", "--ntasks=1",
                          "--cpus-per-task=2", "--mem=6G", f"--output={tmp_path}/whole-%j.log",
                          "--wrap", command], env=_env(tmp_path), capture_output=True,
                         text=True, check=True).stdout.strip().split(";")[0]
    assert _wait_for(lambda: _blocks_done(out) >= 1, timeout=1200), "no block finished"
    subprocess.run(["scancel", job], check=True)
    assert _wait_for(lambda: not _jobs("mosaic-pais-whole"), timeout=120)
    assert not (out / "catalog.fits").exists()
    resumed = subprocess.run(_cli("run", image, "--output", out, "--tiles-per-block", 1,
                                  "--resume", "--quiet"), env=_env(tmp_path),
                             capture_output=True, text=True, timeout=3600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same(local, Table.read(out / "catalog.fits"))


def test_a_run_whose_worker_jobs_all_die_ends_with_one_line(small_field, tmp_path):
    image, _ = small_field
    out = tmp_path / "no_workers"
    # every worker job exits before its worker starts, as a broken environment makes it
    env = _env(tmp_path, extra='    job-script-prologue: ["exit 3"]\n')
    result = subprocess.run(_cli("run", image, "--output", out, "--cluster", "slurm",
                                 "--workers", 2, "--quiet"),
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "every batch job of this run has ended" in lines[0], lines
    assert "--resume" in lines[0]
    assert not (out / "catalog.fits").exists()
