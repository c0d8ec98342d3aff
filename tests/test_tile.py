"""The tile grid: cores partition the mosaic exactly, windows cover cores, padding is masked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaic_pais.errors import BadInputError
from mosaic_pais.tile import blocks, make_grid, read_tile


def assert_partition(height, width, tile, margin):
    grid = make_grid(height, width, tile=tile, margin=margin)
    count = np.zeros((height, width), np.int32)
    for t in grid.tiles():
        y0, y1, x0, x1 = t.core
        count[y0:y1, x0:x1] += 1
        wy0, wy1, wx0, wx1 = t.window
        assert wy1 - wy0 == tile and wx1 - wx0 == tile
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
