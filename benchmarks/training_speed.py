"""Training speed on this machine: float32 against mixed bfloat16, eager graph against XLA.

Each variant trains a copy of the shipped network (same weights, same Adam settings) on the
same stream of augmented batches of a training-set folder; the variants take turns, a few
steps each per round, so that the machine's load falls on all of them alike. Also measured: the
input pipeline's seconds per batch (crop, flips, rotations, masks: numpy on the same cores);
whole training steps with their batches made as they are needed against made ahead by a
background thread (``train.prefetched``); and each variant's loss on one fixed batch before
training, against float32's, so that a faster variant that computes another loss shows.

Usage: python benchmarks/training_speed.py --data training/data [--rounds 6 --steps 10]
Writes docs/results/training_speed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, load_model
from mosaic_pais.training.dataset import load_split
from mosaic_pais.training.loss import LossConfig
from mosaic_pais.training.train import (
    TrainConfig,
    make_steps,
    prefetched,
    training_batches,
    with_precision,
)

VARIANTS = {  # name: (precision, XLA)
    "float32": ("float32", False),
    "float32 + XLA": ("float32", True),
    "mixed_bfloat16": ("mixed_bfloat16", False),
    "mixed_bfloat16 + XLA": ("mixed_bfloat16", True),
}


def variant_steps(cfg: TrainConfig, precision: str, xla: bool):
    """A fresh copy of the shipped model and its compiled train/eval steps in one variant."""
    import keras

    cfg = replace(cfg, precision=precision, jit_compile=xla, init_from=str(DEFAULT_MODEL_PATH))
    model = with_precision(load_model(DEFAULT_MODEL_PATH), cfg)
    optimizer = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                      epsilon=cfg.epsilon)
    return make_steps(model, optimizer, cfg, LossConfig(**cfg.loss))


def as_tensors(batch):
    import tensorflow as tf

    x, labels = batch
    return tf.constant(x), {k: tf.constant(v) for k, v in labels.items()}


def whole_steps(data: dict, cfg: TrainConfig, steps: dict, rounds: int, n: int) -> dict:
    """Steps per second with the batches made in the loop: in turn, as they are needed and
    made ahead by a thread, for float32 and mixed bfloat16."""
    streams = {"sequential": training_batches(data, cfg, np.random.default_rng(1)),
               "prefetched": prefetched(training_batches(data, cfg, np.random.default_rng(1)))}
    seconds: dict[str, float] = {}
    for _ in range(rounds):
        for precision in ("float32", "mixed_bfloat16"):
            train_step = steps[precision][0]
            for how, stream in streams.items():
                t = time.perf_counter()
                for _ in range(n):
                    terms = train_step(*as_tensors(next(stream)))
                float(terms["loss"])
                key = f"{precision}, batches {how}"
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t
    return {key: rounds * n / s for key, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="training-set folder (train/ shards)")
    parser.add_argument("--config", default="training/configs/f160w_v15.json")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    parser.add_argument("--output", default="docs/results/training_speed.json")
    args = parser.parse_args()

    cfg = TrainConfig.from_json(args.config)
    data = load_split(Path(args.data) / "train")
    stream = training_batches(data, cfg, np.random.default_rng(0))
    t = time.perf_counter()
    next(stream)  # the first batch also computes the tiles' sampling weights, once
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    batches = [next(stream) for _ in range(args.steps)]
    pipeline_s = (time.perf_counter() - t) / len(batches)
    batches = [as_tensors(b) for b in batches]
    fixed = batches[0]

    steps = {name: variant_steps(cfg, *how) for name, how in VARIANTS.items()}
    first_loss = {}
    for name, (train_step, eval_step) in steps.items():
        first_loss[name] = float(eval_step(*fixed)["loss"])
        train_step(*batches[0])  # trace and compile outside the timing
    seconds = {name: 0.0 for name in steps}
    for _ in range(args.rounds):
        for name, (train_step, _) in steps.items():
            t = time.perf_counter()
            for x, labels in batches:
                terms = train_step(x, labels)
            float(terms["loss"])
            seconds[name] += time.perf_counter() - t
    n = args.rounds * args.steps
    rates = {name: n / s for name, s in seconds.items()}
    whole = whole_steps(data, cfg, steps, args.rounds, args.steps)
    result = {
        "benchmark": "training_speed",
        "config": args.config,
        "batch": cfg.batch, "crop": cfg.crop, "steps_per_variant": n,
        "input_pipeline_s_per_batch": pipeline_s,
        "input_pipeline_first_batch_s": first_s,
        "variants": {name: {"steps_per_s": rates[name],
                            "speedup_vs_float32": rates[name] / rates["float32"],
                            "loss_on_fixed_batch": first_loss[name],
                            "loss_vs_float32": first_loss[name] - first_loss["float32"]}
                     for name in steps},
        "whole_steps_per_s": whole,
    }
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
