"""The custom Keras layers of the PAIS network, registered for safe (de)serialisation.

``AsinhStretch`` (input stretch), ``ResDown`` (encoder block), ``FastAttention`` (FANet's
linear attention), ``FuseUp`` (decoder block) and ``StopGradient`` (keeps the attribution
decoder from training the spatial one). Each returns every constructor argument from
``get_config``, so a saved ``.keras`` file reloads with ``safe_mode=True`` and no pickled
Python. They are registered under the package name ``mosaic_pais``, which saved models record:
the names stay whatever module holds them.
"""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["AsinhStretch", "FastAttention", "FuseUp", "ResDown", "StopGradient"]

register = keras.saving.register_keras_serializable(package="mosaic_pais")


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

@register
class ResDown(layers.Layer):
    """Residual block halving resolution, then an identity residual block."""

    def __init__(self, filters: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.dropout = float(dropout)
        f = self.filters
        self.conv1 = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False)
        self.bn1 = layers.BatchNormalization()
        self.drop = layers.Dropout(self.dropout)
        self.conv2 = layers.Conv2D(f, 3, padding="same", use_bias=False)
        self.bn2 = layers.BatchNormalization()
        self.short = layers.Conv2D(f, 3, strides=2, padding="same")
        self.conv3 = layers.Conv2D(f, 3, padding="same", use_bias=False)
        self.bn3 = layers.BatchNormalization()
        self.conv4 = layers.Conv2D(f, 3, padding="same", use_bias=False)
        self.bn4 = layers.BatchNormalization()

    def build(self, input_shape):
        inner = (*input_shape[:-1], self.filters)
        self.conv1.build(input_shape)
        self.short.build(input_shape)
        for layer in (self.bn1, self.conv2, self.bn2, self.conv3, self.bn3, self.conv4,
                      self.bn4):
            layer.build(inner)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.drop(self.bn1(self.conv1(x), training=training), training=training))
        y = self.bn2(self.conv2(y), training=training)
        x = ops.relu(y + self.short(x))
        y = ops.relu(self.bn3(self.conv3(x), training=training))
        y = self.bn4(self.conv4(y), training=training)
        return ops.relu(x + y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dropout": self.dropout}

@register
class FastAttention(layers.Layer):
    """FANet fast attention: ``Q (Kᵀ V) / N`` without softmax, linear in the pixel count.

    Q and K are L2-normalised 1×1 projections, V = ReLU(BN(1×1 conv)). Works at any input
    size because N is read from the input, not fixed at build time.
    """

    def __init__(self, filters: int, key_filters: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.key_filters = int(key_filters or max(self.filters // 2, 4))
        self.q = layers.Conv2D(self.key_filters, 1)
        self.k = layers.Conv2D(self.key_filters, 1)
        self.v = layers.Conv2D(self.filters, 1, use_bias=False)
        self.v_bn = layers.BatchNormalization()
        self.out_conv = layers.Conv2D(self.filters, 3, padding="same", use_bias=False)
        self.out_bn = layers.BatchNormalization()

    def build(self, input_shape):
        inner = (*input_shape[:-1], self.filters)
        for layer in (self.q, self.k, self.v):
            layer.build(input_shape)
        for layer in (self.v_bn, self.out_conv, self.out_bn):
            layer.build(inner)
        self.built = True

    def context(self, x, training=None):
        """``Kᵀ V / N`` of each input: (batch, key_filters, filters), the mean over pixels
        of what every query reads."""
        shape = ops.shape(x)
        batch, n = shape[0], shape[1] * shape[2]
        k = ops.reshape(self.k(x), (batch, n, self.key_filters))
        k = k / (ops.sqrt(ops.sum(k * k, axis=-1, keepdims=True)) + 1e-6)
        v = ops.relu(self.v_bn(self.v(x), training=training))
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
        y = ops.relu(self.out_bn(self.out_conv(y), training=training))
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "key_filters": self.key_filters}

@register
class FuseUp(layers.Layer):
    """Nearest ×2 upsampling, add the (projected) skip, conv3×3 → BN → ReLU."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.up = layers.UpSampling2D(2, interpolation="nearest")
        self.proj_x = layers.Conv2D(self.filters, 1)
        self.proj_skip = layers.Conv2D(self.filters, 1)
        self.conv = layers.Conv2D(self.filters, 3, padding="same", use_bias=False)
        self.bn = layers.BatchNormalization()

    def build(self, x_shape, skip_shape):
        self.proj_x.build(x_shape)
        self.proj_skip.build(skip_shape)
        inner = (*skip_shape[:-1], self.filters)
        self.conv.build(inner)
        self.bn.build(inner)
        self.built = True

    def call(self, x, skip, training=None):
        y = self.proj_x(self.up(x)) + self.proj_skip(skip)
        return ops.relu(self.bn(self.conv(y), training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}

@register
class StopGradient(layers.Layer):
    """The attribution decoder reads the spatial decoder's features without training them."""

    def call(self, x):
        return ops.stop_gradient(x)
