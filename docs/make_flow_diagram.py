"""Draw docs/figures/flow.png, the flow of one run (docs/architecture.md).

    python docs/make_flow_diagram.py

Only matplotlib; the boxes and arrows are laid out by hand so the picture is the same on
every machine.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures" / "flow.png"

# (name, module, what it does, what it makes) — top to bottom
STAGES = [
    ("open", "open.py", "FITS (per band or cube) or Zarr, lazily;\nweights, WCS and band names",
     "xarray Dataset (band, y, x)\nover Dask"),
    ("tile", "tile.py", "256² tiles, margin 32, stride 192;\ncores partition the mosaic",
     "blocks of 8 × 8 tiles\n= Dask tasks = Zarr chunks"),
    ("infer", "infer.py", "one model per worker (plugin);\nbatched tiles → PCR of each core",
     "pcr.zarr: center; work/: raw fractions\n(+ vectors for vector votes)"),
    ("stitch", "stitch.py", "peaks of the global centre map (halo);\nvotes → global source ids;"
     " pass 1: profiles", "work/: ids, fractions;\nprofiles → footprint radii"),
    ("measure", "measure.py",
     "pass 2: claims beyond the footprints\ndropped → pcr.zarr: ids, fractions; sums",
     "flux in the footprint, r50/r90,\nellipse, blend fraction, flags"),
    ("write", "write.py", "atomic writes of every output",
     "catalog.fits/.parquet,\noverview.png, run.json"),
]
COLOURS = {"open": "#dbe9f6", "tile": "#dbe9f6", "infer": "#fde2c8", "stitch": "#e2f0d9",
           "measure": "#e2f0d9", "write": "#eeeeee"}


def box(ax, x, y, w, h, text, colour, size=9, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="0.35", linewidth=1.0))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
            fontweight=weight)


def arrow(ax, start, end, style="-|>", colour="0.3", ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, lw=1.1,
                                 color=colour, linestyle=ls))


def main() -> Path:
    fig, ax = plt.subplots(figsize=(11.6, 8.0))
    ax.set_xlim(0, 11.6)
    ax.set_ylim(0, 8.6)
    ax.axis("off")
    step, top, h = 1.22, 7.0, 0.9
    ax.text(1.1, 7.95, "stage", ha="center", fontsize=10, fontweight="bold")
    ax.text(4.35, 7.95, "what happens", ha="center", fontsize=10, fontweight="bold")
    ax.text(8.45, 7.95, "what it makes", ha="center", fontsize=10, fontweight="bold")
    for i, (name, module, does, makes) in enumerate(STAGES):
        y = top - i * step
        box(ax, 0.3, y, 1.6, h, f"{name}\n{module}", COLOURS[name], size=10, weight="bold")
        box(ax, 2.4, y, 3.9, h, does, "white", size=9)
        box(ax, 6.8, y, 3.3, h, makes, "#fffbe6", size=9)
        arrow(ax, (1.9, y + h / 2), (2.4, y + h / 2))
        arrow(ax, (6.3, y + h / 2), (6.8, y + h / 2))
        if i + 1 < len(STAGES):
            arrow(ax, (1.1, y), (1.1, y - step + h))
    # the stages whose tasks run on the Dask workers
    y0, y1 = top - 4 * step + 0.05, top - 2 * step + h - 0.05
    ax.plot([10.35, 10.35], [y0, y1], color="#d9822b", lw=3, alpha=0.7,
            solid_capstyle="round")
    ax.text(10.75, (y0 + y1) / 2, "Dask tasks on the workers:\nthreads, LocalCluster, "
            "LocalCUDACluster,\nSLURM/PBS or a scheduler address\n(cluster.py)",
            rotation=90, ha="center", va="center", fontsize=8.5, color="#8a4b08")
    ax.text(0.3, 0.25, "--resume: a block whose record (SHA-256 of what it wrote, pcr.zarr.done/) "
            "matches its data is skipped; stitch and measure always run on the whole store.",
            fontsize=8.5, color="0.25")
    ax.text(5.3, 8.4, "The flow of one run: mosaic_pais.run / mosaic-pais run", ha="center",
            fontsize=12)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
