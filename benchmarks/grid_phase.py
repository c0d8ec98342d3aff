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

Does that dependence cost accuracy? On further scenes (320², GOODS-S depth with white noise,
the conditions of the F1 target of 0.93; seeds 7,300,000 + k) one window is read at eight phases
of the lattice (shifts of 0, 8, 16 and 24 px), and completeness, purity and F1 are scored on the
168² where every window's core lies: for each phase alone, and for the mean of the eight centre
maps (a test-time average over phases, which would also be what anti-aliasing the network's
downsampling could at best buy).

Usage: python benchmarks/grid_phase.py [--pairs 60] [--phase-scenes 300]
Writes docs/results/grid_phase.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from mosaic_pais.evaluation.metrics import evaluate, match_catalogs
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    detection_threshold,
    input_alignment,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import find_peaks
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.runtime.tile import DEFAULT_MARGIN, DEFAULT_TILE
from mosaic_pais.sim.scenes import SIMULATOR_VERSION, simulate_scene

SCENE, TILE, MARGIN, MAX_SHIFT = 480, DEFAULT_TILE, DEFAULT_MARGIN, 48
SEED_BASE = 7_000_000
#: phase averaging: scene size, the first window's origin, the shifts (y, x) of the eight windows
PHASE_SCENE, PHASE_ORIGIN, PHASE_SEED_BASE = 320, 32, 7_300_000
PHASES = ((0, 0), (16, 16), (0, 16), (16, 0), (8, 8), (24, 24), (8, 24), (24, 8))


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


def phase_averaging(scenes: int, predictor, meta: dict) -> dict:
    """F1 on the cores common to eight phase-shifted windows: each phase, and their mean map."""
    from accuracy import with_offset  # noqa: I001 - sibling benchmark script

    finding = peak_finding(meta)
    lo = PHASE_ORIGIN + max(max(p) for p in PHASES) + MARGIN
    hi = PHASE_ORIGIN + TILE - MARGIN
    maps = {name: [] for name in [f"phase {dy},{dx}" for dy, dx in PHASES] + ["mean of 8"]}
    truths, thresholds = [], []
    for k in range(scenes):
        scene = simulate_scene((PHASE_SCENE, PHASE_SCENE), seed=PHASE_SEED_BASE + k,
                               noise_correlation=0.0)
        image = scene.image.astype(np.float32)
        first = image[:, PHASE_ORIGIN:PHASE_ORIGIN + TILE, PHASE_ORIGIN:PHASE_ORIGIN + TILE]
        sigma, texture = estimate_noise(first)
        thresholds.append(detection_threshold(meta, float(texture[0])))
        origins = [(PHASE_ORIGIN + dy, PHASE_ORIGIN + dx) for dy, dx in PHASES]
        tiles = np.stack([image[:, y:y + TILE, x:x + TILE] for y, x in origins])
        centers = predictor(tiles, [float(sigma[0])], outputs=("center",)).center
        region = [c[lo - y:hi - y, lo - x:hi - x] for c, (y, x) in zip(centers, origins,
                                                                         strict=True)]
        for name, c in zip(maps, [*region, np.mean(region, axis=0)], strict=True):
            maps[name].append(c)
        truth = Table(scene.truth, copy=True)
        x, y = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
        truth["in_frame"] = ((x >= lo - 0.5) & (x < hi - 0.5) & (y >= lo - 0.5) & (y < hi - 0.5))
        truth["y"] = y - lo
        truth["x"] = x - lo
        truths.append(with_offset(truth, k))
    truth = vstack(truths, metadata_conflicts="silent")
    result = {}
    for name, centers in maps.items():
        rows = []
        for k, (c, threshold) in enumerate(zip(centers, thresholds, strict=True)):
            peaks = find_peaks(c, threshold=threshold, **finding)
            rows.append(with_offset(Table({"x": peaks.x, "y": peaks.y,
                                           "flux": np.ones(len(peaks))}), k))
        r = evaluate(vstack(rows), truth, mag_limit=27.0)
        result[name] = {key: r[key] for key in ("completeness", "purity", "f1",
                                                "n_truth_counted", "n_detections")}
    single = [v["f1"] for name, v in result.items() if name.startswith("phase")]
    return {"scenes": scenes, "region_px": hi - lo, "by_window": result,
            "f1_single_min": min(single), "f1_single_max": max(single),
            "f1_mean_map": result["mean of 8"]["f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--phase-scenes", type=int, default=300)
    args = parser.parse_args()
    meta = model_metadata(DEFAULT_MODEL_PATH)
    predictor = PAISPredictor(DEFAULT_MODEL_PATH, batch_size=len(PHASES))
    lattice = input_alignment(meta)
    result = {"any number of pixels": compare(args.pairs, None, predictor, meta, seed=5),
              f"multiples of {lattice} px": compare(args.pairs, lattice, predictor, meta, seed=5),
              "setup": {"scene": SCENE, "tile": TILE, "margin": MARGIN, "max_shift": MAX_SHIFT,
                        "lattice": lattice, "seeds": f"{SEED_BASE}+k"}}
    phases = phase_averaging(args.phase_scenes, predictor, meta)
    print(f"F1 on common cores: single phases {phases['f1_single_min']:.4f}–"
          f"{phases['f1_single_max']:.4f}, mean map {phases['f1_mean_map']:.4f}")
    for name, r in result.items():
        if name != "setup":
            print(f"{name}: median |ΔC^c| {r['median_abs_diff']:.4f} (p90 {r['p90_abs_diff']:.4f}) "
                  f"over {r['pixels']} px; flips {r['flips']} of {r['recovered_by_either']}")
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    result["phase_averaging"] = phases
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    Path("docs/results/grid_phase.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
