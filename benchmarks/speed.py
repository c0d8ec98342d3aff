"""Inference speed on this machine: tiles/s, side by side in one run.

Compares the shipped model with the paper-size architecture (16-32-64-64-128) and the small
prototype configuration (8-16-32-32-64) built by the same code, and with sep on the same tiles;
then the shipped model's variants: bfloat16 instead of float32
(:func:`mosaic_pais.nn.model.inference_network`; this CPU has AVX-512 BF16 and AMX), XLA-compiled
calls, and batch sizes 8, 16 and 32. Every variant is timed in turns, one batch each round,
so that the shared machine's load falls on all alike; a variant's figure is its median round
(and its best). The ratios are what to trust: this machine is shared and noisy. Also records
how many CPU cores the shipped model keeps busy while it predicts (CPU seconds of the process
per wall second): whatever else a run does on a CPU-only machine competes with the network.

Usage: python benchmarks/speed.py [--rounds 12]
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
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    build_pais_model,
    cpu_has_bfloat16,
    inference_network,
    load_model,
    model_input,
)
from mosaic_pais.training.dataset import split_scene

#: the shipped model's variants: (network, precision, XLA, batch); "as trained" is the Keras
#: model as saved, "folded" the network a run computes (nn.model.inference_network)
VARIANTS = {"as trained, float32, batch 16": ("as trained", "float32", False, 16),
            "folded, float32, batch 16": ("folded", "float32", False, 16),
            "folded, bfloat16, batch 16": ("folded", "bfloat16", False, 16),
            "folded, float32 + XLA, batch 16": ("folded", "float32", True, 16),
            "folded, bfloat16 + XLA, batch 16": ("folded", "bfloat16", True, 16),
            "folded, bfloat16, batch 8": ("folded", "bfloat16", False, 8),
            "folded, bfloat16, batch 32": ("folded", "bfloat16", False, 32)}
ARCHITECTURES = {"paper-size 16-32-64-64-128": (16, 32, 64, 64, 128),
                 "small 8-16-32-32-64": (8, 16, 32, 32, 64)}


def traced_predict(model, x: np.ndarray, jit: bool = False):
    """``model`` as one compiled call, traced on ``x`` so that timing starts after tracing."""
    import tensorflow as tf

    predict = tf.function(lambda t: model(t, training=False), jit_compile=jit)
    predict(x)
    return predict


def timed_in_turns(calls: dict, rounds: int) -> dict:
    """Tiles/s of each ``name: (predict, x)``, one call each per round: median and best."""
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (predict, x) in calls.items():
            t = time.perf_counter()
            np.asarray(predict(x)["center"])
            seconds[name].append((time.perf_counter() - t) / len(x))
    return {name: {"tiles_per_s": 1 / float(np.median(s)), "best_tiles_per_s": 1 / min(s)}
            for name, s in seconds.items()}


def cores_busy(predict, x: np.ndarray, repeats: int) -> float:
    """CPU seconds per wall second (all threads of this process) while ``predict`` runs."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        np.asarray(predict(x)["center"])
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    scenes = [split_scene("test", i) for i in range(32)]
    x = np.concatenate([model_input(s.image[None], [s.noise_sigma]) for s in scenes])
    shipped = load_model(DEFAULT_MODEL_PATH)
    networks = {"shipped": shipped, **{name: build_pais_model(filters=filters)
                                       for name, filters in ARCHITECTURES.items()}}
    calls = {}
    for name, model in networks.items():  # every architecture as a run computes it
        if name == "shipped":  # its folded batch-16 variants below are these
            continue
        for precision in ("float32", "bfloat16"):
            calls[f"{name} {precision}"] = (traced_predict(
                inference_network(model, precision), x[:16]), x[:16])
    folded = {p: inference_network(shipped, p) for p in ("float32", "bfloat16")}
    for name, (network, precision, jit, batch) in VARIANTS.items():
        model = shipped if network == "as trained" else folded[precision]
        calls[f"shipped {name}"] = (traced_predict(model, x[:batch], jit), x[:batch])
    for precision in ("float32", "bfloat16"):
        calls[f"shipped {precision}"] = calls[f"shipped folded, {precision}, batch 16"]
    timed = timed_in_turns({k: v for k, v in calls.items()
                            if k not in ("shipped float32", "shipped bfloat16")}, args.rounds)
    for precision in ("float32", "bfloat16"):
        timed[f"shipped {precision}"] = timed[f"shipped folded, {precision}, batch 16"]
    result = {name: {**timed[f"{name} float32"], "parameters": int(m.count_params()),
                     "bfloat16_tiles_per_s": timed[f"{name} bfloat16"]["tiles_per_s"]}
              for name, m in networks.items()}
    result["variants"] = {name: {**timed[f"shipped {name}"], "network": network,
                                 "precision": precision, "xla": jit, "batch": batch}
                          for name, (network, precision, jit, batch) in VARIANTS.items()}
    result["shipped"]["cores_busy"] = cores_busy(*calls["shipped float32"], args.rounds)
    result["shipped"]["cores_busy_bfloat16"] = cores_busy(*calls["shipped bfloat16"],
                                                          args.rounds)
    result["shipped"]["cores_available"] = len(os.sched_getaffinity(0))
    result["cpu_has_bfloat16"] = cpu_has_bfloat16()
    t = time.perf_counter()
    for s in scenes[:16]:
        run_sep(s.image[0], s.noise_sigma)
    result["sep"] = {"tiles_per_s": 16 / (time.perf_counter() - t)}
    # the research prototype's own code on this kind of machine, with another TensorFlow:
    # measured elsewhere, so any ratio to it is indicative only
    result["prototype_reference_tiles_per_s"] = {"paper-size": 2.7, "small": 9.3}
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    Path("docs/results/speed.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
