"""The network as a run computes it: batch norms folded, bfloat16, the decoder's upsampling."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mosaic_pais.errors import BadInputError  # noqa: E402
from mosaic_pais.nn.layers import FoldsBatchNorm, FuseUp  # noqa: E402
from mosaic_pais.nn.model import (  # noqa: E402
    PAISPredictor,
    build_pais_model,
    cpu_has_bfloat16,
    inference_network,
    load_model,
    resolve_precision,
    split_outputs,
)


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.fixture(scope="module")
def tiles():
    rng = np.random.default_rng(3)
    x = np.zeros((2, 128, 128, 2), np.float32)
    x[..., 0] = rng.normal(0, 1, (2, 128, 128))
    yy, xx = np.mgrid[:128, :128]
    for cy, cx, peak in ((40, 50, 60.0), (46, 58, 25.0), (90, 90, 8.0)):
        x[..., 0] += peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0 ** 2))
    x[..., 1] = 1.0
    return x


def _outputs(model, x):
    return {k: np.asarray(v, np.float32) for k, v in model(x, training=False).items()}


def test_folded_network_computes_what_the_trained_one_does(shipped, tiles):
    folded = inference_network(shipped, "float32")
    assert any(isinstance(layer, FoldsBatchNorm) and layer.folded for layer in folded.layers)
    assert not any("batch_normalization" in w.path for w in folded.weights)
    a, b = _outputs(shipped, tiles), _outputs(folded, tiles)
    np.testing.assert_allclose(b["center"], a["center"], atol=1e-5)
    np.testing.assert_allclose(b["fraction_logits"], a["fraction_logits"], atol=1e-4)
    np.testing.assert_allclose(b["vectors"], a["vectors"], atol=1e-3)


def test_folding_uses_the_norms_moving_statistics():
    keras.utils.set_random_seed(1)
    model = build_pais_model(filters=(4, 8, 8, 8, 8))
    rng = np.random.default_rng(1)
    for weight in model.weights:  # statistics far from a fresh norm's 0 and 1
        if "batch_normalization" in weight.path:
            low, high = (0.5, 2.0) if weight.name in ("moving_variance", "gamma") else (-1, 1)
            weight.assign(rng.uniform(low, high, weight.shape).astype(np.float32))
    x = rng.normal(0, 3, (1, 64, 64, 2)).astype(np.float32)
    a, b = _outputs(model, x), _outputs(inference_network(model), x)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-4, err_msg=key)


def test_folded_layers_round_trip_their_config(shipped):
    for layer in inference_network(shipped).layers:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config, layer.name


def test_bfloat16_network_stays_close_to_float32(shipped, tiles):
    a, b = _outputs(shipped, tiles), _outputs(inference_network(shipped, "bfloat16"), tiles)
    assert np.abs(b["center"] - a["center"]).max() < 0.05
    fa = split_outputs(a, 1, 3).fractions
    fb = split_outputs(b, 1, 3).fractions
    assert np.abs(fb - fa).mean() < 0.01
    assert np.median(np.abs(b["vectors"] - a["vectors"])) < 0.1  # px


def test_fuse_up_equals_upsampling_then_projecting():
    keras.utils.set_random_seed(2)
    layer = FuseUp(6)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 10, 5)).astype(np.float32)
    skip = rng.normal(size=(2, 16, 20, 3)).astype(np.float32)
    got = np.asarray(layer(x, skip, training=False))
    up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    y = layer.proj_x(up) + layer.proj_skip(skip)
    expected = np.asarray(keras.ops.relu(layer.bn(layer.conv(y), training=False)))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_precisions_resolve_and_bad_ones_are_refused(tmp_path):
    assert resolve_precision("bfloat16") == "bfloat16"
    assert resolve_precision("auto", on_gpu=True) == "float32"
    with pytest.raises(BadInputError, match="precision"):
        resolve_precision("float16")
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bfloat16(flags)
    flags.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not cpu_has_bfloat16(flags)
    assert not cpu_has_bfloat16(tmp_path / "missing")


def test_predictor_in_bfloat16_predicts_the_same_sources(shipped, tiles):
    sigma = [1.0]
    images = np.moveaxis(tiles[..., :1], -1, 1)
    f32 = PAISPredictor(shipped, precision="float32")(images, sigma)
    bf16 = PAISPredictor(shipped, precision="bfloat16")
    assert bf16.precision == "bfloat16"
    pred = bf16(images, sigma)
    assert pred.center.dtype == np.float32 and pred.fractions.dtype == np.float32
    assert np.abs(pred.center - f32.center).max() < 0.05
    np.testing.assert_allclose(pred.fractions.sum(-1), 1.0, atol=1e-5)
