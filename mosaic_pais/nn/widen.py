"""Net2WiderNet for the PAIS network: a wider network that computes what a narrower one does.

Every channel space of the model (a level's features, a decoder level's, an attention layer's
keys) grows to the new width by copying randomly chosen channels; the layers that read a space
divide each copied channel's weights by its number of copies, so sums are unchanged, and the
attention keys and queries are divided by the square root of it, so their L2 norms and dot
products are unchanged (Chen, Goodfellow & Shlens 2016).
"""

from __future__ import annotations

import numpy as np

from mosaic_pais.nn.model import PAPER_FILTERS, build_pais_model, n_levels_of

__all__ = ["widen_model", "with_bands", "rebanded"]


class _ChannelCopier:
    """Copies a narrow layer's weights into its wide twin along channel maps."""

    def __init__(self, rng: np.random.Generator, noise: float):
        self.rng, self.noise = rng, noise

    def space(self, m: int, n: int) -> np.ndarray:
        """New channel c carries old channel ``space[c]``; the first m are the old ones."""
        return np.concatenate([np.arange(m), self.rng.integers(0, m, n - m)])

    @staticmethod
    def counts(mapping: np.ndarray) -> np.ndarray:
        return np.bincount(mapping)[mapping].astype("float32")

    def conv(self, new, old, into: np.ndarray | None, out: np.ndarray | None,
             out_scale: np.ndarray | None = None) -> None:
        kernel = old.kernel.numpy()
        if into is not None:
            kernel = kernel[:, :, into, :] / self.counts(into)[None, None, :, None]
        if out is not None:
            kernel = kernel[..., out]
            copies = slice(len(np.unique(out)), None)
            if self.noise:
                kernel[..., copies] += self.rng.normal(0, self.noise * kernel.std(),
                                                       kernel[..., copies].shape)
        weights = [kernel]
        if old.use_bias:
            bias = old.bias.numpy()
            weights.append(bias[out] if out is not None else bias)
        if out_scale is not None:
            weights = [w / out_scale for w in weights]
        new.set_weights(weights)

    @staticmethod
    def norm(new, old, mapping: np.ndarray) -> None:
        new.set_weights([w.numpy()[mapping] for w in old.weights])

    def fuse_up(self, new, old, x: np.ndarray, skip: np.ndarray) -> np.ndarray:
        out = self.space(old.filters, new.filters)
        self.conv(new.proj_x, old.proj_x, x, out)
        self.conv(new.proj_skip, old.proj_skip, skip, out)
        self.conv(new.conv, old.conv, out, out)
        self.norm(new.bn, old.bn, out)
        return out


def widen_model(model, filters: tuple[int, ...] = PAPER_FILTERS, noise: float = 0.0,
                seed: int = 0):
    """A wider PAIS network that computes what ``model`` computes (Net2WiderNet).

    Every channel space of ``model`` (a level's features, a decoder level's, an attention
    layer's keys) grows to the new width by copying randomly chosen channels; the layers that
    read a space divide each copied channel's weights by its number of copies, so sums are
    unchanged, and the attention keys and queries are divided by the square root of it, so
    their L2 norms and dot products are unchanged. A trained network can so start a wider
    one's training (Chen, Goodfellow & Shlens 2016) instead of training it from scratch.

    Parameters
    ----------
    model : keras.Model
        A PAIS model (:func:`build_pais_model`, :func:`load_model`).
    filters : tuple of int
        The new encoder widths, each at least the old one, one per level.
    noise : float
        Standard deviation, relative to each kernel's, of noise added to the incoming weights
        of the copied channels. Copies of a channel receive the same gradient and would stay
        identical through training without it; 0 keeps the function exactly.
    seed : int

    Returns
    -------
    keras.Model
    """
    n_levels = n_levels_of(model)
    old = [model.get_layer(f"down{i}").filters for i in range(n_levels)]
    if len(filters) != n_levels or any(int(f) < o for f, o in zip(filters, old, strict=True)):
        raise ValueError(f"filters {tuple(filters)} cannot widen {tuple(old)}")
    n_bands = int(model.inputs[0].shape[-1]) - 1
    wide = build_pais_model(n_bands=n_bands,
                            n_slots=int(model.get_layer("vectors_head").filters) // 2,
                            filters=tuple(filters), dropout=model.get_layer("down0").dropout,
                            stretch=model.get_layer("stretch").scale,
                            vector_scale=float(model.get_layer("vectors").scale),
                            name=model.name)
    wide(np.zeros((1, 32, 32, n_bands + 1), "float32"))
    copier = _ChannelCopier(np.random.default_rng(seed), noise)
    features = _widen_encoder(copier, model, wide, [old[0], *old],
                              [int(filters[0]), *map(int, filters)])
    _widen_attention(copier, model, wide, features)
    spatial = _widen_spatial_decoder(copier, model, wide, features)
    _widen_attribution_decoder(copier, model, wide, features, spatial)
    return wide


def _widen_encoder(copier: _ChannelCopier, model, wide, widths_old, widths_new) -> list:
    """The stem and each level's blocks; returns each level's channel map (attention keeps
    its input's space, x + y)."""
    features = [copier.space(o, n) for o, n in zip(widths_old, widths_new, strict=True)]
    copier.conv(wide.get_layer("stem"), model.get_layer("stem"), None, features[0])
    for i in range(len(features) - 1):
        new, prev = wide.get_layer(f"down{i}"), model.get_layer(f"down{i}")
        into, out = features[i], features[i + 1]
        copier.conv(new.conv1, prev.conv1, into, out)
        copier.conv(new.short, prev.short, into, out)
        for name in ("conv2", "conv3", "conv4"):
            copier.conv(getattr(new, name), getattr(prev, name), out, out)
        for name in ("bn1", "bn2", "bn3", "bn4"):
            copier.norm(getattr(new, name), getattr(prev, name), out)
    return features


def _widen_attention(copier: _ChannelCopier, model, wide, features: list) -> None:
    for i, mapping in enumerate(features):
        new, prev = wide.get_layer(f"attention{i}"), model.get_layer(f"attention{i}")
        keys = copier.space(prev.key_filters, new.key_filters)
        root = np.sqrt(copier.counts(keys))
        copier.conv(new.q, prev.q, mapping, keys, out_scale=root)
        copier.conv(new.k, prev.k, mapping, keys, out_scale=root)
        copier.conv(new.v, prev.v, mapping, mapping)
        copier.conv(new.out_conv, prev.out_conv, mapping, mapping)
        copier.norm(new.v_bn, prev.v_bn, mapping)
        copier.norm(new.out_bn, prev.out_bn, mapping)


def _widen_spatial_decoder(copier: _ChannelCopier, model, wide, features: list) -> list:
    """The centre and vector decoder; returns each decoder level's channel map."""
    n_levels = len(features) - 1
    spatial = [features[-1]]
    for i in range(n_levels):
        name = f"spatial_up{i}"
        spatial.append(copier.fuse_up(wide.get_layer(name), model.get_layer(name), spatial[-1],
                                      features[-2 - i]))
    copier.conv(wide.get_layer("center"), model.get_layer("center"), spatial[-1], None)
    hidden = copier.space(model.get_layer("vectors_conv").filters,
                          wide.get_layer("vectors_conv").filters)
    copier.conv(wide.get_layer("vectors_conv"), model.get_layer("vectors_conv"), spatial[-1],
                hidden)
    copier.conv(wide.get_layer("vectors_head"), model.get_layer("vectors_head"), hidden, None)
    return spatial


def _widen_attribution_decoder(copier: _ChannelCopier, model, wide, features: list,
                               spatial: list) -> None:
    attribution = features[-1]
    for i in range(len(features) - 1):
        guide = spatial[i + 1]
        # the concatenation [guide, skip]: the skip's channels follow the guide's old ones
        skip = np.concatenate([guide, len(np.unique(guide)) + features[-2 - i]])
        name = f"attribution_up{i}"
        attribution = copier.fuse_up(wide.get_layer(name), model.get_layer(name), attribution,
                                     skip)
    copier.conv(wide.get_layer("fraction_logits"), model.get_layer("fraction_logits"),
                attribution, None)


def with_bands(model, n_bands: int):
    """A PAIS network of ``n_bands`` bands that, given the same image in every band, computes
    what the single-band ``model`` computes.

    The stem reads each band with the single band's kernel divided by ``n_bands`` (their sum is
    the old response when the bands agree), and the fraction head repeats the single band's
    logits for every band; every other layer keeps its weights. A trained F160W model can so
    start the training of a multi-band one (``mosaic-pais train --from``) from what it already
    knows, the bands' differences to be learnt.

    >>> import numpy as np
    >>> one = build_pais_model(n_bands=1, filters=(4, 8, 8, 8, 8))
    >>> four = with_bands(one, 4)
    >>> x = np.random.default_rng(0).normal(size=(1, 64, 64, 1)).astype("float32")
    >>> a = one(np.concatenate([x, np.ones_like(x)], -1), training=False)
    >>> b = four(np.concatenate([x] * 4 + [np.ones_like(x)], -1), training=False)
    >>> bool(np.allclose(a["center"], b["center"], atol=1e-5))
    True
    >>> bool(np.allclose(np.tile(a["fraction_logits"], 4), b["fraction_logits"], atol=1e-5))
    True
    """
    if int(model.inputs[0].shape[-1]) - 1 != 1:
        raise ValueError("with_bands starts from a single-band model")
    return rebanded(model, [0] * int(n_bands))


def rebanded(model, source_bands):
    """A PAIS network whose band ``k`` is read as ``model``'s band ``source_bands[k]`` was.

    Each old band's stem kernel is shared among the new bands made from it (divided by their
    number), and each new band's fraction logits are its old band's; every other layer keeps
    its weights. Given, in each new band, the image of its old band, the new network computes
    what ``model`` does, as long as every old band is used; so a model of one survey's bands
    can start the training of another's (``mosaic-pais train --from``), e.g. a four-band HST
    model fine-tuned to Subaru HSC's five bands.

    >>> import numpy as np
    >>> two = build_pais_model(n_bands=2, filters=(4, 8, 8, 8, 8))
    >>> three = rebanded(two, [0, 1, 1])
    >>> x = np.random.default_rng(0).normal(size=(1, 64, 64, 2)).astype("float32")
    >>> one = np.ones_like(x[..., :1])
    >>> a = two(np.concatenate([x, one], -1), training=False)
    >>> b = three(np.concatenate([x[..., :1], x[..., 1:], x[..., 1:], one], -1), training=False)
    >>> bool(np.allclose(a["center"], b["center"], atol=1e-5))
    True
    """
    n_old = int(model.inputs[0].shape[-1]) - 1
    source = np.asarray(source_bands, int)
    if source.ndim != 1 or len(source) == 0 or source.min() < 0 or source.max() >= n_old:
        raise ValueError(f"source_bands must name bands 0-{n_old - 1} of the model "
                         f"(got {list(source_bands)})")
    n_bands, n_slots = len(source), int(model.get_layer("vectors_head").filters) // 2
    n_levels = n_levels_of(model)
    wide = build_pais_model(
        n_bands=n_bands, n_slots=n_slots,
        filters=tuple(model.get_layer(f"down{i}").filters for i in range(n_levels)),
        dropout=model.get_layer("down0").dropout, stretch=model.get_layer("stretch").scale,
        vector_scale=float(model.get_layer("vectors").scale), name=model.name)
    wide(np.zeros((1, 32, 32, n_bands + 1), "float32"))
    sharing = np.bincount(source, minlength=n_old)[source]  # new bands per old band
    for layer in wide.layers:
        if not layer.weights:
            continue
        old = model.get_layer(layer.name).get_weights()
        if layer.name == "stem":  # (3, 3, band + validity, filters)
            kernel, bias = old
            bands = kernel[:, :, source] / sharing[None, None, :, None]
            old = [np.concatenate([bands, kernel[:, :, n_old:]], axis=2), bias]
        elif layer.name == "fraction_logits":  # channel band·n + k
            channels = (source[:, None] * n_slots + np.arange(n_slots)).ravel()
            old = [old[0][..., channels], old[1][channels]]
        layer.set_weights(old)
    return wide
