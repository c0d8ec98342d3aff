"""Training sets of simulated tiles with PCR labels, and training of the PAIS network.

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
over classical tools is on blends).

A training set is a folder of Zarr shards (``shard_00000.zarr`` …), each a group with arrays
``image (T, b, h, w)`` float32, ``center (T, h, w)``, ``vectors (T, h, w, n, 2)``,
``fractions (T, h, w, b, n)`` (float16) and ``noise_sigma (T, b)``; attrs hold the seeds and
the encoding parameters. Shards of real tiles (``mosaic-pais labels``) may also hold
``valid (T, h, w)`` (uint8): pixels beyond the image's edge, where a tile is padded, are 0 there;
without it every pixel is valid.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "SPLIT_SEED_BASE",
    "TRAINING_CENTER_SIGMA",
    "LABEL_MIN_SNR",
    "CONDITIONS_VERSION",
    "LABEL_POSITIONS",
    "FLUX_WEIGHT_CAP",
    "scene_conditions",
    "SPLIT_REAL_GALAXIES",
    "split_scene",
    "labelled",
    "label_scene",
    "slot_flux_weight",
    "build_training_set",
    "write_shard",
    "load_split",
    "random_edge_mask",
    "TrainConfig",
    "CLOSE_PAIR",
    "close_pairs",
    "EXTENDED_MIN_SNR",
    "EXTENDED_MIN_DISTANCE",
    "extended_pixels",
    "tile_weights",
    "subtract_tile_skies",
    "training_batches",
    "LOGGED_TERMS",
    "with_precision",
    "make_steps",
    "train",
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


def scene_conditions(seed: int) -> dict:
    """Observing conditions of the training/validation/test scene with this seed.

    Density 0.5–2.5× GOODS-S deep, pixel noise 0.6–2× (log-uniform), companion fraction 0,
    0.1 or 0.3, and the noise texture: white in a quarter of the scenes (single exposures,
    most simulations), else correlated by a Gaussian of 0.3–0.9 px (drizzled or resampled
    mosaics; GOODS-S measures 0.6). The first three are drawn as in version 1, so a seed keeps
    its density, depth and companions.
    """
    from mosaic_pais.sim.scenes import DEFAULT_NOISE_SIGMA

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
    from mosaic_pais.sim.scenes import simulate_scene

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
    from mosaic_pais.sim.scenes import matched_filter_snr

    return matched_filter_snr(scene.sources, scene.noise_sigma) >= min_snr


def label_scene(scene, center_sigma: float = TRAINING_CENTER_SIGMA, n: int = 3,
                min_snr: float = LABEL_MIN_SNR) -> dict:
    """A training sample (numpy arrays) from a simulated scene.

    Sources with a matched-filter S/N below ``min_snr`` (see :data:`LABEL_MIN_SNR`) are not
    labelled: their light counts as background of the labelled sources.
    """
    from mosaic_pais.pcr import encode

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
        "flux_weight": slot_flux_weight(scene.sources[keep], pcr.source_index),
        "noise_sigma": np.full(scene.image.shape[0], scene.noise_sigma, np.float32),
    }


def slot_flux_weight(sources: np.ndarray, source_index: np.ndarray,
                     cap: float = FLUX_WEIGHT_CAP) -> np.ndarray:
    """Each pixel's light in units of the flux of each slot's source, ``(h, w, n)`` float16.

    Weighting slot ``k``'s fraction error ``|p_k − f_k|`` at a pixel by ``I / F_k`` (``I`` the
    pixel's noiseless light over bands, ``F_k`` the total flux in the tile of the source the slot
    points to) makes the sum over pixels the error of that source's deblended flux relative to
    its flux: the quantity the catalogue is judged by. Slots of no source weigh 0.

    Examples
    --------
    >>> src = np.zeros((2, 1, 1, 4)); src[0, 0, 0, :2] = 1.0; src[1, 0, 0, 2:] = 3.0
    >>> idx = np.array([[[0, 1], [0, 1], [1, 0], [1, 0]]])
    >>> slot_flux_weight(src, idx, cap=1.0)[0].tolist()
    [[0.5, 0.1666259765625], [0.5, 0.1666259765625], [0.5, 1.0], [0.5, 1.0]]
    """
    images = np.clip(np.asarray(sources, np.float64), 0.0, None).sum(axis=1)  # (N, h, w)
    light = images.sum(axis=0)
    if len(images) == 0:
        return np.zeros((*light.shape, source_index.shape[-1]), np.float16)
    flux = images.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_slot = light[..., None] / flux[np.clip(source_index, 0, None)]
    per_slot = np.where((source_index >= 0) & np.isfinite(per_slot), per_slot, 0.0)
    return np.clip(per_slot, 0.0, cap).astype(np.float16)


def _label_one(args):
    split, index, center_sigma, min_snr = args
    return index, label_scene(split_scene(split, index), center_sigma=center_sigma,
                              min_snr=min_snr)


def build_training_set(output: str | Path, split: str, n_tiles: int, *, start: int = 0,
                       shard_size: int = 100, processes: int = 1,
                       center_sigma: float = TRAINING_CENTER_SIGMA,
                       min_snr: float = LABEL_MIN_SNR, progress: bool = True) -> Path:
    """Simulate and label ``n_tiles`` scenes of ``split`` into Zarr shards under ``output/split``.

    Shards already complete and labelled the same way (centre-map width, label S/N, label
    positions) are kept,
    so an interrupted build resumes where it stopped; others are rebuilt. A kept shard may come
    from an older version of :func:`scene_conditions` (its attrs say which): its labels are
    still right for its scenes, so a set can grow with scenes of the newer conditions.
    """
    import zarr
    from tqdm import tqdm

    out = Path(output) / split
    out.mkdir(parents=True, exist_ok=True)
    shards = range(start // shard_size, (start + n_tiles + shard_size - 1) // shard_size)
    pool = None
    if processes > 1:
        import multiprocessing as mp

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
                        and attrs.get("flux_weight"):
                    continue
            first = shard * shard_size
            jobs = [(split, i, center_sigma, min_snr) for i in range(first, first + shard_size)]
            results = pool.imap(_label_one, jobs) if pool else map(_label_one, jobs)
            samples = [s for _, s in results]
            write_shard(path, samples, {"split": split, "first_index": first,
                                        "n_tiles": shard_size,
                                        "seed_base": SPLIT_SEED_BASE[split],
                                        "center_sigma": center_sigma,
                                        "label_min_snr": min_snr,
                                        "label_positions": LABEL_POSITIONS,
                                        "real_galaxies": SPLIT_REAL_GALAXIES[split],
                                        "flux_weight": True,
                                        "conditions": CONDITIONS_VERSION})
    finally:
        if pool is not None:
            pool.close()
    return out


def write_shard(path: str | Path, samples: list[dict], attrs: dict) -> Path:
    """Write labelled samples as one Zarr shard, under a temporary name renamed when complete."""
    import shutil

    import zarr

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
    """All shards of a split folder, in memory, as one dict of arrays."""
    import zarr

    parts: dict[str, list] = {}
    paths = sorted(Path(folder).glob("shard_*.zarr"))
    paths = [p for p in paths if not p.name.endswith(".tmp.zarr")]
    for path in paths:
        group = zarr.open_group(str(path), mode="r")
        if not group.attrs.get("complete"):
            continue
        for key in ("image", "center", "vectors", "fractions", "noise_sigma"):
            parts.setdefault(key, []).append(group[key][...])
        if "flux_weight" in group:
            parts.setdefault("flux_weight", []).append(group["flux_weight"][...])
        n_tiles, _, h, w = parts["image"][-1].shape
        valid = group["valid"][...] if "valid" in group else np.ones((n_tiles, h, w), np.uint8)
        parts.setdefault("valid", []).append(valid.astype(np.uint8))
    if not parts:
        raise FileNotFoundError(f"no complete shards in {folder}")
    if len(parts.get("flux_weight", [])) != len(parts["image"]):
        parts.pop("flux_weight", None)  # only where every shard has it
    return {k: np.concatenate(v) for k, v in parts.items()}


def random_edge_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A validity mask like a mosaic edge or a masked region, for robustness to padding."""
    valid = np.ones((h, w), bool)
    kind = rng.integers(0, 3)
    if kind == 0:  # a straight edge: everything beyond it is outside the mosaic
        side, depth = rng.integers(0, 4), int(rng.integers(8, h // 2))
        if side == 0:
            valid[:depth] = False
        elif side == 1:
            valid[-depth:] = False
        elif side == 2:
            valid[:, :depth] = False
        else:
            valid[:, -depth:] = False
    elif kind == 1:  # a masked rectangle (bad pixels, satellite trail)
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        valid[y0:y0 + rng.integers(4, h // 3), x0:x0 + rng.integers(4, w // 3)] = False
    else:  # a ragged, rotated edge
        yy, xx = np.mgrid[0:h, 0:w]
        angle = rng.uniform(0, 2 * np.pi)
        valid = (np.cos(angle) * (yy - h / 2) + np.sin(angle) * (xx - w / 2)) < rng.uniform(
            -h / 4, h / 2)
    return valid


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved beside its checkpoints)."""

    data: str = "training/data"
    output: str = "training/runs/default"
    filters: tuple[int, ...] = (16, 32, 64, 64, 128)
    n_bands: int = 1
    n_slots: int = 3
    dropout: float = 0.1
    crop: int = 128
    batch: int = 16
    learning_rate: float = 5e-4
    lr_decay_steps: int = 20_000
    beta_1: float = 0.9
    beta_2: float = 0.9999
    epsilon: float = 1e-7
    steps: int = 100_000
    minutes: float | None = None
    checkpoint_minutes: float = 5.0
    rotate_probability: float = 0.25
    mask_probability: float = 0.15
    seed: int = 0
    init_from: str | None = None
    #: tiles are drawn with probability ∝ 1 + blend_oversampling × (labelled pairs closer than
    #: CLOSE_PAIR px), so that close pairs, where PAIS should beat classical deblenders, are
    #: seen more often than their share of the sky (0 = uniform)
    blend_oversampling: float = 0.0
    #: tiles are also drawn with probability ∝ 1 + extended_oversampling × (thousands of
    #: :func:`extended_pixels`), so that large, bright and often irregular galaxies (over-split
    #: into their clumps, their centre missed) are seen more often (0 = not weighted by it)
    extended_oversampling: float = 0.0
    #: standard deviation, in units of the noise σ, of a constant sky added to each training
    #: crop: the simulated sky is exactly 0, and a network trained only on that reads the
    #: image's mean level as a cue (v8 finds 6% more or fewer sources for a sky of ±0.017σ,
    #: docs/benchmarks.md), where real skies are known to a few hundredths of σ at best
    sky_offset_sigma: float = 0.0
    #: side (px) of the cells on which each training tile's sky is estimated and subtracted
    #: before training, as a run subtracts a mosaic's (:mod:`mosaic_pais.runtime.background`); 0
    #: leaves
    #: the simulation's zero sky. A run's estimate holds the floor of the faint, undetected
    #: sources (+0.019σ at GOODS-S depth), which tiles left as simulated keep: a model trained
    #: on those sees less light in a run than it learnt on (benchmarks/sky_on_tiles.py)
    background_mesh: int = 0
    #: compile each training step with XLA (``tf.function(jit_compile=True)``)
    jit_compile: bool = False
    #: "float32", or "mixed_bfloat16": layers compute in bfloat16 (AVX-512 BF16 on recent x86
    #: CPUs) and keep float32 weights; the loss is computed in float32
    precision: str = "float32"
    loss: dict = field(default_factory=lambda: {
        "center": 15.0, "vectors": 0.06, "fractions": 4.0, "entropy": 2.0,
        "center_weight": 20.0, "vector_mode": "weighted", "vector_scale": 16.0,
        "vector_floor": 0.1})

    def __post_init__(self) -> None:
        """Refuse a configuration that could only fail later, with a traceback, mid-run."""
        from mosaic_pais.errors import BadInputError

        counts = {"n_bands": self.n_bands, "n_slots": self.n_slots, "crop": self.crop,
                  "batch": self.batch, "steps": self.steps, "lr_decay_steps": self.lr_decay_steps}
        rates = {"learning_rate": self.learning_rate, "epsilon": self.epsilon,
                 "checkpoint_minutes": self.checkpoint_minutes}
        shares = {"dropout": self.dropout, "rotate_probability": self.rotate_probability,
                  "mask_probability": self.mask_probability, "beta_1": self.beta_1,
                  "beta_2": self.beta_2}
        spreads = {"blend_oversampling": self.blend_oversampling,
                   "extended_oversampling": self.extended_oversampling,
                   "sky_offset_sigma": self.sky_offset_sigma}
        problems = [f"{k} must be a whole number of at least 1 (got {v!r})"
                    for k, v in counts.items() if not isinstance(v, int) or v < 1]
        problems += [f"{k} must be positive (got {v!r})" for k, v in rates.items()
                     if not isinstance(v, int | float) or not v > 0]
        problems += [f"{k} must lie in [0, 1) (got {v!r})" for k, v in shares.items()
                     if not isinstance(v, int | float) or not 0 <= v < 1]
        problems += [f"{k} must be at least 0 (got {v!r})" for k, v in spreads.items()
                     if not isinstance(v, int | float) or not v >= 0]
        if not self.filters or any(not isinstance(f, int) or f < 1 for f in self.filters):
            problems.append(f"filters must be widths of at least 1 (got {self.filters!r})")
        if self.minutes is not None and not self.minutes > 0:
            problems.append(f"minutes must be positive (got {self.minutes!r})")
        if not isinstance(self.background_mesh, int) or not (
                self.background_mesh == 0 or self.background_mesh >= 16):
            problems.append("background_mesh must be 0 (no sky subtracted) or a cell side of "
                            f"at least 16 px (got {self.background_mesh!r})")
        if self.precision not in ("float32", "mixed_bfloat16"):
            problems.append("precision must be float32 or mixed_bfloat16 "
                            f"(got {self.precision!r})")
        if problems:
            raise BadInputError("training configuration: " + "; ".join(problems))

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """A configuration from a JSON file; unknown keys and bad values are refused in one
        line (:class:`~mosaic_pais.errors.BadInputError`).

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "bad.json"
        >>> _ = path.write_text('{"background_mesh": -128, "cropp": 64}')
        >>> TrainConfig.from_json(path)
        Traceback (most recent call last):
        ...
        mosaic_pais.errors.BadInputError: training configuration bad.json: unknown key(s) cropp
        >>> _ = path.write_text('{"background_mesh": -128}')
        >>> TrainConfig.from_json(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mosaic_pais.errors.BadInputError: training configuration: background_mesh must be 0 ...
        """
        from dataclasses import fields

        from mosaic_pais.errors import BadInputError

        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"cannot read training configuration {path}: {exc}") from None
        if not isinstance(values, dict):
            raise BadInputError(f"training configuration {path} is not a JSON object")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise BadInputError(f"training configuration {Path(path).name}: unknown key(s) "
                                + ", ".join(unknown))
        if "filters" in values:
            values["filters"] = tuple(values["filters"]) if isinstance(
                values["filters"], list) else values["filters"]
        return cls(**values)


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
    from scipy.spatial import cKDTree

    from mosaic_pais.pcr import find_peaks

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
    are."""
    from mosaic_pais.runtime.background import subtract_sky

    return np.stack([subtract_sky(image, mesh) for image in images]).astype(images.dtype)


def training_batches(data: dict, cfg: TrainConfig, rng: np.random.Generator):
    """Endless stream of augmented (x, labels) numpy batches."""
    from mosaic_pais.nn.model import model_input
    from mosaic_pais.training.augment import random_augment

    n_tiles = len(data["image"])
    weights = tile_weights(data, cfg.blend_oversampling, cfg.extended_oversampling)
    per_pixel = ("center", "vectors", "fractions") + (
        ("flux_weight",) if "flux_weight" in data else ())
    while True:
        xs, labels = [], {key: [] for key in (*per_pixel, "valid", "snr")}
        for _ in range(cfg.batch):
            i = int(rng.choice(n_tiles, p=weights)) if weights is not None else \
                int(rng.integers(0, n_tiles))
            sample = {
                "image": data["image"][i],
                "valid": (data["valid"][i] if "valid" in data else
                          np.ones(data["center"][i].shape)).astype(np.float32),
                "center": data["center"][i].astype(np.float32),
                "vectors": data["vectors"][i].astype(np.float32),
                "fractions": data["fractions"][i].astype(np.float32),
            }
            if "flux_weight" in data:
                sample["flux_weight"] = data["flux_weight"][i].astype(np.float32)
            sample = random_augment(sample, rng, crop_size=cfg.crop,
                                    rotate_probability=cfg.rotate_probability)
            valid = sample["valid"] > 0
            if rng.random() < cfg.mask_probability:
                valid &= random_edge_mask(*valid.shape, rng)
            if cfg.sky_offset_sigma > 0:  # the same sources on a sky a little off zero
                sample["image"] = sample["image"] + (
                    rng.normal(0.0, cfg.sky_offset_sigma)
                    * np.asarray(data["noise_sigma"][i], np.float32)[:, None, None])
            xs.append(model_input(sample["image"][None], data["noise_sigma"][i], valid[None])[0])
            for key in per_pixel:
                labels[key].append(sample[key])
            labels["valid"].append(valid.astype(np.float32))
            labels["snr"].append(xs[-1][..., :-1].sum(-1))  # the input's S/N, summed over bands
        yield np.stack(xs), {k: np.stack(v) for k, v in labels.items()}


#: loss terms written to a run's log.csv, in its columns' order (0 for a term not in the loss)
LOGGED_TERMS = ("loss", "center", "vectors", "fractions", "entropy", "flux")


def with_precision(model, cfg: TrainConfig):
    """The network built under ``cfg.precision`` (weights of ``model`` copied in, when given).

    A saved model keeps the dtype policy it was saved with, so a mixed-precision run that
    starts from one builds the same architecture under the new policy and takes its weights.
    """
    import keras

    from mosaic_pais.errors import BadInputError
    from mosaic_pais.nn.model import build_pais_model

    keras.mixed_precision.set_global_policy(cfg.precision)
    try:
        built = build_pais_model(n_bands=cfg.n_bands, n_slots=cfg.n_slots,
                                 filters=tuple(cfg.filters), dropout=cfg.dropout)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if model is not None:
        shapes = [w.shape for w in model.weights]
        if shapes != [w.shape for w in built.weights]:
            raise BadInputError(f"model {cfg.init_from} does not have the widths {cfg.filters} "
                                "of the configuration; give its own filters")
        built.set_weights(model.get_weights())
    return built


def make_steps(model, optimizer, cfg: TrainConfig, loss_cfg):
    """The compiled training step (gradients clipped to a global norm of 10) and evaluation
    step of ``model``; each takes ``(x, labels)`` tensors and returns the loss terms."""
    import tensorflow as tf

    from mosaic_pais.training.loss import pais_loss_terms

    @tf.function(reduce_retracing=True, jit_compile=cfg.jit_compile)
    def train_step(x, labels):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            terms = pais_loss_terms(outputs, labels, cfg.n_bands, cfg.n_slots, loss_cfg)
        grads = tape.gradient(terms["loss"], model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 10.0)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return terms

    @tf.function(reduce_retracing=True)
    def eval_step(x, labels):
        return pais_loss_terms(model(x, training=False), labels, cfg.n_bands, cfg.n_slots,
                               loss_cfg)

    return train_step, eval_step


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) a PAIS model; returns the path of the exported ``.keras`` model.

    Checkpoints (model, optimizer, step and data RNG state) are written every
    ``cfg.checkpoint_minutes`` to ``cfg.output/ckpt``; rerunning with the same output resumes from
    the last one. Each loss term is logged to ``cfg.output/log.csv`` and to TensorBoard under
    ``cfg.output/tensorboard``.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from mosaic_pais.nn.model import build_pais_model, load_model
    from mosaic_pais.training.loss import LossConfig

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = load_split(Path(cfg.data) / "train")
    val = load_split(Path(cfg.data) / "val") if (Path(cfg.data) / "val").exists() else None
    if cfg.background_mesh:  # the tiles as a run would hand them to the network
        for split in (data, val) if val is not None else (data,):
            split["image"] = subtract_tile_skies(split["image"], cfg.background_mesh)

    # the data decide the number of bands and slots (a real labelled set may have several bands)
    n_bands, n_slots = int(data["image"].shape[1]), int(data["vectors"].shape[-2])
    if cfg.init_from:
        from mosaic_pais.errors import BadInputError

        model = load_model(cfg.init_from)
        model_bands = int(model.inputs[0].shape[-1]) - 1
        model_slots = int(model.output["vectors"].shape[-1]) // 2
        if (model_bands, model_slots) != (n_bands, n_slots):
            raise BadInputError(f"model {cfg.init_from} takes {model_bands} band(s) and "
                                f"{model_slots} slots but the training set has {n_bands} and "
                                f"{n_slots}")
    if (cfg.n_bands, cfg.n_slots) != (n_bands, n_slots):
        cfg.n_bands, cfg.n_slots = n_bands, n_slots
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.precision != "float32":
        model = with_precision(model if cfg.init_from else None, cfg)
    elif not cfg.init_from:
        model = build_pais_model(n_bands=cfg.n_bands, n_slots=cfg.n_slots,
                                 filters=tuple(cfg.filters), dropout=cfg.dropout)
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=cfg.lr_decay_steps, alpha=0.05)
    optimizer = tf.keras.optimizers.Adam(schedule, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                         epsilon=cfg.epsilon)
    loss_cfg = LossConfig(**cfg.loss)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(ckpt, str(out / "ckpt"), max_to_keep=3)
    rng_state_path = out / "rng_state.json"
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} at step {int(step.numpy())}")
    rng = np.random.default_rng(cfg.seed)
    if rng_state_path.exists() and manager.latest_checkpoint:
        rng.bit_generator.state = json.loads(rng_state_path.read_text())

    train_step, eval_step = make_steps(model, optimizer, cfg, loss_cfg)

    writer = tf.summary.create_file_writer(str(out / "tensorboard"))
    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log_file = open(log_path, "a", newline="")  # noqa: SIM115 - closed in finally
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "wall_s", "split", *LOGGED_TERMS, "lr"])
    stream = training_batches(data, cfg, rng)
    val_batches = None
    if val is not None:  # a fixed set of validation crops, the same at every evaluation
        val_rng = np.random.default_rng(12345)
        val_cfg = TrainConfig(**{**asdict(cfg), "batch": 16, "blend_oversampling": 0.0,
                                 "rotate_probability": 0.0,
                                 "mask_probability": 0.0})
        vstream = training_batches(val, val_cfg, val_rng)
        val_batches = [next(vstream) for _ in range(8)]

    start = time.time()
    last_ckpt = start
    deadline = start + cfg.minutes * 60 if cfg.minutes else None
    running: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=int(step.numpy()), disable=not progress, desc="train")

    def save():
        manager.save(checkpoint_number=int(step.numpy()))
        rng_state_path.write_text(json.dumps(rng.bit_generator.state))
        export = out / "model.keras"
        tmp = out / "model.tmp.keras"
        model.save(tmp)
        tmp.replace(export)

    try:
        while int(step.numpy()) < cfg.steps:
            x, labels = next(stream)
            terms = train_step(tf.constant(x), {k: tf.constant(v) for k, v in labels.items()})
            step.assign_add(1)
            s = int(step.numpy())
            for k, v in terms.items():
                running[k] = 0.98 * running.get(k, float(v)) + 0.02 * float(v)
            bar.update(1)
            bar.set_postfix(loss=f"{running['loss']:.3f}")
            if s % 50 == 0:
                lr = float(schedule(s))
                log.writerow([s, round(time.time() - start, 1), "train",
                              *[f"{float(terms.get(k, 0.0)):.6g}" for k in LOGGED_TERMS], lr])
                with writer.as_default(step=s):
                    for k, v in terms.items():
                        tf.summary.scalar(f"train/{k}", float(v))
                    tf.summary.scalar("lr", lr)
            if s % 500 == 0 and val_batches is not None:
                sums: dict[str, float] = {}
                for vx, vl in val_batches:
                    for k, v in eval_step(tf.constant(vx), {k: tf.constant(a) for k, a in
                                                            vl.items()}).items():
                        sums[k] = sums.get(k, 0.0) + float(v) / len(val_batches)
                log.writerow([s, round(time.time() - start, 1), "val",
                              *[f"{sums.get(k, 0.0):.6g}" for k in LOGGED_TERMS], ""])
                with writer.as_default(step=s):
                    for k, v in sums.items():
                        tf.summary.scalar(f"val/{k}", v)
            log_file.flush()
            now = time.time()
            if now - last_ckpt > cfg.checkpoint_minutes * 60:
                save()
                last_ckpt = now
            if deadline and now > deadline:
                break
        save()
    finally:
        bar.close()
        log_file.close()
    return out / "model.keras"
