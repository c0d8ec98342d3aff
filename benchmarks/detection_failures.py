"""Where detections go wrong: the false detections and the missed bright sources, classified.

On validation tiles (the split used to choose thresholds, never the test split), each method's
catalogue is matched to the truth within 3 px (as benchmarks/accuracy.py). Then:

* every detection that matches no truth is classed by what lies near it: a truth 3–8 px away
  (an offset centre, or a bright source split in two), or nothing within 8 px (a noise peak or
  a source far below the truth catalogue's depth);
* every missed in-frame truth of S/N ≥ 20 (bright enough that depth is not the reason) is
  classed by why: another truth within 3 px (a pair the 3 px match cannot separate), a
  detection 3–8 px away that matched nothing (the centre is off), one 3–8 px away that matched
  another truth (merged into a neighbour), or no detection within 8 px;
* the counted truths (H < 27) that no method finds, even the model at a permissive centre-map
  threshold of 0.2: they bound the completeness, and so the F1, reachable at this depth.

Usage:
  python benchmarks/detection_failures.py --tiles 200
  python benchmarks/detection_failures.py --tiles 200 --conditions goods-s --noise-correlation 0
Writes docs/results/detection_failures_val.json (``_val_goods-s_white.json``…); the conditions
are those of benchmarks/accuracy.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (  # noqa: I001 - sibling script
    conditions_suffix,
    decode_as_trained,
    model_catalog,
    split_scenes,
    tile_thresholds,
    with_offset,
)
from astropy.table import vstack
from scipy.spatial import cKDTree

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.evaluation.peers import run_photutils, run_sep
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.sim.scenes import SIMULATOR_VERSION

RADIUS, NEAR, BRIGHT_SNR = 3.0, 8.0, 20.0
#: the model's catalogue at this centre-map threshold joins the others in bounding what can be
#: found at all (the shipped threshold is chosen for F1, and drops faint true peaks)
PERMISSIVE_THRESHOLD = 0.2


def classify(catalog, truth, mag_limit: float = 27.0) -> dict:
    """Counts of false detections and missed bright truths by cause (see the module text)."""
    cxy = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
    txy = np.stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)], 1)
    d, t = match_catalogs(cxy, txy, RADIUS)
    det_matched = np.zeros(len(cxy), bool)
    det_matched[d] = True
    truth_matched = np.zeros(len(txy), bool)
    truth_matched[t] = True
    truth_tree, det_tree = cKDTree(txy), cKDTree(cxy)

    false = np.flatnonzero(~det_matched)
    dist, _ = truth_tree.query(cxy[false]) if len(false) else (np.zeros(0), None)
    false_causes = {"truth 3–8 px away": int(np.sum(dist < NEAR)),
                    "no truth within 8 px": int(np.sum(dist >= NEAR))}
    false_by_score = None
    if "score" in catalog.colnames:  # the model's peak score (a fraction of an ideal peak)
        score = np.asarray(catalog["score"], float)[false]
        false_by_score = {label: int(np.sum((score >= lo) & (score < hi)))
                          for label, lo, hi in (("< 0.9", -np.inf, 0.9), ("0.9–1.0", 0.9, 1.0),
                                                ("≥ 1.0", 1.0, np.inf))}

    bright = (np.asarray(truth["in_frame"], bool) & (np.asarray(truth["snr"]) >= BRIGHT_SNR)
              & (np.asarray(truth["mag"]) < mag_limit))
    missed = np.flatnonzero(bright & ~truth_matched)
    miss_causes = {"another truth within 3 px": 0, "a detection 3–8 px away matched nothing": 0,
                   "a detection 3–8 px away matched another truth": 0,
                   "no detection within 8 px": 0}
    for i in missed:
        neighbours = [j for j in truth_tree.query_ball_point(txy[i], RADIUS) if j != i]
        near = det_tree.query_ball_point(txy[i], NEAR) if len(cxy) else []
        if neighbours:
            miss_causes["another truth within 3 px"] += 1
        elif any(not det_matched[j] for j in near):
            miss_causes["a detection 3–8 px away matched nothing"] += 1
        elif near:
            miss_causes["a detection 3–8 px away matched another truth"] += 1
        else:
            miss_causes["no detection within 8 px"] += 1
    return {"n_detections": len(cxy), "n_false": len(false), "false": false_causes,
            "false_by_score": false_by_score,
            "n_bright": int(bright.sum()), "n_bright_missed": len(missed), "missed": miss_causes}


def found_by_none(catalogs, truth, mag_limit: float = 27.0) -> dict:
    """The counted truths (in frame, brighter than ``mag_limit``) that no catalogue finds.

    With every method's catalogue, and the model's at a permissive peak threshold, this bounds
    the completeness any of them reaches at this depth, and with it the F1: even with perfect
    purity, F1 = 2C / (1 + C).
    """
    txy = np.stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)], 1)
    found = np.zeros(len(txy), bool)
    for catalog in catalogs:
        cxy = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
        _, t = match_catalogs(cxy, txy, RADIUS)
        found[t] = True
    counted = np.asarray(truth["in_frame"], bool) & (np.asarray(truth["mag"]) < mag_limit)
    bright = counted & (np.asarray(truth["snr"]) >= BRIGHT_SNR)
    ceiling = float(found[counted].mean())
    return {"n_counted": int(counted.sum()), "found_by_none": int((counted & ~found).sum()),
            "n_bright": int(bright.sum()), "bright_found_by_none": int((bright & ~found).sum()),
            "completeness_ceiling": ceiling, "f1_ceiling": 2 * ceiling / (1 + ceiling)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--conditions", choices=("varied", "goods-s"), default="varied")
    parser.add_argument("--noise-correlation", type=float, default=None,
                        help="px, for every tile; 0 gives white noise (default: the conditions')")
    args = parser.parse_args()
    meta = model_metadata(DEFAULT_MODEL_PATH)
    scenes = split_scenes("val", args.tiles, args.conditions, args.noise_correlation)
    seen, sigmas, textures, preds = decode_as_trained(PAISPredictor(DEFAULT_MODEL_PATH), scenes,
                                                     meta)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)],
                   metadata_conflicts="silent")

    def model_at(thresholds: list[float]):
        return vstack([with_offset(model_catalog(
            p, j, seen[i].image, sigmas[i], thresholds[i], peak_finding(meta),
            str(meta["vote"])), i) for i, (p, j) in enumerate(preds)])

    catalogs = {
        "mosaic-pais": model_at(tile_thresholds(textures, meta)),
        **{name: vstack([with_offset(runner(s.image[0], s.noise_sigma), i)
                         for i, s in enumerate(scenes)])
           for name, runner in (("sep", run_sep), ("photutils", run_photutils))}}
    results = {name: classify(cat, truth) for name, cat in catalogs.items()}
    results["any method"] = found_by_none(
        [*catalogs.values(), model_at([PERMISSIVE_THRESHOLD] * len(preds))], truth)
    results["setup"] = {"split": "val", "tiles": args.tiles, "conditions": args.conditions,
                        "noise_correlation_px": args.noise_correlation,
                        "threshold": meta["threshold"],
                        "threshold_by_texture": meta.get("threshold_by_texture"),
                        "permissive_threshold": PERMISSIVE_THRESHOLD,
                        "vote": meta["vote"], "match_radius": RADIUS, "near": NEAR,
                        "bright_snr": BRIGHT_SNR}
    print(json.dumps(results, indent=1))
    out = Path("docs/results/detection_failures_val"
               f"{conditions_suffix(args.conditions, args.noise_correlation)}.json")
    results["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
