"""Where the work runs: a local scheduler, a LocalCluster (CUDA when GPUs are visible), a
running scheduler, or SLURM/PBS through dask-jobqueue.

:class:`Runner` hides the difference: ``runner.map(func, items)`` runs ``func(item)`` for every
item, with a progress bar, on threads of this process or on the cluster's workers. The model is
loaded on each distributed worker once, by :class:`ModelPlugin`, before tasks arrive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from mosaic_pais.errors import BadInputError, require_extra

__all__ = [
    "gpus_visible",
    "ModelPlugin",
    "limit_tensorflow_threads",
    "local_cpu_threads",
    "enable_gpu_memory_growth",
    "check_memory_limit",
    "WORKER_PAUSE_FRACTION",
    "worker_memory_config",
    "start_cluster",
    "JOBQUEUE_SYSTEMS",
    "WORKER_START_TIMEOUT",
    "local_cluster",
    "jobqueue_cluster",
    "JOB_CHECK_INTERVAL",
    "ClusterLostError",
    "slurm_jobs_queued",
    "lost_batch_jobs",
    "Runner",
]


def gpus_visible() -> int:
    """Number of NVIDIA GPUs this process can use (0 without the driver)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import pynvml  # shipped with dask-cuda's dependencies

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001 - no NVML library or no driver: no GPU
        return 0


class ModelPlugin(WorkerPlugin):
    """Distributed worker plugin: load the model once per worker at start-up.

    Arguments are checked on the client; the device (and TensorFlow) is touched only in
    ``setup``, on the worker, where GPU memory growth is switched on first so that TensorFlow
    does not take all GPU memory.
    """

    name = "mosaic-pais-model"

    def __init__(self, model_path: str, batch_size: int = 16, cpu_threads: int | None = None,
                 precision: str = "float32"):
        super().__init__()
        if not str(model_path).endswith(".keras"):
            raise BadInputError(f"model {model_path}: only the native .keras format is accepted")
        self.model_path = str(model_path)
        self.batch_size = int(batch_size)
        self.cpu_threads = cpu_threads
        self.precision = str(precision)

    def setup(self, worker=None):
        enable_gpu_memory_growth()
        if self.cpu_threads:
            limit_tensorflow_threads(self.cpu_threads)
        from mosaic_pais.runtime.infer import predictor_for

        predictor_for(self.model_path, self.batch_size, self.precision)

    def teardown(self, worker=None):
        pass


def limit_tensorflow_threads(n: int) -> None:
    """Give TensorFlow ``n`` threads for each op and run one op at a time.

    Several CPU workers share a machine: by default each would start a thread per core, and
    two workers on 2 cores would run 4 busy threads (measured in docs/benchmarks.md, Scale).
    Must run before TensorFlow executes anything in the process; later it has no effect.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(n))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already initialised in this process: keep its pools
        pass


def local_cpu_threads(cluster) -> int | None:
    """TensorFlow threads per worker of a CPU ``LocalCluster`` this run started: the machine's
    cores divided among its workers (at least 1). None for any other cluster (GPU workers,
    batch-system or external ones manage their own cores)."""
    from distributed import LocalCluster

    if cluster is None or type(cluster) is not LocalCluster:
        return None
    return max(1, (os.cpu_count() or 1) // max(1, len(cluster.workers)))


def enable_gpu_memory_growth() -> None:
    """Ask TensorFlow to grow GPU memory on demand (no-op without GPUs)."""
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except Exception:  # noqa: BLE001 - already initialised or no TensorFlow GPU support
        pass


def check_memory_limit(memory_limit: str | None) -> None:
    """A per-worker memory limit Dask can read (a size such as "3GB", or "auto")."""
    from dask.utils import parse_bytes

    if memory_limit is None or memory_limit == "auto":
        return
    try:
        parse_bytes(memory_limit)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"--memory-limit {memory_limit!r}: not a size such as 3GB or "
                            "500MiB") from exc


#: the share of its memory limit at which a local worker pauses, where Dask's default is 0.8:
#: TensorFlow's runtime and the model hold about 1.9 GiB of a worker's memory for the whole run
#: (unmanaged memory that nothing can spill), so on workers of 3 GB the 0.8 mark is crossed by
#: a block's ordinary working arrays and the stitching and measuring tasks stall in hundreds of
#: pauses that free nothing (benchmarks/mosaic_scale.py: worker_memory_warnings). Workers are
#: still restarted at Dask's terminate mark (0.95). A pause set in the Dask configuration wins
#: unless it is 0.8, which cannot be told apart from Dask's default (0.79 keeps Dask's behaviour).
WORKER_PAUSE_FRACTION = 0.9


def worker_memory_config() -> dict:
    """Dask settings a local cluster's workers start with (see :data:`WORKER_PAUSE_FRACTION`).

    Examples
    --------
    >>> worker_memory_config()
    {'distributed.worker.memory.pause': 0.9}
    >>> import dask
    >>> with dask.config.set({"distributed.worker.memory.pause": 0.7}):
    ...     worker_memory_config()
    {}
    """
    import dask
    import distributed  # noqa: F401 - loads Dask's defaults for the distributed.* settings

    pause = dask.config.get("distributed.worker.memory.pause", None)
    if pause == 0.8:  # Dask's default, not a choice of the user's
        return {"distributed.worker.memory.pause": WORKER_PAUSE_FRACTION}
    return {}


def start_cluster(kind: str | None, workers: int | None = None,
                  memory_limit: str | None = None) -> tuple[Any, Any]:
    """Start or join a cluster; returns ``(client, cluster)`` (``cluster`` None when joined).

    ``kind``: None/"local" → LocalCluster (LocalCUDACluster when GPUs are visible, imported only
    then), "cuda" → LocalCUDACluster, "slurm"/"pbs" or "slurm-NAME"/"pbs-NAME" → dask-jobqueue
    configured by the ``jobqueue.<kind>`` section of the Dask configuration (see
    :func:`jobqueue_cluster`; ``workers`` is the number of batch jobs), anything else → the
    address of a running scheduler. Local dashboards listen on localhost.
    """
    from distributed import Client

    check_memory_limit(memory_limit)
    kind = (kind or "local").strip()
    if kind in ("local", "cuda"):
        import dask

        # the nannies hand the configuration they start with to their workers
        with dask.config.set(worker_memory_config()):
            cluster = local_cluster(kind, workers, memory_limit)
        return Client(cluster), cluster
    if kind.split("-", 1)[0] in JOBQUEUE_SYSTEMS:
        cluster = jobqueue_cluster(kind)
        cluster.scale(jobs=workers or 1)
        return Client(cluster), cluster
    try:
        return Client(kind, timeout="20s"), None
    except Exception as exc:  # noqa: BLE001 - one line for an unreachable address
        raise BadInputError(f"cannot reach the Dask scheduler at {kind!r} ({exc})") from exc


JOBQUEUE_SYSTEMS = ("slurm", "pbs")
#: s: the least time a batch job's worker is given to start before its nanny gives up on it
#: (dask-jobqueue's ``death-timeout``, 60 s by default). Starting includes the model plugin's
#: import of TensorFlow and loading of the model, which took over a minute on a loaded node;
#: a worker killed then is not replaced, and the run waits for workers that never come.
WORKER_START_TIMEOUT = 600.0


def local_cluster(kind: str, workers: int | None, memory_limit: str | None) -> Any:
    """GPU workers (LocalCUDACluster, imported only then) for ``kind="cuda"`` or when GPUs are
    visible, else (or when they cannot start and ``kind`` is "local") CPU workers of one
    thread each."""
    from distributed import LocalCluster

    if kind == "cuda" or gpus_visible():
        try:
            from dask_cuda import LocalCUDACluster

            return LocalCUDACluster(ip="127.0.0.1", dashboard_address="127.0.0.1:0",
                                    memory_limit=memory_limit or "auto")
        except Exception as exc:  # noqa: BLE001 - fall back to CPU workers, say so
            if kind == "cuda":
                raise BadInputError(f"--cluster cuda: cannot start GPU workers ({exc})") \
                    from exc
            print(f"mosaic-pais: no usable GPU ({type(exc).__name__}); using CPU workers",
                  file=sys.stderr)
    n = workers or max(1, min(os.cpu_count() or 1, 8) // 1)
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0", memory_limit=memory_limit or "auto")


def jobqueue_cluster(kind: str, **kwargs):
    """A dask-jobqueue cluster for ``kind`` = "slurm", "pbs", "slurm-NAME" or "pbs-NAME".

    The settings come from the ``jobqueue.<kind>`` section of the Dask configuration — a YAML
    file in ``~/.config/dask/`` or in the directory named by ``DASK_CONFIG`` (deploy/ has
    ``jobqueue.yaml`` with ``slurm``, ``pbs``, ``slurm-gpu`` and ``pbs-gpu``). A named
    variant such as ``slurm-gpu`` only needs the keys it changes: the rest is taken from the
    plain ``slurm``/``pbs`` section (dask-jobqueue itself would fail on any missing key).
    Nothing is submitted until the cluster is scaled; ``kwargs`` go to the cluster class.
    A configured ``death-timeout`` below :data:`WORKER_START_TIMEOUT` is raised to it.
    """
    import dask

    require_extra("cluster", f"--cluster {kind}")
    import dask_jobqueue
    system = kind.split("-", 1)[0]
    if system not in JOBQUEUE_SYSTEMS:
        raise BadInputError(f"--cluster {kind}: batch systems are {', '.join(JOBQUEUE_SYSTEMS)}")
    cls = dask_jobqueue.SLURMCluster if system == "slurm" else dask_jobqueue.PBSCluster
    kwargs.setdefault("death_timeout", _death_timeout(kind, system))
    if kind == system:
        return cls(**kwargs)
    section = dask.config.get(f"jobqueue.{kind}", None)
    if not isinstance(section, dict):
        raise BadInputError(f"--cluster {kind}: no 'jobqueue: {kind}:' section in the Dask "
                            "configuration (~/.config/dask/*.yaml or $DASK_CONFIG; example: "
                            "deploy/jobqueue.yaml)")
    merged = dict(dask.config.get(f"jobqueue.{system}"))
    merged.update({key.replace("_", "-"): value for key, value in section.items()})
    # set for good, not in a context: every job the cluster starts later reads it again
    dask.config.set({f"jobqueue.{kind}": merged})
    return cls(config_name=kind, **kwargs)


def _death_timeout(kind: str, system: str) -> float:
    """The configured ``death-timeout`` of ``kind`` (else of ``system``; seconds, or a
    duration such as "15m" as the worker's own option takes it), at least
    :data:`WORKER_START_TIMEOUT`."""
    import dask
    from dask.utils import parse_timedelta

    configured = dask.config.get(f"jobqueue.{kind}.death-timeout",
                                 dask.config.get(f"jobqueue.{system}.death-timeout", None))
    seconds = parse_timedelta(configured, default="seconds") if configured is not None else 0
    return max(float(seconds or 0), WORKER_START_TIMEOUT)


#: s between two looks at whether a batch run still has jobs to work for it
JOB_CHECK_INTERVAL = 30.0
#: SLURM job states of a job that will never run again (``squeue -o %T``)
SLURM_ENDED_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"})


class ClusterLostError(RuntimeError):
    """No worker is left to run the tasks, and none will come."""


def slurm_jobs_queued(job_ids: list[str]) -> int | None:
    """How many of ``job_ids`` SLURM still holds pending or running (None: squeue cannot be
    asked). Ids it no longer knows count as ended, as do jobs in an ended state: with ``-j``,
    squeue lists finished jobs too, for ``MinJobAge`` seconds."""
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) > 1)
    return sum(1 for job in job_ids if states.get(job, "COMPLETED") not in SLURM_ENDED_STATES)


def lost_batch_jobs(cluster, client) -> str | None:
    """Why a dask-jobqueue ``cluster``'s run cannot go on, or None while it can.

    A run on a batch system cannot tell a job that waits in the queue from one that will never
    start by its workers alone: both have none. It is lost when no worker is connected and the
    batch system holds none of the jobs it submitted (they failed, were cancelled or ended);
    without this look it would wait for ever. Asked of SLURM only: on other systems (PBS,
    which no test here can run) it returns None, as when squeue cannot answer."""
    if type(cluster).__name__ != "SLURMCluster" or client.scheduler_info().get("workers"):
        return None
    jobs = [str(job.job_id) for job in cluster.workers.values()
            if getattr(job, "job_id", None)]
    if not jobs or slurm_jobs_queued(jobs) != 0:
        return None
    return (f"every batch job of this run has ended (SLURM jobs {', '.join(jobs)}) and no "
            "worker is connected; their logs (jobqueue log-directory) say why. Finished blocks "
            "are kept: rerun with --resume")


class Runner(AbstractContextManager):
    """Run tasks locally (threads) or on a distributed client, with a progress bar.

    ``watch``, when given, is asked every :data:`JOB_CHECK_INTERVAL` seconds while the
    client's tasks run; a reason it returns (:func:`lost_batch_jobs`) ends the run with
    :class:`ClusterLostError`."""

    def __init__(self, client=None, threads: int | None = None, progress: bool = True,
                 watch: Callable[[], str | None] | None = None):
        self.client = client
        self.threads = threads or min(os.cpu_count() or 1, 4)
        self.progress = progress
        self.watch = watch

    def map(self, func: Callable, items: Iterable, desc: str = "", **kwargs) -> list:
        """``[func(item, **kwargs) for item in items]`` in parallel, results in order."""
        from tqdm import tqdm

        items = list(items)
        if not items:
            return []
        if self.client is not None:
            from distributed import as_completed

            shared = {k: self.client.scatter(v, broadcast=True) if _is_large(v) else v
                      for k, v in kwargs.items()}
            futures = [self.client.submit(func, item, **shared, pure=False, retries=2)
                       for item in items]
            index = {f.key: i for i, f in enumerate(futures)}
            results: list = [None] * len(items)
            with tqdm(total=len(items), desc=desc, disable=not self.progress,
                      file=sys.stderr) as bar:
                try:
                    for future in _watched(as_completed(futures), self.watch):
                        results[index[future.key]] = future.result()
                        bar.update(1)
                except ClusterLostError:
                    self.client.cancel(futures)
                    raise
            return results
        import dask
        from dask.callbacks import Callback

        class _Bar(Callback):
            def _start_state(self, dsk, state):
                self.bar = tqdm(total=len(items), desc=desc, disable=not runner.progress,
                                file=sys.stderr)

            def _posttask(self, key, result, dsk, state, worker_id):
                if isinstance(key, tuple) and key and str(key[0]).startswith("task-"):
                    self.bar.update(1)

            def _finish(self, dsk, state, errored):
                self.bar.close()

        runner = self
        shared = {k: dask.delayed(v, pure=False) if _is_large(v) else v
                  for k, v in kwargs.items()}
        tasks = [dask.delayed(func, pure=False)(item, **shared,
                                                dask_key_name=("task-", i))
                 for i, item in enumerate(items)]
        with _Bar():
            return list(dask.compute(*tasks, scheduler="threads", num_workers=self.threads))

    def __exit__(self, *exc):
        return None


def _watched(completed, watch: Callable[[], str | None] | None):
    """The futures of a distributed ``as_completed`` as they finish, with ``watch`` asked
    every :data:`JOB_CHECK_INTERVAL` seconds while none does."""
    if watch is None:
        yield from completed
        return
    next_look = time.monotonic() + JOB_CHECK_INTERVAL
    while not completed.is_empty():
        done = completed.next_batch(block=False)
        if done:
            yield from done
            continue
        if time.monotonic() >= next_look:
            reason = watch()
            if reason:
                raise ClusterLostError(reason)
            next_look = time.monotonic() + JOB_CHECK_INTERVAL
        time.sleep(0.1)


def _is_large(value: Any) -> bool:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.nbytes > 1 << 20
    if isinstance(value, dict):
        return sum(getattr(v, "nbytes", 0) for v in value.values()) > 1 << 20
    return False
