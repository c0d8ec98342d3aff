"""Write the PSFs a model was trained with into the package, beside the model.

Usage: python training/ship_psf.py [--model mosaic_pais/models/pais_f160w.keras] [--size 65]

For each band of the model's card, the simulator's PSF of that band (TinyTim, WFC3/IR or
ACS/WFC, :func:`mosaic_pais.sim.bands.band_psf`: its native pixel response included, drawn
onto the mosaics' 0.06″/px grid, centred on its centroid, unit sum) goes to
``<model>_psf.fits`` (one band) or ``<model>_psf_<band>.fits``, and the card's ``psf`` names
them (``file``: the detection band's; ``files``: band → file). A run divides each band's
footprint sums by the share of light the footprints hold under that band's PSF
(:mod:`mosaic_pais.runtime.total_flux`) unless ``--psf`` gives others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from mosaic_pais.nn.model import DEFAULT_MODEL_PATH
from mosaic_pais.sim.bands import BANDS, band_psf
from mosaic_pais.sim.scenes import PIXEL_SCALE

INSTRUMENT = {"F160W": "WFC3/IR", "F125W": "WFC3/IR", "F850LP": "ACS/WFC", "F606W": "ACS/WFC"}


def psf_image(band: str, size: int) -> np.ndarray:
    """The band's PSF on the 0.06″/px grid, ``size``² px, unit sum."""
    image = band_psf(band).drawImage(nx=size, ny=size, scale=PIXEL_SCALE,
                                     method="no_pixel").array.astype(np.float64)
    return image / image.sum()


def write_psf(band: str, size: int, out: Path) -> None:
    header = fits.Header()
    header["PIXSCALE"] = (PIXEL_SCALE, "arcsec per pixel")
    header["FILTER"] = band
    header["ORIGIN"] = ("TinyTim", f"{INSTRUMENT[band]} PSF (public, STScI), resampled")
    header["COMMENT"] = "Unit sum; centred on its centroid; includes the native pixel response."
    fits.PrimaryHDU(psf_image(band, size).astype(np.float32), header).writeto(out, overwrite=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--size", type=int, default=65, help="px per side (odd)")
    args = parser.parse_args(argv)
    card_path = args.model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    bands = [b for b in card.get("bands", ["F160W"]) if b in BANDS]
    files = {}
    for band in bands:
        suffix = "_psf.fits" if len(bands) == 1 else f"_psf_{band.lower()}.fits"
        out = args.model.with_name(args.model.stem + suffix)
        write_psf(band, args.size, out)
        files[band] = out.name
        print(f"{out} ({args.size}² px)")
    card["psf"] = {"file": files[bands[0]], "pixel_scale_arcsec": PIXEL_SCALE,
                   "source": "TinyTim " + ", ".join(f"{INSTRUMENT[b]} {b}" for b in bands)
                             + ", drawn on the 0.06″/px grid"}
    if len(bands) > 1:
        card["psf"]["files"] = files
    card_path.write_text(json.dumps(card, indent=2))
    print(f"their entry in {card_path}")


if __name__ == "__main__":
    main()
