"""The noise of the COSMOS stamps that real galaxies are drawn from, with and without
:func:`mosaic_pais.sim.scenes.galaxy_mask`.

Every stamp is drawn at its catalogue magnitude through the F160W PSF, as GalSim's
``RealGalaxy`` draws it (the whole stamp) and as the simulator draws it (the galaxy's own
pixels); what is not galaxy is measured in units of GOODS-S's pixel noise σ: the scatter about
the azimuthal median at 15–25 px from the centre (the galaxy's own asymmetry counts there too,
so large irregular galaxies keep some) and the largest |value| beyond 40 px (nothing but the
stamp's noise, or the far wings of the brightest galaxies). A figure shows four stamps both
ways, alone and with GOODS-S noise added.

Usage: python benchmarks/cosmos_stamps.py
Writes docs/results/cosmos_stamps.json and docs/figures/cosmos_stamps.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mosaic_pais.sim.scenes import (
    PIXEL_SCALE,
    SIMULATOR_VERSION,
    f160w_psf,
    flux_of,
    real_galaxy,
    real_galaxy_catalog,
    real_galaxy_mags,
)

NOISE = 0.0046  # GOODS-S F160W pixel noise (e⁻/s), the simulator's default
SIDE = 161
SHOWN = (36, 5, 85, 40)


def drawn(gal) -> np.ndarray:
    import galsim

    return galsim.Convolve(gal, f160w_psf()).drawImage(
        nx=SIDE, ny=SIDE, scale=PIXEL_SCALE, method="no_pixel").array


def stamp_noise(image: np.ndarray) -> tuple[float, float]:
    """(scatter about the azimuthal median at 15–25 px, max |value| beyond 40 px) / σ."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    r = np.hypot(yy - SIDE // 2, xx - SIDE // 2)
    ring = r.astype(int)
    median = np.array([np.median(image[ring == k]) for k in range(ring.max() + 1)])
    near = (r >= 15) & (r < 25)
    return (float((image - median[ring])[near].std() / NOISE),
            float(np.abs(image[r >= 40]).max() / NOISE))


def main() -> None:
    import galsim
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mags = real_galaxy_mags()
    rows, images = [], {}
    for index in range(len(mags)):
        flux = float(flux_of(mags[index]))
        whole = drawn(galsim.RealGalaxy(real_galaxy_catalog(), index=index, flux=flux))
        galaxy = drawn(real_galaxy(index).withFlux(flux))
        rows.append({"index": index, "mag": round(float(mags[index]), 2),
                     "whole_stamp": [round(v, 3) for v in stamp_noise(whole)],
                     "galaxy_only": [round(v, 3) for v in stamp_noise(galaxy)]})
        if index in SHOWN:
            images[index] = (whole, galaxy)
    ring_whole = np.array([row["whole_stamp"][0] for row in rows])
    ring_galaxy = np.array([row["galaxy_only"][0] for row in rows])
    far_whole = np.array([row["whole_stamp"][1] for row in rows])
    far_galaxy = np.array([row["galaxy_only"][1] for row in rows])
    result = {"noise_sigma": NOISE, "stamps": rows,
              "summary": {
                  "ring_15_25_scatter_median": [float(np.median(ring_whole)),
                                                float(np.median(ring_galaxy))],
                  "ring_15_25_scatter_over_0.3": [int((ring_whole > 0.3).sum()),
                                                  int((ring_galaxy > 0.3).sum())],
                  "beyond_40_max_over_0.3": [int((far_whole > 0.3).sum()),
                                             int((far_galaxy > 0.3).sum())]},
              "simulator": SIMULATOR_VERSION}
    Path("docs/results/cosmos_stamps.json").write_text(json.dumps(result, indent=2))

    rng = np.random.default_rng(1)
    fig, axes = plt.subplots(2, 2 * len(SHOWN), figsize=(4 * len(SHOWN), 4.4))
    for k, index in enumerate(SHOWN):
        for j, (name, image) in enumerate(zip(("RealGalaxy, whole stamp", "simulator"),
                                              images[index], strict=True)):
            for i, shown in enumerate((image, image + rng.normal(0, NOISE, image.shape))):
                ax = axes[i, 2 * k + j]
                ax.imshow(np.arcsinh(shown[20:-20, 20:-20] / NOISE), origin="lower",
                          cmap="gray_r", vmin=-1, vmax=5)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[0, 2 * k + j].set_title(f"stamp {index} (H {mags[index]:.1f})\n{name}",
                                         fontsize=9)
    axes[0, 0].set_ylabel("noiseless")
    axes[1, 0].set_ylabel("+ GOODS-S noise")
    fig.tight_layout()
    fig.savefig("docs/figures/cosmos_stamps.png", dpi=70)
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
