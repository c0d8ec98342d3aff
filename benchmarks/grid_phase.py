"""How much does the centre map depend on where a tile starts? (why tiles sit on a lattice)

The network halves the resolution five times, so shifting its input by a pixel is not the same
as shifting its output: only shifts by multiples of 32 px (its total downsampling) come close.
For pairs of overlapping 256² tiles cut from one simulated scene (GOODS-S depth and texture,
seeds 7,000,000 + k, never used in training), the second tile shifted from the first either by
a random number of pixels or by a random multiple of 32 px, this compares the two centre maps
where both tiles' cores overlap:

* the median and 90th percentile of |ΔC^c| over pixels where either map exceeds 0.3 (the
  bumps, not the empty sky);
* the detection flips: counted truth sources (H < 27) in the overlap that one tile's peaks
  (matched filter, the model card's threshold for the scene's noise texture) recover within
  3 px and the other's do not, over those either recovers.

Usage: python benchmarks/grid_phase.py [--pairs 60]
Writes docs/results/grid_phase.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mosaic_pais.infer import estimate_noise
from mosaic_pais.metrics import match_catalogs
from mosaic_pais.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    detection_threshold,
    input_alignment,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import find_peaks
from mosaic_pais.simulation import simulate_scene

SCENE, TILE, MARGIN, MAX_SHIFT = 480, 256, 32, 48
SEED_BASE = 7_000_000


def recovered(center, origin, lo, hi, truth_xy, counted, threshold, finding) -> set[int]:
    """Counted truths in the overlap [lo, hi) that one tile's peaks recover within 3 px."""
    peaks = find_peaks(center, threshold=threshold, **finding)
    xy = np.stack([peaks.x + origin[1], peaks.y + origin[0]], 1)
    inside = np.all((xy[:, ::-1] >= lo) & (xy[:, ::-1] < hi), axis=1)
    d, t = match_catalogs(xy[inside], truth_xy, 3.0)
    return {int(i) for i in t if counted[i]}


def compare(pairs: int, lattice: int | None, predictor, meta: dict, seed: int) -> dict:
    """Centre-map differences and flips over ``pairs`` scenes; shifts on ``lattice`` (or any)."""
    rng = np.random.default_rng(seed)
    finding = peak_finding(meta)
    diffs, flips, either = [], 0, 0
    for k in range(pairs):
        scene = simulate_scene((SCENE, SCENE), seed=SEED_BASE + k)
        image = scene.image.astype(np.float32)
        sigma, texture = estimate_noise(image)
        threshold = detection_threshold(meta, float(texture[0]))
        a = np.array([112, 112])
        if lattice is None:
            b = a + rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2)
        else:
            b = a + lattice * rng.choice([-1, 1], 2) * rng.integers(1, MAX_SHIFT // lattice + 1, 2)
        tiles = np.stack([image[:, o[0]:o[0] + TILE, o[1]:o[1] + TILE] for o in (a, b)])
        centers = predictor(tiles, [float(sigma[0])], outputs=("center",)).center
        lo, hi = np.maximum(a, b) + MARGIN, np.minimum(a, b) + TILE - MARGIN
        ca = centers[0][lo[0] - a[0]:hi[0] - a[0], lo[1] - a[1]:hi[1] - a[1]]
        cb = centers[1][lo[0] - b[0]:hi[0] - b[0], lo[1] - b[1]:hi[1] - b[1]]
        bumps = np.maximum(ca, cb) > 0.3
        diffs.append(np.abs(ca - cb)[bumps])
        truth = scene.truth
        txy = np.stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)], 1)
        inner = np.all((txy[:, ::-1] >= lo + 3) & (txy[:, ::-1] < hi - 3), axis=1)
        counted = inner & (np.asarray(truth["mag"]) < 27.0)
        ra, rb = (recovered(c, o, lo, hi, txy, counted, threshold, finding)
                  for c, o in zip(centers, (a, b), strict=True))
        flips += len(ra ^ rb)
        either += len(ra | rb)
    diff = np.concatenate(diffs)
    return {"pairs": pairs, "pixels": int(diff.size),
            "median_abs_diff": float(np.median(diff)),
            "p90_abs_diff": float(np.percentile(diff, 90)),
            "flips": flips, "recovered_by_either": either,
            "flip_fraction": flips / max(either, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    meta = model_metadata(DEFAULT_MODEL_PATH)
    predictor = PAISPredictor(DEFAULT_MODEL_PATH, batch_size=2)
    lattice = input_alignment(meta)
    result = {"any number of pixels": compare(args.pairs, None, predictor, meta, seed=5),
              f"multiples of {lattice} px": compare(args.pairs, lattice, predictor, meta, seed=5),
              "setup": {"scene": SCENE, "tile": TILE, "margin": MARGIN, "max_shift": MAX_SHIFT,
                        "lattice": lattice, "seeds": f"{SEED_BASE}+k"}}
    for name, r in result.items():
        if name != "setup":
            print(f"{name}: median |ΔC^c| {r['median_abs_diff']:.4f} (p90 {r['p90_abs_diff']:.4f}) "
                  f"over {r['pixels']} px; flips {r['flips']} of {r['recovered_by_either']}")
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    Path("docs/results/grid_phase.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
