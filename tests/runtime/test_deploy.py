"""deploy/: the job scripts dask-jobqueue makes from deploy/jobqueue.yaml (nothing is submitted),
the SLURM batch script run end to end with a stand-in ``srun``, and the container recipes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dask.config import set as dask_config_set

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.cluster import WORKER_START_TIMEOUT, jobqueue_cluster, start_cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
LOCAL = {"host": "127.0.0.1", "dashboard_address": ":0"}  # the scheduler a cluster starts


@pytest.fixture
def deploy_config():
    """The Dask configuration as `DASK_CONFIG=deploy/` gives it; restored afterwards."""
    import dask.config

    dask.config.refresh(paths=[str(DEPLOY)])
    yield dask.config
    dask.config.refresh()


def _script(kind: str) -> str:
    cluster = jobqueue_cluster(kind, scheduler_options=LOCAL)
    try:
        assert not cluster.workers and not cluster.worker_spec  # nothing submitted
        return cluster.job_script()
    finally:
        cluster.close()


def _worker_line(script: str) -> str:
    lines = [line for line in script.splitlines() if " -m " in line]
    assert len(lines) == 1, script
    return lines[0]


def test_slurm_cpu_job_script(deploy_config):
    script = _script("slurm")
    for directive in ("#SBATCH -J mosaic-pais", "#SBATCH -p normal", "#SBATCH -n 1",
                      "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G", "#SBATCH -t 04:00:00"):
        assert directive in script.splitlines(), (directive, script)
    line = _worker_line(script)
    assert line.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://127.0.0.1:")
    # 8 cores and 32 GB as 2 processes of 4 threads and 16 GB (14.90 GiB) each
    assert re.search(r" --nthreads 4 .*--memory-limit 14.90GiB --nworkers 2 --nanny", line)
    assert line.count("--nthreads") == 1
    assert "--local-directory $TMPDIR" in line  # expanded by the shell on the node


@pytest.mark.parametrize("kind", ["slurm", "pbs", "slurm-gpu"])
def test_workers_are_given_time_to_load_the_model(deploy_config, kind):
    """A worker's start includes the model plugin's loading of TensorFlow and the model: the
    nanny's death timeout (dask-jobqueue's default 60 s killed workers on a loaded node) is
    raised to WORKER_START_TIMEOUT, and a longer configured one is kept."""
    assert f"--death-timeout {WORKER_START_TIMEOUT}" in _worker_line(_script(kind))
    with dask_config_set({f"jobqueue.{kind}.death-timeout": 1800}):
        assert "--death-timeout 1800" in _worker_line(_script(kind))
    with dask_config_set({f"jobqueue.{kind}.death-timeout": "30m"}):  # as the worker takes it
        assert "--death-timeout 1800" in _worker_line(_script(kind))


def test_pbs_cpu_job_script(deploy_config):
    script = _script("pbs")
    for directive in ("#PBS -N mosaic-pais", "#PBS -q workq",
                      "#PBS -l select=1:ncpus=8:mem=30GB", "#PBS -l walltime=04:00:00"):
        assert directive in script.splitlines(), (directive, script)
    line = _worker_line(script)
    assert " -m distributed.cli.dask_worker tcp://127.0.0.1:" in line
    assert re.search(r" --nthreads 4 .*--memory-limit 14.90GiB --nworkers 2 --nanny", line)


def test_slurm_gpu_job_script_runs_dask_cuda_worker(deploy_config):
    script = _script("slurm-gpu")
    for directive in ("#SBATCH -J mosaic-pais-gpu", "#SBATCH -p gpu", "#SBATCH --gres=gpu:4",
                      "#SBATCH --cpus-per-task=16", "#SBATCH -t 04:00:00"):  # walltime: base
        assert directive in script.splitlines(), (directive, script)
    assert "#SBATCH --mem=120G" in script.splitlines()  # job-mem: the whole node
    line = _worker_line(script)
    assert line.startswith(f"{sys.executable} -m dask cuda worker tcp://127.0.0.1:")
    assert " --nthreads 4 " in line and "--memory-limit 26.08GiB" in line
    # dask cuda worker starts one worker per GPU itself: no --nworkers, no --nanny flag
    assert "--nworkers" not in line and "nanny" not in line
    assert "--local-directory $TMPDIR" in line  # taken from the plain slurm section


def test_pbs_gpu_job_script_runs_dask_cuda_worker(deploy_config):
    script = _script("pbs-gpu")
    assert "#PBS -l select=1:ncpus=16:ngpus=4:mem=120GB" in script.splitlines(), script
    assert "#PBS -q gpu" in script.splitlines()
    line = _worker_line(script)
    assert " -m dask cuda worker tcp://127.0.0.1:" in line
    assert "--nworkers" not in line


def test_dask_cuda_worker_command_is_runnable_as_python_module():
    # `python -m dask cuda worker` is how jobqueue spells `dask cuda worker`: `python -m dask`
    # must be the dask command line (dask-cuda adds `cuda` to it through its entry point)
    out = subprocess.run([sys.executable, "-m", "dask", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "scheduler" in out and "worker" in out


def test_unknown_variant_is_a_clear_error(deploy_config):
    with pytest.raises(BadInputError, match="no 'jobqueue: slurm-big:' section"):
        start_cluster("slurm-big")


def test_batch_script_runs_scheduler_workers_and_run(tmp_path):
    """deploy/slurm_batch.sh outside SLURM: `srun` replaced by a shim that runs its command."""
    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH
    from mosaic_pais.sim.scenes import simulate_mosaic

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no shipped model")
    simulate_mosaic(tmp_path / "sim", size=200, seed=5)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
                               'exec "$@"\n')
    (shim / "srun").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}:{Path(sys.executable).parent}:{os.environ['PATH']}",
               SLURM_JOB_ID="42", SLURM_NTASKS="1", SLURM_CPUS_PER_TASK="1",
               DASK_SCHEDULER_PORT="0", DASK_DASHBOARD_PORT="0", WORK_DIR=str(tmp_path / "dask"))
    out = subprocess.run(["bash", str(DEPLOY / "slurm_batch.sh"), str(tmp_path / "sim" /
                          "mosaic.fits"), str(tmp_path / "run"), "--quiet"], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    logs = "".join((tmp_path / "dask" / name).read_text()
                   for name in ("scheduler.log", "workers.log")
                   if (tmp_path / "dask" / name).exists())
    assert out.returncode == 0, out.stdout + out.stderr + logs
    assert "Dask scheduler at tcp://" in out.stdout
    provenance = json.loads((tmp_path / "run" / "run.json").read_text())
    assert provenance["parameters"]["cluster"].startswith("tcp://")
    assert provenance["n_sources"] > 0
    assert "Start worker" in logs or "Starting Worker" in logs  # a worker joined


def test_batch_scripts_are_valid_bash():
    for name in ("slurm_batch.sh", "jupyter_slurm.sh"):
        subprocess.run(["bash", "-n", str(DEPLOY / name)], check=True)


def test_container_recipes_copy_what_exists_and_install_the_package():
    docker = (DEPLOY / "Dockerfile").read_text()
    for line in docker.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), line
    assert 'pip install ".[${EXTRAS}]"' in docker
    assert 'ENTRYPOINT ["mosaic-pais"]' in docker
    from mosaic_pais.runtime import pipeline

    assert "compile_kernels()" in docker and callable(pipeline.compile_kernels)
    apptainer = (DEPLOY / "mosaic-pais.def").read_text()
    sections = re.findall(r"^%(\w+)", apptainer, re.M)
    assert {"files", "post", "runscript", "test"} <= set(sections)
    files = apptainer.split("%files", 1)[1].split("%post", 1)[0]
    for line in files.strip().splitlines():
        assert (REPO / line.split()[0]).exists(), line
    assert "exec mosaic-pais" in apptainer
