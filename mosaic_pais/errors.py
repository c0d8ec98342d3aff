"""Errors that the command line turns into a one-line message and exit status 2."""

from __future__ import annotations

import importlib.util

__all__ = ["BadInputError", "EXTRAS", "MissingExtraError", "require_extra"]


class BadInputError(ValueError):
    """The user's input cannot be processed; the message says why in one line."""


class MissingExtraError(BadInputError):
    """A command needs an optional dependency that is not installed."""


#: the optional installs (``pip install 'mosaic-pais[extra]'``) and the modules each brings
EXTRAS = {
    "sim": ("galsim",),
    "train": ("galsim",),
    "labels": ("scarlet2", "jax"),
    "peers": ("sep", "photutils"),
    "cluster": ("dask_jobqueue",),
    "hats": ("hats", "hats_import", "lsdb"),
}


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming the extra to install when ``what`` (a command
    or function) needs modules of ``extra`` that are not installed.

    >>> require_extra("sim", "mosaic-pais simulate")  # GalSim is installed here
    """
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"{what} needs {', '.join(missing)}, which is not installed: "
                                f"pip install 'mosaic-pais[{extra}]'")
