"""Units of the catalogue's columns, and AB magnitudes where the image says its zero point.

Fluxes are sums of pixel values, so their unit is the image's ``BUNIT`` (HST's drizzled
``ELECTRONS/S`` is read as e⁻/s). Magnitudes need a zero point: HST's ``PHOTFLAM`` and
``PHOTPLAM`` give it (AB = −2.5 log₁₀ PHOTFLAM − 21.10 − 5 log₁₀ PHOTPLAM + 18.692), JWST's
``PIXAR_SR`` with ``BUNIT = MJy/sr`` gives it (AB = −6.10 − 2.5 log₁₀ PIXAR_SR), and a header
keyword that holds one directly (``MAGZERO``, ``MAGZP``, ``ZEROPNT``, ``ZP_AB``, or
``PHOTZPT`` when there is no ``PHOTFLAM``) is taken as it is; ``--zeropoint`` overrides all.

Examples
--------
>>> round(ab_zeropoint({"PHOTFLAM": 1.9275e-20, "PHOTPLAM": 15369.18})[0], 3)  # WFC3 F160W
25.946
>>> ab_zeropoint({"MAGZERO": 30.0})
(30.0, 'MAGZERO')
>>> ab_zeropoint({"BUNIT": "adu"})
(None, None)
>>> str(flux_unit("ELECTRONS/S"))
'electron / s'
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ab_zeropoint", "flux_unit", "set_column_units", "magnitudes", "THETA_CONVENTION"]

#: how ``theta`` is measured, written into the catalogue's metadata
THETA_CONVENTION = ("degrees in (-90, 90], counter-clockwise from the +x (column) axis "
                    "towards +y, as SExtractor's THETA_IMAGE")
_DIRECT_KEYS = ("MAGZERO", "MAGZP", "ZEROPNT", "ZP_AB", "PHOTZPT")
_PIXEL_COLUMNS = ("x", "y", "xcentroid", "ycentroid", "r50", "r90", "kron_radius", "a", "b")


def ab_zeropoint(header) -> tuple[float | None, str | None]:
    """The AB zero point a header gives (magnitude of one unit of flux), and its source."""
    def number(key):
        try:
            value = float(header.get(key))
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    flam, plam = number("PHOTFLAM"), number("PHOTPLAM")
    if flam and plam and flam > 0 and plam > 0:
        return (-2.5 * math.log10(flam) - 21.10 - 5 * math.log10(plam) + 18.692,
                "PHOTFLAM, PHOTPLAM")
    pixar = number("PIXAR_SR")
    if pixar and pixar > 0 and str(header.get("BUNIT", "")).strip().lower() == "mjy/sr":
        return -6.10 - 2.5 * math.log10(pixar), "PIXAR_SR, BUNIT MJy/sr"
    for key in _DIRECT_KEYS:
        if key == "PHOTZPT" and flam is not None:
            continue  # HST's PHOTZPT is the ST magnitude zero point of PHOTFLAM, not the image's
        value = number(key)
        if value is not None:
            return value, key
    return None, None


def flux_unit(bunit: str | None):
    """The astropy unit of ``BUNIT``, or None when it is empty or unreadable (the text is
    then kept in the catalogue's metadata)."""
    from astropy import units as u

    text = (bunit or "").strip()
    if not text:
        return None
    candidates = [text, text.lower(), text.lower().replace("electrons", "electron")
                  .replace("counts", "count")]
    for candidate in candidates:
        for fmt in ("fits", "generic"):
            try:
                return u.Unit(candidate, format=fmt)
            except ValueError:
                continue
    return None


def magnitudes(flux: np.ndarray, flux_err: np.ndarray, zeropoint: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes and their errors; NaN where the flux is not positive.

    >>> m, e = magnitudes(np.array([1.0, 0.0]), np.array([0.1, 1.0]), 25.0)
    >>> np.round(m, 3).tolist(), np.round(e, 4).tolist()
    ([25.0, nan], [0.1086, nan])
    """
    flux = np.asarray(flux, np.float64)
    good = flux > 0
    safe = np.where(good, flux, 1.0)
    mag = np.where(good, zeropoint - 2.5 * np.log10(safe), np.nan)
    err = np.where(good, 2.5 / np.log(10) * np.asarray(flux_err, np.float64) / safe, np.nan)
    return mag, err


def set_column_units(table, unit) -> None:
    """Units on every dimensional column of a catalogue (in place); ``unit`` is the flux's."""
    from astropy import units as u

    for name in table.colnames:
        if name in _PIXEL_COLUMNS:
            table[name].unit = u.pix
        elif name in ("ra", "dec", "theta"):
            table[name].unit = u.deg
        elif name == "npix":
            table[name].unit = u.pix ** 2
        elif name == "mag":
            table[name].unit = u.ABmag
        elif name == "mag_err":
            table[name].unit = u.mag
        elif (name.startswith("flux") and unit is not None):
            table[name].unit = unit
