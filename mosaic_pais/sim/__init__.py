"""Simulated HST F160W scenes and mosaics with their exact truth (GalSim, real COSMOS
galaxies, the TinyTim PSF)."""
