"""Systematic position offsets of every method against the simulator's truth, by source kind.

Held-out test tiles at GOODS-S depth with white noise; each method's catalogue (the model as the
pipeline decodes it, sep, photutils) is matched to the truth (H < 25, at least 10 px from the
tile border, 3 px Hungarian). For each kind of source (star, parametric galaxy, real COSMOS
galaxy) the mean offset detection − truth in x and y is given with its standard error: a
scatter averages out, a systematic offset does not.

The simulator places a source's *flux-weighted centroid* at its truth position
(``simulation.f160w_psf`` shifts the TinyTim PSF so that its centroid, far wings included, is its
centre). The PSF's core is not at its centroid: this script also measures where the core of the
PSF as drawn lies (its peak refined as ``pcr.find_peaks`` refines peaks: a parabola through the
log of the brightest pixel and its neighbours), in mosaic pixels. A method that locates the
light's peak inherits that offset; one that measures a barycentre does not.

Usage: python benchmarks/position_bias.py --tiles 200
Writes docs/results/position_bias.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.evaluation.peers import run_photutils, run_sep
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import find_peaks
from mosaic_pais.sim.scenes import PIXEL_SCALE, SIMULATOR_VERSION, f160w_psf

KINDS = ("star", "parametric", "real")


def psf_core_offset(size: int = 41) -> dict:
    """Core − centroid of the simulator's PSF drawn at the mosaic's scale (px, x and y)."""
    image = f160w_psf().drawImage(nx=size, ny=size, scale=PIXEL_SCALE,
                                  method="no_pixel").array
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = (image * yy).sum() / image.sum(), (image * xx).sum() / image.sum()
    core = find_peaks(image / image.max(), threshold=0.5, window=5)
    return {"dx": float(core.x[0] - cx), "dy": float(core.y[0] - cy)}


def offsets(catalog, truth, edge: float = 10.0, mag_max: float = 25.0,
            size: int = 256) -> list[tuple[str, float, float]]:
    """(kind, dx, dy) of the truths brighter than ``mag_max`` and ``edge`` px inside the tile
    that ``catalog`` matches within 3 px."""
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    keep = ((np.asarray(truth["mag"]) < mag_max)
            & (np.minimum.reduce([tx, ty, size - 1 - tx, size - 1 - ty]) >= edge))
    det = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
    d, t = match_catalogs(det, np.stack([tx, ty], 1))
    ok = keep[t]
    return [(str(truth["kind"][j]), float(det[i, 0] - tx[j]), float(det[i, 1] - ty[j]))
            for i, j in zip(d[ok], t[ok], strict=True)]


def summary(rows: list[tuple[str, float, float]]) -> dict:
    """Mean offsets with standard errors, per kind."""
    out = {}
    for kind in KINDS:
        v = np.array([(dx, dy) for k, dx, dy in rows if k == kind]).reshape(-1, 2)
        n = len(v)
        out[kind] = {"n": n,
                     "mean_dx": float(v[:, 0].mean()) if n else None,
                     "mean_dy": float(v[:, 1].mean()) if n else None,
                     "se_dx": float(v[:, 0].std(ddof=1) / np.sqrt(n)) if n > 1 else None,
                     "se_dy": float(v[:, 1].std(ddof=1) / np.sqrt(n)) if n > 1 else None,
                     "median_offset": float(np.median(np.hypot(v[:, 0], v[:, 1])))
                     if n else None}
    return out


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import decode_as_trained, model_catalog, split_scenes, tile_thresholds

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=200)
    args = parser.parse_args()
    scenes = split_scenes("test", args.tiles, "goods-s", noise_correlation=0.0)
    meta = model_metadata(DEFAULT_MODEL_PATH)
    seen, sigmas, textures, preds = decode_as_trained(PAISPredictor(DEFAULT_MODEL_PATH), scenes,
                                                     meta)
    thresholds = tile_thresholds(textures, meta)
    finding, vote = peak_finding(meta), str(meta.get("vote", "vectors"))
    rows: dict[str, list] = {"mosaic-pais": [], "sep": [], "photutils": []}
    for i, (s, (pred, j)) in enumerate(zip(scenes, preds, strict=True)):
        catalogs = {"mosaic-pais": model_catalog(pred, j, seen[i].image, sigmas[i], thresholds[i],
                                                 finding, vote),
                    "sep": run_sep(s.image[0], s.noise_sigma),
                    "photutils": run_photutils(s.image[0], s.noise_sigma)}
        for name, catalog in catalogs.items():
            rows[name] += offsets(catalog, s.truth)
    result = {name: summary(r) for name, r in rows.items()}
    result["psf_core_minus_centroid_px"] = psf_core_offset()
    result["setup"] = {"split": "test", "tiles": args.tiles, "conditions": "goods-s",
                       "noise_correlation_px": 0.0, "mag_max": 25.0, "edge_px": 10.0,
                       "match_radius": 3.0}
    for name in rows:
        print(name, {k: (v["n"], round(v["mean_dx"] or 0, 3), round(v["mean_dy"] or 0, 3))
                     for k, v in result[name].items()}, flush=True)
    print("PSF core − centroid (px):", result["psf_core_minus_centroid_px"])
    out = Path("docs/results/position_bias.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
