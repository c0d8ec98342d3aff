"""Deblended images of chosen sources, cut out of a finished run's outputs.

A source's deblended image is ``Σ_k [ids_k = id] · fractions_k · image`` (the image with the
run's sky subtracted, :mod:`mosaic_pais.runtime.background`) over a box around it
(``size`` px, default 4·r90 with a floor of 33 px), read from ``pcr.zarr`` and the run's input
image; nothing else is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError

__all__ = ["source_stamp", "write_stamps"]


def source_stamp(run_dir, source_id: int, size: int | None = None) -> dict:
    """The deblended image (band, h, w) of one source, with its box and the image cut-out."""
    from astropy.table import Table

    from mosaic_pais.runtime.open import open_mosaic
    from mosaic_pais.runtime.store import open_array

    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not meta_path.is_file() or not (run_dir / "pcr.zarr").exists():
        raise BadInputError(f"{run_dir}: not a finished mosaic-pais run (no run.json/pcr.zarr)")
    meta = json.loads(meta_path.read_text())
    catalog = Table.read(run_dir / "catalog.fits", mask_invalid=False)
    rows = np.flatnonzero(np.asarray(catalog["id"]) == int(source_id))
    if len(rows) == 0:
        raise BadInputError(f"source id {source_id} is not in {run_dir}/catalog.fits")
    row = catalog[rows[0]]
    bands = meta["inputs"]["bands"]  # the order the run measured them in (its model's)
    given = meta["inputs"].get("input_bands", bands)  # the order of the images' planes
    ds = open_mosaic(meta["inputs"]["images"], bands=given)
    if given != bands:
        ds = ds.isel(band=[given.index(b) for b in bands])
    _, h, w = ds["image"].shape
    r90 = float(row["r90"]) if np.isfinite(row["r90"]) else 8.0
    half = (size or max(33, int(np.ceil(8 * r90)) | 1)) // 2
    cy, cx = int(round(float(row["y"]))), int(round(float(row["x"])))
    y0, y1 = max(cy - half, 0), min(cy + half + 1, h)
    x0, x1 = max(cx - half, 0), min(cx + half + 1, w)
    image = np.asarray(ds["image"][:, y0:y1, x0:x1].values, np.float64)
    if meta.get("background"):  # the run measured the image with its sky subtracted
        from mosaic_pais.runtime.background import SkyMap

        image = image - SkyMap.from_json(meta["background"]).window((y0, y1, x0, x1))
    ids = np.asarray(open_array(run_dir / "pcr.zarr", "ids")[:, y0:y1, x0:x1])
    fractions = np.asarray(open_array(run_dir / "pcr.zarr", "fractions")[:, :, y0:y1, x0:x1])
    mine = (ids == int(source_id))[None]  # (1, n, h, w)
    share = np.where(mine, fractions, 0.0).sum(1)  # (band, h, w)
    deblend = np.nan_to_num(image) * share
    return {"deblend": deblend, "image": image, "box": (y0, y1, x0, x1), "row": row,
            "wcs_header": ds.attrs.get("wcs_header"), "bands": list(ds["band"].values)}


def write_stamps(run_dir, ids, output=None, size: int | None = None) -> list[Path]:
    """FITS files ``stamp_<id>.fits`` (deblend, then the image cut-out) with a shifted WCS."""
    from astropy.io import fits

    from mosaic_pais.runtime.write import atomic_path

    run_dir = Path(run_dir)
    output = Path(output) if output else run_dir / "stamps"
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for source_id in ids:
        s = source_stamp(run_dir, int(source_id), size)
        header = fits.Header()
        if s["wcs_header"]:
            header = fits.Header.fromstring(s["wcs_header"])
            for key in ("CRPIX1", "CRPIX2"):
                if key in header:
                    header[key] -= s["box"][2] if key == "CRPIX1" else s["box"][0]
        header["SRCID"] = int(source_id)
        header["BOX"] = ",".join(map(str, s["box"]))
        header["BANDS"] = ",".join(map(str, s["bands"]))
        primary = fits.PrimaryHDU(s["deblend"].astype(np.float32), header=header)
        primary.header["EXTNAME"] = "DEBLEND"
        cut = fits.ImageHDU(s["image"].astype(np.float32), header=header, name="IMAGE")
        path = output / f"stamp_{int(source_id)}.fits"
        with atomic_path(path) as tmp:
            fits.HDUList([primary, cut]).writeto(tmp)
        paths.append(path)
    return paths
