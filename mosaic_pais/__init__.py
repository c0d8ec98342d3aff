"""mosaic-pais: detect and deblend every source in survey mosaics with PAIS.

``mosaic_pais.run``, ``open_mosaic``, ``simulate_scene``/``simulate_mosaic``, ``encode``,
``decode`` and ``match_catalogs`` are importable from here; the metrics are
``from mosaic_pais.evaluate import evaluate`` (``mosaic_pais.evaluate`` is that module).

The package imports lightly: TensorFlow, GalSim and scarlet2 are loaded only by the
functions that need them, so ``import mosaic_pais`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first access (PEP 562)
_LAZY = {
    "run": "mosaic_pais.pipeline",
    "open_mosaic": "mosaic_pais.open",
    "simulate_scene": "mosaic_pais.simulate",
    "encode": "mosaic_pais.pcr",
    "decode": "mosaic_pais.pcr",
    "simulate_mosaic": "mosaic_pais.simulate",
    "match_catalogs": "mosaic_pais.evaluate",
    "BadInputError": "mosaic_pais.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mosaic_pais' has no attribute {name!r}")
