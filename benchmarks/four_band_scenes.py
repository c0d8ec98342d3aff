"""Do the four-band scenes resemble GOODS-S in four bands? Simulated tiles beside real cutouts.

On the real four-band GOODS-S cutouts 1903 and 67 (F160W, F125W, F606W, F850LP, Hubble Legacy
Field) and on simulated four-band 256² tiles (test seeds, :data:`mosaic_pais.sim.bands.
FOUR_BANDS`), the same measurements: per band the pixel noise and its texture (4 × 4 block
noise over pixel noise) and the pixel histogram; sources detected by sep on F160W (3σ, 10 px)
and their colours F606W − F160W, F850LP − F160W and F125W − F160W in 5 px apertures, by
magnitude. The CANDELS stamps that have all four bands add their colours to the
real side.

Usage: python benchmarks/four_band_scenes.py [--tiles 30]
Writes docs/results/four_band_scenes.json and docs/figures/four_band_scenes.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from mosaic_pais.sim.bands import BANDS, FOUR_BANDS
from mosaic_pais.sim.scenes import SIMULATOR_VERSION, data_dir, simulate_scene
from mosaic_pais.training.dataset import SPLIT_SEED_BASE

#: the band order of the real cutouts' cubes (h, w, band)
CUTOUT_BANDS = ("F160W", "F125W", "F606W", "F850LP")
STAMP_FILES = {"F160W": "h", "F125W": "j", "F606W": "v", "F850LP": "z"}
COLOURS = ("F606W", "F850LP", "F125W")
MAG_BINS = ((18.0, 23.0), (23.0, 25.0), (25.0, 27.0))
APERTURE = 5.0


def noise_and_texture(band: np.ndarray) -> tuple[float, float]:
    """Sigma-clipped pixel noise, and the noise of 4 × 4 block means × 4 over it."""
    _, _, sigma = sigma_clipped_stats(band, sigma=3.0, maxiters=10, stdfunc="mad_std")
    h, w = (band.shape[0] // 4) * 4, (band.shape[1] // 4) * 4
    blocks = band[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    _, _, block_sigma = sigma_clipped_stats(blocks, sigma=3.0, maxiters=10, stdfunc="mad_std")
    return float(sigma), float(4 * block_sigma / sigma)


def subtract_background(band: np.ndarray) -> np.ndarray:
    data = np.ascontiguousarray(band, dtype=np.float64)
    return data - sep.Background(data, bw=64, bh=64).back()


def colours_of(cube: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """H and the colours X − F160W (AB, 5 px apertures) of sources sep finds on F160W."""
    planes = {band: subtract_background(img) for band, img in cube.items()}
    _, _, rms = sigma_clipped_stats(planes["F160W"], sigma=3.0, stdfunc="mad_std")
    objects = sep.extract(planes["F160W"], 3.0, err=rms, minarea=10)
    mags = {}
    for band, data in planes.items():
        flux, _, _ = sep.sum_circle(data, objects["x"], objects["y"], APERTURE)
        with np.errstate(invalid="ignore", divide="ignore"):
            mags[band] = BANDS[band].zeropoint - 2.5 * np.log10(flux)
    out = {"H": mags["F160W"]}
    for band in COLOURS:
        out[band] = mags[band] - mags["F160W"]
    return out


def real_cubes() -> list[dict[str, np.ndarray]]:
    cubes = []
    for path in (data_dir() / "goods_s" / "pcr_1903" / "1903-flux.fits",
                 data_dir() / "goods_s" / "cutout_67" / "67-flux.fits"):
        data = np.asarray(fits.getdata(path), np.float64)
        cubes.append({band: data[..., k] for k, band in enumerate(CUTOUT_BANDS)})
    return cubes


def stamp_cubes() -> list[dict[str, np.ndarray]]:
    folder = data_dir() / "goods_s" / "candels_stamps"
    cubes = []
    for h_path in sorted(folder.glob("GDS_*_h.fits")):
        stem = str(h_path)[:-len("_h.fits")]
        if not all(Path(f"{stem}_{letter}.fits").exists() for letter in STAMP_FILES.values()):
            continue  # a stamp without all four bands
        cubes.append({band: np.asarray(fits.getdata(f"{stem}_{letter}.fits"), np.float64)
                      for band, letter in STAMP_FILES.items()})
    return cubes


def colour_summary(rows: list[dict]) -> dict:
    """Per magnitude bin: how many sources, and the median and NMAD of each colour."""
    h = np.concatenate([r["H"] for r in rows])
    out = {}
    for lo, hi in MAG_BINS:
        sel = np.isfinite(h) & (h >= lo) & (h < hi)
        entry = {"n": int(sel.sum())}
        for band in COLOURS:
            c = np.concatenate([r[band] for r in rows])[sel]
            c = c[np.isfinite(c)]
            entry[band] = {"median": float(np.median(c)) if len(c) else None,
                           "nmad": float(1.4826 * np.median(np.abs(c - np.median(c))))
                           if len(c) else None}
        out[f"{lo:g}-{hi:g}"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=30)
    args = parser.parse_args()
    real = real_cubes()
    scenes = [simulate_scene(seed=SPLIT_SEED_BASE["test"] + i, bands=FOUR_BANDS)
              for i in range(args.tiles)]
    sims = [{band: s.image[k].astype(np.float64) for k, band in enumerate(FOUR_BANDS)}
            for s in scenes]
    result = {"simulator": SIMULATOR_VERSION, "tiles": args.tiles, "bands": {}}
    for band in FOUR_BANDS:
        real_nt = [noise_and_texture(c[band]) for c in real]
        sim_nt = [noise_and_texture(c[band]) for c in sims]
        result["bands"][band] = {
            "real_noise_sigma": [n for n, _ in real_nt], "real_texture": [t for _, t in real_nt],
            "sim_noise_sigma_median": float(np.median([n for n, _ in sim_nt])),
            "sim_texture_median": float(np.median([t for _, t in sim_nt]))}
    real_rows = [colours_of(c) for c in real + stamp_cubes()]
    sim_rows = [colours_of(c) for c in sims]
    result["colours_real"] = colour_summary(real_rows)
    result["colours_sim"] = colour_summary(sim_rows)
    print(json.dumps(result, indent=1))
    Path("docs/results/four_band_scenes.json").write_text(json.dumps(result, indent=2))
    draw(real, sims, real_rows, sim_rows)


def draw(real, sims, real_rows, sim_rows) -> None:
    from mosaic_pais.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, band in zip(axes[0], FOUR_BANDS, strict=True):
        bins = np.linspace(-6, 12, 90) * BANDS[band].noise_sigma
        for cubes, label, colour in ((real, "real cutouts", "k"), (sims, "simulated", "tab:red")):
            pixels = np.concatenate([subtract_background(c[band]).ravel() for c in cubes])
            ax.hist(pixels, bins, density=True, histtype="step", color=colour, label=label,
                    log=True)
        ax.set_title(f"{band} pixels (sky subtracted)", fontsize=9)
        ax.set_xlabel("e⁻/s")
    axes[0, 0].legend(fontsize=8)
    for rows, label, colour in ((real_rows, "real (cutouts + CANDELS stamps)", "k"),
                                (sim_rows, "simulated", "tab:red")):
        h = np.concatenate([r["H"] for r in rows])
        for ax, band in zip(axes[1, :3], COLOURS, strict=True):
            ax.scatter(h, np.concatenate([r[band] for r in rows]), s=8, alpha=0.5,
                       color=colour, label=label)
            ax.set_xlabel("H (5 px aperture) [AB]")
            ax.set_ylabel(f"{band} − F160W")
            ax.set_ylim(-1.5, 5)
        axes[1, 3].scatter(np.concatenate([r["F606W"] for r in rows]),
                           np.concatenate([r["F850LP"] for r in rows]), s=8, alpha=0.5,
                           color=colour, label=label)
    axes[1, 3].set_xlabel("F606W − F160W")
    axes[1, 3].set_ylabel("F850LP − F160W")
    axes[1, 3].set_xlim(-1.5, 5)
    axes[1, 3].set_ylim(-1.5, 4)
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("docs/figures/four_band_scenes.png", dpi=90)


if __name__ == "__main__":
    main()
