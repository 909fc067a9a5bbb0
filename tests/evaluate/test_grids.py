"""Grid layout (pipeline.evaluate.sampling.layout, pipeline.gan.grids) of square and tall (1:2) cells, on
image arrays whose every pixel is known, and the reals grid of the evaluate stage at both shapes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.core import params
from pipeline.evaluate import sampling
from pipeline.evaluate import stage as evaluate
from pipeline.gan.grids import grid, upscale


def images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def cells_of(img: Image.Image, rows: int, cols: int, factor: int, h: int, w: int) -> np.ndarray:
    """The grid's cells shrunk back by `factor`: [rows*cols, h, w, 3], row-major."""
    a = np.asarray(img)[::factor, ::factor]
    return a.reshape(rows, h, cols, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, h, w, 3)


@pytest.mark.parametrize("res,rows,cols,min_cell", [(8, 2, 3, 64), (16, 4, 8, 64), (32, 3, 2, 64), (64, 2, 2, 64),
                                                    (32, 1, 5, 100), (16, 2, 2, 16), (8, 3, 3, 1)])
def test_square_grids_are_pixel_identical_to_before(res, rows, cols, min_cell):
    """Square cells: the grid the code before tall cells made (grid, then upscale to min(rows, cols) *
    min_cell when min_cell > res), pixel for pixel."""
    x = images(rows * cols, res, res, seed=res + rows)
    before = grid(x, rows, cols)
    before = upscale(before, min_side=min(rows, cols) * min_cell) if min_cell > res else before
    got = sampling.layout(x, rows, cols, min_cell)
    assert got.size == before.size and np.array_equal(np.asarray(got), np.asarray(before))


@pytest.mark.parametrize("h,factor", [(8, 8), (16, 4), (32, 2), (64, 1), (128, 1)])
def test_tall_cells_keep_their_shape_and_reach_min_cell_in_height(h, factor):
    """1:2 images (h x h/2): each cell is the image enlarged by ceil(64 / h), so the cell is as tall as
    a square model's of the same res and half as wide: 32 x 16 images make 64 x 32 cells."""
    w, rows, cols = h // 2, 2, 3
    x = images(rows * cols, h, w, seed=h)
    img = sampling.layout(x, rows, cols, 64)
    assert img.size == (cols * w * factor, rows * h * factor)
    assert sampling.cell_size(h, 64) == h * factor
    assert np.array_equal(cells_of(img, rows, cols, factor, h, w), x)
    # every pixel became a factor x factor block
    a = np.asarray(img)
    assert np.array_equal(a, np.repeat(np.repeat(a[::factor, ::factor], factor, axis=0), factor, axis=1))


def test_missing_tall_cells_are_white():
    x = images(4, 16, 8)
    a = np.asarray(sampling.layout(x, 2, 3, 64))                 # 6 cells, 4 images; cells 64 x 32
    assert a.shape == (2 * 64, 3 * 32, 3)
    assert (a[64:, 32:] == 255).all() and not (a[64:, :32] == 255).all()


@pytest.mark.parametrize("h,w", [(16, 16), (16, 8)])
def test_reals_grid_of_square_and_tall_cells(h, w):
    ep = params.parse("eval", {"grid_rows": 2, "grid_cols": 3})
    reals = images(10, h, w, seed=1)
    img = evaluate.reals_grid(reals, ep)
    assert img.size == (3 * w * 4, 2 * h * 4)                    # 16 px tall: enlarged 4x to 64 px tall
    cells = cells_of(img, 2, 3, 4, h, w)
    found = [next(i for i, real in enumerate(reals) if np.array_equal(real, cell)) for cell in cells]
    assert found == sorted(set(found))                           # distinct reals, in order
