"""How close generated images are to real ones on network features: FID and KID.

FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) compare feature statistics from a network,
normally NVlabs' `inception-2015-12-05.pt` (TorchScript; it takes uint8 NCHW images and resizes them to
299 itself). It is never downloaded here: the user puts the file in place. `make_tiny_feature_net`
writes a small random-weight stand-in with the same calling convention, for tests and the sample config;
scores from it are only comparable with other scores from the same file.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import UserError
from pipeline.core.files import atomic_write
from pipeline.evaluate.metrics import check_pixel_range

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
    check_pixel_range(images, "images")
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


def pad_square(images, background=(255, 255, 255)) -> torch.Tensor:
    """Images [N,3,H,W] (0..255) -> [N,3,S,S], S = max(H, W): each image centred on `background`, where
    the training letterbox (pipeline.train.dataset) puts a picture (an odd margin's extra pixel goes
    right or below). Square images come back unchanged, as a tensor of their own dtype."""
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if x.ndim != 4 or x.shape[1] != 3:
        raise UserError(f"padding to square needs images [N,3,H,W], got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    side = max(h, w)
    if h == w:
        return x
    colour = torch.tensor([float(c) for c in background], dtype=torch.float32).to(x.device, x.dtype)
    out = colour.view(1, 3, 1, 1).expand(n, 3, side, side).clone()
    top, left = (side - h) // 2, (side - w) // 2
    out[:, :, top:top + h, left:left + w] = x
    return out


def fid_kid(
    net, reals_uint8, fakes_uint8, batch: int = 64, device="cpu", kid_subsets: int = 100,
    kid_subset_size: int = 1000, seed: int = 0, background=(255, 255, 255),
) -> dict:
    """{"fid": ..., "kid": ...} of two image sets [N,3,H,W] (0..255) through one feature net.
    FID is biased upwards with few images (it needs thousands to be comparable with papers); KID
    is unbiased but noisy.

    Images that are not square (a 1:2 model's) are first padded to square on `background` (the
    flatten background, as the training letterbox pads): Inception resizes whatever it gets to
    299 x 299, which would squash a tall character to half its width. Padded, a tall model is scored
    on the picture a square model of the same data draws, and its FID compares with theirs.
    """
    feat_r = extract_features(net, pad_square(reals_uint8, background), batch, device)
    feat_f = extract_features(net, pad_square(fakes_uint8, background), batch, device)
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
