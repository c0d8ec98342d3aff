"""Pictures of a finished run.

* :func:`show_run` (``mosaic-pais show DIR [--id N] [--output PNG]``): the image (asinh
  stretch) with every detection marked, and one source's deblend — the image of its
  neighbourhood, its deblended image, the residual (neighbourhood minus the deblend: the light
  given to the other sources) and its share of each pixel.

Pictures of an evaluation are in :mod:`mosaic_pais.evaluation.plots`.

Matplotlib is imported inside the functions, with the Agg backend unless one is already
chosen (a notebook keeps its inline backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.table import Table
from matplotlib.patches import Rectangle

from mosaic_pais.errors import BadInputError
from mosaic_pais.figures import pyplot
from mosaic_pais.runtime.open import open_mosaic
from mosaic_pais.runtime.stamps import source_stamp
from mosaic_pais.runtime.write import atomic_path, overview_image

__all__ = ["choose_source", "show_run"]

#: blend fraction above which a source counts as blended (the example source is one if it can)
BLENDED = 0.1


def _stretch(values, sigma: float):
    return np.arcsinh(np.nan_to_num(np.asarray(values, np.float64)) / (3 * sigma))


# ------------------------------------------------------------------------------------------
# a run and one source's deblend


def choose_source(catalog) -> int:
    """The source ``show`` draws by default: a bright, compact blend away from the edge.

    Among sources with ``blend_fraction`` > 0.1 that do not touch the mosaic edge (flag 1),
    the one with the highest ``flux / (r50² + 1)`` (bright for its size: a faint source that
    claims a wide patch of noise does not win); without such a source, the same among all
    sources off the edge; failing that, among all.

    Examples
    --------
    >>> from astropy.table import Table
    >>> cat = Table({"id": [0, 1, 2, 3], "flux": [5.0, 3.0, 9.0, 4.0],
    ...              "r50": [2.0, 2.0, 2.0, 20.0],
    ...              "blend_fraction": [0.0, 0.4, 0.2, 0.5], "flags": [0, 0, 1, 0]})
    >>> choose_source(cat)
    1
    """
    if len(catalog) == 0:
        raise BadInputError("the catalogue has no sources to show")
    flux = np.nan_to_num(np.asarray(catalog["flux"], float), nan=-np.inf)
    if "r50" in catalog.colnames:
        r50 = np.nan_to_num(np.asarray(catalog["r50"], float), nan=np.inf)
        flux = flux / (r50 ** 2 + 1)
    flags = np.asarray(catalog["flags"]) if "flags" in catalog.colnames else np.zeros(len(flux))
    blend = np.asarray(catalog["blend_fraction"], float) \
        if "blend_fraction" in catalog.colnames else np.zeros(len(flux))
    inner = (np.asarray(flags).astype(np.int64) & 1) == 0
    for candidates in (inner & (blend > BLENDED), inner, np.ones(len(flux), bool)):
        if candidates.any():
            rows = np.flatnonzero(candidates)
            return int(catalog["id"][rows[np.argmax(flux[rows])]])
    raise AssertionError("unreachable")


def show_run(run_dir, source_id: int | None = None, output=None, size: int | None = None
             ) -> Path:
    """Draw a finished run: the image with its detections and one source's deblend.

    Parameters
    ----------
    run_dir : path
        The ``--output`` directory of ``mosaic-pais run`` (``catalog.fits``, ``pcr.zarr``,
        ``run.json``; the input image must still be where ``run.json`` says).
    source_id : int, optional
        The ``id`` of the source whose deblend is drawn (default: :func:`choose_source`).
    output : path, optional
        The PNG to write (default ``run_dir/show_<id>.png``).
    size : int, optional
        Side of the neighbourhood box in pixels (default 8·r50, at least 41 and at most 201).

    Returns
    -------
    Path
        The PNG written.
    """
    run_dir = Path(run_dir)
    meta, catalog = _finished_run(run_dir)
    if source_id is None:
        source_id = choose_source(catalog)
    rows = np.flatnonzero(np.asarray(catalog["id"]) == int(source_id))
    if len(rows) == 0:
        raise BadInputError(f"source id {source_id} is not in {run_dir}/catalog.fits")
    if size is None:
        r50 = float(catalog["r50"][rows[0]])
        size = int(np.clip(8 * r50 if np.isfinite(r50) else 41, 41, 201)) | 1
    stamp = source_stamp(run_dir, int(source_id), size)
    sigma = float(meta.get("parameters", {}).get("noise_sigma", [0.0])[0]) or None
    ds = open_mosaic(meta["inputs"]["images"], bands=meta["inputs"]["bands"])
    small, factor = overview_image(ds["image"].data)
    if sigma is None:
        sigma = float(np.nanstd(small)) * factor
    plt = pyplot()
    fig = plt.figure(figsize=(14, 7))
    grid = fig.add_gridspec(2, 4)
    images = meta["inputs"]["images"]
    title = (f"{Path(images[0]).name if len(images) == 1 else run_dir.name}: "
             f"{len(catalog)} sources")
    _draw_mosaic(fig.add_subplot(grid[:, :2]), small, factor, sigma, catalog, stamp["box"],
                 source_id, title)
    _draw_deblend(fig, grid, stamp, catalog, sigma, source_id)
    row = stamp["row"]
    fig.suptitle(f"source {source_id}: x = {float(row['x']):.1f}, y = {float(row['y']):.1f}, "
                 f"flux ({stamp['bands'][0]}) = {float(row['flux']):.4g}, blend fraction "
                 f"{float(row['blend_fraction']):.2f}, r50 = {float(row['r50']):.1f} px",
                 fontsize=10)
    fig.tight_layout()
    output = Path(output) if output else run_dir / f"show_{int(source_id)}.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return output


def _finished_run(run_dir: Path):
    """A finished run's ``run.json`` and catalogue, or a one-line refusal."""
    if not (run_dir / "run.json").is_file() or not (run_dir / "catalog.fits").is_file():
        raise BadInputError(f"{run_dir}: not a finished mosaic-pais run "
                            "(no run.json/catalog.fits)")
    return (json.loads((run_dir / "run.json").read_text()),
            Table.read(run_dir / "catalog.fits", mask_invalid=False))


def _draw_mosaic(ax, small: np.ndarray, factor: int, sigma: float, catalog, box,
                 source_id: int, title: str) -> None:
    """The downsampled mosaic with the detections and the drawn source's box."""
    stretched = _stretch(small, max(sigma / factor, 1e-12))
    ax.imshow(stretched, origin="lower", cmap="gray_r", vmin=-1,
              vmax=max(np.nanpercentile(stretched, 99.7), 1))
    x, y = np.asarray(catalog["x"]) / factor, np.asarray(catalog["y"]) / factor
    marker = max(2.0, 12.0 / np.sqrt(factor))
    ax.scatter(x, y, s=marker ** 2, facecolors="none", edgecolors="tab:red", linewidths=0.6,
               label=f"detected ({len(catalog)})")
    y0, y1, x0, x1 = box
    ax.add_patch(Rectangle((x0 / factor - 0.5, y0 / factor - 0.5), (x1 - x0) / factor,
                           (y1 - y0) / factor, fill=False, edgecolor="tab:blue", linewidth=1.5,
                           label=f"source {source_id}"))
    unit = f"px / {factor}" if factor > 1 else "px"
    ax.set_xlabel(f"x [{unit}]")
    ax.set_ylabel(f"y [{unit}]")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)


def _draw_deblend(fig, grid, stamp: dict, catalog, sigma: float, source_id: int) -> None:
    """Four panels: the neighbourhood, the deblend, the residual and the source's share."""
    cut = np.nan_to_num(stamp["image"][0])
    deblend = stamp["deblend"][0]
    share = np.divide(deblend, cut, out=np.zeros_like(deblend), where=cut != 0)
    y0, y1, x0, x1 = stamp["box"]
    extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
    cut_s = _stretch(cut, sigma)
    vmax = max(float(np.nanpercentile(cut_s, 99.5)), 1.0)
    row = stamp["row"]
    cx, cy = np.asarray(catalog["x"]), np.asarray(catalog["y"])
    inside = (cx >= x0 - 0.5) & (cx < x1 - 0.5) & (cy >= y0 - 0.5) & (cy < y1 - 0.5)
    panels = [
        (grid[0, 2], cut_s, "neighbourhood", "gray_r", (-1, vmax)),
        (grid[0, 3], _stretch(deblend, sigma), f"deblend of {source_id}", "gray_r", (-1, vmax)),
        (grid[1, 2], _stretch(cut - deblend, sigma), "residual (image − deblend)", "gray_r",
         (-1, vmax)),
        (grid[1, 3], np.clip(share, 0, 1), "its share of each pixel", "viridis", (0, 1)),
    ]
    for spec, data, title, cmap, (lo, hi) in panels:
        pax = fig.add_subplot(spec)
        shown = pax.imshow(data, origin="lower", cmap=cmap, vmin=lo, vmax=hi, extent=extent)
        pax.scatter(cx[inside], cy[inside], s=30, facecolors="none", edgecolors="tab:red",
                    linewidths=0.7)
        pax.scatter([row["x"]], [row["y"]], s=60, marker="+", color="tab:blue", linewidths=1.2)
        pax.set_xlim(extent[0], extent[1])
        pax.set_ylim(extent[2], extent[3])
        pax.set_title(title, fontsize=9)
        pax.tick_params(labelsize=7)
        if cmap == "viridis":
            fig.colorbar(shown, ax=pax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
