"""How a tile's own sky estimate moves the model's fluxes on single tiles.

``accuracy.py`` decodes and measures every tile as the shipped model was trained and as a run
hands it its image: with the tile's sky estimated and subtracted on the card's mesh. A 256² tile
holds only 2 × 2 cells of 128 px, so its estimate also holds the floor of faint undetected
sources and the wings of bright galaxies, and measuring on the subtracted tile lowers every flux.
This measures the same detections (the network always reads the sky-subtracted tile) on the tile
as simulated and on the subtracted one, and the sky level each tile had subtracted.

Usage:
  python benchmarks/tile_sky_flux.py [--tiles 300]
Test tiles at GOODS-S depth with white noise (as accuracy.py's third table); writes
docs/results/tile_sky_flux.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accuracy import (  # noqa: I001 - sibling script
    decode_as_trained,
    model_catalog,
    split_scenes,
    tile_thresholds,
    with_offset,
)
from astropy.table import vstack

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.sim.scenes import SIMULATOR_VERSION


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--output", type=Path, default=Path("docs/results/tile_sky_flux.json"))
    args = parser.parse_args()
    meta = model_metadata(DEFAULT_MODEL_PATH)
    scenes = split_scenes("test", args.tiles, "goods-s", noise_correlation=0.0)
    seen, sigmas, textures, preds = decode_as_trained(
        PAISPredictor(DEFAULT_MODEL_PATH, batch_size=16), scenes, meta)
    # the sky each tile had subtracted, in its noise σ
    levels = np.array([float(np.mean(s.image - t.image)) / s.noise_sigma
                       for s, t in zip(scenes, seen, strict=True)])
    thresholds, finding = tile_thresholds(textures, meta), peak_finding(meta)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    result = {"tiles": args.tiles, "mesh_px": int(meta.get("background_mesh") or 0),
              "sky_subtracted_sigma": {"mean": float(levels.mean()),
                                       "median": float(np.median(levels)),
                                       "p90": float(np.percentile(levels, 90))}}
    for name, images in (("measured as simulated", scenes), ("measured sky-subtracted", seen)):
        catalog = vstack([with_offset(model_catalog(p, j, images[i].image, sigmas[i],
                                                    thresholds[i], finding, str(meta["vote"])), i)
                          for i, (p, j) in enumerate(preds)])
        r = evaluate(catalog, truth, mag_limit=27.0)
        result[name] = {"f1": r["f1"],
                        **{f"{group}_{key}": r[group][key] for group in ("flux", "flux_blended")
                           for key in ("median_abs", "bias", "n")}}
        print(name, json.dumps(result[name]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    args.output.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
