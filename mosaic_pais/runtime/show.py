"""Pictures of a finished run and of an evaluation.

* :func:`show_run` (``mosaic-pais show DIR [--id N] [--output PNG]``): the image (asinh
  stretch) with every detection marked, and one source's deblend — the image of its
  neighbourhood, its deblended image, the residual (neighbourhood minus the deblend: the light
  given to the other sources) and its share of each pixel.
* :func:`evaluation_plots` (``mosaic-pais evaluate ... --plots DIR``): ``completeness.png``
  (completeness against truth magnitude) and ``flux_error.png`` (relative flux error of the
  matched sources against truth magnitude), built from :func:`plot_completeness` and
  :func:`plot_flux_error`, which also draw into a notebook.

Matplotlib is imported inside the functions, with the Agg backend unless one is already
chosen (a notebook keeps its inline backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError

# F160W, AB mag of 1 e-/s (as mosaic_pais.evaluation.metrics assumes without a mag column)
ZEROPOINT = 25.94
BLENDED = 0.1


def _pyplot():
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    from astropy.table import Table
    from matplotlib.patches import Rectangle

    from mosaic_pais.runtime.open import open_mosaic
    from mosaic_pais.runtime.stamps import source_stamp
    from mosaic_pais.runtime.write import atomic_path, overview_image

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file() or not (run_dir / "catalog.fits").is_file():
        raise BadInputError(f"{run_dir}: not a finished mosaic-pais run "
                            "(no run.json/catalog.fits)")
    meta = json.loads((run_dir / "run.json").read_text())
    catalog = Table.read(run_dir / "catalog.fits", mask_invalid=False)
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
    plt = _pyplot()
    fig = plt.figure(figsize=(14, 7))
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[:, :2])
    stretched = _stretch(small, max(sigma / factor, 1e-12))
    ax.imshow(stretched, origin="lower", cmap="gray_r", vmin=-1,
              vmax=max(np.nanpercentile(stretched, 99.7), 1))
    x, y = np.asarray(catalog["x"]) / factor, np.asarray(catalog["y"]) / factor
    marker = max(2.0, 12.0 / np.sqrt(factor))
    ax.scatter(x, y, s=marker ** 2, facecolors="none", edgecolors="tab:red", linewidths=0.6,
               label=f"detected ({len(catalog)})")
    y0, y1, x0, x1 = stamp["box"]
    ax.add_patch(Rectangle((x0 / factor - 0.5, y0 / factor - 0.5), (x1 - x0) / factor,
                           (y1 - y0) / factor, fill=False, edgecolor="tab:blue", linewidth=1.5,
                           label=f"source {source_id}"))
    unit = f"px / {factor}" if factor > 1 else "px"
    ax.set_xlabel(f"x [{unit}]")
    ax.set_ylabel(f"y [{unit}]")
    images = meta["inputs"]["images"]
    ax.set_title(f"{Path(images[0]).name if len(images) == 1 else run_dir.name}: "
                 f"{len(catalog)} sources")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)

    cut = np.nan_to_num(stamp["image"][0])
    deblend = stamp["deblend"][0]
    share = np.divide(deblend, cut, out=np.zeros_like(deblend), where=cut != 0)
    extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
    cut_s = _stretch(cut, sigma)
    vmax = max(float(np.nanpercentile(cut_s, 99.5)), 1.0)
    row = stamp["row"]
    inside = ((np.asarray(catalog["x"]) >= x0 - 0.5) & (np.asarray(catalog["x"]) < x1 - 0.5)
              & (np.asarray(catalog["y"]) >= y0 - 0.5) & (np.asarray(catalog["y"]) < y1 - 0.5))
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
        pax.scatter(np.asarray(catalog["x"])[inside], np.asarray(catalog["y"])[inside], s=30,
                    facecolors="none", edgecolors="tab:red", linewidths=0.7)
        pax.scatter([row["x"]], [row["y"]], s=60, marker="+", color="tab:blue", linewidths=1.2)
        pax.set_xlim(extent[0], extent[1])
        pax.set_ylim(extent[2], extent[3])
        pax.set_title(title, fontsize=9)
        pax.tick_params(labelsize=7)
        if cmap == "viridis":
            fig.colorbar(shown, ax=pax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    band = stamp["bands"][0]
    fig.suptitle(f"source {source_id}: x = {float(row['x']):.1f}, y = {float(row['y']):.1f}, "
                 f"flux ({band}) = {float(row['flux']):.4g}, blend fraction "
                 f"{float(row['blend_fraction']):.2f}, r50 = {float(row['r50']):.1f} px",
                 fontsize=10)
    fig.tight_layout()
    output = Path(output) if output else run_dir / f"show_{int(source_id)}.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return output


# ------------------------------------------------------------------------------------------
# evaluation plots


def _truth_mag(truth) -> np.ndarray:
    if "mag" in truth.colnames:
        return np.asarray(truth["mag"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ZEROPOINT - 2.5 * np.log10(np.asarray(truth["flux"], float))


def _matches(catalog, truth, radius: float, mag_limit: float | None):
    """Counted truth rows, whether each is matched, and δ of the matched ones."""
    from mosaic_pais.evaluation.metrics import match_catalogs

    det = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
    tru = np.stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)], 1)
    d, t = match_catalogs(det, tru, radius)
    mag = _truth_mag(truth)
    counted = np.isfinite(mag)
    if "in_frame" in truth.colnames:
        counted &= np.asarray(truth["in_frame"]).astype(bool)
    if mag_limit is not None:
        counted &= mag < mag_limit
    matched = np.zeros(len(truth), bool)
    matched[t] = True
    delta = np.full(len(truth), np.nan)
    if len(d):
        tflux = np.asarray(truth["flux"], float)[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            delta[t] = (np.asarray(catalog["flux"], float)[d] - tflux) / tflux
    blend = np.asarray(truth["blendedness"], float) if "blendedness" in truth.colnames else None
    return mag, counted, matched, delta, blend


def _mag_edges(mag: np.ndarray, width: float = 0.5) -> np.ndarray:
    lo = np.floor(np.nanmin(mag) / width) * width
    hi = np.ceil(np.nanmax(mag) / width) * width
    return np.arange(lo, hi + width / 2, width) if hi > lo else np.array([lo, lo + width])


def plot_completeness(catalog, truth, *, radius: float = 3.0, mag_limit: float | None = None,
                      ax=None):
    """Completeness against truth magnitude (all sources, and blended ones, β > 0.1).

    Bins are 0.5 mag wide, except that the brightest bins are merged until the first holds at
    least 5 sources. Error bars are binomial (√(c(1 − c)/N)). Returns the matplotlib Figure.
    """
    plt = _pyplot()
    mag, counted, matched, _, blend = _matches(catalog, truth, radius, mag_limit)
    if not counted.any():
        raise BadInputError("no truth source to compute completeness for")
    edges = _mag_edges(mag[counted])
    # the few bright sources share one bin rather than make single-source points
    while len(edges) > 2 and np.histogram(mag[counted], edges[:2])[0][0] < 5:
        edges = np.delete(edges, 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    else:
        fig = ax.figure
    groups = [("all", counted, "tab:blue", "o")]
    if blend is not None:
        groups.append((f"blended (β > {BLENDED})", counted & (blend > BLENDED), "tab:orange",
                       "s"))
    for label, sel, colour, marker in groups:
        n, _ = np.histogram(mag[sel], edges)
        k, _ = np.histogram(mag[sel & matched], edges)
        ok = n > 0
        c = k[ok] / n[ok]
        err = np.sqrt(np.maximum(c * (1 - c), 0.25 / n[ok]) / n[ok])
        ax.errorbar(centres[ok], c, yerr=err, color=colour, marker=marker, ms=4, capsize=2,
                    lw=1.2, label=f"{label} (N = {int(sel.sum())})")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlabel("truth magnitude (AB)")
    ax.set_ylabel("completeness")
    ax.set_title(f"completeness (match radius {radius:g} px)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_flux_error(catalog, truth, *, radius: float = 3.0, mag_limit: float | None = None,
                    ax=None):
    """Relative flux error δ = (F − F_true)/F_true of matched sources against truth magnitude.

    Points are the matched sources (orange: blended, β > 0.1), the line the running median
    and the band its 16–84% range per 0.5 mag bin; δ beyond the axis is drawn at its edge.
    Returns the matplotlib Figure.
    """
    plt = _pyplot()
    mag, counted, matched, delta, blend = _matches(catalog, truth, radius, mag_limit)
    sel = counted & matched & np.isfinite(delta)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    else:
        fig = ax.figure
    lo, hi = -1.0, 1.5
    shown = np.clip(delta, lo, hi)
    isolated = sel if blend is None else sel & (blend <= BLENDED)
    ax.scatter(mag[isolated], shown[isolated], s=6, color="tab:blue", alpha=0.5, lw=0,
               label=f"isolated (N = {int(isolated.sum())})" if blend is not None
               else f"matched (N = {int(sel.sum())})")
    if blend is not None:
        blended = sel & (blend > BLENDED)
        ax.scatter(mag[blended], shown[blended], s=8, color="tab:orange", alpha=0.7, lw=0,
                   label=f"blended, β > {BLENDED} (N = {int(blended.sum())})")
    if sel.any():
        edges = _mag_edges(mag[sel])
        centres, med, p16, p84 = [], [], [], []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            inbin = sel & (mag >= a) & (mag < b)
            if inbin.sum() >= 3:
                centres.append(0.5 * (a + b))
                q = np.percentile(delta[inbin], [16, 50, 84])
                p16.append(q[0])
                med.append(q[1])
                p84.append(q[2])
        if centres:
            ax.fill_between(centres, np.clip(p16, lo, hi), np.clip(p84, lo, hi), color="0.3",
                            alpha=0.2, lw=0, label="16–84%")
            ax.plot(centres, np.clip(med, lo, hi), color="k", lw=1.5, label="median")
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(lo - 0.05, hi + 0.05)
    ax.set_xlabel("truth magnitude (AB)")
    ax.set_ylabel("(F − F_true) / F_true")
    ax.set_title("flux error of matched sources")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def evaluation_plots(catalog, truth, output, *, radius: float = 3.0,
                     mag_limit: float | None = None) -> list[Path]:
    """Write ``completeness.png`` and ``flux_error.png`` into the directory ``output``.

    ``catalog`` and ``truth`` are tables with ``x``, ``y``, ``flux`` (and for the truth
    ``mag``, ``blendedness``, ``in_frame`` when present), as :func:`mosaic_pais.evaluate`
    takes them.

    Examples
    --------
    >>> import tempfile
    >>> from astropy.table import Table
    >>> truth = Table({"x": [5.0, 20.0, 40.0, 60.0], "y": [5.0, 9.0, 30.0, 50.0],
    ...                "flux": [1.0, 0.5, 0.2, 0.1]})
    >>> catalog = Table({"x": [5.2, 20.1, 40.3], "y": [5.0, 9.4, 29.8],
    ...                  "flux": [1.05, 0.45, 0.3]})
    >>> [p.name for p in evaluation_plots(catalog, truth, tempfile.mkdtemp())]
    ['completeness.png', 'flux_error.png']
    """
    from mosaic_pais.runtime.write import atomic_path

    plt = _pyplot()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("completeness.png", plot_completeness),
                       ("flux_error.png", plot_flux_error)):
        fig = draw(catalog, truth, radius=radius, mag_limit=mag_limit)
        with atomic_path(output / name) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        paths.append(output / name)
    return paths
