"""Compare models on validation tiles: each loss term on the same crops, per band too.

Usage: python training/val_loss.py MODEL [MODEL ...] --data DIR [--config CONFIG] [--crops 512]
           [--json docs/results/val_loss_fourband.json] [--labels NAME ...] [--built-by TEXT]

A MODEL is a ``.keras`` file or a run folder with a checkpoint (``training/resume/hsc_v1``).

The training log's validation loss uses 128 crops, enough to follow a run but not to tell two
candidates apart by a few per cent; this script evaluates every model on the same ``--crops``
crops of ``DIR/val`` (each tile's sky subtracted as in training), with the loss of
``--config``. Where the tiles hold per-band flux weights it also reports the flux term of each
band alone (the mean relative flux error of the crops' sources in that band). Prints one JSON
object per model, and with ``--json`` writes them all (a model card shows that file).
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from mosaic_pais.nn.model import load_model
from mosaic_pais.training.dataset import load_split, subtract_tile_skies
from mosaic_pais.training.loss import LossConfig, pais_loss_terms
from mosaic_pais.training.train import TrainConfig, model_file, validation_batches


def fixed_crops(cfg: TrainConfig, n_crops: int) -> tuple[list, TrainConfig]:
    """``n_crops`` validation crops in batches of 16, the same for every model: the training
    log's own validation crops (:func:`mosaic_pais.training.train.validation_batches`),
    more of them; and ``cfg`` with the crops' band and slot counts, which the data decide
    (as in training)."""
    val = load_split(Path(cfg.data) / "val")
    if cfg.background_mesh:
        val["image"] = subtract_tile_skies(val["image"], cfg.background_mesh)
    cfg = replace(cfg, n_bands=int(val["image"].shape[1]),
                  n_slots=int(val["vectors"].shape[-2]))
    return validation_batches(val, cfg, max(1, n_crops // 16)), cfg


def per_band_flux(outputs: dict, labels: dict, cfg: TrainConfig) -> list[float]:
    """The flux term of each band alone (per-band weights only)."""
    from keras import ops

    pixels = tuple(ops.shape(outputs["center"])[:3])
    logits = ops.reshape(outputs["fraction_logits"], (*pixels, cfg.n_bands, cfg.n_slots))
    out = []
    for band in range(cfg.n_bands):
        one = {**outputs, "fraction_logits": logits[..., band, :]}
        labels_one = {**labels, "fractions": labels["fractions"][..., band:band + 1, :],
                      "flux_weight": labels["flux_weight"][..., band:band + 1, :]}
        out.append(float(pais_loss_terms(one, labels_one, 1, cfg.n_slots,
                                         LossConfig(flux=1.0))["flux"]))
    return out


def network(path: Path):
    """The model at ``path``: a ``.keras`` file, or a run folder whose last checkpoint is
    exported first (a checkpoint kept in training/resume/)."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_model(model_file(path, tmp))


def evaluate(model_path: Path, batches: list, cfg: TrainConfig, loss_cfg: LossConfig) -> dict:
    model = network(model_path)
    sums: dict = {}
    bands = np.zeros(cfg.n_bands)
    per_band = batches[0][1]["flux_weight"].ndim == 5 if "flux_weight" in batches[0][1] \
        else False
    for x, labels in batches:
        outputs = model(x, training=False)
        for key, value in pais_loss_terms(outputs, labels, cfg.n_bands, cfg.n_slots,
                                          loss_cfg).items():
            sums[key] = sums.get(key, 0.0) + float(value) / len(batches)
        if per_band:
            bands += np.asarray(per_band_flux(outputs, labels, cfg)) / len(batches)
    result = {"model": str(model_path), **{k: round(v, 5) for k, v in sums.items()}}
    if per_band:
        result["flux_by_band"] = dict(zip(cfg.bands, np.round(bands, 5).tolist(), strict=True))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--crops", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--labels", nargs="*", default=None,
                        help="names of the models in the JSON (default: their paths)")
    parser.add_argument("--built-by", default=None,
                        help="how the validation tiles of --data were made (for the JSON)")
    args = parser.parse_args()
    cfg = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    cfg = replace(cfg, data=str(args.data))
    batches, cfg = fixed_crops(cfg, args.crops)
    loss_cfg = LossConfig(**cfg.loss) if isinstance(cfg.loss, dict) else cfg.loss
    results = []
    for path in args.models:
        results.append(evaluate(path, batches, cfg, loss_cfg))
        if args.labels:
            results[-1]["label"] = args.labels[len(results) - 1]
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "data": str(args.data), "crops": len(batches) * 16,
            "config": str(args.config), "models": results,
            **({"data_built_by": args.built_by} if args.built_by else {}),
            "command": "python training/val_loss.py " + " ".join(
                str(p) for p in args.models) + f" --data {args.data} --config {args.config} "
            f"--crops {args.crops}"
            + (" --labels " + " ".join(map(shlex.quote, args.labels))
               if args.labels else "")}, indent=2))


if __name__ == "__main__":
    main()
