"""How a pixel's slots are resolved to detected sources, and what it does to deblended fluxes.

The network orders each pixel's slots by distance to the sources its labels hold (matched-filter
S/N ≥ 5); the decoder must say which detected source each slot is
(:func:`mosaic_pais.pcr.resolve_votes`): by the claim vectors (``vectors``), by the pixel's own
distance order among the detected peaks (``geometric``), or geometrically within a radius of
the nearest detected peak and by the vectors beyond (``mixed``). On *validation* tiles (never
the test split), decoded and measured as the accuracy benchmark does (the card's peaks and
thresholds; only the vote changes), in the varied conditions and at GOODS-S depth with white
noise:

- median |δ| and bias of all counted truths, of the blended ones (β > 0.1) and per magnitude
  bin, for each mode and for ``mixed`` at several radii;
- the share of an isolated bright galaxy's noiseless light (H < 22, β < 0.01, ≥ 97% of it in
  the tile, detected within 3 px) that the resolved slots give to other sources: the light
  the vote hands away before any measuring.

Usage:
  python benchmarks/vote_modes.py --tiles 300     # the figures in docs/benchmarks.md

Writes docs/results/vote_modes.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (
    decode_as_trained,
    measured,
    resolved,
    split_scenes,
    tile_thresholds,
    with_offset,
)
from astropy.table import vstack

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.pcr import MIXED_VOTE_RADIUS
from mosaic_pais.sim.scenes import SIMULATOR_VERSION

#: (mode, radius in px of a ``mixed`` vote)
VARIANTS = (("geometric", None), ("vectors", None), ("mixed", 4.0), ("mixed", 6.0),
            ("mixed", 8.0), ("mixed", 12.0), ("mixed", 20.0))
CONDITIONS = (("varied", None), ("goods-s", 0.0))


def given_away(scene, peaks, ids, frac) -> list[float]:
    """Share of each isolated bright galaxy's noiseless light whose slots go to other sources."""
    truth = scene.truth
    chosen = (np.asarray(truth["mag"]) < 22) & np.asarray(truth["in_frame"], bool) & (
        np.asarray(truth["blendedness"]) < 0.01) & (np.asarray(truth["kind"]) != "star")
    shares = []
    for k in np.flatnonzero(chosen):
        light = scene.sources[k, 0]
        if len(peaks) == 0 or light.sum() < 0.97 * float(truth["flux"][k]):
            continue
        distance = np.hypot(peaks.y - truth["y"][k], peaks.x - truth["x"][k])
        if distance.min() > 3.0:
            continue
        own = ((ids == int(np.argmin(distance))) * frac[0]).sum(0)
        shares.append(float((light * (1.0 - own)).sum() / light.sum()))
    return shares


def compare(scenes, meta: dict, predictor) -> dict:
    """Every variant's flux statistics on ``scenes``."""
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, meta)
    thresholds = tile_thresholds(textures, meta)
    finding = peak_finding(meta)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    counted = np.asarray(truth["in_frame"], bool) & (np.asarray(truth["mag"]) < 27.0)
    out = []
    for mode, radius in VARIANTS:
        rows, shares = [], []
        for i, (pred, j) in enumerate(preds):
            peaks, ids, frac = resolved(pred, j, thresholds[i], finding, mode,
                                        mixed_radius=radius or MIXED_VOTE_RADIUS)
            shares += given_away(scenes[i], peaks, ids, frac)
            rows.append(with_offset(measured(peaks, ids, frac, seen[i].image, sigmas[i]), i))
        r = evaluate(vstack(rows), truth, mag_limit=27.0)
        by_mag = [{"bin": [int(b["lo"]), int(b["hi"])], "n": b["flux"]["n"],
                   "median_abs": round(b["flux"]["median_abs"], 4),
                   "bias": round(b["flux"]["bias"], 4)}
                  for b in r["by_mag"] if b["flux"]["n"]]
        row = {"mode": mode, "mixed_radius_px": radius,
               "f1": round(r["f1"], 4),
               **{f"{group}_{key}": round(r[group][key], 4)
                  for group in ("flux", "flux_blended") for key in ("median_abs", "bias")},
               "n_blended": r["flux_blended"]["n"], "by_mag": by_mag,
               "bright_isolated": {"n": len(shares),
                                   "median_given_away": round(float(np.median(shares)), 4)
                                   if shares else None}}
        print(json.dumps({k: v for k, v in row.items() if k != "by_mag"}), flush=True)
        out.append(row)
    return {"variants": out, "n_truth_counted": int(counted.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model, batch_size=16)
    results = {}
    for conditions, correlation in CONDITIONS:
        name = conditions if correlation is None else f"{conditions}_white"
        print(f"== {name}", flush=True)
        results[name] = compare(split_scenes("val", args.tiles, conditions, correlation), meta,
                                predictor)
    results["setup"] = {"split": "val", "tiles": args.tiles, "model": str(args.model),
                        "mag_limit": 27.0}
    results["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    Path("docs/results/vote_modes.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
