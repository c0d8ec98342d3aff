"""Pictures of a finished run.

* :func:`show_run` (``mosaic-pais show DIR [--id N] [--output PNG]``): the image (asinh
  stretch) with every detection marked, and one source's deblend — the image of its
  neighbourhood, its deblended image, the residual (neighbourhood minus the deblend: the light
  given to the other sources) and its share of each pixel.
* :func:`show_region` (``mosaic-pais show DIR --region x0,x1,y0,y1``, or ``--ra --dec
  --size``): any part of the run at native resolution, each pixel tinted by its owner, with
  the sources' ellipses; it reads that part of the image and of the stores only.
* :func:`show_overview` (``mosaic-pais show DIR --overview``): the run's overview again
  (:func:`mosaic_pais.runtime.overview.overview_figure`), from the preview the run stored.
* :func:`region_view` reads what a region's picture needs; :func:`read_preview` and
  :func:`store_preview` keep the downsampled mosaic in ``pcr.zarr``.

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
from mosaic_pais.runtime.overview import asinh_stretch
from mosaic_pais.runtime.stamps import source_stamp
from mosaic_pais.runtime.write import atomic_path, overview_image

__all__ = ["choose_source", "show_run", "show_region", "show_overview", "region_view",
           "overview_zooms", "read_preview", "store_preview", "parse_region"]

#: blend fraction above which a source counts as blended (the example source is one if it can)
BLENDED = 0.1


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
    # the preview the run stored; a run made before it kept one is downsampled again
    stored = read_preview(run_dir / "pcr.zarr")
    if stored is None:
        ds = open_mosaic(meta["inputs"]["images"],
                         bands=meta["inputs"].get("input_bands", meta["inputs"]["bands"]))
        stored = overview_image(ds["image"].data)
    small, factor = stored
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


def region_view(image, sky, store, catalog, box: tuple[int, int, int, int],
                label: str = "") -> dict:
    """What a region's picture needs (:func:`mosaic_pais.runtime.overview.draw_region`): the
    detection band's pixels in ``box`` (y0, y1, x0, x1) with the sky (a ``SkyMap`` or None)
    subtracted, their owners from the store, and the catalogue's rows inside."""
    from mosaic_pais.runtime.segmentation import owner_labels
    from mosaic_pais.runtime.store import open_array

    y0, y1, x0, x1 = box
    cut = np.asarray(image[0, y0:y1, x0:x1], np.float64)
    if sky is not None:
        cut = cut - sky.window(box)[0]
    labels = owner_labels(open_array(store, "ids")[:, y0:y1, x0:x1],
                          open_array(store, "fractions")[0, :, y0:y1, x0:x1])
    x, y = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    inside = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
    return {"box": tuple(int(v) for v in box), "image": cut, "labels": labels,
            "catalog": catalog[inside], "label": label}


def overview_zooms(image, sky, store, catalog, shape) -> list[dict]:
    """The overview's zoom panels: the most crowded region and the brightest blend."""
    from mosaic_pais.runtime.overview import blend_box, crowded_box

    zooms = [region_view(image, sky, store, catalog, crowded_box(catalog, shape),
                         "most crowded")] if len(catalog) else []
    box = blend_box(catalog, shape)
    if box is not None:
        zooms.append(region_view(image, sky, store, catalog, box, "brightest blend"))
    return zooms


def store_preview(store, preview: np.ndarray, factor: int) -> None:
    """Keep the downsampled mosaic in the store (``preview``, its ``factor`` in its attrs)."""
    import zarr

    group = zarr.open_group(str(store), mode="a")
    if "preview" in group:
        del group["preview"]
    array = group.create_array("preview", shape=preview.shape, dtype="float32",
                               dimension_names=("y_preview", "x_preview"))
    array[:] = preview.astype(np.float32)
    array.attrs["factor"] = int(factor)


def read_preview(store) -> tuple[np.ndarray, int] | None:
    """The stored preview and its factor, or None for a run without one."""
    import zarr

    group = zarr.open_group(str(store), mode="r")
    if "preview" not in group:
        return None
    array = group["preview"]
    return np.asarray(array[:]), int(array.attrs["factor"])


def parse_region(text: str) -> tuple[int, int, int, int]:
    """``"x0,x1,y0,y1"`` (mosaic px) as a box (y0, y1, x0, x1).

    >>> parse_region("100,356,20,276")
    (20, 276, 100, 356)
    """
    try:
        x0, x1, y0, y1 = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise BadInputError(f"--region {text!r}: give x0,x1,y0,y1 in pixels") from None
    if x1 <= x0 or y1 <= y0:
        raise BadInputError(f"--region {text!r}: x1 must exceed x0 and y1 y0")
    return (y0, y1, x0, x1)


def _run_inputs(run_dir: Path, meta: dict):
    """The run's image (lazily) and sky."""
    from mosaic_pais.runtime.background import SkyMap

    ds = open_mosaic(meta["inputs"]["images"], bands=meta["inputs"]["bands"])
    sky = SkyMap.from_json(meta["background"]) if meta.get("background") else None
    return ds, sky


def _sky_box(ds, ra: float, dec: float, size: int) -> tuple[int, int, int, int]:
    """The ``size``² box about a sky position."""
    from astropy.io import fits
    from astropy.wcs import WCS

    header = ds.attrs.get("wcs_header")
    if not header:
        raise BadInputError("--ra/--dec: the run's image has no celestial WCS; use --region")
    x, y = (float(v) for v in
            WCS(fits.Header.fromstring(header)).celestial.world_to_pixel_values(ra, dec))
    h, w = ds["image"].shape[1:]
    if not (0 <= x < w and 0 <= y < h):
        raise BadInputError(f"--ra {ra} --dec {dec} lies outside the mosaic")
    return (int(round(y)) - size // 2, int(round(y)) - size // 2 + size,
            int(round(x)) - size // 2, int(round(x)) - size // 2 + size)


def show_region(run_dir, region: tuple[int, int, int, int] | None = None,
                ra: float | None = None, dec: float | None = None, size: int = 256,
                output=None):
    """Draw a part of a finished run at native resolution (module text).

    ``region`` is (y0, y1, x0, x1) in mosaic px (:func:`parse_region` reads the command
    line's ``x0,x1,y0,y1``); or ``ra``, ``dec`` (degrees) and ``size`` (px) give a box about
    a sky position. With ``output`` the PNG is written and its path returned; without, the
    Matplotlib figure (for a notebook).
    """
    from mosaic_pais.runtime.overview import region_figure

    run_dir = Path(run_dir)
    meta, catalog = _finished_run(run_dir)
    ds, sky = _run_inputs(run_dir, meta)
    if region is None:
        if ra is None or dec is None:
            raise BadInputError("give --region x0,x1,y0,y1 or --ra and --dec")
        region = _sky_box(ds, float(ra), float(dec), int(size))
    h, w = ds["image"].shape[1:]
    y0, y1, x0, x1 = region
    box = (max(y0, 0), min(y1, h), max(x0, 0), min(x1, w))
    if box[1] <= box[0] or box[3] <= box[2]:
        raise BadInputError(f"the region {region} lies outside the {h}×{w} mosaic")
    view = region_view(ds["image"].data, sky, run_dir / "pcr.zarr", catalog, box)
    sigma = float(meta["parameters"]["noise_sigma"][0])
    return _save_or_return(region_figure(view, sigma), output)


def show_overview(run_dir, output=None):
    """The run's overview from its stored preview (no mosaic pixel is read but the zoom
    panels'); with ``output`` the PNG is written and its path returned, else the figure."""
    from mosaic_pais.runtime.overview import overview_figure

    run_dir = Path(run_dir)
    meta, catalog = _finished_run(run_dir)
    preview = read_preview(run_dir / "pcr.zarr")
    if preview is None:
        raise BadInputError(f"{run_dir}: the run stored no preview (made by an earlier "
                            "version); run it again to draw its overview")
    ds, sky = _run_inputs(run_dir, meta)
    zooms = overview_zooms(ds["image"].data, sky, run_dir / "pcr.zarr", catalog,
                           tuple(ds["image"].shape[1:]))
    sigma = float(meta["parameters"]["noise_sigma"][0])
    labels = None
    if preview[1] == 1 and (run_dir / "segmentation.fits").is_file():
        from astropy.io import fits

        labels = fits.getdata(run_dir / "segmentation.fits")
    fig = overview_figure(preview[0], preview[1], catalog, sigma, ds.attrs.get("wcs_header"),
                          zooms, labels=labels)
    return _save_or_return(fig, output)


def _save_or_return(fig, output):
    if output is None:
        return fig
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    pyplot().close(fig)
    return output


def _finished_run(run_dir: Path):
    """A finished run's ``run.json`` and catalogue, or a one-line refusal."""
    if not (run_dir / "run.json").is_file() or not (run_dir / "catalog.fits").is_file():
        raise BadInputError(f"{run_dir}: not a finished mosaic-pais run "
                            "(no run.json/catalog.fits)")
    return (json.loads((run_dir / "run.json").read_text()),
            Table.read(run_dir / "catalog.fits", mask_invalid=False))


#: the most sources marked on the mosaic panel of :func:`show_run`
MOSAIC_MARKERS = 2000


def _draw_mosaic(ax, small: np.ndarray, factor: int, sigma: float, catalog, box,
                 source_id: int, title: str) -> None:
    """The downsampled mosaic with the detections and the drawn source's box."""
    stretched = asinh_stretch(small, max(sigma / factor, 1e-12))
    ax.imshow(stretched, origin="lower", cmap="gray_r", vmin=-1,
              vmax=max(np.nanpercentile(stretched, 99.7), 1))
    # beyond a few thousand markers the mosaic disappears under them: the brightest only
    shown = np.argsort(-np.nan_to_num(np.asarray(catalog["flux"], float)))[:MOSAIC_MARKERS]
    x, y = np.asarray(catalog["x"])[shown] / factor, np.asarray(catalog["y"])[shown] / factor
    marker = max(2.0, 12.0 / np.sqrt(factor))
    label = (f"detected ({len(catalog)})" if len(shown) == len(catalog)
             else f"the {len(shown)} brightest of {len(catalog)} detected")
    ax.scatter(x, y, s=marker ** 2, facecolors="none", edgecolors="tab:red", linewidths=0.6,
               label=label)
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
    cut_s = asinh_stretch(cut, sigma)
    vmax = max(float(np.nanpercentile(cut_s, 99.5)), 1.0)
    row = stamp["row"]
    cx, cy = np.asarray(catalog["x"]), np.asarray(catalog["y"])
    inside = (cx >= x0 - 0.5) & (cx < x1 - 0.5) & (cy >= y0 - 0.5) & (cy < y1 - 0.5)
    panels = [
        (grid[0, 2], cut_s, "neighbourhood", "gray_r", (-1, vmax)),
        (grid[0, 3], asinh_stretch(deblend, sigma), f"deblend of {source_id}", "gray_r",
         (-1, vmax)),
        (grid[1, 2], asinh_stretch(cut - deblend, sigma), "residual (image − deblend)", "gray_r",
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
