"""The two top-level helpers that are not a stage of a run: :func:`simulate` and :func:`evaluate`.

They are what ``mosaic_pais.simulate(...)`` and ``mosaic_pais.evaluate(...)`` resolve to, and
they mirror the ``mosaic-pais simulate`` and ``mosaic-pais evaluate`` commands. The work is
done by :mod:`mosaic_pais.sim.scenes` and :mod:`mosaic_pais.evaluation.metrics`; these functions
only choose between them and accept tables or paths alike.
"""

from __future__ import annotations

from pathlib import Path

from mosaic_pais.errors import BadInputError

__all__ = ["run", "simulate", "evaluate"]


def run(images, output, **options):
    """Detect and deblend every source of a mosaic: ``mosaic-pais run``.

    The work is :func:`mosaic_pais.runtime.pipeline.run`, which documents every option; this
    entry point loads it (and TensorFlow with it) only when called, so that ``import
    mosaic_pais`` stays light.

    Parameters
    ----------
    images : path or list of paths
        FITS files (one per band, or a cube) or a Zarr store made by ``mosaic-pais convert``.
    output : path
        The output folder.
    **options
        The options of :func:`mosaic_pais.runtime.pipeline.run` (``bands``, ``weights``,
        ``cluster``, ``resume``, ``tile``, ``margin``, ``vote``, …).

    Returns
    -------
    (astropy.table.QTable, xarray.Dataset)
        The catalogue, its columns quantities in their units (fluxes in the image's
        ``BUNIT``, positions and sizes in pixels, angles in degrees, ``mag`` in AB), and the
        PCR store.
    """
    from astropy.table import QTable

    from mosaic_pais.runtime.pipeline import run as run_pipeline

    table, store = run_pipeline(images, output, **options)
    return QTable(table), store


def simulate(output=None, *, size=256, seed: int = 0, density: float = 1.0,
             noise_sigma: float | None = None, noise_correlation: float | None = None,
             progress: bool = False):
    """Simulate an HST WFC3/IR F160W-like image and its truth catalogue.

    Without ``output`` a scene is simulated in memory
    (:func:`mosaic_pais.sim.scenes.simulate_scene`). With ``output`` a mosaic is streamed to
    ``output/mosaic.fits`` (with a TAN WCS) and ``output/truth.fits`` exactly as
    ``mosaic-pais simulate --output DIR --size N --seed S`` does
    (:func:`mosaic_pais.sim.scenes.simulate_mosaic`), then opened lazily. The two draw from
    different random streams: the same seed gives a different image in memory and on disk.

    Parameters
    ----------
    output : path, optional
        Directory for ``mosaic.fits`` and ``truth.fits``. Any size fits in memory this way.
    size : int or (int, int)
        Side of the square image in pixels; in memory also ``(height, width)``.
    seed : int
        Random seed: the same seed gives the same image and truth.
    density : float
        Source density relative to GOODS-S deep F160W (≈250 per arcmin² to H = 28.5).
    noise_sigma : float, optional
        Pixel noise in e⁻/s (default 0.0046, GOODS-S deep).
    noise_correlation : float, optional
        Width (px) of the Gaussian that correlates the noise like drizzled data (default 0.6,
        measured on GOODS-S); 0 gives white noise.
    progress : bool
        Show a progress bar while writing a mosaic.

    Returns
    -------
    image : xarray.Dataset
        ``image`` with dims ``(band, y, x)`` (band ``F160W``), WCS header and band names in
        ``attrs`` — the same form as :func:`mosaic_pais.open_mosaic` returns. Dask-backed when
        read from ``output``.
    truth : astropy.table.Table
        One row per simulated source: ``id``, ``x``, ``y`` (0-based pixels), ``flux``
        (e⁻/s), ``mag`` (AB), ``flux_in_frame``, ``kind``, ``r50``, ``in_frame``,
        ``blendedness`` (and ``ra``, ``dec`` for a mosaic).

    Raises
    ------
    BadInputError
        A size below 16 px for a mosaic, an empty shape or a negative density.

    Examples
    --------
    In memory:

    >>> import mosaic_pais
    >>> ds, truth = mosaic_pais.simulate(size=(48, 64), seed=1)
    >>> ds["image"].dims, ds["image"].shape
    (('band', 'y', 'x'), (1, 48, 64))
    >>> {"id", "x", "y", "flux", "mag", "blendedness"} <= set(truth.colnames)
    True

    On disk, as the command does:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> ds, truth = mosaic_pais.simulate(folder, size=64, seed=1)
    >>> sorted(p.name for p in Path(folder).iterdir())
    ['mosaic.fits', 'truth.fits']
    >>> ds["image"].shape, bool(ds.attrs["wcs_header"])
    ((1, 64, 64), True)
    """
    import numpy as np
    from astropy.table import Table

    from mosaic_pais.errors import require_extra

    require_extra("sim", "mosaic_pais.simulate")
    from mosaic_pais.sim.scenes import simulate_mosaic, simulate_scene, tan_wcs

    if np.ndim(size) == 0:
        shape = (int(size), int(size))
    elif np.shape(size) == (2,):
        shape = (int(size[0]), int(size[1]))
    else:
        raise BadInputError(f"size must be an int or (height, width); got {size!r}")
    if output is not None:
        if shape[0] != shape[1]:
            raise BadInputError(f"a simulated mosaic is square; got size {shape}")
        files = simulate_mosaic(output, size=shape[0], seed=seed, density=density,
                                noise_sigma=noise_sigma, noise_correlation=noise_correlation,
                                progress=progress)
        from mosaic_pais.runtime.open import open_mosaic

        return open_mosaic([files["mosaic"]]), Table.read(files["truth"])

    import xarray as xr

    scene = simulate_scene(shape, seed=seed, density=density, noise_sigma=noise_sigma,
                           noise_correlation=noise_correlation)
    bands = list(scene.bands)
    ds = xr.Dataset({"image": (("band", "y", "x"), scene.image)}, coords={"band": bands},
                    attrs={"wcs_header": tan_wcs(*shape).to_header_string(), "bands": bands,
                           "sources": [], "bunit": "electron/s",
                           "noise_sigma": scene.noise_sigma})
    return ds, scene.truth


def _as_table(value, what: str, required=("x", "y", "flux")):
    """A table given as an astropy Table, a pandas DataFrame, a path, or a run directory."""
    from astropy.table import Table

    from mosaic_pais.evaluation.metrics import read_table

    if isinstance(value, str | Path):
        path = Path(value)
        if path.is_dir():
            path = path / "catalog.fits"
        return read_table(path, list(required), what), str(path)
    table = value if isinstance(value, Table) else Table.from_pandas(value) \
        if hasattr(value, "to_numpy") else Table(value)
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise BadInputError(f"{what}: missing column(s) {', '.join(missing)}")
    return table, None


def evaluate(catalog, truth, *, radius: float = 3.0, mag_limit: float | None = 27.0,
             plots=None) -> dict:
    """Completeness, purity, F1 and flux errors of a catalogue against the truth.

    The same numbers as ``mosaic-pais evaluate CATALOG TRUTH`` (docs/metrics.md): detections
    are matched to truth sources one to one (Hungarian assignment on pixel distance, pairs
    farther than ``radius`` rejected); see :mod:`mosaic_pais.evaluation.metrics` for the
    definitions.

    Parameters
    ----------
    catalog : astropy Table, pandas DataFrame, path or run directory
        Needs columns ``x``, ``y``, ``flux``. A run directory means its ``catalog.fits``.
    truth : astropy Table, pandas DataFrame or path
        Needs ``x``, ``y``, ``flux``; ``mag``, ``blendedness`` and ``in_frame`` are used when
        present (``mosaic-pais simulate`` writes them).
    radius : float
        Matching radius in pixels.
    mag_limit : float or None
        Only truth sources brighter than this count towards completeness (27, as every
        benchmark counts; None counts every truth source in the frame).
    plots : path, optional
        A directory to write ``completeness.png`` and ``flux_error.png`` into
        (:func:`mosaic_pais.evaluation.plots.evaluation_plots`).

    Returns
    -------
    dict
        JSON-ready: ``completeness``, ``purity``, ``f1``, ``median_offset_px``, ``flux``
        (``median_abs``, ``bias``, ``nmad``, ``outlier_fraction``, ``n``), the same per
        magnitude (``by_mag``) and blendedness (``by_blendedness``) bin, counts, parameters.

    Examples
    --------
    >>> import mosaic_pais
    >>> from astropy.table import Table
    >>> truth = Table({"x": [10.0, 40.0, 70.0], "y": [10.0, 20.0, 30.0],
    ...                "flux": [1.0, 2.0, 4.0]})
    >>> catalog = Table({"x": [10.5, 40.2, 90.0], "y": [10.0, 19.5, 90.0],
    ...                  "flux": [1.1, 1.8, 5.0]})
    >>> result = mosaic_pais.evaluate(catalog, truth, radius=3.0)
    >>> result["n_matched"], round(result["completeness"], 3), round(result["purity"], 3)
    (2, 0.667, 0.667)
    >>> round(result["flux"]["median_abs"], 3)
    0.1
    """
    from mosaic_pais.evaluation.metrics import clean_catalog
    from mosaic_pais.evaluation.metrics import evaluate as evaluate_tables

    cat, cat_path = _as_table(catalog, "catalogue")
    tru, tru_path = _as_table(truth, "truth")
    result = evaluate_tables(cat, tru, radius=radius, mag_limit=mag_limit)
    if cat_path:
        result["catalog"] = cat_path
    if tru_path:
        result["truth"] = tru_path
    if plots is not None:
        from mosaic_pais.evaluation.plots import evaluation_plots

        paths = evaluation_plots(cat, tru, plots, radius=radius, mag_limit=mag_limit)
        result["plots"] = [str(p) for p in paths]
    return clean_catalog(result)
