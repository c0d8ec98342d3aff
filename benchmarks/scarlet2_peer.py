"""scarlet2 as a peer deblender on the held-out simulated test tiles.

The tiles are the simulator's *test* split (``split_scene("test", i)``, seeds 3,000,000 + i), the
same as benchmarks/accuracy.py uses and never seen in training or validation. scarlet2 needs
detections: it is given the **true positions of the detectable sources** (matched-filter
S/N ≥ 5 in the tile, the criterion that decides which sources the training labels contain,
centred inside the tile), with the simulation's own PSF (the TinyTim F160W model drawn at
0.06″/px as the simulator draws it) and uniform weights 1/σ². That is the best case for
scarlet2: perfect detection, perfect PSF. Its flux is the sum of each source's rendered model.

Beside it, on the same tiles: sep and photutils (their own detections, Kron fluxes, as in
accuracy.py) and the shipped mosaic-pais model (decode + measure as in accuracy.py). All are
judged by :func:`mosaic_pais.evaluation.metrics.evaluate` against the truth (3 px Hungarian
matching,
H < 27 counted); the flux δ statistics of blended sources (blendedness > 0.1) are the point.

Usage: python benchmarks/scarlet2_peer.py [--tiles 30] [--max-iter 200]
Writes docs/results/scarlet2_peer.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from accuracy import with_offset  # noqa: I001 - sibling script
from astropy.table import Table, vstack

from mosaic_pais.evaluation.metrics import evaluate as evaluate_catalog
from mosaic_pais.evaluation.metrics import format_report
from mosaic_pais.evaluation.peers import run_photutils, run_sep
from mosaic_pais.sim.scenes import SIMULATOR_VERSION
from mosaic_pais.training.dataset import LABEL_MIN_SNR, labelled, split_scene


def simulation_psf(size: int = 41, bands=("F160W",)) -> np.ndarray:
    """(band, size, size): the simulator's PSF of each band at the image's 0.06″/px, drawn as
    the simulator draws sources, unit sum."""
    from mosaic_pais.sim.bands import band_psf

    images = [band_psf(b).drawImage(nx=size, ny=size, scale=0.06, method="no_pixel").array
              for b in bands]
    return np.stack([img / img.sum() for img in images]).astype(np.float64)


def scarlet2_catalog(scene, psf: np.ndarray, max_iter: int) -> tuple[Table, float, int]:
    """scarlet2 fluxes at the true positions of the detectable in-tile sources, the seconds
    its fit took and how many sources it fitted. ``flux`` is the first band's; a scene of
    several bands (``psf`` one per band) also gets ``flux_<band>`` for each."""
    from mosaic_pais.labels.scarlet import fit_scene

    truth = scene.truth
    n_bands, h, w = scene.image.shape
    bands = list(scene.bands) if n_bands > 1 else []
    y, x = np.asarray(truth["y"], float), np.asarray(truth["x"], float)
    detectable = labelled(scene)
    inside = (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
    keep = np.flatnonzero(detectable & inside)
    if len(keep) == 0:
        return Table({"id": [], "x": [], "y": [], "flux": [],
                      **{f"flux_{b}": [] for b in bands}}), 0.0, 0
    sigma = np.asarray(scene.noise_sigma, float).reshape(-1, 1, 1)
    weights = np.broadcast_to(1.0 / sigma ** 2, scene.image.shape).copy()
    t0 = time.time()
    try:
        models, _ = fit_scene(scene.image.astype(np.float64), weights, psf,
                              np.stack([y[keep], x[keep]], 1), max_iter=max_iter)
        flux = models.sum(axis=(2, 3))  # (source, band)
    except Exception as exc:  # noqa: BLE001 - a failed fit counts as no measurement
        print(f"scarlet2 failed: {type(exc).__name__}: {exc}", flush=True)
        flux = np.full((len(keep), n_bands), np.nan)
    seconds = time.time() - t0
    table = Table({"id": np.arange(len(keep)), "x": x[keep], "y": y[keep], "flux": flux[:, 0]})
    for k, band in enumerate(bands):
        table[f"flux_{band}"] = flux[:, k]
    return table, seconds, len(keep)


def model_catalogs(scenes) -> tuple[list[Table], float]:
    """The shipped model on the same tiles, decoded and measured as benchmarks/accuracy.py."""
    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import decode_as_trained, model_catalog, tile_thresholds

    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding

    meta = model_metadata(DEFAULT_MODEL_PATH)
    predictor = PAISPredictor(DEFAULT_MODEL_PATH, batch_size=16)
    finding, vote = peak_finding(meta), str(meta.get("vote", "vectors"))
    t0 = time.time()
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, meta)
    out = [model_catalog(p, j, s.image, sg, threshold, finding, vote)
           for (p, j), s, sg, threshold in zip(preds, seen, sigmas,
                                               tile_thresholds(textures, meta), strict=True)]
    return out, time.time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=30)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    parser.add_argument("--no-model", action="store_true", help="Skip the mosaic-pais model.")
    parser.add_argument("--json", type=Path, default=Path("docs/results/scarlet2_peer.json"))
    args = parser.parse_args()
    scenes = [split_scene("test", i) for i in range(args.tiles)]
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    psf = simulation_psf()

    catalogs, seconds, n_sources = {}, {}, {}
    rows, total_s, total_n = [], 0.0, 0
    for i, scene in enumerate(scenes):
        table, sec, n = scarlet2_catalog(scene, psf, args.max_iter)
        rows.append(with_offset(table, i))
        total_s += sec
        total_n += n
        print(f"tile {i}: {n} sources, {sec:.1f} s", flush=True)
    catalogs["scarlet2 (true positions)"] = vstack(rows)
    seconds["scarlet2 (true positions)"], n_sources["scarlet2 (true positions)"] = total_s, total_n
    for name, runner in (("sep", run_sep), ("photutils", run_photutils)):
        t0 = time.time()
        parts = [runner(s.image[0], s.noise_sigma) for s in scenes]
        seconds[name] = time.time() - t0
        n_sources[name] = int(sum(len(p) for p in parts))
        catalogs[name] = vstack([with_offset(p, i) for i, p in enumerate(parts)])
    if not args.no_model:
        parts, sec = model_catalogs(scenes)
        catalogs["mosaic-pais"] = vstack([with_offset(p, i) for i, p in enumerate(parts)])
        seconds["mosaic-pais"], n_sources["mosaic-pais"] = sec, int(sum(len(p) for p in parts))

    results: dict = {}
    for name, cat in catalogs.items():
        r = evaluate_catalog(cat, truth, mag_limit=args.mag_limit)
        r["seconds"] = seconds[name]
        r["n_sources_measured"] = n_sources[name]
        r["seconds_per_source"] = seconds[name] / max(n_sources[name], 1)
        results[name] = r
        print(f"\n=== {name} ===\n{format_report(r)}\n{r['seconds_per_source'] * 1e3:.1f} ms "
              "per source", flush=True)
    results["setup"] = {
        "split": "test", "tiles": args.tiles, "max_iter": args.max_iter,
        "mag_limit": args.mag_limit, "truth_sources": len(truth),
        "scarlet2_detections": "true positions of the sources the training labels would hold "
                               f"(white-noise matched-filter S/N >= {LABEL_MIN_SNR}: "
                               "train.labelled) centred in the tile (best case: perfect "
                               "detection and the simulation's PSF)",
        "timing": "wall seconds on 2 shared CPU cores, nice 15; scarlet2 includes JAX "
                  "compilation per tile (every scene has its own shapes)"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    args.json.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
