"""The PAIS network (Hausen & Robertson 2021, §3.2) in Keras 3, layered like keras-hub.

layers (``ResDown``, ``FastAttention``, ``FuseUp``, ``AsinhStretch``) → backbone
(:func:`build_pais_model`) → task (:class:`PAISPredictor`: normalisation, batching, output
reshaping). Every layer returns all constructor arguments from ``get_config`` so that a saved
``.keras`` file reloads with ``safe_mode=True`` and no pickled Python.

Inputs and outputs of the Keras model (``h`` and ``w`` any multiple of 32):

* input ``(batch, h, w, b + 1)``: the ``b`` bands divided by their noise sigma (signal-to-noise
  units), then a validity channel (1 inside the mosaic and finite, 0 elsewhere; invalid pixels
  of the bands are set to 0 by the caller).
* ``center`` ``(batch, h, w, 1)``: C^c, sigmoid.
* ``vectors`` ``(batch, h, w, 2n)``: C^v, channel ``2k + c`` is slot ``k``, component ``c``
  (0 = dy, 1 = dx), in pixels.
* ``fraction_logits`` ``(batch, h, w, b·n)``: channel ``band·n + k``; softmax over the ``n``
  slots of a band gives C^m.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mosaic_pais.nn import layers as pais_layers

__all__ = [
    "DEFAULT_MODEL_PATH",
    "PAPER_FILTERS",
    "build_pais_model",
    "encoder_graph",
    "pais_graph",
    "n_levels_of",
    "with_attention_contexts",
    "attention_encoder",
    "PRECISIONS",
    "cpu_has_bfloat16",
    "resolve_precision",
    "FLOAT32_LAYERS",
    "inference_network",
    "load_model",
    "shipped_models",
    "model_for_bands",
    "file_sha256",
    "model_metadata",
    "detection_threshold",
    "peak_finding",
    "input_alignment",
    "describe_thresholds",
    "PCRPrediction",
    "split_outputs",
    "model_input",
    "PAISPredictor",
]

DEFAULT_MODEL_PATH = Path(__file__).parents[1] / "models" / "pais_f160w.keras"
PAPER_FILTERS = (16, 32, 64, 64, 128)


def build_pais_model(n_bands: int = 1, n_slots: int = 3,
                     filters: tuple[int, ...] = PAPER_FILTERS, dropout: float = 0.1,
                     stretch: float = 3.0, vector_scale: float = 16.0, name: str = "pais"):
    """Build the two-decoder PAIS network.

    Parameters
    ----------
    n_bands : int
        Bands of the input image (the validity channel is added on top).
    n_slots : int
        The PCR's n.
    filters : tuple of int
        Encoder widths, one ResDown per entry, each halving resolution. The paper used
        (16, 32, 64, 64, 128), about 2.6 M parameters; the decoders mirror them.
    dropout : float
    stretch : float
        Scale (in noise sigmas) of the asinh input stretch.
    vector_scale : float
        The vector head's output is multiplied by this (px): claim vectors reach ~100 px, and
        a unit-scale linear head would need many thousands of Adam steps just to grow its
        weights that large.

    Returns
    -------
    keras.Model with outputs ``center``, ``vectors``, ``fraction_logits``.
    """
    from keras import layers

    L = {name: getattr(pais_layers, name) for name in pais_layers.__all__}
    n_levels = len(filters)
    up_filters = list(reversed(filters))  # e.g. 128, 64, 64, 32, 16
    widths = [filters[0], *filters]  # of the skips: the stem, then each ResDown
    # every layer by name, built on first use
    makers = {
        "stretch": lambda: L["AsinhStretch"](scale=stretch, n_bands=n_bands, name="stretch"),
        # full-resolution features keep sub-pixel detail for the last decoder level
        "stem": lambda: layers.Conv2D(filters[0], 3, padding="same", activation="relu",
                                      name="stem"),
        **{f"down{i}": (lambda i=i: L["ResDown"](filters[i], dropout=dropout, name=f"down{i}"))
           for i in range(n_levels)},
        **{f"attention{i}": (lambda i=i: L["FastAttention"](widths[i], name=f"attention{i}"))
           for i in range(n_levels + 1)},
        **{f"spatial_up{i}": (lambda i=i: L["FuseUp"](up_filters[i], name=f"spatial_up{i}"))
           for i in range(n_levels)},
        "center": lambda: layers.Conv2D(1, 1, activation="sigmoid", name="center"),
        "vectors_conv": lambda: layers.Conv2D(up_filters[-1], 3, padding="same",
                                              activation="relu", name="vectors_conv"),
        "vectors_head": lambda: layers.Conv2D(2 * n_slots, 1, name="vectors_head"),
        "vectors": lambda: layers.Rescaling(vector_scale, name="vectors"),
        **{f"stop_gradient{i}": (lambda i=i: L["StopGradient"](name=f"stop_gradient{i}"))
           for i in range(n_levels)},
        **{f"attribution_cat{i}": (lambda i=i: layers.Concatenate(name=f"attribution_cat{i}"))
           for i in range(n_levels)},
        **{f"attribution_up{i}": (lambda i=i: L["FuseUp"](up_filters[i],
                                                          name=f"attribution_up{i}"))
           for i in range(n_levels)},
        "fraction_logits": lambda: layers.Conv2D(n_bands * n_slots, 1, name="fraction_logits"),
    }
    inputs = keras.Input(shape=(None, None, n_bands + 1), name="image")
    model = keras.Model(inputs, pais_graph(inputs, lambda name: makers[name](), n_levels),
                        name=name)
    model.pais_config = {"n_bands": n_bands, "n_slots": n_slots, "filters": list(filters)}
    return model


def encoder_graph(inputs, layer, n_levels: int) -> list:
    """The shared encoder on ``inputs``: the skips (the stem, then every ResDown's output) that
    the attention layers read. ``layer(name)`` gives the layer of that name."""
    x = layer("stretch")(inputs)
    x = layer("stem")(x)
    skips = [x]
    for i in range(n_levels):
        x = layer(f"down{i}")(x)
        skips.append(x)
    return skips


def pais_graph(inputs, layer, n_levels: int, contexts: list | None = None) -> dict:
    """Wire the network on ``inputs`` from ``layer(name)`` (new layers when building, a loaded
    model's own when rewiring it, :func:`with_attention_contexts`).

    ``contexts``, one per attention layer, replace each input's own attention context.
    """
    skips = encoder_graph(inputs, layer, n_levels)
    attended = [layer(f"attention{i}")(s) if contexts is None
                else layer(f"attention{i}")(s, context=contexts[i]) for i, s in enumerate(skips)]

    # spatial decoder: bottleneck back up to full resolution
    y = attended[-1]
    spatial_levels = []
    for i in range(n_levels):
        y = layer(f"spatial_up{i}")(y, attended[-2 - i])
        spatial_levels.append(y)
    center = layer("center")(y)
    vectors = layer("vectors")(layer("vectors_head")(layer("vectors_conv")(y)))

    # attribution decoder: its own chain, fed the spatial features without back-propagation
    z = attended[-1]
    for i in range(n_levels):
        guide = layer(f"stop_gradient{i}")(spatial_levels[i])
        skip = layer(f"attribution_cat{i}")([guide, attended[-2 - i]])
        z = layer(f"attribution_up{i}")(z, skip)
    logits = layer("fraction_logits")(z)
    return {"center": center, "vectors": vectors, "fraction_logits": logits}


def n_levels_of(model) -> int:
    """How many ResDown levels a PAIS model has."""
    return sum(1 for lyr in model.layers if lyr.name.startswith("down"))


def with_attention_contexts(model):
    """The same network with its attention contexts as inputs: ``[image, context0, …]``,
    context ``i`` of shape (batch, key_filters, filters) of layer ``attention{i}``.

    The layers (and weights) are the model's own; only the wiring is new.
    """

    n_levels = n_levels_of(model)
    attention = [model.get_layer(f"attention{i}") for i in range(n_levels + 1)]
    image = keras.Input(shape=model.inputs[0].shape[1:], name="image")
    contexts = [keras.Input(shape=(a.key_filters, a.filters), name=f"context{i}")
                for i, a in enumerate(attention)]
    outputs = pais_graph(image, model.get_layer, n_levels, contexts)
    return keras.Model([image, *contexts], outputs, name=f"{model.name}_with_contexts")


def attention_encoder(model):
    """A function: network input → every attention layer's context (batch, key_filters,
    filters), for :meth:`PAISPredictor.attention_contexts`."""

    n_levels = n_levels_of(model)
    image = keras.Input(shape=model.inputs[0].shape[1:], name="image")
    encoder = keras.Model(image, encoder_graph(image, model.get_layer, n_levels))
    attention = [model.get_layer(f"attention{i}") for i in range(n_levels + 1)]

    def contexts(x):
        return [a.context(s, training=False)
                for a, s in zip(attention, encoder(x, training=False), strict=True)]

    return contexts


#: inference precisions: "auto" is bfloat16 on a CPU with bfloat16 instructions, else float32
PRECISIONS = ("auto", "float32", "bfloat16")
#: layers kept in float32 at any precision: the 1×1 heads, a sliver of the cost, whose rounding
#: would otherwise reach the outputs directly
FLOAT32_LAYERS = ("vectors_conv", "vectors_head", "vectors", "center", "fraction_logits")


def cpu_has_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX).

    Without them TensorFlow emulates bfloat16 and it is slower than float32.
    """
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, on_gpu: bool = False) -> str:
    """``"float32"`` or ``"bfloat16"`` for a requested precision (one of :data:`PRECISIONS`).

    >>> resolve_precision("float32")
    'float32'
    >>> resolve_precision("auto", on_gpu=True)  # GPUs keep the precision the model was made in
    'float32'
    """
    if precision not in PRECISIONS:
        from mosaic_pais.errors import BadInputError

        raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)} "
                            f"(got {precision!r})")
    if precision == "auto":
        return "bfloat16" if not on_gpu and cpu_has_bfloat16() else "float32"
    return precision


def inference_network(model, precision: str = "float32"):
    """The network as a run computes it: the same function, cheaper.

    * Every batch norm is folded into the convolution before it
      (:class:`~mosaic_pais.nn.layers.FoldsBatchNorm`): at inference a norm is a fixed scale
      and offset per channel, which the convolution's kernel and bias absorb; what changes is
      float rounding only.
    * With ``precision="bfloat16"`` every layer but :data:`FLOAT32_LAYERS` computes in
      bfloat16 with float32 weights (Keras' ``mixed_bfloat16``).

    The layers are cloned (folded, under the policy) and take the model's weights: nothing is
    retrained and the saved file is unchanged. For training, keep the model itself.
    """
    from mosaic_pais.nn.layers import FoldsBatchNorm

    def clone(layer):
        config = layer.get_config()
        config.pop("dtype", None)  # the global policy decides, sub-layers included
        if isinstance(layer, FoldsBatchNorm):
            config["folded"] = True
        if layer.name in FLOAT32_LAYERS:
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        network = keras.models.clone_model(model, clone_function=clone)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for layer in network.layers:
        source = model.get_layer(layer.name)
        if isinstance(layer, FoldsBatchNorm):
            layer.fold_from(source)
        else:
            layer.set_weights(source.get_weights())
    return network


def load_model(path: str | Path | None = None):
    """Load a ``.keras`` PAIS model with ``safe_mode=True`` (no arbitrary code)."""
    from mosaic_pais.errors import BadInputError

    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if path.suffix != ".keras":
        raise BadInputError(f"model {path}: only the native .keras format is accepted")
    if not path.is_file():
        raise BadInputError(f"model {path}: no such file")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise BadInputError(f"model {path}: cannot be loaded ({type(exc).__name__})") from exc


def shipped_models() -> dict[tuple[str, ...], Path]:
    """The models shipped in the package, by the bands their cards name (in their order)."""
    models = {}
    for card in sorted(DEFAULT_MODEL_PATH.parent.glob("*.json")):
        path = card.with_suffix(".keras")
        if path.is_file():
            models[tuple(json.loads(card.read_text()).get("bands", ["F160W"]))] = path
    return models


def model_for_bands(bands=None) -> Path:
    """The shipped model that takes ``bands`` (in any order); the F160W model for None, and
    for one band of another name (a single-band image is deblended as F160W is, the use
    docs/adapting.md describes).

    Refused in one line (:class:`~mosaic_pais.errors.BadInputError`) when no shipped model
    takes several bands given, saying how to train one.

    >>> model_for_bands(["F160W"]).name, model_for_bands(["R"]).name
    ('pais_f160w.keras', 'pais_f160w.keras')
    """
    if bands is None:
        return DEFAULT_MODEL_PATH
    models = shipped_models()
    for names, path in models.items():
        if sorted(names) == sorted(str(b) for b in bands):
            return path
    if len(bands) == 1:
        return DEFAULT_MODEL_PATH
    from mosaic_pais.errors import BadInputError

    shipped = "; ".join(", ".join(names) for names in models)
    raise BadInputError(
        f"no shipped model takes the bands {', '.join(map(str, bands))} (shipped: {shipped}); "
        "train one with mosaic-pais train on scenes in those bands (a configuration with "
        "\"bands\", docs/adapting.md) and give it with --model")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, for provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_metadata(path: str | Path | None = None) -> dict[str, Any]:
    """The JSON card shipped beside a model (bands, n, noise normalisation, training summary)."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    card = path.with_suffix(".json")
    meta = json.loads(card.read_text()) if card.is_file() else {}
    meta.setdefault("bands", ["F160W"])
    meta.setdefault("n_slots", 3)
    return meta


def detection_threshold(meta: dict, noise_texture: float | None = None) -> float:
    """The card's centre-map peak threshold for an image of this noise texture.

    The card's ``threshold_by_texture`` (tuned on validation tiles, benchmarks/accuracy.py
    ``--tune``) gives thresholds at a few noise textures
    (:func:`mosaic_pais.runtime.infer.estimate_noise`), interpolated between them and held
    beyond them; without a table or a texture, the card's single ``threshold``.

    >>> card = {"threshold": 0.7,
    ...         "threshold_by_texture": {"texture": [1.0, 2.0], "threshold": [0.6, 0.8]}}
    >>> detection_threshold(card, 1.5), detection_threshold(card, 3.0), detection_threshold(card)
    (0.7, 0.8, 0.7)
    """
    table = meta.get("threshold_by_texture")
    if not table or noise_texture is None or not np.isfinite(noise_texture):
        return float(meta.get("threshold", 0.3))
    return round(float(np.interp(noise_texture, table["texture"], table["threshold"])), 4)


def peak_finding(meta: dict, window: int | None = None) -> dict:
    """The card's peak-finding settings, as keywords of :func:`mosaic_pais.pcr.find_peaks`.

    ``window`` (the maximum filter's box) overrides the card's; ``smoothing`` is the width of
    the centre map's matched filter (the card's ``peak_smoothing_px``; 0, the bare map, for
    cards written before it), for peaks of the card's ``center_sigma_px``.

    >>> peak_finding({"window": 5, "peak_smoothing_px": 2.0, "center_sigma_px": 2.0})
    {'window': 5, 'smoothing': 2.0, 'center_sigma': 2.0}
    >>> peak_finding({}, window=7)
    {'window': 7, 'smoothing': 0.0, 'center_sigma': 2.0}
    """
    return {"window": int(window if window is not None else meta.get("window", 5)),
            "smoothing": float(meta.get("peak_smoothing_px", 0.0)),
            "center_sigma": float(meta.get("center_sigma_px", 2.0))}


def input_alignment(meta: dict) -> int:
    """The network's lattice (px): its total downsampling, ``2 ** len(filters)``.

    Inputs must be multiples of it, and tiles that start on it see every pixel at the same
    phase of the stride-2 levels (:mod:`mosaic_pais.runtime.tile`). Cards without ``filters`` are
    the paper's five levels.

    >>> input_alignment({"filters": [12, 24, 48, 48, 96]}), input_alignment({})
    (32, 32)
    """
    return 2 ** len(meta.get("filters", PAPER_FILTERS))


def describe_thresholds(meta: dict) -> str:
    """The card's peak thresholds in words: by noise texture when it has a table.

    >>> describe_thresholds({"threshold": 0.7,
    ...     "threshold_by_texture": {"texture": [1.0, 2.0], "threshold": [0.6, 0.8]}})
    'by the noise texture (1 = white): 0.6 at 1.0, 0.8 at 2.0, interpolated (0.7 for all alike)'
    """
    table = meta.get("threshold_by_texture")
    if not table:
        return str(meta["threshold"])
    pairs = ", ".join(f"{t} at {x}" for t, x in zip(table["threshold"], table["texture"],
                                                     strict=True))
    return (f"by the noise texture (1 = white): {pairs}, interpolated "
            f"({meta['threshold']} for all alike)")


@dataclass
class PCRPrediction:
    """Model output for a batch, in the package's PCR conventions."""

    center: np.ndarray     # (B, h, w)
    vectors: np.ndarray    # (B, h, w, n, 2)
    fractions: np.ndarray  # (B, h, w, b, n), softmax over n


def split_outputs(outputs: dict, n_bands: int, n_slots: int) -> PCRPrediction:
    """Reshape the network's flat channels into C^c, C^v and C^m (softmax over slots).

    Works on numpy arrays and on tensors inside a ``tf.function`` (the predictor runs it in
    the graph, where the softmax costs a fraction of numpy's); fields are of the input's kind.
    """
    from keras import ops

    center = outputs["center"][..., 0]
    shape = ops.shape(center)
    vectors = ops.reshape(outputs["vectors"], (*shape, n_slots, 2))
    logits = ops.reshape(outputs["fraction_logits"], (*shape, n_bands, n_slots))
    fractions = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    if isinstance(outputs["center"], np.ndarray):
        return PCRPrediction(center=np.asarray(center), vectors=np.asarray(vectors),
                             fractions=np.asarray(fractions))
    return PCRPrediction(center=center, vectors=vectors, fractions=fractions)


def model_input(images: np.ndarray, noise_sigma, valid: np.ndarray | None = None) -> np.ndarray:
    """Network input from images (B, b, h, w) in flux units and per-band noise sigmas.

    Non-finite and invalid pixels become 0 and are marked in the validity channel.
    """
    images = np.asarray(images, dtype=np.float32)
    sigma = np.asarray(noise_sigma, dtype=np.float32).reshape(1, -1, 1, 1)
    finite = np.all(np.isfinite(images), axis=1)
    if valid is not None:
        finite &= valid
    snr = np.where(finite[:, None], images / sigma, 0.0)
    x = np.concatenate([snr, finite[:, None].astype(np.float32)], axis=1)
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


class PAISPredictor:
    """A loaded model plus the conventions around it: configure once, call per batch of tiles.

    Parameters
    ----------
    model : keras.Model or path or None
        The network; ``None`` loads the model shipped with the package.
    batch_size : int
    precision : {"float32", "bfloat16", "auto"}
        What the network computes in (:func:`inference_network`, :func:`resolve_precision`);
        :attr:`precision` holds the one used.
    """

    def __init__(self, model=None, batch_size: int = 16, precision: str = "float32"):
        if model is None or isinstance(model, str | Path):
            self.path = Path(model) if model is not None else DEFAULT_MODEL_PATH
            model = load_model(self.path)
        else:
            self.path = None
        self.precision = resolve_precision(precision, on_gpu=precision == "auto" and _gpu_visible())
        self.model = inference_network(model, self.precision)
        self.batch_size = int(batch_size)
        in_channels = model.inputs[0].shape[-1]
        self.n_bands = int(in_channels) - 1
        self.n_slots = self._output_channels("vectors") // 2
        self._predict: dict = {}  # one compiled function per set of outputs wanted
        self._contexts = None  # the compiled context encoder, made on first use
        self._with_contexts = None  # the network rewired to take contexts, made on first use

    def _output_channels(self, name: str) -> int:
        out = self.model.output
        return int(out[name].shape[-1])

    def __call__(self, images: np.ndarray, noise_sigma, valid: np.ndarray | None = None,
                 outputs: tuple[str, ...] = ("center", "vectors", "fractions"),
                 contexts: list[np.ndarray] | None = None) -> PCRPrediction:
        """Predict the PCR of tiles ``images`` (B, b, h, w); h and w multiples of 32.

        ``outputs`` names the parts wanted; the others are None in the result and never leave
        the graph (a run resolving votes geometrically has no use for C^v). ``contexts`` (from
        :meth:`attention_contexts`) replace every tile's own attention contexts.
        """
        self._check_bands(images)
        return self.predict_input(model_input(images, noise_sigma, valid), outputs, contexts)

    def predict_input(self, x: np.ndarray,
                      outputs: tuple[str, ...] = ("center", "vectors", "fractions"),
                      contexts: list[np.ndarray] | None = None) -> PCRPrediction:
        """What :meth:`__call__` predicts, from network inputs ``x`` (B, h, w, b + 1) already
        made by :func:`model_input` (so tiles of different noise can share a batch)."""
        outputs = tuple(outputs)
        key = (outputs, contexts is not None)
        if key not in self._predict:
            import tensorflow as tf

            if contexts is not None and self._with_contexts is None:
                self._with_contexts = with_attention_contexts(self.model)
            network = self.model if contexts is None else self._with_contexts

            def forward(t, *given):
                if given:  # one context for the whole batch
                    batch = tf.shape(t)[0]
                    given = [tf.broadcast_to(c, tf.concat([[batch], tf.shape(c)], 0))
                             for c in given]
                    raw = network([t, *given], training=False)
                else:
                    raw = network(t, training=False)
                pred = split_outputs(raw, self.n_bands, self.n_slots)
                return {name: getattr(pred, name) for name in outputs}

            self._predict[key] = tf.function(forward, reduce_retracing=True)
        predict = self._predict[key]
        given = [np.asarray(c, np.float32) for c in contexts] if contexts is not None else []
        outs: dict[str, np.ndarray | None] = {"center": None, "vectors": None, "fractions": None}
        for start in range(0, len(x), self.batch_size):
            res = predict(x[start:start + self.batch_size], *given)
            for name, value in res.items():
                value = np.asarray(value)
                if outs[name] is None:  # filled batch by batch: no second copy to concatenate
                    outs[name] = np.empty((len(x), *value.shape[1:]), value.dtype)
                outs[name][start:start + len(value)] = value
        return PCRPrediction(**outs)

    def attention_contexts(self, images: np.ndarray, noise_sigma,
                           valid: np.ndarray | None = None) -> list[np.ndarray]:
        """Every attention layer's context averaged over windows ``images`` (B, b, h, w).

        FANet attention lets every pixel read one summary of its whole input, ``Kᵀ V / N``.
        Averaged over windows spread across a mosaic, it is the summary the network would read
        if it saw the mosaic at once; given to every tile (``contexts`` of :meth:`__call__`),
        a tile's prediction no longer depends on which pixels share its window, so moving the
        tile grid hardly moves it (docs/architecture.md).
        """
        self._check_bands(images)
        x = model_input(images, noise_sigma, valid)
        if self._contexts is None:
            import tensorflow as tf

            self._contexts = tf.function(attention_encoder(self.model), reduce_retracing=True)
        sums = None
        for start in range(0, len(x), self.batch_size):
            part = [np.asarray(c, np.float64).sum(0)
                    for c in self._contexts(x[start:start + self.batch_size])]
            sums = part if sums is None else [a + b for a, b in zip(sums, part, strict=True)]
        return [(c / len(x)).astype(np.float32) for c in sums]

    def _check_bands(self, images: np.ndarray) -> None:
        if images.shape[1] != self.n_bands:
            from mosaic_pais.errors import BadInputError

            raise BadInputError(
                f"the model expects {self.n_bands} band(s), the image has {images.shape[1]}")
