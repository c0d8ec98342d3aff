"""The shipped model on real GOODS-S F160W data (never seen in training).

1. Cutouts 1903 and 67 (256×256): the model's detections and deblends, beside the paper model's
   reference output for 1903 → docs/figures/real_cutouts.png.
2. The 17 CANDELS stamps (84×84, F160W, with the official CANDELS SExtractor segmentation map):
   how many segmentation-map objects have a model detection inside their footprint, and how
   many detections fall on background → docs/results/real_cutouts.json.

Usage: python benchmarks/real_cutouts.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from mosaic_pais.infer import estimate_noise
from mosaic_pais.model import (
    DEFAULT_MODEL_PATH,
    PAISPredictor,
    detection_threshold,
    model_metadata,
    peak_finding,
)
from mosaic_pais.pcr import decode
from mosaic_pais.simulation import data_dir


def run_tile(predictor, image: np.ndarray, meta: dict):
    """Detections and deblends of one image (padded to a multiple of 32, padding invalid)."""
    h, w = image.shape
    size = max(64, int(np.ceil(max(h, w) / 32)) * 32)
    padded = np.zeros((1, 1, size, size), np.float32)
    valid = np.zeros((1, size, size), bool)
    padded[0, 0, :h, :w] = np.nan_to_num(image)
    valid[0, :h, :w] = np.isfinite(image)
    sigma, textures = estimate_noise(image[None], n_windows=1, size=max(h, w))
    texture = float(textures[0])
    pred = predictor(padded, sigma, valid)
    decoded = decode(padded[0], pred.center[0], pred.vectors[0], pred.fractions[0],
                     threshold=detection_threshold(meta, texture),
                     **peak_finding(meta), valid=valid[0],
                     vote=str(meta.get("vote", "vectors")))
    keep = (decoded.peaks.iy < h) & (decoded.peaks.ix < w)
    deblends = decoded.deblend(padded[0])[:, 0, :h, :w]
    return decoded.peaks, keep, deblends


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
            axes[row, 4].imshow(np.arcsinh(deblends.sum(0) / 0.015) - stretch, origin="lower",
                                cmap="RdBu", vmin=-0.1, vmax=0.1)
            axes[row, 4].set_title("Σ deblends − image (asinh)", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if shipped:
        Path("docs/figures").mkdir(parents=True, exist_ok=True)
        fig.savefig("docs/figures/real_cutouts.png", dpi=100)

    found = total = spurious = detections = 0
    stamps = sorted((root / "candels_stamps").glob("GDS_*_segmap.fits"))
    for seg_path in stamps:
        image = np.asarray(fits.getdata(str(seg_path).replace("_segmap", "_h")), np.float64)
        seg = np.asarray(fits.getdata(seg_path)).astype(int)
        peaks, keep, _ = run_tile(predictor, image, meta)
        iy, ix = peaks.iy[keep], peaks.ix[keep]
        labels = set(np.unique(seg)) - {0}
        hit = set(seg[iy, ix]) - {0}
        found += len(hit & labels)
        total += len(labels)
        spurious += int((seg[iy, ix] == 0).sum())
        detections += len(iy)
    result.update({"candels_stamps": len(stamps), "segmap_objects": total,
                   "segmap_objects_with_a_detection": found,
                   "detections": detections, "detections_on_segmap_background": spurious})
    print(json.dumps(result, indent=1))
    if shipped:
        Path("docs/results").mkdir(parents=True, exist_ok=True)
        Path("docs/results/real_cutouts.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
