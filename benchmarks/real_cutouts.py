"""The shipped model on real data (never seen in training), beside sep and photutils.

1. GOODS-S cutouts 1903 and 67 (256×256): the model's detections and deblends, beside the paper
   model's reference output for 1903 → docs/figures/real_cutouts.png.
2. The 17 CANDELS stamps (84×84, F160W, with the official CANDELS SExtractor segmentation map):
   for the model, sep and photutils, how many segmentation-map objects hold a detection, how
   many hold exactly one and how many are split, and how many detections fall on background.
3. A real ground-based frame (ESO NTT/EMMI R band, 256×256 cut, sky still in it) and the
   SExtractor catalogue made on it: the share of SExtractor's objects each method finds and of
   its detections SExtractor also has (3 px match), the model with the sky subtracted as a run
   does (:mod:`mosaic_pais.runtime.background`) and without. sep and photutils get the frame as it
   is,
   each subtracting its own background as a user of either would.

Both tables → docs/results/real_cutouts.json.

Usage: python benchmarks/real_cutouts.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.evaluation.peers import run_photutils, run_sep
from mosaic_pais.nn.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    detection_threshold,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import decode
from mosaic_pais.runtime.background import subtract_sky
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.sim.scenes import data_dir

METHODS = ("mosaic-pais", "sep", "photutils")


def without_sky(image: np.ndarray) -> np.ndarray:
    """The image with its sky subtracted as a run subtracts it
    (:mod:`mosaic_pais.runtime.background`)."""
    return subtract_sky(image[None])[0]


def run_tile(predictor, image: np.ndarray, meta: dict, remove_sky: bool = True):
    """Detections and deblends of one image, (y, x) or (band, y, x) in the model's band order
    (padded to a multiple of 32, padding invalid), with its sky subtracted first as a run
    does. The deblends are (source, y, x) of a single band, (source, band, y, x) of several."""
    cube = np.asarray(image, np.float64)
    cube = cube[None] if cube.ndim == 2 else cube
    n_bands, h, w = cube.shape
    if remove_sky:
        cube = subtract_sky(cube)
    size = max(64, int(np.ceil(max(h, w) / 32)) * 32)
    padded = np.zeros((1, n_bands, size, size), np.float32)
    valid = np.zeros((1, size, size), bool)
    padded[0, :, :h, :w] = np.nan_to_num(cube)
    valid[0, :h, :w] = np.all(np.isfinite(cube), axis=0)
    sigma, textures = estimate_noise(cube, n_windows=1, size=max(h, w))
    texture = float(textures[0])
    pred = predictor(padded, sigma, valid)
    decoded = decode(padded[0], pred.center[0], pred.vectors[0], pred.fractions[0],
                     threshold=detection_threshold(meta, texture),
                     **peak_finding(meta), valid=valid[0],
                     vote=str(meta.get("vote", "vectors")))
    keep = (decoded.peaks.iy < h) & (decoded.peaks.ix < w)
    deblends = decoded.deblend(padded[0])[:, :, :h, :w]
    return decoded.peaks, keep, deblends[:, 0] if np.ndim(image) == 2 else deblends


def detections(predictor, image: np.ndarray, meta: dict) -> dict:
    """(x, y) of every method's detections on one image."""
    peaks, keep, _ = run_tile(predictor, image, meta)
    out = {"mosaic-pais": np.stack([peaks.x[keep], peaks.y[keep]], 1)}
    for name, peer in (("sep", run_sep), ("photutils", run_photutils)):
        table = peer(image)
        out[name] = np.stack([np.asarray(table["x"], float), np.asarray(table["y"], float)], 1)
    return out


def labels_at(seg: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The segmentation map's label under each (x, y): its nearest pixel, clipped to the map."""
    ix = np.clip(np.floor(xy[:, 0] + 0.5).astype(int), 0, seg.shape[1] - 1)
    iy = np.clip(np.floor(xy[:, 1] + 0.5).astype(int), 0, seg.shape[0] - 1)
    return seg[iy, ix]


def segmap_counts(found: dict, seg: np.ndarray, counts: dict) -> int:
    """Adds one stamp's counts per method to ``counts``: how many of the segmentation map's
    objects hold a detection, exactly one, more than one, and how many detections fall on
    background; ``found`` is each method's (x, y) of its detections. Returns the number of
    objects."""
    objects = sorted(set(np.unique(seg)) - {0})
    for name, xy in found.items():
        on = labels_at(seg, xy)
        per_object = np.array([(on == label).sum() for label in objects])
        c = counts.setdefault(name, {"objects_found": 0, "objects_with_one": 0,
                                     "objects_split": 0, "detections": 0, "on_background": 0})
        c["objects_found"] += int((per_object > 0).sum())
        c["objects_with_one"] += int((per_object == 1).sum())
        c["objects_split"] += int((per_object > 1).sum())
        c["detections"] += len(on)
        c["on_background"] += int((on == 0).sum())
    return len(objects)


def candels_stamps(predictor, meta: dict, root: Path) -> dict:
    """Each method's detections against the official CANDELS segmentation maps."""
    counts: dict = {}
    stamps = sorted((root / "candels_stamps").glob("GDS_*_segmap.fits"))
    n_objects = 0
    for seg_path in stamps:
        image = np.asarray(fits.getdata(str(seg_path).replace("_segmap", "_h")), np.float64)
        seg = np.asarray(fits.getdata(seg_path)).astype(int)
        n_objects += segmap_counts(detections(predictor, image, meta), seg, counts)
    return {"stamps": len(stamps), "objects": n_objects, "methods": counts}


def ground_frame(predictor, meta: dict) -> dict:
    """Each method against SExtractor's catalogue of the ground-based R-band cut."""
    import warnings

    folder = data_dir() / "ground_r_band"
    with warnings.catch_warnings():  # its ESO-LOG cards follow no FITS convention
        warnings.simplefilter("ignore")
        image = np.asarray(fits.getdata(folder / "galaxies_cut_256.fits"), np.float64)
    sextractor = np.loadtxt(folder / "galaxies_cut_256.sextractor.cat")
    reference = np.stack([sextractor[:, 3] - 1, sextractor[:, 4] - 1], 1)  # 1-based
    found = detections(predictor, image, meta)
    peaks, keep, _ = run_tile(predictor, image, meta, remove_sky=False)
    found["mosaic-pais, sky left in"] = np.stack([peaks.x[keep], peaks.y[keep]], 1)
    rows = {}
    for name, xy in found.items():
        d, t = match_catalogs(xy, reference, radius=3.0)
        rows[name] = {"detections": len(xy), "matched": len(d),
                      "share_of_sextractor_found": len(t) / len(reference),
                      "share_in_sextractor": len(d) / max(len(xy), 1)}
    return {"sextractor_objects": len(reference),
            "sky_level": float(np.median(fits.getdata(
                folder / "galaxies_cut_256.background.fits"))),
            "methods": rows}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH,
                        help="another model (a candidate run): figures are printed, not written")
    args = parser.parse_args()
    shipped = args.model == DEFAULT_MODEL_PATH
    meta = model_metadata(args.model)
    predictor = PAISPredictor(args.model)
    root = data_dir() / "goods_s"
    result: dict = {"model": meta.get("version")}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(15, 6.4))
    for row, (name, path) in enumerate((("1903", root / "pcr_1903" / "1903-flux.fits"),
                                        ("67", root / "cutout_67" / "67-flux.fits"))):
        image = np.asarray(fits.getdata(path)[..., 0], np.float64)
        peaks, keep, deblends = run_tile(predictor, image, meta)
        result[f"cutout_{name}_detections"] = int(keep.sum())
        stretch = np.arcsinh(image / 0.015)
        axes[row, 0].imshow(stretch, origin="lower", cmap="gray_r", vmin=-0.5, vmax=5)
        axes[row, 0].plot(peaks.x[keep], peaks.y[keep], "o", mfc="none", mec="r", ms=7)
        axes[row, 0].set_title(f"cutout {name}: {keep.sum()} detections", fontsize=8)
        order = np.argsort(-deblends.sum((1, 2)))[:3]
        for k, j in enumerate(order):
            axes[row, k + 1].imshow(np.arcsinh(deblends[j] / 0.015), origin="lower",
                                    cmap="gray_r", vmin=-0.5, vmax=5)
            axes[row, k + 1].set_title(f"deblend {j}: {deblends[j].sum():.2f} e⁻/s", fontsize=8)
        if name == "1903":
            refs = [np.asarray(fits.getdata(p)[..., 0], np.float64) for p in sorted(
                (root / "pcr_1903" / "reference_model_output").glob("[0-9]*.fits"))]
            ref = max(refs, key=lambda a: a.sum())
            axes[row, 4].imshow(np.arcsinh(ref / 0.015), origin="lower", cmap="gray_r",
                                vmin=-0.5, vmax=5)
            axes[row, 4].set_title(f"paper model's brightest: {ref.sum():.2f} e⁻/s", fontsize=8)
        else:
            axes[row, 4].imshow(np.arcsinh(deblends.sum(0) / 0.015)
                                - np.arcsinh(without_sky(image) / 0.015), origin="lower",
                                cmap="RdBu", vmin=-0.1, vmax=0.1)
            axes[row, 4].set_title("Σ deblends − image without its sky (asinh)", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if shipped:
        Path("docs/figures").mkdir(parents=True, exist_ok=True)
        fig.savefig("docs/figures/real_cutouts.png", dpi=100)

    result["candels_stamps"] = candels_stamps(predictor, meta, root)
    result["ground_r_band"] = ground_frame(predictor, meta)
    print(json.dumps(result, indent=1))
    if shipped:
        Path("docs/results").mkdir(parents=True, exist_ok=True)
        Path("docs/results/real_cutouts.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
