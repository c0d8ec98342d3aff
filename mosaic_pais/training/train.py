"""Training of the PAIS network: configuration, batches, the loss's steps and the loop.

:func:`train` resumes from its last checkpoint, in the same output folder on any machine; the
training sets come from :mod:`mosaic_pais.training.dataset`.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError
from mosaic_pais.nn.model import build_pais_model, cpu_has_bfloat16, load_model, model_input
from mosaic_pais.training.augment import random_augment, random_edge_mask
from mosaic_pais.training.dataset import load_split, subtract_tile_skies, tile_weights
from mosaic_pais.training.loss import LossConfig, pais_loss_terms

__all__ = [
    "TrainConfig",
    "training_batches",
    "validation_batches",
    "prefetched",
    "LOGGED_TERMS",
    "with_precision",
    "make_steps",
    "train",
    "export_checkpoint",
    "model_file",
]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved beside its checkpoints)."""

    data: str = "training/data"
    output: str = "training/runs/default"
    filters: tuple[int, ...] = (16, 32, 64, 64, 128)
    n_bands: int = 1
    #: the bands of the scenes ``mosaic-pais train --simulate-tiles`` renders
    #: (:data:`mosaic_pais.sim.bands.BANDS`; the training set's own decide ``n_bands``)
    bands: tuple[str, ...] = ("F160W",)
    #: side (px) of the tiles ``--simulate-tiles`` renders: a wide-field survey's tiles hold
    #: several times more sources than HST's at the same size, and cost as much more to draw
    tile_size: int = 256
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
        if not isinstance(self.tile_size, int) or self.tile_size < self.crop:
            problems.append(f"tile_size must be an integer of at least crop {self.crop} px "
                            f"(got {self.tile_size!r})")
        if self.minutes is not None and not self.minutes > 0:
            problems.append(f"minutes must be positive (got {self.minutes!r})")
        if not isinstance(self.background_mesh, int) or not (
                self.background_mesh == 0 or self.background_mesh >= 16):
            problems.append("background_mesh must be 0 (no sky subtracted) or a cell side of "
                            f"at least 16 px (got {self.background_mesh!r})")
        try:
            from mosaic_pais.sim.bands import check_bands

            self.bands = check_bands(self.bands)
        except BadInputError as exc:
            problems.append(str(exc))
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

def training_batches(data: dict, cfg: TrainConfig, rng: np.random.Generator):
    """Endless stream of augmented (x, labels) numpy batches.

    Each sample is cropped from its tile before its float16 labels are converted, so that a
    batch costs a quarter of the conversions at the default 128² crops.
    """
    n_tiles = len(data["image"])
    weights = tile_weights(data, cfg.blend_oversampling, cfg.extended_oversampling)
    per_pixel = ("center", "vectors", "fractions") + (
        ("flux_weight",) if "flux_weight" in data else ())
    while True:
        xs, labels = [], {key: [] for key in (*per_pixel, "valid", "snr")}
        for _ in range(cfg.batch):
            i = int(rng.choice(n_tiles, p=weights)) if weights is not None else \
                int(rng.integers(0, n_tiles))
            sample = _augmented_sample(data, i, per_pixel, cfg, rng)
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


def _augmented_sample(data: dict, i: int, per_pixel: tuple, cfg: TrainConfig,
                      rng: np.random.Generator) -> dict:
    """Tile ``i`` cropped, then converted to float32 and augmented."""
    h, w = data["center"][i].shape
    size = min(cfg.crop, h, w)
    y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    sample = {"image": np.asarray(data["image"][i][:, window[0], window[1]], np.float32),
              "valid": (data["valid"][i][window] if "valid" in data
                        else np.ones((size, size))).astype(np.float32)}
    for key in per_pixel:
        sample[key] = data[key][i][window].astype(np.float32)
    return random_augment(sample, rng, rotate_probability=cfg.rotate_probability)


def prefetched(stream, depth: int = 4):
    """``stream``'s items, made ``depth`` ahead by a background thread.

    The augmentation is numpy and scipy, most of which releases the GIL: made in a thread it
    overlaps the training step instead of adding to it.
    """
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        for item in stream:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return

    thread = threading.Thread(target=produce, daemon=True, name="training-batches")
    thread.start()
    try:
        while True:
            yield items.get()
    finally:
        stop.set()


#: loss terms written to a run's log.csv, in its columns' order (0 for a term not in the loss)
LOGGED_TERMS = ("loss", "center", "vectors", "fractions", "entropy", "flux", "shared",
                "misordered")


def with_precision(model, cfg: TrainConfig):
    """The network built under ``cfg.precision`` (weights of ``model`` copied in, when given).

    A saved model keeps the dtype policy it was saved with, so a mixed-precision run that
    starts from one builds the same architecture under the new policy and takes its weights.
    """
    import keras


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
    ``cfg.checkpoint_minutes`` to ``cfg.output/ckpt``; rerunning with the same output resumes
    from the last one, on this machine or another. Each loss term is logged to
    ``cfg.output/log.csv`` and to TensorBoard under ``cfg.output/tensorboard``.

    Parameters
    ----------
    cfg : TrainConfig
        The run; ``cfg.data`` holds ``train/`` (and optionally ``val/``) shards.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        ``cfg.output/model.keras``, a float32 model whatever ``cfg.precision``.
    """
    import tensorflow as tf
    from tqdm import tqdm

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    _warn_if_emulated(cfg)
    data, val = _training_data(cfg)
    model = _initial_model(cfg, data, out)
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=cfg.lr_decay_steps, alpha=0.05)
    optimizer = tf.keras.optimizers.Adam(schedule, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                         epsilon=cfg.epsilon)
    rng = np.random.default_rng(cfg.seed)
    checkpoints = _Checkpoints(out, model, optimizer, rng, cfg)
    train_step, eval_step = make_steps(model, optimizer, cfg, LossConfig(**cfg.loss))
    stream = prefetched(training_batches(data, cfg, rng))
    val_batches = validation_batches(val, cfg)
    log = _TrainingLog(out)
    start = last_checkpoint = time.time()
    deadline = start + cfg.minutes * 60 if cfg.minutes else None
    bar = tqdm(total=cfg.steps, initial=checkpoints.step, disable=not progress, desc="train")
    try:
        while checkpoints.step < cfg.steps:
            terms = train_step(*_as_tensors(next(stream)))
            step = checkpoints.advance()
            bar.update(1)
            bar.set_postfix(loss=f"{float(terms['loss']):.3f}")
            if step % 50 == 0:
                log.write(step, time.time() - start, "train", terms, float(schedule(step)))
            if step % 500 == 0 and val_batches:
                log.write(step, time.time() - start, "val", _evaluate(eval_step, val_batches))
            now = time.time()
            if now - last_checkpoint > cfg.checkpoint_minutes * 60:
                checkpoints.save()
                last_checkpoint = now
            if deadline and now > deadline:
                break
        checkpoints.save()
    finally:
        bar.close()
        log.close()
    return out / "model.keras"


def _warn_if_emulated(cfg: TrainConfig) -> None:
    """One line on stderr when ``mixed_bfloat16`` would be emulated: on a CPU without bfloat16
    instructions (and no GPU) its steps run several times slower than float32. The configuration is
    kept as given, so that a run means the same on every machine."""
    import sys

    import tensorflow as tf

    if cfg.precision == "mixed_bfloat16" and not tf.config.list_physical_devices("GPU") \
            and not cpu_has_bfloat16():
        print("note: this CPU has no bfloat16 instructions (AVX-512 BF16 or AMX), so "
              "mixed_bfloat16 is emulated and slower than float32; set \"precision\": "
              "\"float32\" in the configuration to train faster here", file=sys.stderr)


def _training_data(cfg: TrainConfig) -> tuple[dict, dict | None]:
    """The training and validation splits in memory, skies subtracted as a run would."""
    data = load_split(Path(cfg.data) / "train")
    val = load_split(Path(cfg.data) / "val") if (Path(cfg.data) / "val").exists() else None
    if cfg.background_mesh:  # the tiles as a run would hand them to the network
        for split in (data, val) if val is not None else (data,):
            split["image"] = subtract_tile_skies(split["image"], cfg.background_mesh)
    return data, val


def _initial_model(cfg: TrainConfig, data: dict, out: Path):
    """The network to train: ``cfg.init_from`` (checked against the data's bands and slots)
    or a new one, in ``cfg.precision``. The data decide the bands and slots, which the saved
    configuration records."""
    n_bands, n_slots = int(data["image"].shape[1]), int(data["vectors"].shape[-2])
    model = None
    if cfg.init_from:
        model = load_model(cfg.init_from)
        model_bands = int(model.inputs[0].shape[-1]) - 1
        model_slots = int(model.output["vectors"].shape[-1]) // 2
        if (model_bands, model_slots) != (n_bands, n_slots):
            raise BadInputError(f"model {cfg.init_from} takes {model_bands} band(s) and "
                                f"{model_slots} slots but the training set has {n_bands} and "
                                f"{n_slots}")
    cfg.n_bands, cfg.n_slots = n_bands, n_slots
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.precision != "float32":
        return with_precision(model, cfg)
    return model if model is not None else _network(cfg)


def export_checkpoint(run: str | Path, destination: str | Path | None = None) -> Path:
    """Export the last checkpoint of a training run folder as a float32 ``.keras`` model.

    A run folder kept in the repository (its ``config.json`` and ``ckpt/``) is enough: no
    training data is read, so a checkpoint can be turned into a model on any machine.

    Parameters
    ----------
    run : str or Path
        The run folder (``training/runs/<run>`` or ``training/resume/<run>``).
    destination : str or Path, optional
        Where to write the model; ``<run>/model.keras`` by default.

    Returns
    -------
    Path
        The written model.
    """
    import tensorflow as tf

    run = Path(run)
    latest = tf.train.latest_checkpoint(str(run / "ckpt"))
    if latest is None:
        raise BadInputError(f"{run}: no checkpoint in {run / 'ckpt'}")
    cfg = TrainConfig.from_json(run / "config.json")
    cfg.init_from = None
    model = _network(cfg)
    restored = tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    restored.assert_existing_objects_matched()  # every weight of the network, not a new one
    destination = Path(destination) if destination else run / "model.keras"
    _float32_copy(model, cfg).save(destination)
    return destination


def model_file(path: str | Path, scratch: str | Path) -> Path:
    """``path`` itself if it is a model file, or the model exported from a run folder's last
    checkpoint (:func:`export_checkpoint`) into the folder ``scratch``: scripts that compare
    models take either."""
    path = Path(path)
    if not path.is_dir():
        return path
    return export_checkpoint(path, Path(scratch) / f"{path.name}.keras")


def _network(cfg: TrainConfig):
    """A new network of ``cfg``'s widths, bands and slots, in ``cfg.precision``."""
    if cfg.precision != "float32":
        return with_precision(None, cfg)
    return build_pais_model(n_bands=cfg.n_bands, n_slots=cfg.n_slots,
                            filters=tuple(cfg.filters), dropout=cfg.dropout)


def _float32_copy(model, cfg: TrainConfig, into=None):
    """``model`` itself if it computes in float32, else its weights in a float32 network
    (``into``, when one was built before); runs and fine-tuning read float32 models."""
    if cfg.precision == "float32":
        return model
    into = into if into is not None else _network(
        TrainConfig(**{**asdict(cfg), "precision": "float32"}))
    into.set_weights(model.get_weights())
    return into


class _Checkpoints:
    """The step counter, the TensorFlow checkpoints (model, optimizer, step) and the data
    RNG's state, restored from the last checkpoint of ``out`` if there is one; each save
    also exports the model as float32 ``model.keras``."""

    def __init__(self, out: Path, model, optimizer, rng: np.random.Generator,
                 cfg: TrainConfig):
        import tensorflow as tf

        self.out, self.model, self.rng, self.cfg = out, model, rng, cfg
        self._float32 = None
        self.variable = tf.Variable(0, dtype=tf.int64)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                              step=self.variable)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(out / "ckpt"),
                                                  max_to_keep=3)
        self.rng_path = out / "rng_state.json"
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint)
            print(f"resumed from {self.manager.latest_checkpoint} at step {self.step}")
            if self.rng_path.exists():
                rng.bit_generator.state = json.loads(self.rng_path.read_text())

    @property
    def step(self) -> int:
        return int(self.variable.numpy())

    def advance(self) -> int:
        self.variable.assign_add(1)
        return self.step

    def save(self) -> None:
        self.manager.save(checkpoint_number=self.step)
        self.rng_path.write_text(json.dumps(self.rng.bit_generator.state))
        export = _float32_copy(self.model, self.cfg, self._float32)
        self._float32 = export  # built once, its weights refreshed at every save
        tmp = self.out / "model.tmp.keras"
        export.save(tmp)
        tmp.replace(self.out / "model.keras")


class _TrainingLog:
    """``log.csv`` (one row per logged step and split) and TensorBoard scalars."""

    def __init__(self, out: Path):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(out / "tensorboard"))
        path = out / "log.csv"
        # a resumed run keeps its log's columns (one written before a term was added has
        # fewer); a new log has every term's
        header = path.read_text().splitlines()[:1] if path.exists() else []
        self.terms = ([t for t in header[0].split(",") if t in LOGGED_TERMS] if header
                      else list(LOGGED_TERMS))
        self.file = open(path, "a", newline="")  # noqa: SIM115 - closed by close()
        self.csv = csv.writer(self.file)
        if not header:
            self.csv.writerow(["step", "wall_s", "split", *self.terms, "lr"])

    def write(self, step: int, seconds: float, split: str, terms: dict,
              lr: float | None = None) -> None:
        import tensorflow as tf

        values = {k: float(v) for k, v in terms.items()}
        self.csv.writerow([step, round(seconds, 1), split,
                           *[f"{values.get(k, 0.0):.6g}" for k in self.terms],
                           "" if lr is None else lr])
        self.file.flush()
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(f"{split}/{k}", v)
            if lr is not None:
                tf.summary.scalar("lr", lr)

    def close(self) -> None:
        self.file.close()


def _as_tensors(batch):
    import tensorflow as tf

    x, labels = batch
    return tf.constant(x), {k: tf.constant(v) for k, v in labels.items()}


def validation_batches(val: dict | None, cfg: TrainConfig, n_batches: int = 8) -> list:
    """A fixed set of ``n_batches`` batches of validation crops, the same at every evaluation
    (none without ``val``)."""
    if val is None:
        return []
    val_cfg = TrainConfig(**{**asdict(cfg), "batch": 16, "blend_oversampling": 0.0,
                             "rotate_probability": 0.0, "mask_probability": 0.0})
    stream = training_batches(val, val_cfg, np.random.default_rng(12345))
    return [_as_tensors(next(stream)) for _ in range(n_batches)]


def _evaluate(eval_step, batches: list) -> dict[str, float]:
    """Each loss term's mean over the validation batches."""
    sums: dict[str, float] = {}
    for x, labels in batches:
        for k, v in eval_step(x, labels).items():
            sums[k] = sums.get(k, 0.0) + float(v) / len(batches)
    return sums
