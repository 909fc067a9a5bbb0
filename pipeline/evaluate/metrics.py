"""How close generated images are to real ones: SWD, as in ProGAN.

SWD (sliced Wasserstein distance, Karras et al. 2018, "Progressive Growing of GANs") compares the
distributions of small 7x7 patches at each level of a Laplacian pyramid. Lower is better. It needs no
pretrained network, so it is what the pipeline can always compute. Things worth knowing:

* Each set's descriptors are normalised by that set's own per-channel mean and std (as in ProGAN), so
  SWD does not see a global colour cast or contrast change of the fakes; FID/KID do.
* Both sets must give the same number of descriptors (the distance sorts and compares them one to one).
  `swd` therefore subsamples the larger set, with the seed, down to the size of the smaller one.
* Reals and fakes use the same random patch positions (and directions) for a given seed: the positions
  do not depend on the pixels, so this adds no bias, makes `swd(x, x)` exactly 0, and makes two runs
  scored with the same seed differ by their images rather than by the draws.
* With few images the real-vs-real baseline is far from 0; compare runs only by margins above it.

FID and KID (on network features) are in pipeline.evaluate.fid.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import UserError

# ProGAN's settings: 128 patches of 7x7 per image and level, 4 repeats of 128 random directions.
PATCHES_PER_IMAGE = 128
PATCH = 7
REPEATS = 4
DIRECTIONS = 128
MIN_SHORT = 8    # a coarser level keeps at least this short side (7x7 patches, with room to place them)
_CHUNK = 64  # images turned into descriptors at a time, so memory does not grow with the pyramid

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
_KERNEL_5X5 = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0  # sums to 1


# ----------------------------------------------------------------------------------------------
# Laplacian pyramid


def _blur(x: torch.Tensor, gain: float) -> torch.Tensor:
    """5x5 binomial filter per channel, mirrored borders (d c b | a b c d | c b a, no edge repeat)."""
    c = x.shape[1]
    kernel = (_KERNEL_5X5 * gain).to(x).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur then keep every other pixel: [N,C,H,W] -> [N,C,ceil(H/2),ceil(W/2)]."""
    return _blur(x, 1.0)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Put the pixels on the even grid of a zero image twice the size, blur with gain 4 (three of
    every four pixels are zero, so 4 keeps the brightness), then crop to `size` (odd sizes)."""
    n, c, h, w = x.shape
    assert size[0] in (2 * h, 2 * h - 1) and size[1] in (2 * w, 2 * w - 1), (x.shape, size)
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, 4.0)[:, :, : size[0], : size[1]]


def level_sizes(height: int, width: int, min_res: int = 16) -> list[tuple[int, int]]:
    """Sizes of the pyramid levels, finest first: halve while the height stays >= min_res and the short
    side >= MIN_SHORT. An image already below that has one level, itself.

    The stop is on the height because levels are named by it, like the models' resolutions (a 32 x 16
    model's levels are "32" and "16"), and so a tall model gets as many levels as a square one of its
    height: for square images this is ProGAN's rule (down to 16 px) unchanged; for 1:2 images it stops
    where the short side would fall below 8 (16 x 8 is the coarsest), still room for 7x7 patches.
    """
    sizes = [(height, width)]
    while True:
        h, w = math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)
        if h < min_res or min(h, w) < MIN_SHORT:
            return sizes
        sizes.append((h, w))


def too_small_reason(height: int, width: int, patch: int = PATCH) -> str | None:
    """Why images of height x width cannot be scored by SWD (None when they can): the finest level is
    the image itself, the largest, so a patch that does not fit there fits nowhere."""
    if min(height, width) >= patch:
        return None
    return f"images of {height}x{width} px are too small for {patch}x{patch} SWD patches at any pyramid level"


def laplacian_pyramid(images: torch.Tensor, min_res: int = 16) -> list[torch.Tensor]:
    """Laplacian bands of float images [N,3,H,W] in [0,255], finest first; the last entry is the blurred
    residual at the coarsest size. Adding `pyr_up` of each coarser level rebuilds the image exactly."""
    assert images.ndim == 4, images.shape
    x = images if images.is_floating_point() else images.float()
    sizes = level_sizes(x.shape[2], x.shape[3], min_res)
    gaussians = [x]
    for _ in sizes[1:]:
        gaussians.append(pyr_down(gaussians[-1]))
    bands = [fine - pyr_up(coarse, fine.shape[2:]) for fine, coarse in zip(gaussians, gaussians[1:])]
    pyramid = bands + [gaussians[-1]]
    assert [tuple(p.shape[2:]) for p in pyramid] == sizes
    return pyramid


# ----------------------------------------------------------------------------------------------
# Patch descriptors and the sliced Wasserstein distance


def patch_descriptors(
    level: torch.Tensor, patches_per_image: int = PATCHES_PER_IMAGE, patch: int = PATCH, generator=None
) -> torch.Tensor:
    """Random patch x patch neighbourhoods of every image: [N,C,H,W] -> [N*patches_per_image, C*patch*patch].

    Draw order (a test repeats it): rows of the centres, then columns, each
    `torch.randint(r, size - r, (N * patches_per_image,), generator=generator)` with r = patch // 2,
    so every patch lies inside the image. Rows of the result go image by image; each row is laid
    out channel, y, x.
    """
    n, c, h, w = level.shape
    assert patch % 2 == 1, patch
    if too_small_reason(h, w, patch):
        raise UserError(too_small_reason(h, w, patch))
    r = patch // 2
    m = n * patches_per_image
    ys = torch.randint(r, h - r, (m,), generator=generator).to(level.device)
    xs = torch.randint(r, w - r, (m,), generator=generator).to(level.device)
    image = torch.arange(n, device=level.device).repeat_interleave(patches_per_image)
    offsets = torch.arange(-r, r + 1, device=level.device)
    rows = (ys[:, None] + offsets)[:, :, None]  # [M, p, 1]
    cols = (xs[:, None] + offsets)[:, None, :]  # [M, 1, p]
    patches = level.permute(0, 2, 3, 1)[image[:, None, None], rows, cols]  # [M, p, p, C]
    assert patches.shape == (m, patch, patch, c), patches.shape
    return patches.permute(0, 3, 1, 2).reshape(m, c * patch * patch)


def normalize_descriptors(desc: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Subtract each colour channel's mean and divide by its std, both over all descriptor pixels of
    the set (ProGAN's finalize_descriptors; population std). A flat set gets std 0: it is clamped so
    the result is 0 rather than NaN."""
    m, d = desc.shape
    per_channel = desc.reshape(m, channels, d // channels)
    mean = per_channel.mean(dim=(0, 2), keepdim=True)
    std = per_channel.std(dim=(0, 2), keepdim=True, correction=0).clamp_min(1e-8)
    return ((per_channel - mean) / std).reshape(m, d)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    # On CPU numpy's vectorised sort is about 10x faster than torch.sort, and sorting is most of
    # the cost of SWD; on a GPU torch.sort is fast.
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.detach().contiguous().numpy(), axis=1))
    return torch.sort(x, dim=1).values


def sliced_wasserstein(
    desc_a: torch.Tensor, desc_b: torch.Tensor, repeats: int = REPEATS, directions: int = DIRECTIONS, generator=None
) -> float:
    """Mean over `repeats` of: project both sets on `directions` random unit vectors, sort each
    projection, average |a - b| over descriptors and directions.

    Draw order (a test repeats it): per repeat, `torch.randn(D, directions, generator=generator)`
    (float32, CPU), each column then scaled to unit length.
    """
    assert desc_a.ndim == 2 and desc_a.shape == desc_b.shape, (desc_a.shape, desc_b.shape)
    total = 0.0
    for _ in range(repeats):
        dirs = torch.randn(desc_a.shape[1], directions, generator=generator)
        dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(desc_a)
        proj_a = _sort_rows(dirs.T @ desc_a.T)  # [directions, M]: one row per direction
        proj_b = _sort_rows(dirs.T @ desc_b.to(desc_a).T)
        total += float((proj_a - proj_b).abs().mean())
    return total / repeats


def _level_key(size: tuple[int, int]) -> str:
    # The height, square or tall: the keys of eval/metrics.json's swd_levels name levels as the stages
    # name models (train@32 of a 1:2 model draws 32 x 16, its levels are "32" and "16").
    return str(size[0])


def check_pixel_range(images, name: str) -> None:
    """Catch the two usual mistakes: float images in [0,1] or [-1,1] instead of [0,255]."""
    if images.dtype in (np.uint8, torch.uint8) or len(images) == 0:
        return
    lo, hi = float(images.min()), float(images.max())
    if lo < -0.5 or hi > 255.5 or hi <= 1.0:
        raise UserError(f"{name}: pixel values run from {lo:g} to {hi:g}; expected floats in [0, 255]")


def _image_chunks(images, name: str, device):
    """Float32 [n,3,H,W] tensors on `device`, _CHUNK images at a time. Numpy arrays are [N,H,W,3]
    (how images are stored), tensors [N,3,H,W] (how a generator returns them)."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[3] != 3:
            raise UserError(f"{name}: expected a numpy array [N,H,W,3], got shape {images.shape}")
        for i in range(0, len(images), _CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(images[i : i + _CHUNK]))
            yield chunk.permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)
    else:
        if images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"{name}: expected a tensor [N,3,H,W], got shape {tuple(images.shape)}")
        for i in range(0, len(images), _CHUNK):
            yield images[i : i + _CHUNK].to(device=device, dtype=torch.float32)


def _hw(images) -> tuple[int, int]:
    return tuple(images.shape[1:3]) if isinstance(images, np.ndarray) else tuple(images.shape[2:4])


def _pick(total: int, n: int, generator, images):
    """Indices of n of `total` images, drawn with `generator`, kept in order."""
    index = torch.randperm(total, generator=generator)[:n].sort().values
    return index.numpy() if isinstance(images, np.ndarray) else index.to(images.device)


def _set_descriptors(images, name: str, min_res: int, seed: int, device) -> list[torch.Tensor]:
    """Normalised descriptors of one image set, one [N*128, 147] tensor per pyramid level."""
    positions = torch.Generator().manual_seed(seed)
    per_level: list[list[torch.Tensor]] = []
    for chunk in _image_chunks(images, name, device):
        for i, level in enumerate(laplacian_pyramid(chunk, min_res)):
            if i == len(per_level):
                per_level.append([])
            per_level[i].append(patch_descriptors(level, generator=positions))
    return [normalize_descriptors(torch.cat(parts)) for parts in per_level]


def swd(reals, fakes, seed: int = 0, min_res: int = 16) -> dict:
    """SWD x 1000 per pyramid level and their mean: {"levels": {"64": x, "32": y, "16": z}, "swd": mean}.

    `reals`/`fakes`: uint8 numpy [N,H,W,3], or tensors [N,3,H,W] (uint8, or float in [0,255]); both
    of one size, square or not. Levels are keyed by their height (level_sizes says which there are:
    at 32 x 16, "32" and "16"); images smaller than `min_res` give one level at their own size, and
    images too small for 7x7 patches a UserError (too_small_reason: a caller can ask first). The
    larger set is subsampled (with `seed`) to the size of the smaller. Same inputs and seed give the
    same result. Memory: the descriptors take about 75 kB per image, level and set (float32), e.g.
    3.8 GB per set for 10k images at 256 px (half that for 1:2 images).

    Random streams (each a `torch.Generator` seeded as shown, so a test can rebuild the result from
    the public steps): patch positions `seed` (restarted for each set, so both sets share them),
    directions `seed + 1` (one generator across the levels, finest first), subsampling `seed + 2`.
    """
    if _hw(reals) != _hw(fakes):
        raise UserError(f"SWD needs reals and fakes of one size, got {_hw(reals)} and {_hw(fakes)}")
    n = min(len(reals), len(fakes))
    if n == 0:
        raise UserError("SWD needs at least one real and one fake image")
    check_pixel_range(reals, "reals")
    check_pixel_range(fakes, "fakes")
    picker = torch.Generator().manual_seed(seed + 2)
    if len(reals) > n:
        reals = reals[_pick(len(reals), n, picker, reals)]
    if len(fakes) > n:
        fakes = fakes[_pick(len(fakes), n, picker, fakes)]
    device = next((x.device for x in (fakes, reals) if isinstance(x, torch.Tensor)), torch.device("cpu"))

    desc_reals = _set_descriptors(reals, "reals", min_res, seed, device)
    desc_fakes = _set_descriptors(fakes, "fakes", min_res, seed, device)
    directions = torch.Generator().manual_seed(seed + 1)
    levels = {}
    for size, a, b in zip(level_sizes(*_hw(reals), min_res), desc_reals, desc_fakes):
        levels[_level_key(size)] = 1000.0 * sliced_wasserstein(a, b, generator=directions)
    return {"levels": levels, "swd": float(np.mean(list(levels.values())))}
