"""The tile grid: overlapping 256×256 tiles whose cores partition the mosaic exactly.

With tile size ``T`` and margin ``m`` the stride is ``s = T − 2m``. Tile row ``i`` reads mosaic
rows ``[i·s − m, i·s − m + T)`` and owns the core rows ``[i·s, (i+1)·s)``; the last row's core
is extended to the mosaic edge. When the remainder beyond the last full core is no larger than
the margin it joins that core (the window still covers it, because beyond it there is only the
mosaic edge), otherwise it gets a row of its own. Columns work the same way. A mosaic smaller
than one tile is one tile whose core is the whole mosaic. Pixels of a window outside the mosaic
are padding: zeros marked invalid, never mirrored (mirroring would invent sources).

The margin is what the network needs to see around a core for its prediction there not to
depend on where the tile ends, and at least what the peak finder needs (half its box):
:func:`margin_for` states the rule; 32 px (the default) is ~4× the 7–8 px PSF-convolved size of
typical faint galaxies at 0.06″/px, and the tests show 32 → 48 changes little.

Windows lie on the network's lattice (``align``, its total downsampling: 32 px for five
stride-2 levels). Such a network is not shift-equivariant: the same pixels read at another
phase of its lattice give a centre map that differs by ~0.03 at the peaks (at the same phase,
~0.004; docs/benchmarks.md), enough to move sources across the detection threshold whenever the
grid moves. So the stride is a multiple of ``align`` and each window reaches ``m`` rounded up to
a multiple of ``align`` beyond its core: a pixel is then always read at the same phase, whatever
the margin. For the default (256, 32) nothing changes; margin 48 reads 288² windows (64 px of
context on each side) at stride 160. (The other half of a steady grid is one attention context
for the whole mosaic, :func:`mosaic_pais.runtime.infer.mosaic_contexts`.)

Tiles are grouped into rectangular blocks (:func:`blocks`), the unit of one Dask task; block
cores are aligned on multiples of ``tiles_per_block·s``, which is the PCR store's chunk size,
so blocks never write the same chunk.
The network reads square groups of tiles as one window, the union of their windows
(:func:`network_windows`): the margins that neighbouring tiles share are then computed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mosaic_pais.errors import BadInputError

__all__ = [
    "margin_for",
    "Tile",
    "TileGrid",
    "DEFAULT_TILES_PER_BLOCK",
    "DEFAULT_TILES_PER_WINDOW",
    "make_grid",
    "NetworkWindow",
    "Block",
    "network_windows",
    "window_tiles",
    "blocks",
    "read_tile",
    "read_window",
    "WindowReader",
    "sample_windows",
]


def margin_for(receptive_radius: int, peak_window: int) -> int:
    """Smallest sensible margin: the network's effective context and the peak box half-width.

    Parameters
    ----------
    receptive_radius : int
        Radius (px) beyond which pixels hardly change the network's output at a pixel. The
        encoder's nominal receptive field is much larger (and fast attention is global within
        a tile), but its effective weight falls off quickly; it is measured by how the
        catalogue changes with the margin (docs/benchmarks.md).
    peak_window : int
        The decoder's peak-finding box.

    Examples
    --------
    >>> margin_for(24, 7)
    24
    """
    return int(max(receptive_radius, peak_window // 2 + 1))


def _axis_rows(length: int, stride: int, lead: int) -> int:
    n = max(1, -(-length // stride))
    if n > 1 and length - (n - 1) * stride <= lead:
        n -= 1  # the remainder is within the last window's margin: extend that core instead
    return n


@dataclass(frozen=True)
class Tile:
    """One tile: ``window`` and ``core`` as (y0, y1, x0, x1) in mosaic pixels."""

    index: tuple[int, int]
    window: tuple[int, int, int, int]
    core: tuple[int, int, int, int]

    @property
    def core_in_tile(self) -> tuple[slice, slice]:
        """The core as slices of the tile's own array."""
        y0, y1, x0, x1 = self.core
        return (slice(y0 - self.window[0], y1 - self.window[0]),
                slice(x0 - self.window[2], x1 - self.window[2]))


@dataclass(frozen=True)
class TileGrid:
    """Tiles over a ``height`` × ``width`` mosaic. Build it with :func:`make_grid`.

    ``stride`` is the core side, ``lead`` the context each window reads beyond its core (the
    margin, rounded up to the network's lattice) and ``tile`` the window side.
    """

    height: int
    width: int
    stride: int
    lead: int
    rows: int
    cols: int

    @property
    def tile(self) -> int:
        return self.stride + 2 * self.lead

    @property
    def n_tiles(self) -> int:
        return self.rows * self.cols

    def _span(self, i: int, n: int, length: int) -> tuple[int, int, int, int]:
        s, m = self.stride, self.lead
        core0 = i * s
        core1 = length if i == n - 1 else (i + 1) * s
        return core0 - m, core0 - m + self.tile, core0, core1

    def tile_at(self, row: int, col: int) -> Tile:
        wy0, wy1, cy0, cy1 = self._span(row, self.rows, self.height)
        wx0, wx1, cx0, cx1 = self._span(col, self.cols, self.width)
        return Tile((row, col), (wy0, wy1, wx0, wx1), (cy0, cy1, cx0, cx1))

    def tiles(self) -> Iterator[Tile]:
        for row in range(self.rows):
            for col in range(self.cols):
                yield self.tile_at(row, col)

    def core_of(self, row: int, col: int) -> tuple[int, int, int, int]:
        return self.tile_at(row, col).core

    def owner(self, y, x) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of the tile whose core holds mosaic pixel(s) (y, x)."""
        y = np.asarray(y, dtype=np.int64)
        x = np.asarray(x, dtype=np.int64)
        return (np.minimum(y // self.stride, self.rows - 1),
                np.minimum(x // self.stride, self.cols - 1))


#: The run's tile size and margin unless told otherwise: cores of 192² inside 256² windows.
DEFAULT_TILE, DEFAULT_MARGIN = 256, 32
#: tiles per side of a block, one Dask task (:func:`blocks`)
DEFAULT_TILES_PER_BLOCK = 8
#: 8 × 8 tiles of 256² (a default block) are one 1600² window, which costs the network 0.6 of
#: what the 64 tiles cost apart (docs/architecture.md); 4 (832² windows) costs a little more
#: time and ~1 GB less memory over two workers (docs/architecture.md)
DEFAULT_TILES_PER_WINDOW = 8


def make_grid(height: int, width: int, tile: int = DEFAULT_TILE, margin: int = DEFAULT_MARGIN,
              align: int = 1) -> TileGrid:
    """The tile grid of a mosaic.

    Parameters
    ----------
    height, width : int
        The mosaic's shape.
    tile, margin : int
        Window side and the context it gives its core on each side: stride ``tile − 2·margin``.
    align : int
        Windows start on multiples of this (the network's lattice,
        :func:`mosaic_pais.nn.model.input_alignment`): the stride is rounded down and the margin up
        to multiples of it, so windows grow where the two do not fit ``tile``.

    Examples
    --------
    >>> g = make_grid(1000, 700)
    >>> g.stride, g.rows, g.cols
    (192, 6, 4)
    >>> g.tile_at(5, 3).core  # the last row and column end at the mosaic edge
    (960, 1000, 576, 700)
    >>> make_grid(1010, 700).rows  # 50 px beyond the 5th core: more than the margin
    6
    >>> make_grid(984, 700).rows  # 24 px beyond the 5th core fit in its margin
    5
    >>> make_grid(100, 80).tile_at(0, 0).core  # smaller than a tile: one tile, whole mosaic
    (0, 100, 0, 80)

    On the network's 32-px lattice margin 48 reads 64 px around cores of 160:

    >>> g = make_grid(1000, 700, margin=48, align=32)
    >>> g.stride, g.tile, g.tile_at(1, 1).window
    (160, 288, (96, 384, 96, 384))
    """
    if height < 1 or width < 1:
        raise BadInputError(f"the mosaic is empty ({height}×{width} pixels)")
    if align < 1:  # the network's lattice, never the user's to set
        raise ValueError(f"tile alignment {align} must be at least 1 px")
    stride = tile - 2 * margin
    stride -= stride % align
    if tile < 1 or margin < 0 or stride < 1:
        raise BadInputError(f"tile {tile} with margin {margin} leaves no core")
    lead = -(-margin // align) * align
    return TileGrid(height, width, stride, lead, _axis_rows(height, stride, lead),
                    _axis_rows(width, stride, lead))


@dataclass(frozen=True)
class NetworkWindow:
    """What the network reads in one go: the union of the windows of a square group of tiles
    (:func:`network_windows`), and the part of a block's core it predicts."""

    window: tuple[int, int, int, int]
    core: tuple[int, int, int, int]


@dataclass(frozen=True)
class Block:
    """A rectangle of tiles: one task. ``core`` is the union of their cores, ``networks`` the
    windows the network reads for them and ``window`` the union of those (what the task
    reads)."""

    index: tuple[int, int]
    tiles: tuple[Tile, ...]
    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    networks: tuple[NetworkWindow, ...]


def _union(first, last) -> tuple[int, int, int, int]:
    return first[0], last[1], first[2], last[3]


def _intersection(a, b) -> tuple[int, int, int, int]:
    return max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])


def network_windows(grid: TileGrid, rows: range, cols: range,
                    tiles_per_window: int = 1) -> tuple[NetworkWindow, ...]:
    """The network windows that predict the cores of tiles ``rows`` × ``cols``.

    Tiles are grouped ``tiles_per_window`` × ``tiles_per_window`` from the grid's origin,
    whatever the blocks, and a group is read as one window, the union of its tiles' windows.
    The network is convolutional and every window shares the mosaic's attention context, so
    a group's window gives each of its cores what that tile's own window gives, without
    computing the overlapping margins again, and without the tile's own borders: neighbouring
    cores now see each other's pixels, as they are. Groups are anchored on the grid, not on
    the blocks, so that the catalogue does not depend on the block size; a group that a block
    only partly holds is still read whole, and only its part of the block's core is kept.

    >>> g = make_grid(1000, 700, align=32)
    >>> [(w.window, w.core) for w in network_windows(g, range(0, 2), range(0, 2), 2)]
    [((-32, 416, -32, 416), (0, 384, 0, 384))]
    >>> [w.core for w in network_windows(g, range(1, 3), range(0, 1), 2)]
    [(192, 384, 0, 192), (384, 576, 0, 192)]
    >>> network_windows(g, range(0, 1), range(0, 1))[0].window == g.tile_at(0, 0).window
    True
    """
    if tiles_per_window < 1:
        raise BadInputError(f"tiles per network window must be at least 1 "
                            f"(got {tiles_per_window})")
    n = tiles_per_window
    wanted = _union(grid.tile_at(rows[0], cols[0]).core, grid.tile_at(rows[-1], cols[-1]).core)
    out = []
    for gr in range(rows[0] // n, rows[-1] // n + 1):
        for gc in range(cols[0] // n, cols[-1] // n + 1):
            first = grid.tile_at(gr * n, gc * n)
            last = grid.tile_at(min(gr * n + n, grid.rows) - 1, min(gc * n + n, grid.cols) - 1)
            out.append(NetworkWindow(_union(first.window, last.window),
                                     _intersection(_union(first.core, last.core), wanted)))
    return tuple(out)


def window_tiles(tiles_per_window: int, tiles_per_block: int) -> int:
    """Tiles per side of the network windows a run reads: the largest divisor of
    ``tiles_per_block`` that is not above ``tiles_per_window``, so that no window spans two
    blocks (a block would otherwise compute a whole window to keep a part of it, and smaller
    blocks, asked for to save memory, would cost more memory and time, not less).

    >>> window_tiles(8, 8), window_tiles(8, 3), window_tiles(8, 12), window_tiles(4, 1)
    (8, 3, 6, 1)
    """
    if tiles_per_window < 1 or tiles_per_block < 1:
        raise BadInputError(f"tiles per window ({tiles_per_window}) and per block "
                            f"({tiles_per_block}) must be at least 1")
    return max(d for d in range(1, min(tiles_per_window, tiles_per_block) + 1)
               if tiles_per_block % d == 0)


def blocks(grid: TileGrid, tiles_per_block: tuple[int, int] = (8, 8),
           tiles_per_window: int = 1) -> list[Block]:
    """Group the grid's tiles into blocks of ``tiles_per_block`` (rows, cols) tiles, each
    predicted through the network windows of :func:`network_windows`."""
    br, bc = tiles_per_block
    out = []
    for i, r0 in enumerate(range(0, grid.rows, br)):
        for j, c0 in enumerate(range(0, grid.cols, bc)):
            rows, cols = range(r0, min(r0 + br, grid.rows)), range(c0, min(c0 + bc, grid.cols))
            tiles = tuple(grid.tile_at(r, c) for r in rows for c in cols)
            networks = network_windows(grid, rows, cols, tiles_per_window)
            # groups come row by row: the first window is the top left, the last the bottom right
            out.append(Block((i, j), tiles, _union(tiles[0].core, tiles[-1].core),
                             _union(networks[0].window, networks[-1].window), networks))
    return out


def read_tile(image, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """A tile's pixels (b, T, T) float32 — zeros outside the mosaic — and its validity mask."""
    return read_window(image, tile.window)


def read_window(image, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a (y0, y1, x0, x1) window that may extend beyond the mosaic, and validity.

    ``image`` is a (band, y, x) numpy or dask array; only the overlap is read (dask arrays
    with the synchronous scheduler: this runs inside a task). Outside the mosaic and at
    non-finite pixels the values are 0 and the mask is False.
    """
    n_band, h, w = image.shape
    y0, y1, x0, x1 = window
    out = np.zeros((n_band, y1 - y0, x1 - x0), np.float32)
    valid = np.zeros((y1 - y0, x1 - x0), bool)
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if sy0 < sy1 and sx0 < sx1:
        part = image[:, sy0:sy1, sx0:sx1]
        if hasattr(part, "compute"):
            part = part.compute(scheduler="synchronous")
        part = np.asarray(part, np.float32)
        finite = np.all(np.isfinite(part), axis=0)
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = np.where(finite, part, 0.0)
        valid[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = finite
    return out, valid


class WindowReader:
    """A (band, y, x) array — numpy or dask — carried into tasks and read window by window.

    Passing a dask array itself to a task would make the scheduler compute all of it first;
    wrapped, it is only read where a task asks (:func:`read_window`). With a ``sky`` map
    (:class:`mosaic_pais.runtime.background.SkyMap`) every window is read sky-subtracted, so that
    inference and measurements see the same pixels.
    """

    def __init__(self, array, sky=None):
        self.array = array
        self.shape = tuple(array.shape)
        self.sky = sky

    def read(self, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The window (zeros outside the array and at non-finite pixels) and its validity."""
        pixels, valid = read_window(self.array, window)
        if self.sky is not None:
            pixels -= np.where(valid, self.sky.window(window), 0.0)
        return pixels, valid


def sample_windows(shape: tuple[int, ...], n_windows: int, size: int, seed: int = 0
                   ) -> Iterator[tuple[int, int, int, int]]:
    """``n_windows`` windows (y0, y1, x0, x1) of ``size`` px (at most the image's sides) at
    random places over an image whose last two axes are ``shape[-2:]``: where robust
    statistics (noise, weights) are sampled without reading the whole mosaic."""
    h, w = shape[-2:]
    rng = np.random.default_rng(seed)
    size_y, size_x = min(size, h), min(size, w)
    for _ in range(n_windows):
        y0 = int(rng.integers(0, h - size_y + 1))
        x0 = int(rng.integers(0, w - size_x + 1))
        yield y0, y0 + size_y, x0, x0 + size_x
