"""The main job: open → tile → infer → stitch → measure → write.

:func:`run` is what ``mosaic-pais run`` calls. Each stage lives in its own module; this one
only wires them, decides where work runs (:mod:`mosaic_pais.runtime.cluster`) and keeps the record
that lets ``--resume`` skip finished inference blocks.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from astropy.table import Table

from mosaic_pais import __version__
from mosaic_pais.errors import BadInputError
from mosaic_pais.figures import pyplot
from mosaic_pais.nn.model import (
    detection_threshold,
    file_sha256,
    input_alignment,
    load_model,
    model_for_bands,
    model_metadata,
    peak_finding,
    resolve_precision,
)
from mosaic_pais.runtime import measure as measure_mod
from mosaic_pais.runtime import profile
from mosaic_pais.runtime.background import DEFAULT_MESH, sky_map, strip_levels, strips
from mosaic_pais.runtime.cluster import (
    ModelPlugin,
    Runner,
    check_memory_limit,
    local_cpu_threads,
    lost_batch_jobs,
    start_cluster,
)
from mosaic_pais.runtime.infer import estimate_noise
from mosaic_pais.runtime.lock import LOCK_NAME, hold_output
from mosaic_pais.runtime.open import check_not_empty, open_mosaic, pixel_to_world, wcs_header_of
from mosaic_pais.runtime.profile import timed
from mosaic_pais.runtime.stitch import merge_peaks
from mosaic_pais.runtime.store import (
    SCRATCH_VARIABLES,
    VARIABLES,
    block_is_done,
    clear_records,
    consolidate,
    create_store,
    records_dir,
    sampled_sizes,
    to_catalog_ids,
)
from mosaic_pais.runtime.tile import (
    DEFAULT_MARGIN,
    DEFAULT_TILE,
    DEFAULT_TILES_PER_BLOCK,
    DEFAULT_TILES_PER_WINDOW,
    WindowReader,
    window_tiles,
)
from mosaic_pais.runtime.total_flux import GrowthCurves, read_psf
from mosaic_pais.runtime.units import THETA_CONVENTION, flux_unit, magnitudes, set_column_units
from mosaic_pais.runtime.write import atomic_path, overview_image, write_catalog, write_json

__all__ = ["BlockSpec", "Noise", "RunPlan", "RUN_OUTPUTS", "plan_blocks", "compile_kernels",
           "psf_path", "psf_paths", "run"]


@dataclass(frozen=True)
class BlockSpec:
    """A unit of work: tiles whose cores make up one rectangular core of the store."""

    key: str
    core: tuple[int, int, int, int]          # (y0, y1, x0, x1) in the mosaic
    window: tuple[int, int, int, int]        # read window, may extend beyond the mosaic
    networks: tuple                          # (window, core) of each network window
    tile: int                                # the tiles' window side


def plan_blocks(height: int, width: int, tile: int, margin: int, tiles_per_block: int,
                align: int = 1, tiles_per_window: int = 1
                ) -> tuple[list[BlockSpec], tuple[int, int]]:
    """The blocks of work and the store's chunk shape (the regular block core); ``align`` is
    the network's lattice (:func:`mosaic_pais.runtime.tile.make_grid`), ``tiles_per_window`` the
    side of the groups of tiles the network reads at once
    (:func:`mosaic_pais.runtime.tile.network_windows`).
    """
    from mosaic_pais.runtime.tile import blocks, make_grid

    grid = make_grid(height, width, tile=tile, margin=margin, align=align)
    specs = []
    for block in blocks(grid, (tiles_per_block, tiles_per_block), tiles_per_window):
        networks = tuple((w.window, w.core) for w in block.networks)
        key = f"{block.index[0]}_{block.index[1]}"
        specs.append(BlockSpec(key=key, core=tuple(block.core), window=tuple(block.window),
                               networks=networks, tile=grid.tile))
    side = grid.stride * tiles_per_block
    return specs, (min(side, height), min(side, width))


def _contexts_task(tile: int, *, image: WindowReader, model: str, noise_sigma: np.ndarray,
                   batch_size: int, precision: str) -> list[np.ndarray]:
    from mosaic_pais.runtime.infer import mosaic_contexts, predictor_for

    return mosaic_contexts(image, predictor_for(model, batch_size, precision), noise_sigma, tile)


def _sky_task(rows: tuple[int, int], *, image: WindowReader, mesh: int) -> np.ndarray:
    with timed("sky: levels"):
        return strip_levels(rows, image=image, mesh=mesh)


def _infer_task(spec: BlockSpec, *, image: WindowReader, store: str, scratch: str, model: str,
                noise_sigma: np.ndarray, batch_size: int, precision: str, vote: str,
                contexts: list[np.ndarray]) -> str:
    from mosaic_pais.runtime.infer import predict_block, predictor_for, write_block
    from mosaic_pais.runtime.store import record_block

    with timed("infer: read"):
        window, valid = image.read(spec.window)
    predictor = predictor_for(model, batch_size, precision)
    with timed("infer: network"):
        result = predict_block(window, valid, list(spec.networks),
                               (spec.window[0], spec.window[2]), spec.core, predictor,
                               noise_sigma, spec.tile, with_vectors=vote != "geometric",
                               contexts=contexts)
    with timed("infer: Zarr writes"):
        write_block(store, scratch, spec.core, result)
    written = {"center": result["center"], "raw_fractions": result["fractions"]}
    if "vectors" in result:
        written["vectors"] = result["vectors"]
    with timed("infer: checksums"):
        record_block(store, "infer", spec.key, list(written), spec.core,
                     stores={"vectors": scratch, "raw_fractions": scratch}, written=written)
    return spec.key


def _peaks_task(spec: BlockSpec, *, store: str, shape: tuple, threshold: float,
                finding: dict) -> dict:
    from mosaic_pais.runtime.stitch import peaks_in_region

    with timed("stitch: peaks"):
        return peaks_in_region(store, spec.core, shape, threshold, **finding)


def _resolve_task(spec: BlockSpec, *, image: WindowReader, store: str, scratch: str,
                  peaks: dict, peaks_yx: np.ndarray, shape: tuple, min_fraction: float,
                  vote: str) -> dict:
    """Resolve the block's votes to global ids (kept in the store for the second pass), and
    return the block's share of every source's profile (the first measuring pass, while ids
    and fractions are in memory)."""
    from mosaic_pais.runtime.measure import measure_region
    from mosaic_pais.runtime.stitch import resolve_region

    with timed("stitch: vote resolution"):
        ids, fractions = resolve_region(scratch, spec.core, peaks_yx, min_fraction, vote,
                                        store)
    y0, y1, x0, x1 = spec.core
    with timed("stitch: read"):
        img, _ = image.read(spec.core)
    with timed("stitch: profiles"):
        return measure_region(img, ids, fractions, peaks["y"], peaks["x"], (y0, x0), shape,
                              profiles_only=True)


def _measure_task(spec: BlockSpec, *, image: WindowReader, weights: WindowReader | None, store: str,
                  scratch: str, peaks: dict, shape: tuple, min_fraction: float,
                  footprint_bins: np.ndarray, shape_bins: np.ndarray,
                  matched: tuple[np.ndarray, np.ndarray] | None,
                  segmentation: tuple[str, int, int]) -> dict:
    """The second measuring pass: the block's ids as the first pass resolved them, claims
    beyond the footprints dropped, the result written to the PCR store and, as its owners'
    labels, to the segmentation file (``segmentation``: its path, data offset and width), and
    summed (flags and flux errors come from here)."""
    from mosaic_pais.runtime.measure import claim_footprints, invalid_neighbourhood, measure_region
    from mosaic_pais.runtime.segmentation import owner_labels, write_block
    from mosaic_pais.runtime.stitch import resolved_region
    from mosaic_pais.runtime.store import open_array

    y0, y1, x0, x1 = spec.core
    with timed("measure: read ids"):
        ids, fractions = resolved_region(store, scratch, spec.core, min_fraction)
    # one pixel more on each side so that "touches a masked pixel" sees across block borders
    pad = (y0 - 1, y1 + 1, x0 - 1, x1 + 1)
    with timed("measure: read"):
        img, valid = image.read(pad)
        w = weights.read(spec.core)[0] if weights is not None else None
    inside = np.zeros_like(valid)
    inside[max(0, 1 - y0):valid.shape[0] - max(0, y1 + 1 - shape[0]),
           max(0, 1 - x0):valid.shape[1] - max(0, x1 + 1 - shape[1])] = True
    near = invalid_neighbourhood(valid | ~inside)[1:-1, 1:-1]
    with timed("measure: footprints"):
        ids, fractions = claim_footprints(ids, fractions, peaks["y"], peaks["x"], (y0, x0),
                                          footprint_bins)
    catalog_ids = to_catalog_ids(ids)
    with timed("measure: Zarr writes"):
        open_array(store, "ids", mode="r+")[:, y0:y1, x0:x1] = catalog_ids
        open_array(store, "fractions", mode="r+")[:, :, y0:y1, x0:x1] = fractions
    with timed("measure: segmentation labels"):  # from what the store now holds
        path, offset, width = segmentation
        write_block(path, offset, width, (y0, x0), owner_labels(catalog_ids, fractions[0]))
    with timed("measure: sums"):
        return measure_region(img[:, 1:-1, 1:-1], ids, fractions, peaks["y"], peaks["x"],
                              (y0, x0), shape, weights=w, invalid_near=near,
                              shape_bins=shape_bins, matched=matched)


def compile_kernels() -> None:
    """Compile the stitching and measuring kernels (numba) on a tiny block, so that their
    machine code is in numba's cache (``NUMBA_CACHE_DIR``) before a run: container recipes
    call this at build time; otherwise the first run on a machine compiles them (seconds)."""
    from mosaic_pais.pcr import geometric_votes, resolve_votes
    from mosaic_pais.runtime.measure import measure_image
    from mosaic_pais.runtime.stitch import clean_fractions
    from mosaic_pais.runtime.store import VECTOR_DTYPE, VECTOR_STEP

    rng = np.random.default_rng(0)
    peaks = {"id": np.arange(4), "y": rng.uniform(0, 24, 4), "x": rng.uniform(0, 24, 4),
             "score": np.ones(4)}
    peaks_yx = np.stack([peaks["y"], peaks["x"]], 1)
    valid = np.ones((24, 24), bool)
    # the vector votes' kernels, as a run reads C^v (sampled, float16)
    vectors = rng.normal(0, 8, (24 // VECTOR_STEP, 24 // VECTOR_STEP, 3, 2)).astype(VECTOR_DTYPE)
    resolve_votes(vectors, peaks_yx, valid=valid, mode="mixed", step=VECTOR_STEP)
    ids = geometric_votes(peaks_yx, (3, 24, 24), (0, 0), valid)
    for dtype in (np.float32, np.float64):  # blocks from files are float32, tests use both
        fractions = clean_fractions(rng.uniform(0, 1, (1, 3, 24, 24)), ids, 0.01).astype(dtype)
        measure_image(rng.normal(size=(1, 24, 24)).astype(dtype), ids, fractions, peaks,
                      ["b"], 1.0, weights=np.ones((1, 24, 24), dtype),
                      invalid_near=np.zeros((24, 24), bool))


@dataclass(frozen=True)
class RunPlan:
    """Everything a run was asked to do, checked once (see :func:`run` for the fields)."""

    images: tuple
    output: Path
    model_path: Path
    meta: dict
    bands: object = None
    weights: object = None
    hdu: object = None
    cluster: object = None
    workers: int | None = None
    memory_limit: str | None = None
    resume: bool = False
    overwrite: bool = False
    tile: int = DEFAULT_TILE
    margin: int = DEFAULT_MARGIN
    tiles_per_block: int = DEFAULT_TILES_PER_BLOCK
    tiles_per_window: int = DEFAULT_TILES_PER_WINDOW
    batch_size: int = 16
    precision: str = "float32"
    threshold: float | None = None
    window: int | None = None
    min_fraction: float = 0.01
    vote: str = "vectors"
    keep_work: bool = False
    background: int | None = DEFAULT_MESH
    progress: bool = True
    psf: object = None
    zeropoint: float | None = None

    @property
    def store(self) -> Path:
        return self.output / "pcr.zarr"

    @property
    def scratch(self) -> Path:
        return self.output / "work" / "vectors.zarr"


@dataclass
class Noise:
    """The mosaic's noise per band, its texture (the median of its bands', for the peak
    threshold that follows from it) and each band's own (for the flux errors)."""

    sigma: np.ndarray
    texture: float | None
    threshold: float
    band_textures: np.ndarray | None = None


#: what ``--overwrite`` removes from an output folder (and nothing else)
RUN_OUTPUTS = ("pcr.zarr", "pcr.zarr.done", "work", "catalog.fits", "catalog.parquet",
               "segmentation.fits", "overview.png", "run.json")


def run(images, output, *, bands=None, weights=None, hdu=None, model=None, cluster=None,
        workers: int | None = None, memory_limit: str | None = None, resume: bool = False,
        overwrite: bool = False,
        tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN,
        tiles_per_block: int = DEFAULT_TILES_PER_BLOCK,
        tiles_per_window: int = DEFAULT_TILES_PER_WINDOW, batch_size: int = 16,
        precision: str = "float32", threshold: float | None = None, window: int | None = None,
        min_fraction: float = 0.01, vote: str | None = None, keep_work: bool = False,
        background: int | None = DEFAULT_MESH, progress: bool = True,
        psf=None, zeropoint: float | None = None, client=None):
    """Detect and deblend every source of a mosaic.

    A frozen :class:`RunPlan` of the arguments, then named steps: prepare the output, open
    the mosaic, open or resume the PCR store, the sky, inference, stitching, measuring, the
    catalogue and the provenance.

    Parameters
    ----------
    images : path or list of paths
        FITS files (one per band, or a cube) or a Zarr store made by ``mosaic-pais convert``.
    output : path
        Output directory (see docs/user_guide.md: catalog.fits/.parquet, pcr.zarr, overview.png,
        run.json).
    bands, weights, hdu
        Passed to :func:`mosaic_pais.runtime.open.open_mosaic`.
    model : path, optional
        A ``.keras`` model; by default the shipped one whose card names ``bands`` (in any
        order: the images are read in the card's order), the F160W model without ``bands``.
    cluster : None, "local", "cuda", "slurm", "pbs" or a scheduler address
        None runs on a local (threaded) Dask scheduler.
    resume, overwrite : bool
        Continue an interrupted run in ``output``; or replace an existing one.
    tile, margin, tiles_per_block : int
        Tile grid (stride = tile − 2·margin; windows on the network's lattice,
        :func:`mosaic_pais.runtime.tile.make_grid`) and tiles per task side.
    tiles_per_window : int
        Tiles per side of the groups the network reads as one window
        (:func:`mosaic_pais.runtime.tile.network_windows`); 1 reads every tile on its own. Lowered
        to a divisor of ``tiles_per_block`` (:func:`mosaic_pais.runtime.tile.window_tiles`; run.json
        records the side used).
    batch_size : int
        Tiles' worth of pixels the network reads per call.
    precision : {"float32", "bfloat16", "auto"}
        What the network computes in (:func:`mosaic_pais.nn.model.inference_network`).
        float32 (the default) gives the same catalogue whatever the workers and threads;
        bfloat16 runs faster on CPUs with bfloat16 instructions, but its rounding depends on
        how many threads a worker's network uses, so runs laid out differently differ
        slightly in positions and fluxes. "auto" is bfloat16 on CPUs with those
        instructions (not on GPU workers), float32 elsewhere. Decided once, here, so that
        every worker computes alike; run.json records it.
    threshold, window : float, int
        Peak finding on the centre map (default: the model card's values; the threshold
        for the mosaic's noise texture, :func:`mosaic_pais.nn.model.detection_threshold`). The
        card also says whether peaks are found through the centre map's matched filter
        (:func:`mosaic_pais.nn.model.peak_finding`).
    vote : {"vectors", "geometric", "mixed"}, optional
        How pixels' slots are resolved to sources (default: the model card's choice; see
        :func:`mosaic_pais.pcr.resolve_votes`).
    background : int or None
        Side (px) of the mesh cells on which the sky is estimated and then subtracted
        wherever the image is read (:mod:`mosaic_pais.runtime.background`); None leaves the image as
        it is (for mosaics whose sky is already subtracted exactly).
    psf : path or "none", optional
        A PSF image (FITS, on the mosaic's pixels) whose curve of growth turns each footprint
        sum into a total flux (:mod:`mosaic_pais.runtime.total_flux`); default: the model
        card's PSF, the one the model was trained with; "none" keeps the footprint sums.
    zeropoint : float, optional
        The AB magnitude of one unit of flux, for ``mag`` and ``mag_err`` (default: from the
        header, :func:`mosaic_pais.runtime.units.ab_zeropoint`; without one, no magnitudes).
    memory_limit : str, optional
        Memory limit per worker of a cluster this run starts (e.g. "3GB"); workers spill to
        disk above it instead of dying.
    client : distributed.Client, optional
        An existing client to run on (overrides ``cluster``).

    Returns
    -------
    (astropy.table.Table, xarray.Dataset)
        The catalogue and the PCR store.
    """
    model_path = Path(model) if model is not None else model_for_bands(bands)
    meta = model_metadata(model_path)
    plan = RunPlan(
        images=tuple([images] if isinstance(images, str | Path) else images),
        output=Path(output), model_path=model_path, meta=meta, bands=bands, weights=weights,
        hdu=hdu, cluster=cluster, workers=workers, memory_limit=memory_limit, resume=resume,
        overwrite=overwrite, tile=tile, margin=margin, tiles_per_block=tiles_per_block,
        tiles_per_window=window_tiles(tiles_per_window, tiles_per_block),
        batch_size=batch_size, precision=resolve_precision(precision, on_gpu=cluster == "cuda"),
        threshold=threshold, window=window, min_fraction=min_fraction,
        vote=str(vote if vote is not None else meta.get("vote", "vectors")),
        keep_work=keep_work, background=background, progress=progress, psf=psf,
        zeropoint=zeropoint)
    t0 = time.time()
    _check_parameters(plan)
    with hold_output(plan.output, takeover=plan.resume or plan.overwrite):
        return _run_steps(plan, client, t0)


def _run_steps(plan: RunPlan, client, t0: float):
    """The steps of :func:`run` once its output folder is held."""
    timings: dict[str, float] = {}
    _prepare_output(plan)
    ds, band_names = _open_input(plan)
    # from the image as it is, to refuse a bad one before anything is written; measured
    # again once the sky is known (a sloping sky would inflate it)
    noise = _noise(ds, ds["image"].data, plan)
    timings["open"] = time.time() - t0
    specs, params = _open_or_resume_store(plan, ds, band_names, noise)
    with _dask(plan, client) as (runner, own_cluster):
        profile.gather(runner.client)  # this run's tally only
        sky, handle, noise = _sky(runner, plan, ds, noise, timings)
        _infer(runner, plan, handle, specs, noise, params, timings)
        peaks, profiles = _stitch(runner, plan, handle, specs, noise, timings)
        columns = _measure(runner, plan, ds, handle, specs, peaks, profiles, noise,
                           band_names, timings)
        # what the tasks of each stage spent their time on, in task-seconds
        timings["task_parts"] = profile.gather(runner.client)
    t = time.time()
    table = _catalog_table(ds, columns, band_names, plan, params)
    _write_outputs(plan, ds, table, sky, noise)
    timings["write"] = time.time() - t
    timings["total"] = time.time() - t0
    write_json(_provenance(plan, params, band_names, ds, noise, sky, len(table), timings),
               plan.output / "run.json")
    if not plan.keep_work:
        shutil.rmtree(plan.output / "work", ignore_errors=True)
        shutil.rmtree(records_dir(plan.store), ignore_errors=True)
    consolidate(plan.store)
    return table, xr.open_zarr(plan.store)


def _check_parameters(plan: RunPlan) -> None:
    """Refuse parameters a run cannot use, before anything is written."""
    check_memory_limit(plan.memory_limit)
    if plan.background is not None and int(plan.background) < 16:
        raise BadInputError(f"background mesh {plan.background} px: use at least 16 px, or none")
    align = input_alignment(plan.meta)
    if plan.tile % align or not 0 <= 2 * plan.margin < plan.tile:
        raise BadInputError(f"tile {plan.tile} must be a multiple of {align} and "
                            f"margin {plan.margin} < tile/2")
    _growth_curves(plan, plan.bands)


def psf_path(psf, model_path: Path, meta: dict) -> Path | None:
    """The PSF file of a run's detection band: ``psf``'s first, None for "none", or the
    model card's."""
    paths = psf_paths(psf, model_path, meta)
    return None if paths is None else paths[0]


def psf_paths(psf, model_path: Path, meta: dict, bands=None,
              given_order=None) -> list[Path] | None:
    """The PSF file of each of a run's ``bands`` (None: the card's bands), or None for "none".

    ``psf`` is one file for every band, or one per band separated by commas in the order the
    images were given (``given_order``, the names ``--bands`` gave them; None: ``bands``'
    order); else the model card's: its ``psf`` entry's ``files`` (band → file) when it names
    every band, else its ``file`` for all.

    >>> psf_paths("h.fits,j.fits", Path("m.keras"), {}, ["F160W", "F125W"])
    [PosixPath('h.fits'), PosixPath('j.fits')]
    >>> psf_paths(None, Path("models/m.keras"), {"psf": {"file": "p.fits"}}, ["F160W", "R"])
    [PosixPath('models/p.fits'), PosixPath('models/p.fits')]
    """
    bands = list(bands or meta.get("bands") or ["F160W"])
    if psf is not None:
        if str(psf).lower() == "none":
            return None
        given = [Path(part.strip()) for part in str(psf).split(",")]
        if len(given) not in (1, len(bands)):
            raise BadInputError(f"--psf names {len(given)} files for {len(bands)} bands: "
                                "give one for all bands or one per band, comma-separated")
        if len(given) == 1:
            return given * len(bands)
        by_band = dict(zip(given_order or bands, given, strict=True))
        return [by_band[band] for band in bands]
    entry = meta.get("psf")
    if not entry or "file" not in entry:  # none, or one per image (a ground-based survey's)
        return None
    by_band = entry.get("files") or {}
    if all(band in by_band for band in bands):
        return [model_path.with_name(by_band[band]) for band in bands]
    return [model_path.with_name(entry["file"])] * len(bands)


@functools.lru_cache(maxsize=8)
def _read_growth_curves(path: Path) -> GrowthCurves:
    try:
        return GrowthCurves.from_psf(read_psf(path))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"PSF {path}: {str(exc).splitlines()[0]}") from None


def _psf_name(plan: RunPlan, band_names=None) -> str | None:
    """The PSF file(s) of the run, comma-separated per band when the bands' differ."""
    paths = psf_paths(plan.psf, plan.model_path, plan.meta, band_names, plan.bands)
    if paths is None:
        return None
    return str(paths[0]) if len(set(paths)) == 1 else ",".join(map(str, paths))


def _growth_curves(plan: RunPlan, band_names=None):
    """The PSFs' curves of growth (read once per file): one for all bands, one per band when
    the bands' PSFs differ, or None without a PSF."""
    paths = psf_paths(plan.psf, plan.model_path, plan.meta, band_names, plan.bands)
    if paths is None:
        return None
    curves = [_read_growth_curves(path) for path in paths]
    return curves[0] if len(set(paths)) == 1 else curves


def _prepare_output(plan: RunPlan) -> None:
    """The output folder: new, or emptied of a run's outputs (``--overwrite``), or kept
    (``--resume``); a non-empty folder without either is refused."""
    output = plan.output
    has_outputs = output.exists() and any(p.name != LOCK_NAME for p in output.iterdir())
    if has_outputs and not (plan.resume or plan.overwrite):
        raise BadInputError(f"output directory {output} is not empty: "
                            "use --resume to continue or --overwrite to replace it")
    if plan.overwrite and not plan.resume and output.exists():
        for name in RUN_OUTPUTS:
            target = output / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    output.mkdir(parents=True, exist_ok=True)


def _open_input(plan: RunPlan):
    """The mosaic as a lazy Dataset and its band names, refused if the model takes others;
    bands named with ``--bands`` are put in the order of the model card's."""
    ds = open_mosaic(list(plan.images), bands=plan.bands, weights=plan.weights, hdu=plan.hdu)
    band_names = [str(b) for b in ds["image"]["band"].values]
    card_bands = [str(b) for b in plan.meta.get("bands", [])]
    named = plan.bands is not None and plan.model_path.with_suffix(".json").is_file()
    if named and len(band_names) > 1 and card_bands != band_names:
        if sorted(card_bands) != sorted(band_names):
            raise BadInputError(f"the model takes the bands {', '.join(card_bands)}; the "
                                f"input's are {', '.join(band_names)}")
        ds = ds.isel(band=[band_names.index(b) for b in card_bands])
        ds.attrs["input_bands"] = band_names  # the planes' order, for what reads them again
        band_names = card_bands
    # the card says which bands the model takes; without one, the model itself is asked
    # (loading it here once more only for that costs a second or two)
    if plan.model_path.with_suffix(".json").is_file():
        expected = len(plan.meta["bands"])
    else:
        expected = int(load_model(plan.model_path).inputs[0].shape[-1]) - 1
    if expected != len(band_names):
        raise BadInputError(f"the model expects {expected} band(s) "
                            f"({', '.join(plan.meta.get('bands', []))}); the input has "
                            f"{len(band_names)} ({', '.join(band_names)})")
    return ds, band_names


def _noise(ds, pixels, plan: RunPlan) -> Noise:
    """The noise of ``pixels`` (the image, or the image less its sky) and the peak threshold."""
    sigma, textures = estimate_noise(pixels)
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        # only now the whole image is read, to tell an empty one from a sparse or flat one
        check_not_empty(ds)
        raise BadInputError("cannot estimate the image noise: too few valid pixels, or a "
                            "constant image")
    # one texture for the mosaic: the model takes its bands together
    texture = float(np.median(textures)) if np.isfinite(textures).all() else None
    threshold = plan.threshold if plan.threshold is not None else detection_threshold(
        plan.meta, texture)
    return Noise(sigma=sigma, texture=texture, threshold=float(threshold),
                 band_textures=np.asarray(textures, np.float64))


def _open_or_resume_store(plan: RunPlan, ds, band_names: list[str], noise: Noise):
    """The blocks of work and the run's parameters; the PCR and scratch stores created, or
    (``--resume``) checked to hold a run with the same parameters."""
    n_band, height, width = ds["image"].shape
    align = input_alignment(plan.meta)
    specs, chunks = plan_blocks(height, width, plan.tile, plan.margin, plan.tiles_per_block,
                                align, plan.tiles_per_window)
    params = {"tile": plan.tile, "margin": plan.margin, "tiles_per_block": plan.tiles_per_block,
              "model_sha256": file_sha256(plan.model_path), "shape": [height, width],
              "bands": band_names, "noise_sigma": noise.sigma.tolist(),
              # a geometric run stores no claim vectors, so it cannot resume as a vector run
              "vote": plan.vote,
              # blocks inferred on another grid or another attention context must not mix
              "tile_window": specs[0].tile, "attention_context": "mosaic",
              # the attention context is averaged over windows of one side whatever the tile
              # and margin, so that runs on other grids read the very same context
              "context_window": -(-DEFAULT_TILE // align) * align,
              "tiles_per_window": plan.tiles_per_window, "background_mesh": plan.background}
    if plan.resume and plan.store.exists():
        saved = plan.output / "work" / "params.json"
        previous = json.loads(saved.read_text()) if saved.exists() else None
        if previous != json.loads(json.dumps(params)):
            raise BadInputError(f"{plan.output} holds a run with other inputs or parameters; "
                                "cannot resume it (use --overwrite)")
        return specs, params
    sizes = {"band": n_band, "slot": int(plan.meta.get("n_slots", 3)), "component": 2,
             "y": height, "x": width}
    chunk_map = {"y": chunks[0], "x": chunks[1]}
    create_store(plan.store, VARIABLES, sizes, chunk_map, overwrite=True,
                 attrs={"bands": band_names, "wcs_header": wcs_header_of(ds),
                        "tile": plan.tile, "margin": plan.margin,
                        "mosaic_pais_version": __version__})
    create_store(plan.scratch, SCRATCH_VARIABLES, *sampled_sizes(sizes, chunk_map),
                 overwrite=True, compressed=False)
    write_json(params, plan.output / "work" / "params.json")
    return specs, params


def _finite_or_none(values) -> list | None:
    """A JSON list of ``values``, None for each that is not finite (JSON has no NaN)."""
    if values is None:
        return None
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float)]


@contextmanager
def _dask(plan: RunPlan, client):
    """A :class:`Runner` on the given client, on a cluster this run starts (closed at the
    end), or on the local scheduler; every worker holds the model."""
    own_cluster = None
    if client is None and plan.cluster is not None:
        client, own_cluster = start_cluster(plan.cluster, plan.workers,
                                            memory_limit=plan.memory_limit)
        if plan.progress:
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
    try:
        if client is not None:
            client.register_plugin(ModelPlugin(str(plan.model_path), plan.batch_size,
                                               cpu_threads=local_cpu_threads(own_cluster),
                                               precision=plan.precision))
        watch = (functools.partial(lost_batch_jobs, own_cluster, client)
                 if own_cluster is not None and hasattr(own_cluster, "job_cls") else None)
        yield (Runner(client, threads=plan.workers, progress=plan.progress, watch=watch),
               own_cluster)
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()


def _sky(runner: Runner, plan: RunPlan, ds, noise: Noise, timings: dict):
    """The sky map (None without ``background``), the image reader that subtracts it, and
    the noise measured again on the image less its sky."""
    image = ds["image"]
    if plan.background is None:
        return None, WindowReader(image.data), noise
    t = time.time()
    mesh = int(plan.background)
    levels = runner.map(_sky_task, strips(image.shape[1], mesh), desc="sky",
                        image=WindowReader(image.data), mesh=mesh)
    sky = sky_map(np.concatenate(levels, axis=1), mesh)
    handle = WindowReader(image.data, sky)
    noise = _noise(ds, handle, plan)
    timings["sky"] = time.time() - t
    return sky, handle, noise


def _infer(runner: Runner, plan: RunPlan, handle: WindowReader, specs, noise: Noise,
           params: dict, timings: dict) -> None:
    """The mosaic's attention context, then the network on every block not done yet."""
    t = time.time()
    # one attention context for every tile (infer.mosaic_contexts), computed on a worker
    contexts = runner.map(_contexts_task, [params["context_window"]], desc="context",
                          image=handle, model=str(plan.model_path), noise_sigma=noise.sigma,
                          batch_size=plan.batch_size, precision=plan.precision)[0]
    timings["context"] = time.time() - t
    t = time.time()
    stores = {"vectors": plan.scratch, "raw_fractions": plan.scratch}
    todo = [s for s in specs
            if not (plan.resume and block_is_done(plan.store, "infer", s.key, stores=stores))]
    runner.map(_infer_task, todo, desc="infer", image=handle, store=str(plan.store),
               scratch=str(plan.scratch), model=str(plan.model_path), noise_sigma=noise.sigma,
               batch_size=plan.batch_size, precision=plan.precision, vote=plan.vote,
               contexts=contexts)
    timings["infer"] = time.time() - t
    timings["infer_blocks"] = len(todo)


def _stitch(runner: Runner, plan: RunPlan, handle: WindowReader, specs, noise: Noise,
            timings: dict):
    """Peaks of the whole centre map with global ids, every pixel's votes resolved to them,
    and the sources' light profiles (the first measuring pass)."""
    t = time.time()
    shape = tuple(handle.shape[1:])
    clear_records(plan.store, "stitch")
    parts = runner.map(_peaks_task, specs, desc="peaks", store=str(plan.store), shape=shape,
                       threshold=noise.threshold, finding=peak_finding(plan.meta, plan.window))
    peaks = merge_peaks(parts)
    peaks_yx = np.stack([peaks["y"], peaks["x"]], axis=1)
    parts = runner.map(_resolve_task, specs, desc="stitch", image=handle,
                       store=str(plan.store), scratch=str(plan.scratch), peaks=peaks,
                       peaks_yx=peaks_yx, shape=shape, min_fraction=plan.min_fraction,
                       vote=plan.vote)
    profiles = measure_mod.combine(parts, len(peaks["id"]), handle.shape[0])
    timings["stitch"] = time.time() - t
    return peaks, profiles


def _measure(runner: Runner, plan: RunPlan, ds, handle: WindowReader, specs, peaks: dict,
             profiles: dict, noise: Noise, band_names: list[str], timings: dict) -> dict:
    """The second measuring pass within the footprints the profiles set: catalogue columns,
    and ``segmentation.fits`` written block by block into its file as the pass goes (never
    whole in memory, and no pass of its own over the store)."""
    from mosaic_pais.runtime.segmentation import create_segmentation_file

    t = time.time()
    sigma = float(noise.sigma[0])
    radius, n_bins = measure_mod.footprint_bins(profiles, sigma)
    growth = _growth_curves(plan, band_names)
    weights = WindowReader(ds["weight"].data) if "weight" in ds else None
    shape = tuple(int(n) for n in handle.shape[1:])
    with atomic_path(plan.output / "segmentation.fits") as tmp:
        offset = create_segmentation_file(tmp, shape, ds.attrs.get("wcs_header"),
                                          {"MPVERS": (__version__, "mosaic-pais version")})
        parts = runner.map(_measure_task, specs, desc="measure", image=handle, weights=weights,
                           store=str(plan.store), scratch=str(plan.scratch), peaks=peaks,
                           shape=shape, min_fraction=plan.min_fraction, footprint_bins=n_bins,
                           shape_bins=measure_mod.shape_bins(profiles, sigma),
                           matched=measure_mod.matched_weights(growth, profiles, radius,
                                                               len(band_names)),
                           segmentation=(str(tmp), offset, shape[1]))
    total = measure_mod.combine(parts, len(peaks["id"]), len(band_names))
    columns = measure_mod.finalize(
        total, peaks, band_names, weights is not None, radius, noise_sigma=noise.sigma,
        noise_texture=noise.texture if noise.band_textures is None else noise.band_textures,
        # each one for every band, or one per band
        fraction_error=plan.meta.get("fraction_error", measure_mod.FRACTION_ERROR),
        relative_error=plan.meta.get("relative_flux_error", measure_mod.RELATIVE_FLUX_ERROR),
        noise_scale=plan.meta.get("noise_error_scale", measure_mod.NOISE_ERROR_SCALE),
        growth=growth)
    timings["measure"] = time.time() - t
    return columns


def _catalog_table(ds, columns: dict, band_names: list[str], plan: RunPlan, params: dict):
    """The catalogue: id, x, y, ra, dec, then the measured columns (and AB magnitudes where
    a zero point is known), with units and what made it in its metadata."""
    from datetime import datetime, timezone

    ra, dec = pixel_to_world(ds, columns["x"], columns["y"])
    table = Table()
    table["id"] = to_catalog_ids(columns.pop("id"))  # the store's numbering: 0 is the sky
    for name in ("x", "y"):
        table[name] = columns.pop(name)
    table["ra"], table["dec"] = ra, dec
    zeropoint, source = _zeropoint(plan, ds)
    for name, value in columns.items():
        table[name] = value
        if name == "flux_err" and zeropoint is not None:
            table["mag"], table["mag_err"] = magnitudes(table["flux"], value, zeropoint)
    unit = flux_unit(ds.attrs.get("bunit"))
    set_column_units(table, unit)
    table.meta.update({
        "BANDS": ",".join(band_names), "BUNIT": ds.attrs.get("bunit") or "",
        "MPVERS": __version__, "MODELSHA": params["model_sha256"],
        "DATE": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "THETA": THETA_CONVENTION})
    if zeropoint is not None:
        table.meta.update({"MAGZERO": zeropoint, "MAGZSRC": source, "MAGSYS": "AB"})
    return table


def _zeropoint(plan: RunPlan, ds) -> tuple[float | None, str | None]:
    if plan.zeropoint is not None:
        return float(plan.zeropoint), "--zeropoint"
    return ds.attrs.get("zeropoint"), ds.attrs.get("zeropoint_source")


def _sky_levels(sky, n_band: int) -> np.ndarray:
    return np.median(sky.levels, axis=(1, 2)) if sky is not None else np.zeros(n_band)


def _write_outputs(plan: RunPlan, ds, table, sky, noise: Noise) -> None:
    """The catalogue files, and the overview picture from a preview kept in the store."""
    from mosaic_pais.runtime.overview import PREVIEW_SIDE, overview_figure
    from mosaic_pais.runtime.show import overview_zooms, store_preview

    write_catalog(table, plan.output)
    image = ds["image"]
    level = _sky_levels(sky, image.shape[0])
    preview, factor = overview_image(image.data - level[:, None, None], PREVIEW_SIDE)
    store_preview(plan.store, preview, factor)
    title = (f"{Path(plan.images[0]).name}: {len(table):,} sources" if len(plan.images) == 1
             else f"{len(table):,} sources")
    zooms = overview_zooms(image.data, sky, plan.store, table, tuple(image.shape[1:]))
    fig = overview_figure(preview, factor, table, float(noise.sigma[0]),
                          ds.attrs.get("wcs_header"), zooms, title,
                          labels=_small_segmentation(plan.output, factor))
    with atomic_path(plan.output / "overview.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    pyplot().close(fig)


def _small_segmentation(folder: Path, factor: int) -> np.ndarray | None:
    """The segmentation map when the overview shows the mosaic pixel for pixel."""
    from astropy.io import fits

    return fits.getdata(folder / "segmentation.fits") if factor == 1 else None


def _provenance(plan: RunPlan, params: dict, band_names: list[str], ds, noise: Noise, sky,
                n_sources: int, timings: dict) -> dict:
    """What ``run.json`` records: versions, the model and its card, inputs, parameters, the
    sky subtracted and the timings."""
    finding = peak_finding(plan.meta, plan.window)
    return {
        "mosaic_pais_version": __version__,
        "model": {"path": str(plan.model_path), "sha256": params["model_sha256"],
                  "version": plan.meta.get("version"), "card": plan.meta},
        "inputs": {"images": [str(p) for p in plan.images],
                   "weights": ds.attrs.get("weight_source"),
                   "bands": band_names, "shape": list(ds["image"].shape[1:]),
                   # the bands in the order of the images' planes, where the run read them
                   # in its model's order instead
                   "input_bands": ds.attrs.get("input_bands", band_names)},
        "parameters": {"tile": plan.tile, "margin": plan.margin,
                       "tiles_per_block": plan.tiles_per_block,
                       # the side of the windows read: larger than ``tile`` where the margin
                       # does not fit the network's lattice (mosaic_pais.runtime.tile)
                       "tile_window": params["tile_window"],
                       # every tile reads the mosaic's attention context
                       "attention_context": params["attention_context"],
                       "context_window": params["context_window"],
                       # tiles per side of each window the network reads at once
                       "tiles_per_window": params["tiles_per_window"],
                       "batch_size": plan.batch_size, "precision": plan.precision,
                       "threshold": noise.threshold,
                       "window": finding["window"], "peak_smoothing": finding["smoothing"],
                       "min_fraction": plan.min_fraction, "vote": plan.vote,
                       "cluster": plan.cluster, "workers": plan.workers,
                       "memory_limit": plan.memory_limit, "noise_sigma": noise.sigma.tolist(),
                       "noise_texture": noise.texture,
                       "noise_texture_per_band": _finite_or_none(noise.band_textures),
                       "resume": plan.resume,
                       # the PSF whose curve of growth made the total fluxes (None: none)
                       "psf": _psf_name(plan, band_names)},
        # the sky subtracted: the median level per band and the map (``mosaic-pais stamps``
        # subtracts it from its cut-outs)
        "background": None if sky is None else {
            "median_level": _sky_levels(sky, len(band_names)).tolist(), **sky.to_json()},
        "n_sources": n_sources,
        "timings_s": timings,
    }
