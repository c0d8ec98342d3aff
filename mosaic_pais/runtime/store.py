"""The global PCR store (``pcr.zarr``): layout, creation and the record of finished blocks.

Layout (zarr v3, dimension names set so that ``xarray.open_zarr`` reads it as a Dataset):

============  ======================  =======  ===========================================
variable      dims                    dtype    meaning
============  ======================  =======  ===========================================
center        (y, x)                  float32  C^c predicted by the network
fractions     (band, slot, y, x)      float32  C^m, zero below ``min_fraction``, renormalised
ids           (slot, y, x)            int64    global source id of each slot, -1 for none
============  ======================  =======  ===========================================

The network's raw output for the claim vectors and fractions is kept in a scratch store
(``work/vectors.zarr``): the vectors are only needed to resolve the votes (2n floats per pixel),
and stitching writes cleaned fractions into the store without touching what inference wrote, so
a finished inference block can always be verified against its checksum.

Chunks are the blocks' cores, so blocks write disjoint chunks and need no locks. The centre map
is read across block borders (the peak finder's halo,
:func:`mosaic_pais.runtime.stitch.peak_halo`), and
a halo touching a whole compressed chunk would decompress all of it: its chunks are therefore
zarr shards of smaller inner chunks (:data:`HALO_READ`, :func:`inner_chunk`), so that reading a
strip of a neighbour decompresses only the inner chunks the strip touches. A block is
recorded as finished by a small JSON file (in ``pcr.zarr.done/``) written atomically after its
data, holding a checksum of what was written; on ``--resume`` a block without a record, or
whose data no longer matches its checksum, is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

__all__ = [
    "VARIABLES",
    "HALO_READ",
    "INNER_CHUNK",
    "VECTOR_DTYPE",
    "VECTOR_STEP",
    "SCRATCH_VARIABLES",
    "consolidate",
    "to_catalog_ids",
    "from_catalog_ids",
    "sampled",
    "stored_region",
    "sampled_sizes",
    "inner_chunk",
    "create_store",
    "open_array",
    "array_checksum",
    "region_checksum",
    "records_dir",
    "record_block",
    "block_is_done",
    "clear_records",
]

VARIABLES = {
    "center": (("y", "x"), "float32", 0.0),
    "fractions": (("band", "slot", "y", "x"), "float32", 0.0),
    "ids": (("slot", "y", "x"), "int64", -1),
}
#: Variables read with a halo across block borders, stored as shards of inner chunks
HALO_READ = ("center",)
#: the inner chunks' side aimed at: small enough that a halo strip decompresses little of its
#: neighbour (stitching a 16,384² mosaic took 60 s with whole chunks, 49 s with these:
#: benchmarks/mosaic_scale.py)
INNER_CHUNK = 384

#: C^v is kept at half precision: votes land within 0.03 px of where float32 puts them
#: (|C^v| < 64 px), and a nearest centre changes only for votes that fall on a Voronoi edge.
VECTOR_DTYPE = "float16"
#: ... and from every second pixel in both directions: the targets of a pixel's slots are the
#: same source centres as its neighbours', so one sample serves 2 × 2 pixels
#: (:func:`mosaic_pais.pcr.resolve_votes`), and a run writes, reads back and resolves a
#: quarter of the vectors.
VECTOR_STEP = 2
#: Working arrays of a run, stored uncompressed and removed at the end: the network's claim
#: vectors (sampled: dims ``y_vector``, ``x_vector``) and fractions. Stitching resolves a
#: block's ids from them and writes the ids into the PCR store, where the second measuring
#: pass reads them back and overwrites them with the ids limited to the footprints; both
#: passes clean the raw fractions themselves.
SCRATCH_VARIABLES = {
    "vectors": (("slot", "component", "y_vector", "x_vector"), VECTOR_DTYPE, np.nan),
    "raw_fractions": (("band", "slot", "y", "x"), "float32", 0.0)}


def consolidate(path: str | Path) -> None:
    """Consolidated metadata for a finished store, so that ``xarray.open_zarr`` opens it
    without a warning. Zarr warns that consolidation is not yet in the v3 specification:
    xarray and zarr-python read it, other readers list the arrays themselves."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not")
        zarr.consolidate_metadata(str(path))


def to_catalog_ids(ids: np.ndarray) -> np.ndarray:
    """Ids as the store and the catalogue hold them: a source's index among the run's peaks
    plus 1, so that 0 is the sky in the segmentation map (SExtractor's ``NUMBER`` and
    photutils' labels also start at 1); −1 (no source) stays.

    >>> to_catalog_ids(np.array([-1, 0, 5])).tolist()
    [-1, 1, 6]
    """
    ids = np.asarray(ids, np.int64)
    return np.where(ids >= 0, ids + 1, -1)


def from_catalog_ids(ids: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_catalog_ids`: indices into the run's peaks, −1 for none.

    >>> from_catalog_ids(np.array([-1, 1, 6])).tolist()
    [-1, 0, 5]
    """
    ids = np.asarray(ids, np.int64)
    return np.where(ids > 0, ids - 1, -1)


def sampled(start: int, stop: int, step: int = VECTOR_STEP) -> tuple[int, int]:
    """Indices of the samples (every ``step``-th pixel from 0) inside pixels [start, stop).

    >>> sampled(1536, 3072), sampled(3, 8), sampled(0, 5)
    ((768, 1536), (2, 4), (0, 3))
    """
    return -(-start // step), -(-stop // step)


def stored_region(name: str, region: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The part of variable ``name`` that holds the pixels of a (y0, y1, x0, x1) region."""
    if name != "vectors":
        return region
    y0, y1, x0, x1 = region
    return (*sampled(y0, y1), *sampled(x0, x1))


def sampled_sizes(sizes: dict, chunks: dict) -> tuple[dict, dict]:
    """Sizes and chunks with the sampled dimensions of the vectors added."""
    return ({**sizes, "y_vector": sampled(0, sizes["y"])[1], "x_vector": sampled(0, sizes["x"])[1]},
            {**chunks, "y_vector": sampled(0, chunks["y"])[1],
             "x_vector": sampled(0, chunks["x"])[1]})


def inner_chunk(chunk: int, target: int = INNER_CHUNK) -> int:
    """Side of the inner chunks of a shard of side ``chunk``: its largest divisor up to
    ``target``, or ``chunk`` itself (no inner chunking) when that divisor would be so small that
    the many tiny chunks cost more than they save.

    >>> inner_chunk(1536), inner_chunk(1000), inner_chunk(300), inner_chunk(1543)
    (384, 250, 300, 1543)
    """
    if chunk <= target:
        return chunk
    best = max(d for d in range(1, target + 1) if chunk % d == 0)
    return best if best >= target // 4 else chunk


def create_store(path: str | Path, variables: dict, sizes: dict, chunks: dict,
                 attrs: dict | None = None, overwrite: bool = False,
                 compressed: bool = True, inner_target: int | None = None) -> Path:
    """Create (or, unless ``overwrite``, reuse) a zarr group holding ``variables``.

    Chunks are ``chunks`` (per dimension; whole along the others); the variables of
    :data:`HALO_READ` are sharded in those chunks with inner chunks of :func:`inner_chunk` (of
    about ``inner_target``, default :data:`INNER_CHUNK`).
    ``compressed=False`` stores raw chunks: the scratch store's noisy floats hardly compress,
    and compressing them cost more time than the network itself.
    """
    import zarr

    path = Path(path)
    if path.exists() and not overwrite:
        group = zarr.open_group(str(path), mode="r+")
        missing = [v for v in variables if v not in group]
        if not missing:
            return path
    group = zarr.open_group(str(path), mode="w" if overwrite or not path.exists() else "a")
    for name, (dims, dtype, fill) in variables.items():
        if name in group:
            continue
        outer = tuple(chunks.get(d, sizes[d]) for d in dims)
        layout = {"chunks": outer}
        if name in HALO_READ:
            inner = tuple(inner_chunk(c, inner_target or INNER_CHUNK) for c in outer)
            if inner != outer:
                layout = {"chunks": inner, "shards": outer}
        group.create_array(name, shape=tuple(sizes[d] for d in dims), dtype=dtype, **layout,
                           fill_value=fill, dimension_names=list(dims),
                           **({} if compressed else {"compressors": None}))
    if attrs:
        group.attrs.update(attrs)
    return path


def open_array(path: str | Path, name: str, mode: str = "r"):
    import zarr

    return zarr.open_group(str(path), mode=mode)[name]


def array_checksum(*arrays: np.ndarray) -> str:
    """SHA-256 of arrays' bytes (C order)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def region_checksum(path: str | Path, names: list[str], region: tuple[int, int, int, int]) -> str:
    """SHA-256 of the data of ``names`` inside a (y0, y1, x0, x1) region, as stored."""
    parts = []
    for name in names:
        y0, y1, x0, x1 = stored_region(name, region)
        parts.append(open_array(path, name)[..., y0:y1, x0:x1])
    return array_checksum(*parts)


def records_dir(path: str | Path) -> Path:
    """Where finished blocks of the store at ``path`` are recorded: ``<store>.done/`` beside it
    (inside the store zarr would take it for a broken member)."""
    path = Path(path)
    return path.with_name(path.name + ".done")


def _record_path(path: Path, stage: str, key: str) -> Path:
    return records_dir(path) / stage / f"{key}.json"


def record_block(path: str | Path, stage: str, key: str, names: list[str],
                 region: tuple[int, int, int, int], stores: dict | None = None,
                 written: dict | None = None) -> None:
    """Record that block ``key`` of ``stage`` is written, with checksums of its data.

    ``written`` maps names to the arrays just written (with the stored dtype): their
    checksums are taken in memory instead of reading the data back.
    """
    stores = stores or {}
    written = written or {}
    record = {"region": list(region),
              "checksums": {n: array_checksum(written[n]) if n in written
                            else region_checksum(stores.get(n, path), [n], region)
                            for n in names}}
    target = _record_path(Path(path), stage, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, target)


def block_is_done(path: str | Path, stage: str, key: str, stores: dict | None = None,
                  verify: bool = True) -> bool:
    """Whether block ``key`` was recorded and its data still matches the record."""
    target = _record_path(Path(path), stage, key)
    if not target.is_file():
        return False
    try:
        record = json.loads(target.read_text())
        if not verify:
            return True
        stores = stores or {}
        region = tuple(record["region"])
        return all(region_checksum(stores.get(n, path), [n], region) == digest
                   for n, digest in record["checksums"].items())
    except Exception:  # noqa: BLE001 - an unreadable record or chunk means: recompute
        return False


def clear_records(path: str | Path, stage: str) -> None:
    """Forget every finished block of ``stage`` (when a later stage must be redone)."""
    import shutil

    shutil.rmtree(records_dir(path) / stage, ignore_errors=True)
