"""blockN and hf (pipeline.evaluate.artefacts) against their definitions computed with loops here."""
from __future__ import annotations

import json
import math

import numpy as np

from pipeline.evaluate.artefacts import artefacts, block_ratio, high_frequency_share


def _block_loops(images: np.ndarray, period: int) -> float:
    grey = images.astype(np.float64).mean(axis=3)
    n, h, w = grey.shape
    on, off = [], []
    for i in range(1, w):                          # column boundary i: between columns i-1 and i
        v = sum(abs(grey[k, y, i] - grey[k, y, i - 1]) for k in range(n) for y in range(h)) / (n * h)
        (on if i % period == 0 else off).append(v)
    for j in range(1, h):
        v = sum(abs(grey[k, j, x] - grey[k, j - 1, x]) for k in range(n) for x in range(w)) / (n * w)
        (on if j % period == 0 else off).append(v)
    return sum(on) / len(on) / (sum(off) / len(off))


def _hf_loops(images: np.ndarray) -> float:
    grey = images.astype(np.float64).mean(axis=3)
    n, h, w = grey.shape
    high = total = 0.0
    for k in range(n):
        g = grey[k] - grey[k].mean()
        for fy in range(-h // 2, h // 2):
            for fx in range(-w // 2, w // 2):
                c = sum(g[y, x] * complex(math.cos(-2 * math.pi * (fy * y / h + fx * x / w)),
                                          math.sin(-2 * math.pi * (fy * y / h + fx * x / w)))
                        for y in range(h) for x in range(w))
                p = abs(c) ** 2
                total += p
                if math.hypot(fy / (h / 2), fx / (w / 2)) > 0.5:
                    high += p
    return high / total


def test_block_ratio_matches_its_definition():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 12, 10, 3), dtype=np.uint8)
    for period in (2, 4, 8):
        assert math.isclose(block_ratio(images, period), _block_loops(images, period), rel_tol=1e-12)


def test_tiles_score_high_and_smooth_images_near_one():
    rng = np.random.default_rng(1)
    tiles = np.kron(rng.integers(0, 250, (20, 8, 8, 3)), np.ones((1, 4, 4, 1)))      # 4-px tiles ...
    tiles = (tiles + rng.integers(0, 4, tiles.shape)).astype(np.uint8)               # ... a little noise
    assert block_ratio(tiles, 4) > 50
    smooth = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    assert abs(block_ratio(smooth, 4) - 1) < 0.1 and abs(block_ratio(smooth, 8) - 1) < 0.15


def test_high_frequency_share_matches_its_definition():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    assert math.isclose(high_frequency_share(images), _hf_loops(images), rel_tol=1e-9)
    flat = np.full((2, 8, 8, 3), 77, dtype=np.uint8)
    assert high_frequency_share(flat) == 0.0


def test_artefacts_in_chunks_equal_one_pass():
    from pipeline.evaluate import artefacts as module

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    whole = artefacts(images)
    old = module.CHUNK
    try:
        module.CHUNK = 3
        assert artefacts(images) == whole
    finally:
        module.CHUNK = old


def test_tall_images_match_the_definitions():
    """1:2 images (H = 2 W): the column and row boundaries, and the frequency radius, each on its own axis."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (2, 16, 8, 3), dtype=np.uint8)
    for period in (2, 4, 8):
        assert math.isclose(block_ratio(images, period), _block_loops(images, period), rel_tol=1e-12)
    assert math.isclose(high_frequency_share(images), _hf_loops(images), rel_tol=1e-9)


def test_tall_tiles_and_frequencies():
    rng = np.random.default_rng(5)
    tiles = np.kron(rng.integers(0, 250, (20, 8, 4, 3)), np.ones((1, 4, 4, 1)))      # 32 x 16, 4-px tiles
    tiles = (tiles + rng.integers(0, 4, tiles.shape)).astype(np.uint8)
    assert tiles.shape == (20, 32, 16, 3) and block_ratio(tiles, 4) > 50
    # A cosine across the 16 columns at 6 cycles sits at radius 6 / 8 (high); down the 32 rows at 6
    # cycles at 6 / 16 (low): the radius is normalised per axis, so the same count is high one way only.
    y, x = np.mgrid[0:32, 0:16]
    across = np.repeat((100 + 50 * np.cos(2 * np.pi * 6 * x / 16))[None, ..., None], 3, axis=3)
    down = np.repeat((100 + 50 * np.cos(2 * np.pi * 6 * y / 32))[None, ..., None], 3, axis=3)
    assert math.isclose(high_frequency_share(across), 1.0, rel_tol=1e-9)
    assert math.isclose(high_frequency_share(down), 0.0, abs_tol=1e-9)
    # both at once with amplitudes 50 and 100: the high share is 50^2 / (50^2 + 100^2)
    grey = 100 + 50 * np.cos(2 * np.pi * 6 * x / 16) + 100 * np.cos(2 * np.pi * 6 * y / 32)
    both = np.repeat(grey[None, ..., None], 3, axis=3)
    assert math.isclose(high_frequency_share(both), 0.2, rel_tol=1e-9)
    assert set(artefacts(tiles)) == {"block4", "block8", "hf"}


def test_figures_without_meaning_are_none_not_nan():
    """8-px images have no 8-px boundary: block8 is None (strict JSON), the others are numbers."""
    images = np.random.default_rng(0).integers(0, 255, (4, 8, 4, 3), dtype=np.uint8)
    figures = artefacts(images)
    assert figures["block8"] is None and isinstance(figures["block4"], float)
    json.dumps(figures, allow_nan=False)
