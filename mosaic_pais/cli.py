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
from pathlib import Path

import click

from mosaic_pais import __version__
from mosaic_pais.errors import BadInputError


def _friendly_errors(func):
    """Exit 2 with one line on bad input, 1 with one line on any other failure."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BadInputError as exc:
            click.echo(f"mosaic-pais: error: {exc}", err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt, SystemExit):
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
    """Detect and deblend every source in astronomical mosaics (PAIS)."""


@main.command()
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for mosaic.fits and truth.fits.")
@click.option("--size", required=True, type=click.IntRange(min=16),
              help="Side of the square mosaic in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--density", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Source density relative to GOODS-S deep F160W.")
@_friendly_errors
def simulate(output: Path, size: int, seed: int, density: float) -> None:
    """Simulate an HST F160W-like mosaic (DIR/mosaic.fits) and its truth (DIR/truth.fits)."""
    from mosaic_pais.simulate import simulate_mosaic

    simulate_mosaic(output, size=size, seed=seed, density=density, progress=True)
    click.echo(f"wrote {output / 'mosaic.fits'} and {output / 'truth.fits'}")


@main.command()
@click.argument("catalog", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("truth", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--radius", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Matching radius in pixels.")
@click.option("--mag-limit", default=None, type=float,
              help="Only truth sources brighter than this count towards completeness.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the JSON (default: evaluation.json beside CATALOG).")
@_friendly_errors
def evaluate(catalog: Path, truth: Path, radius: float, mag_limit: float | None,
             json_path: Path | None) -> None:
    """Completeness, purity, F1 and flux errors of CATALOG against TRUTH."""
    from mosaic_pais.evaluate import evaluate_files, format_report

    result = evaluate_files(catalog, truth, radius=radius, mag_limit=mag_limit)
    click.echo(format_report(result))
    json_path = json_path or catalog.with_name("evaluation.json")
    json_path.write_text(json.dumps(result, indent=2))
    click.echo(f"wrote {json_path}")


@main.command()
@click.option("--output", "-o", default="demo_output", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
@_friendly_errors
def demo(output: Path, seed: int) -> None:
    """Simulate a small scene, run the method on it, evaluate against the truth and draw."""
    from mosaic_pais.demo import run_demo

    run_demo(output, seed=seed)


if __name__ == "__main__":
    main()
