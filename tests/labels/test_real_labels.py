"""The paper's real labels of GOODS-S cutout 1903 decode and re-encode as expected."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mosaic_pais.pcr import center_map, decode, encode

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "pcr_1903_f160w.npz")


@pytest.fixture(scope="module")
def labels():
    d = np.load(DATA)
    return {k: d[k] for k in d.files}


def test_decode_stored_labels(labels):
    image = labels["image"][None].astype(np.float64)
    decoded = decode(image, labels["center"], labels["vectors"].astype(np.float32),
                     labels["fractions"], threshold=0.1, window=7)
    assert len(decoded.peaks) == 9  # the 9 catalogue sources of the cutout
    deblends = decoded.deblend(image)
    np.testing.assert_allclose(deblends.sum(0), image, atol=1e-6)


def test_reencoding_reproduces_the_stored_conventions(labels):
    decoded = decode(labels["image"][None], labels["center"],
                     labels["vectors"].astype(np.float32), labels["fractions"], window=7)
    centers = decoded.peaks.yx
    # the stored C^c: σ = 8 px Gaussians combined by maximum (integer centres in the prototype)
    assert np.abs(center_map(centers, (256, 256), 8.0) - labels["center"]).max() < 0.01
    pcr = encode(centers, decoded.deblend(labels["image"][None]), center_sigma=8.0)
    # same (dy, dx) order and nearest-first slots: every vector within a pixel of the stored one
    assert np.mean(np.abs(pcr.vectors - labels["vectors"]).max(-1) <= 1.0) > 0.99


def test_catalogue_centres_are_offset_from_the_flux(labels):
    """The research prototype's labels: the stored centres sit ~(+4, +2) px (y, x) from the
    light."""
    from scipy import ndimage

    image = ndimage.gaussian_filter(labels["image"].astype(np.float64), 1.5)
    decoded = decode(labels["image"][None], labels["center"],
                     labels["vectors"].astype(np.float32), labels["fractions"], window=7)
    offsets = []
    for cy, cx in decoded.peaks.yx:
        y0, x0 = int(cy) - 8, int(cx) - 8
        patch = image[max(y0, 0):int(cy) + 9, max(x0, 0):int(cx) + 9]
        py, px = np.unravel_index(np.argmax(patch), patch.shape)
        offsets.append((py + max(y0, 0) - cy, px + max(x0, 0) - cx))
    np.testing.assert_allclose(np.median(offsets, 0), [-4.0, -2.0], atol=1.0)
