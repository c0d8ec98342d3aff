"""Where the model's flux error comes from: its detections, or the fractions it predicts.

On validation tiles, four catalogues are measured by the run's own decoder and flux estimator
and compared on the sources all of them recover:

- **the model** as a run decodes it;
- **true fractions at the model's detections**: the model's own peaks, every pixel's slots the
  nearest of them and its fractions the true light's. Each detection takes the labelled source
  it lies on (within 3 px, the brightest if several); the light of every source it does not take
  (missed, or below the labels' S/N) goes to the nearest detection, as no decoder can give
  light to a source that was not found. Its distance to the model is what the predicted
  fractions and votes cost; its distance to the perfect PCR what the detections cost;
- **the perfect PCR**: true centres and true fractions (:func:`accuracy.perfect_pcr_catalog`);
- **the known-shape fit**, the noise floor (:func:`accuracy.known_shape_catalog`).

Usage:
  python benchmarks/error_budget.py --tiles 300
Writes docs/results/error_budget.json (validation tiles only: this is a diagnostic for choosing
what to improve, and the test split stays untouched).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (
    decode_as_trained,
    known_shape_catalog,
    measured,
    perfect_pcr_catalog,
    resolved,
    split_scenes,
    tile_thresholds,
    true_fractions_catalog,
    with_offset,
)
from astropy.table import vstack

from mosaic_pais.evaluation.metrics import evaluate, flux_errors_on_common_sources
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.sim.scenes import SIMULATOR_VERSION
from mosaic_pais.training.dataset import labelled

CONDITIONS = {"GOODS-S depth, white noise": ("goods-s", 0.0), "varied": ("varied", None)}
ROWS = ("mosaic-pais", "true fractions at the model's detections", "perfect PCR",
        "known-shape fit")
#: a detection takes a labelled source within this distance (px), the matching radius of
#: every accuracy figure
TAKE_RADIUS = 3.0


def sources_at_detections(scene, peaks) -> np.ndarray:
    """``(detections, b, h, w)``: the noiseless light each detection would own if its
    fractions were exact (module text)."""
    det = np.stack([np.asarray(peaks.y, float), np.asarray(peaks.x, float)], 1)
    ty, tx = np.asarray(scene.truth["y"], float), np.asarray(scene.truth["x"], float)
    flux = np.asarray(scene.truth["flux"], float)
    owned = np.zeros((len(det),) + scene.sources.shape[1:], np.float64)
    taken = ~labelled(scene)  # unlabelled sources are never a detection's own
    for k, (y, x) in enumerate(det):
        near = np.flatnonzero((np.hypot(ty - y, tx - x) < TAKE_RADIUS) & ~taken)
        if len(near):
            j = near[np.argmax(flux[near])]
            owned[k] += scene.sources[j]
            taken[j] = True
    if len(det):
        left = np.flatnonzero(~taken | ~labelled(scene))
        nearest = np.argmin(np.hypot(ty[left, None] - det[None, :, 0],
                                     tx[left, None] - det[None, :, 1]), axis=1)
        np.add.at(owned, nearest, scene.sources[left])
    return owned


def tile_catalogues(predictor, meta: dict, scenes, first: int) -> dict:
    """Each row's stacked catalogue of ``scenes`` (tiles ``first`` on)."""
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, meta)
    thresholds, finding = tile_thresholds(textures, meta), peak_finding(meta)
    vote = str(meta.get("vote", "vectors"))
    cats: dict[str, list] = {name: [] for name in ROWS}
    for i, ((pred, j), scene) in enumerate(zip(preds, scenes, strict=True)):
        image, sigma = seen[i].image, sigmas[i]
        peaks, ids, frac = resolved(pred, j, float(thresholds[i]), finding, vote)
        rows = {"mosaic-pais": measured(peaks, ids, frac, image, sigma),
                ROWS[1]: true_fractions_catalog(peaks, sources_at_detections(scene, peaks),
                                                image, sigma),
                "perfect PCR": perfect_pcr_catalog(scene, image, sigma),
                "known-shape fit": known_shape_catalog(scene)}
        for name, table in rows.items():
            cats[name].append(with_offset(table, first + i))
    return cats


def budget(predictor, meta: dict, conditions: str, correlation, tiles: int,
           mag_limit: float, chunk: int = 50) -> dict:
    """Each row's own scores and the rows on their common sources, over ``tiles`` tiles."""
    from tqdm import tqdm

    cats: dict[str, list] = {name: [] for name in ROWS}
    truths = []
    for first in tqdm(range(0, tiles, chunk), desc=conditions, unit="chunk"):
        scenes = split_scenes("val", min(chunk, tiles - first), conditions, correlation,
                              start=first)
        for name, part in tile_catalogues(predictor, meta, scenes, first).items():
            cats[name] += part
        truths += [with_offset(s.truth, first + i) for i, s in enumerate(scenes)]
    truth = vstack(truths, metadata_conflicts="silent")
    stacked = {name: vstack(v) for name, v in cats.items()}
    own = {}
    for name, cat in stacked.items():
        r = evaluate(cat, truth, mag_limit=mag_limit)
        own[name] = {"f1": r["f1"], "completeness_blended": r["completeness_blended"],
                     "all": r["flux"], "blended": r["flux_blended"]}
    return {"own": own, "common": flux_errors_on_common_sources(stacked, truth,
                                                                mag_limit=mag_limit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    args = parser.parse_args()
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model, batch_size=16)
    result = {"setup": {"split": "val", "tiles": args.tiles, "model": str(args.model),
                        "mag_limit": args.mag_limit, "take_radius_px": TAKE_RADIUS,
                        "command": f"python benchmarks/error_budget.py --tiles {args.tiles}"},
              "simulator": SIMULATOR_VERSION, "conditions": {}}
    for label, (conditions, correlation) in CONDITIONS.items():
        r = budget(predictor, meta, conditions, correlation, args.tiles, args.mag_limit)
        result["conditions"][label] = r
        common = r["common"]
        print(f"{label}: common {common['n_common']}; median |δ| all / blended: " + ", ".join(
            f"{name} {common[name]['all']['median_abs']:.3f} / "
            f"{common[name]['blended']['median_abs']:.3f}" for name in ROWS), flush=True)
    out = Path("docs/results/error_budget.json")
    out.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
