"""Scoring catalogues against a truth (matching, F1, flux errors) and the peer methods they
are compared with (sep, photutils)."""
