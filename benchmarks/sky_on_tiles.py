"""Single tiles as they are, and with their sky estimated and subtracted as a mosaic run does.

Every training tile had a sky of exactly 0 with the light of the faint, undetected sources on
top; a run first estimates the sky (``mosaic_pais.runtime.background``, a clipped mode on 128 px
cells)
and that estimate includes the faint sources' floor, a few hundredths of σ. This decodes the
same validation tiles both ways with the model's own thresholds, to show how far the model's
operating point moves when that floor is taken away (a model that reads the image's mean level
finds fewer sources), and whether a candidate trained with sky offsets holds it.

Usage:
  python benchmarks/sky_on_tiles.py [--tiles 300] [--noise-correlation 0] [--model PATH]
Validation tiles at GOODS-S depth and density (never the test split: this helps choose a
model). Writes docs/results/sky_on_tiles.json (or ``--output``), one entry per model and
noise texture, so that runs for several models add up in one file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from accuracy import (  # noqa: I001 - sibling script
    predict_scenes,
    split_scenes,
    tile_noise,
    tile_thresholds,
    with_offset,
)
from astropy.table import Table, vstack

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.pcr import find_peaks
from mosaic_pais.runtime.background import subtract_sky
from mosaic_pais.sim.scenes import SIMULATOR_VERSION


def detections(predictor, scenes, meta: dict, finding: dict) -> Table:
    """The model's peaks on every scene (each in its own noise units, with the card's
    threshold for its own noise texture, as ``accuracy.py`` decodes tiles), stacked with tile
    offsets."""
    sigmas, textures = tile_noise(scenes)
    thresholds = tile_thresholds(textures, meta)
    rows = []
    for i, (pred, j) in enumerate(predict_scenes(predictor, scenes, sigmas)):
        peaks = find_peaks(pred.center[j], threshold=thresholds[i], **finding)
        rows.append(with_offset(Table({"x": peaks.x, "y": peaks.y,
                                       "flux": np.ones(len(peaks.y))}), i))
    return vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--noise-correlation", type=float, default=None,
                        help="px; 0 gives white noise (default: GOODS-S's correlated noise)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--output", type=Path, default=Path("docs/results/sky_on_tiles.json"))
    args = parser.parse_args()
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model, batch_size=16)
    finding = peak_finding(meta)
    scenes = split_scenes("val", args.tiles, "goods-s", args.noise_correlation)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    entry = {"model": str(args.model), "version": meta.get("version"), "tiles": args.tiles,
             "split": "val", "noise_correlation_px": args.noise_correlation,
             "simulator": SIMULATOR_VERSION}  # which simulator made the scenes
    for mode in ("as simulated", "sky subtracted"):
        seen = scenes if mode == "as simulated" else [
            dataclasses.replace(s, image=subtract_sky(s.image)) for s in scenes]
        catalog = detections(predictor, seen, meta, finding)
        r = evaluate(catalog, truth, mag_limit=27.0)
        entry[mode] = {"detections": len(catalog), "completeness": r["completeness"],
                       "purity": r["purity"], "f1": r["f1"]}
        print(f"{mode}: {len(catalog)} detections, completeness {r['completeness']:.4f}, "
              f"purity {r['purity']:.4f}, F1 {r['f1']:.4f}", flush=True)
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    texture = ("goods-s" if args.noise_correlation is None
               else "white" if args.noise_correlation == 0
               else f"corr{args.noise_correlation:g}")
    results[f"{Path(args.model).stem} {texture}"] = entry
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # the file's entries may come from runs apart: it is as old as its oldest
    results["simulator"] = min(e.get("simulator", 1) for k, e in results.items()
                               if k != "simulator")
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
