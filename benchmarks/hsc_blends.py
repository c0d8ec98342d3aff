"""Subaru HSC: the HSC model's per-band fluxes on simulated blends whose every source's true
image is known, beside scarlet2's on the same blends.

The blends are scarlet's two six-band test scenes (``hsc/psf_matched_sim.npz``, 7 sources on
55 × 58 px, every band at one narrow PSF; ``hsc/psf_unmatched_sim.npz``, 5 sources on
40 × 59 px, each band at its own seeing), made by an independent simulator: each holds the
noiseless image of every source (bulge and disk summed), so each band's true flux is known.
The model reads HSC-G to HSC-Y (the u band has no counterpart in it and is left out).

* **HSC model**: the run a user makes (:func:`mosaic_pais.api.run`): one FITS file per band
  with a TAN WCS on the 0.168″ grid, ``--bands``, each band's PSF (``--psf``, the npz's PSFs)
  for total fluxes, every other option at its default; its catalogue matched to the truth
  within 3 px (Hungarian).
* **scarlet2**: fitted to the same five bands at the **true** positions of every source, with
  the true PSFs and weights from the noise each band's image measures (the same estimate as
  the run's): its best case.

Per band, the median and each source's |δ| = |measured / true − 1|, on every source each
method measures (scarlet2 all of them by construction), and on the sources both measure.

Usage: python benchmarks/hsc_blends.py [--model M.keras] [--max-iter 200]
Writes docs/results/hsc_blends.json and docs/figures/hsc_blends.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.sim.bands import SURVEYS
from mosaic_pais.sim.scenes import data_dir, tan_wcs

#: the npz's band letters and the HSC band names of the model
HSC_NAMES = {"g": "HSC-G", "r": "HSC-R", "i": "HSC-I", "z": "HSC-Z", "y": "HSC-Y"}
BLENDS = ("psf_matched_sim.npz", "psf_unmatched_sim.npz")
PIXEL_SCALE = SURVEYS["HSC"].pixel_scale
MODEL, SCARLET2 = "HSC model", "scarlet2 (true positions)"
#: what the figure shows of each blend, filled as the blends are evaluated
FIGURE_ROWS: list = []


def plot_blends(rows, output: Path) -> None:
    """Each blend's HSC-I image with the true sources and the model's detections, and each
    source's δ per band for the model and for scarlet2."""
    from mosaic_pais.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 4 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6]})
    for (name, blend, ours, theirs), (left, right) in zip(rows, axes, strict=True):
        truth, bands = blend["truth"], blend["bands"]
        image = blend["image"][bands.index("HSC-I")]
        left.imshow(np.arcsinh(image / np.percentile(image, 99) * 10), origin="lower",
                    cmap="gray_r")
        left.scatter(truth["x"], truth["y"], s=120, facecolors="none", edgecolors="tab:blue",
                     label="true sources")
        xy = ours["detections_xy"]
        left.scatter(xy[:, 0], xy[:, 1], marker="x", color="tab:red", label="HSC model")
        left.set_title(f"{name}: HSC-I")
        left.legend(fontsize=8, loc="upper right")
        x = np.arange(len(bands))
        for k in range(len(truth["x"])):
            d_ours = [ours[b][k] / truth[b][k] - 1 for b in bands]
            d_theirs = [theirs[b][k] / truth[b][k] - 1 for b in bands]
            right.plot(x + 0.05 * k, d_ours, "o-", color=f"C{k}", ms=4)
            right.plot(x + 0.05 * k, d_theirs, "s:", color=f"C{k}", ms=4, alpha=0.6)
        right.axhline(0, color="k", lw=0.8)
        right.set_xticks(x, bands)
        right.set_ylabel("δ = measured / true − 1")
        right.set_yscale("symlog", linthresh=1.0)  # a faint source's δ of +10 beside ±0.1
        right.set_title("each source (colour): HSC model ●—, scarlet2 ■···")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)


def load_blend(path: Path) -> dict:
    """A blend's five HSC bands: image (b, h, w), PSFs (b, s, s) of unit sum, band names, and
    the truth: each source's position and true flux per band (its components summed)."""
    with np.load(path, allow_pickle=True) as npz:
        letters = [str(f) for f in npz["filters"]]
        keep = [letters.index(b) for b in HSC_NAMES]
        catalog = npz["catalog"]
        image = np.asarray(npz["images"], np.float64)[keep]
        psfs = np.asarray(npz["psfs"], np.float64)[keep]
    index = np.asarray(catalog["index"])
    ids = list(dict.fromkeys(index.tolist()))  # catalogue order, components merged
    rows = [np.flatnonzero(index == i) for i in ids]
    truth = {"x": np.array([catalog["x"][r].mean() for r in rows]),
             "y": np.array([catalog["y"][r].mean() for r in rows]),
             "is_star": np.array([bool(catalog["is_star"][r[0]]) for r in rows])}
    for letter, band in HSC_NAMES.items():
        truth[band] = np.array([catalog[f"intensity_{letter}"][r].sum() for r in rows])
    return {"image": image, "psf": psfs / psfs.sum(axis=(1, 2), keepdims=True),
            "bands": [HSC_NAMES[b] for b in HSC_NAMES], "truth": truth}


def model_fluxes(blend: dict, model: Path | None, folder: Path) -> tuple[dict, float]:
    """The run's catalogue of the blend: per band, each truth source's measured flux (NaN
    where no detection matches it), the number of detections, and the wall seconds."""
    from mosaic_pais.api import run

    images, psfs = [], []
    for k, band in enumerate(blend["bands"]):
        images.append(folder / f"{band}.fits")
        psfs.append(folder / f"{band}_psf.fits")
        fits.PrimaryHDU(blend["image"][k].astype(np.float32),
                        header=tan_wcs(*blend["image"].shape[1:], ra=150.1, dec=2.2,
                                       pixel_scale=PIXEL_SCALE).to_header()).writeto(images[-1])
        fits.PrimaryHDU(blend["psf"][k].astype(np.float32)).writeto(psfs[-1])
    t0 = time.perf_counter()
    table, _ = run(images, folder / "run", bands=blend["bands"], model=model,
                   psf=",".join(map(str, psfs)), progress=False)
    seconds = time.perf_counter() - t0
    truth = blend["truth"]
    det, tru = match_catalogs(np.stack([_values(table["x"]), _values(table["y"])], 1),
                              np.stack([truth["x"], truth["y"]], 1), radius=3.0)
    out = {"n_detections": len(table),
           "detections_xy": np.stack([_values(table["x"]), _values(table["y"])], 1)}
    for band in blend["bands"]:
        flux = np.full(len(truth["x"]), np.nan)
        flux[tru] = _values(table[f"flux_{band}"])[det]
        out[band] = flux
    return out, seconds


def _values(column) -> np.ndarray:
    """A catalogue column's numbers, without their unit."""
    return np.asarray(getattr(column, "value", column), float)


def scarlet2_fluxes(blend: dict, sigma: np.ndarray, max_iter: int) -> tuple[dict, float]:
    """scarlet2's flux per band of every truth source, fitted at its true position."""
    from mosaic_pais.labels.scarlet import fit_scene

    weights = np.broadcast_to(1.0 / sigma.reshape(-1, 1, 1) ** 2, blend["image"].shape).copy()
    centres = np.stack([blend["truth"]["y"], blend["truth"]["x"]], 1)
    t0 = time.perf_counter()
    models, _ = fit_scene(blend["image"], weights, blend["psf"], centres, max_iter=max_iter)
    seconds = time.perf_counter() - t0
    flux = models.sum(axis=(2, 3))
    return {band: flux[:, k] for k, band in enumerate(blend["bands"])}, seconds


def errors(measured: dict, truth: dict, bands, rows: np.ndarray) -> dict:
    """Per band the median |δ| over ``rows`` and each source's δ."""
    out = {}
    for band in bands:
        delta = measured[band][rows] / truth[band][rows] - 1.0
        out[band] = {"median_abs_delta": float(np.median(np.abs(delta))) if len(rows)
                     else None, "delta": [float(d) for d in delta]}
    return out


def evaluate_blend(path: Path, model: Path | None, max_iter: int) -> dict:
    blend = load_blend(path)
    truth, bands = blend["truth"], blend["bands"]
    sigma, _ = estimate_noise(blend["image"], n_windows=1, size=max(blend["image"].shape))
    with tempfile.TemporaryDirectory() as folder:
        ours, our_seconds = model_fluxes(blend, model, Path(folder))
    theirs, their_seconds = scarlet2_fluxes(blend, sigma, max_iter)
    n = len(truth["x"])
    found = np.flatnonzero(np.isfinite(ours[bands[0]]))
    FIGURE_ROWS.append((path.name, blend, ours, theirs))
    return {
        "sources": n, "stars": int(truth["is_star"].sum()),
        "detections": ours["n_detections"], "matched": len(found),
        "noise_sigma": dict(zip(bands, map(float, sigma), strict=True)),
        MODEL: {"seconds": our_seconds, "found": errors(ours, truth, bands, found)},
        SCARLET2: {"seconds": their_seconds,
                   "all": errors(theirs, truth, bands, np.arange(n)),
                   "found": errors(theirs, truth, bands, found)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="the HSC model (default: the shipped one for the HSC bands)")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("docs/results/hsc_blends.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/hsc_blends.png"))
    args = parser.parse_args()
    folder = data_dir() / "hsc"
    if not folder.is_dir():
        sys.exit(f"no HSC blends in {folder} (set MOSAIC_PAIS_DATA)")
    results = {name: evaluate_blend(folder / name, args.model, args.max_iter)
               for name in BLENDS}
    results["setup"] = {"model": str(args.model) if args.model else "shipped for the HSC bands",
                        "max_iter": args.max_iter, "match_radius_px": 3.0,
                        "bands": list(HSC_NAMES.values())}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    plot_blends(FIGURE_ROWS, args.figure)
    for name in BLENDS:
        r = results[name]
        print(name, f"{r['matched']}/{r['sources']} found;",
              "model", {b: v["median_abs_delta"] for b, v in r[MODEL]["found"].items()},
              "scarlet2", {b: v["median_abs_delta"] for b, v in r[SCARLET2]["found"].items()})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
