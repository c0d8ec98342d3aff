"""Does the simulator resemble GOODS-S F160W? Simulated tiles beside the real cutouts.

Runs sep with the same settings on 30 simulated 256×256 tiles (test split seeds) and on the
real F160W cutouts 1903 and 67, and compares pixel histograms, source counts per magnitude per
arcmin², sizes (half-light radius against magnitude) and the noise level and correlation.

Usage: python benchmarks/simulation_vs_goods_s.py [--tiles 30]
Writes docs/figures/simulation_vs_goods_s.png and docs/results/simulation_vs_goods_s.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from mosaic_pais.sim.scenes import (
    PIXEL_SCALE,
    SIMULATOR_VERSION,
    ZEROPOINT,
    data_dir,
    simulate_scene,
)
from mosaic_pais.training.dataset import SPLIT_SEED_BASE

MAG_EDGES = np.arange(19, 29.5, 1.0)


def detect(image: np.ndarray) -> dict:
    data = np.ascontiguousarray(image, dtype=np.float64)
    bkg = sep.Background(data, bw=64, bh=64)
    data = data - bkg.back()
    _, _, std = sigma_clipped_stats(data, sigma=3.0, stdfunc="mad_std")
    obj = sep.extract(data, 1.5, err=std, minarea=5, deblend_cont=0.005)
    flux, _, _ = sep.sum_circle(data, obj["x"], obj["y"], 6.0)
    r50, _ = sep.flux_radius(data, obj["x"], obj["y"], np.full(len(obj), 12.0), 0.5,
                             normflux=flux)
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = ZEROPOINT - 2.5 * np.log10(flux)
    shifted = data[1:, :] * data[:-1, :]
    rho = float(np.median(shifted) / np.median(data * data)) if std > 0 else np.nan
    return {"mag": mag, "r50": r50, "sigma": float(std), "pixels": data.ravel(), "rho": rho}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=30)
    args = parser.parse_args()
    real_paths = [data_dir() / "goods_s" / "pcr_1903" / "1903-flux.fits",
                  data_dir() / "goods_s" / "cutout_67" / "67-flux.fits"]
    real = [detect(np.asarray(fits.getdata(p)[..., 0], np.float64)) for p in real_paths]
    sims = [detect(simulate_scene(seed=SPLIT_SEED_BASE["test"] + i).image[0])
            for i in range(args.tiles)]
    area = (256 * PIXEL_SCALE / 60) ** 2

    def counts(rows):
        mags = np.concatenate([r["mag"] for r in rows])
        h, _ = np.histogram(mags[np.isfinite(mags)], MAG_EDGES)
        return h / (area * len(rows))

    result = {
        "real_noise_sigma": [r["sigma"] for r in real],
        "sim_noise_sigma_median": float(np.median([r["sigma"] for r in sims])),
        "real_detections_per_arcmin2": float(np.mean([len(r["mag"]) for r in real]) / area),
        "sim_detections_per_arcmin2": float(np.mean([len(r["mag"]) for r in sims]) / area),
        "mag_edges": MAG_EDGES.tolist(),
        "real_counts_per_arcmin2_per_mag": counts(real).round(2).tolist(),
        "sim_counts_per_arcmin2_per_mag": counts(sims).round(2).tolist(),
    }
    print(json.dumps(result, indent=1))
    Path("docs/results").mkdir(parents=True, exist_ok=True)
    result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
    Path("docs/results/simulation_vs_goods_s.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    real_img = np.asarray(fits.getdata(real_paths[0])[..., 0], np.float64)
    sim_img = simulate_scene(seed=SPLIT_SEED_BASE["test"] + 1).image[0]
    for ax, img, title in ((axes[0], real_img, "real GOODS-S F160W (cutout 1903)"),
                           (axes[1], sim_img, "simulated tile (test seed 1)")):
        ax.imshow(np.arcsinh(img / 0.015), origin="lower", cmap="gray_r", vmin=-0.5, vmax=4)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    bins = np.linspace(-0.03, 0.1, 80)
    for rows, label, color in ((real, "real", "k"), (sims, "simulated", "tab:red")):
        pix = np.concatenate([r["pixels"] for r in rows])
        axes[2].hist(pix, bins, density=True, histtype="step", color=color, label=label, log=True)
        centres = 0.5 * (MAG_EDGES[1:] + MAG_EDGES[:-1])
        axes[3].step(centres, counts(rows), where="mid", color=color, label=label)
        mags = np.concatenate([r["mag"] for r in rows])
        r50 = np.concatenate([r["r50"] for r in rows])
        axes[4].scatter(mags, r50 * PIXEL_SCALE, s=6, alpha=0.5, color=color, label=label)
    axes[2].set_xlabel("pixel value [e⁻/s]")
    axes[2].set_title("pixel histogram (background-subtracted)", fontsize=9)
    axes[3].set_xlabel("H (sep, 6 px aperture) [AB]")
    axes[3].set_ylabel("detections / arcmin² / mag")
    axes[3].set_yscale("log")
    axes[3].set_title("number counts (sep 1.5σ, 5 px)", fontsize=9)
    axes[4].set_xlabel("H [AB]")
    axes[4].set_ylabel("r50 [arcsec]")
    axes[4].set_ylim(0, 1.0)
    axes[4].set_title("sizes", fontsize=9)
    for ax in axes[2:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path("docs/figures").mkdir(parents=True, exist_ok=True)
    fig.savefig("docs/figures/simulation_vs_goods_s.png", dpi=100)


if __name__ == "__main__":
    main()
