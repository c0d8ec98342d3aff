"""The PAIS network: shapes, serialisation, any input size, the loss and one training step."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mosaic_pais.nn.model import (  # noqa: E402
    PAISPredictor,
    build_pais_model,
    file_sha256,
    load_model,
    model_for_bands,
    model_input,
    model_metadata,
    shipped_models,
    split_outputs,
)
from mosaic_pais.nn.widen import widen_model  # noqa: E402
from mosaic_pais.training.loss import LossConfig, pais_loss_terms  # noqa: E402

SMALL = (4, 8, 8, 8, 8)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return build_pais_model(n_bands=2, n_slots=3, filters=SMALL)


def test_output_shapes_at_any_size(small_model):
    for h, w in ((64, 64), (32, 96)):
        out = small_model(np.zeros((2, h, w, 3), np.float32), training=False)
        assert out["center"].shape == (2, h, w, 1)
        assert out["vectors"].shape == (2, h, w, 6)
        assert out["fraction_logits"].shape == (2, h, w, 6)
        pred = split_outputs({k: np.asarray(v) for k, v in out.items()}, 2, 3)
        assert pred.vectors.shape == (2, h, w, 3, 2)
        np.testing.assert_allclose(pred.fractions.sum(-1), 1.0, atol=1e-5)
        assert np.all((pred.center >= 0) & (pred.center <= 1))


def test_paper_configuration_size():
    model = build_pais_model(n_bands=1, filters=(16, 32, 64, 64, 128))
    assert 1.5e6 < model.count_params() < 3.0e6


def test_widened_model_computes_what_the_narrow_one_does():
    keras.utils.set_random_seed(1)
    narrow = build_pais_model(n_bands=2, n_slots=3, filters=SMALL)
    rng = np.random.default_rng(1)
    # trained-looking weights: no zero biases, BN statistics away from (0, 1)
    narrow.set_weights([np.abs(rng.normal(1, 0.3, w.shape)).astype(np.float32)
                        if "variance" in w.path else rng.normal(0, 0.3, w.shape).astype(np.float32)
                        for w in narrow.weights])
    x = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    x[..., 2] = 1.0
    wider = (6, 12, 10, 9, 16)
    wide = widen_model(narrow, wider)
    assert [wide.get_layer(f"down{i}").filters for i in range(5)] == list(wider)
    assert wide.count_params() > narrow.count_params()
    a, b = narrow(x, training=False), wide(x, training=False)
    for key in a:
        np.testing.assert_allclose(np.asarray(b[key]), np.asarray(a[key]), rtol=1e-4, atol=1e-4)
    # the new channels copy old ones; noise breaks that symmetry but stays a small change
    noisy = widen_model(narrow, wider, noise=0.01, seed=2)
    for model, copied in ((wide, True), (noisy, False)):
        kernel = model.get_layer("down0").conv1.kernel.numpy()
        for c in (4, 5):
            assert any(np.array_equal(kernel[..., c], kernel[..., j]) for j in range(4)) == copied
    c = noisy(x, training=False)["center"]
    assert 0 < np.abs(np.asarray(c) - np.asarray(a["center"])).max() < 0.2
    with pytest.raises(ValueError, match="cannot widen"):
        widen_model(wide, SMALL)


def test_layer_configs_round_trip(small_model):
    for layer in small_model.layers:
        config = layer.get_config()
        again = type(layer).from_config(config).get_config()
        assert again == config, layer.name


def test_save_load_identical_outputs(small_model, tmp_path):
    path = tmp_path / "m.keras"
    small_model.save(path)
    loaded = load_model(path)
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    a, b = small_model(x, training=False), loaded(x, training=False)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


def test_model_input_masks_invalid_pixels():
    img = np.ones((1, 1, 4, 4), np.float32)
    img[0, 0, 0, 0] = np.nan
    x = model_input(img, [0.5])
    assert x.shape == (1, 4, 4, 2)
    assert x[0, 0, 0, 0] == 0 and x[0, 0, 0, 1] == 0
    assert x[0, 1, 1, 0] == 2 and x[0, 1, 1, 1] == 1


def test_predictor_checks_bands(small_model):
    from mosaic_pais.errors import BadInputError

    predictor = PAISPredictor(small_model, batch_size=2)
    pred = predictor(np.zeros((3, 2, 32, 32), np.float32), [1.0, 1.0])
    assert pred.center.shape == (3, 32, 32)
    with pytest.raises(BadInputError, match="band"):
        predictor(np.zeros((1, 1, 32, 32), np.float32), [1.0])


def test_given_contexts_replace_each_tiles_own(small_model):
    """Each tile with its own context is the network unchanged; a shared context is the mean
    of the tiles' own, and a tile's output then no longer depends on its batch mates."""
    predictor = PAISPredictor(small_model, batch_size=2)
    tiles = np.random.default_rng(1).normal(size=(3, 2, 64, 64)).astype(np.float32)
    plain = predictor(tiles, [1.0, 1.0])
    own = [predictor.attention_contexts(tiles[i:i + 1], [1.0, 1.0]) for i in range(3)]
    assert [c.shape for c in own[0]] == [(4, 4)] * 2 + [(4, 8)] * 4  # (key_filters, filters)
    for i in range(3):
        again = predictor(tiles[i:i + 1], [1.0, 1.0], contexts=own[i])
        for key in ("center", "vectors", "fractions"):
            np.testing.assert_allclose(getattr(again, key)[0], getattr(plain, key)[i],
                                       atol=1e-5)
    shared = predictor.attention_contexts(tiles, [1.0, 1.0])
    for level, context in enumerate(shared):
        np.testing.assert_allclose(context, np.mean([c[level] for c in own], axis=0),
                                   atol=1e-6)
    alone = predictor(tiles[:1], [1.0, 1.0], contexts=shared)
    together = predictor(tiles, [1.0, 1.0], contexts=shared)
    np.testing.assert_allclose(alone.center[0], together.center[0], atol=1e-6)


def test_mosaic_context_steadies_the_shipped_model_against_the_grid():
    """Two overlapping 256² windows of a simulated scene, 32 px apart (the same phase of the
    network's lattice): where both see a source, their centre maps agree better when every
    window reads the scene's attention context than when each reads its own. In float32:
    bfloat16's rounding moves the centre map by about as much as the context does (medians
    0.0026 shared against 0.0030 own in bfloat16, measured on these scenes)."""
    from mosaic_pais.runtime.infer import estimate_noise, mosaic_contexts
    from mosaic_pais.sim.scenes import simulate_scene

    predictor = PAISPredictor(batch_size=2, precision="float32")
    own, shared = [], []
    for seed in (7_000_101, 7_000_102):
        image = simulate_scene((448, 448), seed=seed).image.astype(np.float32)
        sigma = estimate_noise(image)[0]
        windows = np.stack([image[:, 64:320, 64:320], image[:, 96:352, 32:288]])
        contexts = mosaic_contexts(image, predictor, sigma, n_windows=8)
        for out, given in ((own, None), (shared, contexts)):
            a, b = predictor(windows, sigma, outputs=("center",), contexts=given).center
            # the overlap, 32 px inside both windows
            a, b = a[64:192, 32:192], b[32:160, 64:224]
            out.append(np.abs(a - b)[np.maximum(a, b) > 0.3])
    own, shared = np.concatenate(own), np.concatenate(shared)
    assert own.size > 200
    # ratio 0.76 on these two scenes (below 0.7 while real galaxies brought their COSMOS
    # stamps' noise: simulator version 1); benchmarks/grid_phase.py measures it on 60 pairs
    assert np.median(shared) < 0.85 * np.median(own)


def _labels(batch=1, h=4, w=4, n=3, b=1):
    return {
        "center": np.zeros((batch, h, w), np.float32),
        "vectors": np.zeros((batch, h, w, n, 2), np.float32),
        "fractions": np.full((batch, h, w, b, n), 1.0 / n, np.float32),
        "valid": np.ones((batch, h, w), np.float32),
    }


def _outputs(batch=1, h=4, w=4, n=3, b=1, center=0.0, vec=0.0, logits=None):
    return {
        "center": np.full((batch, h, w, 1), center, np.float32),
        "vectors": np.full((batch, h, w, 2 * n), vec, np.float32),
        "fraction_logits": np.zeros((batch, h, w, b * n), np.float32) if logits is None
        else logits,
    }


def test_loss_terms_on_hand_made_cases():
    labels = _labels()
    t = pais_loss_terms(_outputs(center=0.5, vec=2.0), labels, 1, 3, LossConfig())
    assert float(t["center"]) == pytest.approx(0.25)
    assert float(t["vectors"]) == pytest.approx(2.0)  # MAE per component
    assert float(t["fractions"]) == pytest.approx(np.log(3), rel=1e-5)
    assert float(t["entropy"]) == pytest.approx(np.log(3) / 3, rel=1e-5)
    total = 15 * 0.25 + 0.06 * 2.0 + 4 * np.log(3) + 2 * np.log(3) / 3
    assert float(t["loss"]) == pytest.approx(total, rel=1e-5)


def test_loss_ignores_invalid_pixels():
    labels = _labels()
    labels["valid"][0, :2] = 0
    out = _outputs(center=0.0)
    out["center"][0, :2] = 1.0  # wrong only where invalid
    t = pais_loss_terms(out, labels, 1, 3, LossConfig())
    assert float(t["center"]) == 0.0


def test_centre_loss_weighs_the_centres_of_close_pairs_more():
    # two centre pixels, both predicted 0 where the truth is 1: one source 2 px from another,
    # one whose slots repeat a single source
    labels = _labels(h=1, w=2)
    labels["center"][...] = 1.0
    labels["vectors"][0, 0, 0, 1] = [2.0, 0.0]
    out = _outputs(h=1, w=2)
    out["center"][0, 0, 1] = 1.0  # only the pair's centre is wrong
    plain = LossConfig(center_weight=20.0)
    paired = LossConfig(center_weight=20.0, center_pair=60.0, center_pair_scale=8.0)
    assert float(pais_loss_terms(out, labels, 1, 3, plain)["center"]) == pytest.approx(0.5)
    closeness = np.exp(-0.5 * (2.0 / 8.0) ** 2)
    w_pair = 21.0 + 60.0 * closeness
    assert float(pais_loss_terms(out, labels, 1, 3, paired)["center"]) == pytest.approx(
        w_pair / (w_pair + 21.0), rel=1e-5)


def test_weighted_vector_loss_discounts_far_low_fraction_slots():
    cfg = LossConfig(vector_mode="weighted", vector_scale=10.0, vector_floor=0.0)
    labels = _labels(h=1, w=1)
    labels["vectors"][..., 0, :] = [0.0, 0.0]
    labels["vectors"][..., 1, :] = [30.0, 40.0]  # 50 px away
    labels["fractions"][...] = [1.0, 0.0, 0.0]
    out = _outputs(h=1, w=1)
    out["vectors"][..., 2:4] = [10.0, 10.0]  # big error on slot 1 only, which carries no flux
    t = pais_loss_terms(out, labels, 1, 3, cfg)
    assert float(t["vectors"]) == pytest.approx(0.0)
    out["vectors"][..., 0:2] = [1.0, 0.0]  # slot 0 (all the flux, 0 px away): error 1
    t = pais_loss_terms(out, labels, 1, 3, cfg)
    assert float(t["vectors"]) == pytest.approx(1.0)


def test_one_training_step_lowers_the_loss(small_model):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    model = build_pais_model(n_bands=1, filters=SMALL, dropout=0.0)
    x = rng.normal(size=(2, 32, 32, 2)).astype(np.float32)
    x[..., 1] = 1
    labels = _labels(batch=2, h=32, w=32)
    labels["center"] = rng.uniform(0, 1, (2, 32, 32)).astype(np.float32)
    labels["vectors"] = rng.normal(0, 3, (2, 32, 32, 3, 2)).astype(np.float32)
    opt = keras.optimizers.Adam(1e-2)

    def loss():
        return pais_loss_terms(model(x, training=False), labels, 1, 3)["loss"]

    before = float(loss())
    with tf.GradientTape() as tape:
        value = pais_loss_terms(model(x, training=False), labels, 1, 3)["loss"]
    grads = tape.gradient(value, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert float(loss()) < before


def test_load_model_refuses_other_formats(tmp_path):
    from mosaic_pais.errors import BadInputError

    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(BadInputError, match=".keras"):
        load_model(tmp_path / "m.h5")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="cannot be loaded"):
        load_model(tmp_path / "bad.keras")


def test_vector_radius_ignores_far_pixels():
    cfg = LossConfig(vector_mode="weighted", vector_radius=10.0, vector_floor=0.0)
    labels = _labels(h=1, w=2)
    labels["vectors"][0, 0, 0, 0] = [30.0, 40.0]  # far from every source
    labels["vectors"][0, 0, 1, 0] = [1.0, 0.0]
    labels["fractions"][...] = [1.0, 0.0, 0.0]
    out = _outputs(h=1, w=2)
    out["vectors"][0, 0, 0, 0:2] = [0.0, 0.0]  # wrong by 70 px where it does not matter
    out["vectors"][0, 0, 1, 0:2] = [1.0, 0.0]  # right where it matters
    assert float(pais_loss_terms(out, labels, 1, 3, cfg)["vectors"]) == pytest.approx(0.0)


def test_fraction_loss_weights_bright_pixels():
    labels = _labels(h=1, w=2)
    labels["fractions"][0, 0, 0, 0] = [1.0, 0.0, 0.0]  # a sky pixel, predicted badly
    labels["fractions"][0, 0, 1, 0] = [1 / 3, 1 / 3, 1 / 3]  # a bright pixel, predicted exactly
    labels["snr"] = np.array([[[0.0, 50.0]]], np.float32)
    out = _outputs(h=1, w=2)  # uniform fractions: CE log 3 on both pixels
    plain = float(pais_loss_terms(out, labels, 1, 3, LossConfig())["fractions"])
    assert plain == pytest.approx(np.log(3), rel=1e-5)
    logits = np.zeros((1, 1, 2, 3), np.float32)
    logits[0, 0, 0] = [5.0, 0.0, 0.0]  # now the sky pixel is nearly right too
    t = pais_loss_terms(_outputs(h=1, w=2, logits=logits), labels, 1, 3, LossConfig())
    ce_sky = -np.log(np.exp(5) / (np.exp(5) + 2))
    # weights 1 (S/N 0) and 1 + 4 (S/N capped at 10): a sky pixel counts a fifth as much
    weighted = pais_loss_terms(_outputs(h=1, w=2, logits=logits), labels, 1, 3,
                               LossConfig(fraction_snr_weight=4.0))
    assert float(t["fractions"]) == pytest.approx((ce_sky + np.log(3)) / 2, rel=1e-5)
    assert float(weighted["fractions"]) == pytest.approx((ce_sky + 5 * np.log(3)) / 6, rel=1e-5)


def test_a_run_hands_the_shipped_model_what_it_was_trained_on():
    """The shipped card's sky mesh is the run's default: a run subtracts the sky as the model's
    training tiles had it subtracted, and the benchmarks decode single tiles so."""
    from mosaic_pais.nn.model import DEFAULT_MODEL_PATH, model_metadata
    from mosaic_pais.runtime.background import DEFAULT_MESH

    card = model_metadata(DEFAULT_MODEL_PATH)
    assert card["background_mesh"] == DEFAULT_MESH
    assert f"sky subtracted on {DEFAULT_MESH} px cells" in card["input"]


def test_flux_term_is_the_mean_relative_flux_error_of_the_sources():
    # one pixel, two sources: source A (slot 0) has flux 4 in all, 2 of it here; source B
    # (slot 1) has flux 1, all of it here. The pixel's light 3 is A's 2/3 and B's 1/3.
    labels = _labels(h=1, w=1)
    labels["fractions"][...] = [2 / 3, 1 / 3, 0.0]
    labels["flux_weight"] = np.array([[[[3 / 4, 3 / 1, 0.0]]]], np.float32)
    exact = np.log(np.array([2 / 3, 1 / 3, 1e-9], np.float32)).reshape(1, 1, 1, 3)
    cfg = LossConfig(flux=1.0)
    t = pais_loss_terms(_outputs(h=1, w=1, logits=exact), labels, 1, 3, cfg)
    assert float(t["flux"]) == pytest.approx(0.0, abs=1e-6)
    swapped = np.log(np.array([1 / 3, 2 / 3, 1e-9], np.float32)).reshape(1, 1, 1, 3)
    t = pais_loss_terms(_outputs(h=1, w=1, logits=swapped), labels, 1, 3, cfg)
    # A loses 1 of its 4 (25%), B gains 1 on its 1 (100%): sum over sources / number of
    # sources seen in the crop (A's 2/4 + B's 1/1 of their flux lie here: 1.5)
    assert float(t["flux"]) == pytest.approx((1 / 4 + 1.0) / 1.5, rel=1e-4)
    assert float(t["loss"]) == pytest.approx(
        float(pais_loss_terms(_outputs(h=1, w=1, logits=swapped), labels, 1, 3,
                              LossConfig())["loss"]) + float(t["flux"]), rel=1e-5)


def test_per_band_flux_term_judges_each_band_by_its_own_fluxes():
    # one pixel, two bands, two sources: band 0 as above (A 2/3, B 1/3; A's flux 4, B's 1);
    # in band 1 B is bright (A 1/5, B 4/5 of the pixel's 5; A's flux 10, B's 4)
    labels = _labels(h=1, w=1, b=2)
    labels["fractions"][...] = [[2 / 3, 1 / 3, 0.0], [1 / 5, 4 / 5, 0.0]]
    labels["flux_weight"] = np.array([[[[[3 / 4, 3 / 1, 0.0], [5 / 10, 5 / 4, 0.0]]]]],
                                     np.float32)  # (B, h, w, b, n)
    cfg = LossConfig(flux=1.0)
    exact = np.log(np.array([2 / 3, 1 / 3, 1e-9, 1 / 5, 4 / 5, 1e-9], np.float32))
    t = pais_loss_terms(_outputs(h=1, w=1, b=2, logits=exact.reshape(1, 1, 1, 6)), labels, 2,
                        3, cfg)
    assert float(t["flux"]) == pytest.approx(0.0, abs=1e-6)
    # band 1 right, band 0 swapped: only band 0's errors (A −25%, B +100%) count, over the
    # sources' shares seen in both bands (band 0: 2/4 + 1/1; band 1: 1/10 + 4/4)
    wrong = np.log(np.array([1 / 3, 2 / 3, 1e-9, 1 / 5, 4 / 5, 1e-9], np.float32))
    t = pais_loss_terms(_outputs(h=1, w=1, b=2, logits=wrong.reshape(1, 1, 1, 6)), labels, 2,
                        3, cfg)
    assert float(t["flux"]) == pytest.approx((1 / 4 + 1.0) / (1.5 + 1.1), rel=1e-4)


def _one_pixel_apart(cfg, h: int, w: int, logits, fractions) -> dict:
    """The loss terms of an h × w crop whose pixels are all owned by their nearest source but
    the first, which has the true ``fractions`` and the predicted ``logits`` (S/N 20)."""
    labels = _labels(h=h, w=w)
    labels["fractions"][:] = [1.0, 0.0, 0.0]
    labels["fractions"][0, 0, 0, 0] = fractions
    labels["snr"] = np.full((1, h, w), 20.0, np.float32)
    out = np.zeros((1, h, w, 3), np.float32)
    out[0, 0, 0] = logits
    return pais_loss_terms(_outputs(h=h, w=w, logits=out), labels, 1, 3, cfg)


def test_shared_term_counts_the_shared_pixels_however_rare():
    """``L_m^shared`` is the cross-entropy of the shared, bright pixels alone: one shared pixel
    among many owned ones gives the same term as alone, a nearest-takes-all prediction scores
    worse there than the true shares, and the total loss carries it with its weight."""
    cfg = LossConfig(fraction_shared=4.0)

    def case(h, w, logits):  # one pixel shared half and half
        return _one_pixel_apart(cfg, h, w, logits, [0.5, 0.5, 0.0])

    true_shares = np.log([0.5, 0.5, 1e-6]).astype(np.float32)
    nearest_takes_all = np.log([0.9, 0.1 - 1e-6, 1e-6]).astype(np.float32)
    alone, among = case(1, 1, true_shares), case(8, 8, true_shares)
    assert float(alone["shared"]) == pytest.approx(np.log(2), rel=1e-3)
    assert float(among["shared"]) == pytest.approx(float(alone["shared"]), rel=1e-5)
    assert float(case(8, 8, nearest_takes_all)["shared"]) > float(among["shared"]) + 0.3
    plain = pais_loss_terms(_outputs(h=1, w=1), _labels(h=1, w=1), 1, 3, LossConfig())
    assert "shared" not in plain  # off by default: the paper's loss
    without = {k: v for k, v in alone.items() if k not in ("loss", "shared")}
    assert float(alone["loss"]) == pytest.approx(
        15 * float(without["center"]) + 0.06 * float(without["vectors"])
        + 4 * float(without["fractions"]) + 2 * float(without["entropy"])
        + 4 * float(alone["shared"]), rel=1e-5)


def test_misordered_term_counts_the_pixels_a_farther_source_owns():
    """``L_m^misordered`` is the cross-entropy of the bright pixels whose light is mostly a
    farther source's: one such pixel among many owned by their nearest source gives the same
    term as alone, giving it to the nearest source scores worse than giving it to its owner,
    and pixels shared half and half with the nearest source do not count."""
    cfg = LossConfig(fraction_misordered=2.0)

    def case(h, w, logits, owned_by=(0.1, 0.9, 0.0)):  # one pixel mostly the second's
        return _one_pixel_apart(cfg, h, w, logits, owned_by)

    owner = np.log([0.1, 0.9, 1e-6]).astype(np.float32)
    nearest = np.log([0.9, 0.1 - 1e-6, 1e-6]).astype(np.float32)
    alone, among = case(1, 1, owner), case(8, 8, owner)
    assert float(among["misordered"]) == pytest.approx(float(alone["misordered"]), rel=1e-5)
    assert float(case(8, 8, nearest)["misordered"]) > float(among["misordered"]) + 1.0
    assert float(case(8, 8, nearest, owned_by=(0.5, 0.5, 0.0))["misordered"]) == 0.0
    assert "misordered" not in pais_loss_terms(_outputs(h=1, w=1), _labels(h=1, w=1), 1, 3,
                                               LossConfig())
    without = {k: v for k, v in alone.items() if k not in ("loss", "misordered")}
    assert float(alone["loss"]) == pytest.approx(
        15 * float(without["center"]) + 0.06 * float(without["vectors"])
        + 4 * float(without["fractions"]) + 2 * float(without["entropy"])
        + 2 * float(alone["misordered"]), rel=1e-5)


def test_flux_term_needs_its_labels():
    with pytest.raises(ValueError, match="flux_weight"):
        pais_loss_terms(_outputs(h=1, w=1), _labels(h=1, w=1), 1, 3, LossConfig(flux=1.0))


def test_mixed_bfloat16_training_starts_from_a_float32_model(tmp_path, small_model):
    from mosaic_pais.training.train import TrainConfig, with_precision

    path = tmp_path / "m.keras"
    small_model.save(path)
    cfg = TrainConfig(filters=SMALL, n_bands=2, precision="mixed_bfloat16", init_from=str(path))
    mixed = with_precision(load_model(path), cfg)
    assert mixed.layers[-1].dtype_policy.compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"  # left as it was
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    x[..., -1] = 1
    full = small_model(x, training=False)["center"]
    half = mixed(x, training=False)["center"]
    # the same weights in bfloat16 (8 bits of mantissa): the same map to about 1%
    np.testing.assert_allclose(np.asarray(half, np.float32), np.asarray(full), atol=0.03)


def test_a_kept_checkpoint_exports_the_network_it_holds(tmp_path, small_model):
    """A run folder's configuration and checkpoint alone (no training data) give back the
    float32 network the checkpoint holds; a folder without one is refused in one line."""
    import json
    from dataclasses import asdict

    import tensorflow as tf

    from mosaic_pais.errors import BadInputError
    from mosaic_pais.training.train import TrainConfig, export_checkpoint, with_precision

    cfg = TrainConfig(filters=SMALL, n_bands=2, precision="mixed_bfloat16")
    mixed = with_precision(small_model, cfg)
    mixed.set_weights([w * 1.5 for w in small_model.get_weights()])  # not the start's
    (tmp_path / "config.json").write_text(json.dumps(asdict(cfg)))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=mixed), str(tmp_path / "ckpt"),
                               max_to_keep=1).save(checkpoint_number=7)
    exported = load_model(export_checkpoint(tmp_path, tmp_path / "out.keras"))
    assert exported.layers[-1].dtype_policy.compute_dtype == "float32"
    for kept, back in zip(mixed.get_weights(), exported.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, back)
    with pytest.raises(BadInputError, match="no checkpoint"):
        export_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("bands", list(shipped_models()))
def test_every_shipped_model_matches_its_card(bands):
    """Each shipped model reads the bands its card names, its checksum is the card's, and
    the card names a PSF file per band that ships beside it (the package's data)."""
    from mosaic_pais.runtime.pipeline import psf_paths

    path = shipped_models()[bands]
    card = model_metadata(path)
    model = load_model(path)
    assert int(model.inputs[0].shape[-1]) - 1 == len(bands) == len(card["bands"])
    assert file_sha256(path) == card["sha256"]
    files = psf_paths(None, path, card, list(bands))
    if card["psf"].get("per_image"):  # a ground-based survey's: its seeing is the image's
        assert files is None
    else:
        assert files is not None and len(files) == len(bands)
        assert all(f.is_file() and f.parent == path.parent for f in files)
    assert model_for_bands(list(bands)[::-1]) == path
