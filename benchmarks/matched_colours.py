"""Per-band fluxes from footprint sums or scaled by matched colours, on validation scenes.

A multi-band run gives each band the detection band's total flux times the source's colour
from the matched sums (every band's deblended light weighted by the source's model profile,
:mod:`mosaic_pais.runtime.measure`). This compares that with each band's own footprint sum
made total by its own PSF, the estimator it replaced, on the same four-band validation scenes:
the shipped four-band model's catalogue and the perfect PCR's (true centres and fractions), on
the noisy images and, for the perfect PCR, on the noiseless ones.

Median |Δ(F606W − F160W)| (mag), and per band the median |δ| and median δ, on the sources
every row of a group recovers: blended (β > 0.1) and all, H < 27, in the frame. Validation
tiles: the choice of estimator is made here, never on test tiles.

Usage: python benchmarks/matched_colours.py [--tiles 300]
Writes docs/results/matched_colours.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (
    card_measuring,
    decode_as_trained,
    model_catalog,
    perfect_pcr_catalog,
    split_scenes,
    tile_thresholds,
    with_offset,
)
from astropy.table import vstack
from four_band_accuracy import colour_error, matched_fluxes
from tqdm import tqdm

from mosaic_pais.evaluation.metrics import BLENDED
from mosaic_pais.nn.model import PAISPredictor, model_for_bands, model_metadata, peak_finding
from mosaic_pais.sim.bands import FOUR_BANDS

ESTIMATORS = {"footprint sums": False, "matched colours": True}


def catalogues(scenes, meta: dict, path: Path, chunk: int = 50) -> dict:
    """(group, estimator) → the stacked catalogue of every scene."""
    measuring = card_measuring(meta, path)
    predictor = PAISPredictor(path, batch_size=16)
    finding, vote = peak_finding(meta), str(meta.get("vote", "vectors"))
    out: dict = {}
    for first in tqdm(range(0, len(scenes), chunk), desc="tiles", unit="chunk"):
        part = scenes[first:first + chunk]
        seen, sigmas, textures, preds = decode_as_trained(predictor, part, meta)
        thresholds = tile_thresholds(textures, meta)
        for name, matched in ESTIMATORS.items():
            how = {**measuring, "matched": matched}
            for k, s in enumerate(part):
                p, j = preds[k]
                tables = {
                    "model": model_catalog(p, j, seen[k].image, sigmas[k], thresholds[k],
                                           finding, vote, **how),
                    "perfect PCR": perfect_pcr_catalog(s, seen[k].image, sigmas[k], **how),
                    "perfect PCR, noiseless": perfect_pcr_catalog(s, s.sources.sum(0),
                                                                  sigmas[k], **how)}
                for group, table in tables.items():
                    out.setdefault((group, name), []).append(with_offset(table, first + k))
    return {key: vstack(tables) for key, tables in out.items()}


def group_figures(matched: dict, truth, chosen: np.ndarray) -> dict:
    """Each estimator's figures on the ``chosen`` truths that both recover."""
    common = chosen.copy()
    for fluxes in matched.values():
        for band in FOUR_BANDS:
            common &= np.isfinite(fluxes[band])
    out = {"n": int(common.sum())}
    for name, fluxes in matched.items():
        delta = {band: fluxes[band][common] / np.asarray(truth[f"flux_{band}"], float)[common]
                 - 1.0 for band in FOUR_BANDS}
        out[name] = {"colour": float(np.median(colour_error(fluxes, truth)[common])),
                     "median_abs": {b: float(np.median(np.abs(d))) for b, d in delta.items()},
                     "median": {b: float(np.median(d)) for b, d in delta.items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--json", type=Path, default=Path("docs/results/matched_colours.json"))
    args = parser.parse_args()
    path = model_for_bands(FOUR_BANDS)
    meta = model_metadata(path)
    scenes = split_scenes("val", args.tiles, bands=FOUR_BANDS)
    cats = catalogues(scenes, meta, path)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)],
                   metadata_conflicts="silent")
    counted = (np.asarray(truth["in_frame"], bool) & (np.asarray(truth["mag"], float) < 27.0))
    blended = counted & (np.asarray(truth["blendedness"], float) > BLENDED)
    result = {"split": "val", "tiles": args.tiles, "blended": BLENDED, "mag_limit": 27.0,
              "colour": "F606W-F160W", "groups": {}}
    for group in dict.fromkeys(g for g, _ in cats):
        matched = {name: matched_fluxes(cats[(group, name)], truth) for name in ESTIMATORS}
        result["groups"][group] = {"blended": group_figures(matched, truth, blended),
                                   "all": group_figures(matched, truth, counted)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    for group, figures in result["groups"].items():
        for which in ("blended", "all"):
            row = figures[which]
            print(group, which, row["n"], {name: round(row[name]["colour"], 3)
                                           for name in ESTIMATORS})


if __name__ == "__main__":
    main()
