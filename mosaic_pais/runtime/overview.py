"""Pictures of a run that read at any mosaic size, reading only what they show.

* :func:`overview_figure` — the whole mosaic, downsampled (the run stores the downsampled image,
  ``preview``, in ``pcr.zarr``, so that drawing it later reads no mosaic pixel), with an asinh
  stretch set by the noise so that faint structure shows. Sources are drawn as their ellipses
  where they can be told apart at that scale; where they cannot, as contours of source density
  (sources per 1,000² px), with the outline of the regions without data. Axes in mosaic pixels,
  and RA/Dec (astropy's WCSAxes) when the mosaic has a WCS. Beside it, zoom panels at native
  resolution: the most crowded region and the brightest blend, each pixel coloured by the
  source that owns it (the segmentation), with the detections' ellipses.
* :func:`region_figure` — any part of a run at native resolution (``mosaic-pais show RUN
  --region x0,x1,y0,y1``), reading that part of the image and of the stores only.

Both return a Matplotlib figure, so a notebook shows them as they are.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Ellipse, Rectangle

from mosaic_pais.figures import pyplot

__all__ = ["PREVIEW_SIDE", "asinh_stretch", "separable", "owner_colours", "crowded_box",
           "blend_box", "overview_figure", "region_figure", "draw_region"]

PREVIEW_SIDE = 2048       # px: the longest side of the stored preview
#: sources are drawn one by one when their markers would cover less than this share of the
#: picture; beyond, as a density layer
MARKER_COVER = 0.15
ZOOM_SIDE = 256           # px: the side of the zoom panels
DENSITY_CELL = 1000       # px: the density layer counts sources per this many pixels squared
DISPLAY_SIDE = 900        # px: about how wide the overview's main panel is rendered


def asinh_stretch(values, sigma: float) -> np.ndarray:
    """asinh(value / 3σ) in float64, non-finite pixels blank (0): an infinity made the largest
    float would overflow the division.

    >>> asinh_stretch(np.array([0.0, 3.0, np.inf]), 1.0).round(3).tolist()
    [0.0, 0.881, 0.0]
    """
    values = np.asarray(values, np.float64)
    return np.arcsinh(np.where(np.isfinite(values), values, 0.0) / (3 * max(sigma, 1e-12)))


def separable(catalog, shape: tuple[int, int], display: int = DISPLAY_SIDE) -> bool:
    """Whether the sources' markers (their footprints, at least 1.5 rendered px in radius)
    would cover less than :data:`MARKER_COVER` of a picture of a ``shape`` mosaic rendered
    ``display`` px across.

    >>> from astropy.table import Table
    >>> few = Table({"kron_radius": [5.0] * 3000})
    >>> separable(few, (2048, 2048)), separable(few, (25000, 25000))
    (True, True)
    >>> many = Table({"kron_radius": [5.0] * 100000})
    >>> separable(many, (25000, 25000))
    False
    """
    if len(catalog) == 0:
        return True
    scale = display / max(shape)
    radius = np.nan_to_num(np.asarray(catalog["kron_radius"], float), nan=3.5) * scale
    cover = np.pi * np.maximum(radius, 1.5) ** 2
    return float(cover.sum()) < MARKER_COVER * (shape[0] * scale) * (shape[1] * scale)


def owner_colours(labels: np.ndarray) -> np.ndarray:
    """An RGBA image colouring each label with its own hue (0, the sky, transparent); the
    hue of an id is fixed, so that neighbours differ and the same source has one colour in
    every picture."""
    labels = np.asarray(labels, np.int64)
    hue = (labels * 0.6180339887) % 1.0  # the golden ratio spreads consecutive ids
    import matplotlib.colors as mcolors

    hsv = np.stack([hue, np.full(hue.shape, 0.75), np.full(hue.shape, 0.95)], axis=-1)
    rgba = np.concatenate([mcolors.hsv_to_rgb(hsv), np.zeros((*labels.shape, 1))], axis=-1)
    rgba[..., 3] = np.where(labels > 0, 0.45, 0.0)
    return rgba


def crowded_box(catalog, shape: tuple[int, int], side: int = ZOOM_SIDE) -> tuple[int, ...]:
    """The ``side``² box (y0, y1, x0, x1) holding the most sources, on a grid of half steps."""
    h, w = shape
    side = min(side, h, w)
    step = max(side // 2, 1)
    x, y = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    best, box = -1, (0, side, 0, side)
    for y0 in range(0, max(h - side, 0) + 1, step):
        inside_y = (y >= y0) & (y < y0 + side)
        for x0 in range(0, max(w - side, 0) + 1, step):
            count = int((inside_y & (x >= x0) & (x < x0 + side)).sum())
            if count > best:
                best, box = count, (y0, y0 + side, x0, x0 + side)
    return box


def blend_box(catalog, shape: tuple[int, int], side: int = ZOOM_SIDE // 2):
    """A ``side``² box about the brightest blended source (``blend_fraction`` > 0.3, off the
    edge), or None without one."""
    if len(catalog) == 0:
        return None
    blend = np.asarray(catalog["blend_fraction"], float)
    edge = (np.asarray(catalog["flags"]).astype(np.int64) & 1) > 0
    flux = np.where((blend > 0.3) & ~edge, np.nan_to_num(np.asarray(catalog["flux"], float),
                                                        nan=-np.inf), -np.inf)
    if not np.isfinite(flux.max()):
        return None
    row = int(np.argmax(flux))
    return _box_about(float(catalog["y"][row]), float(catalog["x"][row]), side, shape)


def _box_about(cy: float, cx: float, side: int, shape: tuple[int, int]) -> tuple[int, ...]:
    side = min(side, *shape)
    y0 = int(np.clip(round(cy) - side // 2, 0, shape[0] - side))
    x0 = int(np.clip(round(cx) - side // 2, 0, shape[1] - side))
    return (y0, y0 + side, x0, x0 + side)


def _ellipses(ax, catalog, scale: float = 1.0, colour: str = "tab:red", width: float = 0.6):
    """Each source's ellipse (3 × its second-moment axes, at least its footprint's quarter),
    or a circle of its footprint radius where it has no shape; ``scale`` divides mosaic px."""
    a = np.asarray(catalog["a"], float)
    b = np.asarray(catalog["b"], float)
    theta = np.nan_to_num(np.asarray(catalog["theta"], float))
    radius = np.nan_to_num(np.asarray(catalog["kron_radius"], float), nan=3.5)
    no_shape = ~np.isfinite(a) | ~np.isfinite(b)
    a = np.where(no_shape, radius / 3, a)
    b = np.where(no_shape, radius / 3, b)
    for x, y, ai, bi, t in zip(np.asarray(catalog["x"], float), np.asarray(catalog["y"], float),
                               a, b, theta, strict=True):
        ax.add_patch(Ellipse((x / scale, y / scale), 6 * ai / scale, 6 * bi / scale, angle=t,
                             fill=False, edgecolor=colour, linewidth=width))


def _wcs_axes(fig, spec, wcs_header: str | None, factor: int):
    """An axes for the preview: WCSAxes in RA/Dec on the downsampled grid when there is a WCS
    (its pixels are ``factor`` mosaic px), plain axes otherwise."""
    if not wcs_header:
        return fig.add_subplot(spec), False
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(fits.Header.fromstring(wcs_header)).celestial
    if factor > 1:
        wcs = wcs.slice((slice(None, None, factor), slice(None, None, factor)))
    ax = fig.add_subplot(spec, projection=wcs)
    ax.coords[0].set_axislabel("RA")
    ax.coords[1].set_axislabel("Dec")
    return ax, True


def _mosaic_pixel_axes(ax, factor: int, on_wcs: bool) -> None:
    """Ticks in mosaic pixels: on the plain axes, or on the top and right of a WCSAxes."""
    if not on_wcs:
        ax.set_xlabel("x [mosaic px]")
        ax.set_ylabel("y [mosaic px]")
        return
    top = ax.secondary_xaxis("top", functions=(lambda v: v * factor, lambda v: v / factor))
    right = ax.secondary_yaxis("right", functions=(lambda v: v * factor, lambda v: v / factor))
    top.set_xlabel("x [mosaic px]", fontsize=8)
    right.set_ylabel("y [mosaic px]", fontsize=8)
    for axis in (top, right):
        axis.tick_params(labelsize=7)


def _density_cell(factor: int) -> int:
    """The side (mosaic px) of the cells the density layer counts in."""
    return max(DENSITY_CELL // 4, factor * 8)


def _density_layer(ax, fig, catalog, shape: tuple[int, int], factor: int) -> None:
    """Sources per ``DENSITY_CELL``² px as contour lines over the image (so the image stays
    visible): counted in cells of a quarter of that, smoothed over two cells (a cell holds a
    few sources, and their Poisson noise would draw a checkerboard)."""
    from scipy import ndimage

    cell = _density_cell(factor)
    ny, nx = -(-shape[0] // cell), -(-shape[1] // cell)
    counts, _, _ = np.histogram2d(np.asarray(catalog["y"], float), np.asarray(catalog["x"], float),
                                  bins=(ny, nx), range=((0, ny * cell), (0, nx * cell)))
    # each cell's area inside the mosaic: the last row and column stick out of it
    inside_y = np.clip(shape[0] - np.arange(ny) * cell, 0, cell) / cell
    inside_x = np.clip(shape[1] - np.arange(nx) * cell, 0, cell) / cell
    area = ndimage.gaussian_filter(np.outer(inside_y, inside_x), 2.0, mode="constant")
    smoothed = ndimage.gaussian_filter(counts, 2.0, mode="constant")
    density = smoothed / np.maximum(area, 1e-6) * (DENSITY_CELL / cell) ** 2
    centres_y = (np.arange(ny) + 0.5) * cell / factor - 0.5
    centres_x = (np.arange(nx) + 0.5) * cell / factor - 0.5
    lines = ax.contour(centres_x, centres_y, density, levels=6, cmap="plasma", linewidths=1.0)
    bar = fig.colorbar(lines, ax=ax, fraction=0.035, pad=0.12)
    bar.set_label(f"sources per {DENSITY_CELL:,}² px (smoothed)", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def overview_figure(preview: np.ndarray, factor: int, catalog, sigma: float,
                    wcs_header: str | None = None, zooms: list[dict] | None = None,
                    title: str = "", labels: np.ndarray | None = None):
    """The overview picture (module text) from the stored ``preview`` (each pixel the mean
    of ``factor``² mosaic px, sky subtracted), the catalogue, the pixel noise ``sigma`` and
    the zoom panels' views (:func:`draw_region`'s ``view``). ``labels``, the segmentation
    map, tints every pixel by its owner when the preview is the mosaic itself (factor 1)."""
    plt = pyplot()
    zooms = zooms or []
    fig = plt.figure(figsize=(8 + 4 * bool(zooms), 8))
    grid = fig.add_gridspec(max(len(zooms), 1), 2 if zooms else 1,
                            width_ratios=[2, 1] if zooms else [1])
    ax, on_wcs = _wcs_axes(fig, grid[:, 0], wcs_header, factor)
    stretched = asinh_stretch(preview, sigma / factor)  # block means: factor times less noise
    finite = np.isfinite(preview)
    vmax = max(float(np.nanpercentile(stretched[finite], 99.7)) if finite.any() else 1.0, 1.0)
    ax.imshow(np.where(finite, stretched, np.nan), origin="lower", cmap="gray_r", vmin=-0.5,
              vmax=vmax, interpolation="nearest")
    if labels is not None and factor == 1 and labels.shape == preview.shape:
        ax.imshow(owner_colours(labels), origin="lower", interpolation="nearest")
    if (~finite).any() and finite.any():  # the outline of where there are no data
        ax.contour(finite.astype(float), levels=[0.5], colors="tab:blue", linewidths=0.8)
    shape = (preview.shape[0] * factor, preview.shape[1] * factor)
    if separable(catalog, shape) or min(shape) < 4 * _density_cell(factor):
        _ellipses(ax, catalog, scale=factor)  # (a mosaic of a few cells has no density map)
    else:
        _density_layer(ax, fig, catalog, shape, factor)
    _mosaic_pixel_axes(ax, factor, on_wcs)
    ax.set_title(title or f"{len(catalog):,} sources", fontsize=10)
    for i, view in enumerate(zooms):
        y0, y1, x0, x1 = view["box"]
        ax.add_patch(Rectangle((x0 / factor - 0.5, y0 / factor - 0.5), (x1 - x0) / factor,
                               (y1 - y0) / factor, fill=False, edgecolor="tab:orange",
                               linewidth=1.2))
        ax.text(x1 / factor, y1 / factor, str(i + 1), color="tab:orange", fontsize=9)
        draw_region(fig.add_subplot(grid[i, 1]), view, sigma,
                    title=f"{i + 1}: {view.get('label', '')}", small=True)
    fig.tight_layout()
    return fig


def draw_region(ax, view: dict, sigma: float, title: str = "", small: bool = False) -> None:
    """A region at native resolution: the image (asinh), each pixel tinted by its owner
    (:func:`owner_colours` of the segmentation ``labels``), and the sources' ellipses.

    ``view`` holds ``box`` (y0, y1, x0, x1), ``image`` (the detection band's pixels there, sky
    subtracted), ``labels`` (owners) and ``catalog`` (the sources inside).
    """
    y0, y1, x0, x1 = view["box"]
    extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
    stretched = asinh_stretch(view["image"], sigma)
    # at least 20σ for white: the noise stays a light texture where only faint sources are
    ax.imshow(stretched, origin="lower", cmap="gray_r", vmin=-0.5,
              vmax=max(float(np.nanpercentile(stretched, 99.7)), np.arcsinh(20 / 3)),
              extent=extent, interpolation="nearest")
    ax.imshow(owner_colours(view["labels"]), origin="lower", extent=extent,
              interpolation="nearest")
    _ellipses(ax, view["catalog"], colour="black", width=0.5 if small else 0.8)
    if not small and len(view["catalog"]) <= 60:
        for row in view["catalog"]:
            ax.text(float(row["x"]) + 1, float(row["y"]) + 1, str(int(row["id"])), fontsize=7)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if not small:
        ax.set_xlabel("x [mosaic px]")
        ax.set_ylabel("y [mosaic px]")


def region_figure(view: dict, sigma: float, title: str = ""):
    """One region (:func:`draw_region`) as a figure of its own."""
    plt = pyplot()
    y0, y1, x0, x1 = view["box"]
    side = 7.0
    fig, ax = plt.subplots(figsize=(side, side * (y1 - y0) / max(x1 - x0, 1)))
    draw_region(ax, view, sigma, title=title or f"x {x0}–{x1}, y {y0}–{y1}: "
                                                f"{len(view['catalog'])} sources")
    fig.tight_layout()
    return fig
