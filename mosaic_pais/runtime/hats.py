"""Catalogues past one mosaic: runs' catalogues as one HATS catalogue, for LSDB.

A survey is many mosaics (fields, bands, epochs). HATS partitions a catalogue on the sky by
HEALPix pixel so that LSDB can query and cross-match catalogues of any size lazily, on Dask.
:func:`export_hats` (``mosaic-pais hats RUN... --output DIR``) writes the catalogues of one or
more finished runs as one HATS catalogue with ``hats-import``, on the same Dask client a run
uses; each row keeps its run's ``id`` and gains ``run``, the run folder's name. Sources without
sky coordinates (a mosaic without a WCS) cannot be placed and make the export refuse.

Then, for example::

    import lsdb
    goods = lsdb.open_catalog("goods_s_hats")
    matched = goods.crossmatch(lsdb.open_catalog("other_hats"), radius_arcsec=0.2)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError, require_extra

__all__ = ["export_hats"]


def _run_table(run_dir: Path):
    """A finished run's catalogue with its ``run`` column, refused without sky positions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = run_dir / "catalog.parquet"
    if not path.is_file():
        raise BadInputError(f"{run_dir}: not a finished mosaic-pais run (no catalog.parquet)")
    table = pq.read_table(path)
    ra, dec = (np.asarray(table.column(c)) for c in ("ra", "dec"))
    if len(table) and not (np.isfinite(ra) & np.isfinite(dec)).all():
        raise BadInputError(f"{run_dir}: sources without RA/Dec (the mosaic has no celestial "
                            "WCS); a HATS catalogue places every row on the sky")
    return table.append_column("run", pa.array([run_dir.name] * len(table), pa.string()))


def export_hats(run_dirs, output, client=None, name: str | None = None,
                progress: bool = True) -> Path:
    """Write the catalogues of ``run_dirs`` as one HATS catalogue at ``output``.

    Parameters
    ----------
    run_dirs : list of paths
        Finished runs (their ``catalog.parquet``).
    output : path
        The catalogue's folder (created; an existing one is refused).
    client : distributed.Client, optional
        The Dask client to import on (default: a local one with two workers, closed after).
    name : str, optional
        The catalogue's name in its properties (default: the folder's name).

    Returns
    -------
    Path
        ``output``.
    """
    require_extra("hats", "mosaic-pais hats")
    import pyarrow.parquet as pq

    output = Path(output)
    if output.exists():
        raise BadInputError(f"{output} exists; remove it first or choose another --output")
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise BadInputError("give at least one run")
    names = [p.name for p in run_dirs]
    if len(set(names)) < len(names):
        raise BadInputError("runs with the same folder name cannot be told apart in 'run'")
    staging = Path(tempfile.mkdtemp(prefix="mosaic-pais-hats-"))
    try:
        files = []
        for run_dir in run_dirs:
            files.append(staging / f"{run_dir.name}.parquet")
            pq.write_table(_run_table(run_dir), files[-1])
        _import(files, output, name or output.name, staging / "tmp", client, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _import(files: list[Path], output: Path, name: str, tmp: Path, client, progress: bool):
    from hats_import import ImportArguments, pipeline_with_client

    args = ImportArguments(output_path=str(output.parent), output_artifact_name=output.name,
                           input_file_list=[str(f) for f in files], file_reader="parquet",
                           ra_column="ra", dec_column="dec", catalog_type="object",
                           tmp_dir=str(tmp), progress_bar=progress, resume=False,
                           addl_hats_properties={"obs_title": name})
    if client is not None:
        pipeline_with_client(args, client)
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as own:
        pipeline_with_client(args, own)
