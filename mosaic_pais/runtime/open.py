"""Opening mosaics lazily: FITS or Zarr → ``xarray.Dataset`` over Dask, nothing read yet.

The Dataset has ``image`` (band, y, x) float32 and, with weight maps, ``weight`` (band, y, x)
(inverse variance; 0 or NaN = masked). Band names are the ``band`` coordinate; the celestial
WCS header (a string, or None) and the input paths are in ``attrs``.

Readers are plugins, as xarray's backends are: each says whether it can open a path
(:meth:`guess_can_open`) and builds a lazy array. FITS images are read block by block through
``section`` — memory-mapped for plain images, decompressing only the needed tiles of
tile-compressed ones, scaling BSCALE/BZERO and integer data to float32 and converting FITS's
big-endian bytes to native order once per block. Every task reopens the file itself, so the
arrays pickle to distributed workers.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.store import consolidate
from mosaic_pais.runtime.units import ab_zeropoint

__all__ = [
    "DEFAULT_CHUNK",
    "MissingWCSWarning",
    "DrizzleWeightWarning",
    "GZIP_IN_MEMORY",
    "FitsReader",
    "ZarrReader",
    "READERS",
    "open_mosaic",
    "check_weights",
    "check_not_empty",
    "wcs_header_of",
    "pixel_to_world",
    "convert",
]

DEFAULT_CHUNK = 2048


class MissingWCSWarning(UserWarning):
    """The input has no usable celestial WCS: the catalogue will have NaN RA/Dec."""


class DrizzleWeightWarning(UserWarning):
    """A drizzled product's WHT extension is used as the weight map (no ``--weights``)."""


#: gzip-compressed FITS up to this size (compressed bytes) is read into memory once; a larger
#: one is decompressed once into a plain FITS in the temporary folder and read lazily from it
GZIP_IN_MEMORY = 256 * 2 ** 20


class _FitsSection:
    """A picklable, lazily opened view of one FITS HDU, usable by ``dask.array.from_array``."""

    def __init__(self, path: str, hdu, shape: tuple, plane: int | None, plain: bool = False):
        self.path, self.hdu, self.plane = path, hdu, plane
        self.plain = plain
        self.shape = shape
        self.dtype = np.dtype("float32")
        self.ndim = len(shape)

    def __getitem__(self, key):
        from astropy.io import fits

        if self.plane is not None:
            key = (self.plane, *key) if isinstance(key, tuple) else (self.plane, key)
        # a plain floating-point image is sliced through a memory map: one strided read, five
        # times faster than ``section``, which reads row by row; ``section`` is kept for
        # what memmap cannot do lazily (tile compression, BSCALE/BZERO, integer BLANKs)
        # the header was checked (and its problems reported) once, when the file was opened:
        # every window's read parses it again, and would repeat each warning per window
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(self.path, memmap=self.plain, lazy_load_hdus=True) as hdul:
                hdu = hdul[self.hdu]
                data = hdu.data[key] if self.plain else hdu.section[key]
                # a copy in native float32 (FITS is big-endian), made before the file closes
                return np.array(data, dtype=np.float32)


class FitsReader:
    """FITS images: ``.fits``, ``.fit``, ``.fts``, ``.fits.fz`` (tile-compressed), and any of
    them gzip-compressed (``.fits.gz``, as many surveys distribute their mosaics)."""

    name = "fits"
    suffixes = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz", ".fit.gz", ".fts.gz")

    @classmethod
    def guess_can_open(cls, path: Path) -> bool:
        name = path.name.lower()
        if any(name.endswith(s) for s in cls.suffixes):
            return True
        try:
            with open(path, "rb") as fh:
                return fh.read(9) == b"SIMPLE  ="
        except OSError:
            return False

    @staticmethod
    def is_gzip(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                return fh.read(2) == b"\x1f\x8b"
        except OSError:
            return False

    @staticmethod
    def _pick_hdu(hdul, hdu, path):
        if hdu is not None:
            try:
                return hdul[hdu], hdu
            except (KeyError, IndexError) as exc:
                raise BadInputError(f"{path}: no HDU {hdu!r}") from exc
        for index, candidate in enumerate(hdul):
            shape = getattr(candidate, "shape", None) if candidate.is_image else None
            if shape and len(shape) >= 1 and np.prod(shape) > 0:
                return candidate, index
        raise BadInputError(f"{path}: no image data in any HDU")

    def open(self, path: Path, hdu=None, chunks: int = DEFAULT_CHUNK):
        """Lazy planes (list of dask arrays (y, x)), their header, and default band names."""
        if self.is_gzip(path):
            if path.stat().st_size > GZIP_IN_MEMORY:
                plain = _gunzipped(path)
                try:
                    return self.open(plain, hdu, chunks)
                except BadInputError as exc:  # name the user's file, not the copy
                    raise BadInputError(str(exc).replace(str(plain), str(path))) from None
            return _open_in_memory(path, hdu, chunks)
        import dask.array as da
        from astropy.io import fits

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                    hdul.verify("silentfix")
                    chosen, key = self._pick_hdu(hdul, hdu, path)
                    shape = tuple(int(s) for s in (chosen.shape or ()))
                    header = chosen.header.copy()
                    plain = (not isinstance(chosen, fits.CompImageHDU)
                             and header.get("BITPIX") in (-32, -64)
                             and header.get("BSCALE", 1) == 1 and header.get("BZERO", 0) == 0)
                    if not shape or int(np.prod(shape)) == 0:
                        raise BadInputError(f"{path}: HDU {key!r} holds no image data")
                    # reading one pixel catches truncated files now, not in a worker later
                    corner = (0,) * len(shape)
                    _ = chosen.section[corner] if len(shape) > 1 else None
                    last = tuple(s - 1 for s in shape)
                    _ = chosen.section[last] if len(shape) > 1 else None
            for warning in caught:
                if "truncated" in str(warning.message):
                    raise BadInputError(f"{path}: the file is truncated")
        except BadInputError:
            raise
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise BadInputError(f"{path}: not a readable FITS file ({exc})") from exc
        _check_cube_shape(path, shape)
        planes = []
        plane_shape = shape[-2:]
        for plane in range(shape[0]) if len(shape) == 3 else [None]:
            source = _FitsSection(str(path), key, plane_shape, plane, plain=plain)
            planes.append(da.from_array(source, chunks=(chunks, chunks), asarray=True,
                                        name=f"fits-{path.name}-{key}-{plane}-{_mtime(path)}",
                                        meta=np.zeros((0, 0), np.float32)))
        return planes, header, _plane_names(header, path, len(planes))


def _gunzipped(path: Path) -> Path:
    """A plain copy of a large gzip-compressed FITS file in the temporary folder, made once
    (named by the file's path, size and time, so that a changed file is decompressed again)."""
    import gzip
    import hashlib
    import shutil
    import tempfile

    key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{_mtime(path)}".encode())
    target = Path(tempfile.gettempdir()) / f"mosaic-pais-{key.hexdigest()[:16]}.fits"
    if not target.exists():
        partial = target.with_suffix(f".part-{os.getpid()}")
        try:
            with gzip.open(path, "rb") as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out, 16 * 2 ** 20)
        except (OSError, EOFError) as exc:
            partial.unlink(missing_ok=True)
            raise BadInputError(f"{path}: not a readable gzip-compressed FITS file ({exc})") \
                from None
        os.replace(partial, target)
    return target


def _open_in_memory(path: Path, hdu, chunks: int):
    """A small gzip-compressed FITS file: decompressed and read whole, once."""
    import dask.array as da
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hdul:
                chosen, _ = FitsReader._pick_hdu(hdul, hdu, path)
                data = np.asarray(chosen.data, dtype=np.float32)
                header = chosen.header.copy()
    except BadInputError:
        raise
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise BadInputError(f"{path}: not a readable FITS file ({exc})") from exc
    _check_cube_shape(path, data.shape)
    planes = [da.from_array(p, chunks=(chunks, chunks))
              for p in (data if data.ndim == 3 else data[None])]
    return planes, header, _plane_names(header, path, len(planes))


def _check_cube_shape(path: Path, shape: tuple) -> None:
    if len(shape) not in (2, 3):
        raise BadInputError(f"{path}: image data must be 2-D or a 3-D cube, "
                            f"got {len(shape)}-D {shape}")


def _plane_names(header, path: Path, n_planes: int) -> list[str]:
    """Default band names: the header's FILTER or BAND, else the file's name; numbered for
    the planes of a cube."""
    band = header.get("FILTER") or header.get("BAND") or path.name.split(".")[0]
    return [f"{band}_{i}" for i in range(n_planes)] if n_planes > 1 else [str(band)]


def _mtime(path: Path) -> int:
    return int(path.stat().st_mtime_ns)


class ZarrReader:
    """Zarr stores written by :func:`convert` (a directory with ``image``)."""

    name = "zarr"

    @classmethod
    def guess_can_open(cls, path: Path) -> bool:
        return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())


READERS = [FitsReader, ZarrReader]


def _reader_for(path: Path):
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory")
    for reader in READERS:
        if reader.guess_can_open(path):
            return reader()
    raise BadInputError(f"{path}: unknown format; supported: "
                        + ", ".join(f"{r.name}" for r in READERS))


_NUMERIC_WCS_KEY = re.compile(r"^(CRVAL|CRPIX|CDELT|CD\d_|PC\d_)")


def _celestial_header(header) -> str | None:
    """The celestial WCS of a header as a string, or None when there is none that works.

    Broken is as good as none: a numeric keyword holding text (astropy would silently take 0),
    a transformation that raises, or one that is singular (pixels do not map back to
    themselves).
    """
    from astropy.wcs import WCS

    for key, value in header.items():
        if _NUMERIC_WCS_KEY.match(key) and not isinstance(value, int | float):
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2).celestial
            if not wcs.has_celestial:
                return None
            world = wcs.pixel_to_world_values(np.array([0.0, 10.0]), np.array([0.0, 7.0]))
            back = wcs.world_to_pixel_values(*world)
        if not (np.all(np.isfinite(world)) and np.allclose(back, [[0.0, 10.0], [0.0, 7.0]],
                                                           atol=1e-3)):
            return None
        return wcs.to_header_string()
    except Exception:  # noqa: BLE001 - any broken keyword means no usable WCS
        return None


def open_mosaic(images, *, bands=None, weights=None, hdu=None,
                chunks: int = DEFAULT_CHUNK):
    """Open one or more images as a lazy ``xarray.Dataset`` (see the module docstring).

    Parameters
    ----------
    images : path or list of paths
        One FITS file per band, one FITS cube (planes = bands), or one Zarr store.
    bands : list of str, optional
        Band names (default: FILTER/BAND keywords or file names).
    weights : path or list of paths, optional
        Inverse-variance maps, one per band, the same shape as the image.
    hdu : int or str, optional
        HDU holding the image (default: the first with image data).
    chunks : int
        Dask chunk size in pixels.

    Examples
    --------
    >>> import tempfile, os
    >>> from astropy.io import fits
    >>> path = os.path.join(tempfile.mkdtemp(), "one.fits")
    >>> fits.PrimaryHDU(np.ones((40, 60), ">f4")).writeto(path)
    >>> ds = open_mosaic(path)  # doctest: +SKIP
    >>> ds["image"].dims, ds["image"].shape  # doctest: +SKIP
    (('band', 'y', 'x'), (1, 40, 60))
    """
    import dask.array as da
    import xarray as xr

    paths = [Path(images)] if isinstance(images, str | Path) else [Path(p) for p in images]
    if not paths:
        raise BadInputError("no input image given")
    if len(paths) == 1 and ZarrReader.guess_can_open(paths[0]):
        return _open_zarr_mosaic(paths[0])
    planes, names, header0 = _read_planes(paths, hdu, chunks)
    names = _band_names(names, bands, len(planes))
    wcs_header = _celestial_header(header0)
    if wcs_header is None:
        warnings.warn(f"{paths[0]}: no usable celestial WCS; RA/Dec will be NaN",
                      MissingWCSWarning, stacklevel=2)
    data_vars = {"image": (("band", "y", "x"), da.stack(planes))}
    weight_hdus = None
    if not weights:
        weights, weight_hdus = _drizzle_weights(paths, tuple(planes[0].shape), len(planes))
    if weights:
        data_vars["weight"] = (("band", "y", "x"),
                               _weight_planes(weights, planes, chunks, weight_hdus))
    bunit = str(header0.get("BUNIT", "")) if header0 is not None else ""
    zeropoint, zeropoint_source = ab_zeropoint(header0 if header0 is not None else {})
    ds = xr.Dataset(data_vars, coords={"band": names},
                    attrs={"wcs_header": wcs_header, "bands": names,
                           "sources": [str(p) for p in paths], "bunit": bunit,
                           "zeropoint": zeropoint, "zeropoint_source": zeropoint_source,
                           "weight_source": _weight_source(weights, weight_hdus)})
    if "weight" in ds:
        check_weights(ds)
    return ds


def _open_zarr_mosaic(path: Path):
    """A store written by ``mosaic-pais convert``: it holds every band."""
    import xarray as xr

    ds = xr.open_zarr(path, consolidated=None)  # consolidated when written by this version
    if "image" not in ds:
        raise BadInputError(f"{path}: a Zarr store without an 'image' array")
    ds.attrs.setdefault("sources", [str(path)])
    return ds


def _read_planes(paths: list[Path], hdu, chunks: int):
    """Every image plane of the files (lazily), their default band names and the first
    file's header; planes of different shapes are refused."""
    planes, names, header0 = [], [], None
    for path in paths:
        reader = _reader_for(path)
        if isinstance(reader, ZarrReader):
            raise BadInputError(f"{path}: a Zarr store must be the only input")
        p, header, default_names = reader.open(path, hdu=hdu, chunks=chunks)
        planes += p
        names += default_names
        header0 = header if header0 is None else header0
    shapes = {tuple(p.shape) for p in planes}
    if len(shapes) > 1:
        raise BadInputError(f"bands have different shapes: {sorted(shapes)}")
    return planes, names, header0


def _band_names(names: list[str], bands, n_planes: int) -> list[str]:
    """The bands' names: those given (one per plane), else the files' own, made unique."""
    if bands is not None:
        bands = list(bands)
        if len(bands) != n_planes:
            raise BadInputError(f"{len(bands)} band names for {n_planes} image planes")
        names = bands
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def _weight_source(weights, hdus) -> list[str] | None:
    """What the weight maps are, as ``run.json`` records them: paths, with ``[WHT]``."""
    if not weights:
        return None
    paths = [weights] if isinstance(weights, str | Path) else list(weights)
    return [str(p) + (f"[{h}]" if h else "") for p, h in zip(paths, hdus or [None] * len(paths),
                                                              strict=True)]


def _drizzle_weights(paths: list[Path], shape: tuple, n_planes: int):
    """The ``WHT`` extensions of drizzled products (one image per file, each with a ``WHT``
    of its shape), said in one warning, or (None, None)."""
    from astropy.io import fits

    if len(paths) != n_planes or any(FitsReader.is_gzip(p) for p in paths):
        return None, None
    for path in paths:
        try:
            # the header's problems were reported once, when the image was opened
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(path, lazy_load_hdus=True) as hdul:
                    if "WHT" not in hdul or tuple(hdul["WHT"].shape or ()) != shape:
                        return None, None
        except (OSError, ValueError, KeyError):
            return None, None
    names = ", ".join(p.name for p in paths)
    warnings.warn(f"{names}: using the WHT extension as the weight map (inverse variance, as "
                  "drizzle writes it with IVM or ERR weighting); --weights gives another",
                  DrizzleWeightWarning, stacklevel=3)
    return list(paths), ["WHT"] * len(paths)


def _weight_planes(weights, planes: list, chunks: int, hdus: list | None = None):
    """The weight maps, one per band, each the shape of the image, stacked lazily; ``hdus``
    names the HDU of each (default: the first with an image)."""
    import dask.array as da

    wpaths = [Path(weights)] if isinstance(weights, str | Path) else [Path(w) for w in weights]
    if len(wpaths) != len(planes):
        raise BadInputError(f"{len(wpaths)} weight maps for {len(planes)} bands")
    wplanes = []
    for path, hdu in zip(wpaths, hdus or [None] * len(wpaths), strict=True):
        p, _, _ = _reader_for(path).open(path, hdu=hdu, chunks=chunks)
        if len(p) != 1 or tuple(p[0].shape) != tuple(planes[0].shape):
            raise BadInputError(f"{path}: weight map shape {tuple(p[0].shape)} differs from "
                                f"the image's {tuple(planes[0].shape)}")
        wplanes.append(p[0])
    return da.stack(wplanes)


def check_weights(ds) -> None:
    """Weight maps must not be negative (computed once, block by block)."""
    negative = bool((ds["weight"].data < 0).any().compute())
    if negative:
        raise BadInputError("weight map has negative values (weights are inverse variances)")


def check_not_empty(ds) -> None:
    """Refuse an image without a single finite, non-zero pixel in some band."""
    import dask.array as da

    data = ds["image"].data
    good = da.isfinite(data) & (data != 0)
    per_band = good.any(axis=(1, 2)).compute()
    if not per_band.any():
        raise BadInputError("the image has no finite non-zero pixel (all NaN, inf or zero)")


def wcs_header_of(ds) -> str | None:
    return ds.attrs.get("wcs_header")


def pixel_to_world(ds, x, y) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (degrees) of 0-based pixel positions; NaN without a WCS."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    header = wcs_header_of(ds)
    if not header:
        return np.full(x.shape, np.nan), np.full(y.shape, np.nan)
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(fits.Header.fromstring(header))
    ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, float), np.asarray(dec, float)


def convert(images, out, *, bands=None, weights=None, hdu=None, chunks: int = DEFAULT_CHUNK,
            progress: bool = True) -> Path:
    """Write FITS input as a chunked Zarr store, keeping WCS and band names; bounded memory."""
    out = Path(out)
    if out.exists():
        raise BadInputError(f"{out} exists; remove it first")
    ds = open_mosaic(images, bands=bands, weights=weights, hdu=hdu, chunks=chunks)
    attrs = {k: v for k, v in ds.attrs.items() if v is not None}
    ds = ds.assign_attrs(attrs)
    if ds.attrs.get("wcs_header") is None:
        ds.attrs.pop("wcs_header", None)
    tmp = out.with_name(f".{out.name}.tmp")
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            _to_zarr(ds, tmp)
    else:
        _to_zarr(ds, tmp)
    tmp.rename(out)
    return out


def _to_zarr(ds, path: Path) -> None:
    ds.to_zarr(path, mode="w", consolidated=False)
    consolidate(path)
