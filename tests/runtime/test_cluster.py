"""Where the work runs: LocalCluster (the GPU branch's CPU fallback), a scheduler address."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest

from mosaic_pais.errors import BadInputError
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH
from mosaic_pais.runtime.cluster import (
    WORKER_PAUSE_FRACTION,
    ClusterLostError,
    ModelPlugin,
    Runner,
    gpus_visible,
    local_cpu_threads,
    start_cluster,
)


def _square(x, offset=0):
    return x * x + offset


def _slow_square(x, seconds=0.0):
    import time

    time.sleep(seconds)
    return x * x


def test_no_gpu_here():
    assert gpus_visible() == 0


def _tensorflow_threads():
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def test_local_falls_back_to_cpu_workers():
    client, cluster = start_cluster("local", workers=2)
    try:
        assert len(client.scheduler_info()["workers"]) == 2
        assert "127.0.0.1" in client.dashboard_link
        assert Runner(client, progress=False).map(_square, range(5), offset=1) == [1, 2, 5, 10,
                                                                                  17]
        # the two CPU workers share the machine's cores instead of each taking all of them
        threads = local_cpu_threads(cluster)
        assert threads == max(1, (os.cpu_count() or 1) // 2)
        client.register_plugin(ModelPlugin(str(DEFAULT_MODEL_PATH), 4, cpu_threads=threads))
        assert set(client.run(_tensorflow_threads).values()) == {threads}
        # the workers pause later than Dask's default: TensorFlow's memory cannot be spilled
        assert set(client.run(_worker_pause).values()) == {WORKER_PAUSE_FRACTION}
        assert dask.config.get("distributed.worker.memory.pause") == 0.8  # the client's own
    finally:
        client.close()
        cluster.close()


def _worker_pause(dask_worker) -> float:
    return dask_worker.memory_manager.memory_pause_fraction


def test_cuda_without_gpus_is_a_clear_error():
    with pytest.raises(BadInputError, match="cuda"):
        start_cluster("cuda")


def test_join_a_running_scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address="127.0.0.1:0") as cluster:
        client, owned = start_cluster(cluster.scheduler_address)
        try:
            assert owned is None
            assert local_cpu_threads(owned) is None  # a cluster we did not start: left alone
            big = np.arange(300_000.0)  # scattered once, not sent with every task
            assert Runner(client, progress=False).map(_square, [2, 3], offset=big[1]) == [5, 10]
        finally:
            client.close()


def test_bad_memory_limit_is_bad_input():
    with pytest.raises(BadInputError, match="--memory-limit"):
        start_cluster("local", 1, memory_limit="lots")


def test_unreachable_scheduler():
    with pytest.raises(BadInputError, match="cannot reach"):
        start_cluster("tcp://127.0.0.1:1")


def test_local_threads_runner_keeps_order():
    assert Runner(threads=2, progress=False).map(_square, range(6)) == [0, 1, 4, 9, 16, 25]


def test_a_watched_run_ends_when_told_no_worker_will_come(monkeypatch):
    from distributed import Client, LocalCluster

    from mosaic_pais.runtime import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "JOB_CHECK_INTERVAL", 0.2)
    looks = []

    def still_there():
        looks.append(1)
        return None

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        # while the watch has nothing to say, the tasks finish as without it
        runner = Runner(client, progress=False, watch=still_there)
        assert runner.map(_slow_square, [2, 3], seconds=1.0) == [4, 9]
        assert looks, "the watch was never asked"
        # a reason from it ends the wait, in one line, long before the tasks would end
        lost = Runner(client, progress=False, watch=lambda: "every batch job has ended")
        with pytest.raises(ClusterLostError, match="every batch job has ended"):
            lost.map(_slow_square, [2, 3], seconds=20.0)
