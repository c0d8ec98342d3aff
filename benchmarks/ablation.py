"""Training choices compared on validation tiles: several models, the same tiles, one decoder.

Each model decodes the same validation tiles with the same card (the shipped model's
thresholds, peak finding and votes, unless ``--card`` names another), so that what differs is
the network alone. Reported per model: F1, the completeness of blended sources (β > 0.1) and
the median |δ| of all and of blended sources over the sources every model recovers; a perfect
PCR through the same decoder is the reference row. A model whose centre map is trained
differently may want other thresholds than the card's, so each model's detections are also
swept over one threshold for every tile (:data:`SWEEP_THRESHOLDS`): F1 and the completeness of
blended sources at each, and at the threshold of its best F1.

Usage:
  python benchmarks/ablation.py --name f160w_v15 \\
      --model f160w_v14=mosaic_pais/models/pais_f160w.keras \\
      --model f160w_v15=training/runs/f160w_v15/model.keras --tiles 200
  python benchmarks/ablation.py --name precision --tiles 300 \
      --model float32=mosaic_pais/models/pais_f160w.keras \
      --model bfloat16=mosaic_pais/models/pais_f160w.keras@bfloat16
A model's ``@PRECISION`` suffix decodes it in that precision (float32 by default;
:func:`mosaic_pais.nn.model.inference_network`); ``+KEY=VALUE`` suffixes change the card's
decoding for that model alone, e.g.
``--model reshared=mosaic_pais/models/pais_f160w.keras+footprint_reshare=true`` (values are
read as JSON). Besides the card's own keys: ``footprint_reshare`` (a claim dropped beyond its
source's footprint goes to the pixel's other claimants,
:func:`mosaic_pais.runtime.measure.claim_footprints`) and ``fraction_power`` (the fractions
raised to this power and renormalised before they are cleaned).
Writes docs/results/ablation_<name>.json (the model card's ablation table reads it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from accuracy import (
    decode_as_trained,
    model_catalog,
    perfect_pcr_catalog,
    split_scenes,
    tile_thresholds,
    with_offset,
)
from astropy.table import vstack

from mosaic_pais.evaluation.metrics import evaluate, flux_errors_on_common_sources
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, PAISPredictor, model_metadata, peak_finding
from mosaic_pais.pcr import find_peaks
from mosaic_pais.sim.scenes import SIMULATOR_VERSION
from mosaic_pais.training.train import model_file

CONDITIONS = {"GOODS-S depth, white noise": ("goods-s", 0.0), "varied": ("varied", None)}
#: centre-map thresholds of the detection sweep
SWEEP_THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95, 0.975)


def model_spec(spec: str) -> tuple[str, Path, str, dict]:
    """``NAME=PATH[@PRECISION][+KEY=VALUE...]`` → (name, path, precision, card changes)."""
    name, rest = spec.split("=", 1)
    rest, *changes = rest.split("+")
    path, _, precision = rest.partition("@")
    card = {key: json.loads(value) for key, value in (c.split("=", 1) for c in changes)}
    return name, Path(path), precision or "float32", card


def model_catalogue(path: Path, card: dict, scenes, precision: str = "float32") -> tuple:
    """A model's stacked catalogue of the scenes, decoded with ``card``, and its seconds."""
    t = time.time()
    predictor = PAISPredictor(path, batch_size=16, precision=precision)
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, card)
    finding, vote = peak_finding(card), str(card.get("vote", "vectors"))
    thresholds = tile_thresholds(textures, card)
    decoding = {"reshare": bool(card.get("footprint_reshare", False)),
                "fraction_power": float(card.get("fraction_power", 1.0))}
    catalog = vstack([with_offset(model_catalog(p, j, seen[i].image, sigmas[i], thresholds[i],
                                                finding, vote, **decoding), i)
                      for i, (p, j) in enumerate(preds)])
    return catalog, time.time() - t, seen, sigmas, preds


def detection_sweep(preds, card: dict, truth, mag_limit: float) -> dict:
    """F1 and the completeness of blended sources of the model's peaks at each of
    :data:`SWEEP_THRESHOLDS` (one for every tile), and both at the threshold of its best F1."""
    from astropy.table import Table

    finding = peak_finding(card)
    sweep = {"thresholds": list(SWEEP_THRESHOLDS), "f1": [], "completeness_blended": []}
    for threshold in SWEEP_THRESHOLDS:
        parts = []
        for i, (p, j) in enumerate(preds):
            peaks = find_peaks(p.center[j], threshold=threshold, **finding)
            parts.append(with_offset(Table({"x": peaks.x, "y": peaks.y,
                                            "flux": [1.0] * len(peaks.x)}), i))
        r = evaluate(vstack(parts), truth, mag_limit=mag_limit)
        sweep["f1"].append(r["f1"])
        sweep["completeness_blended"].append(r["completeness_blended"])
    best = max(range(len(SWEEP_THRESHOLDS)), key=lambda k: sweep["f1"][k])
    sweep["at_best_f1"] = {"threshold": SWEEP_THRESHOLDS[best], "f1": sweep["f1"][best],
                           "completeness_blended": sweep["completeness_blended"][best]}
    return sweep


def compare(models: dict, card: dict, scenes, mag_limit: float) -> dict:
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)],
                   metadata_conflicts="silent")
    catalogs, result = {}, {}
    for name, (path, precision, changes) in models.items():
        catalogs[name], seconds, seen, sigmas, preds = model_catalogue(
            path, card | changes, scenes, precision)
        r = evaluate(catalogs[name], truth, mag_limit=mag_limit)
        result[name] = {"f1": r["f1"], "completeness": r["completeness"], "purity": r["purity"],
                        "completeness_blended": r["completeness_blended"],
                        "median_abs_delta": r["flux"]["median_abs"],
                        "median_abs_delta_blended": r["flux_blended"]["median_abs"],
                        "seconds": seconds,
                        "sweep": detection_sweep(preds, card | changes, truth, mag_limit)}
        del preds
    catalogs["perfect PCR"] = vstack([with_offset(perfect_pcr_catalog(s, seen[i].image,
                                                                      sigmas[i]), i)
                                      for i, s in enumerate(scenes)])
    common = flux_errors_on_common_sources(catalogs, truth, mag_limit=mag_limit)
    for name in catalogs:
        result.setdefault(name, {})
        result[name]["common_all"] = common[name]["all"]["median_abs"]
        result[name]["common_blended"] = common[name]["blended"]["median_abs"]
    result["n_common"] = common["n_common"]
    result["n_common_blended"] = common[next(iter(models))]["blended"]["n"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", action="append", required=True,
                        help="NAME=PATH[@PRECISION][+KEY=VALUE...] of a .keras model or a run "
                             "folder with a checkpoint (repeat)")
    parser.add_argument("--card", type=Path, default=DEFAULT_MODEL_PATH.with_suffix(".json"))
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    args = parser.parse_args()
    specs = [model_spec(spec) for spec in args.model]
    scratch = Path(tempfile.mkdtemp())
    models = {name: (model_file(path, scratch), precision, changes)
              for name, path, precision, changes in specs}
    given = {name: path for name, path, _, _ in specs}
    card = model_metadata(args.card.with_suffix(".keras")) if args.card.with_suffix(
        ".keras").exists() else json.loads(args.card.read_text())
    out = {"split": "val", "tiles": args.tiles, "card": str(args.card),
           "models": {k: str(given[k]) + ("" if precision == "float32" else f"@{precision}")
                      for k, (_, precision, _) in models.items()},
           "card_changes": {k: changes for k, (_, _, changes) in models.items() if changes},
           "simulator": SIMULATOR_VERSION,
           "conditions": {}}
    for label, (conditions, correlation) in CONDITIONS.items():
        scenes = split_scenes("val", args.tiles, conditions, correlation)
        out["conditions"][label] = compare(models, card, scenes, args.mag_limit)
        print(label, json.dumps(out["conditions"][label], indent=1, default=float), flush=True)
    path = Path(f"docs/results/ablation_{args.name}.json")
    path.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
