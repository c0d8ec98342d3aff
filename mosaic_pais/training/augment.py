"""Geometric augmentation of PCR training samples that keeps labels consistent with the image.

A sample is a dict of numpy arrays for one tile: ``image (b, h, w)``, ``valid (h, w)``,
``center (h, w)``, ``vectors (h, w, n, 2)`` as (dy, dx), ``fractions (h, w, b, n)``, and
optionally ``flux_weight (h, w, n)``: every per-pixel label moves with its pixel.

Rotating or flipping the image moves every source, so the claim vectors must be transformed
as vectors, not only moved as pixels. In array coordinates (y down, x right) an image rotation
by ``angle`` about the tile centre maps a position offset ``(y, x)`` to

    y' = cos·y − sin·x,   x' = cos·x + sin·y,

and each claim vector transforms the same way (the research prototype moved them as pixels only).
The tests compare
every transform with the encoding of the transformed scene.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["PIXEL_LABELS", "flip", "rot90", "rotate", "crop", "random_augment", "random_edge_mask"]

#: per-pixel labels moved with their pixels (the image, whose first axis is the band, apart)
PIXEL_LABELS = ("valid", "center", "vectors", "fractions", "flux_weight")


def flip(sample: dict, axis: int) -> dict:
    """Mirror along y (``axis=0``) or x (``axis=1``)."""
    out = dict(sample)
    out["image"] = np.flip(sample["image"], axis=1 + axis)
    for key in PIXEL_LABELS:
        if key in sample:
            out[key] = np.flip(sample[key], axis=axis)
    vec = out["vectors"].copy()
    vec[..., axis] *= -1
    out["vectors"] = vec
    return out


def rot90(sample: dict, k: int = 1) -> dict:
    """Rotate by ``k`` quarter turns, as ``np.rot90`` does (counter-clockwise on screen).

    ``np.rot90`` sends pixel (y, x) of an (h, w) array to (w − 1 − x, y), so a vector
    (dy, dx) becomes (−dx, dy).
    """
    out = dict(sample)
    k = k % 4
    out["image"] = np.rot90(sample["image"], k, axes=(1, 2))
    for key in PIXEL_LABELS:
        if key in sample:
            out[key] = np.rot90(sample[key], k, axes=(0, 1))
    vec = out["vectors"]
    for _ in range(k):
        vec = np.stack([-vec[..., 1], vec[..., 0]], axis=-1)
    out["vectors"] = np.ascontiguousarray(vec)
    return out


def rotate(sample: dict, angle: float) -> dict:
    """Rotate by ``angle`` radians about the tile centre, y' = cos·y − sin·x, x' = cos·x + sin·y.

    The image and centre map are interpolated bilinearly; pixels that come from outside the
    tile are marked invalid (never filled by mirroring). Vectors and fractions are taken from
    the nearest source pixel, and each vector is corrected for the sub-pixel distance between
    that pixel and the exact back-rotated position before it is rotated, so it still points
    exactly at its source.
    """
    h, w = sample["center"].shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    cos, sin = np.cos(angle), np.sin(angle)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # inverse map: output offset (y', x') comes from R^T (y', x')
    oy, ox = yy - cy, xx - cx
    src_y = cos * oy + sin * ox + cy
    src_x = -sin * oy + cos * ox + cx
    coords = np.stack([src_y, src_x])
    inside = (src_y > -0.5) & (src_y < h - 0.5) & (src_x > -0.5) & (src_x < w - 0.5)
    ny = np.clip(np.rint(src_y).astype(int), 0, h - 1)
    nx = np.clip(np.rint(src_x).astype(int), 0, w - 1)

    out = dict(sample)
    out["image"] = np.stack([
        ndimage.map_coordinates(band, coords, order=1, mode="constant", cval=0.0)
        for band in np.asarray(sample["image"], np.float32)
    ]).astype(np.float32)
    out["center"] = ndimage.map_coordinates(np.asarray(sample["center"], np.float32), coords,
                                            order=1, mode="nearest").astype(np.float32)
    valid = sample["valid"][ny, nx].astype(bool) & inside
    out["valid"] = valid.astype(sample["valid"].dtype)
    vec = np.asarray(sample["vectors"], np.float64)[ny, nx]  # (h, w, n, 2)
    vec = vec + np.stack([ny - src_y, nx - src_x], axis=-1)[:, :, None, :]
    out["vectors"] = np.stack([cos * vec[..., 0] - sin * vec[..., 1],
                               cos * vec[..., 1] + sin * vec[..., 0]],
                              axis=-1).astype(np.float32)
    out["fractions"] = np.asarray(sample["fractions"])[ny, nx]
    if "flux_weight" in sample:
        out["flux_weight"] = np.asarray(sample["flux_weight"])[ny, nx]
    out["image"] = np.where(valid[None], out["image"], 0.0).astype(np.float32)
    return out


def crop(sample: dict, y0: int, x0: int, size: int) -> dict:
    """A ``size`` × ``size`` window with its top-left pixel at (y0, x0); labels stay exact."""
    sl = (slice(y0, y0 + size), slice(x0, x0 + size))
    out = {key: value[sl] for key, value in sample.items() if key != "image"}
    out["image"] = sample["image"][:, sl[0], sl[1]]
    return out


def random_augment(sample: dict, rng: np.random.Generator, *, crop_size: int | None = None,
                   rotate_probability: float = 0.25) -> dict:
    """Random crop, flips, quarter turns and (sometimes) an arbitrary rotation.

    The arbitrary rotation interpolates the image, which smooths its noise; it is applied to a
    fraction of samples only so the network mostly sees the true noise texture.
    """
    h, w = sample["center"].shape
    if crop_size is not None and crop_size < min(h, w):
        y0 = int(rng.integers(0, h - crop_size + 1))
        x0 = int(rng.integers(0, w - crop_size + 1))
        sample = crop(sample, y0, x0, crop_size)
    if rng.random() < 0.5:
        sample = flip(sample, 0)
    if rng.random() < 0.5:
        sample = flip(sample, 1)
    sample = rot90(sample, int(rng.integers(0, 4)))
    if rng.random() < rotate_probability:
        sample = rotate(sample, float(rng.uniform(0, 2 * np.pi)))
    return {k: np.ascontiguousarray(v) for k, v in sample.items()}


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
