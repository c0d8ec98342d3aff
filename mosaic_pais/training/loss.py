"""The PAIS training loss (paper eq. 3), with masking and a better-behaved C^v term.

``L = λ_c·L_c + λ_v·L_v + λ_m·L_m + λ_S·L_S``

* ``L_c``: mean squared error of the centre map. ``center_weight`` > 0 weights each pixel by
  ``1 + center_weight·target`` so the few pixels near centres are not drowned by background
  (0 gives the paper's plain MSE). ``center_pair`` > 0 adds ``center_pair·closeness·target``
  to that weight, where ``closeness = exp(−½ (d / center_pair_scale)²)`` and ``d`` is the
  distance between the pixel's nearest and second-nearest sources (from its label vectors; 0,
  a single source's repeated slot, gives no closeness). The centres of close pairs are where
  detection fails: on validation tiles (``benchmarks/detection_budget.py``) the shipped model
  finds 0.52 of the blended sources at GOODS-S depth, while the same peak finding on the true
  centre map finds 0.84 of them, so most of the loss is the network's. Their centre pixels
  are a small part of all centre pixels, and the plain weight lets the network smear a faint
  companion's peak into its bright neighbour's.
* ``L_v``: mean absolute error of the claim vectors. ``vector_mode="paper"`` is the prototype's
  plain MAE of raw offsets over all pixels; there, pixels far from every source (offsets of up to
  a few hundred pixels) dominate the loss although their votes decide little. ``"weighted"``
  (the default for training) weights slot ``k`` of a pixel by its true flux fraction plus a floor,
  and divides the error by ``1 + |v|/vector_scale``: a vote matters in proportion to the flux it
  carries, and what it must get right is which source it points to, i.e. an error small
  compared with the distance to that source. ``vector_radius`` further limits the term to
  pixels whose nearest source is closer than that: the first training run (no radius) did not
  learn the vectors at all in 1,150 steps — its vector loss went from 12.4 (the value for an
  all-zero prediction) to 11.2 — because background pixels tens of pixels from any source,
  whose offsets need long-range context and whose votes carry only noise, dominated it.
* ``L_m``: cross-entropy of the fractions against the soft labels, from logits, per band.
  ``fraction_snr_weight`` > 0 weights each pixel by ``1 + fraction_snr_weight·min(S/N, 10)/10``
  (S/N of the pixel in the input, ``labels["snr"]``): the paper's plain mean is dominated by
  sky pixels, whose fractions decide little flux and cannot be read from the noise, while
  what matters for the deblended fluxes is the sharing in the bright, blended pixels.
* ``L_F``: the deblended flux itself (``flux`` > 0). With ``flux_weight (B,h,w,n)`` the pixel's
  noiseless light in units of the flux of each slot's source (:func:`mosaic_pais.training.train.
  slot_flux_weight`), ``Σ_pixels flux_weight·|p − f|`` is, for each source, the share of its
  flux given to or taken from others; divided by ``Σ flux_weight·f`` (the number of sources in
  the crop) it is the mean relative flux error of the crop's sources. The cross-entropy
  averages over pixels, most of them sky whose fractions decide no flux; this term weighs each
  pixel by what it changes in the catalogue, and each source equally whatever its brightness.
  With per-band weights, ``flux_weight (B,h,w,b,n)`` (multi-band training sets), it is the mean
  over sources and bands of each band's relative flux error, so that the colours count.
* ``L_m^shared`` (``fraction_shared`` > 0): the same cross-entropy averaged over the pixels
  whose light is shared, each weighted by how much of it is shared (1 − the largest true
  fraction) and by its S/N (up to 10). Such pixels are a few in ten thousand of a deep field,
  so in the mean over all pixels they weigh nothing, and a network trained on it (with the
  entropy term, which rewards confident fractions) gives each shared pixel to its nearest
  source: on validation tiles the nearest source got 0.84 of the shared light where the truth
  gives it 0.52 (``benchmarks/error_budget.py`` shows what that costs the blended fluxes).
  This term is normalised by those pixels alone, so it counts however rare they are.
* ``L_m^misordered`` (``fraction_misordered`` > 0): the same cross-entropy averaged over the
  pixels whose light belongs mostly to a source that is not their nearest (the labels order
  the slots nearest-first, so: the largest true fraction is not slot 0's), each weighted by
  how much more light that source has there than the nearest one and by its S/N (up to 10).
  These are the pixels a partition by distance gets wrong: a bright galaxy's halo around a
  faint neighbour. Unlike the shared pixels, most of them have one clear owner, so the term
  asks for confident fractions, given to the right source.
* ``L_S``: entropy ``mean_n(−p log p)`` of the predicted fractions (the paper's λ_S = 2).

Every term averages over valid pixels only: padding outside the mosaic and masked pixels carry
no loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["LossConfig", "pais_loss_terms"]


@dataclass
class LossConfig:
    """Weights and choices of the loss; the defaults are the paper's."""

    center: float = 15.0
    vectors: float = 0.06
    fractions: float = 4.0
    entropy: float = 2.0
    center_weight: float = 0.0
    #: extra centre-map weight of the centres of close pairs (0: none), and the separation
    #: scale (px) of their closeness
    center_pair: float = 0.0
    center_pair_scale: float = 8.0
    vector_mode: str = "paper"  # "paper" or "weighted"
    vector_scale: float = 16.0
    vector_floor: float = 0.1
    vector_radius: float | None = None  # "weighted" mode: no vector loss beyond this (px)
    fraction_snr_weight: float = 0.0  # extra C^m weight of bright pixels (0: the paper's mean)
    #: weight of ``L_m^shared``, the fractions' cross-entropy over the shared pixels alone (0:
    #: none)
    fraction_shared: float = 0.0
    #: weight of ``L_m^misordered``, the fractions' cross-entropy over the pixels whose light is
    #: mostly a farther source's (0: none)
    fraction_misordered: float = 0.0
    flux: float = 0.0  # weight of the relative flux term L_F (0: the paper's loss)

    def to_dict(self) -> dict:
        return asdict(self)


def pais_loss_terms(outputs: dict, labels: dict, n_bands: int, n_slots: int,
                    config: LossConfig | None = None) -> dict:
    """Each term of the loss and their weighted total, as scalar tensors.

    Parameters
    ----------
    outputs : dict
        Network outputs ``center (B,h,w,1)``, ``vectors (B,h,w,2n)``,
        ``fraction_logits (B,h,w,b·n)``.
    labels : dict
        ``center (B,h,w)``, ``vectors (B,h,w,n,2)``, ``fractions (B,h,w,b,n)``,
        ``valid (B,h,w)`` (1 where a pixel counts); ``snr (B,h,w)`` (the pixels' S/N in the
        input) when ``fraction_snr_weight`` > 0.
    """
    from keras import ops

    cfg = config or LossConfig()
    # in float32 whatever precision the layers computed in
    outputs = {key: ops.cast(value, "float32") for key, value in outputs.items()}
    valid = ops.cast(labels["valid"], "float32")
    n_valid = ops.maximum(ops.sum(valid), 1.0)

    def masked_mean(per_pixel):  # per_pixel (B, h, w)
        return ops.sum(per_pixel * valid) / n_valid

    # centre map
    c_true = ops.cast(labels["center"], "float32")
    c_pred = outputs["center"][..., 0]
    v_true = ops.cast(labels["vectors"], "float32")
    c_weight = 1.0 + cfg.center_weight * c_true
    if cfg.center_pair > 0:
        c_weight = c_weight + cfg.center_pair * _pair_closeness(v_true, cfg) * c_true
    l_center = ops.sum(c_weight * (c_pred - c_true) ** 2 * valid) / ops.maximum(
        ops.sum(c_weight * valid), 1.0)

    # claim vectors
    shape = ops.shape(c_pred)
    v_pred = ops.reshape(outputs["vectors"], (shape[0], shape[1], shape[2], n_slots, 2))
    err = ops.sum(ops.abs(v_pred - v_true), axis=-1)  # (B,h,w,n), L1 over (dy, dx)
    f_true = ops.cast(labels["fractions"], "float32")
    if cfg.vector_mode == "paper":
        l_vectors = masked_mean(ops.mean(err, axis=-1) / 2.0)
    elif cfg.vector_mode == "weighted":
        length = ops.sqrt(ops.sum(v_true * v_true, axis=-1))
        slot_weight = ops.mean(f_true, axis=-2) + cfg.vector_floor  # mean over bands
        rel = err / (1.0 + length / cfg.vector_scale)
        per_pixel = ops.sum(slot_weight * rel, axis=-1) / ops.sum(slot_weight, axis=-1)
        if cfg.vector_radius is None:
            l_vectors = masked_mean(per_pixel)
        else:  # only pixels whose nearest source is within the radius: sources' own pixels
            near = ops.cast(length[..., 0] < cfg.vector_radius, "float32") * valid
            l_vectors = ops.sum(per_pixel * near) / ops.maximum(ops.sum(near), 1.0)
    else:
        raise ValueError(f"unknown vector_mode {cfg.vector_mode!r}")

    # fractions: cross-entropy from logits, and entropy of the prediction
    logits = ops.reshape(outputs["fraction_logits"],
                         (shape[0], shape[1], shape[2], n_bands, n_slots))
    log_p = ops.log_softmax(logits, axis=-1)
    ce = -ops.sum(f_true * log_p, axis=-1)  # (B,h,w,b)
    if cfg.fraction_snr_weight > 0:
        snr = ops.clip(ops.cast(labels["snr"], "float32"), 0.0, 10.0) / 10.0
        weight = (1.0 + cfg.fraction_snr_weight * snr) * valid
        l_fractions = ops.sum(ops.mean(ce, axis=-1) * weight) / ops.maximum(ops.sum(weight),
                                                                            1.0)
    else:
        l_fractions = masked_mean(ops.mean(ce, axis=-1))
    p = ops.exp(log_p)
    entropy = ops.mean(-p * log_p, axis=-1)  # mean over the n slots, as in the paper
    l_entropy = masked_mean(ops.mean(entropy, axis=-1))

    total = (cfg.center * l_center + cfg.vectors * l_vectors + cfg.fractions * l_fractions
             + cfg.entropy * l_entropy)
    terms = {"center": l_center, "vectors": l_vectors, "fractions": l_fractions,
             "entropy": l_entropy}
    if cfg.fraction_shared > 0:
        terms["shared"] = _shared_cross_entropy(ce, f_true, labels, valid)
        total = total + cfg.fraction_shared * terms["shared"]
    if cfg.fraction_misordered > 0:
        terms["misordered"] = _misordered_cross_entropy(ce, f_true, labels, valid)
        total = total + cfg.fraction_misordered * terms["misordered"]
    if cfg.flux > 0:
        terms["flux"] = _relative_flux_error(p, f_true, labels, valid)
        total = total + cfg.flux * terms["flux"]
    return {"loss": total, **terms}


def _pair_closeness(v_true, cfg: LossConfig):
    """``(B,h,w)``: how close the pixel's two nearest sources are to each other, 1 for a pair
    at one place and falling as a Gaussian of ``center_pair_scale``; 0 where both slots hold
    the same source (fewer than two sources in reach)."""
    from keras import ops

    gap = v_true[..., 1, :] - v_true[..., 0, :]
    separation = ops.sqrt(ops.sum(gap * gap, axis=-1))
    closeness = ops.exp(-0.5 * (separation / cfg.center_pair_scale) ** 2)
    return closeness * ops.cast(separation > 0.5, "float32")


def _shared_cross_entropy(ce, f_true, labels: dict, valid):
    """``L_m^shared``: the cross-entropy ``ce (B,h,w,b)`` over the shared pixels, each weighted
    by its shared share of light and its S/N (module docstring)."""
    from keras import ops

    shared = 1.0 - ops.max(ops.mean(f_true, axis=-2), axis=-1)  # (B,h,w): 0 for one owner
    return _mean_over_chosen_pixels(ce, shared, labels, valid)


def _misordered_cross_entropy(ce, f_true, labels: dict, valid):
    """``L_m^misordered``: the cross-entropy ``ce (B,h,w,b)`` over the pixels whose light is
    mostly a farther source's, each weighted by that source's lead over the nearest one and by
    its S/N (module docstring)."""
    from keras import ops

    mean_true = ops.mean(f_true, axis=-2)  # (B,h,w,n), over the bands
    lead = ops.max(mean_true, axis=-1) - mean_true[..., 0]  # 0 where the nearest leads
    return _mean_over_chosen_pixels(ce, lead, labels, valid)


def _mean_over_chosen_pixels(ce, chosen, labels: dict, valid):
    """The cross-entropy ``ce (B,h,w,b)`` averaged over the pixels, each weighted by
    ``chosen (B,h,w)`` (0 for a pixel the term does not count) and by its S/N (up to 10),
    normalised by those weights alone, so that the term counts however rare the pixels are."""
    from keras import ops

    snr = ops.clip(ops.cast(labels["snr"], "float32"), 0.0, 10.0) / 10.0
    weight = chosen * snr * valid
    # a batch without such pixels gives 0 / 1e-3 = 0: the floor only avoids 0 / 0
    return ops.sum(ops.mean(ce, axis=-1) * weight) / ops.maximum(ops.sum(weight), 1e-3)


def _relative_flux_error(p, f_true, labels: dict, valid):
    """``L_F``: the crop's sources' mean relative error of deblended flux (module docstring)."""
    from keras import ops

    if "flux_weight" not in labels:
        raise ValueError("the flux term needs flux_weight labels (training sets built with "
                         "this version: mosaic-pais train --simulate-tiles)")
    weight = ops.cast(labels["flux_weight"], "float32")
    if len(weight.shape) == 5:  # (B,h,w,b,n): each band's light over each source's flux in it
        weight = weight * valid[..., None, None]
        moved, share = ops.abs(p - f_true), f_true
    else:  # (B,h,w,n): light summed over bands
        weight = weight * valid[..., None]
        moved = ops.mean(ops.abs(p - f_true), axis=-2)  # mean over bands
        share = ops.mean(f_true, axis=-2)
    return ops.sum(weight * moved) / ops.maximum(ops.sum(weight * share), 1.0)
