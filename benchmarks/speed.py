"""Inference speed on this machine: tiles/s at batch 16, side by side in one run.

Compares the shipped model with the paper-size architecture (16-32-64-64-128) and the small
prototype configuration (8-16-32-32-64) built by the same code, and with sep on the same tiles.
The ratios are what to trust: this machine is shared and noisy. Also records how many CPU
cores the shipped model keeps busy while it predicts (CPU seconds of the process per wall
second): whatever else a run does on a CPU-only machine competes with the network for them.

Usage: python benchmarks/speed.py [--repeats 5]
Writes docs/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mosaic_pais.evaluation.peers import run_sep
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, build_pais_model, load_model, model_input
from mosaic_pais.training.dataset import split_scene


def traced_predict(model, x: np.ndarray):
    """``model`` as one compiled call, traced on ``x`` so that timing starts after tracing."""
    import tensorflow as tf

    predict = tf.function(lambda t: model(t, training=False))
    predict(x)
    return predict


def tiles_per_second(model, x: np.ndarray, repeats: int) -> float:
    predict = traced_predict(model, x)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.asarray(predict(x)["center"])
        best = min(best, time.perf_counter() - t)
    return len(x) / best


def cores_busy(model, x: np.ndarray, repeats: int) -> float:
    """CPU seconds per wall second (all threads of this process) while ``model`` predicts."""
    predict = traced_predict(model, x)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        np.asarray(predict(x)["center"])
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scenes = [split_scene("test", i) for i in range(16)]
    x = np.concatenate([model_input(s.image[None], [s.noise_sigma]) for s in scenes])
    models = {"shipped": load_model(DEFAULT_MODEL_PATH),
              "paper-size 16-32-64-64-128": build_pais_model(filters=(16, 32, 64, 64, 128)),
              "small 8-16-32-32-64": build_pais_model(filters=(8, 16, 32, 32, 64))}
    result = {}
    for name, model in models.items():
        result[name] = {"tiles_per_s": tiles_per_second(model, x, args.repeats),
                        "parameters": int(model.count_params())}
        print(name, result[name], flush=True)
    result["shipped"]["cores_busy"] = cores_busy(models["shipped"], x, args.repeats)
    result["shipped"]["cores_available"] = len(os.sched_getaffinity(0))
    t = time.perf_counter()
    for s in scenes:
        run_sep(s.image[0], s.noise_sigma)
    result["sep"] = {"tiles_per_s": len(scenes) / (time.perf_counter() - t)}
    result["prototype_reference_tiles_per_s"] = {"paper-size": 2.7, "small": 9.3}
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    Path("docs/results/speed.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
