"""The ``mosaic-pais`` command line.

Each command is a thin shell over a function of the package: it parses options, calls the
function and turns :class:`~mosaic_pais.errors.BadInputError` into a one-line message on
stderr and exit status 2 (other failures exit with status 1).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path

import click

from mosaic_pais import __version__
from mosaic_pais.errors import BadInputError, require_extra
from mosaic_pais.runtime.background import DEFAULT_MESH
from mosaic_pais.runtime.tile import (
    DEFAULT_MARGIN,
    DEFAULT_TILE,
    DEFAULT_TILES_PER_BLOCK,
    DEFAULT_TILES_PER_WINDOW,
)

__all__ = [
    "main",
    "run",
    "simulate",
    "evaluate",
    "convert",
    "stamps",
    "train",
    "labels",
    "demo",
    "show",
    "hats",
]


def _friendly_errors(func):
    """Exit 2 with one line on bad input, 1 with one line on any other failure."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BadInputError as exc:
            click.echo(f"mosaic-pais: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            # finished blocks are recorded as they complete: nothing done so far is lost
            click.echo("mosaic-pais: interrupted; what is finished is kept (rerun with "
                       "--resume to continue a run)", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the user gets one line, developers a flag
            if os.environ.get("MOSAIC_PAIS_DEBUG"):
                raise
            click.echo(
                f"mosaic-pais: failed: {type(exc).__name__}: {exc} "
                "(set MOSAIC_PAIS_DEBUG=1 for a traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mosaic-pais")
def main() -> None:
    """Detect and deblend every source in astronomical mosaics (PAIS).

    Exit status: 0 done, 2 bad input (one line says why), 1 any other failure, 130
    interrupted (Ctrl-C; finished work is kept for --resume).
    """
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command line shows it: one line, without the source line that
    Python's default format adds."""
    return f"mosaic-pais: warning: {message}\n"


def _background_mesh(value: str) -> int | None:
    """``--background``: a mesh side in px, or none."""
    if str(value).strip().lower() in ("none", "no", "off", "0"):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"--background {value!r}: give a mesh side in pixels, or 'none'"
                            ) from None


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory.")
@click.option("--bands", default=None, help="Band names, comma-separated, one per image/plane.")
@click.option("--weights", multiple=True, type=click.Path(path_type=Path),
              help="Inverse-variance weight map per band (repeat the option).")
@click.option("--hdu", default=None, help="HDU name or number holding the image.")
@click.option("--cluster", is_flag=False, flag_value="local", default=None,
              help="Run on Dask workers: 'local' (default when given alone; CUDA workers when "
                   "GPUs are visible), 'cuda', 'slurm', 'pbs' or a scheduler ADDRESS.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Number of workers.")
@click.option("--memory-limit", default=None,
              help="Memory limit per worker of a cluster the run starts, e.g. 3GB.")
@click.option("--model", default=None, type=click.Path(path_type=Path),
              help="A .keras model (default: the shipped one).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --output.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --output.")
@click.option("--tile", default=DEFAULT_TILE, show_default=True, type=int)
@click.option("--margin", default=DEFAULT_MARGIN, show_default=True, type=int)
@click.option("--tiles-per-block", default=DEFAULT_TILES_PER_BLOCK, show_default=True,
              type=click.IntRange(min=1))
@click.option("--tiles-per-window", default=DEFAULT_TILES_PER_WINDOW, show_default=True,
              type=click.IntRange(min=1),
              help="Tiles per side of each window the network reads at once; 1 reads every "
                   "tile on its own.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Tiles' worth of pixels the network reads per call.")
@click.option("--precision", default="float32", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16"]),
              help="What the network computes in: bfloat16 is faster on CPUs with bfloat16 "
                   "instructions (AVX-512 BF16, AMX) but not bit-reproducible across worker "
                   "layouts; 'auto' picks it where the CPU has them.")
@click.option("--threshold", default=None, type=float,
              help="Centre-map peak threshold (default: the model card's, for the image's "
                   "noise texture).")
@click.option("--vote", default=None, type=click.Choice(["geometric", "mixed", "vectors"]),
              help="How each pixel's slots are resolved to detected sources (default: the "
                   "model card's): 'geometric' by the pixel's distance order, 'mixed' by the "
                   "claim vectors beyond 6 px of the nearest source (brighter galaxies' wings "
                   "stay theirs; the run writes and reads C^v), 'vectors' by the claim vectors "
                   "everywhere, as the paper.")
@click.option("--background", default=str(DEFAULT_MESH), show_default=True,
              help="Mesh cell side (px) on which the sky is estimated and subtracted, or "
                   "'none' for an image whose sky is already subtracted exactly.")
@click.option("--psf", default=None,
              help="PSF image (FITS, on the mosaic's pixels) whose curve of growth turns "
                   "footprint sums into total fluxes (default: the model card's, the PSFs it "
                   "was trained with), one for all bands or one per band comma-separated in "
                   "the order the images are given, or 'none' to keep the footprint sums.")
@click.option("--zeropoint", default=None, type=float,
              help="AB magnitude of one unit of flux, for the mag and mag_err columns "
                   "(default: from the header: PHOTFLAM/PHOTPLAM, PIXAR_SR, MAGZERO, ...).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_friendly_errors
def run(images, output, bands, weights, hdu, cluster, workers, memory_limit, model, resume,
        overwrite, tile, margin, tiles_per_block, tiles_per_window, batch_size, precision,
        threshold, vote, background, psf, zeropoint, quiet) -> None:
    """Detect and deblend every source of IMAGE(s); write catalogue, PCR store and picture."""
    from mosaic_pais.runtime.pipeline import run as run_pipeline

    hdu_value = int(hdu) if hdu is not None and str(hdu).isdigit() else hdu
    table, _ = run_pipeline(
        list(images), output, bands=bands.split(",") if bands else None,
        weights=list(weights) or None, hdu=hdu_value, model=model, cluster=cluster,
        workers=workers, memory_limit=memory_limit, resume=resume, overwrite=overwrite,
        tile=tile, margin=margin,
        tiles_per_block=tiles_per_block, tiles_per_window=tiles_per_window,
        batch_size=batch_size, precision=precision, threshold=threshold, vote=vote,
        background=_background_mesh(background), psf=psf, zeropoint=zeropoint,
        progress=not quiet)
    click.echo(f"{len(table)} sources; wrote {output}/catalog.fits, catalog.parquet, pcr.zarr, "
               "overview.png, run.json")


@main.command()
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for mosaic.fits and truth.fits.")
@click.option("--size", required=True, type=click.IntRange(min=16),
              help="Side of the square mosaic in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--density", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Source density relative to GOODS-S deep F160W.")
@click.option("--noise", "noise_sigma", default=None, type=click.FloatRange(min=0),
              help="Pixel noise sigma in e-/s  [default: 0.0046, GOODS-S deep]")
@click.option("--noise-correlation", default=None, type=click.FloatRange(min=0),
              help="Width (px) of the Gaussian that correlates the noise like drizzled data; "
                   "0 gives white noise  [default: 0.6, measured on GOODS-S]")
@_friendly_errors
def simulate(output: Path, size: int, seed: int, density: float, noise_sigma: float | None,
             noise_correlation: float | None) -> None:
    """Simulate an HST F160W-like mosaic (DIR/mosaic.fits) and its truth (DIR/truth.fits)."""
    require_extra("sim", "mosaic-pais simulate")
    from mosaic_pais.sim.scenes import simulate_mosaic

    simulate_mosaic(output, size=size, seed=seed, density=density, noise_sigma=noise_sigma,
                    noise_correlation=noise_correlation, progress=True)
    click.echo(f"wrote {output / 'mosaic.fits'} and {output / 'truth.fits'}")


@main.command()
@click.argument("catalog", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("truth", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--radius", default=3.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Matching radius in pixels.")
@click.option("--mag-limit", default=27.0, show_default=True, type=float,
              help="Only truth sources brighter than this count towards completeness.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the JSON (default: evaluation.json beside CATALOG).")
@click.option("--plots", "plots_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Also write completeness.png and flux_error.png into this directory.")
@_friendly_errors
def evaluate(catalog: Path, truth: Path, radius: float, mag_limit: float | None,
             json_path: Path | None, plots_dir: Path | None) -> None:
    """Completeness, purity, F1 and flux errors of CATALOG against TRUTH."""
    from mosaic_pais.evaluation.metrics import evaluate_files, format_report

    result = evaluate_files(catalog, truth, radius=radius, mag_limit=mag_limit)
    click.echo(format_report(result))
    json_path = json_path or catalog.with_name("evaluation.json")
    json_path.write_text(json.dumps(result, indent=2))
    click.echo(f"wrote {json_path}")
    if plots_dir is not None:
        from mosaic_pais.evaluation.metrics import read_table
        from mosaic_pais.evaluation.plots import evaluation_plots

        for path in evaluation_plots(read_table(catalog, ["x", "y", "flux"], "catalogue"),
                                     read_table(truth, ["x", "y", "flux"], "truth"),
                                     plots_dir, radius=radius, mag_limit=mag_limit):
            click.echo(f"wrote {path}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--bands", default=None, help="Band names, comma-separated.")
@click.option("--weights", multiple=True, type=click.Path(path_type=Path))
@click.option("--hdu", default=None, help="HDU name or number holding the image.")
@click.option("--chunks", default=2048, show_default=True, type=click.IntRange(min=16))
@_friendly_errors
def convert(images, out, bands, weights, hdu, chunks) -> None:
    """Write FITS IMAGE(s) as a chunked Zarr store OUT (keeps WCS and band names)."""
    from mosaic_pais.runtime.open import convert as convert_images

    hdu_value = int(hdu) if hdu is not None and str(hdu).isdigit() else hdu
    path = convert_images(list(images), out, bands=bands.split(",") if bands else None,
                          weights=list(weights) or None, hdu=hdu_value, chunks=chunks)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ids", required=True, help="Source ids, comma-separated.")
@click.option("--output", "-o", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write (default: RUN_DIR/stamps).")
@click.option("--size", default=None, type=click.IntRange(min=3), help="Box side in pixels.")
@_friendly_errors
def stamps(run_dir, ids, output, size) -> None:
    """Deblended images of chosen sources of a finished run, as FITS."""
    from mosaic_pais.runtime.stamps import write_stamps

    try:
        id_list = [int(v) for v in ids.split(",") if v.strip()]
    except ValueError as exc:
        raise BadInputError(f"--ids must be integers separated by commas, got {ids!r}") from exc
    for path in write_stamps(run_dir, id_list, output, size):
        click.echo(f"wrote {path}")


@main.command()
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Training set folder (train/ and val/ Zarr shards).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: checkpoints, logs, exported model.keras.")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path),
              help="A JSON training configuration (see training/configs/).")
@click.option("--simulate-tiles", default=0, show_default=True, type=click.IntRange(min=0),
              help="First simulate and label this many training tiles into --data.")
@click.option("--simulate-start", default=0, show_default=True, type=click.IntRange(min=0),
              help="The first training scene's number: a new set of scenes for a new run.")
@click.option("--val-tiles", default=0, show_default=True, type=click.IntRange(min=0),
              help="... and this many validation tiles.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes for simulating tiles.")
@click.option("--steps", default=None, type=click.IntRange(min=1), help="Stop after this step.")
@click.option("--minutes", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many minutes.")
@click.option("--from", "init_from", default=None, type=click.Path(path_type=Path),
              help="Start from (fine-tune) this .keras model.")
@_friendly_errors
def train(data, output, config_path, simulate_tiles, simulate_start, val_tiles, processes, steps,
          minutes, init_from) -> None:
    """Build a simulated training set and/or train (resuming from the last checkpoint)."""
    from dataclasses import replace

    require_extra("train", "mosaic-pais train")
    from mosaic_pais.training.dataset import build_training_set
    from mosaic_pais.training.train import TrainConfig
    from mosaic_pais.training.train import train as train_model

    # checked before any tile is simulated: a bad configuration fails at once, in one line
    cfg = TrainConfig.from_json(config_path) if config_path else TrainConfig()
    given = {"steps": steps, "minutes": minutes,
             "init_from": str(init_from) if init_from else None}
    cfg = replace(cfg, data=str(data), output=str(output),
                  **{k: v for k, v in given.items() if v is not None})
    if simulate_tiles:
        build_training_set(data, "train", simulate_tiles, start=simulate_start,
                           processes=processes, bands=cfg.bands, tile_size=cfg.tile_size)
    if val_tiles:
        build_training_set(data, "val", val_tiles, processes=processes, bands=cfg.bands,
                           tile_size=cfg.tile_size)
    if not (data / "train").is_dir():
        raise BadInputError(f"no training set in {data}/train (use --simulate-tiles N)")
    path = train_model(cfg)
    click.echo(f"model written to {path}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--catalog", required=True, type=click.Path(path_type=Path),
              help="Source table (FITS, CSV, ECSV) with x/y (0-based) or ra/dec columns.")
@click.option("--psf", "psfs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="PSF image per band (repeat the option; one file serves all bands).")
@click.option("--weights", multiple=True, type=click.Path(path_type=Path),
              help="Inverse-variance weight map per band (repeat the option).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Training set folder (shards in DIR/<split>/, report DIR/labels_<split>.json).")
@click.option("--bands", default=None, help="Band names, comma-separated.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val"]))
@click.option("--pixel-scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Image arcsec/px when its header has no WCS.")
@click.option("--psf-scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="PSF arcsec/px when the PSF header does not say (PIXSCALE or WCS).")
@click.option("--tile", default=256, show_default=True, type=click.IntRange(min=32))
@click.option("--stride", default=None, type=click.IntRange(min=1), help="Default: --tile.")
@click.option("--margin", default=32, show_default=True, type=click.IntRange(min=0),
              help="Pixels around a tile also fitted, so neighbours outside it are modelled.")
@click.option("--max-iter", default=200, show_default=True, type=click.IntRange(min=1),
              help="scarlet2 iterations per tile.")
@click.option("--center-sigma", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Centre-map Gaussian width (default: the simulated training set's).")
@click.option("--align", is_flag=True,
              help="Shift the catalogue by its measured median offset to the image first.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--save-models", is_flag=True, help="Also write per-source models (DIR/models/).")
@click.option("--overwrite", is_flag=True, help="Replace existing shards of the split.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def labels(images, catalog, psfs, weights, output, bands, split, pixel_scale, psf_scale, tile,
           stride, margin, max_iter, center_sigma, align, workers, save_models, overwrite,
           quiet) -> None:
    """Label real IMAGE tiles with scarlet2 deblends at catalogue positions (PCR shards)."""
    require_extra("labels", "mosaic-pais labels")
    from mosaic_pais.labels.scarlet import LabelConfig, make_labels
    from mosaic_pais.training.dataset import TRAINING_CENTER_SIGMA

    cfg = LabelConfig(tile=tile, stride=stride, margin=margin, max_iter=max_iter,
                      center_sigma=center_sigma or TRAINING_CENTER_SIGMA, workers=workers,
                      align=align, pixel_scale=pixel_scale, psf_scale=psf_scale, split=split,
                      save_models=save_models)
    report = make_labels(list(images), catalog, list(psfs), output, weights=list(weights) or None,
                         bands=bands.split(",") if bands else None, config=cfg,
                         overwrite=overwrite, progress=not quiet)
    a = report["alignment"]
    click.echo(f"{report['n_labelled']} of {report['n_tiles']} tiles labelled, "
               f"{report['n_failed']} failed, {report['n_skipped']} without sources; "
               f"catalogue→image median offset (dy, dx) {a['median_dy_dx']} px over "
               f"{a['n_measured']} sources, shift applied {a['applied_shift_dy_dx']}")
    if a.get("misaligned") and not align:
        click.echo("warning: the catalogue looks offset from the image; consider --align",
                   err=True)
    for entry in report["failed"]:
        click.echo(f"failed tile at {entry['origin']}: {entry['error']}", err=True)
    click.echo(f"wrote {output / split} and {output / f'labels_{split}.json'}")


@main.command()
@click.option("--output", "-o", default="demo_output", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
@_friendly_errors
def demo(output: Path, seed: int) -> None:
    """Simulate a small scene, run the method on it, evaluate against the truth and draw."""
    require_extra("sim", "mosaic-pais demo")
    from mosaic_pais.demo import run_demo

    run_demo(output, seed=seed)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--id", "source_id", default=None, type=int,
              help="The source whose deblend is drawn (default: the brightest blended one).")
@click.option("--region", default=None,
              help="x0,x1,y0,y1 (mosaic px): draw that part of the run at native resolution.")
@click.option("--ra", default=None, type=float, help="With --dec: the centre (deg) of a region.")
@click.option("--dec", default=None, type=float)
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=8),
              help="Side (px) of the region about --ra/--dec.")
@click.option("--overview", is_flag=True,
              help="The run's overview again, from the preview it stored.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="The PNG to write (default: RUN_DIR/show_<what>.png).")
@_friendly_errors
def show(run_dir: Path, source_id: int | None, region: str | None, ra: float | None,
         dec: float | None, size: int, overview: bool, output: Path | None) -> None:
    """Draw a finished run: one source's deblend (default), a region, or the overview."""
    from mosaic_pais.runtime import show as show_mod

    if overview:
        path = show_mod.show_overview(run_dir, output or run_dir / "show_overview.png")
    elif region is not None or ra is not None or dec is not None:
        box = show_mod.parse_region(region) if region is not None else None
        name = region.replace(",", "_") if region else f"{ra}_{dec}"
        path = show_mod.show_region(run_dir, box, ra=ra, dec=dec, size=size,
                                    output=output or run_dir / f"show_region_{name}.png")
    else:
        path = show_mod.show_run(run_dir, source_id, output)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="The HATS catalogue's folder (must not exist).")
@click.option("--name", default=None, help="The catalogue's name (default: the folder's).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_friendly_errors
def hats(runs, output: Path, name: str | None, quiet: bool) -> None:
    """Write the catalogues of finished RUNS as one HATS catalogue (for LSDB)."""
    from mosaic_pais.runtime.hats import export_hats

    export_hats(list(runs), output, name=name, progress=not quiet)
    click.echo(f"wrote {output} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
