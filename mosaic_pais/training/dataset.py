"""Training sets: simulated tiles with their PCR labels, in Zarr shards.

Splits are defined by disjoint seed ranges of the simulator, so the held-out test tiles can be
regenerated anywhere without storing them and can never leak into training:

=========  ===================
split      scene seeds
=========  ===================
train      1_000_000 + i
val        2_000_000 + i
test       3_000_000 + i
=========  ===================

Each scene draws its observing conditions from its seed: source density 0.5–2.5× GOODS-S deep,
noise 0.6–2× the GOODS-S F160W sigma, white or drizzle-like correlated noise, and extra close
companions for a third of the tiles, so that blends are frequent in training (the method's edge
over classical tools is on blends). Training and validation scenes never draw the 20 COSMOS
galaxies held out for testing.

A training set is a folder of Zarr shards (``shard_00000.zarr`` …), each a group with arrays
``image (T, b, h, w)`` float32, ``center (T, h, w)``, ``vectors (T, h, w, n, 2)``,
``fractions (T, h, w, b, n)``, ``flux_weight (T, h, w, n)`` (float16) and
``noise_sigma (T, b)``; attrs hold the seeds and the encoding parameters. Shards of real tiles
(``mosaic-pais labels``) may also hold ``valid (T, h, w)`` (uint8): pixels beyond the image's
edge, where a tile is padded, are 0 there; without it every pixel is valid. They have no
``flux_weight`` (the per-source fluxes of a real image are not known).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import zarr
from scipy.spatial import cKDTree
from tqdm import tqdm

from mosaic_pais.pcr import encode, find_peaks
from mosaic_pais.runtime.background import subtract_sky
from mosaic_pais.sim.scenes import DEFAULT_NOISE_SIGMA, matched_filter_snr, simulate_scene

__all__ = [
    "SPLIT_SEED_BASE",
    "TRAINING_CENTER_SIGMA",
    "LABEL_MIN_SNR",
    "CONDITIONS_VERSION",
    "LABEL_POSITIONS",
    "FLUX_WEIGHT_CAP",
    "FLUX_WEIGHT_LABELS",
    "scene_conditions",
    "SPLIT_REAL_GALAXIES",
    "split_scene",
    "labelled",
    "label_scene",
    "slot_flux_weight",
    "build_training_set",
    "write_shard",
    "load_split",
    "CLOSE_PAIR",
    "close_pairs",
    "EXTENDED_MIN_SNR",
    "EXTENDED_MIN_DISTANCE",
    "extended_pixels",
    "tile_weights",
    "subtract_tile_skies",
]

SPLIT_SEED_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}
#: Centre-map width used for the shipped model. The paper used 8 px; a 6-minute measurement on
#: this kind of machine gave F1 0.927 at 2 px against 0.909 at 8 px, and a
#: narrow peak keeps close pairs apart, so training uses 2 px.
TRAINING_CENTER_SIGMA = 2.0
#: Only sources the data can show are labelled. Three quarters of the simulated sources are
#: fainter than H = 27 and lie below the noise; labelling them made the nearest-source vectors
#: of most pixels point at invisible sources, which no network can learn (the first shipped
#: model's C^v was worse than a zero prediction within 3 px of a source). The criterion is
#: the white-noise matched-filter S/N of the noiseless source in the tile, sqrt(Σ S²)/σ,
#: so it follows each scene's noise level: at GOODS-S depth S/N 5 is reached near H ≈ 27.2.
#: The flux of unlabelled sources is shared by the labelled ones around them, like background.
LABEL_MIN_SNR = 5.0


#: Version of :func:`scene_conditions`, recorded in every training shard. Version 1 kept the
#: noise texture of drizzled GOODS-S data (0.6 px) in every scene; version 2 also varies it.
CONDITIONS_VERSION = 2
#: Where the centre-map labels sit, recorded in every shard: "drawn", the sources' drawn
#: positions (the simulator's truth); shards without it were labelled at
#: their stamps' flux-weighted centroids ("centroids"), noisy for real COSMOS galaxies
LABEL_POSITIONS = "drawn"
#: Largest share of a source's flux one pixel's slot weight may give (:func:`slot_flux_weight`):
#: the relative flux error of a faint source beside a bright core is real, but a weight of many
#: times its flux per pixel would let a few such pixels drive every step.
FLUX_WEIGHT_CAP = 0.1
#: How a shard's ``flux_weight`` labels were made, recorded in its attrs (``flux_weight``):
#: "per_band" (``(h, w, b, n)``, each band's light over each source's flux in it) for multi-band
#: scenes; ``True`` (``(h, w, n)``, light summed over bands) for single-band ones and for
#: multi-band shards of earlier versions, which a build remakes.
FLUX_WEIGHT_LABELS = {False: True, True: "per_band"}


def scene_conditions(seed: int) -> dict:
    """Observing conditions of the training/validation/test scene with this seed.

    Density 0.5–2.5× GOODS-S deep, pixel noise 0.6–2× (log-uniform), companion fraction 0,
    0.1 or 0.3, and the noise texture: white in a quarter of the scenes (single exposures,
    most simulations), else correlated by a Gaussian of 0.3–0.9 px (drizzled or resampled
    mosaics; GOODS-S measures 0.6). The first three are drawn as in version 1, so a seed keeps
    its density, depth and companions.
    """

    rng = np.random.default_rng([seed, 7])
    conditions = {
        "density": float(rng.uniform(0.5, 2.5)),
        "noise_sigma": float(DEFAULT_NOISE_SIGMA * np.exp(rng.uniform(np.log(0.6), np.log(2.0)))),
        "pair_fraction": float(rng.choice([0.0, 0.1, 0.3], p=[0.4, 0.3, 0.3])),
    }
    white = rng.uniform() < 0.25
    correlation = rng.uniform(0.3, 0.9)
    conditions["noise_correlation"] = 0.0 if white else float(correlation)
    return conditions


#: The COSMOS galaxies each split draws from by default: training and validation never see the
#: 20 held out (:data:`mosaic_pais.sim.scenes.HELD_OUT_REAL_GALAXIES`); test scenes draw from
#: all 100 unless ``real_galaxies="held_out"`` is asked for.
SPLIT_REAL_GALAXIES = {"train": "train", "val": "train", "test": "all"}


def split_scene(split: str, index: int, shape=(256, 256), **overrides):
    """The simulated scene number ``index`` of a split (deterministic).

    ``overrides`` replace the seed's conditions or pass other simulator options; one that is
    ``None`` keeps the seed's own.
    """

    seed = SPLIT_SEED_BASE[split] + int(index)
    chosen = {key: value for key, value in overrides.items() if value is not None}
    defaults = scene_conditions(seed) | {"real_galaxies": SPLIT_REAL_GALAXIES[split]}
    return simulate_scene(shape, seed=seed, **(defaults | chosen))


def labelled(scene, min_snr: float = LABEL_MIN_SNR) -> np.ndarray:
    """Which of a simulated scene's sources the training labels hold (:data:`LABEL_MIN_SNR`).

    The criterion is the white-noise matched-filter S/N whatever the scene's noise texture: in
    strongly correlated noise it labels sources fainter relative to the noise. Holding one
    depth in every texture instead (run v7, docs/model_card.md) did not make a better model.
    """

    return matched_filter_snr(scene.sources, scene.noise_sigma) >= min_snr


def label_scene(scene, center_sigma: float = TRAINING_CENTER_SIGMA, n: int = 3,
                min_snr: float = LABEL_MIN_SNR) -> dict:
    """A training sample (numpy arrays) from a simulated scene.

    Sources with a matched-filter S/N below ``min_snr`` (see :data:`LABEL_MIN_SNR`) are not
    labelled: their light counts as background of the labelled sources.
    """

    truth = scene.truth
    keep = labelled(scene, min_snr)
    centers = np.stack([np.asarray(truth["y"]), np.asarray(truth["x"])], axis=1)[keep]
    pcr = encode(centers, scene.sources[keep], n=n, center_sigma=center_sigma)
    h, w = pcr.center.shape
    return {
        "image": scene.image.astype(np.float32),
        "valid": np.ones((h, w), np.float32),
        "center": pcr.center,
        "vectors": pcr.vectors,
        "fractions": pcr.fractions,
        # a multi-band scene's per band (:data:`FLUX_WEIGHT_LABELS`)
        "flux_weight": slot_flux_weight(scene.sources[keep], pcr.source_index,
                                        per_band=scene.image.shape[0] > 1),
        # one per band (a four-band scene has each band's own)
        "noise_sigma": np.broadcast_to(np.asarray(scene.noise_sigma, np.float32),
                                       scene.image.shape[:1]).copy(),
    }


def slot_flux_weight(sources: np.ndarray, source_index: np.ndarray,
                     cap: float = FLUX_WEIGHT_CAP, per_band: bool = False) -> np.ndarray:
    """Each pixel's light in units of the flux of each slot's source, ``(h, w, n)`` float16.

    Weighting slot ``k``'s fraction error ``|p_k − f_k|`` at a pixel by ``I / F_k`` (``I`` the
    pixel's noiseless light over bands, ``F_k`` the total flux in the tile of the source the slot
    points to) makes the sum over pixels the error of that source's deblended flux relative to
    its flux: the quantity the catalogue is judged by. Slots of no source weigh 0.

    With ``per_band`` the weights are each band's own, ``(h, w, b, n)``: a pixel's light in
    that band over the source's flux in that band. Summed over bands, a red bulge's pixels
    would stand for a blue disk's flux too; per band, the sharing of the blue light is judged
    against the blue fluxes, which are what a colour is made of.

    Examples
    --------
    >>> src = np.zeros((2, 1, 1, 4)); src[0, 0, 0, :2] = 1.0; src[1, 0, 0, 2:] = 3.0
    >>> idx = np.array([[[0, 1], [0, 1], [1, 0], [1, 0]]])
    >>> slot_flux_weight(src, idx, cap=1.0)[0].tolist()
    [[0.5, 0.1666259765625], [0.5, 0.1666259765625], [0.5, 1.0], [0.5, 1.0]]
    >>> two_bands = np.concatenate([src, src[:, :, :, ::-1]], axis=1)
    >>> slot_flux_weight(two_bands, idx, cap=1.0, per_band=True).shape
    (1, 4, 2, 2)
    """
    sources = np.clip(np.asarray(sources, np.float64), 0.0, None)  # (N, b, h, w)
    if per_band:
        return np.stack([slot_flux_weight(sources[:, b:b + 1], source_index, cap)
                         for b in range(sources.shape[1])], axis=-2)
    images = sources.sum(axis=1)  # (N, h, w)
    light = images.sum(axis=0)
    if len(images) == 0:
        return np.zeros((*sources.shape[2:], source_index.shape[-1]), np.float16)
    flux = images.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_slot = light[..., None] / flux[np.clip(source_index, 0, None)]
    per_slot = np.where((source_index >= 0) & np.isfinite(per_slot), per_slot, 0.0)
    return np.clip(per_slot, 0.0, cap).astype(np.float16)


def _label_one(args):
    split, index, center_sigma, min_snr, bands, tile_size = args
    return index, label_scene(split_scene(split, index, (tile_size, tile_size), bands=bands),
                              center_sigma=center_sigma, min_snr=min_snr)


def build_training_set(output: str | Path, split: str, n_tiles: int, *, start: int = 0,
                       shard_size: int = 100, processes: int = 1,
                       center_sigma: float = TRAINING_CENTER_SIGMA,
                       min_snr: float = LABEL_MIN_SNR, progress: bool = True,
                       bands=("F160W",), tile_size: int = 256) -> Path:
    """Simulate and label ``n_tiles`` scenes of ``split`` into Zarr shards under ``output/split``.

    ``bands`` are the scenes' bands (:func:`mosaic_pais.sim.scenes.simulate_scene`; the
    fractions are labelled per band); a set holds one band set and one ``tile_size``,
    recorded in its shards.

    Shards already complete and labelled the same way (centre-map width, label S/N, label
    positions) are kept,
    so an interrupted build resumes where it stopped; others are rebuilt. A kept shard may come
    from an older version of :func:`scene_conditions` (its attrs say which): its labels are
    still right for its scenes, so a set can grow with scenes of the newer conditions.
    """

    out = Path(output) / split
    out.mkdir(parents=True, exist_ok=True)
    shards = range(start // shard_size, (start + n_tiles + shard_size - 1) // shard_size)
    pool = None
    if processes > 1:

        pool = mp.get_context("spawn").Pool(processes)
    try:
        for shard in tqdm(shards, desc=f"{split} shards", disable=not progress):
            path = out / f"shard_{shard:05d}.zarr"
            if path.exists():
                attrs = zarr.open_group(str(path), mode="r").attrs
                # a finished shard is kept only if it was labelled the same way
                if attrs.get("complete") and attrs.get("center_sigma") == center_sigma \
                        and attrs.get("label_min_snr") == min_snr \
                        and attrs.get("label_positions", "centroids") == LABEL_POSITIONS \
                        and attrs.get("real_galaxies") == SPLIT_REAL_GALAXIES[split] \
                        and attrs.get("flux_weight") == FLUX_WEIGHT_LABELS[len(bands) > 1] \
                        and tuple(attrs.get("bands", ("F160W",))) == tuple(bands) \
                        and attrs.get("tile_size", 256) == tile_size:
                    continue
            first = shard * shard_size
            jobs = [(split, i, center_sigma, min_snr, tuple(bands), tile_size)
                    for i in range(first, first + shard_size)]
            results = pool.imap(_label_one, jobs) if pool else map(_label_one, jobs)
            samples = [s for _, s in results]
            write_shard(path, samples, {"split": split, "first_index": first,
                                        "n_tiles": shard_size,
                                        "seed_base": SPLIT_SEED_BASE[split],
                                        "center_sigma": center_sigma,
                                        "label_min_snr": min_snr,
                                        "label_positions": LABEL_POSITIONS,
                                        "real_galaxies": SPLIT_REAL_GALAXIES[split],
                                        "flux_weight": FLUX_WEIGHT_LABELS[len(bands) > 1],
                                        "bands": list(bands),
                                        "tile_size": int(tile_size),
                                        "conditions": CONDITIONS_VERSION})
    finally:
        if pool is not None:
            pool.close()
    return out


def write_shard(path: str | Path, samples: list[dict], attrs: dict) -> Path:
    """Write labelled samples as one Zarr shard, under a temporary name renamed when complete."""


    path = Path(path)
    tmp = path.with_name(path.name.replace(".zarr", ".tmp.zarr"))
    if tmp.exists():
        shutil.rmtree(tmp)
    group = zarr.open_group(str(tmp), mode="w")
    for key, dtype in (("image", "float32"), ("center", "float16"), ("vectors", "float16"),
                       ("fractions", "float16"), ("noise_sigma", "float32"),
                       ("flux_weight", "float16")):
        if key == "flux_weight" and not all(key in s for s in samples):
            continue  # labels of real tiles know no per-source flux
        data = np.stack([s[key] for s in samples]).astype(dtype)
        arr = group.create_array(key, shape=data.shape, dtype=dtype,
                                 chunks=(1, *data.shape[1:]))
        arr[...] = data
    # the validity mask only where some pixel is invalid (padded real tiles), so simulated
    # shards keep their format
    if all("valid" in s for s in samples) and not all(np.all(s["valid"] > 0) for s in samples):
        data = np.stack([s["valid"] > 0 for s in samples]).astype("uint8")
        arr = group.create_array("valid", shape=data.shape, dtype="uint8",
                                 chunks=(1, *data.shape[1:]))
        arr[...] = data
    group.attrs.update({**attrs, "complete": True})
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def load_split(folder: str | Path) -> dict:
    """All complete shards of a split folder, in memory, as one dict of arrays.

    Each array is allocated once at its full size and filled shard by shard, so that loading
    needs no more memory than the result (concatenating the shards' arrays would need twice:
    a four-band training set of 3,000 tiles holds 12 GB).
    """
    paths = sorted(p for p in Path(folder).glob("shard_*.zarr")
                   if not p.name.endswith(".tmp.zarr"))
    groups = [g for g in (zarr.open_group(str(p), mode="r") for p in paths)
              if g.attrs.get("complete")]
    if not groups:
        raise FileNotFoundError(f"no complete shards in {folder}")
    keys = ["image", "center", "vectors", "fractions", "noise_sigma"]
    if all("flux_weight" in g for g in groups):  # only where every shard has it
        keys.append("flux_weight")
    for key in keys:
        shapes = {g[key].shape[1:] for g in groups}
        if len(shapes) > 1:
            raise ValueError(f"the shards of {folder} hold {key} of different shapes "
                             f"{sorted(shapes)}: labelled by different versions; rebuild them")
    total = sum(g["image"].shape[0] for g in groups)
    _, _, h, w = groups[0]["image"].shape
    out = {key: np.empty((total, *groups[0][key].shape[1:]), groups[0][key].dtype)
           for key in keys}
    out["valid"] = np.ones((total, h, w), np.uint8)
    start = 0
    for group in groups:
        n_tiles = group["image"].shape[0]
        for key in keys:
            out[key][start:start + n_tiles] = group[key][...]
        if "valid" in group:
            out["valid"][start:start + n_tiles] = group["valid"][...]
        start += n_tiles
    return out


#: separation (px) under which two labelled sources count as a close pair for oversampling
CLOSE_PAIR = 8.0


def close_pairs(center: np.ndarray) -> int:
    """Number of labelled source pairs closer than :data:`CLOSE_PAIR` px in a centre-map label.

    The label's Gaussians are combined by maximum, so every source keeps its own peak.

    Examples
    --------
    >>> from mosaic_pais.pcr import center_map
    >>> close_pairs(center_map([[10, 10], [10, 15], [40, 40]], (64, 64), sigma=2.0))
    1
    """


    peaks = find_peaks(np.asarray(center, np.float32), threshold=0.5, window=3, refine=False)
    return len(cKDTree(peaks.yx).query_pairs(CLOSE_PAIR)) if len(peaks) > 1 else 0


#: a pixel of "extended light" is this bright (S/N) and this far (px) from its owner's centre
EXTENDED_MIN_SNR = 3.0
EXTENDED_MIN_DISTANCE = 6.0


def extended_pixels(image_snr: np.ndarray, vectors: np.ndarray, fractions: np.ndarray) -> int:
    """Pixels of a label with S/N > 3 whose largest share is of a source centred > 6 px away.

    They are the outer light of large galaxies: where a centre-map network sees clumps and
    spiral arms it should not split off, and where a galaxy's centre is a matter of its whole
    light, not of its brightest knot. ``image_snr`` is (h, w); ``vectors`` (h, w, n, 2) and
    ``fractions`` (h, w, b, n) the label's C^v and C^m.

    Examples
    --------
    >>> from mosaic_pais.pcr import encode
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> disc = np.exp(-np.hypot(yy - 32, xx - 32) / 8.0)[None, None]  # one large galaxy
    >>> pcr = encode([[32.0, 32.0]], disc, n=3)
    >>> extended_pixels(disc[0, 0] / 0.01, pcr.vectors, pcr.fractions)
    2356
    """
    offset = np.hypot(*np.moveaxis(np.asarray(vectors[..., 0, :], np.float32), -1, 0))
    share = np.asarray(fractions, np.float32).mean(axis=-2)  # (h, w, n), over bands
    owned = share[..., 0] >= share.max(axis=-1)  # the nearest source has the largest share
    return int(np.count_nonzero((image_snr > EXTENDED_MIN_SNR) & owned
                                & (offset > EXTENDED_MIN_DISTANCE)))


def tile_weights(data: dict, blend_oversampling: float,
                 extended_oversampling: float = 0.0) -> np.ndarray | None:
    """Sampling probabilities of the tiles of a split (None = uniform)."""
    if blend_oversampling <= 0 and extended_oversampling <= 0:
        return None
    weights = np.ones(len(data["center"]), np.float64)
    if blend_oversampling > 0:
        weights += blend_oversampling * np.array([close_pairs(c) for c in data["center"]])
    if extended_oversampling > 0:
        # the S/N of the bands' sum
        sigma = np.sqrt((np.asarray(data["noise_sigma"], np.float64) ** 2).sum(axis=1))
        # tile by tile: a whole split's S/N maps at once would double its memory
        weights += extended_oversampling / 1000.0 * np.array(
            [extended_pixels(data["image"][i].sum(axis=0) / sigma[i], data["vectors"][i],
                             data["fractions"][i]) for i in range(len(weights))])
    return weights / weights.sum()


def subtract_tile_skies(images: np.ndarray, mesh: int) -> np.ndarray:
    """Every tile of ``images`` (n, band, y, x) with its own sky subtracted as a run subtracts
    a mosaic's (:func:`mosaic_pais.runtime.background.subtract_sky`); the labels stay as they
    are. A new array of the same dtype, filled tile by tile (a training set's images take
    gigabytes: no float64 copy of them all is made)."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = subtract_sky(image, mesh)
    return out
