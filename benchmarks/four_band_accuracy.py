"""Four bands: the four-band model against the F160W model, photutils and scarlet2, per band.

On held-out four-band test tiles (the simulator's *test* split, seeds 3,000,000 + i, in the
training set's varied conditions; :mod:`mosaic_pais.sim.bands` renders F160W, F125W, F850LP and
F606W with their own PSFs, depths and colour gradients), every method measures every band:

* **four-band model**: the shipped model for these bands, decoded and measured as a run does
  (each band's flux from that band's own fractions, made total with that band's PSF);
* **F160W model**: the shipped single-band model on the F160W plane alone (its F160W figures);
* **photutils (dual image)**: detected and deblended on F160W, every band measured in the same
  segments and Kron apertures (:func:`mosaic_pais.evaluation.peers.run_photutils_bands`);
* **perfect PCR**: the true centres and the true per-band fractions through the run's own
  decoder and estimator, the ceiling of what the fractions can give;
* **known-shape fit**: every source's true noiseless image in each band, their amplitudes
  fitted jointly to that band's noisy image (the noise floor: what no method can beat);
* **scarlet2** (on the first ``--scarlet2-tiles`` tiles): fitted to all four bands at the true
  positions of the detectable sources, with the simulator's own PSFs (its best case).

Judged by matching each catalogue to the truth within 3 px (Hungarian), on the counted truths
(in frame, H < 27): per band the median |δ| = |measured/true − 1| and, for the colour
F606W − F160W, the median |Δ colour| (mag; a measured flux ≤ 0 in either band counts as an
infinite error), on the blended sources (β > 0.1) that every method of the comparison
recovers, and on all of them; the detection scores (F1, completeness per blendedness bin) of
every method that detects. Time per source: after the comparison, each method alone (one after
another in one process, nothing else running beside it) on the first ``--timing-tiles`` tiles,
wall seconds over the sources it measured, scene simulation excluded; the models after one
warm-up tile (their graph is traced once per run, not per tile), scarlet2 with its JAX
compilation for each scene (a scene's shapes change from blend to blend).

Usage: python benchmarks/four_band_accuracy.py [--tiles 1000] [--scarlet2-tiles 150]
Writes docs/results/four_band_accuracy.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import (  # noqa: E402, I001 - sibling script
    as_trained,
    card_measuring,
    known_shape_catalog,
    model_catalog,
    perfect_pcr_catalog,
    predict_scenes,
    split_scenes,
    tile_noise,
    tile_of,
    tile_thresholds,
    with_offset,
)
from scarlet2_peer import scarlet2_catalog, simulation_psf  # noqa: E402

from mosaic_pais.evaluation.metrics import BLENDED, evaluate, match_catalogs  # noqa: E402
from mosaic_pais.evaluation.peers import run_photutils_bands  # noqa: E402
from mosaic_pais.nn.model import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    model_for_bands,
    model_metadata,
    peak_finding,
)
from mosaic_pais.sim.bands import FOUR_BANDS  # noqa: E402
from mosaic_pais.sim.scenes import SIMULATOR_VERSION  # noqa: E402

#: the colour judged, blue band first
COLOUR = ("F606W", "F160W")
FOUR, SINGLE, PHOTUTILS, PERFECT, KNOWN, SCARLET2 = (
    "four-band model", "F160W model", "photutils (dual image)", "perfect PCR",
    "known-shape fit", "scarlet2 (true positions)")
#: the methods every source of the main comparison must be recovered by
COMPARED = (FOUR, SINGLE, PHOTUTILS)


def _prepare(job: tuple) -> dict:
    """One tile's scene and everything measured without a network (in a worker process):
    the image, truth and noise, photutils' catalogue and, on the first tiles, scarlet2's."""
    split, index, scarlet2_tiles, max_iter = job
    scene = split_scenes(split, 1, start=index, bands=FOUR_BANDS)[0]
    out = {"index": index, "scene": scene,
           PHOTUTILS: run_photutils_bands(scene.image, float(scene.noise_sigma[0]), FOUR_BANDS)}
    if index < scarlet2_tiles:
        out[SCARLET2] = scarlet2_catalog(scene, simulation_psf(bands=FOUR_BANDS), max_iter)[0]
    return out


def model_catalogs(predictor, meta: dict, scenes, measuring: dict,
                   stages: dict | None = None) -> tuple[list[Table], list, np.ndarray]:
    """A model's catalogue of each scene, decoded and measured as a run does; and the scenes
    as it saw them (skies subtracted) with their noise sigmas. ``stages``, when given, gets
    the wall seconds of each stage: sky and noise, network, decoding and measuring."""
    clock = {"start": time.perf_counter()}
    seen = as_trained(scenes, meta)
    sigmas, textures = tile_noise(seen)
    clock["sky and noise"] = time.perf_counter()
    preds = predict_scenes(predictor, seen, sigmas)
    clock["network"] = time.perf_counter()
    finding, vote = peak_finding(meta), str(meta.get("vote", "vectors"))
    tables = [model_catalog(p, j, seen[i].image, sigmas[i], threshold, finding, vote,
                            **measuring)
              for i, ((p, j), threshold) in enumerate(zip(preds, tile_thresholds(textures, meta),
                                                          strict=True))]
    clock["decoding and measuring"] = time.perf_counter()
    if stages is not None:
        ticks = list(clock.values())
        stages.update({name: b - a for name, a, b in zip(list(clock)[1:], ticks[:-1],
                                                          ticks[1:], strict=True)})
    return tables, seen, sigmas


def chunk_catalogues(models: dict, prepared: list[dict]) -> dict:
    """Every method's catalogues of a chunk of prepared tiles (offset on the stacking plane)."""
    scenes = [p["scene"] for p in prepared]
    first = [p["index"] for p in prepared]
    cats: dict[str, list] = {}
    seen_by = {}
    for name, (predictor, meta, _, measuring, single) in models.items():
        views = [dataclasses.replace(s, image=s.image[:1]) for s in scenes] if single else scenes
        tables, *seen_by[name] = model_catalogs(predictor, meta, views, measuring)
        if single:  # its F160W flux under the band's name
            for t in tables:
                t["flux_F160W"] = t["flux"]
        cats[name] = [with_offset(t, i) for t, i in zip(tables, first, strict=True)]
    # the ceiling: true centres and fractions through the four-band model's own measuring, on
    # the tiles as it saw them
    seen, sigmas = seen_by[FOUR]
    measuring = models[FOUR][3]
    cats[PERFECT] = [with_offset(perfect_pcr_catalog(s, seen[k].image, sigmas[k], **measuring), i)
                     for k, (s, i) in enumerate(zip(scenes, first, strict=True))]
    cats[KNOWN] = [with_offset(known_shape_catalog(s), i)
                   for s, i in zip(scenes, first, strict=True)]
    for name in (PHOTUTILS, SCARLET2):
        done = [(p[name], p["index"]) for p in prepared if name in p]
        if done:
            cats[name] = [with_offset(t, i) for t, i in done]
    return cats


def timed_alone(models: dict, split: str, tiles: int, max_iter: int) -> dict:
    """Each method alone on the same ``tiles`` scenes, one after another: name → (wall
    seconds, sources measured)."""
    scenes = split_scenes(split, tiles, bands=FOUR_BANDS)
    out: dict = {}
    if not scenes:
        return out
    for name, (predictor, meta, _, measuring, single) in models.items():
        views = [dataclasses.replace(s, image=s.image[:1]) for s in scenes] if single else scenes
        model_catalogs(predictor, meta, views, measuring)  # warm-up: graph tracing per shape
        stages: dict = {}
        tables, _, _ = model_catalogs(predictor, meta, views, measuring, stages)
        out[name] = (sum(stages.values()), sum(len(t) for t in tables), stages)
    t0 = time.perf_counter()
    found = sum(len(run_photutils_bands(s.image, float(s.noise_sigma[0]), FOUR_BANDS))
                for s in scenes)
    out[PHOTUTILS] = (time.perf_counter() - t0, found, {})
    psf = simulation_psf(bands=FOUR_BANDS)
    t0 = time.perf_counter()
    fitted = sum(scarlet2_catalog(s, psf, max_iter)[2] for s in scenes)
    out[SCARLET2] = (time.perf_counter() - t0, fitted, {})
    return out


def matched_fluxes(catalog: Table, truth: Table, radius: float = 3.0) -> dict[str, np.ndarray]:
    """Each band's measured flux of every truth row (NaN where no detection matches it)."""
    d, t = match_catalogs(np.stack([np.asarray(catalog["x"], float),
                                    np.asarray(catalog["y"], float)], 1),
                          np.stack([np.asarray(truth["x"], float),
                                    np.asarray(truth["y"], float)], 1), radius)
    out = {}
    for band in FOUR_BANDS:
        out[band] = np.full(len(truth), np.nan)
        if f"flux_{band}" in catalog.colnames:
            out[band][t] = np.asarray(catalog[f"flux_{band}"], float)[d]
    return out


def colour_error(fluxes: dict, truth: Table) -> np.ndarray:
    """|Δ colour| (mag) of each truth row; infinite where a measured flux is ≤ 0.

    >>> truth = Table({"flux_F606W": [1.0, 1.0], "flux_F160W": [2.0, 2.0]})
    >>> colour_error({"F606W": np.array([1.0, -1.0]), "F160W": np.array([1.0, 2.0])}, truth)
    array([0.75257499,        inf])
    """
    blue, red = (fluxes[b] for b in COLOUR)
    with np.errstate(invalid="ignore", divide="ignore"):
        measured = np.where((blue > 0) & (red > 0), -2.5 * np.log10(blue / red), np.inf)
        true = -2.5 * np.log10(np.asarray(truth[f"flux_{COLOUR[0]}"], float)
                               / np.asarray(truth[f"flux_{COLOUR[1]}"], float))
    return np.where(np.isnan(blue) | np.isnan(red), np.nan, np.abs(measured - true))


def _median(values: np.ndarray):
    return float(np.median(values)) if len(values) else None


def recovered_by_all(matched: dict, chosen: np.ndarray, methods) -> np.ndarray:
    """The ``chosen`` truths that every one of ``methods`` recovers (an F160W flux matched)."""
    return chosen & np.all([np.isfinite(matched[m]["F160W"]) for m in methods], axis=0)


def common_figures(matched: dict, truth: Table, chosen: np.ndarray, methods) -> dict:
    """Per method, the median |δ| per band and |Δ colour| over the ``chosen`` truths that all
    ``methods`` recover (a method without a band is left out of that band's figure)."""
    common = recovered_by_all(matched, chosen, methods)
    result: dict = {"n_common": int(common.sum())}
    for name in methods:
        bands = {}
        for band in FOUR_BANDS:
            measured = matched[name][band][common]
            if np.all(np.isnan(measured)):
                continue  # the method does not measure this band
            true = np.asarray(truth[f"flux_{band}"], float)[common]
            bands[band] = _median(np.abs(measured / true - 1.0))
        colours = colour_error(matched[name], truth)[common]
        result[name] = {"bands": bands,
                        "colour": None if np.all(np.isnan(colours)) else _median(colours)}
    return result


def ratio_interval(a: np.ndarray, b: np.ndarray, n_resamples: int = 2000,
                   seed: int = 0) -> dict:
    """median(a) / median(b) over paired values (the same sources), with its 16th–84th
    percentile interval from resampling the sources (bootstrap).

    >>> r = ratio_interval(np.full(50, 2.0), np.full(50, 1.0))
    >>> r["ratio"], r["low"], r["high"]
    (2.0, 2.0, 2.0)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(a), (n_resamples, len(a)))
    ratios = np.median(a[picks], axis=1) / np.median(b[picks], axis=1)
    low, high = np.percentile(ratios, [16, 84])
    return {"ratio": float(np.median(a) / np.median(b)), "low": float(low), "high": float(high),
            "n": len(a)}


def colour_ratio(matched: dict, truth: Table, chosen: np.ndarray, methods, a: str,
                 b: str) -> dict:
    """``a``'s median |Δ colour| over ``b``'s on the ``chosen`` truths that all ``methods``
    recover (as :func:`common_figures`), with its bootstrap interval."""
    common = recovered_by_all(matched, chosen, methods)
    return ratio_interval(colour_error(matched[a], truth)[common],
                          colour_error(matched[b], truth)[common])


def figures(catalogs: dict, truth: Table, mag_limit: float, scarlet2_tiles: int) -> dict:
    """The comparison's figures (module text): on the sources every method of
    :data:`COMPARED` recovers, and on the scarlet2 tiles the same with scarlet2."""
    counted = (np.asarray(truth["in_frame"], bool)
               & (np.asarray(truth["mag"], float) < mag_limit))
    blended = np.asarray(truth["blendedness"], float) > BLENDED
    matched = {name: matched_fluxes(cat, truth) for name, cat in catalogs.items()}
    methods = [m for m in (*COMPARED, PERFECT, KNOWN) if m in catalogs]
    out = {"common_blended": common_figures(matched, truth, counted & blended, methods),
           "common_all": common_figures(matched, truth, counted, methods)}
    if SCARLET2 in catalogs:
        subset = counted & blended & (tile_of(truth) < scarlet2_tiles)
        methods = [FOUR, PHOTUTILS, SCARLET2, PERFECT, KNOWN]
        out["scarlet2_subset_blended"] = common_figures(matched, truth, subset, methods)
        out["scarlet2_subset_blended"]["colour_ratio_to_scarlet2"] = colour_ratio(
            matched, truth, subset, methods, FOUR, SCARLET2)
    out["detection"] = {}
    for name in (FOUR, SINGLE, PHOTUTILS):
        r = evaluate(catalogs[name], truth, mag_limit=mag_limit)
        out["detection"][name] = {k: r[k] for k in ("f1", "completeness", "purity",
                                                    "completeness_blended",
                                                    "by_blendedness")}
    return out


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=1000)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=None,
                        help="the four-band model (default: the shipped one for the bands)")
    parser.add_argument("--f160w-model", type=Path, default=DEFAULT_MODEL_PATH)
    # 40 tiles held 33 blended sources that every method recovers: their median ratio's
    # bootstrap interval is ±20%, too wide to read 1.2× from
    parser.add_argument("--scarlet2-tiles", type=int, default=150)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--timing-tiles", type=int, default=10,
                        help="tiles each method is timed on alone, after the comparison")
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--mag-limit", type=float, default=27.0)
    parser.add_argument("--json", type=Path,
                        default=Path("docs/results/four_band_accuracy.json"))
    return parser.parse_args()


def load_models(args) -> dict:
    """name → (predictor, card, path, measuring, F160W plane only)."""
    four = args.model or model_for_bands(FOUR_BANDS)
    models = {}
    for name, path, single in ((FOUR, four, False), (SINGLE, args.f160w_model, True)):
        meta = model_metadata(path)
        models[name] = (PAISPredictor(path, batch_size=16), meta, Path(path),
                        card_measuring(meta, path), single)
    return models


def main() -> None:
    from tqdm import tqdm

    args = _arguments()
    models = load_models(args)
    parts, truths = [], []
    jobs = [(args.split, i, args.scarlet2_tiles, args.max_iter) for i in range(args.tiles)]
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        prepared_tiles = pool.imap(_prepare, jobs)
        for first in tqdm(range(0, args.tiles, args.chunk), desc="tiles", unit="chunk"):
            prepared = [next(prepared_tiles) for _ in range(min(args.chunk, args.tiles - first))]
            parts.append(chunk_catalogues(models, prepared))
            truths += [with_offset(p["scene"].truth, p["index"]) for p in prepared]
    catalogs = {name: vstack([t for p in parts if name in p for t in p[name]])
                for name in parts[0]}
    truth = vstack(truths)
    results = figures(catalogs, truth, args.mag_limit, args.scarlet2_tiles)
    timed = timed_alone(models, args.split, args.timing_tiles, args.max_iter)
    results["seconds_per_source"] = {name: seconds / max(n, 1)
                                     for name, (seconds, n, _) in timed.items()}
    results["seconds_per_source_by_stage"] = {
        name: {stage: t / max(n, 1) for stage, t in stages.items()}
        for name, (_, n, stages) in timed.items() if stages}
    results["setup"] = {
        "split": args.split, "tiles": args.tiles, "bands": list(FOUR_BANDS),
        "conditions": "varied (the training set's: density, depth, texture per tile)",
        "four_band_model": str(models[FOUR][2]), "f160w_model": str(models[SINGLE][2]),
        "scarlet2_tiles": min(args.scarlet2_tiles, args.tiles), "max_iter": args.max_iter,
        "mag_limit": args.mag_limit, "blended": BLENDED, "colour": "-".join(COLOUR),
        "truth_sources": len(truth),
        "timing_tiles": args.timing_tiles,
        "timing": "each method alone on the first timing_tiles tiles, one after another in "
                  "one process on 2 CPU cores: wall seconds per measured source; the models "
                  "include each tile's sky and noise estimates, the compiled network at "
                  "batch 16, decoding and measuring (after a warm-up pass), "
                  "scarlet2 its JAX compilation per scene"}
    results["simulator"] = SIMULATOR_VERSION
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=float))
    for key in ("common_blended", "scarlet2_subset_blended"):
        if key in results:
            print(key, json.dumps(results[key], default=float))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
