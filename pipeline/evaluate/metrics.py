"""How close generated images are to real ones: SWD (as in ProGAN), FID and KID (on network features).

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

FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) compare feature statistics from a network,
normally NVlabs' `inception-2015-12-05.pt` (TorchScript; it takes uint8 NCHW images and resizes them to
299 itself). It is never downloaded here: the user puts the file in place. `make_tiny_feature_net`
writes a small random-weight stand-in with the same calling convention, for tests and the sample config;
scores from it are only comparable with other scores from the same file.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import UserError
from pipeline.core.files import atomic_write

# ProGAN's settings: 128 patches of 7x7 per image and level, 4 repeats of 128 random directions.
PATCHES_PER_IMAGE = 128
PATCH = 7
REPEATS = 4
DIRECTIONS = 128
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
    """Sizes of the pyramid levels, finest first: halve while the short side stays >= min_res.
    An image already smaller than min_res has one level, itself."""
    sizes = [(height, width)]
    while min(math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)) >= min_res:
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    return sizes


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
    if h < patch or w < patch:
        raise UserError(f"images of {h}x{w} px are too small for {patch}x{patch} SWD patches")
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
    return str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"


def _check_pixel_range(images, name: str) -> None:
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
    of one size. Levels are keyed by their height ("HxW" when not square); images smaller than
    `min_res` give one level at their own size. The larger set is subsampled (with `seed`) to the
    size of the smaller. Same inputs and seed give the same result. Memory: the descriptors take
    about 75 kB per image, level and set (float32), e.g. 3.8 GB per set for 10k images at 256 px.

    Random streams (each a `torch.Generator` seeded as shown, so a test can rebuild the result from
    the public steps): patch positions `seed` (restarted for each set, so both sets share them),
    directions `seed + 1` (one generator across the levels, finest first), subsampling `seed + 2`.
    """
    if _hw(reals) != _hw(fakes):
        raise UserError(f"SWD needs reals and fakes of one size, got {_hw(reals)} and {_hw(fakes)}")
    n = min(len(reals), len(fakes))
    if n == 0:
        raise UserError("SWD needs at least one real and one fake image")
    _check_pixel_range(reals, "reals")
    _check_pixel_range(fakes, "fakes")
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


# ----------------------------------------------------------------------------------------------
# FID and KID on feature vectors


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition. Covariances
    from fewer samples than dimensions are singular, so rounding leaves tiny negative eigenvalues:
    they are set to 0 instead of giving NaN."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), in float64.

    S1 S2 is not symmetric, and taking its square root directly (scipy's sqrtm) can give complex
    rounding noise. With R = S1^(1/2), S1 S2 = R (R S2 R) R^-1 has the eigenvalues of the symmetric
    PSD matrix R S2 R, so tr((S1 S2)^(1/2)) = sum of sqrt(eigenvalues of R S2 R), with `eigh` only.
    The result is clamped at 0 (it can only fall below by rounding).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    assert mu1.shape == mu2.shape == (d,) and sigma1.shape == sigma2.shape == (d, d)
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt), 0.0)


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D,D] (unbiased, as np.cov) of features [N,D], in float64."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise UserError(f"feature statistics need at least 2 feature vectors, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def kid(feat_a, feat_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3, averaged
    over `subsets` random subsets (drawn without replacement) of `subset_size` vectors from each
    set; subset_size is clipped to the smaller set. Can be slightly negative when the sets match."""
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    assert a.ndim == b.ndim == 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise UserError(f"KID needs at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1.0) ** 3
        k_yy = (y @ y.T / d + 1.0) ** 3
        k_xy = (x @ y.T / d + 1.0) ** 3
        # Unbiased: the within-set sums leave out each vector's kernel with itself.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        total += within - 2.0 * k_xy.mean()
    return float(total / subsets)


# ----------------------------------------------------------------------------------------------
# Feature networks (TorchScript files)


@contextlib.contextmanager
def _quiet_torchscript():
    # Recent torch marks TorchScript deprecated, but NVlabs' Inception file is TorchScript and there
    # is no other way to run it; the warning would only confuse a user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


def load_feature_net(path, device="cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript feature network (e.g. inception-2015-12-05.pt) in eval mode. Never downloads."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"feature network {path} not found: put a TorchScript feature net there (NVlabs' "
            "inception-2015-12-05.pt for published FID/KID); it is never downloaded"
        )
    try:
        with _quiet_torchscript():
            net = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # torch raises RuntimeError for most bad files, others for odd ones
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise UserError(f"feature network {path} is not a TorchScript file ({reason})") from None
    return net.eval()


def _takes_return_features(net) -> bool:
    try:
        names = [arg.name for arg in net.forward.schema.arguments]
    except AttributeError:  # a plain nn.Module, not scripted
        import inspect

        names = list(inspect.signature(net.forward).parameters)
    return "return_features" in names


def extract_features(net, images_uint8_nchw, batch: int = 64, device="cpu") -> np.ndarray:
    """Features [N, D] (float64) of images [N,3,H,W] with values 0..255 (uint8, or integral floats).

    The net is called as NVlabs' Inception expects: `net(x, return_features=True)` with x uint8
    [n,3,H,W] on `device` (it resizes to 299 itself). A net whose forward has no `return_features`
    argument is called as `net(x)` and must return the features itself.
    """
    images = images_uint8_nchw
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if images.ndim != 4 or images.shape[1] != 3:
        raise UserError(f"feature extraction needs images [N,3,H,W], got shape {tuple(images.shape)}")
    _check_pixel_range(images, "images")
    with_flag = _takes_return_features(net)
    net.to(device)
    outputs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device)
            if x.dtype != torch.uint8:
                x = x.round().clamp(0, 255).to(torch.uint8)
            y = net(x, return_features=True) if with_flag else net(x)
            assert y.ndim == 2 and y.shape[0] == len(x), tuple(y.shape)
            outputs.append(y.detach().to("cpu", torch.float64))
    if not outputs:
        raise UserError("feature extraction got no images")
    return torch.cat(outputs).numpy()


def fid_kid(
    net, reals_uint8, fakes_uint8, batch: int = 64, device="cpu", kid_subsets: int = 100,
    kid_subset_size: int = 1000, seed: int = 0,
) -> dict:
    """{"fid": ..., "kid": ...} of two image sets [N,3,H,W] (0..255) through one feature net.
    FID is biased upwards with few images (it needs thousands to be comparable with papers); KID
    is unbiased but noisy."""
    feat_r = extract_features(net, reals_uint8, batch, device)
    feat_f = extract_features(net, fakes_uint8, batch, device)
    fid = frechet_distance(*feature_stats(feat_r), *feature_stats(feat_f))
    return {"fid": fid, "kid": kid(feat_r, feat_f, kid_subsets, kid_subset_size, seed)}


class _TinyFeatureNet(torch.nn.Module):
    """Three random strided convolutions and a global average: a cheap stand-in for Inception."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.conv3 = torch.nn.Conv2d(32, dim, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(dim, 10)

    def forward(self, x, return_features: bool = False):
        # Same contract as Inception's file: uint8-valued [N,3,H,W], resized inside to a fixed size.
        x = x.float() / 127.5 - 1.0
        x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        x = F.leaky_relu(self.conv1(x), 0.2)
        x = F.leaky_relu(self.conv2(x), 0.2)
        feats = F.leaky_relu(self.conv3(x), 0.2).mean(dim=(2, 3))
        return feats if return_features else self.head(feats)


def make_tiny_feature_net(path, dim: int = 64, seed: int = 0) -> Path:
    """Write a small random-weight TorchScript feature net to `path` (features of size `dim`).

    The stand-in for Inception in tests and the sample config: loaded and called exactly like
    inception-2015-12-05.pt. Its FID/KID are comparable only with scores from the same file.
    """
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        module = _TinyFeatureNet(dim).eval()
    with _quiet_torchscript():
        scripted = torch.jit.script(module)
        with atomic_write(path, "wb") as f:
            torch.jit.save(scripted, f)
    return Path(path)
