"""The four-band model on real four-band GOODS-S data (never seen in training), beside the F160W
model and photutils in dual-image mode.

1. The 17 CANDELS stamps (84×84; F160W, F125W, F850LP, F606W; the official CANDELS SExtractor
   segmentation map, made on F160W): for each method, how many segmentation-map objects hold a
   detection, how many hold exactly one, how many are split, and how many detections fall on
   background. The map is one reference, not the truth: a split object may be two galaxies.
   The map was made on F160W alone, so a source bright only in the bluer bands is not in it:
   each detection on its background is classed by the light under it, its S/N in a 3-px
   aperture in each band (noise and noise texture of the stamp's own band, as a run measures
   them): S/N ≥ 5 in F160W, S/N ≥ 5 only in a bluer band (a source the map cannot hold), or
   below 5 in every band (nothing there that an aperture sees: a false detection, or a source
   too faint to tell).
2. GOODS-S cutouts 1903 and 67 (256×256, Hubble Legacy Field): how many sources each method
   detects, and for the sources that the four-band model and photutils both detect (3 px), how
   far apart their colours F606W − F160W are (no truth here: an agreement, not an accuracy),
   → docs/figures/real_four_band.png: each cutout in colour (F606W, F850LP, F160W as blue,
   green, red) with both models' detections, and the four-band model's deblends of the
   brightest source in F160W and F606W.

Usage: python benchmarks/real_four_band.py [--model mosaic_pais/models/pais_fourband.keras]
Writes docs/results/real_four_band.json (and the figure) when the model is the shipped one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
from real_cutouts import labels_at, run_tile, segmap_counts  # noqa: E402, I001 - sibling script

from mosaic_pais.evaluation.metrics import match_catalogs  # noqa: E402
from mosaic_pais.evaluation.peers import run_photutils_bands  # noqa: E402
from mosaic_pais.runtime.infer import estimate_noise  # noqa: E402
from mosaic_pais.nn.model import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    model_for_bands,
    model_metadata,
)
from mosaic_pais.sim.bands import FOUR_BANDS  # noqa: E402
from mosaic_pais.sim.scenes import data_dir  # noqa: E402

#: the band order of the real cutouts' cubes (y, x, band), and the stamps' file letters
CUTOUT_BANDS = ("F160W", "F125W", "F606W", "F850LP")
STAMP_FILES = {"F160W": "h", "F125W": "j", "F850LP": "z", "F606W": "v"}
FOUR, SINGLE, PHOTUTILS = "four-band model", "F160W model", "photutils (dual image)"
#: the aperture (px radius) and S/N of the light that supports a detection on the background
SUPPORT_RADIUS, SUPPORT_SNR = 3.0, 5.0


def stamp_cube(stem: str) -> np.ndarray:
    """A CANDELS stamp's four bands, (band, y, x) in :data:`FOUR_BANDS` order."""
    return np.stack([np.asarray(fits.getdata(f"{stem}_{STAMP_FILES[b]}.fits"), np.float64)
                     for b in FOUR_BANDS])


def cutout_cube(path: Path) -> np.ndarray:
    """A GOODS-S cutout's four bands, (band, y, x) in :data:`FOUR_BANDS` order."""
    data = np.asarray(fits.getdata(path), np.float64)
    return np.stack([data[..., CUTOUT_BANDS.index(b)] for b in FOUR_BANDS])


def detections(models: dict, cube: np.ndarray) -> dict:
    """(x, y) of each method's detections on a cube, and the four-band model's and
    photutils' per-band fluxes of them."""
    out = {}
    for name, (predictor, meta, single) in models.items():
        peaks, keep, deblends = run_tile(predictor, cube[:1] if single else cube, meta)
        fluxes = deblends[keep].sum(axis=(-2, -1))  # (source, band)
        out[name] = (np.stack([peaks.x[keep], peaks.y[keep]], 1), fluxes)
    table = run_photutils_bands(cube, None, FOUR_BANDS)
    out[PHOTUTILS] = (np.stack([np.asarray(table["x"], float), np.asarray(table["y"], float)], 1),
                      np.stack([np.asarray(table[f"flux_{b}"], float) for b in FOUR_BANDS], 1))
    return out


def aperture_snr(cube: np.ndarray, xy: np.ndarray, radius: float = SUPPORT_RADIUS) -> np.ndarray:
    """(detection, band) S/N of the light in a circular aperture around each (x, y): the sum
    over the pixels within ``radius`` (less the band's clipped median) over the noise such a
    sum has, from the cube's own pixel noise and noise texture
    (:func:`mosaic_pais.runtime.infer.estimate_noise`; the texture is the noise of 4-px block
    means against white noise's, so it scales a sum over a few pixels).

    >>> rng = np.random.default_rng(0)
    >>> cube = rng.normal(0.0, 1.0, (2, 64, 64))
    >>> cube[1, 30:33, 30:33] += 10.0
    >>> np.round(aperture_snr(cube, np.array([[31.0, 31.0]])), 0) > [[5, 5]]
    array([[False,  True]])
    """
    from astropy.stats import sigma_clipped_stats

    sigma, texture = estimate_noise(cube, n_windows=1, size=max(cube.shape[-2:]))
    sky = np.array([sigma_clipped_stats(band, sigma=3.0)[1] for band in cube])
    cube = cube - sky[:, None, None]
    yy, xx = np.mgrid[:cube.shape[1], :cube.shape[2]]
    out = np.zeros((len(xy), len(cube)))
    for k, (x, y) in enumerate(xy):
        inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
        noise = sigma * np.nan_to_num(texture, nan=1.0) * np.sqrt(inside.sum())
        out[k] = cube[:, inside].sum(axis=1) / noise
    return out


def background_support(cube: np.ndarray, xy: np.ndarray, seg: np.ndarray) -> dict:
    """How many of the detections that fall on the map's background have S/N ≥
    :data:`SUPPORT_SNR` in F160W, only in a bluer band, or in no band (:func:`aperture_snr`)."""
    snr = aperture_snr(cube, xy[labels_at(seg, xy) == 0]) >= SUPPORT_SNR
    red = snr[:, FOUR_BANDS.index("F160W")]
    return {"in_f160w": int(red.sum()), "only_bluer_bands": int((~red & snr.any(1)).sum()),
            "in_no_band": int((~snr.any(1)).sum())}


def candels_stamps(models: dict, root: Path) -> dict:
    counts: dict = {}
    support: dict = {}
    stems = [str(p).removesuffix("_segmap.fits")
             for p in sorted((root / "candels_stamps").glob("GDS_*_segmap.fits"))]
    stems = [s for s in stems if all(Path(f"{s}_{x}.fits").exists()
                                     for x in STAMP_FILES.values())]
    n_objects = 0
    for stem in stems:
        cube = stamp_cube(stem)
        seg = np.asarray(fits.getdata(f"{stem}_segmap.fits")).astype(int)
        found = {name: xy for name, (xy, _) in detections(models, cube).items()}
        n_objects += segmap_counts(found, seg, counts)
        for name, xy in found.items():
            for key, n in background_support(cube, xy, seg).items():
                support.setdefault(name, {}).setdefault(key, 0)
                support[name][key] += n
    for name, classes in support.items():
        counts[name]["on_background_supported"] = classes
    return {"stamps": len(stems), "objects": n_objects, "methods": counts,
            "support": {"aperture_radius_px": SUPPORT_RADIUS, "snr": SUPPORT_SNR}}


def colour(fluxes: np.ndarray) -> np.ndarray:
    """F606W − F160W (mag) of (source, band) fluxes; NaN where either flux is ≤ 0."""
    blue, red = fluxes[:, FOUR_BANDS.index("F606W")], fluxes[:, FOUR_BANDS.index("F160W")]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((blue > 0) & (red > 0), -2.5 * np.log10(blue / red), np.nan)


def colour_agreement(found: dict) -> dict:
    """How far apart the four-band model's and photutils' colours are on the sources both
    detect within 3 px."""
    (xy_m, f_m), (xy_p, f_p) = found[FOUR], found[PHOTUTILS]
    d, t = match_catalogs(xy_m, xy_p, radius=3.0)
    difference = np.abs(colour(f_m[d]) - colour(f_p[t]))
    finite = np.isfinite(difference)
    return {"matched": len(d), "with_colours": int(finite.sum()),
            "median_abs_colour_difference": float(np.median(difference[finite]))
            if finite.any() else None}


def rgb(cube: np.ndarray) -> np.ndarray:
    """F160W, F850LP, F606W as red, green, blue, each in units of its own noise on an asinh
    stretch that shows the noise (so that faint sources can be seen); masked pixels white."""
    from astropy.stats import mad_std

    planes = [cube[FOUR_BANDS.index(b)] for b in ("F160W", "F850LP", "F606W")]
    scaled = [np.arcsinh(np.nan_to_num(p - np.nanmedian(p), nan=1e9) / mad_std(p, ignore_nan=True))
              for p in planes]
    return np.clip((np.stack(scaled, -1) + 1.0) / (np.arcsinh(100.0) + 1.0), 0, 1)


def cutouts(models: dict, root: Path, figure: Path | None) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = {}
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.4))
    for row, (name, path) in enumerate((("1903", root / "pcr_1903" / "1903-flux.fits"),
                                        ("67", root / "cutout_67" / "67-flux.fits"))):
        cube = cutout_cube(path)
        found = detections(models, cube)
        result[f"cutout_{name}"] = {"detections": {m: len(xy) for m, (xy, _) in found.items()},
                                    "colour_agreement": colour_agreement(found)}
        axes[row, 0].imshow(rgb(cube), origin="lower")
        for method, style in ((FOUR, dict(mec="w", ms=8)), (SINGLE, dict(mec="r", ms=5))):
            xy = found[method][0]
            axes[row, 0].plot(xy[:, 0], xy[:, 1], "o", mfc="none", ls="none",
                              label=f"{method}: {len(xy)}", **style)
        axes[row, 0].legend(fontsize=7, loc="upper right")
        axes[row, 0].set_title(f"cutout {name} (F606W, F850LP, F160W)", fontsize=8)
        _, keep, deblends = run_tile(models[FOUR][0], cube, models[FOUR][1])
        deblends = deblends[keep]
        brightest = int(np.argmax(deblends[:, 0].sum(axis=(1, 2))))
        for k, band in enumerate(("F160W", "F606W")):
            plane = deblends[brightest, FOUR_BANDS.index(band)]
            axes[row, k + 1].imshow(np.arcsinh(plane / (3 * np.std(cube[FOUR_BANDS.index(
                band)]))), origin="lower", cmap="gray_r", vmin=-0.5, vmax=5)
            axes[row, k + 1].set_title(f"brightest source's deblend in {band}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if figure is not None:
        fig.savefig(figure, dpi=100)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="another four-band model (a candidate run): figures are printed, "
                             "not written")
    args = parser.parse_args()
    shipped = args.model is None
    four = model_for_bands(FOUR_BANDS) if shipped else args.model
    models = {name: (PAISPredictor(path), model_metadata(path), single)
              for name, path, single in ((FOUR, four, False), (SINGLE, DEFAULT_MODEL_PATH, True))}
    root = data_dir() / "goods_s"
    result = {"four_band_model": model_metadata(four).get("version"),
              "f160w_model": model_metadata(DEFAULT_MODEL_PATH).get("version"),
              "candels_stamps": candels_stamps(models, root),
              **cutouts(models, root, Path("docs/figures/real_four_band.png") if shipped
                        else None)}
    print(json.dumps(result, indent=1))
    if shipped:
        Path("docs/results/real_four_band.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
