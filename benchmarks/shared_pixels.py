"""How models share the light of pixels that two or more sources share, against the truth.

On validation tiles, the pixels whose labelled light is shared (no source holds 80% of it) and
bright (noiseless S/N > 2) are where deblending decides the blended fluxes. For each model: the
light-weighted mean fraction it gives the pixel's nearest source (slot 0) beside the true one,
the same where the nearest source should get less than 0.3 (the pixel is mostly a farther,
brighter source's), and the light-weighted mean |predicted − true| over the slots. A model that
partitions the light by distance gives slot 0 nearly everything in both rows.

Usage:
  python benchmarks/shared_pixels.py --tiles 60 \\
      --model f160w_v14=mosaic_pais/models/pais_f160w.keras \\
      --model f160w_v15=training/candidates/f160w_v15.keras
Writes docs/results/shared_pixels.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from accuracy import decode_as_trained, split_scenes

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata
from mosaic_pais.training.dataset import label_scene, labelled
from mosaic_pais.training.train import model_file

#: a pixel is shared when no source holds this much of its labelled light
SHARED_BELOW = 0.8
#: and counts when its noiseless labelled light is above this many noise σ
MIN_SNR = 2.0


def shared_pixels(scene, fractions: np.ndarray, sigma: float) -> tuple:
    """(true, predicted fractions ``(pixels, slots)``, light ``(pixels,)``) of a scene's shared,
    bright pixels; ``fractions`` is the model's ``(h, w, b, n)`` output for it."""
    true = label_scene(scene)["fractions"][:, :, 0, :]
    light = scene.sources[labelled(scene)][:, 0].sum(0)
    chosen = (true.max(-1) < SHARED_BELOW) & (light / sigma > MIN_SNR)
    return true[chosen], fractions[:, :, 0, :][chosen], light[chosen]


def model_shares(path: Path, scenes) -> dict:
    meta = model_metadata(path)
    seen, sigmas, _, preds = decode_as_trained(PAISPredictor(path, batch_size=16), scenes, meta)
    parts = [shared_pixels(scene, pred.fractions[j], float(sigmas[i]))
             for i, ((pred, j), scene) in enumerate(zip(preds, scenes, strict=True))]
    true, predicted, light = (np.concatenate([p[k] for p in parts]) for k in range(3))
    mostly_farther = true[:, 0] < 0.3

    def mean(values, where=slice(None)):
        return round(float(np.average(values[where], weights=light[where])), 4)

    return {"pixels": int(len(light)), "pixels_mostly_farther": int(mostly_farther.sum()),
            "nearest_true": mean(true[:, 0]), "nearest_predicted": mean(predicted[:, 0]),
            "nearest_true_where_mostly_farther": mean(true[:, 0], mostly_farther),
            "nearest_predicted_where_mostly_farther": mean(predicted[:, 0], mostly_farther),
            "mean_abs_error": mean(np.abs(predicted - true).sum(-1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=60)
    parser.add_argument("--model", action="append", default=None,
                        help="NAME=PATH of a .keras model or a run folder with a checkpoint "
                             "(repeatable; default: the shipped model)")
    args = parser.parse_args()
    models = dict(spec.split("=", 1) for spec in args.model or
                  [f"shipped={DEFAULT_MODEL_PATH}"])
    # GOODS-S depth with white noise: the conditions of the blended targets
    scenes = split_scenes("val", args.tiles, "goods-s", 0.0)
    result = {"tiles": args.tiles, "conditions": "GOODS-S depth, white noise",
              "shared_below": SHARED_BELOW, "min_snr": MIN_SNR, "models": {},
              "command": "python benchmarks/shared_pixels.py --tiles "
                         f"{args.tiles} " + " ".join(f"--model {k}={v}"
                                                     for k, v in models.items())}
    scratch = Path(tempfile.mkdtemp())
    for name, path in models.items():
        result["models"][name] = {"path": path,
                                  **model_shares(model_file(Path(path), scratch), scenes)}
        print(name, json.dumps(result["models"][name]), flush=True)
    Path("docs/results/shared_pixels.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
