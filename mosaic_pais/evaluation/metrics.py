"""Metrics that judge a catalogue against the truth (docs/metrics.md) and the paper's Table 2.

* Matching: Hungarian assignment on pixel distance, pairs beyond ``radius`` (3 px) rejected.
  Candidate pairs come from a KD-tree and each connected group of candidates is solved on its
  own, so a 100,000-source mosaic matches in seconds.
* Completeness = matched truths / truths (those in frame and, with ``mag_limit``, brighter
  than it); purity = matched detections / detections, where a detection matched to *any* truth
  source (even one fainter than the limit) is genuine; F1.
* Flux: δ = (F_meas − F_true)/F_true over matched pairs — median |δ|, median δ (bias),
  σ_NMAD = 1.4826·median|δ − median δ|, the fraction with |δ| > 0.5 — overall, per magnitude bin
  and per blendedness bin (blended: β > 0.1).
* Table 2 (encoding efficacy): total-flux absolute error and the KS p-value of the normalised
  cumulative surface-brightness profiles within r90 (:func:`encoding_efficacy`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError

__all__ = [
    "DEFAULT_MAG_BINS",
    "DEFAULT_BLEND_BINS",
    "DEFAULT_SNR_BINS",
    "BLENDED",
    "match_catalogs",
    "flux_stats",
    "flux_errors_on_common_sources",
    "evaluate",
    "r_enclosing",
    "encoding_efficacy_per_source",
    "encoding_efficacy",
    "read_table",
    "evaluate_files",
    "clean_catalog",
    "format_report",
]


DEFAULT_MAG_BINS = (18, 22, 24, 25, 26, 27, 28, 29)
DEFAULT_BLEND_BINS = (0.0, 0.01, 0.1, 0.3, 1.0)
#: matched-filter S/N bins of the truth (a simulated truth's ``snr`` column)
DEFAULT_SNR_BINS = (0.0, 5.0, 10.0, 20.0, 50.0, 1e6)
BLENDED = 0.1


def match_catalogs(detected_xy, truth_xy, radius: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches minimising the total distance, pairs farther than ``radius`` dropped.

    Returns
    -------
    (det_index, truth_index) : int arrays of equal length.

    Examples
    --------
    Greedy nearest-neighbour matching would give truth 0 to detection 0 and leave truth 1
    unmatched; the optimal assignment matches both:

    >>> det = [[0.0, 1.0], [0.0, 3.5]]
    >>> truth = [[0.0, 0.0], [0.0, 1.5]]
    >>> d, t = match_catalogs(det, truth, radius=2.5)
    >>> sorted(zip(d.tolist(), t.tolist()))
    [(0, 0), (1, 1)]
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    det = np.asarray(detected_xy, float).reshape(-1, 2)
    tru = np.asarray(truth_xy, float).reshape(-1, 2)
    empty = np.zeros(0, np.int64)
    if len(det) == 0 or len(tru) == 0:
        return empty, empty.copy()
    pairs = cKDTree(det).query_ball_tree(cKDTree(tru), r=radius)
    rows = np.repeat(np.arange(len(det)), [len(p) for p in pairs])
    cols = np.fromiter((c for p in pairs for c in p), np.int64, count=len(rows))
    if len(rows) == 0:
        return empty, empty.copy()
    n_det = len(det)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_det)),
                       shape=(n_det + len(tru),) * 2)
    _, label = connected_components(graph, directed=False)
    group = label[rows]
    out_d, out_t = [], []
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    for sel in np.split(order, bounds):
        r, c = rows[sel], cols[sel]
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        big = 1e6 * (radius + 1)
        cost = np.full((len(ur), len(uc)), big)
        cost[ri, ci] = np.hypot(*(det[r] - tru[c]).T)
        a, b = linear_sum_assignment(cost)
        ok = cost[a, b] <= radius
        out_d.append(ur[a[ok]])
        out_t.append(uc[b[ok]])
    d = np.concatenate(out_d).astype(np.int64)
    t = np.concatenate(out_t).astype(np.int64)
    order = np.argsort(d)
    return d[order], t[order]


def flux_stats(delta) -> dict:
    """Summary of relative flux errors δ.

    Examples
    --------
    >>> s = flux_stats([-0.1, 0.0, 0.1, 0.2, 1.0])
    >>> round(s["median_abs"], 3), round(s["bias"], 3), round(s["nmad"], 4), s["outlier_fraction"]
    (0.1, 0.1, 0.1483, 0.2)
    """
    delta = np.asarray(delta, float)
    delta = delta[np.isfinite(delta)]
    if len(delta) == 0:
        return {"n": 0, "median_abs": None, "bias": None, "nmad": None, "outlier_fraction": None}
    bias = float(np.median(delta))
    return {"n": int(len(delta)), "median_abs": float(np.median(np.abs(delta))), "bias": bias,
            "nmad": float(1.4826 * np.median(np.abs(delta - bias))),
            "outlier_fraction": float(np.mean(np.abs(delta) > 0.5))}


def _ratio(a: float, b: float):
    return float(a / b) if b else None


def _f1(c, p):
    if c is None or p is None or (c + p) == 0:
        return None
    return float(2 * c * p / (c + p))


def _column(table, name, default=None):
    return np.asarray(table[name]) if name in table.colnames else default


def _truth_mag(truth) -> np.ndarray:
    """The truth's ``mag`` column, or magnitudes from its fluxes (F160W zero point)."""
    mag = _column(truth, "mag")
    if mag is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = 25.94 - 2.5 * np.log10(np.asarray(truth["flux"], float))
    return mag


def _counted(truth, mag_limit: float | None, snr_min: float | None = None) -> np.ndarray:
    """Which truth rows completeness counts: in frame, above ``mag_limit`` and ``snr_min``."""
    counted = np.ones(len(truth), bool)
    in_frame = _column(truth, "in_frame")
    if in_frame is not None:
        counted &= in_frame.astype(bool)
    if mag_limit is not None:
        counted &= _truth_mag(truth) < mag_limit
    if snr_min is not None:
        snr = _column(truth, "snr")
        if snr is None:
            raise ValueError("snr_min needs a truth column 'snr'")
        counted &= snr >= snr_min
    return counted


def _flux_errors(catalog, truth_flux: np.ndarray, d: np.ndarray, t: np.ndarray,
                 flux_column: str) -> np.ndarray:
    """δ of each truth row from its matched detection (``d[i]`` ↔ ``t[i]``); NaN if unmatched."""
    delta = np.full(len(truth_flux), np.nan)
    if len(catalog) and flux_column in catalog.colnames:
        meas = np.asarray(catalog[flux_column], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            delta[t] = (meas[d] - truth_flux[t]) / truth_flux[t]
    return delta


def flux_errors_on_common_sources(catalogs: dict, truth, radius: float = 3.0,
                                  mag_limit: float | None = None,
                                  flux_column: str = "flux") -> dict:
    """δ statistics of several methods on the same truth sources: those every method recovers.

    Each method's own statistics (:func:`evaluate`) are over the sources it recovers, and a
    method that recovers more of the hard cases (faint, or deeply blended) is judged on harder
    ones. Here every method is judged on one sample: the counted truths (in frame, brighter than
    ``mag_limit``) matched by all of ``catalogs`` (name → catalogue), overall and for the
    blended ones (β > 0.1) when the truth has ``blendedness``.

    Examples
    --------
    >>> from astropy.table import Table
    >>> truth = Table({"x": [10.0, 40.0], "y": [10.0, 40.0], "flux": [100.0, 50.0]})
    >>> a = Table({"x": [10.5, 40.0], "y": [10.0, 40.0], "flux": [110.0, 50.0]})
    >>> b = Table({"x": [10.0], "y": [11.0], "flux": [95.0]})  # misses the second source
    >>> r = flux_errors_on_common_sources({"a": a, "b": b}, truth)
    >>> r["n_common"], round(r["a"]["all"]["median_abs"], 3), round(r["b"]["all"]["median_abs"], 3)
    (1, 0.1, 0.05)
    """
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    tflux = np.asarray(truth["flux"], float)
    counted = _counted(truth, mag_limit)
    deltas = {}
    for name, catalog in catalogs.items():
        d, t = match_catalogs(np.stack([np.asarray(catalog["x"], float),
                                        np.asarray(catalog["y"], float)], 1),
                              np.stack([tx, ty], 1), radius)
        deltas[name] = _flux_errors(catalog, tflux, d, t, flux_column)
    common = counted & np.all([np.isfinite(v) for v in deltas.values()], axis=0)
    blend = _column(truth, "blendedness")
    mag = _truth_mag(truth)
    result = {"n_common": int(common.sum())}
    for name, delta in deltas.items():
        result[name] = {"all": flux_stats(delta[common])}
        result[name]["by_mag"] = _binned_deltas(delta, common, mag, DEFAULT_MAG_BINS)
        if blend is not None:
            result[name]["blended"] = flux_stats(delta[common & (blend > BLENDED)])
            result[name]["by_blend"] = _binned_deltas(delta, common, blend, DEFAULT_BLEND_BINS)
    return result


def _binned_deltas(delta: np.ndarray, chosen: np.ndarray, value: np.ndarray, edges) -> list[dict]:
    """δ statistics of the ``chosen`` rows in each bin [lo, hi) of ``value``."""
    return [{"lo": float(lo), "hi": float(hi),
             "flux": flux_stats(delta[chosen & (value >= lo) & (value < hi)])}
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def evaluate(catalog, truth, radius: float = 3.0, mag_limit: float | None = None,
             mag_bins=DEFAULT_MAG_BINS, blend_bins=DEFAULT_BLEND_BINS,
             flux_column: str = "flux", snr_min: float | None = None,
             purity_over: np.ndarray | None = None) -> dict:
    """Completeness, purity, F1 and flux errors of ``catalog`` against ``truth``.

    ``catalog`` needs columns x, y and ``flux_column``; ``truth`` needs x, y, flux and may have
    mag, blendedness, in_frame and snr. Completeness counts in-frame truths brighter than
    ``mag_limit`` and, with ``snr_min``, at least that S/N; purity is over every detection
    (or the rows ``purity_over`` selects), and a detection matched to any truth (counted or
    not) is a true one. Returns a JSON-ready dict.

    Examples
    --------
    Scoring part of a field, as a mosaic keeps each tile's core: matches are made over
    everything, then completeness counts the truths in the part (``in_frame``) and purity
    the detections in it, so a pair straddling its border is not lost:

    >>> from astropy.table import Table
    >>> truth = Table({"x": [10.0, 30.0, 50.0], "y": [5.0, 5.0, 5.0], "flux": [1.0, 1.0, 1.0],
    ...                "in_frame": [True, True, False]})
    >>> cat = Table({"x": [10.5, 40.0, 51.0], "y": [5.0, 5.0, 5.0], "flux": [1.0, 1.0, 1.0]})
    >>> r = evaluate(cat, truth, purity_over=np.array([True, True, False]))
    >>> r["completeness"], r["purity"], r["n_detections"]
    (0.5, 0.5, 2)
    """
    cx, cy = np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)
    tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
    tflux = np.asarray(truth["flux"], float)
    mag = _truth_mag(truth)
    blend = _column(truth, "blendedness")
    counted = _counted(truth, mag_limit, snr_min)
    d, t = match_catalogs(np.stack([cx, cy], 1), np.stack([tx, ty], 1), radius)
    matched_truth = np.zeros(len(truth), bool)
    matched_truth[t] = True
    n_counted = int(counted.sum())
    completeness = _ratio(matched_truth[counted].sum(), n_counted)
    scored = (np.ones(len(catalog), bool) if purity_over is None
              else np.asarray(purity_over, bool))
    matched_detection = np.zeros(len(catalog), bool)
    matched_detection[d] = True
    purity = _ratio(matched_detection[scored].sum(), int(scored.sum()))
    delta = _flux_errors(catalog, tflux, d, t, flux_column)
    offsets = np.hypot(cx[d] - tx[t], cy[d] - ty[t])
    result = {
        "parameters": {"radius": radius, "mag_limit": mag_limit, "snr_min": snr_min,
                       "flux_column": flux_column,
                       "mag_bins": list(mag_bins), "blend_bins": list(blend_bins)},
        "n_detections": int(scored.sum()), "n_truth": int(len(truth)),
        "n_truth_counted": n_counted, "n_matched": int(len(d)),
        "n_matched_counted": int(matched_truth[counted].sum()),
        "completeness": completeness, "purity": purity, "f1": _f1(completeness, purity),
        "median_offset_px": float(np.median(offsets)) if len(offsets) else None,
        "flux": flux_stats(delta[counted & matched_truth]),
    }
    if blend is not None:
        for name, sel in (("flux_blended", blend > BLENDED), ("flux_isolated", blend <= BLENDED)):
            result[name] = flux_stats(delta[counted & matched_truth & sel])
        result["completeness_blended"] = _ratio(
            matched_truth[counted & (blend > BLENDED)].sum(), (counted & (blend > BLENDED)).sum())
    result["by_mag"] = _binned(mag, mag_bins, counted, matched_truth, delta)
    snr = _column(truth, "snr")
    if snr is not None:  # how far detection is possible at all: the depth each source has
        result["by_snr"] = _binned(snr, DEFAULT_SNR_BINS, counted, matched_truth, delta)
    if blend is not None:
        result["by_blendedness"] = _binned(blend, blend_bins, counted, matched_truth, delta,
                                           right_closed=True)
    return result


def _binned(value, edges, counted, matched, delta, right_closed=False) -> list[dict]:
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if right_closed:
            sel = counted & (value > lo if lo > 0 else value >= lo) & (value <= hi)
        else:
            sel = counted & (value >= lo) & (value < hi)
        n = int(sel.sum())
        rows.append({"lo": float(lo), "hi": float(hi), "n_truth": n,
                     "completeness": _ratio(matched[sel].sum(), n),
                     "flux": flux_stats(delta[sel & matched])})
    return rows


def _radial_cumulative(image: np.ndarray, cy: float, cx: float, r_max: float) -> np.ndarray:
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    r = np.hypot(yy - cy, xx - cx)
    edges = np.arange(0, max(r_max, 1.0) + 1.0, 1.0)
    prof, _ = np.histogram(r, bins=edges, weights=image)
    cum = np.cumsum(prof)
    return cum / cum[-1] if cum[-1] != 0 else cum


def r_enclosing(image: np.ndarray, cy: float, cx: float, fraction: float) -> float:
    """Radius about (cy, cx) enclosing ``fraction`` of the image's flux."""
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    r = np.hypot(yy - cy, xx - cx).ravel()
    order = np.argsort(r)
    cum = np.cumsum(image.ravel()[order])
    if cum[-1] <= 0:
        return float("nan")
    return float(r[order][min(np.searchsorted(cum, fraction * cum[-1]), len(r) - 1)])


def encoding_efficacy_per_source(true_images, decoded_images, centers) -> dict:
    """Per-source Table 2 metrics: |ΣD − ΣS| and the KS p-value of profiles within r90.

    As in the paper, the two normalised cumulative profiles (1-px annuli out to the true r90)
    are compared as samples with ``scipy.stats.ks_2samp``. With ~r90 values per profile the
    test has little power: it flags gross redistributions of flux (a profile moved outwards),
    not a modest change of width; the total-flux error is the sharper of the two metrics.
    """
    from scipy.stats import ks_2samp

    flux_err, pvalue = [], []
    for s, d, (cy, cx) in zip(true_images, decoded_images, centers, strict=True):
        s = np.asarray(s, float).reshape(np.shape(s)[-2:])
        d = np.asarray(d, float).reshape(np.shape(d)[-2:])
        total = s.sum()
        if total <= 0:
            flux_err.append(np.nan)
            pvalue.append(np.nan)
            continue
        flux_err.append(abs(d.sum() - total))
        r90 = r_enclosing(s, cy, cx, 0.9)
        pt = _radial_cumulative(s, cy, cx, r90)
        pd = _radial_cumulative(d, cy, cx, r90)
        with warnings.catch_warnings():  # tied values make scipy fall back to asymptotics
            warnings.simplefilter("ignore", RuntimeWarning)
            pvalue.append(ks_2samp(pt, pd).pvalue)
    return {"flux_abs_error": np.asarray(flux_err), "ks_pvalue": np.asarray(pvalue)}


def encoding_efficacy(true_images, decoded_images, centers) -> dict:
    """The paper's Table 2 metrics summarised (mean ± std and median)."""
    per = encoding_efficacy_per_source(true_images, decoded_images, centers)
    out = {}
    for key, values in per.items():
        v = values[np.isfinite(values)]
        out[key] = {"n": int(len(v)), "mean": float(v.mean()) if len(v) else None,
                    "std": float(v.std()) if len(v) else None,
                    "median": float(np.median(v)) if len(v) else None}
    return out


def read_table(path: Path, required: list[str], what: str):
    from astropy.table import Table

    if not Path(path).is_file():
        raise BadInputError(f"{what} {path}: no such file")
    try:
        fits_like = str(path).lower().endswith((".fits", ".fit", ".fits.gz"))
        table = Table.read(path, mask_invalid=False) if fits_like else Table.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise BadInputError(f"{what} {path}: not a readable table ({type(exc).__name__})") from exc
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise BadInputError(f"{what} {path}: missing column(s) {', '.join(missing)}")
    for c in ("x", "y"):
        if not np.all(np.isfinite(np.asarray(table[c], float))):
            raise BadInputError(f"{what} {path}: non-finite {c} values")
    return table


def evaluate_files(catalog_path, truth_path, radius: float = 3.0,
                   mag_limit: float | None = None) -> dict:
    """:func:`evaluate` on a catalogue file and a truth file (FITS or Parquet)."""
    catalog = read_table(Path(catalog_path), ["x", "y", "flux"], "catalogue")
    truth = read_table(Path(truth_path), ["x", "y", "flux"], "truth")
    result = evaluate(catalog, truth, radius=radius, mag_limit=mag_limit)
    result["catalog"], result["truth"] = str(catalog_path), str(truth_path)
    return clean_catalog(result)


def clean_catalog(value):
    if isinstance(value, dict):
        return {k: clean_catalog(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_catalog(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(v, spec=".3f"):
    return "—" if v is None else format(v, spec)


def format_report(result: dict) -> str:
    """A fixed-width text report of :func:`evaluate`'s result."""
    f = result["flux"]
    lines = [
        f"detections {result['n_detections']}, truth counted {result['n_truth_counted']} "
        f"(radius {result['parameters']['radius']} px, mag limit "
        f"{result['parameters']['mag_limit']})",
        f"completeness {_fmt(result['completeness'])}  purity {_fmt(result['purity'])}  "
        f"F1 {_fmt(result['f1'])}  median offset {_fmt(result['median_offset_px'], '.2f')} px",
        f"flux δ: median|δ| {_fmt(f['median_abs'])}  bias {_fmt(f['bias'], '+.3f')}  "
        f"σ_NMAD {_fmt(f['nmad'])}  |δ|>0.5 {_fmt(f['outlier_fraction'])}  (N={f['n']})",
    ]
    if "flux_blended" in result:
        b = result["flux_blended"]
        lines.append(f"blended (β>0.1): completeness {_fmt(result['completeness_blended'])}  "
                     f"median|δ| {_fmt(b['median_abs'])}  bias {_fmt(b['bias'], '+.3f')}  "
                     f"(N={b['n']})")
    for title, key in (("magnitude", "by_mag"), ("blendedness", "by_blendedness"),
                       ("S/N", "by_snr")):
        if key not in result:
            continue
        lines.append(f"\n{title:>12} {'N':>6} {'compl.':>7} {'med|δ|':>7} {'bias':>7}")
        for row in result[key]:
            lines.append(f"{row['lo']:>5g}–{row['hi']:<6g} {row['n_truth']:>6} "
                         f"{_fmt(row['completeness']):>7} {_fmt(row['flux']['median_abs']):>7} "
                         f"{_fmt(row['flux']['bias'], '+.3f'):>7}")
    return "\n".join(lines)
