"""The tile grid: cores partition the mosaic exactly, windows cover cores, padding is masked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.tile import blocks, make_grid, read_tile


def assert_partition(height, width, tile, margin, align=1):
    grid = make_grid(height, width, tile=tile, margin=margin, align=align)
    count = np.zeros((height, width), np.int32)
    for t in grid.tiles():
        y0, y1, x0, x1 = t.core
        count[y0:y1, x0:x1] += 1
        wy0, wy1, wx0, wx1 = t.window
        assert wy1 - wy0 == grid.tile and wx1 - wx0 == grid.tile
        # on the lattice: every window starts at a multiple of the alignment
        assert wy0 % align == 0 and wx0 % align == 0 and grid.stride % align == 0
        # the core sits inside the window, with a full margin except at the mosaic edge
        assert wy0 <= y0 and y1 <= wy1 and wx0 <= x0 and x1 <= wx1
        assert y0 - wy0 >= margin or y0 == 0
        assert wy1 - y1 >= margin or y1 == height
        assert x0 - wx0 >= margin or x0 == 0
        assert wx1 - x1 >= margin or x1 == width
    assert np.all(count == 1)
    yy, xx = np.mgrid[0:height, 0:width]
    rows, cols = grid.owner(yy, xx)
    for t in grid.tiles():
        y0, y1, x0, x1 = t.core
        assert np.all(rows[y0:y1, x0:x1] == t.index[0])
        assert np.all(cols[y0:y1, x0:x1] == t.index[1])
    return grid


@pytest.mark.parametrize("shape", [(1, 1), (100, 300), (256, 256), (257, 1000), (1000, 1000)])
@pytest.mark.parametrize("tile,margin", [(256, 32), (256, 48), (128, 16)])
def test_cores_partition_the_mosaic(shape, tile, margin):
    assert_partition(*shape, tile, margin)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 900), st.integers(1, 900), st.sampled_from([(256, 32), (256, 48),
                                                                   (64, 8), (96, 40)]))
def test_partition_property(height, width, tm):
    assert_partition(height, width, *tm)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 900), st.integers(1, 900), st.sampled_from([(256, 32), (256, 48),
                                                                   (256, 40), (256, 0),
                                                                   (128, 16), (96, 8)]))
def test_aligned_partition_property(height, width, tm):
    assert_partition(height, width, *tm, align=32)


def test_alignment_keeps_the_default_grid_and_widens_odd_margins():
    """(256, 32) is already on the 32-px lattice; margin 48 keeps its 160-px cores and reads
    64 px of context around them, so both grids read every pixel at the same phase."""
    assert make_grid(1000, 900, align=32) == make_grid(1000, 900)
    grid = make_grid(4096, 4096, margin=48, align=32)
    assert (grid.stride, grid.lead, grid.tile) == (160, 64, 288)
    origins = {t.window[0] for t in grid.tiles()} | {t.window[0] for t in
                                                     make_grid(4096, 4096).tiles()}
    assert {o % 32 for o in origins} == {0}
    # a margin that does not fit: the stride shrinks to the lattice, the margin only grows
    grid = make_grid(1000, 1000, margin=40, align=32)
    assert (grid.stride, grid.lead) == (160, 64)


def test_blocks_group_tiles_and_align_cores():
    grid = make_grid(1000, 900, 256, 32)
    bl = blocks(grid, (2, 3))
    assert sum(len(b.tiles) for b in bl) == grid.n_tiles
    count = np.zeros((1000, 900), int)
    for b in bl:
        y0, y1, x0, x1 = b.core
        count[y0:y1, x0:x1] += 1
        assert y0 % (2 * grid.stride) == 0 and x0 % (3 * grid.stride) == 0
    assert np.all(count == 1)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 1500), st.integers(1, 1500), st.sampled_from([(256, 32), (256, 48)]),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 5))
def test_network_windows_cover_the_cores_whatever_the_blocks(height, width, tm, br, bc, n):
    """The network windows' cores partition each block's core (so the mosaic), each with the
    tiles' margin of context where the mosaic continues; a pixel is predicted by the same
    window whatever the block size, so the catalogue cannot depend on it."""
    grid = make_grid(height, width, *tm, align=32)
    window_of_tile = []
    for shape in ((br, bc), (1, 1)):
        count = np.zeros((height, width), int)
        window_of_tile.append({})
        for b in blocks(grid, shape, n):
            for w in b.networks:
                (wy0, wy1, wx0, wx1), (y0, y1, x0, x1) = w.window, w.core
                count[y0:y1, x0:x1] += 1
                assert wy0 % 32 == 0 and wx0 % 32 == 0
                assert (wy1 - wy0 - grid.tile) % grid.stride == 0  # a whole group of tiles
                assert wy0 <= y0 and y1 <= wy1 and wx0 <= x0 and x1 <= wx1
                assert y0 - wy0 >= grid.lead or y0 == 0
                assert wy1 - y1 >= grid.lead or y1 == height
                assert x0 - wx0 >= grid.lead or x0 == 0
                assert wx1 - x1 >= grid.lead or x1 == width
                # inside the block's core, and read by the block
                assert b.core[0] <= y0 and y1 <= b.core[1] and b.core[2] <= x0 and x1 <= b.core[3]
                assert b.window[0] <= wy0 and wy1 <= b.window[1]
                assert b.window[2] <= wx0 and wx1 <= b.window[3]
                for t in b.tiles:
                    if y0 <= t.core[0] < y1 and x0 <= t.core[2] < x1:
                        window_of_tile[-1][t.index] = w.window
        assert np.all(count == 1)
    assert window_of_tile[0] == window_of_tile[1]
    assert len(window_of_tile[0]) == grid.n_tiles


def test_one_tile_per_window_reads_the_tiles_windows():
    grid = make_grid(1000, 900, align=32)
    for b in blocks(grid, (2, 3)):
        assert [w.window for w in b.networks] == [t.window for t in b.tiles]
        assert [w.core for w in b.networks] == [t.core for t in b.tiles]
    with pytest.raises(BadInputError):
        blocks(grid, (2, 2), 0)


def test_read_tile_pads_and_masks():
    image = np.arange(2 * 50 * 60, dtype=np.float32).reshape(2, 50, 60)
    image[0, 10, 10] = np.nan
    grid = make_grid(50, 60, tile=64, margin=8)
    t = grid.tile_at(0, 0)
    data, valid = read_tile(image, t)
    assert data.shape == (2, 64, 64)
    assert not valid[:8].any() and not valid[:, :8].any()  # outside the mosaic: masked
    assert np.all(data[:, :8] == 0)  # zeros, not mirrored pixels
    assert not valid[18, 18] and np.all(data[:, 18, 18] == 0)  # NaN in a band: whole pixel
    expected = image[1, :50, :56].copy()
    expected[10, 10] = 0
    np.testing.assert_array_equal(data[1, 8:58, 8:64], expected)


def test_bad_grids():
    with pytest.raises(BadInputError):
        make_grid(0, 10)
    with pytest.raises(BadInputError):
        make_grid(10, 10, tile=64, margin=32)
    with pytest.raises(BadInputError):  # 16 px of core do not fit the 32-px lattice
        make_grid(10, 10, tile=64, margin=24, align=32)
