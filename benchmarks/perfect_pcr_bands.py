"""Where a perfect PCR's per-band flux error comes from: noise, or the estimator.

The perfect PCR (true centres, true fractions per band, measured by the run's own code:
:func:`accuracy.perfect_pcr_catalog`) is measured four ways on the same validation scenes:

* ``as run``: on the noisy image, with each band's total-flux correction (the benchmarks' row);
* ``footprint sums``: the same without the corrections;
* ``noiseless``: on the sum of the sources' noiseless images, with the corrections: what the
  estimator loses with no noise at all;
* ``noiseless footprint sums``: the same without the corrections: what the footprints and
  slots alone keep of each band's light.

Median δ and |δ| per band on the blended sources (β > 0.1, H < 27, in the frame). Validation
tiles: a diagnostic, not a test figure.

Usage: python benchmarks/perfect_pcr_bands.py [--tiles 40]
Writes docs/results/perfect_pcr_bands.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (
    as_trained,
    card_measuring,
    perfect_pcr_catalog,
    split_scenes,
    tile_noise,
    with_offset,
)
from astropy.table import vstack
from four_band_accuracy import matched_fluxes

from mosaic_pais.evaluation.metrics import BLENDED
from mosaic_pais.nn.model import model_for_bands, model_metadata
from mosaic_pais.sim.bands import FOUR_BANDS


def variants(scenes, seen, sigmas, measuring) -> dict:
    """The perfect PCR's catalogue of every scene, each way of measuring it."""
    ways = {
        "as run": lambda s, k: perfect_pcr_catalog(s, seen[k].image, sigmas[k], **measuring),
        "footprint sums": lambda s, k: perfect_pcr_catalog(
            s, seen[k].image, sigmas[k], **{**measuring, "growth": None}),
        "noiseless": lambda s, k: perfect_pcr_catalog(s, s.sources.sum(0), sigmas[k],
                                                      **measuring),
        "noiseless footprint sums": lambda s, k: perfect_pcr_catalog(
            s, s.sources.sum(0), sigmas[k], **{**measuring, "growth": None}),
    }
    return {name: vstack([with_offset(way(s, k), k) for k, s in enumerate(scenes)])
            for name, way in ways.items()}


def band_errors(catalog, truth, chosen: np.ndarray) -> dict:
    """Median δ and |δ| per band of the ``chosen`` truths the catalogue recovers."""
    fluxes = matched_fluxes(catalog, truth)
    out = {}
    for band in FOUR_BANDS:
        delta = fluxes[band][chosen] / np.asarray(truth[f"flux_{band}"], float)[chosen] - 1.0
        delta = delta[np.isfinite(delta)]
        out[band] = {"n": len(delta), "median": float(np.median(delta)),
                     "median_abs": float(np.median(np.abs(delta)))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=40)
    parser.add_argument("--json", type=Path, default=Path("docs/results/perfect_pcr_bands.json"))
    args = parser.parse_args()
    path = model_for_bands(FOUR_BANDS)
    meta = model_metadata(path)
    scenes = split_scenes("val", args.tiles, bands=FOUR_BANDS)
    seen = as_trained(scenes, meta)
    sigmas, _ = tile_noise(seen)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)],
                   metadata_conflicts="silent")
    chosen = (np.asarray(truth["in_frame"], bool) & (np.asarray(truth["mag"], float) < 27.0)
              & (np.asarray(truth["blendedness"], float) > BLENDED))
    cats = variants(scenes, seen, sigmas, card_measuring(meta, path))
    result = {"split": "val", "tiles": args.tiles, "blended": BLENDED, "mag_limit": 27.0,
              "ways": {name: band_errors(cat, truth, chosen) for name, cat in cats.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["ways"], indent=1))


if __name__ == "__main__":
    main()
