"""The segmentation map: each pixel labelled with the source that holds its largest fraction.

SExtractor's ``CHECKIMAGE_TYPE SEGMENTATION`` and photutils' ``SegmentationImage`` give each
pixel one owner; PAIS shares a pixel between up to ``n`` sources. The map here gives it to the
source with the largest fraction in the detection band (0 where no source holds any of it,
the sky), labelled by catalogue ``id``, so that photutils reads it as is
(``SegmentationImage(fits.getdata("segmentation.fits"))``).

The map is written straight into the FITS file block by block (:func:`write_block`, one
task per block core, each writing its rows at their offsets in the file): a mosaic's map is
never in memory whole.

Examples
--------
Two sources sharing a pixel, and a sky pixel that no source claims:

>>> ids = np.array([[[1, 2, -1]], [[2, -1, -1]]])         # (slot, y, x)
>>> fractions = np.array([[[0.3, 1.0, 0.0]], [[0.7, 0.0, 0.0]]])
>>> owner_labels(ids, fractions).tolist()
[[2, 2, 0]]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["owner_labels", "create_segmentation_file", "write_block", "FITS_BLOCK"]

FITS_BLOCK = 2880  # bytes: FITS files come in records of this size


def owner_labels(ids: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """``(y, x)`` int32 owners from ``ids (slot, y, x)`` (catalogue ids, −1 for none) and the
    detection band's ``fractions (slot, y, x)``: the id of the slot with the largest
    fraction, 0 where no slot holds a positive fraction."""
    ids = np.asarray(ids, np.int64)
    held = np.where(ids > 0, np.asarray(fractions, np.float32), -1.0)
    best = held.argmax(axis=0)[None]
    owner = np.take_along_axis(ids, best, axis=0)[0]
    owner = np.where(np.take_along_axis(held, best, axis=0)[0] > 0, owner, 0)
    return owner.astype(np.int32)


def create_segmentation_file(path: str | Path, shape: tuple[int, int],
                             wcs_header: str | None = None, meta: dict | None = None) -> int:
    """An int32 FITS image of ``shape`` at ``path``, every pixel 0 (a sparse file: the data
    are written later by :func:`write_block`); returns the byte offset of its data."""
    from astropy.io import fits

    header = fits.Header()
    if wcs_header:
        header.update(fits.Header.fromstring(wcs_header))
    hdu = fits.PrimaryHDU(data=np.zeros((1, 1), np.int32), header=header)
    hdu.header["NAXIS1"], hdu.header["NAXIS2"] = int(shape[1]), int(shape[0])
    hdu.header["EXTNAME"] = "SEGMENTATION"
    hdu.header["COMMENT"] = ("Each pixel: the catalogue id of the source holding its largest "
                             "fraction; 0 for sky.")
    for key, value in (meta or {}).items():
        hdu.header[key] = value
    block = hdu.header.tostring().encode("ascii")
    data_bytes = int(shape[0]) * int(shape[1]) * 4
    padded = -(-data_bytes // FITS_BLOCK) * FITS_BLOCK
    with open(path, "wb") as handle:
        handle.write(block)
        handle.truncate(len(block) + padded)  # zeros: FITS's padding and the sky's label
    return len(block)


def write_block(path: str | Path, offset: int, width: int, origin: tuple[int, int],
                labels: np.ndarray) -> None:
    """Write a block of ``labels`` whose corner is at ``origin`` (y, x) into the file,
    row by row at their byte offsets (big-endian, as FITS stores integers)."""
    y0, x0 = origin
    rows = np.ascontiguousarray(labels, dtype=">i4")
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(rows.shape[0]):
            os.pwrite(fd, rows[i].tobytes(), offset + ((y0 + i) * width + x0) * 4)
    finally:
        os.close(fd)
