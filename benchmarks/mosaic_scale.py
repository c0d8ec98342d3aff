"""Scale: peak memory and end-to-end throughput of whole runs, against the bare model, in one run.

For each mosaic size (simulated once into ``--work`` and reused), ``mosaic-pais run`` is started
as a separate process with a 2-worker LocalCluster and a per-worker memory limit; the resident
memory of the whole process tree (client, nannies, workers) is sampled every 0.2 s and its peak
kept. The bare model's tiles/s (batch 16, no I/O) is measured in the same script, before and
after the runs, so that the ratio "end-to-end tiles/s ÷ bare tiles/s" compares like with like on
this shared machine: a run lasts minutes, so the bare model is timed sustained too (the tiles
of ``--bare-seconds`` of back-to-back batches, not only its best single batch: in one run
the best batches gave 32-33 tiles/s and a minute of batches 24-28), and
the ratio uses the mean of the two sustained measurements (all four are recorded).

The "tiles" of a run are those of its 256² grid (stride 192): ~17,000 for a 25,000² mosaic.
By default the network reads them 8 × 8 at a time as one window (``--tiles-per-window``,
:func:`mosaic_pais.runtime.tile.network_windows`), which computes the overlapping margins once, so
the inference stage alone can go faster than the bare model on separate tiles; each run's
``infer_vs_bare`` says by how much. ``--tiles-per-window 1`` measures tiles read one by one.

``--vote`` runs with another vote mode than the card's (``mosaic-pais run --vote``): ``mixed``
and ``vectors`` write the claim vectors during inference and read them back when stitching
resolves the votes, which ``geometric`` never does.

Usage:
  python benchmarks/mosaic_scale.py --sizes 4096 16384 --memory-limit 3GB
  python benchmarks/mosaic_scale.py --sizes 4096 16384 --memory-limit 3GB --vote geometric
``--precision bfloat16`` runs the network in bfloat16, in the runs and the bare model alike.

Writes docs/results/mosaic_scale.json (mosaic_scale_<vote>.json with ``--vote``,
mosaic_scale[_<vote>]_bfloat16.json with ``--precision bfloat16``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PRECISIONS,
    inference_network,
    load_model,
    model_input,
    model_metadata,
    resolve_precision,
)
from mosaic_pais.pcr import VOTE_MODES
from mosaic_pais.runtime.tile import (
    DEFAULT_MARGIN,
    DEFAULT_TILE,
    DEFAULT_TILES_PER_WINDOW,
    make_grid,
)
from mosaic_pais.sim.scenes import simulate_mosaic
from mosaic_pais.training.dataset import split_scene


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants (bytes)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_and_watch(cmd: list[str], poll: float = 0.2) -> dict:
    """Run ``cmd``; its wall time, exit status and the peak RSS of its process tree."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.time()
    # the output goes to a file, not a pipe: nobody reads a pipe while the run goes on, and
    # once its 64 kB fill (Dask's memory warnings can) every worker blocks on its next log line
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(poll)
        log.seek(0)
        output = log.read()
    return {"seconds": time.time() - t0, "returncode": proc.returncode,
            "peak_rss_gb": peak / 1e9, "tail": output[-2000:],
            # lines of Dask's memory manager: workers pausing, spilling or over their limit
            "worker_memory_warnings": output.count("distributed.worker.memory")}


def bare_tiles_per_second(seconds: float = 60.0, precision: str = "float32") -> dict:
    """The model alone at batch 16 (16 test tiles, traced as benchmarks/speed.py does), as the
    runs compute it (:func:`~mosaic_pais.nn.model.inference_network` in ``precision``):
    sustained (every tile of back-to-back batches for ``seconds``) and its best batch."""
    from speed import traced_predict  # noqa: I001 - sibling benchmark script

    scenes = [split_scene("test", i) for i in range(16)]
    x = np.concatenate([model_input(s.image[None], [s.noise_sigma]) for s in scenes])
    predict = traced_predict(inference_network(load_model(DEFAULT_MODEL_PATH), precision), x)
    batches = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        np.asarray(predict(x)["center"])
        batches.append(time.perf_counter() - t)
    return {"sustained": len(x) * len(batches) / (time.perf_counter() - t0),
            "best_batch": len(x) / min(batches)}


def tensorflow_import_cpu_seconds() -> float:
    """CPU seconds a fresh Python process spends importing TensorFlow (each worker pays it)."""
    out = subprocess.run([sys.executable, "-c", "import time, tensorflow; "
                          "print(time.process_time())"], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/output/scale"))
    parser.add_argument("--bare-seconds", type=float, default=60.0)
    parser.add_argument("--tiles-per-window", type=int, default=DEFAULT_TILES_PER_WINDOW)
    parser.add_argument("--vote", choices=VOTE_MODES, default=None,
                        help="vote mode of the runs (default: the model card's)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="what the network computes in, in the runs and the bare model "
                             "(default: the runs' default)")
    args = parser.parse_args()
    precision = resolve_precision(args.precision)
    result: dict = {"memory_limit_per_worker": args.memory_limit, "workers": args.workers,
                    "tiles_per_window": args.tiles_per_window,
                    "vote": args.vote or model_metadata(DEFAULT_MODEL_PATH).get("vote"),
                    "precision": precision, "runs": {}}
    for size in args.sizes:  # simulated first, so that the bare model is timed just before
        sim = args.work / f"sim{size}"
        if not (sim / "truth.fits").exists():
            t = time.time()
            simulate_mosaic(sim, size=size, seed=23, progress=True, processes=2)
            print(f"simulated {size}² in {time.time() - t:.0f} s", flush=True)
    bare_before = bare_tiles_per_second(args.bare_seconds, precision)
    for size in args.sizes:
        sim = args.work / f"sim{size}"
        out = args.work / f"run{size}"
        cmd = [sys.executable, "-m", "mosaic_pais", "run", str(sim / "mosaic.fits"),
               "--output", str(out), "--overwrite", "--cluster", "local",
               "--workers", str(args.workers), "--memory-limit", args.memory_limit,
               "--tiles-per-window", str(args.tiles_per_window), "--quiet",
               "--precision", precision,
               *(["--vote", args.vote] if args.vote else [])]
        watch = run_and_watch(cmd)
        if watch["returncode"] != 0:
            print(watch["tail"])
            raise SystemExit(f"run on {size}² failed")
        timings = json.loads((out / "run.json").read_text())["timings_s"]
        n_tiles = make_grid(size, size, tile=DEFAULT_TILE, margin=DEFAULT_MARGIN).n_tiles
        result["runs"][str(size)] = {
            **{k: v for k, v in watch.items() if k != "tail"}, "tiles": n_tiles,
            "timings_s": timings, "tiles_per_s": n_tiles / timings["total"],
            "n_sources": json.loads((out / "run.json").read_text())["n_sources"]}
        print(json.dumps(result["runs"][str(size)], indent=1), flush=True)
    bare_after = bare_tiles_per_second(args.bare_seconds, precision)
    result["bare"] = {"before": bare_before, "after": bare_after,
                      "seconds_each": args.bare_seconds}
    result["bare_tiles_per_s"] = 0.5 * (bare_before["sustained"] + bare_after["sustained"])
    result["tensorflow_import_cpu_s"] = tensorflow_import_cpu_seconds()
    sizes = [str(s) for s in args.sizes]
    for s in sizes:
        run = result["runs"][s]
        run["throughput_vs_bare"] = run["tiles_per_s"] / result["bare_tiles_per_s"]
        # the inference stage's tiles/s over the bare model's: above 1 when the network
        # reads tiles together and so skips their overlaps
        run["infer_vs_bare"] = (run["tiles"] / run["timings_s"]["infer"]
                                / result["bare_tiles_per_s"])
    if len(sizes) >= 2:
        result["peak_memory_ratio"] = \
            result["runs"][sizes[-1]]["peak_rss_gb"] / result["runs"][sizes[0]]["peak_rss_gb"]
    largest = result["runs"][sizes[-1]]
    tiles_25k = make_grid(25_000, 25_000, tile=DEFAULT_TILE, margin=DEFAULT_MARGIN).n_tiles
    result["projection_25k"] = {"tiles": tiles_25k,
                                "hours": tiles_25k / largest["tiles_per_s"] / 3600}
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    name = "_".join(["mosaic_scale", *([args.vote] if args.vote else []),
                     *([precision] if precision != "float32" else [])])
    Path(f"docs/results/{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
