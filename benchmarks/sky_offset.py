"""How the catalogue moves with the sky level of the image.

The simulator's sky is exactly 0, and so was every training tile. A real image's sky is known
to a few hundredths of its noise at best. This runs a simulated mosaic (GOODS-S depth and
noise texture) with a constant sky of a few hundredths of σ added, and judges each catalogue
against the truth:

* ``--background none``: the model sees the sky as it is — how far the catalogue follows it;
* the default (the sky estimated on 128 px cells and subtracted,
``mosaic_pais.runtime.background``):
  what the estimate leaves, including on the simulation's own zero sky, where it removes the
  floor of faint undetected sources (a few hundredths of σ).

Usage: python benchmarks/sky_offset.py [--model PATH] [--size 2048] [--seed 11]
       [--output JSON --about "what the candidate is"]
Writes docs/results/sky_offset.json for the shipped model; another model's figures are printed
(and written to ``--output`` if given).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from mosaic_pais.evaluation.metrics import evaluate
from mosaic_pais.nn.model import DEFAULT_MODEL_PATH
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.runtime.pipeline import run
from mosaic_pais.sim.scenes import SIMULATOR_VERSION, simulate_mosaic

#: skies added, in units of the noise σ, with the sky left in
OFFSETS = (-0.05, -0.017, 0.0, 0.017, 0.05)
#: skies added when the run subtracts the sky
SUBTRACTED_OFFSETS = (-0.05, 0.0, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--about", default=None,
                        help="what the model is (kept in the results, for a candidate)")
    args = parser.parse_args()
    shipped = args.model == DEFAULT_MODEL_PATH
    output = args.output or (Path("docs/results/sky_offset.json") if shipped else None)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        simulate_mosaic(work / "sim", size=args.size, seed=args.seed, block=512)
        truth = Table.read(work / "sim" / "truth.fits")
        with fits.open(work / "sim" / "mosaic.fits") as hdul:
            header, image = hdul[0].header, hdul[0].data.astype(np.float32)
        # the mosaic's noise as a run measures it (a constant sky does not change it)
        sigma = float(estimate_noise(image[None])[0][0])
        rows = []
        for background, offsets in ((None, OFFSETS), (128, SUBTRACTED_OFFSETS)):
            for offset in offsets:
                path = work / "sim" / "mosaic.fits"
                if offset:
                    path = work / f"sky{offset:+g}.fits"
                    fits.writeto(path, image + np.float32(offset * sigma), header,
                                 overwrite=True)
                out = work / f"run_{background}_{offset:+g}"
                table, _ = run([path], out, model=args.model, progress=False,
                               background=background)
                provenance = json.loads((out / "run.json").read_text())
                r = evaluate(table, truth, mag_limit=27.0)
                sky = provenance["background"]
                rows.append({
                    "background": "subtracted" if background else "left in",
                    "sky_added_sigma": offset,
                    "sky_subtracted_sigma": (sky["median_level"][0] / sigma if sky else 0.0),
                    "detections": len(table),
                    "completeness": r["completeness"], "purity": r["purity"], "f1": r["f1"],
                    "threshold": provenance["parameters"]["threshold"],
                })
                print(json.dumps(rows[-1]), flush=True)
    result = {"model": str(args.model), "about": args.about, "size": args.size,
              "seed": args.seed,
              "noise_sigma": sigma, "mag_limit": 27.0, "runs": rows}
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        result["simulator"] = SIMULATOR_VERSION  # which simulator made the scenes
        output.write_text(json.dumps(result, indent=2))
        print(f"wrote {output}")


if __name__ == "__main__":
    main()
