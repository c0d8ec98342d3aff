"""Accuracy of the model against sep and photutils on held-out simulated tiles.

The tiles are the simulator's *test* split (seeds 3,000,000 + i), never used in training or
validation. Each method sees the same noisy 256×256 image; catalogues are matched to the truth
within 3 px (Hungarian) and judged by completeness, purity, F1 and flux errors δ overall, per
magnitude bin and per blendedness bin (docs/metrics.md). Truth sources fainter than H = 27 do not
count towards completeness, but a detection of one is not a false positive.

Usage:
  python benchmarks/accuracy.py --tiles 200                    # the shipped model vs peers
  python benchmarks/accuracy.py --split val --tune             # choose the peak threshold on
                                                               # validation tiles, write it into
                                                               # the model card
  python benchmarks/accuracy.py --tiles 200 --conditions goods-s
                                                               # the same seeds at GOODS-S
                                                               # depth and density only
Writes docs/results/accuracy_<split>.json (``accuracy_<split>_goods-s.json``).

``--conditions varied`` (the default) draws each tile's density (0.5–2.5×), noise (0.6–2×
GOODS-S), noise texture (white or correlated) and companion fraction from its seed, as the
training set does (``train.scene_conditions``); ``goods-s`` keeps the simulator's defaults
(GOODS-S deep density and noise, drizzle-like noise), as a simulated mosaic has.
``--noise-correlation`` sets the noise texture of every tile instead (0: white noise, the
conditions in which sep measures F1 about 0.84).

Every method is also scored on each tile's *core*, the 192² centre that a mosaic run keeps of
every 256² window (margin 32 px, ``mosaic_pais.runtime.tile``): matches are made over the whole
tile,
completeness counts the truths in the core and purity the detections in it. A whole tile also
scores the sources its border cuts, whose light lies half outside the image; in a mosaic no
source is seen that way except at the mosaic's own edges.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from mosaic_pais.evaluation.metrics import evaluate, flux_errors_on_common_sources, format_report
from mosaic_pais.evaluation.peers import run_photutils, run_sep
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    detection_threshold,
    model_input,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import (
    MIXED_VOTE_RADIUS,
    N_SLOTS,
    VOTE_MODES,
    Peaks,
    encode,
    find_peaks,
    resolve_votes,
)
from mosaic_pais.runtime.background import subtract_sky
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.runtime.measure import measure_image
from mosaic_pais.runtime.pipeline import psf_path, psf_paths
from mosaic_pais.runtime.stitch import clean_fractions
from mosaic_pais.runtime.store import VECTOR_STEP
from mosaic_pais.runtime.tile import DEFAULT_MARGIN, DEFAULT_TILE
from mosaic_pais.runtime.total_flux import GrowthCurves, read_psf
from mosaic_pais.sim.scenes import SIMULATOR_VERSION, simulate_scene
from mosaic_pais.training.dataset import (
    SPLIT_REAL_GALAXIES,
    SPLIT_SEED_BASE,
    labelled,
    split_scene,
)


def split_scenes(split: str, tiles: int, conditions: str = "varied",
                 noise_correlation: float | None = None, real_galaxies: str | None = None,
                 start: int = 0, bands=None, tile_size: int = 256) -> list:
    """Scenes ``start`` to ``start + tiles`` of a split in the given conditions (see the
    module text); ``noise_correlation`` (px, 0: white) replaces the conditions' noise texture
    and ``real_galaxies`` the split's pool of COSMOS galaxies (``held_out``: the 20 that
    training and validation never draw); ``bands`` renders several bands
    (:mod:`mosaic_pais.sim.bands`; None: F160W alone), on tiles of ``tile_size``²."""
    pool = real_galaxies or SPLIT_REAL_GALAXIES[split]
    if conditions == "varied":
        return [split_scene(split, i, (tile_size, tile_size), noise_correlation=noise_correlation,
                            real_galaxies=pool, bands=bands)
                for i in range(start, start + tiles)]
    return [simulate_scene((tile_size, tile_size), seed=SPLIT_SEED_BASE[split] + i,
                           noise_correlation=noise_correlation, real_galaxies=pool,
                           **({"bands": bands} if bands else {}))
            for i in range(start, start + tiles)]


def perfect_pcr_catalog(scene, image: np.ndarray, noise_sigma, min_fraction: float = 0.01,
                        **measuring) -> Table:
    """The reference a perfect network sets: the scene's labelled sources (as training labels
    them) at their true centres, every pixel's slots and fractions the true ones
    (``S_k / Σ S_j``), decoded and measured by the run's own code (cleaning, footprints,
    flux estimator) on the noisy image."""
    keep = labelled(scene)
    truth = scene.truth[keep]
    centers = np.stack([np.asarray(truth["y"], float), np.asarray(truth["x"], float)], 1)
    pixel = np.rint(centers).astype(int)
    peaks = Peaks(y=centers[:, 0], x=centers[:, 1], score=np.ones(len(centers)),
                  iy=pixel[:, 0], ix=pixel[:, 1])
    return true_fractions_catalog(peaks, scene.sources[keep], image, noise_sigma, min_fraction,
                                  **measuring)


def true_fractions_catalog(peaks: Peaks, sources: np.ndarray, image: np.ndarray, noise_sigma,
                           min_fraction: float = 0.01, **measuring) -> Table:
    """The catalogue of ``peaks`` whose slots (nearest peaks) and fractions are exact for the
    noiseless images ``sources`` (one per peak, ``(n, b, h, w)``), decoded and measured by the
    run's own code on the noisy ``image``."""
    centers = np.stack([np.asarray(peaks.y, float), np.asarray(peaks.x, float)], 1)
    pcr = encode(centers, sources, n=N_SLOTS)
    ids = np.transpose(pcr.source_index, (2, 0, 1))
    fractions = clean_fractions(np.transpose(pcr.fractions, (2, 3, 0, 1)), ids, min_fraction)
    return measured(peaks, ids, fractions, image, noise_sigma, **measuring)


def known_shape_catalog(scene) -> Table:
    """The noise floor: the amplitudes of every source's known noiseless image fitted jointly
    to the noisy image by least squares; each fitted flux is the amplitude times the source's
    total flux. A scene of several bands is fitted band by band (``flux`` the first band's,
    ``flux_<band>`` each band's)."""
    table = Table({"x": np.asarray(scene.truth["x"], float),
                   "y": np.asarray(scene.truth["y"], float)})
    several = len(scene.bands) > 1
    for k, band in enumerate(scene.bands):
        flux = (_known_shape_amplitudes(scene.sources[:, k], scene.image[k])
                * np.asarray(scene.truth[f"flux_{band}" if several else "flux"], float))
        if k == 0:
            table["flux"] = flux
        if several:
            table[f"flux_{band}"] = flux
    return table


def _known_shape_amplitudes(sources: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Least-squares amplitudes of the (N, h, w) noiseless ``sources`` in one band's image."""
    templates = sources.reshape(len(sources), -1).astype(np.float64)
    if len(templates) == 0:
        return np.zeros(0)
    gram = templates @ templates.T + 1e-12 * np.eye(len(templates))
    return np.linalg.solve(gram, templates @ image.reshape(-1).astype(np.float64))


def conditions_suffix(conditions: str, noise_correlation: float | None) -> str:
    """How a result file names its conditions: ``""``, ``"_goods-s"``, ``"_goods-s_white"``…"""
    suffix = "" if conditions == "varied" else f"_{conditions}"
    if noise_correlation is not None:
        suffix += "_white" if noise_correlation == 0 else f"_corr{noise_correlation:g}"
    return suffix


def resolved(pred, index: int, threshold: float, finding: dict, vote: str = "vectors",
             min_fraction: float = 0.01, mixed_radius: float = MIXED_VOTE_RADIUS,
             fraction_power: float = 1.0):
    """One tile decoded as the mosaic pipeline decodes: its peaks, every pixel's slots resolved
    to them (``vote``) and the fractions cleaned as the pipeline cleans them.
    ``fraction_power`` sharpens (> 1) or softens (< 1) the fractions before they are cleaned
    (f ** power, renormalised): a decoding choice that ablations measure."""
    center, vectors, fractions = pred.center[index], pred.vectors[index], pred.fractions[index]
    peaks = find_peaks(center, threshold=threshold, **finding)
    # the vectors of every VECTOR_STEP-th pixel, as a run keeps them
    ids = resolve_votes(vectors[::VECTOR_STEP, ::VECTOR_STEP], peaks.yx,
                        valid=np.ones(center.shape, bool), mode=vote, mixed_radius=mixed_radius,
                        step=VECTOR_STEP)
    if fraction_power != 1.0:
        fractions = np.power(fractions, fraction_power)
    return peaks, ids, clean_fractions(np.transpose(fractions, (2, 3, 0, 1)), ids, min_fraction)


def model_catalog(pred, index: int, image: np.ndarray, noise_sigma: float, threshold: float,
                  finding: dict, vote: str = "vectors", min_fraction: float = 0.01,
                  mixed_radius: float = MIXED_VOTE_RADIUS, fraction_power: float = 1.0,
                  **measuring) -> Table:
    """The mosaic pipeline's decode + measure, on one tile; ``finding`` is the card's peak
    finding (:func:`mosaic_pais.nn.model.peak_finding`); ``measuring`` goes to
    :func:`measured`."""
    return measured(*resolved(pred, index, threshold, finding, vote, min_fraction, mixed_radius,
                              fraction_power), image, noise_sigma, **measuring)


@functools.lru_cache(maxsize=1)
def simulator_growth() -> GrowthCurves:
    """The curves of growth of the simulator's F160W PSF: the one shipped beside the model,
    which a run uses by default to turn footprint sums into total fluxes."""
    return GrowthCurves.from_psf(read_psf(psf_path(None, DEFAULT_MODEL_PATH,
                                                   model_metadata(DEFAULT_MODEL_PATH))))


def card_measuring(meta: dict, model_path: Path) -> dict:
    """How a multi-band model's catalogues are measured: its bands (the scenes' order, its
    card's) and each band's PSF curves from its card; nothing for a single-band model, which
    keeps :func:`measured`'s defaults."""
    bands = list(meta.get("bands") or ["F160W"])
    if len(bands) == 1:
        return {}
    paths = psf_paths(None, Path(model_path), meta, bands)
    return {"bands": tuple(bands),
            "growth": None if paths is None else [GrowthCurves.from_psf(read_psf(path))
                                                  for path in paths]}


def measured(peaks, ids: np.ndarray, frac: np.ndarray, image: np.ndarray,
             noise_sigma, bands=("F160W",), **measuring) -> Table:
    """The catalogue of one resolved tile (:func:`resolved`), measured as the pipeline does;
    ``measuring`` (weights, noise_texture, fraction_error, growth) goes to ``measure_image``;
    ``growth`` is the simulator's PSF's unless given (None keeps the footprint sums). With
    several ``bands`` (the image's, in order; ``noise_sigma`` one per band) the table also has
    ``flux_<band>`` and ``flux_err_<band>``."""
    p = {"id": np.arange(len(peaks)), "y": peaks.y, "x": peaks.x, "score": peaks.score}
    measuring.setdefault("growth", simulator_growth())
    sigma = np.broadcast_to(np.asarray(noise_sigma, float), (len(bands),))
    cols, _, _ = measure_image(image, ids, frac, p, list(bands), sigma, **measuring)
    per_band = [f"{kind}_{band}" for band in bands if len(bands) > 1
                for kind in ("flux", "flux_err")]
    return Table({k: cols[k] for k in ("id", "x", "y", "flux", "flux_err", "flux_aper",
                                       "aperture_correction", "r50", "kron_radius", "score",
                                       "xcentroid", "ycentroid", *per_band)})


def as_trained(scenes, meta: dict) -> list:
    """The scenes as the model was trained to see them: with each tile's sky estimated and
    subtracted (:func:`mosaic_pais.runtime.background.subtract_sky`, as a run subtracts a mosaic's)
    when its card has a ``background_mesh``, else as simulated. Peers get the scenes as simulated:
    they estimate their own background."""
    mesh = int(meta.get("background_mesh") or 0)
    if not mesh:
        return list(scenes)
    return [dataclasses.replace(s, image=subtract_sky(s.image, mesh)) for s in scenes]


def tile_noise(scenes) -> tuple[np.ndarray, np.ndarray]:
    """Each tile's noise sigma and texture, estimated from the tile itself as the pipeline does
    per mosaic: sigmas ``(tiles,)`` of single-band scenes, ``(tiles, bands)`` of multi-band
    ones; the texture of the first (detection) band."""
    noise = [estimate_noise(s.image, n_windows=1) for s in scenes]
    several = bool(scenes) and scenes[0].image.shape[0] > 1
    sigmas = [np.asarray(sigma, float) if several else float(sigma[0]) for sigma, _ in noise]
    return np.array(sigmas), np.array([float(texture[0]) for _, texture in noise])


def scene_batches(scenes, sigmas, batch: int = 16):
    """Network inputs of the scenes, ``batch`` at a time, each in units of its tile's noise
    ``sigmas``."""
    for i in range(0, len(scenes), batch):
        yield np.concatenate([model_input(s.image[None], np.atleast_1d(sg)) for s, sg in
                              zip(scenes[i:i + batch], sigmas[i:i + batch], strict=True)])


def predict_scenes(predictor, scenes, sigmas, batch: int = 16) -> list:
    """The model on every scene (each in units of its tile's noise ``sigmas``):
    ``(prediction, index in it)`` per scene."""
    preds = []
    for x in scene_batches(scenes, sigmas, batch):
        pred = predictor.predict_input(x)  # the compiled network, as a run calls it
        preds += [(pred, j) for j in range(len(x))]
    return preds


def decode_as_trained(predictor, scenes, meta: dict) -> tuple[list, np.ndarray, np.ndarray, list]:
    """The model on every scene as it was trained to see them (:func:`as_trained`): the scenes
    it saw, their noise sigmas and textures, and ``(prediction, index in it)`` per scene."""
    seen = as_trained(scenes, meta)
    sigmas, textures = tile_noise(seen)
    return seen, sigmas, textures, predict_scenes(predictor, seen, sigmas)


def tile_thresholds(textures, meta: dict) -> list[float]:
    """Each tile's centre-map threshold for its own noise texture (the model card's rule)."""
    return [detection_threshold(meta, float(texture)) for texture in textures]


#: vote modes ``--tune`` chooses among (pcr.resolve_votes; what each costs at scale:
#: benchmarks/mosaic_scale.py --vote)
TUNED_VOTES = VOTE_MODES
#: thresholds tried by ``--tune``, and the texture bins (edges) each gets its own in
TUNE_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95,
                   0.9625, 0.975, 0.9875)
TUNE_TEXTURE_EDGES = (1.15, 1.6, 2.0)
#: thresholds whose F1 is within this of the best count as equally good
TUNE_PLATEAU = 0.005


def plateau_middle(f1: list[float], thresholds=TUNE_THRESHOLDS) -> float:
    """The middle of the thresholds whose F1 is within :data:`TUNE_PLATEAU` of the best.

    Near its best, F1 changes little with the threshold and its bumps are the noise of a
    hundred-odd tiles; the argmax would land anywhere on that plateau by chance, its middle
    holds up on other tiles.

    >>> plateau_middle([0.80, 0.897, 0.901, 0.899, 0.898, 0.85], (0.6, 0.7, 0.75, 0.8, 0.85, 0.9))
    0.775
    """
    good = [t for t, f in zip(thresholds, f1, strict=True) if f >= max(f1) - TUNE_PLATEAU]
    return round(float(np.median(good)), 4)


def tune_threshold(catalog_at, truth: Table, textures: np.ndarray, mag_limit: float) -> dict:
    """The best threshold by F1 over all tiles and in each texture bin (the card's table).

    ``catalog_at(threshold)`` gives the stacked catalogue of every tile at that threshold. A
    bin's texture is the median of its tiles'; its threshold the middle of its plateau of best
    F1 (:func:`plateau_middle`), made non-decreasing with texture (noisier textures never get
    a lower one).
    """
    bins = np.digitize(textures, TUNE_TEXTURE_EDGES)
    truth_tile = tile_of(truth)
    f1 = {"all": [], **{b: [] for b in np.unique(bins)}}
    for threshold in TUNE_THRESHOLDS:
        catalog = catalog_at(threshold)
        catalog_tile = tile_of(catalog)
        f1["all"].append(evaluate(catalog, truth, mag_limit=mag_limit)["f1"])
        for b in np.unique(bins):
            tiles = np.flatnonzero(bins == b)
            f1[b].append(evaluate(catalog[np.isin(catalog_tile, tiles)],
                                  truth[np.isin(truth_tile, tiles)], mag_limit=mag_limit)["f1"])
        print(f"threshold {threshold}: F1 all {f1['all'][-1]:.4f}, by texture "
              + ", ".join(f"{v[-1]:.4f}" for k, v in f1.items() if k != "all"), flush=True)
    best = {k: plateau_middle(v) for k, v in f1.items()}
    table_bins = [b for b in f1 if b != "all"]
    return {"threshold": best["all"], "f1": max(f1["all"]),
            "threshold_by_texture": {
                "texture": [round(float(np.median(textures[bins == b])), 3) for b in table_bins],
                "threshold": np.maximum.accumulate([best[b] for b in table_bins]).tolist(),
                "tiles": [int((bins == b).sum()) for b in table_bins],
                "f1": [round(max(f1[b]), 4) for b in table_bins]}}


#: x offset between tiles on the virtual plane where their catalogues are stacked
TILE_OFFSET = 1000.0


def with_offset(table: Table, tile: int) -> Table:
    """Give every tile its own region of a virtual plane so that catalogues can be stacked."""
    table = table.copy()
    table["x"] = np.asarray(table["x"], float) + tile * TILE_OFFSET
    return table


def tile_of(table: Table) -> np.ndarray:
    """The tile each row of a stacked catalogue came from (the inverse of :func:`with_offset`)."""
    return np.floor(np.asarray(table["x"], float) / TILE_OFFSET + 0.5).astype(int)


def in_core(x, y, margin: int = DEFAULT_MARGIN, tile: int = DEFAULT_TILE) -> np.ndarray:
    """Whether stacked-catalogue positions lie in their tile's core (pixel edges at ±0.5).

    >>> in_core(np.array([31.4, 31.6, 1031.6, 1223.6]), np.array([100.0, 100.0, 40.0, 40.0]))
    array([False,  True,  True, False])
    """
    x = np.asarray(x, float) - tile_of(Table({"x": x})) * TILE_OFFSET
    lo, hi = margin - 0.5, tile - margin - 0.5
    return (x >= lo) & (x < hi) & (np.asarray(y, float) >= lo) & (np.asarray(y, float) < hi)


def core_scores(catalog: Table, truth: Table, mag_limit: float) -> dict:
    """Completeness, purity, F1 and blended flux errors on the tiles' cores (module text)."""
    core_truth = truth.copy(copy_data=False)
    core_truth["in_frame"] = (np.asarray(truth["in_frame"], bool)
                              & in_core(truth["x"], truth["y"]))
    r = evaluate(catalog, core_truth, mag_limit=mag_limit,
                 purity_over=in_core(catalog["x"], catalog["y"]))
    return {key: r[key] for key in ("completeness", "purity", "f1", "n_truth_counted",
                                    "n_detections", "flux", "flux_blended",
                                    "completeness_blended")}


SNR_CUTS = (0.0, 5.0, 7.5, 10.0, 15.0, 20.0)
#: noise textures (Gaussian smoothing width, px) the varied conditions mix: [lo, hi)
TEXTURES = {"white": (0.0, 0.01), "0.3–0.6 px": (0.01, 0.6), "0.6–0.9 px": (0.6, 1.0)}


#: the methods and references every accuracy run measures, in its result's order
PEERS = {"sep": run_sep, "photutils": run_photutils}
REFERENCES = ("perfect PCR", "known-shape fit")


def chunk_catalogues(predictor, meta: dict, scenes, first: int, vote: str) -> dict:
    """Every method's and reference's stacked catalogue on ``scenes`` (tiles ``first`` on),
    and the seconds each method took."""
    t = time.time()
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, meta)
    thresholds = tile_thresholds(textures, meta)
    finding = peak_finding(meta)
    seconds = {"mosaic-pais": time.time() - t}
    cats = {"mosaic-pais": [with_offset(model_catalog(p, j, seen[i].image, sigmas[i],
                                                      float(thresholds[i]), finding, vote),
                                        first + i) for i, (p, j) in enumerate(preds)]}
    for name, runner in PEERS.items():
        t = time.time()
        cats[name] = [with_offset(runner(s.image[0], s.noise_sigma), first + i)
                      for i, s in enumerate(scenes)]
        seconds[name] = time.time() - t
    cats["perfect PCR"] = [with_offset(perfect_pcr_catalog(s, seen[i].image, sigmas[i]),
                                       first + i) for i, s in enumerate(scenes)]
    cats["known-shape fit"] = [with_offset(known_shape_catalog(s), first + i)
                               for i, s in enumerate(scenes)]
    return {"catalogs": {k: vstack(v) for k, v in cats.items()}, "seconds": seconds,
            "thresholds": thresholds}


def streamed_catalogues(predictor, meta: dict, args, vote: str, chunk: int = 50) -> dict:
    """:func:`chunk_catalogues` over the split's tiles, ``chunk`` tiles at a time: the scenes
    (and their per-source images, which the references need) are dropped after each chunk, so
    memory stays flat in the number of tiles. Returns the stacked catalogues, the truth, each
    tile's noise correlation, thresholds and each method's seconds."""
    from tqdm import tqdm

    parts, truths, correlation, thresholds = [], [], [], []
    seconds: dict[str, float] = {}
    for first in tqdm(range(0, args.tiles, chunk), desc="tiles", unit="chunk"):
        scenes = split_scenes(args.split, min(chunk, args.tiles - first), args.conditions,
                              args.noise_correlation, args.real_galaxies, start=first)
        part = chunk_catalogues(predictor, meta, scenes, first, vote)
        parts.append(part["catalogs"])
        truths += [with_offset(s.truth, first + i) for i, s in enumerate(scenes)]
        correlation += [s.truth.meta["NOISECOR"] for s in scenes]
        thresholds += part["thresholds"]
        for name, value in part["seconds"].items():
            seconds[name] = seconds.get(name, 0.0) + value
    catalogs = {name: vstack([p[name] for p in parts]) for name in parts[0]}
    return {"catalogs": catalogs, "truth": vstack(truths), "correlation": np.array(correlation),
            "thresholds": np.array(thresholds), "seconds": seconds}


def by_noise_texture(catalog: Table, truth: Table, correlation: np.ndarray,
                     mag_limit: float) -> list[dict]:
    """Completeness, purity and F1 over the tiles of each noise texture (``correlation``: each
    tile's noise correlation, px)."""
    catalog_tile, truth_tile = tile_of(catalog), tile_of(truth)
    rows = []
    for label, (lo, hi) in TEXTURES.items():
        tiles = np.flatnonzero((correlation >= lo) & (correlation < hi))
        if len(tiles) == 0:
            continue
        r = evaluate(catalog[np.isin(catalog_tile, tiles)],
                     truth[np.isin(truth_tile, tiles)], mag_limit=mag_limit)
        rows.append({"texture": label, "tiles": len(tiles)}
                    | {k: r[k] for k in ("completeness", "purity", "f1", "n_truth_counted")})
    return rows


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=200)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--mag-limit", type=float, default=27.0)
    parser.add_argument("--conditions", choices=("varied", "goods-s"), default="varied")
    parser.add_argument("--noise-correlation", type=float, default=None,
                        help="px, for every tile; 0 gives white noise (default: the conditions')")
    parser.add_argument("--suffix", default="",
                        help="appended to the result file's name (a run on fewer tiles beside "
                             "the full one)")
    parser.add_argument("--tile-size", type=int, default=256,
                        help="side of the simulated tiles (px; a wide-field survey's model is "
                             "trained and tuned on 128² tiles)")
    parser.add_argument("--real-galaxies", choices=("held_out",), default=None,
                        help="draw the scenes' real galaxies from the 20 COSMOS galaxies that "
                             "training and validation never see")
    return parser.parse_args()


def tune(args, meta: dict, predictor) -> None:
    """The peak threshold by F1 per noise texture, then the vote mode by the median |δ| of all
    sources plus that of the blended ones (judged on the blended alone, a vote that hands
    bright galaxies' wings to their neighbours would go unseen); written into the card."""
    measuring = card_measuring(meta, args.model)
    scenes = split_scenes(args.split, args.tiles, args.conditions, args.noise_correlation,
                          args.real_galaxies, bands=measuring.get("bands"),
                          tile_size=args.tile_size)
    seen, sigmas, textures, preds = decode_as_trained(predictor, scenes, meta)
    truth = vstack([with_offset(s.truth, i) for i, s in enumerate(scenes)])
    finding = peak_finding(meta)

    def model_run(thresholds, vote):
        """The model's stacked catalogue; ``thresholds`` one per tile or one for all."""
        per_tile = np.broadcast_to(np.asarray(thresholds, float), (len(preds),))
        return vstack([with_offset(model_catalog(p, j, seen[i].image, sigmas[i],
                                                 float(per_tile[i]), finding, vote,
                                                 **measuring), i)
                       for i, (p, j) in enumerate(preds)])

    tuned = tune_threshold(lambda t: model_run(t, "geometric"), truth, textures, args.mag_limit)
    thresholds = [detection_threshold(tuned, t) for t in textures]
    votes, f1 = {}, None
    for vote in TUNED_VOTES:
        r = evaluate(model_run(thresholds, vote), truth, mag_limit=args.mag_limit)
        votes[vote] = r["flux"]["median_abs"] + r["flux_blended"]["median_abs"]
        f1 = r["f1"]
        print(f"vote {vote}: F1 {r['f1']:.4f}, median |δ| all {r['flux']['median_abs']:.4f} "
              f"+ blended {r['flux_blended']['median_abs']:.4f}", flush=True)
    vote = min(votes, key=votes.get)
    card_path = Path(args.model).with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card.update({"threshold": tuned["threshold"],
                 "threshold_by_texture": tuned["threshold_by_texture"],
                 "window": finding["window"], "vote": vote,
                 "threshold_tuned_on": f"{args.tiles} '{args.split}' tiles: F1 {f1:.4f} "
                                       f"with the thresholds by texture (one threshold: "
                                       f"{tuned['f1']:.4f}); vote by median |δ| all + blended: "
                                       + ", ".join(f"{k} {v:.4f}" for k, v in votes.items())})
    card_path.write_text(json.dumps(card, indent=2))
    print(f"chose thresholds {tuned['threshold_by_texture']}, vote {vote} → {card_path}")


def method_results(streamed: dict, mag_limit: float) -> dict:
    """Each method's scores (overall, by S/N cut, by noise texture, on the tiles' cores) and
    the references' overall scores."""
    truth, results = streamed["truth"], {}
    for name in ("mosaic-pais", *PEERS):
        cat = streamed["catalogs"][name]
        results[name] = evaluate(cat, truth, mag_limit=mag_limit)
        results[name]["seconds"] = streamed["seconds"][name]
        # the same catalogue when only sources above a matched-filter S/N are counted: the
        # depth at which each method reaches a given F1
        results[name]["by_snr_cut"] = [
            {key: cut[key] for key in ("completeness", "purity", "f1", "n_truth_counted")}
            | {"snr_min": snr_min}
            for snr_min in SNR_CUTS
            for cut in [evaluate(cat, truth, mag_limit=mag_limit, snr_min=snr_min)]]
        results[name]["by_noise_texture"] = by_noise_texture(cat, truth, streamed["correlation"],
                                                             mag_limit)
        results[name]["tile_core"] = core_scores(cat, truth, mag_limit)
        print(f"\n=== {name} ===\n{format_report(results[name])}", flush=True)
    # the references: a perfect PCR through the run's own decoder and estimator (the model's
    # distance to it is the network's error), and the known shapes fitted jointly (the
    # estimator's distance to it)
    for name in REFERENCES:
        results[name] = evaluate(streamed["catalogs"][name], truth, mag_limit=mag_limit)
    # every method on one sample: the sources all of them recover (the references recover
    # every source, so they leave the sample as the three methods make it); the model and the
    # perfect PCR also with their footprint sums alone (flux_aper), before the PSF's curve of
    # growth makes them total: what that step is worth, measured on the same sources
    catalogs = dict(streamed["catalogs"])
    for name in ("mosaic-pais", "perfect PCR"):
        footprint = catalogs[name].copy(copy_data=False)
        footprint["flux"] = footprint["flux_aper"]
        catalogs[f"{name} (footprint sum)"] = footprint
    results["common_sources"] = flux_errors_on_common_sources(catalogs, truth,
                                                              mag_limit=mag_limit)
    print("median |δ| on the sources every method recovers (all / blended): " + ", ".join(
        f"{name} {r['all']['median_abs'] or float('nan'):.3f} / "
        f"{r['blended']['median_abs'] or float('nan'):.3f}"
        for name, r in results["common_sources"].items() if name != "n_common"), flush=True)
    return results


def main() -> None:
    args = _arguments()
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model, batch_size=16)
    if args.tune:
        tune(args, meta, predictor)
        return
    if len(meta.get("bands") or ["F160W"]) > 1:
        raise SystemExit("a multi-band model is compared with its peers by "
                         "benchmarks/four_band_accuracy.py (--tune works here)")
    vote = str(meta.get("vote", "vectors"))
    streamed = streamed_catalogues(predictor, meta, args, vote)
    results = method_results(streamed, args.mag_limit)
    finding = peak_finding(meta)
    thresholds = streamed["thresholds"]
    results["setup"] = {"split": args.split, "conditions": args.conditions,
                        "noise_correlation_px": args.noise_correlation,
                        "tiles": args.tiles, "model": str(args.model),
                        "sky_subtracted_mesh_px": int(meta.get("background_mesh") or 0),
                        "threshold": meta.get("threshold"),
                        "threshold_by_texture": meta.get("threshold_by_texture"),
                        "thresholds_used": {k: float(f(thresholds)) for k, f in (
                            ("min", np.min), ("median", np.median), ("max", np.max))},
                        "window": finding["window"],
                        "peak_smoothing_px": finding["smoothing"], "vote": vote,
                        "mag_limit": args.mag_limit,
                        "core_margin_px": DEFAULT_MARGIN,
                        "real_galaxies": args.real_galaxies or SPLIT_REAL_GALAXIES[args.split],
                        "truth_sources": len(streamed["truth"]),
                        # the estimator: footprint sums made total by the PSF's curve of growth
                        "total_flux": "footprint sum × aperture_correction (simulator's PSF)"}
    held = "_held-out-galaxies" if args.real_galaxies else ""
    out = Path(f"docs/results/accuracy_{args.split}"
               f"{conditions_suffix(args.conditions, args.noise_correlation)}{held}"
               f"{args.suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    out.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
