"""What holds the shipped model's F1 below the 0.93 target at GOODS-S depth with white noise.

Four measurements on *validation* tiles (never the test split), each decoded as the accuracy
benchmark decodes (the card's peak finding and thresholds by noise texture; only centres are
scored, so flux columns are not measured):

- **averaging predictions**: the centre map averaged over the image's flips and quarter turns
  (test-time augmentation, 2 and 8 transforms), and over the shipped model and an independently
  fine-tuned sibling (``--sibling``, default the v13 candidate). Each is scored at the card's
  thresholds and at its own best single threshold, since averaging flattens peaks. If the
  network's errors were its own noise, averaging would remove part of them;
- **match radius**: F1 of the same catalogue when a detection may lie 2–8 px from its truth
  (docs/metrics.md fixes 3 px). How fast F1 rises with the radius says how much of the gap is
  centres placed a few pixels off rather than sources missed or invented;
- **distance to the tile's edge**: completeness and purity of truths and detections by how far
  they lie from the nearest edge. Sources centred just outside a tile spill light over its edge;
  a detection of that light lies on the edge, px from the truth's centre beyond it;
- the same F1 on the tiles' 192² cores (what a mosaic run keeps of every window);
- **reference point**: the same detections (fully decoded and measured as a run measures them,
  the card's vote) placed at the network's centre (``x``, ``y``) or at the barycentre of their
  deblended light (``xcentroid``, ``ycentroid``, as SExtractor's X_IMAGE): whether the
  positions 3–8 px off are the centre map's own error, which the light would correct.

Usage:
  python benchmarks/f1_limits.py --tiles 300          # the figures in docs/benchmarks.md

Writes docs/results/f1_limits<conditions>.json (``f1_limits_goods-s_white.json`` by default).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from accuracy import (
    TILE_OFFSET,
    as_trained,
    conditions_suffix,
    core_scores,
    model_catalog,
    predict_scenes,
    scene_batches,
    split_scenes,
    tile_noise,
    tile_of,
    tile_thresholds,
    with_offset,
)
from astropy.table import Table, vstack
from centre_net_baseline import THRESHOLDS, above, peak_table, scores, tuned

from mosaic_pais.evaluation.metrics import evaluate, match_catalogs
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.runtime.tile import DEFAULT_TILE
from mosaic_pais.sim.scenes import SIMULATOR_VERSION

SIBLING = Path("training/candidates/f160w_v13.keras")
#: (quarter turns, mirrored) of each averaging: the identity, one mirror, the dihedral group
TRANSFORMS = {"flip": [(0, False), (0, True)],
              "dihedral": [(k, m) for k in range(4) for m in (False, True)]}
RADII = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
EDGE_BANDS = ((-np.inf, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, np.inf))


def centre_maps(predictor, scenes, sigmas, transforms=((0, False),)) -> list[np.ndarray]:
    """The model's centre map of every scene, averaged over ``transforms`` of every input.

    A transform turns the input by ``k`` quarter turns and then mirrors it left–right; its
    output is mapped back before averaging, so every map is in the tile's own frame.
    """
    maps = []
    for x in scene_batches(scenes, sigmas):
        total = 0.0
        for turns, mirrored in transforms:
            seen = np.rot90(x, turns, axes=(1, 2))
            seen = seen[:, :, ::-1] if mirrored else seen
            centre = np.asarray(predictor.model(np.ascontiguousarray(seen),
                                                training=False)["center"])[..., 0]
            centre = centre[:, :, ::-1] if mirrored else centre
            total = total + np.rot90(centre, -turns, axes=(1, 2))
        maps += list(total / len(transforms))
    return maps


def averaged(maps: list[np.ndarray], card_thresholds, truth: Table, mag_limit: float,
             finding: dict) -> dict:
    """Scores of (averaged) centre maps at the card's thresholds and at their own best single
    threshold (the middle of their F1 plateau, as ``accuracy.py --tune`` picks), since
    averaging flattens peaks."""
    peaks = peak_table(maps, finding)
    best, curve = tuned(peaks, truth, mag_limit)
    return {"card": rounded(scores(peaks, truth, card_thresholds, mag_limit)),
            "best_single_threshold": best,
            "best_single": rounded(scores(peaks, truth, best, mag_limit)),
            "f1_by_threshold": curve}


def rounded(score: dict) -> dict:
    """Floats to 4 decimals, other values as they are."""
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in score.items()}


def edge_distance(x, y, tile: int = DEFAULT_TILE) -> np.ndarray:
    """Distance (px) of positions on the virtual plane from their own tile's nearest edge;
    negative beyond it."""
    local = np.asarray(x, float) - tile_of(Table({"x": x})) * TILE_OFFSET
    y = np.asarray(y, float)
    return np.minimum.reduce([local + 0.5, tile - 0.5 - local, y + 0.5, tile - 0.5 - y])


def matched(catalog: Table, truth: Table, mag_limit: float) -> tuple[np.ndarray, ...]:
    """Which truths are found, which detections are true (3 px), and which truths counted."""
    det, tru = match_catalogs(np.c_[catalog["x"], catalog["y"]], np.c_[truth["x"], truth["y"]])
    found = np.zeros(len(truth), bool)
    found[tru] = True
    true_det = np.zeros(len(catalog), bool)
    true_det[det] = True
    counted = np.asarray(truth["in_frame"], bool) & (np.asarray(truth["mag"]) < mag_limit)
    return found, true_det, counted


def by_edge(catalog: Table, truth: Table, mag_limit: float) -> list[dict]:
    """Completeness of counted truths and purity of detections by distance to the tile edge."""
    found, true_det, counted = matched(catalog, truth, mag_limit)
    truth_edge = edge_distance(truth["x"], truth["y"])
    det_edge = edge_distance(catalog["x"], catalog["y"])
    rows = []
    for lo, hi in EDGE_BANDS:
        t = counted & (truth_edge >= lo) & (truth_edge < hi)
        d = (det_edge >= lo) & (det_edge < hi)
        rows.append({"from_px": None if np.isinf(lo) else lo, "to_px": None if np.isinf(hi) else hi,
                     "truths": int(t.sum()), "missed": int((t & ~found).sum()),
                     "completeness": round(float(found[t].mean()), 4) if t.any() else None,
                     "detections": int(d.sum()), "false": int((d & ~true_det).sum()),
                     "purity": round(float(true_det[d].mean()), 4) if d.any() else None})
    return rows


def offset_pairs(catalog: Table, truth: Table, mag_limit: float) -> dict:
    """Missed counted truths with an unmatched detection 3–8 px away (a centre placed off its
    source), by the truth's kind."""
    found, true_det, counted = matched(catalog, truth, mag_limit)
    free = ~true_det
    missed = np.flatnonzero(counted & ~found)
    if not free.any() or not len(missed):
        return {}
    d = np.hypot(np.asarray(catalog["x"])[free][None, :] - np.asarray(truth["x"])[missed, None],
                 np.asarray(catalog["y"])[free][None, :] - np.asarray(truth["y"])[missed, None])
    near = missed[((d >= 3.0) & (d < 8.0)).any(1)]
    kinds, counts = np.unique(np.asarray(truth["kind"])[near], return_counts=True)
    out = {str(k): int(c) for k, c in zip(kinds, counts, strict=True)}
    if "cosmos_index" in truth.colnames:  # how many of the COSMOS stamps they come from
        stamps = np.asarray(truth["cosmos_index"])[near]
        out["cosmos_stamps"] = int(len(np.unique(stamps[stamps >= 0])))
        counted_stamps = np.asarray(truth["cosmos_index"])[counted]
        out["cosmos_stamps_counted"] = int(len(np.unique(counted_stamps[counted_stamps >= 0])))
    return out


def reference_points(predictor, seen, sigmas, card, finding: dict, vote: str, truth: Table,
                     mag_limit: float) -> dict:
    """F1 of the card's detections placed at the network's centre and at their light's
    barycentre (each tile decoded and measured as a run does: ``accuracy.model_catalog``)."""
    at = {"centre map (x, y)": [], "light barycentre (xcentroid, ycentroid)": []}
    for i, (pred, j) in enumerate(predict_scenes(predictor, seen, sigmas)):
        cat = model_catalog(pred, j, seen[i].image, float(sigmas[i]), float(card[i]), finding,
                            vote)
        # a source without light above its isophote keeps the network's centre
        xc = np.where(np.isfinite(cat["xcentroid"]), cat["xcentroid"], cat["x"])
        yc = np.where(np.isfinite(cat["ycentroid"]), cat["ycentroid"], cat["y"])
        for name, (x, y) in zip(at, ((cat["x"], cat["y"]), (xc, yc)), strict=True):
            at[name].append(with_offset(Table({"x": x, "y": y, "flux": cat["flux"]}), i))
    return {name: rounded({k: r[k] for k in ("completeness", "purity", "f1")})
            for name, parts in at.items()
            for r in [evaluate(vstack(parts), truth, mag_limit=mag_limit)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--sibling", type=Path, default=SIBLING)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    parser.add_argument("--conditions", choices=("varied", "goods-s"), default="goods-s")
    parser.add_argument("--noise-correlation", type=float, default=0.0)
    args = parser.parse_args()
    if args.split == "test":
        parser.error("diagnostics are made on validation tiles; the test split stays untouched")
    meta = model_metadata(args.model)
    finding = peak_finding(meta)
    scenes = split_scenes(args.split, args.tiles, args.conditions, args.noise_correlation)
    seen = as_trained(scenes, meta)
    sigmas, textures = tile_noise(seen)
    card = tile_thresholds(textures, meta)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    predictor = PAISPredictor(args.model)

    t0 = time.time()
    plain = centre_maps(predictor, seen, sigmas)
    seconds = {"plain": time.time() - t0}
    catalog = above(peak_table(plain, finding), card)
    results = {"plain": averaged(plain, card, truth, args.mag_limit, finding)}
    print(f"plain: {results['plain']}", flush=True)
    for name, transforms in TRANSFORMS.items():
        t0 = time.time()
        maps = centre_maps(predictor, seen, sigmas, transforms)
        seconds[name] = time.time() - t0
        results[name] = averaged(maps, card, truth, args.mag_limit, finding)
        print(f"{name}: {results[name]}", flush=True)
    if args.sibling.exists():
        sibling = centre_maps(PAISPredictor(args.sibling), seen, sigmas)
        results["sibling"] = averaged(sibling, card, truth, args.mag_limit, finding)
        results["with_sibling"] = averaged([(a + b) / 2 for a, b in zip(plain, sibling,
                                                                        strict=True)],
                                           card, truth, args.mag_limit, finding)
        print(f"sibling: {results['sibling']}\nwith sibling: {results['with_sibling']}",
              flush=True)
    points = reference_points(predictor, seen, sigmas, card, finding,
                              str(meta.get("vote", "vectors")), truth, args.mag_limit)
    print(f"reference points: {points}", flush=True)
    out = {
        "averaging": results,
        "reference_points": points,
        "inference_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "by_match_radius": [
            {"radius_px": r} | rounded({k: result[k] for k in ("completeness", "purity", "f1")})
            for r in RADII
            for result in [evaluate(catalog, truth, radius=r, mag_limit=args.mag_limit)]],
        "by_edge_distance": by_edge(catalog, truth, args.mag_limit),
        "tile_core": core_scores(catalog, truth, args.mag_limit),
        "offset_pairs_by_kind": offset_pairs(catalog, truth, args.mag_limit),
        "setup": {"split": args.split, "tiles": args.tiles, "conditions": args.conditions,
                  "noise_correlation_px": args.noise_correlation, "model": str(args.model),
                  "sibling": str(args.sibling) if args.sibling.exists() else None,
                  "mag_limit": args.mag_limit, "window": finding["window"],
                  "thresholds_tried": list(THRESHOLDS)},
    }
    print(json.dumps({k: out[k] for k in ("by_match_radius", "by_edge_distance", "tile_core")},
                     indent=1, default=float))
    path = Path(f"docs/results/f1_limits"
                f"{conditions_suffix(args.conditions, args.noise_correlation)}.json")
    out["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    path.write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
