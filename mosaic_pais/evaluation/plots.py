"""Pictures of an evaluation: ``mosaic-pais evaluate ... --plots DIR``.

:func:`evaluation_plots` writes ``completeness.png`` (completeness against truth magnitude) and
``flux_error.png`` (relative flux error of the matched sources against truth magnitude), built
from :func:`plot_completeness` and :func:`plot_flux_error`, which also draw into a notebook.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError
from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.figures import pyplot
from mosaic_pais.runtime.write import atomic_path

__all__ = ["ZEROPOINT", "BLENDED", "plot_completeness", "plot_flux_error", "evaluation_plots",
           "truth_matches"]

#: F160W, AB mag of 1 e-/s (the truth's magnitudes when its table has no ``mag`` column)
ZEROPOINT = 25.94
#: blendedness above which a truth source counts as blended
BLENDED = 0.1


def _truth_mag(truth) -> np.ndarray:
    if "mag" in truth.colnames:
        return np.asarray(truth["mag"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ZEROPOINT - 2.5 * np.log10(np.asarray(truth["flux"], float))


def truth_matches(catalog, truth, radius: float, mag_limit: float | None):
    """Counted truth rows, whether each is matched, and δ of the matched ones."""
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
    plt = pyplot()
    mag, counted, matched, _, blend = truth_matches(catalog, truth, radius, mag_limit)
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
    plt = pyplot()
    mag, counted, matched, delta, blend = truth_matches(catalog, truth, radius, mag_limit)
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
    plt = pyplot()
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
