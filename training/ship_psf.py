"""Write the PSF the F160W model was trained with into the package, beside the model.

Usage: python training/ship_psf.py [--model mosaic_pais/models/pais_f160w.keras] [--size 65]

The simulator's F160W PSF (TinyTim, WFC3/IR, drawn with its native pixel response onto the
mosaics' 0.06″/px grid, centred on its centroid, unit sum) goes to ``<model>_psf.fits``, and the
model card's ``psf`` names it. A run divides each footprint sum by the share of light the
footprint holds under this PSF (:mod:`mosaic_pais.runtime.total_flux`) unless ``--psf`` gives
another one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH
from mosaic_pais.sim.scenes import PIXEL_SCALE, f160w_psf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--size", type=int, default=65, help="px per side (odd)")
    args = parser.parse_args(argv)
    image = f160w_psf().drawImage(nx=args.size, ny=args.size, scale=PIXEL_SCALE,
                                  method="auto").array.astype(np.float64)
    image /= image.sum()
    header = fits.Header()
    header["PIXSCALE"] = (PIXEL_SCALE, "arcsec per pixel")
    header["FILTER"] = "F160W"
    header["ORIGIN"] = ("TinyTim", "WFC3/IR PSF (public, STScI), resampled")
    header["COMMENT"] = "Unit sum; centred on its centroid; includes the native pixel response."
    out = args.model.with_name(args.model.stem + "_psf.fits")
    fits.PrimaryHDU(image.astype(np.float32), header).writeto(out, overwrite=True)
    card_path = args.model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["psf"] = {"file": out.name, "pixel_scale_arcsec": PIXEL_SCALE,
                   "source": "TinyTim WFC3/IR F160W, drawn on the 0.06″/px grid"}
    card_path.write_text(json.dumps(card, indent=2))
    print(f"{out} ({args.size}² px) and its entry in {card_path}")


if __name__ == "__main__":
    main()
