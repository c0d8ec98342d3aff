"""mosaic-pais: detect and deblend every source in survey mosaics with PAIS.

The Python API mirrors the commands:

* ``mosaic_pais.run(images, output, ...)`` — ``mosaic-pais run``; returns the catalogue
  (astropy Table) and the PCR store (xarray Dataset);
* ``mosaic_pais.simulate(output=None, size=..., seed=...)`` — ``mosaic-pais simulate``;
* ``mosaic_pais.evaluate(catalog, truth, ...)`` — ``mosaic-pais evaluate``;
* ``mosaic_pais.open_mosaic(images, ...)`` — a mosaic as a lazy xarray Dataset;

and ``simulate_scene``/``simulate_mosaic``, ``encode``/``decode`` (the PCR) and
``match_catalogs`` are importable from here too. ``simulate`` and ``evaluate`` are functions;
the modules behind them are :mod:`mosaic_pais.sim.scenes` and :mod:`mosaic_pais.evaluation.metrics`
(no
submodule is called ``simulate`` or ``evaluate``, so importing a submodule can never replace
one of these functions).

The package imports lightly: TensorFlow, GalSim and scarlet2 are loaded only by the
functions that need them, so ``import mosaic_pais`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_LAZY = {
    "run": "mosaic_pais.api",
    "simulate": "mosaic_pais.api",
    "evaluate": "mosaic_pais.api",
    "open_mosaic": "mosaic_pais.runtime.open",
    "simulate_scene": "mosaic_pais.sim.scenes",
    "simulate_mosaic": "mosaic_pais.sim.scenes",
    "encode": "mosaic_pais.pcr",
    "decode": "mosaic_pais.pcr",
    "match_catalogs": "mosaic_pais.evaluation.metrics",
    "BadInputError": "mosaic_pais.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mosaic_pais' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
