"""Copy a training run's exported model into the package with its card, and plot its curves.

Usage: python training/ship_model.py training/runs/f160w_v1
       python training/ship_model.py training/resume/hsc_v2 --name pais_hsc  # its checkpoint
       python training/ship_model.py training/runs/fourband_v1 --name pais_fourband
       python training/ship_model.py --card     # re-render docs/model_card.md only
Writes mosaic_pais/models/<name>.keras (default pais_f160w), its .json card (kept decoder
settings such as the tuned threshold are preserved), its model card page (docs/model_card.md,
docs/model_card_<band set>.md for another model) and its loss curves (docs/figures/).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, describe_thresholds, file_sha256, load_model
from mosaic_pais.sim.bands import survey_of
from mosaic_pais.training.train import export_checkpoint

TERMS = ("loss", "center", "vectors", "fractions", "entropy")


def total_wall_seconds(rows: list[dict]) -> float:
    """Training time over all resumed segments (each segment's clock restarts at 0)."""
    total, previous = 0.0, 0.0
    for row in rows:
        wall = float(row["wall_s"])
        if wall < previous:
            total += previous
        previous = wall
    return total + previous


def all_runs() -> list[dict]:
    """Every run of training/lineage.json in its order, shipped or not."""
    path = Path(__file__).with_name("lineage.json")
    runs = json.loads(path.read_text()) if path.exists() else {}
    return [{"run": name, **entry} for name, entry in runs.items() if not name.startswith("_")]


def lineage_of(run_name: str) -> list[dict]:
    """The runs the shipped one descends from, oldest first."""
    runs = {entry["run"]: entry for entry in all_runs()}
    chain, name = [], run_name
    while name in runs:
        chain.append(runs[name])
        name = runs[name].get("from")
    return chain[::-1]


def describe_training_set(folder: Path, bands=("F160W",)) -> str:
    """What the run's training shards hold, from their attrs (tiles per conditions version)."""
    import zarr

    tiles: dict[int, int] = {}
    positions = set()
    for path in sorted(folder.glob("shard_*.zarr")):
        attrs = zarr.open_group(str(path), mode="r").attrs
        if attrs.get("complete"):
            version = int(attrs.get("conditions", 1))
            tiles[version] = tiles.get(version, 0) + int(attrs["n_tiles"])
            positions.add(attrs.get("label_positions", "centroids"))
    where = {"drawn": "the sources' drawn positions (a real galaxy's stamp centre)",
             "centroids": "the flux-weighted centroids of the sources' stamps"}
    texture = {1: "noise correlated like drizzled GOODS-S data (0.6 px)",
               2: "white noise for a quarter of the tiles, correlated by 0.3-0.9 px otherwise"}
    parts = [f"{n:,} with {texture.get(v, f'conditions version {v}')}"
             for v, n in sorted(tiles.items())]
    hsc = survey_of(bands).name == "HSC"
    sky = ("Subaru HSC-like (0.168″/px; each tile its own seeing, 0.2-1.1″ FWHM)"
           if hsc else "GOODS-S-like")
    depth = "HSC's reference depths (a real HSC COSMOS blend's)" if hsc else "GOODS-S"
    side = {int(zarr.open_group(str(p), mode="r").attrs.get("tile_size", 256))
            for p in sorted(folder.glob("shard_*.zarr"))}
    size = "/".join(f"{v}²" for v in sorted(side)) or "256²"
    return (f"{sum(tiles.values()):,} simulated {sky} {', '.join(bands)} {size} tiles "
            f"({'; '.join(parts)}), "
            "train split seeds 1,000,000+ (validation 2,000,000+; the test split 3,000,000+ is "
            f"never used); density 0.5-2.5x, noise 0.6-2x {depth} and close companions drawn "
            "per tile; only sources with white-noise matched-filter S/N >= 5 labelled, at "
            + " or ".join(where.get(p, p) for p in sorted(positions)))


def training_set_text(folder: Path, bands, old_card: dict) -> str:
    """:func:`describe_training_set`, or, where the shards are not on this machine (a run
    shipped from a checkpoint kept in the repository), the text of the card it replaces."""
    if any(folder.glob("shard_*.zarr")):
        return describe_training_set(folder, bands)
    if "data" in old_card.get("training", {}):
        return old_card["training"]["data"]
    raise SystemExit(f"{folder}: no training shards to describe, and no card to keep the "
                     "description of")


def describe_tile_sampling(config: dict) -> str:
    """How a run drew its training tiles (train.tile_weights), in words."""
    terms = []
    if config.get("blend_oversampling", 0) > 0:
        terms.append(f"{config['blend_oversampling']:g} × close pairs")
    if config.get("extended_oversampling", 0) > 0:
        terms.append(f"{config['extended_oversampling']:g} × thousands of pixels of extended "
                     "light (S/N > 3, > 6 px from their source's centre)")
    return "∝ 1 + " + " + ".join(terms) if terms else "uniformly"


DEFAULT_NAME = DEFAULT_MODEL_PATH.stem


def model_path(name: str) -> Path:
    """Where the package keeps the model called ``name``."""
    return DEFAULT_MODEL_PATH.with_name(f"{name}.keras")


def doc_suffix(name: str) -> str:
    """``""`` for the default model, ``"_fourband"`` for ``pais_fourband``: its pages' names."""
    return "" if name == DEFAULT_NAME else "_" + name.removeprefix("pais_")


#: the results each model's card page quotes
ACCURACY_RESULTS = {DEFAULT_NAME: "accuracy_test", "pais_fourband": "four_band_accuracy",
                    "pais_hsc": "hsc_blends"}


def accuracy_of(name: str) -> dict | None:
    """The test results a model's card page quotes, when they exist."""
    path = Path(f"docs/results/{ACCURACY_RESULTS.get(name, 'four_band_accuracy')}.json")
    return json.loads(path.read_text()) if path.exists() else None


def render_card(name: str = DEFAULT_NAME) -> None:
    """Rewrite a model's card page from its shipped card and training/lineage.json."""
    card = json.loads(model_path(name).with_suffix(".json").read_text())
    write_model_card_doc(card, accuracy_of(name))


def main(run: Path, name: str = DEFAULT_NAME) -> None:
    config = json.loads((run / "config.json").read_text())
    rows = list(csv.DictReader(open(run / "log.csv")))
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    target = model_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if (run / "model.keras").is_file():
        shutil.copyfile(run / "model.keras", target)
    else:  # a checkpoint kept in the repository, exported here
        export_checkpoint(run, target)
    model = load_model(target)  # refuses anything safe_mode cannot load
    card_path = target.with_suffix(".json")
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    last = train_rows[-1] if train_rows else {}
    mesh = int(config.get("background_mesh") or 0)  # 0: trained on tiles as simulated
    card = {
        "name": name,
        "version": f"0.1-step{last.get('step', 0)}",
        "bands": list(config.get("bands", ["F160W"])),
        "n_slots": config["n_slots"],
        "filters": config["filters"],
        "parameters": int(model.count_params()),
        "input": ("bands" + (f", sky subtracted on {mesh} px cells "
                             "(mosaic_pais.runtime.background),"
                             if mesh else "")
                  + " / noise sigma (robust estimate from the mosaic), then asinh(x/3) inside "
                  "the model; a validity channel (1 = inside and finite)"),
        # how the network saw its training tiles; benchmarks decode single tiles the same way
        "background_mesh": mesh,
        "center_sigma_px": 2.0,
        "threshold": old.get("threshold", 0.3),
        **({"threshold_by_texture": old["threshold_by_texture"]}
           if "threshold_by_texture" in old else {}),
        "window": old.get("window", 5),
        # peaks are found on the centre map's matched filter (a Gaussian of the map's own
        # width), its scores fractions of an ideal peak (mosaic_pais.pcr.smooth_center)
        "peak_smoothing_px": old.get("peak_smoothing_px", 2.0),
        "vote": old.get("vote", "vectors"),
        "threshold_tuned_on": old.get("threshold_tuned_on", "not tuned"),
        "training": {
            "data": training_set_text(Path(config["data"]) / "train",
                                      config.get("bands", ["F160W"]), old),
            "steps": int(last.get("step", 0)),
            "wall_seconds": total_wall_seconds(rows),
            "batch": config["batch"], "crop": config["crop"],
            "learning_rate": config["learning_rate"], "loss": config["loss"],
            "tile_sampling": describe_tile_sampling(config),
            "last_train_loss": {k: float(last[k]) for k in TERMS} if last else {},
            "last_val_loss": {k: float(val_rows[-1][k]) for k in TERMS} if val_rows else {},
            "run": run.name,
            "lineage": lineage_of(run.name),
        },
        "sha256": file_sha256(target),
    }
    if survey_of(card["bands"]).seeing is not None:
        card["psf"] = {"per_image": True,
                       "source": "the seeing changes from coadd to coadd: a run takes each "
                                 "band's PSF from --psf, and without it measures footprint sums"}
    for kept in ("psf", "fraction_error", "relative_flux_error", "flux_errors_calibrated_on",
                 "noise_error_scale"):  # set by their own scripts, kept until they rerun
        if kept in old:
            card[kept] = old[kept]
    card_path.write_text(json.dumps(card, indent=2))
    print(json.dumps(card, indent=2))
    write_model_card_doc(card, accuracy_of(name))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TERMS), figsize=(4 * len(TERMS), 3.2))
    for ax, term in zip(axes, TERMS, strict=True):
        for rows_, label, style in ((train_rows, "train", "-"), (val_rows, "validation", "o-")):
            if rows_:
                ax.plot([int(r["step"]) for r in rows_], [float(r[term]) for r in rows_], style,
                        ms=3, label=label)
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"docs/figures/loss_curves{doc_suffix(name)}.png", dpi=100)



def validation_lines(name: str) -> list[str]:
    """The candidates' loss terms on the same validation crops
    (docs/results/val_loss_<band set>.json, training/val_loss.py), when they exist."""
    path = Path(f"docs/results/val_loss{doc_suffix(name)}.json")
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    bands = list(r["models"][0].get("flux_by_band", {}))
    lines = ["", "## Candidates on the same validation crops", "",
             f"`{r['command']}` — each loss term over the same {r['crops']} validation crops; "
             "the flux term is the crops' sources' mean relative flux error, summed over "
             "bands and per band (each band's light over each source's flux in it)."
             + (f" The crops: {r['data_built_by']}." if "data_built_by" in r else ""), "",
             "| model | loss | fractions | flux | " + " | ".join(f"flux {b}" for b in bands)
             + " |", "| --- | --- | --- | --- |" + " --- |" * len(bands)]
    for m in r["models"]:
        lines.append(f"| {m.get('label') or m['model']} | {m['loss']:.4f} | {m['fractions']:.4f} | "
                     f"{m['flux']:.4f} | " + " | ".join(f"{m['flux_by_band'][b]:.4f}"
                                                       for b in bands) + " |")
    return lines


def ablation_lines() -> list[str]:
    """The ablation tables of docs/results/ablation_*.json (benchmarks/ablation.py)."""
    lines = []
    for path in sorted(Path("docs/results").glob("ablation_*.json")):
        r = json.loads(path.read_text())
        models = list(r["models"])
        lines += ["", f"## Ablation: {path.stem.removeprefix('ablation_')}", "",
                  f"`python benchmarks/ablation.py` on {r['tiles']} validation tiles per "
                  "condition, every model decoded with the same card "
                  f"(`{Path(r['card']).name}`); median |δ| on the sources every model recovers "
                  "(common; their number, all / blended, beside each condition) beside a "
                  "perfect PCR through the same decoder.", "",
                  "| conditions | model | F1 | completeness blended | median \\|δ\\| common "
                  "| blended | perfect PCR common | blended |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        changes = r.get("card_changes", {})
        for label, rows in r["conditions"].items():
            ref = rows["perfect PCR"]
            for name in models:
                v = rows[name]
                decoded = "".join(f", {key} = {json.dumps(value)}"
                                  for key, value in changes.get(name, {}).items())
                lines.append(f"| {label} ({rows['n_common']} / {rows['n_common_blended']}) | "
                             f"{name} ({r['models'][name]}{decoded}) | {v['f1']:.3f} | "
                             f"{v['completeness_blended']:.3f} | {v['common_all']:.3f} | "
                             f"{v['common_blended']:.3f} | {ref['common_all']:.3f} | "
                             f"{ref['common_blended']:.3f} |")
        lines += _sweep_lines(r, models)
    return lines


def _sweep_lines(r: dict, models: list[str]) -> list[str]:
    """Each model's detections at its own best single centre-map threshold, where the
    ablation swept them (benchmarks/ablation.py)."""
    if not all("sweep" in rows[name] for rows in r["conditions"].values() for name in models):
        return []
    lines = ["", "Each model's detections at the single centre-map threshold of its best F1 "
             "(swept over every tile alike): threshold, F1, completeness of blended sources.",
             "", "| conditions | model | threshold | F1 | completeness blended |",
             "| --- | --- | --- | --- | --- |"]
    for label, rows in r["conditions"].items():
        for name in models:
            best = rows[name]["sweep"]["at_best_f1"]
            lines.append(f"| {label} | {name} | {best['threshold']:g} | {best['f1']:.3f} | "
                         f"{best['completeness_blended']:.3f} |")
    return lines


def write_model_card_doc(card: dict, accuracy: dict | None) -> None:
    """docs/model_card.md from the card JSON (and the accuracy results when present)."""
    t, name = card["training"], card["name"]
    bands = card.get("bands", ["F160W"])
    task = ("PCR of HST WFC3/IR F160W images at 0.06″/px (GOODS-S-like depth)"
            if bands == ["F160W"] else
            f"PCR of Subaru HSC {', '.join(bands)} coadds at 0.168″/px, fractions per band; "
            f"{bands[0]} the detection band. The seeing changes from image to image: give each "
            "band's PSF with `--psf` for total fluxes and matched colours (without it, each "
            "band's flux is its footprint sum)"
            if survey_of(bands).name == "HSC" else
            f"PCR of HST {', '.join(bands)} images on a common 0.06″/px grid (GOODS-S-like "
            f"depths), fractions per band; {bands[0]} the detection band")
    lines = [
        f"# Model card: {name}", "",
        f"Version {card['version']} — `mosaic_pais/models/{name}.keras` (sha256 "
        f"`{card['sha256'][:16]}…`), written by `python training/ship_model.py`.", "",
        "| | |", "| --- | --- |",
        f"| task | {task} |",
        f"| architecture | PAIS two-decoder network, encoder widths {card['filters']}, "
        f"{card['parameters']:,} parameters, FANet fast attention on every skip |",
        f"| input | {card['input']} |",
        f"| outputs | C^c (σ = {card['center_sigma_px']} px), C^v for n = {card['n_slots']}, "
        "C^m per band |",
        f"| decoder | peak threshold {describe_thresholds(card)}, box {card['window']} px, "
        f"centre map through its matched filter (Gaussian σ = "
        f"{card.get('peak_smoothing_px', 0)} px; 0: the bare map), "
        f"votes `{card['vote']}` ({card['threshold_tuned_on'].replace('|', chr(92) + '|')}) |",
        f"| data | {t['data']} |",
        f"| training | {t['steps']} steps of {t['batch']} random {t['crop']}² crops (flips, "
        "quarter turns, rotations, random edges/masks) of tiles drawn "
        f"{t.get('tile_sampling', 'uniformly')}, Adam lr {t['learning_rate']} cosine, "
        f"{t['wall_seconds'] / 3600:.2f} h on 2 shared CPU cores "
        f"(this run, {t.get('run', '?')}; the runs before it are listed below) |",
        f"| loss | {t['loss']} |", "",
        f"![loss curves](figures/loss_curves{doc_suffix(name)}.png)", "",
        "Every run started from the weights of the one in its `from` column "
        "(`training/lineage.json`; `bash training/train_f160w.sh` with `RUN`, `CONFIG`, `FROM` "
        "and `MINUTES` reruns one); runs after the shipped one were tried and not shipped:", "",
        "| run | from | steps | hours | what changed | outcome |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in all_runs() if name == DEFAULT_NAME else lineage_of(t.get("run", "")):
        shipped = entry["run"] == t.get("run")
        steps = t["steps"] if shipped else entry.get("steps")
        hours = t["wall_seconds"] / 3600 if shipped else entry.get("hours")
        outcome = "shipped (this card)" if shipped else (entry.get("outcome") or "")
        change = entry["change"].replace("|", "\\|")  # a |δ| must not end the cell
        outcome = outcome.replace("|", "\\|")
        lines.append(f"| {entry['run']} | {entry.get('from') or 'scratch'} | "
                     f"{steps if steps is not None else '—'} | "
                     f"{f'{hours:.2f}' if hours is not None else '—'} | {change} | "
                     f"{outcome} |")
    lines += [
        "",
        "Training continues (`bash training/train_"
        f"{'f160w' if name == DEFAULT_NAME else doc_suffix(name)[1:]}.sh` resumes from the "
        "last checkpoint); this card, the weights and docs/benchmarks.md are updated together.",
    ]
    if name == "pais_hsc":
        lines += validation_lines(name)
        lines += hsc_lines(accuracy)
        Path(f"docs/model_card{doc_suffix(name)}.md").write_text("\n".join(lines) + "\n")
        return
    if name != DEFAULT_NAME:
        lines += validation_lines(name)
        lines += four_band_accuracy_lines(accuracy)
        Path(f"docs/model_card{doc_suffix(name)}.md").write_text("\n".join(lines) + "\n")
        return
    lines += ablation_lines()
    if accuracy:
        m, s = accuracy.get("mosaic-pais", {}), accuracy.get("sep", {})
        lines += ["", "## Accuracy (held-out test tiles, see benchmarks.md)", "",
                  f"F1 {m.get('f1', 0):.3f} (sep {s.get('f1', 0):.3f}); median |δ| blended "
                  f"{(m.get('flux_blended') or {}).get('median_abs') or float('nan'):.3f} (sep "
                  f"{(s.get('flux_blended') or {}).get('median_abs') or float('nan'):.3f})."]
        trained_on, tested_on = int(t.get("simulator", 1)), int(accuracy.get("simulator", 1))
        if tested_on != trained_on:
            lines[-1] += (f" Trained on scenes of simulator version {trained_on}, tested on "
                          f"version {tested_on} (docs/simulation.md: since version 2 real "
                          "galaxies come without the square of their COSMOS stamps' noise).")
    Path("docs/model_card.md").write_text("\n".join(lines) + "\n")


def real_four_band_lines() -> list[str]:
    """What the four-band model does on real four-band data (benchmarks/real_four_band.py)."""
    path = Path("docs/results/real_four_band.json")
    if not path.exists():
        return []
    stamps = json.loads(path.read_text())["candels_stamps"]
    four, single = (stamps["methods"][m] for m in ("four-band model", "F160W model"))
    return ["", "## On real data", "",
            f"On the {stamps['stamps']} CANDELS stamps (GOODS-S, four bands) it finds "
            f"{four['objects_found']} of the {stamps['objects']} objects of the official F160W "
            f"segmentation maps (the F160W model {single['objects_found']}), and "
            f"{four['on_background']} of its {four['detections']} detections lie where that map "
            f"has no object (the F160W model: {single['on_background']} of "
            f"{single['detections']}). " + background_support_sentence(four)]


def background_support_sentence(four: dict) -> str:
    """What lies under the four-band model's detections on the maps' background."""
    support = four.get("on_background_supported")
    if not support:
        return ("Sources seen only in the deeper blue bands would lie there, and so would "
                "false detections where real ACS images differ from the simulated ones: "
                "nothing here tells them apart, so treat its detections without F160W light "
                "with care (benchmarks.md, \"Four bands on real GOODS-S data\").")
    return (f"Of those, {support['in_f160w']} have S/N ≥ 5 in F160W in a 3-px aperture, "
            f"{support['only_bluer_bands']} only in a bluer band, and {support['in_no_band']} "
            "in no band (false detections, or sources too faint to tell): treat its "
            "detections without F160W light with care (benchmarks.md, \"Four bands on real "
            "GOODS-S data\").")


def four_band_accuracy_lines(accuracy: dict | None) -> list[str]:
    """The four-band model's test figures (benchmarks/four_band_accuracy.py), per band."""
    if not accuracy:
        return ["", "Its accuracy on held-out test tiles: not measured yet.",
                *real_four_band_lines()]
    lines = ["", f"## Accuracy ({accuracy['setup']['tiles']} held-out four-band test tiles, "
             "see benchmarks.md)", "",
             "Median |δ| of the blended sources (β > 0.1) that every method recovers:", "",
             "| method | " + " | ".join(accuracy["setup"]["bands"]) + " | colour |",
             "| --- |" + " --- |" * (len(accuracy["setup"]["bands"]) + 1)]
    for method, row in accuracy["common_blended"].items():
        if method == "n_common":
            continue
        cells = [row["bands"].get(b) for b in accuracy["setup"]["bands"]]
        colour = "—" if row["colour"] is None else f"{row['colour']:.3f}"
        lines.append(f"| {method} | " + " | ".join("—" if v is None else f"{v:.3f}"
                                                   for v in cells) + f" | {colour} |")
    return lines + real_four_band_lines()


def hsc_lines(accuracy: dict | None) -> list[str]:
    """The HSC model's figures on the simulated HSC blends (benchmarks/hsc_blends.py)."""
    if not accuracy:
        return ["", "Its accuracy on the simulated HSC blends: not measured yet."]
    lines = ["", "## On simulated HSC blends with true source images (see benchmarks.md)", "",
             "Median |δ| per band of the sources it recovers, and scarlet2's on the same "
             "sources (fitted at the true positions with the true PSFs):", "",
             "| blend | recovered | method | " + " | ".join(accuracy["setup"]["bands"]) + " |",
             "| --- | --- | --- |" + " --- |" * len(accuracy["setup"]["bands"])]
    for blend, r in accuracy.items():
        if blend == "setup":
            continue
        for method, key in (("HSC model", "HSC model"), ("scarlet2", "scarlet2 (true positions)")):
            errs = r[key]["found"]
            lines.append(f"| {blend} | {r['matched']} of {r['sources']} | {method} | "
                         + " | ".join("—" if errs[b]["median_abs_delta"] is None
                                      else f"{errs[b]['median_abs_delta']:.3f}"
                                      for b in accuracy["setup"]["bands"]) + " |")
    return lines


def cli(argv: list[str] | None = None) -> None:
    """``ship_model.py RUN`` ships a run; ``ship_model.py --card`` re-renders the card only."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="the training run's folder")
    parser.add_argument("--card", action="store_true",
                        help="only re-render the model's card page from its shipped card")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help="the model's name in the package (pais_fourband, …)")
    args = parser.parse_args(argv)
    if args.card:
        render_card(args.name)
    elif args.run is None:
        parser.error("give a training run's folder, or --card")
    elif not (args.run / "model.keras").is_file() and not (args.run / "ckpt").is_dir():
        parser.error(f"{args.run}: neither an exported model.keras nor a ckpt/ in this folder")
    else:
        main(args.run, args.name)


if __name__ == "__main__":
    cli()
