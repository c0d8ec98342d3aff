"""Make a PAIS model read other bands, as the start of a training in those bands.

Usage: python training/with_bands.py IN.keras OUT.keras --bands 4
       python training/with_bands.py IN.keras OUT.keras --source-bands 0 1 1 2 3

``--bands N`` makes a single-band model read N bands: on an image whose bands all agree it
computes what IN computes on one of them (:func:`mosaic_pais.nn.widen.with_bands`); a
four-band run starts from it (``FROM=OUT.keras`` in training/train_fourband.sh) and learns
what the bands' differences say. ``--source-bands`` gives, for each band of the new model, the
band of IN it is read as (:func:`mosaic_pais.nn.widen.rebanded`): the HSC run starts from the
four-band HST model so (training/train_hsc.sh).
"""

from __future__ import annotations

import argparse

from mosaic_pais.nn.model import load_model
from mosaic_pais.nn.widen import rebanded, with_bands


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the trained .keras model")
    parser.add_argument("output", help="where to write the new .keras model")
    parser.add_argument("--bands", type=int, default=4,
                        help="how many bands a single-band model is made to read")
    parser.add_argument("--source-bands", type=int, nargs="+", default=None,
                        help="for each new band, the model's band it is read as")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if args.source_bands is not None:
        model = rebanded(model, args.source_bands)
    else:
        model = with_bands(model, args.bands)
    model.save(args.output)
    n = int(model.inputs[0].shape[-1]) - 1
    print(f"{args.model} → {args.output}: {n} bands, {model.count_params():,} parameters")


if __name__ == "__main__":
    main()
