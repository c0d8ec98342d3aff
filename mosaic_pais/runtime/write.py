"""Writing a run's outputs: catalogue (FITS + Parquet), overview picture, provenance.

Every file is written under a temporary name in the same directory and renamed into place, so
an interrupted run never leaves a half-written output behind.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "write_catalog", "write_json", "overview_image", "draw_overview"]


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_catalog(table, output: str | Path) -> list[Path]:
    """``catalog.fits`` (binary table) and ``catalog.parquet`` in ``output``, each column
    with its unit (astropy reads them back from either)."""
    output = Path(output)
    paths = []
    from astropy.table import QTable

    with atomic_path(output / "catalog.fits") as tmp, warnings.catch_warnings():
        # units outside the FITS standard (electron / s, mag(AB)) go into the table's
        # serialized metadata, from which astropy reads them back; a TUNIT for them would
        # not parse
        warnings.filterwarnings("ignore", message=".*could not be saved in native FITS")
        QTable(table).write(tmp, format="fits")
    paths.append(output / "catalog.fits")
    with atomic_path(output / "catalog.parquet") as tmp:
        _write_parquet(table, tmp)
    paths.append(output / "catalog.parquet")
    return paths


def _write_parquet(table, path: Path) -> None:
    """The table as Parquet, each column's unit in its field's metadata (``unit``) and the
    table's metadata in the file's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields, arrays = [], []
    for name in table.colnames:
        column = table[name]
        array = pa.array(np.asarray(column))
        unit = getattr(column, "unit", None)
        fields.append(pa.field(name, array.type,
                               metadata={"unit": unit.to_string()} if unit is not None else None))
        arrays.append(array)
    schema = pa.schema(fields, metadata={str(k): str(v) for k, v in table.meta.items()})
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


def write_json(data: dict, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, default=_jsonable))
    return Path(path)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def overview_image(image, max_side: int = 2048) -> tuple[np.ndarray, int]:
    """A block-averaged copy of the detection band no larger than ``max_side`` and its factor."""
    _, h, w = image.shape
    factor = max(1, int(np.ceil(max(h, w) / max_side)))
    hh, ww = (h // factor) * factor, (w // factor) * factor
    band = image[0, :hh, :ww]
    if hasattr(band, "compute"):
        band = band.reshape(hh // factor, factor, ww // factor, factor).mean(axis=(1, 3))
        small = np.asarray(band.compute())
    else:
        small = np.asarray(band, np.float64).reshape(hh // factor, factor, ww // factor,
                                                     factor).mean(axis=(1, 3))
    return small, factor


def draw_overview(image, catalog, path: str | Path, noise_sigma: float | None = None,
                  title: str = "", truth=None) -> Path:
    """The image (asinh stretch) with detected sources marked; truth as crosses if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    small, factor = overview_image(image)
    sigma = noise_sigma if noise_sigma else np.nanstd(small)
    sigma = max(float(sigma) / factor, 1e-12)  # block averaging lowers the noise
    # in float64 and with non-finite pixels blank: float32 overflows for huge values over a
    # tiny noise, and inf (which nan_to_num makes the largest float) would set the scale
    finite = np.isfinite(small)
    stretched = np.arcsinh(np.where(finite, small, 0.0).astype(np.float64) / (3 * sigma))
    vmax = np.nanpercentile(stretched, 99.7)
    size = 8 if max(small.shape) > 600 else 6
    fig, ax = plt.subplots(figsize=(size, size * small.shape[0] / max(small.shape[1], 1)))
    ax.imshow(stretched, origin="lower", cmap="gray_r", vmin=-1, vmax=max(vmax, 1))
    x = np.asarray(catalog["x"]) / factor
    y = np.asarray(catalog["y"]) / factor
    marker = max(2.0, 12.0 / np.sqrt(factor))
    ax.scatter(x, y, s=marker ** 2, facecolors="none", edgecolors="tab:red", linewidths=0.6,
               label=f"detected ({len(x)})")
    if truth is not None:
        ax.scatter(np.asarray(truth["x"]) / factor, np.asarray(truth["y"]) / factor, s=6,
                   marker="+", color="tab:cyan", linewidths=0.5, label=f"truth ({len(truth)})")
    unit = f"px / {factor}" if factor > 1 else "px"
    ax.set_xlabel(f"x [{unit}]")
    ax.set_ylabel(f"y [{unit}]")
    ax.set_title(title or "mosaic-pais detections")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return Path(path)
