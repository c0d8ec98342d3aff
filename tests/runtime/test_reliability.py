"""Reliability: a worker killed mid-run, runs interrupted by SIGINT or SIGKILL and resumed.

Each case must end with the catalogue of an undisturbed run, and a resumed run must recompute
only the inference blocks that were not finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.table import Table

from mosaic_pais.runtime.lock import is_stale, lock_holder
from tests.runtime.test_run import _assert_same, _run, model_path, mosaic, reference  # noqa: F401

pytestmark = pytest.mark.slow


def _records(out):
    return sorted((out / "pcr.zarr.done" / "infer").glob("*.json"))


def _wait_for(condition, timeout: float = 300.0, poll: float = 0.05) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(poll)
    return False


def test_worker_killed_mid_run_gives_the_same_catalogue(reference, mosaic, model_path,  # noqa: F811
                                                        tmp_path):
    from distributed import Client, LocalCluster

    _, table, _ = reference
    out = tmp_path / "killed"
    killed: dict = {}

    def kill_one_worker(client):
        # as soon as the first block is finished the others are in flight: kill a worker hard
        if not _wait_for(lambda: len(_records(out)) >= 1):
            return
        address, pid = next(iter(client.run(os.getpid).items()))
        killed["blocks_done"] = len(_records(out))
        killed["worker"] = address
        os.kill(pid, signal.SIGKILL)  # no clean shutdown: the nanny restarts it

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        killer = threading.Thread(target=kill_one_worker, args=(client,), daemon=True)
        killer.start()
        other, _ = _run(mosaic, out, model_path, tiles_per_block=1, client=client)
        killer.join(timeout=10)
    assert "worker" in killed, "no worker was killed"
    _assert_same(table, other)


# A shell starts background jobs with SIGINT ignored, and Python keeps it ignored: the child
# restores Python's handler itself, so that it sees the signal as a user's Ctrl-C (a
# ``preexec_fn`` would fork this process, which JAX, imported by other tests, warns against).
_AS_CTRL_C = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
              " sys.argv[0] = 'mosaic-pais'; runpy.run_module('mosaic_pais', run_name='__main__')")


def _cli_run(mosaic, out, model_path, *extra):  # noqa: F811
    return [sys.executable, "-c", _AS_CTRL_C, "run", str(mosaic / "mosaic.fits"),
            "--output", str(out), "--model", str(model_path), "--threshold", "0.3",
            "--tiles-per-block", "1", "--quiet", *extra]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_resumes_to_the_same_catalogue(reference, mosaic, model_path,  # noqa: F811
                                                       tmp_path, sig):
    _, table, _ = reference
    out = tmp_path / "interrupted"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(_cli_run(mosaic, out, model_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: len(_records(out)) >= 1 or proc.poll() is not None)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = len(_records(out))
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")  # too fast to interrupt
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "Traceback" not in stderr and "--resume" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
        # a killed run cannot remove its lock: it stays, naming a dead holder
        holder = lock_holder(out)
        assert holder is not None and holder["pid"] == proc.pid and is_stale(holder)
    assert not (out / "catalog.fits").exists()

    resumed = subprocess.run(_cli_run(mosaic, out, model_path, "--resume"), env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    provenance = json.loads((out / "run.json").read_text())
    # only the blocks not recorded as finished were recomputed
    assert provenance["timings_s"]["infer_blocks"] == 4 - finished
    _assert_same(table, Table.read(out / "catalog.fits"))
    assert np.isfinite(Table.read(out / "catalog.fits")["flux"]).all()
    assert lock_holder(out) is None  # taken over by --resume, then released


def test_two_runs_on_one_output_folder(reference, mosaic, model_path, tmp_path):  # noqa: F811
    """Two runs given the same folder with --overwrite (two batch jobs with the same
    arguments): the second, started while the first holds the folder, exits 2 naming the
    holder; the first completes with the catalogue of an undisturbed run. The first is
    paused (SIGSTOP) while the second starts, so that it still holds the folder however fast
    it would otherwise finish."""
    _, table, _ = reference
    out = tmp_path / "shared"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(_cli_run(mosaic, out, model_path, "--overwrite"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: lock_holder(out) is not None or first.poll() is not None)
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(_cli_run(mosaic, out, model_path, "--overwrite"), env=env,
                                capture_output=True, text=True, timeout=600)
        first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert second.returncode == 2, second.stderr
    message = second.stderr.strip().splitlines()[-1]
    assert message.startswith("mosaic-pais: error:") and "in use by another run" in message
    assert f"pid {first.pid}" in message
    _assert_same(table, Table.read(out / "catalog.fits"))
    assert lock_holder(out) is None
