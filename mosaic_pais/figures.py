"""Matplotlib for the package's pictures: imported on first use, with the Agg backend unless
one is already chosen (a notebook keeps its inline backend)."""

from __future__ import annotations

import sys

__all__ = ["pyplot"]


def pyplot():
    """``matplotlib.pyplot``, on the Agg backend unless pyplot was already imported.

    Returns
    -------
    module
        ``matplotlib.pyplot``.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
