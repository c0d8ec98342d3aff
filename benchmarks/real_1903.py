"""The paper's real labels for GOODS-S cutout 1903: decode them, compare with the paper model's
output, re-encode the cutout our way, and measure the catalogue-to-image alignment.

Usage: python benchmarks/real_1903.py [--data ../shared/data/goods_s/pcr_1903]
Writes docs/results/real_1903.json and docs/figures/real_1903.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from mosaic_pais.evaluation.metrics import match_catalogs
from mosaic_pais.pcr import center_map, decode, encode


def load(folder: Path) -> dict:
    def get(name):
        return np.asarray(fits.getdata(folder / name), dtype=np.float64)

    ref = folder / "reference_model_output"
    deblends = [get(f"reference_model_output/{i}.fits")[..., 0]
                for i in range(len(list(ref.glob("[0-9]*.fits"))))]
    return {"image": get("1903-flux.fits")[..., 0],
            "center": get("1903-center_of_mass.fits")[..., 0],
            "vectors": get("1903-claim_vectors.fits"), "fractions": get("1903-claim_maps.fits"),
            "reference_deblends": np.stack(deblends),
            "reference_recovered": get("reference_model_output/recovered.fits")[..., 0]}


def centroid(img: np.ndarray) -> tuple[float, float]:
    w = np.clip(img, 0, None)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return float((w * yy).sum() / w.sum()), float((w * xx).sum() / w.sum())


def alignment(image: np.ndarray, peaks_yx: np.ndarray, radius: int = 8) -> np.ndarray:
    """Offset (dy, dx) from each label centre to the brightest smoothed pixel near it."""
    smooth = ndimage.gaussian_filter(image, 1.5)
    out = []
    for cy, cx in peaks_yx:
        y0, x0 = max(int(cy) - radius, 0), max(int(cx) - radius, 0)
        patch = smooth[y0:int(cy) + radius + 1, x0:int(cx) + radius + 1]
        py, px = np.unravel_index(np.argmax(patch), patch.shape)
        out.append((py + y0 - cy, px + x0 - cx))
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/goods_s/pcr_1903"))
    parser.add_argument("--json", type=Path, default=Path("docs/results/real_1903.json"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/real_1903.png"))
    args = parser.parse_args()
    d = load(args.data)
    image = d["image"]
    result: dict = {}

    # 1. decode the stored labels with the real image
    decoded = decode(image[None], d["center"], d["vectors"], d["fractions"], threshold=0.1,
                     window=7)
    deblends = decoded.deblend(image[None])[:, 0].astype(np.float64)
    peaks = decoded.peaks
    result["decoded_sources"] = len(peaks)
    result["flux_conservation_max_abs"] = float(np.abs(deblends.sum(0) - image).max())
    result["flux_conservation_l1"] = float(np.abs(deblends.sum(0) - image).sum())
    result["reference_recovered_l1"] = float(np.abs(d["reference_recovered"] - image).sum())

    # 2. compare with the paper model's deblends, matched by flux-weighted centroid
    ref_c = np.array([centroid(s) for s in d["reference_deblends"]])
    our_c = np.array([centroid(s) for s in deblends])
    di, ri = match_catalogs(our_c[:, ::-1], ref_c[:, ::-1], radius=6.0)
    ours = deblends.sum((1, 2))[di]
    theirs = d["reference_deblends"].sum((1, 2))[ri]
    result["reference_sources"] = len(ref_c)
    result["matched_to_reference"] = len(di)
    result["flux_ratio_ours_over_reference"] = (ours / theirs).round(4).tolist()
    result["flux_ours"] = ours.round(4).tolist()
    result["flux_reference"] = theirs.round(4).tolist()

    # 3. alignment of the stored catalogue centres with the image (they sit off the light)
    offsets = alignment(image, peaks.yx)
    bright = deblends.sum((1, 2)) > np.median(deblends.sum((1, 2)))
    result["label_centre_to_flux_peak_median_dy_dx"] = np.median(offsets, 0).round(2).tolist()
    result["label_centre_to_flux_peak_bright_median_dy_dx"] = np.median(offsets[bright], 0).round(
        2).tolist()

    # 4. encode the cutout our way from the same centres and compare with the stored labels
    centers = peaks.yx
    ours_center = center_map(centers, image.shape, sigma=8.0)
    result["center_map_max_abs_diff"] = float(np.abs(ours_center - d["center"]).max())
    # our encoder with the decoded deblends as per-source models: C^v and C^m conventions
    pcr = encode(centers, deblends[:, None], n=3, center_sigma=8.0)
    dv = np.abs(pcr.vectors - d["vectors"])
    result["vectors_median_abs_diff"] = float(np.median(dv))
    result["vectors_frac_within_1px"] = float(np.mean(dv.max(-1) <= 1.0))
    same_slot0 = np.all(np.abs(pcr.vectors[:, :, 0] - d["vectors"][:, :, 0]) <= 1.0, axis=-1)
    result["slot0_same_source_fraction"] = float(same_slot0.mean())
    df = np.abs(pcr.fractions - d["fractions"])
    result["fractions_median_abs_diff"] = float(np.median(df))
    result["fractions_within_0.05"] = float(np.mean(df <= 0.05))
    stored_integer = bool(np.all(d["vectors"] == np.round(d["vectors"])))
    result["stored_vectors_are_integers"] = stored_integer
    print(json.dumps(result, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stretch = np.arcsinh(image / 0.015)
    n = min(len(di), 5)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.4))
    axes[0, 0].imshow(stretch, origin="lower", cmap="gray_r")
    axes[0, 0].plot(peaks.x, peaks.y, "r+", ms=8)
    axes[0, 0].set_title("1903 F160W + label centres", fontsize=8)
    axes[1, 0].imshow(np.arcsinh(deblends.sum(0) / 0.015) - stretch, origin="lower", cmap="RdBu",
                      vmin=-1e-3, vmax=1e-3)
    axes[1, 0].set_title("Σ deblends − image", fontsize=8)
    order = np.argsort(-ours)[:n]
    for k, j in enumerate(order):
        for row, img, who in ((0, deblends[di[j]], "ours (stored labels)"),
                              (1, d["reference_deblends"][ri[j]], "paper model")):
            ax = axes[row, k + 1]
            ax.imshow(np.arcsinh(img / 0.015), origin="lower", cmap="gray_r",
                      vmin=0, vmax=stretch.max())
            ax.set_title(f"{who}\nflux {img.sum():.2f} e⁻/s", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
