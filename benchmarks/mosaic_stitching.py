"""Is stitching invisible? A simulated mosaic run end to end, judged against its truth.

* completeness/purity of the mosaic catalogue, beside the model run tile by tile on the same
  mosaic (its 256² tiles side by side, each decoded alone as benchmarks/accuracy.py does: the
  in-memory path on the same pixels, the run's sky subtracted from them as the run does) and
  the single-tile figures of benchmarks/accuracy.py;
* close pairs: catalogue pairs closer than 2 px, against truth pairs closer than 2 px;
* margin 32 → 48: how much the catalogue changes, both as a whole (detections without a
  counterpart within 1 px in the other run) and as matched to the truth (counted truth sources
  recovered by one run but not the other, over those recovered by either);
* seams: positions of detections modulo the stride (192 px) should be uniform (KS test);
* tiles read apart: the default run reads 8 × 8 tiles as one network window
  (``tiles_per_window``); the same run with every tile read on its own, and how much of the
  matched catalogue that changes.

Every figure is pooled over several mosaics of different seeds (three by default): one
4096² mosaic holds about 1,200 recoverable sources, so a change of 0.5% is 6 of them, and a
single mosaic cannot tell 0.3% from 0.7%. Each mosaic's own figures are kept in the results.

Usage: python benchmarks/mosaic_stitching.py [--size 4096] [--seeds 11 12 13]
Writes docs/results/mosaic_stitching.json. The mosaics are simulated afresh each time, so that
their truth follows the simulator of this checkout.
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

from mosaic_pais.evaluation.metrics import evaluate, match_catalogs
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import SIMULATOR_VERSION, simulate_mosaic


def close_pairs(x, y, r=2.0) -> int:
    return len(cKDTree(np.stack([x, y], 1)).query_pairs(r)) if len(x) else 0


def tile_by_tile(image: np.ndarray, tile: int = 256) -> Table:
    """The model on the mosaic's non-overlapping tiles, each decoded on its own, stacked."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import model_catalog  # noqa: I001 - sibling script

    from mosaic_pais.runtime.infer import estimate_noise
    from mosaic_pais.nn.model import (
        DEFAULT_MODEL_PATH,
        PAISPredictor,
        detection_threshold,
        model_metadata,
        peak_finding,
    )

    from mosaic_pais.runtime.background import subtract_sky

    meta = model_metadata(DEFAULT_MODEL_PATH)
    predictor = PAISPredictor(DEFAULT_MODEL_PATH, batch_size=16)
    # the mosaic's sky, noise and threshold, as the run takes them (the same pixels)
    image = subtract_sky(image[None])[0]
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
            cat = model_catalog(pred, k, tiles[k], sigma, threshold, peak_finding(meta),
                                str(meta["vote"]))
            cat["x"] = np.asarray(cat["x"], float) + x
            cat["y"] = np.asarray(cat["y"], float) + y
            rows.append(cat)
    from astropy.table import vstack

    return vstack(rows)


#: the default margin, and the one it is compared with
MARGINS = (32, 48)
#: the runs made on each mosaic: both margins, and the default with every tile read on its own
RUNS = {f"margin_{m}": {"margin": m} for m in MARGINS} | {
    "tiles_apart": {"margin": MARGINS[0], "tiles_per_window": 1}}
#: a recovered source's centre-map peak this close above the threshold could flip either way
NEAR_THRESHOLD = 0.02


def one_mosaic(size: int, seed: int, work: Path) -> dict:
    """One simulated mosaic: its tile-by-tile and stitched catalogues' counts against its truth."""
    from astropy.io import fits

    sim = work / "sim"
    simulate_mosaic(sim, size=size, seed=seed, progress=True, processes=2)
    truth = Table.read(sim / "truth.fits", mask_invalid=False)
    result = {"seed": seed, "truth_sources": len(truth),
              "truth_pairs_within_2px": close_pairs(np.asarray(truth["x"]),
                                                    np.asarray(truth["y"]))}
    result["tile_by_tile"] = counts(evaluate(
        tile_by_tile(fits.getdata(sim / "mosaic.fits").astype(np.float32)), truth,
        mag_limit=27.0))
    catalogs, thresholds = {}, {}
    for name, options in RUNS.items():
        t = time.time()
        table, _ = run([sim / "mosaic.fits"], work / f"run_{name}", overwrite=True,
                       progress=True, **options)
        catalogs[name] = table
        parameters = json.loads((work / f"run_{name}" / "run.json").read_text())["parameters"]
        thresholds[name] = parameters["threshold"]
        result[name] = counts(evaluate(table, truth, mag_limit=27.0)) | {
            "seconds": time.time() - t, "tile_window": parameters["tile_window"],
            "tiles_per_window": parameters["tiles_per_window"],
            "catalogue_pairs_within_2px": close_pairs(np.asarray(table["x"]),
                                                      np.asarray(table["y"])),
        }
    counted = np.asarray(truth["in_frame"]).astype(bool) & (np.asarray(truth["mag"]) < 27.0)
    txy = np.stack([np.asarray(truth["x"]), np.asarray(truth["y"])], 1)

    def recovered(name: str) -> dict[int, float]:
        """Each counted truth recovered, with its detection's peak value above the threshold."""
        cat = catalogs[name]
        d_idx, t_idx = match_catalogs(np.stack([cat["x"], cat["y"]], 1), txy, 3.0)
        return {int(i): float(cat["score"][k]) - thresholds[name]
                for k, i in zip(d_idx, t_idx, strict=True) if counted[i]}

    a, b = catalogs["margin_32"], catalogs["margin_48"]
    d, _ = match_catalogs(np.stack([a["x"], a["y"]], 1), np.stack([b["x"], b["y"]], 1), 1.0)
    result["catalogue_size"] = max(len(a), len(b))
    result["catalogue_changed"] = max(len(a), len(b)) - len(d)
    found = {name: recovered(name) for name in RUNS}
    only = set(found["margin_32"]) ^ set(found["margin_48"])
    result["recovered_by_either"] = len(set(found["margin_32"]) | set(found["margin_48"]))
    result["recovered_by_one_only"] = len(only)
    # why they change: how close their peaks are to the threshold, against every recovery's
    result["one_only_score_above_threshold"] = sorted(
        found["margin_32"].get(i, found["margin_48"].get(i)) for i in only)
    result["all_score_above_threshold"] = sorted(found["margin_32"].values())
    result["margin_change_fraction"] = result["catalogue_changed"] / max(len(a), len(b), 1)
    result["margin_change_matched_fraction"] = (result["recovered_by_one_only"]
                                                / max(result["recovered_by_either"], 1))
    apart = set(found["margin_32"]) ^ set(found["tiles_apart"])
    result["apart_recovered_by_either"] = len(set(found["margin_32"]) | set(found["tiles_apart"]))
    result["apart_recovered_by_one_only"] = len(apart)
    # positions modulo the stride of the default margin, for the seams test
    stride = 256 - 2 * MARGINS[0]
    result["phase"] = {axis: ((np.asarray(a[axis]) % stride) / stride).tolist()
                       for axis in ("x", "y")}
    return result


def counts(r: dict) -> dict:
    """The parts of :func:`mosaic_pais.evaluation.metrics.evaluate`'s result that add over
    mosaics."""
    return {k: r[k] for k in ("n_detections", "n_matched", "n_truth_counted",
                              "n_matched_counted", "completeness", "purity", "f1")}


def pooled(parts: list[dict]) -> dict:
    """Completeness, purity and F1 of several mosaics' catalogues taken together."""
    total = {k: sum(p[k] for p in parts) for k in ("n_detections", "n_matched",
                                                   "n_truth_counted", "n_matched_counted")}
    c = total["n_matched_counted"] / max(total["n_truth_counted"], 1)
    p = total["n_matched"] / max(total["n_detections"], 1)
    return total | {"completeness": c, "purity": p, "f1": 2 * c * p / (c + p) if c + p else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/output/stitching"))
    args = parser.parse_args()
    mosaics = [one_mosaic(args.size, seed, args.work) for seed in args.seeds]
    result = {"size": args.size, "seeds": args.seeds,
              "truth_sources": sum(m["truth_sources"] for m in mosaics),
              "truth_pairs_within_2px": sum(m["truth_pairs_within_2px"] for m in mosaics),
              "tile_by_tile": pooled([m["tile_by_tile"] for m in mosaics])}
    for key in RUNS:
        result[key] = pooled([m[key] for m in mosaics]) | {
            "seconds": float(np.mean([m[key]["seconds"] for m in mosaics])),
            "tile_window": mosaics[0][key]["tile_window"],
            "tiles_per_window": mosaics[0][key]["tiles_per_window"],
            "catalogue_pairs_within_2px": sum(m[key]["catalogue_pairs_within_2px"]
                                              for m in mosaics)}
    result["margin_change_fraction"] = (sum(m["catalogue_changed"] for m in mosaics)
                                        / sum(m["catalogue_size"] for m in mosaics))
    result["margin_change_matched_fraction"] = (
        sum(m["recovered_by_one_only"] for m in mosaics)
        / max(sum(m["recovered_by_either"] for m in mosaics), 1))
    result["apart_change_matched_fraction"] = (
        sum(m["apart_recovered_by_one_only"] for m in mosaics)
        / max(sum(m["apart_recovered_by_either"] for m in mosaics), 1))
    for axis in ("x", "y"):
        phase = np.concatenate([m["phase"][axis] for m in mosaics])
        result[f"ks_p_{axis}_mod_stride"] = float(kstest(phase, "uniform").pvalue)
    # the sources one run only recovers, and all the default run recovers: the share of each
    # whose peak is within NEAR_THRESHOLD of the threshold
    for key, name in (("one_only_score_above_threshold", "one_only_near_threshold"),
                      ("all_score_above_threshold", "all_near_threshold")):
        above = np.concatenate([m[key] for m in mosaics])
        result[name] = float(np.mean(above < NEAR_THRESHOLD)) if len(above) else None
    result["near_threshold"] = NEAR_THRESHOLD
    result["mosaics"] = [{k: v for k, v in m.items()
                          if k not in ("phase", "all_score_above_threshold")} for m in mosaics]
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    Path("docs/results/mosaic_stitching.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
