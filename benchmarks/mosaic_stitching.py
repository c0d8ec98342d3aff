"""Is stitching invisible? A simulated mosaic run end to end, judged against its truth.

* completeness/purity of the mosaic catalogue, beside the model run tile by tile on the same
  mosaic (its 256² tiles side by side, each decoded alone as benchmarks/accuracy.py does: the
  in-memory path on the same pixels) and the single-tile figures of benchmarks/accuracy.py;
* close pairs: catalogue pairs closer than 2 px, against truth pairs closer than 2 px;
* margin 32 → 48: how much the catalogue changes, both as a whole (detections without a
  counterpart within 1 px in the other run) and as matched to the truth (counted truth sources
  recovered by one run but not the other, over those recovered by either);
* seams: positions of detections modulo the stride (192 px) should be uniform (KS test).

Usage: python benchmarks/mosaic_stitching.py [--size 4096] [--seed 11]
Writes docs/results/mosaic_stitching.json. The mosaic is simulated afresh each time, so that
its truth follows the simulator of this checkout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree
from scipy.stats import kstest

from mosaic_pais.metrics import evaluate, match_catalogs
from mosaic_pais.pipeline import run
from mosaic_pais.simulation import simulate_mosaic


def close_pairs(x, y, r=2.0) -> int:
    return len(cKDTree(np.stack([x, y], 1)).query_pairs(r)) if len(x) else 0


def tile_by_tile(image: np.ndarray, tile: int = 256) -> Table:
    """The model on the mosaic's non-overlapping tiles, each decoded on its own, stacked."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import model_catalog  # noqa: I001 - sibling script

    from mosaic_pais.infer import estimate_noise
    from mosaic_pais.model import (
        DEFAULT_MODEL_PATH,
        PAISPredictor,
        detection_threshold,
        model_metadata,
    )

    meta = model_metadata(DEFAULT_MODEL_PATH)
    predictor = PAISPredictor(DEFAULT_MODEL_PATH, batch_size=16)
    # the mosaic's noise and threshold, as the run takes them
    sigmas, textures = estimate_noise(image[None])
    sigma, threshold = float(sigmas[0]), detection_threshold(meta, float(textures[0]))
    corners = [(y, x) for y in range(0, image.shape[0] - tile + 1, tile)
               for x in range(0, image.shape[1] - tile + 1, tile)]
    rows = []
    for start in range(0, len(corners), 16):
        batch = corners[start:start + 16]
        tiles = np.stack([image[y:y + tile, x:x + tile][None] for y, x in batch])
        pred = predictor(tiles, [sigma], outputs=("center", "vectors", "fractions"))
        for k, (y, x) in enumerate(batch):
            cat = model_catalog(pred, k, tiles[k], sigma, threshold, int(meta["window"]),
                                str(meta["vote"]))
            cat["x"] = np.asarray(cat["x"], float) + x
            cat["y"] = np.asarray(cat["y"], float) + y
            rows.append(cat)
    from astropy.table import vstack

    return vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/output/stitching"))
    args = parser.parse_args()
    sim = args.work / "sim"
    simulate_mosaic(sim, size=args.size, seed=args.seed, progress=True, processes=2)
    truth = Table.read(sim / "truth.fits", mask_invalid=False)
    result = {"size": args.size, "seed": args.seed, "truth_sources": len(truth)}
    from astropy.io import fits

    r = evaluate(tile_by_tile(fits.getdata(sim / "mosaic.fits").astype(np.float32)), truth,
                 mag_limit=27.0)
    result["tile_by_tile"] = {k: r[k] for k in ("n_detections", "completeness", "purity", "f1")}
    catalogs = {}
    for margin in (32, 48):
        t = time.time()
        table, _ = run([sim / "mosaic.fits"], args.work / f"run_m{margin}", margin=margin,
                       overwrite=True, progress=True)
        catalogs[margin] = table
        r = evaluate(table, truth, mag_limit=27.0)
        result[f"margin_{margin}"] = {
            "seconds": time.time() - t, "detections": len(table),
            "completeness": r["completeness"], "purity": r["purity"], "f1": r["f1"],
            "catalogue_pairs_within_2px": close_pairs(np.asarray(table["x"]),
                                                      np.asarray(table["y"])),
        }
    result["truth_pairs_within_2px"] = close_pairs(np.asarray(truth["x"]), np.asarray(truth["y"]))
    a, b = catalogs[32], catalogs[48]
    d, t = match_catalogs(np.stack([a["x"], a["y"]], 1), np.stack([b["x"], b["y"]], 1), 1.0)
    result["margin_change_fraction"] = 1.0 - len(d) / max(len(a), len(b))
    counted = np.asarray(truth["in_frame"]).astype(bool) & (np.asarray(truth["mag"]) < 27.0)
    txy = np.stack([np.asarray(truth["x"]), np.asarray(truth["y"])], 1)
    recovered = []
    for cat in (a, b):
        _, t_idx = match_catalogs(np.stack([cat["x"], cat["y"]], 1), txy, 3.0)
        recovered.append({int(i) for i in t_idx if counted[i]})
    result["margin_change_matched_fraction"] = (
        len(recovered[0] ^ recovered[1]) / max(len(recovered[0] | recovered[1]), 1))
    stride = 256 - 2 * 32
    for axis in ("x", "y"):
        phase = (np.asarray(a[axis]) % stride) / stride
        result[f"ks_p_{axis}_mod_stride"] = float(kstest(phase, "uniform").pvalue)
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    Path("docs/results/mosaic_stitching.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
