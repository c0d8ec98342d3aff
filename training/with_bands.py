"""Make a single-band PAIS model read several bands, as the start of a multi-band training.

Usage: python training/with_bands.py IN.keras OUT.keras --bands 4

The new model computes, on an image whose bands all agree, what IN computes on one of them
(:func:`mosaic_pais.nn.widen.with_bands`); a four-band run starts from it
(``FROM=OUT.keras`` in training/train_fourband.sh) and learns what the bands' differences say.
"""

from __future__ import annotations

import argparse

from mosaic_pais.nn.model import load_model
from mosaic_pais.nn.widen import with_bands


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the trained single-band .keras model")
    parser.add_argument("output", help="where to write the multi-band .keras model")
    parser.add_argument("--bands", type=int, default=4, help="how many bands it reads")
    args = parser.parse_args(argv)
    model = with_bands(load_model(args.model), args.bands)
    model.save(args.output)
    print(f"{args.model} → {args.output}: {args.bands} bands, {model.count_params():,} "
          "parameters")


if __name__ == "__main__":
    main()
