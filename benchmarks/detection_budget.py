"""Where blended sources are lost: the network's centre map, or the peak finding that reads it.

On validation tiles, the detections of several centre maps read by peak finding, each scored
by F1 and by the completeness of blended sources (blendedness > 0.1, H < 27):

- **the model** as a run reads it (the card's thresholds by noise texture, window and
  matched-filter smoothing), and at lower thresholds;
- **the model, bare map**: no smoothing, a 3 × 3 window, threshold 0.5;
- **the true centre map**: the training labels' own map of the labelled sources (peak-1
  Gaussians of the card's width, :func:`mosaic_pais.pcr.center_map`) read by the card's peak
  finding at threshold 0.5, and bare (3 × 3 window, no smoothing);
- **the labelled centres** themselves: what any centre map of these labels can give.

The distance from the model to the true map read the same way is the network's; from the true
map to the labelled centres, the peak finding's.

Usage:
  python benchmarks/detection_budget.py --tiles 100
Writes docs/results/detection_budget.json (validation tiles only: a diagnostic for choosing
what to improve).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import decode_as_trained, split_scenes, tile_thresholds, with_offset
from astropy.table import Table, vstack

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.pcr import center_map, find_peaks
from mosaic_pais.sim.scenes import SIMULATOR_VERSION
from mosaic_pais.training.dataset import labelled

CONDITIONS = {"GOODS-S depth, white noise": ("goods-s", 0.0), "varied": ("varied", None)}
#: lower single thresholds the model's map is also read at
LOWER_THRESHOLDS = (0.7, 0.5)
BARE = {"window": 3, "smoothing": 0.0}


def _table(y, x) -> Table:
    return Table({"x": np.asarray(x, float), "y": np.asarray(y, float),
                  "flux": np.ones(len(x))})


def tile_detections(center: np.ndarray, scene, threshold: float, finding: dict) -> dict:
    """Each row's detections on one tile, as tables of x, y."""
    rows = {"model (card)": find_peaks(center, threshold=threshold, **finding)}
    for value in LOWER_THRESHOLDS:
        rows[f"model, threshold {value}"] = find_peaks(center, threshold=value, **finding)
    rows["model, bare map, threshold 0.5"] = find_peaks(center, threshold=0.5, **BARE)
    keep = labelled(scene)
    yx = np.stack([np.asarray(scene.truth["y"], float)[keep],
                   np.asarray(scene.truth["x"], float)[keep]], 1)
    truth_map = center_map(yx, center.shape, sigma=finding["center_sigma"])
    rows["true centre map (card's peak finding)"] = find_peaks(truth_map, threshold=0.5,
                                                               **finding)
    rows["true centre map, bare"] = find_peaks(truth_map, threshold=0.5, **BARE)
    tables = {name: _table(p.y, p.x) for name, p in rows.items()}
    tables["labelled centres"] = _table(yx[:, 0], yx[:, 1])
    return tables


def budget(predictor, meta: dict, conditions: str, correlation, tiles: int,
           mag_limit: float) -> dict:
    scenes = split_scenes("val", tiles, conditions, correlation)
    _, _, textures, preds = decode_as_trained(predictor, scenes, meta)
    thresholds, finding = tile_thresholds(textures, meta), peak_finding(meta)
    parts: dict[str, list] = {}
    for i, ((pred, j), scene) in enumerate(zip(preds, scenes, strict=True)):
        for name, table in tile_detections(pred.center[j], scene, thresholds[i],
                                           finding).items():
            parts.setdefault(name, []).append(with_offset(table, i))
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)],
                   metadata_conflicts="silent")
    out = {}
    for name, tables in parts.items():
        r = evaluate(vstack(tables), truth, mag_limit=mag_limit)
        out[name] = {key: r[key] for key in ("f1", "completeness", "purity",
                                             "completeness_blended")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=100)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    args = parser.parse_args()
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model, batch_size=16)
    result = {"setup": {"split": "val", "tiles": args.tiles, "model": str(args.model),
                        "mag_limit": args.mag_limit,
                        "command": f"python benchmarks/detection_budget.py --tiles {args.tiles}"},
              "simulator": SIMULATOR_VERSION, "conditions": {}}
    for label, (conditions, correlation) in CONDITIONS.items():
        rows = budget(predictor, meta, conditions, correlation, args.tiles, args.mag_limit)
        result["conditions"][label] = rows
        for name, r in rows.items():
            print(f"{label}: {name}: F1 {r['f1']:.3f}, blended completeness "
                  f"{r['completeness_blended']:.3f}", flush=True)
    out = Path("docs/results/detection_budget.json")
    out.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
