"""Tests for pipeline.evaluate.metrics: SWD against a numpy reference and on images whose quality we control,
at aspect 1 and on tall (1:2) images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import UserError
from pipeline.evaluate import metrics


def blob_images(n: int, size: int, seed: int, width: int | None = None) -> np.ndarray:
    """Structured test images, uint8 [n,size,width,3] (width: size unless given): a colour gradient with
    2-5 colour blobs, some soft, some hard-edged (so every pyramid band has content, as in drawn art).
    Coordinates run in units of the height, so a tall set's blobs are round, not squashed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:width or size] / size
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    ramp = ((xx * np.cos(angle) + yy * np.sin(angle)) - (np.cos(angle) + np.sin(angle) - 1) / 2)[..., None]
    start, end = rng.uniform(0, 255, (2, n, 1, 1, 3))
    images = start + (end - start) * ramp.clip(0, 1)
    for k in range(5):
        present = (rng.uniform(size=(n, 1, 1, 1)) < 0.6) | (k < 2)
        cy, cx = rng.uniform(0, 1, (2, n, 1, 1))
        radius = rng.uniform(0.05, 0.25, (n, 1, 1))
        dist2 = (yy - cy) ** 2 + (xx - cx) ** 2
        hard = rng.uniform(size=(n, 1, 1)) < 0.5
        weight = np.where(hard, dist2 < radius**2, np.exp(-dist2 / (2 * radius**2)))[..., None] * present
        images = images * (1 - weight) + rng.uniform(0, 255, (n, 1, 1, 3)) * weight
    return images.clip(0, 255).round().astype(np.uint8)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of uint8 [N,H,W,3] with mirrored borders (numpy only)."""
    r = int(3 * sigma)
    taps = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    out = images.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        out = sum(t * np.take(padded, range(i, i + images.shape[axis]), axis=axis) for i, t in enumerate(taps))
    return out.round().astype(np.uint8)


def add_noise(images: np.ndarray, std: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, std, images.shape)
    return (images + noise).clip(0, 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Numpy reference for SWD (ProGAN's recipe written out directly)

KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


def np_blur(x: np.ndarray, gain: float) -> np.ndarray:
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    out = np.zeros_like(x)
    for dy in range(5):
        for dx in range(5):
            out += gain * KERNEL[dy, dx] * padded[:, :, dy : dy + h, dx : dx + w]
    return out


def np_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    gauss = [x]
    for _ in range(levels - 1):
        gauss.append(np_blur(gauss[-1], 1.0)[:, :, ::2, ::2])
    out = []
    for fine, coarse in zip(gauss, gauss[1:]):
        up = np.zeros_like(fine)
        up[:, :, ::2, ::2] = coarse
        out.append(fine - np_blur(up, 4.0))
    return out + [gauss[-1]]


def np_descriptors(level: np.ndarray, ys: np.ndarray, xs: np.ndarray, per_image: int) -> np.ndarray:
    rows = []
    for i, (y, x) in enumerate(zip(ys, xs)):
        rows.append(level[i // per_image, :, y - 3 : y + 4, x - 3 : x + 4].reshape(-1))
    desc = np.stack(rows).reshape(len(rows), 3, 49)
    desc = (desc - desc.mean(axis=(0, 2), keepdims=True)) / desc.std(axis=(0, 2), keepdims=True)
    return desc.reshape(len(rows), -1)


def np_sliced_wasserstein(a: np.ndarray, b: np.ndarray, dirs_per_repeat: list[np.ndarray]) -> float:
    results = []
    for dirs in dirs_per_repeat:
        dirs = dirs / np.sqrt((dirs**2).sum(axis=0, keepdims=True))
        results.append(np.abs(np.sort(a @ dirs, axis=0) - np.sort(b @ dirs, axis=0)).mean())
    return float(np.mean(results))


def test_swd_steps_match_numpy_reference():
    rng = np.random.default_rng(0)
    images_a = rng.uniform(0, 255, (3, 3, 32, 32))
    images_b = blob_images(3, 32, seed=1).transpose(0, 3, 1, 2).astype(np.float64)
    per_image = 8

    got, want = [], []
    for images in (images_a, images_b):
        pyramid = metrics.laplacian_pyramid(torch.from_numpy(images))
        ref_pyramid = np_pyramid(images, levels=2)
        assert len(pyramid) == 2
        for level, ref in zip(pyramid, ref_pyramid):
            np.testing.assert_allclose(level.numpy(), ref, atol=1e-9)
        # The documented draw order: centre rows then columns, one randint call each.
        gen, ref_gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        desc = metrics.normalize_descriptors(metrics.patch_descriptors(pyramid[0], per_image, generator=gen))
        ys = torch.randint(3, 29, (3 * per_image,), generator=ref_gen).numpy()
        xs = torch.randint(3, 29, (3 * per_image,), generator=ref_gen).numpy()
        ref_desc = np_descriptors(ref_pyramid[0], ys, xs, per_image)
        np.testing.assert_allclose(desc.numpy(), ref_desc, atol=1e-9)
        got.append(desc)
        want.append(ref_desc)

    gen, ref_gen = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    dist = metrics.sliced_wasserstein(got[0], got[1], repeats=3, directions=16, generator=gen)
    dirs = [torch.randn(147, 16, generator=ref_gen).double().numpy() for _ in range(3)]
    assert dist == pytest.approx(np_sliced_wasserstein(want[0], want[1], dirs), rel=1e-6)
    assert dist > 0.1


def test_sliced_wasserstein_of_identical_sets_is_zero():
    desc = metrics.normalize_descriptors(torch.randn(512, 147) * 3 + 1)
    assert metrics.sliced_wasserstein(desc, desc.clone(), generator=torch.Generator().manual_seed(0)) == 0.0
    # ... and of a reordering of the same descriptors: sorting makes order irrelevant.
    assert metrics.sliced_wasserstein(desc, desc.flip(0)) == pytest.approx(0.0, abs=1e-6)


def test_normalize_descriptors_is_per_channel():
    desc = torch.randn(1000, 3, 49, dtype=torch.float64) * torch.tensor([1.0, 5.0, 20.0])[:, None] + 7
    out = metrics.normalize_descriptors(desc.reshape(1000, -1)).reshape(1000, 3, 49)
    np.testing.assert_allclose(out.mean(dim=(0, 2)).numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(dim=(0, 2), correction=0).numpy(), 1, atol=1e-12)
    flat = metrics.normalize_descriptors(torch.full((10, 147), 3.0))
    assert torch.equal(flat, torch.zeros(10, 147))


# ----------------------------------------------------------------------------------------------
# Laplacian pyramid


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = metrics.pyr_up(image, band.shape[2:]) + band
    return image


@pytest.mark.parametrize(
    "height,width,min_res,sizes",
    [
        (64, 64, 16, [(64, 64), (32, 32), (16, 16)]),
        (32, 32, 16, [(32, 32), (16, 16)]),
        (66, 34, 8, [(66, 34), (33, 17), (17, 9)]),  # odd sizes round up and crop back
        (12, 12, 16, [(12, 12)]),  # smaller than min_res: one level, the image itself
        # 1:2 images: down while the height is >= 16, i.e. the short side >= 8
        (32, 16, 16, [(32, 16), (16, 8)]),
        (64, 32, 16, [(64, 32), (32, 16), (16, 8)]),
        (256, 128, 16, [(256, 128), (128, 64), (64, 32), (32, 16), (16, 8)]),
        (16, 8, 16, [(16, 8)]),
        (8, 4, 16, [(8, 4)]),  # one level, too small for 7x7 patches (too_small_reason)
        (32, 16, 8, [(32, 16), (16, 8)]),  # a lower min_res still keeps the short side >= 8
    ],
)
def test_pyramid_sizes_and_reconstruction(height, width, min_res, sizes):
    images = torch.rand(2, 3, height, width, dtype=torch.float64) * 255
    pyramid = metrics.laplacian_pyramid(images, min_res)
    assert [tuple(level.shape[2:]) for level in pyramid] == sizes
    assert metrics.level_sizes(height, width, min_res) == sizes
    torch.testing.assert_close(reconstruct(pyramid), images, rtol=0, atol=1e-9)


def test_pyramid_of_flat_image_has_empty_bands():
    images = torch.full((1, 3, 64, 64), 100.0)
    pyramid = metrics.laplacian_pyramid(images)
    for band in pyramid[:-1]:
        assert band.abs().max() < 1e-3
    assert torch.allclose(pyramid[-1], torch.full((1, 3, 16, 16), 100.0))


# ----------------------------------------------------------------------------------------------
# SWD on images


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return blob_images(1024, 32, seed=0)


def test_swd_of_a_set_with_itself_is_zero(pool):
    result = metrics.swd(pool[:64], pool[:64])
    assert result == {"levels": {"32": 0.0, "16": 0.0}, "swd": 0.0}


def test_swd_is_repeatable_and_accepts_all_layouts(pool):
    reals, fakes = pool[:40], pool[40:80]
    first = metrics.swd(reals, fakes, seed=3)
    assert metrics.swd(reals, fakes, seed=3) == first
    as_tensor = torch.from_numpy(fakes).permute(0, 3, 1, 2)
    assert metrics.swd(reals, as_tensor, seed=3)["swd"] == pytest.approx(first["swd"], rel=1e-5)
    assert metrics.swd(reals, as_tensor.float(), seed=3)["swd"] == pytest.approx(first["swd"], rel=1e-5)
    assert metrics.swd(reals, fakes, seed=4)["swd"] != first["swd"]


def test_swd_is_the_public_steps_chained(pool):
    # Up to 64 images are one chunk, so the documented random streams rebuild the result exactly.
    reals, fakes, seed = pool[:50], pool[50:100], 11
    want = {}
    per_set = []
    for images in (reals, fakes):
        pyramid = metrics.laplacian_pyramid(torch.from_numpy(images).permute(0, 3, 1, 2).float())
        positions = torch.Generator().manual_seed(seed)
        descriptors = [metrics.patch_descriptors(level, generator=positions) for level in pyramid]
        per_set.append([metrics.normalize_descriptors(d) for d in descriptors])
    directions = torch.Generator().manual_seed(seed + 1)
    for key, a, b in zip(("32", "16"), *per_set):
        want[key] = 1000 * metrics.sliced_wasserstein(a, b, generator=directions)
    got = metrics.swd(reals, fakes, seed=seed)
    assert got["levels"] == pytest.approx(want, rel=1e-9)
    assert got["swd"] == pytest.approx(np.mean(list(want.values())), rel=1e-9)


def test_swd_subsamples_the_larger_set(pool):
    for reals, fakes in ((pool[:100], pool[100:130]), (pool[:30], pool[30:130])):
        result = metrics.swd(reals, fakes)
        assert set(result["levels"]) == {"32", "16"} and result["swd"] > 0


def test_swd_baseline_shrinks_with_more_images(pool):
    small = np.mean([metrics.swd(pool[i : i + 16], pool[i + 16 : i + 32])["swd"] for i in (0, 32, 64)])
    large = metrics.swd(pool[:256], pool[256:512])["swd"]
    assert large < small / 2, (small, large)


def test_swd_grows_with_blur_and_noise(pool):
    reals, others = pool[:128], pool[128:256]  # fine-level baseline ~25; mild blur or noise ~60-140
    baseline = metrics.swd(reals, others)
    blurred = [metrics.swd(reals, gaussian_blur(others, s)) for s in (0.7, 1.5)]
    noisy = [metrics.swd(reals, add_noise(others, s, seed=1)) for s in (4, 16)]
    for worse, worst in (blurred, noisy):
        # Blur and pixel noise live in the finest band; the mean over levels follows.
        fine = [r["levels"]["32"] for r in (baseline, worse, worst)]
        assert 2 * fine[0] < fine[1] < fine[2], fine
        assert baseline["swd"] < worse["swd"] < worst["swd"]


def test_swd_rejects_bad_inputs(pool):
    with pytest.raises(UserError, match="one size"):
        metrics.swd(pool[:4], blob_images(4, 64, seed=0))
    with pytest.raises(UserError, match=r"\[0, 255\]"):
        metrics.swd(pool[:4], torch.from_numpy(pool[:4]).permute(0, 3, 1, 2) / 255.0)
    with pytest.raises(UserError, match="too small"):
        metrics.swd(pool[:4, :6, :6], pool[4:8, :6, :6])
    with pytest.raises(UserError, match=r"\[N,H,W,3\]"):
        metrics.swd(pool[:4].transpose(0, 3, 1, 2), pool[:4].transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------------------------
# Square figures pinned, and tall (1:2) images


def test_square_swd_figures_are_those_of_before_tall_images():
    """The values the square code gave before the pyramid learned 1:2 images (the same calls on the code
    of commit cb1d99d): square levels, keys and figures do not move."""
    a, b, c = blob_images(48, 32, seed=7), blob_images(16, 64, seed=8), blob_images(8, 8, seed=9)
    cases = [
        (metrics.swd(a[:24], a[24:], seed=3), {"32": 41.97587072849274, "16": 126.12630985677242}),
        (metrics.swd(b[:8], b[8:], seed=5), {"64": 83.05290155112743, "32": 87.76976354420185,
                                             "16": 253.52806597948074}),
        (metrics.swd(c[:4], c[4:], seed=0), {"8": 588.8160616159439}),
    ]
    for got, levels in cases:
        assert list(got["levels"]) == list(levels)
        assert got["levels"] == pytest.approx(levels, rel=1e-6)
        assert got["swd"] == pytest.approx(np.mean(list(levels.values())), rel=1e-6)


@pytest.fixture(scope="module")
def tall_pool() -> np.ndarray:
    return blob_images(256, 32, seed=4, width=16)


def test_tall_swd_steps_match_numpy_reference():
    """The pyramid and the descriptors of 32 x 16 images against the numpy recipe: the columns' patch
    centres run over the width, the rows' over the height."""
    images = blob_images(3, 32, seed=5, width=16).transpose(0, 3, 1, 2).astype(np.float64)
    pyramid = metrics.laplacian_pyramid(torch.from_numpy(images))
    ref = np_pyramid(images, levels=2)
    assert [tuple(level.shape[2:]) for level in pyramid] == [(32, 16), (16, 8)]
    for level, want in zip(pyramid, ref):
        np.testing.assert_allclose(level.numpy(), want, atol=1e-9)
    for level, want in zip(pyramid, ref):
        h, w = level.shape[2:]
        gen, ref_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
        desc = metrics.normalize_descriptors(metrics.patch_descriptors(level, 8, generator=gen))
        ys = torch.randint(3, h - 3, (3 * 8,), generator=ref_gen).numpy()
        xs = torch.randint(3, w - 3, (3 * 8,), generator=ref_gen).numpy()
        np.testing.assert_allclose(desc.numpy(), np_descriptors(want, ys, xs, 8), atol=1e-9)


def test_tall_swd_is_keyed_by_height_and_is_the_public_steps_chained(tall_pool):
    reals, fakes, seed = tall_pool[:40], tall_pool[40:80], 6
    per_set = []
    for images in (reals, fakes):
        pyramid = metrics.laplacian_pyramid(torch.from_numpy(images).permute(0, 3, 1, 2).float())
        positions = torch.Generator().manual_seed(seed)
        per_set.append([metrics.normalize_descriptors(metrics.patch_descriptors(level, generator=positions))
                        for level in pyramid])
    directions = torch.Generator().manual_seed(seed + 1)
    want = {key: 1000 * metrics.sliced_wasserstein(a, b, generator=directions)
            for key, a, b in zip(("32", "16"), *per_set)}
    got = metrics.swd(reals, fakes, seed=seed)
    assert list(got["levels"]) == ["32", "16"]          # heights, as the stages name a 32 x 16 model
    assert got["levels"] == pytest.approx(want, rel=1e-9) and got["swd"] > 0
    assert metrics.swd(reals, reals) == {"levels": {"32": 0.0, "16": 0.0}, "swd": 0.0}


def test_tall_swd_grows_with_blur_and_noise(tall_pool):
    reals, others = tall_pool[:128], tall_pool[128:256]
    baseline = metrics.swd(reals, others)
    for worse in (gaussian_blur(others, 1.0), add_noise(others, 12, seed=2)):
        score = metrics.swd(reals, worse)
        assert score["levels"]["32"] > 2 * baseline["levels"]["32"] and score["swd"] > baseline["swd"], (
            baseline, score)


def test_images_too_small_for_patches_say_so():
    assert metrics.too_small_reason(8, 4) == ("images of 8x4 px are too small for 7x7 SWD patches at any "
                                              "pyramid level")
    assert metrics.too_small_reason(8, 8) is None and metrics.too_small_reason(16, 8) is None
    tiny = blob_images(4, 8, seed=0, width=4)
    with pytest.raises(UserError, match="8x4 px are too small"):
        metrics.swd(tiny, tiny)
    # 16 x 8: one level, the image itself (7x7 patches fit)
    assert list(metrics.swd(blob_images(4, 16, seed=0, width=8), blob_images(4, 16, seed=1, width=8))["levels"]) == [
        "16"]

