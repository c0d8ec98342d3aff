"""Errors that the command line turns into a one-line message and exit status 2."""

from __future__ import annotations

__all__ = ["BadInputError"]


class BadInputError(ValueError):
    """The user's input cannot be processed; the message says why in one line."""
