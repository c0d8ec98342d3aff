"""Widen a trained PAIS model to new encoder widths, keeping what it computes (Net2WiderNet).

Usage: python training/widen_model.py IN.keras OUT.keras [--filters 16 32 64 64 128]
                                      [--noise 0.003] [--seed 0]

The widened model warm-starts a wider run (``FROM=OUT.keras`` in training/train_f160w.sh, with
a config whose ``filters`` are the new widths); see :func:`mosaic_pais.nn.widen.widen_model`.
"""

from __future__ import annotations

import argparse

from mosaic_pais.nn.model import PAPER_FILTERS, load_model
from mosaic_pais.nn.widen import widen_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the trained .keras model")
    parser.add_argument("output", help="where to write the widened .keras model")
    parser.add_argument("--filters", type=int, nargs="+", default=list(PAPER_FILTERS))
    parser.add_argument("--noise", type=float, default=0.003,
                        help="noise on the copied channels' weights, relative (breaks symmetry)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wide = widen_model(load_model(args.model), tuple(args.filters), args.noise, args.seed)
    wide.save(args.output)
    print(f"{args.model} → {args.output}: {wide.count_params():,} parameters, "
          f"filters {tuple(args.filters)}")


if __name__ == "__main__":
    main()
