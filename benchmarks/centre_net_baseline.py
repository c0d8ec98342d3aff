"""A plain centre-map network, rebuilt and trained here, beside the shipped model.

The F1 target of 0.93 was set because a throwaway experiment on this machine reached F1 0.940
on 50 tiles of its own simulator with a 0.41 M-parameter U-Net that predicts only the centre
map, trained for 25 minutes on these 2 cores. This script repeats that recipe on this project's
simulator, so the target can be read against what the recipe itself reaches on the same data:

- the network: a U-Net of widths 16-32-64-64 (two 3×3 convolutions with batch normalisation
  per level, max-pooling down to a 64-wide bottleneck at 1/16 scale, nearest upsampling and
  skip concatenation up; 0.49 M parameters, §8 had 0.41 M), input
  asinh(I / 3σ) and the validity mask, a sigmoid centre map out;
- the training: random 128×128 crops of the training split's tiles (flips and quarter turns),
  16 per step, MSE weighted by (1 + 20·target) over valid pixels, Adam 1e-3 → 3e-4 → 1e-4
  (at 40% and 75% of the steps); 1,750 steps are about 7,000 tile equivalents, §8's 25 minutes;
- the labels: the training set's own centre maps (Gaussians of σ = 2 px at the sources the data
  can show, ``train.label_scene``), those the shipped model learned from.

Both networks are then decoded alike (the shipped card's peak finding: the matched filter and its
window), each at the threshold that is best on validation tiles of the same conditions (the
middle of its F1 plateau, as ``accuracy.py --tune`` picks), and scored on held-out test tiles.
The shipped model is also scored at its card's thresholds, the figure docs/benchmarks.md quotes.

Usage:
  python benchmarks/centre_net_baseline.py --data training/data --train-tiles 2000
  python benchmarks/centre_net_baseline.py --data DIR --train-tiles 5000 --start 5000 \\
      --test-tiles 1500                                  # the figures in docs/benchmarks.md

The training split is built under ``DIR/train`` if its shards are missing (``build_training_set``;
finished shards are kept). Writes docs/results/centre_net_baseline<conditions>.json; the trained
network goes to benchmarks/output/centre_net/model.keras.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from accuracy import (  # noqa: I001 - sibling script
    as_trained,
    conditions_suffix,
    plateau_middle,
    predict_scenes,
    scene_batches,
    split_scenes,
    tile_noise,
    tile_of,
    tile_thresholds,
    with_offset,
)
from astropy.table import Table, vstack
from tqdm import tqdm

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.layers import AsinhStretch
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    model_input,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import find_peaks
from mosaic_pais.sim.scenes import SIMULATOR_VERSION
from mosaic_pais.training.dataset import build_training_set

ROOT = Path(__file__).resolve().parents[1]
#: §8's widths, and the weight of source pixels in its loss
WIDTHS = (16, 32, 64, 64)
CENTER_WEIGHT = 20.0
#: §8's crops per step and their size (px)
BATCH, CROP = 16, 128
#: thresholds tried on the validation tiles, wider than ``accuracy.py --tune``'s: the two
#: networks' scores need not sit on the same scale; peaks are found once, at the lowest
THRESHOLDS = tuple(round(t, 3) for t in np.arange(0.2, 0.96, 0.05))
FLOOR = THRESHOLDS[0]


def build_centre_net(widths=WIDTHS, n_bands: int = 1):
    """§8's U-Net: input (h, w, n_bands + 1) = S/N and validity, as
    :func:`mosaic_pais.nn.model.model_input` makes them, stretched by the shipped model's own
    asinh layer; output the centre map (h, w, 1). h and w must be multiples of 2**len(widths)."""
    import keras
    from keras import layers

    def block(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    inputs = keras.Input((None, None, n_bands + 1))
    x, skips = AsinhStretch(scale=3.0, n_bands=n_bands)(inputs), []
    for filters in widths:
        x = block(x, filters)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block(x, widths[-1])  # the bottleneck
    for filters, skip in zip(reversed(widths), reversed(skips), strict=True):
        x = layers.UpSampling2D(2)(x)
        x = block(layers.Concatenate()([x, skip]), filters)
    center = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, center, name="centre_net")


def load_training_tiles(folder: Path, first: int, n_tiles: int) -> dict:
    """Image, centre map and noise sigma of training tiles ``first`` … ``first + n_tiles - 1``."""
    import zarr

    parts: dict[str, list] = {"image": [], "center": [], "noise_sigma": []}
    for path in sorted(folder.glob("shard_*.zarr")):
        group = zarr.open_group(str(path), mode="r")
        start, size = int(group.attrs["first_index"]), int(group.attrs["n_tiles"])
        lo, hi = max(first, start), min(first + n_tiles, start + size)
        if not group.attrs.get("complete") or lo >= hi:
            continue
        for key in parts:
            parts[key].append(np.asarray(group[key][lo - start:hi - start]))
    data = {k: np.concatenate(v) for k, v in parts.items()}
    if len(data["image"]) != n_tiles:
        raise SystemExit(f"{folder} holds {len(data['image'])} of the {n_tiles} tiles asked")
    return data


def batches(data: dict, batch: int, crop: int, rng: np.random.Generator):
    """Endless (x, centre) batches of random crops, flips and quarter turns."""
    n, _, h, w = data["image"].shape
    while True:
        xs, ys = [], []
        for _ in range(batch):
            i = int(rng.integers(0, n))
            y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
            x = model_input(data["image"][i][None][..., window[0], window[1]],
                            data["noise_sigma"][i])[0]
            # labels as a last channel, so that one flip or turn moves both alike
            stack = np.concatenate([x, data["center"][i][window][..., None]], axis=-1)
            if rng.random() < 0.5:
                stack = stack[::-1]
            if rng.random() < 0.5:
                stack = stack[:, ::-1]
            stack = np.rot90(stack, int(rng.integers(0, 4)), axes=(0, 1))
            xs.append(stack[..., :-1])
            ys.append(stack[..., -1])
        yield np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def train_centre_net(data: dict, steps: int, batch: int = BATCH, crop: int = CROP,
                     seed: int = 0):
    """§8's training (see the module text); returns the model and the seconds it took."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = build_centre_net()
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.4 * steps), int(0.75 * steps)], [1e-3, 3e-4, 1e-4])
    optimizer = keras.optimizers.Adam(schedule)

    @tf.function
    def step(x, y):
        valid = x[..., -1]
        with tf.GradientTape() as tape:
            pred = model(x, training=True)[..., 0]
            weight = (1.0 + CENTER_WEIGHT * y) * valid
            loss = tf.reduce_sum(weight * tf.square(pred - y)) / tf.reduce_sum(valid)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    stream = batches(data, batch, crop, np.random.default_rng(seed))
    start = time.perf_counter()
    with tqdm(range(steps), desc="centre net") as bar:
        for _ in bar:
            loss = step(*next(stream))
            bar.set_postfix(loss=f"{float(loss):.4f}")
    return model, time.perf_counter() - start


def centre_maps(model, scenes, sigmas) -> list[np.ndarray]:
    """The centre-map network on every scene."""
    return [c for x in scene_batches(scenes, sigmas)
            for c in np.asarray(model(x, training=False))[..., 0]]


def peak_table(maps, finding: dict) -> Table:
    """Every peak of every map down to :data:`FLOOR`, stacked as ``accuracy.with_offset`` does
    (flux is a placeholder: only detection is scored here)."""
    rows = []
    for i, center in enumerate(maps):
        p = find_peaks(center, threshold=FLOOR, **finding)
        rows.append(with_offset(Table({"x": p.x, "y": p.y, "score": p.score,
                                       "flux": np.ones(len(p))}), i))
    return vstack(rows)


def above(peaks: Table, threshold) -> Table:
    """The peaks scoring above ``threshold``: one for all tiles or one per tile."""
    cut = np.asarray(threshold, float)
    if cut.ndim:
        cut = cut[tile_of(peaks)]
    return peaks[np.asarray(peaks["score"]) > cut]


def scores(peaks: Table, truth: Table, threshold, mag_limit: float) -> dict:
    """Completeness, purity and F1 at one threshold or one per tile."""
    r = evaluate(above(peaks, threshold), truth, mag_limit=mag_limit)
    return {k: r[k] for k in ("completeness", "purity", "f1", "n_detections")}


def tuned(peaks: Table, truth: Table, mag_limit: float) -> tuple[float, list]:
    f1 = [scores(peaks, truth, t, mag_limit)["f1"] for t in THRESHOLDS]
    return plateau_middle(f1, THRESHOLDS), [round(f, 4) for f in f1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / "training" / "data"))
    parser.add_argument("--train-tiles", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="first training tile")
    parser.add_argument("--steps", type=int, default=1750)
    parser.add_argument("--val-tiles", type=int, default=200)
    parser.add_argument("--test-tiles", type=int, default=500)
    parser.add_argument("--conditions", choices=("varied", "goods-s"), default="goods-s")
    parser.add_argument("--noise-correlation", type=float, default=0.0,
                        help="px; 0 (the default) is white noise, §8's conditions")
    parser.add_argument("--mag-limit", type=float, default=27.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train_dir = build_training_set(args.data, "train", args.train_tiles, start=args.start,
                                   processes=2)
    data = load_training_tiles(train_dir, args.start, args.train_tiles)
    net, seconds = train_centre_net(data, args.steps, seed=args.seed)
    del data
    out_dir = ROOT / "benchmarks" / "output" / "centre_net"
    out_dir.mkdir(parents=True, exist_ok=True)
    net.save(out_dir / "model.keras")

    meta = model_metadata(DEFAULT_MODEL_PATH)
    finding = peak_finding(meta)
    predictor = PAISPredictor()
    result = {"recipe": {"widths": list(WIDTHS), "parameters": int(net.count_params()),
                         "steps": args.steps, "batch": BATCH, "crop": CROP,
                         "tile_equivalents": args.steps * BATCH * CROP ** 2 // 256 ** 2,
                         "training_tiles": args.train_tiles, "first_training_tile": args.start,
                         "training_seconds": round(seconds, 1)},
              "shipped": {"sha256": meta.get("sha256"), "parameters":
                          int(predictor.model.count_params())},
              "conditions": args.conditions, "noise_correlation": args.noise_correlation,
              "mag_limit": args.mag_limit, "peak_finding": finding}
    for split, n in (("val", args.val_tiles), ("test", args.test_tiles)):
        scenes = split_scenes(split, n, args.conditions, args.noise_correlation)
        sigmas, _ = tile_noise(scenes)  # the baseline's inputs; thresholds go by `seen`'s
        truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
        baseline = peak_table(centre_maps(net, scenes, sigmas), finding)
        # the shipped model gets its tiles as it was trained to see them (sky subtracted when
        # its card says so); the baseline was trained on tiles as simulated
        seen = as_trained(scenes, meta)
        seen_sigmas, textures = tile_noise(seen)
        shipped_maps = []
        for k in range(0, n, 64):  # in chunks: the full outputs of all tiles would be GBs
            shipped_maps += [p.center[j] for p, j in
                             predict_scenes(predictor, seen[k:k + 64], seen_sigmas[k:k + 64])]
        shipped = peak_table(shipped_maps, finding)
        if split == "val":
            result["val"] = {"tiles": n}
            for name, peaks in (("centre_net", baseline), ("shipped", shipped)):
                best, curve = tuned(peaks, truth, args.mag_limit)
                result["val"][name] = {"threshold": best, "f1_by_threshold": curve}
            result["val"]["thresholds"] = list(THRESHOLDS)
            continue
        result["test"] = {
            "tiles": n, "n_truth_counted": int(evaluate(Table({"x": [], "y": [], "flux": []}),
                                                        truth, mag_limit=args.mag_limit)
                                               ["n_truth_counted"]),
            "centre_net": scores(baseline, truth, result["val"]["centre_net"]["threshold"],
                                 args.mag_limit),
            "shipped_tuned_here": scores(shipped, truth, result["val"]["shipped"]["threshold"],
                                         args.mag_limit),
            "shipped_card": scores(shipped, truth, tile_thresholds(textures, meta),
                                   args.mag_limit),
        }
    name = "centre_net_baseline" + conditions_suffix(args.conditions, args.noise_correlation)
    path = ROOT / "docs" / "results" / f"{name}.json"
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["test"], indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
