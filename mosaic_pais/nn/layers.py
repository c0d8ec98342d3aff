"""The custom Keras layers of the PAIS network, registered for safe (de)serialisation.

``AsinhStretch`` (input stretch), ``ResDown`` (encoder block), ``FastAttention`` (FANet's
linear attention), ``FuseUp`` (decoder block) and ``StopGradient`` (keeps the attribution
decoder from training the spatial one). Each returns every constructor argument from
``get_config``, so a saved ``.keras`` file reloads with ``safe_mode=True`` and no pickled
Python. They are registered under the package name ``mosaic_pais``, which saved models record:
the names stay whatever module holds them.

The blocks with batch normalisation can be built ``folded``, for inference: each convolution
followed by a batch norm becomes one convolution with a bias that does what the pair did with
the norm's moving statistics (:meth:`FoldsBatchNorm.fold_from` takes a trained block's
weights), so a run never makes the extra passes over every feature map that the norms cost.
"""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["AsinhStretch", "FastAttention", "FoldsBatchNorm", "FuseUp", "ResDown",
           "StopGradient"]

register = keras.saving.register_keras_serializable(package="mosaic_pais")


class FoldsBatchNorm:
    """A block whose (convolution, batch norm) pairs :attr:`PAIRS` a folded copy computes as
    one convolution with a bias; its other weighted sub-layers are :attr:`OTHERS`."""

    PAIRS: tuple[tuple[str, str], ...] = ()
    OTHERS: tuple[str, ...] = ()

    def _norm(self, bn_name: str, y, training=None):
        """``y`` through batch norm ``bn_name``; unchanged in a folded block (the
        convolution before it already did the norm's work)."""
        bn = getattr(self, bn_name)
        return y if bn is None else bn(y, training=training)

    def fold_from(self, source) -> None:
        """Take the weights of ``source``, the same block unfolded and built, each norm's
        inference-time scale and offset merged into the convolution before it."""
        from keras import ops

        for conv_name, bn_name in self.PAIRS:
            conv, bn = getattr(source, conv_name), getattr(source, bn_name)
            scale = bn.gamma / ops.sqrt(bn.moving_variance + bn.epsilon)
            getattr(self, conv_name).kernel.assign(conv.kernel * scale)  # per output channel
            getattr(self, conv_name).bias.assign(bn.beta - bn.moving_mean * scale)
        for name in self.OTHERS:
            getattr(self, name).set_weights(getattr(source, name).get_weights())


@register
class AsinhStretch(layers.Layer):
    """``asinh(x / scale)`` on the band channels; the validity channel passes through.

    Inputs are in units of the noise sigma, so the stretch is linear below ``scale``·σ and
    logarithmic above: faint and bright sources share the network's dynamic range.
    """

    def __init__(self, scale: float = 3.0, n_bands: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.n_bands = int(n_bands)

    def call(self, x):
        bands = ops.arcsinh(x[..., : self.n_bands] / self.scale)
        return ops.concatenate([bands, x[..., self.n_bands:]], axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "n_bands": self.n_bands}

def _batch_norm(folded: bool):
    return None if folded else layers.BatchNormalization()


def _build_all(sublayers, shape) -> None:
    for layer in sublayers:
        if layer is not None:
            layer.build(shape)


@register
class ResDown(FoldsBatchNorm, layers.Layer):
    """Residual block halving resolution, then an identity residual block."""

    PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"), ("conv4", "bn4"))
    OTHERS = ("short",)

    def __init__(self, filters: int, dropout: float = 0.1, folded: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.dropout = float(dropout)
        self.folded = bool(folded)
        f, bias = self.filters, self.folded
        self.conv1 = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=bias)
        self.bn1 = _batch_norm(bias)
        self.drop = layers.Dropout(self.dropout)
        self.conv2 = layers.Conv2D(f, 3, padding="same", use_bias=bias)
        self.bn2 = _batch_norm(bias)
        self.short = layers.Conv2D(f, 3, strides=2, padding="same")
        self.conv3 = layers.Conv2D(f, 3, padding="same", use_bias=bias)
        self.bn3 = _batch_norm(bias)
        self.conv4 = layers.Conv2D(f, 3, padding="same", use_bias=bias)
        self.bn4 = _batch_norm(bias)

    def build(self, input_shape):
        inner = (*input_shape[:-1], self.filters)
        self.conv1.build(input_shape)
        self.short.build(input_shape)
        _build_all((self.bn1, self.conv2, self.bn2, self.conv3, self.bn3, self.conv4,
                    self.bn4), inner)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.drop(self._norm("bn1", self.conv1(x), training), training=training))
        y = self._norm("bn2", self.conv2(y), training)
        x = ops.relu(y + self.short(x))
        y = ops.relu(self._norm("bn3", self.conv3(x), training))
        y = self._norm("bn4", self.conv4(y), training)
        return ops.relu(x + y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout,
                "folded": self.folded}

@register
class FastAttention(FoldsBatchNorm, layers.Layer):
    """FANet fast attention: ``Q (Kᵀ V) / N`` without softmax, linear in the pixel count.

    Q and K are L2-normalised 1×1 projections, V = ReLU(BN(1×1 conv)). Works at any input
    size because N is read from the input, not fixed at build time.
    """

    PAIRS = (("v", "v_bn"), ("out_conv", "out_bn"))
    OTHERS = ("q", "k")

    def __init__(self, filters: int, key_filters: int | None = None, folded: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.key_filters = int(key_filters or max(self.filters // 2, 4))
        self.folded = bool(folded)
        self.q = layers.Conv2D(self.key_filters, 1)
        self.k = layers.Conv2D(self.key_filters, 1)
        self.v = layers.Conv2D(self.filters, 1, use_bias=self.folded)
        self.v_bn = _batch_norm(self.folded)
        self.out_conv = layers.Conv2D(self.filters, 3, padding="same", use_bias=self.folded)
        self.out_bn = _batch_norm(self.folded)

    def build(self, input_shape):
        inner = (*input_shape[:-1], self.filters)
        _build_all((self.q, self.k, self.v), input_shape)
        _build_all((self.v_bn, self.out_conv, self.out_bn), inner)
        self.built = True

    def context(self, x, training=None):
        """``Kᵀ V / N`` of each input: (batch, key_filters, filters), the mean over pixels
        of what every query reads."""
        shape = ops.shape(x)
        batch, n = shape[0], shape[1] * shape[2]
        k = ops.reshape(self.k(x), (batch, n, self.key_filters))
        k = k / (ops.sqrt(ops.sum(k * k, axis=-1, keepdims=True)) + 1e-6)
        v = ops.relu(self._norm("v_bn", self.v(x), training))
        v = ops.reshape(v, (batch, n, self.filters))
        return ops.matmul(ops.transpose(k, (0, 2, 1)), v) / ops.cast(n, x.dtype)

    def call(self, x, training=None, context=None):
        """``context`` (batch, key_filters, filters) replaces the input's own: a mosaic's
        mean context makes a tile's output independent of where the tile lies."""
        shape = ops.shape(x)
        batch, h, w = shape[0], shape[1], shape[2]
        n = h * w
        q = ops.reshape(self.q(x), (batch, n, self.key_filters))
        q = q / (ops.sqrt(ops.sum(q * q, axis=-1, keepdims=True)) + 1e-6)
        if context is None:
            context = self.context(x, training)
        y = ops.matmul(q, context)  # (batch, N, f): O(N)
        y = ops.reshape(y, (batch, h, w, self.filters))
        y = ops.relu(self._norm("out_bn", self.out_conv(y), training))
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "key_filters": self.key_filters, "folded": self.folded}

@register
class FuseUp(FoldsBatchNorm, layers.Layer):
    """Nearest ×2 upsampling, add the (projected) skip, conv3×3 → BN → ReLU."""

    PAIRS = (("conv", "bn"),)
    OTHERS = ("proj_x", "proj_skip")

    def __init__(self, filters: int, folded: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.folded = bool(folded)
        self.proj_x = layers.Conv2D(self.filters, 1)
        self.proj_skip = layers.Conv2D(self.filters, 1)
        self.conv = layers.Conv2D(self.filters, 3, padding="same", use_bias=self.folded)
        self.bn = _batch_norm(self.folded)

    def build(self, x_shape, skip_shape):
        self.proj_x.build(x_shape)
        self.proj_skip.build(skip_shape)
        inner = (*skip_shape[:-1], self.filters)
        _build_all((self.conv, self.bn), inner)
        self.built = True

    def call(self, x, skip, training=None):
        # proj_x(up(x)) computed as up(proj_x(x)): a 1×1 convolution commutes with nearest
        # upsampling (the same sums, bit for bit) and costs a quarter at the lower resolution;
        # the upsampling itself is a broadcast in the addition, never a 4× copy of the map
        low = self.proj_x(x)
        y = self.proj_skip(skip)
        shape = ops.shape(y)
        batch, h, w, c = shape[0], shape[1], shape[2], shape[3]
        y = ops.reshape(y, (batch, h // 2, 2, w // 2, 2, c)) + low[:, :, None, :, None, :]
        y = ops.reshape(y, (batch, h, w, c))
        return ops.relu(self._norm("bn", self.conv(y), training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "folded": self.folded}

@register
class StopGradient(layers.Layer):
    """The attribution decoder reads the spatial decoder's features without training them."""

    def call(self, x):
        return ops.stop_gradient(x)
