"""Tests for pipeline.evaluate.fid: FID/KID against direct computations, the feature-net loading path users
take for Inception, and the padding of tall images to square before it."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pipeline.core.errors import UserError
from pipeline.evaluate import fid
from tests.evaluate.test_metrics import blob_images


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return blob_images(400, 32, seed=0)


# ----------------------------------------------------------------------------------------------
# FID and KID on feature vectors


def random_stats(seed: int, dim: int = 12, n: int = 40):
    feats = np.random.default_rng(seed).normal(size=(n, dim)) @ np.random.default_rng(seed + 1).normal(size=(dim, dim))
    return fid.feature_stats(feats + seed)


def test_frechet_distance_matches_direct_computation():
    (mu1, s1), (mu2, s2) = random_stats(0), random_stats(1)
    # Independent route: eigenvalues of the non-symmetric product S1 S2 (real and >= 0 up to rounding).
    eig = np.linalg.eigvals(s1 @ s2)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.real.clip(min=0)).sum()
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    (mu1, s1), (mu2, s2) = random_stats(2), random_stats(3)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-7)


def test_frechet_distance_closed_form_and_singular_covariances():
    d = 6
    mu1, mu2 = np.zeros(d), np.full(d, 2.0)
    # Isotropic Gaussians: |mu1 - mu2|^2 + d (a - b)^2.
    got = fid.frechet_distance(mu1, 9 * np.eye(d), mu2, 4 * np.eye(d))
    assert got == pytest.approx(4 * d + d * (3 - 2) ** 2, rel=1e-12)
    # Fewer samples than dimensions: singular covariance, still finite and ~0 against itself.
    mu, sigma = fid.feature_stats(np.random.default_rng(0).normal(size=(5, 32)))
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    mu, sigma = random_stats(4, dim=64, n=500)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_kid_is_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 400, 16))
    same = fid.kid(a, a, subsets=20, subset_size=200)
    twin = fid.kid(a, b, subsets=20, subset_size=200)
    shifted = fid.kid(a, b + 0.5, subsets=20, subset_size=200)
    further = fid.kid(a, b + 1.0, subsets=20, subset_size=200)
    # A set against itself is slightly negative, not 0: the unbiased estimate leaves k(x, x) out of
    # the within-set sums but not out of the cross sum (about -2 mean(k(x, x)) / m).
    assert -0.1 < same < 0 and abs(twin) < 0.01, (same, twin)
    assert shifted > 20 * abs(same) and further > 4 * shifted, (same, shifted, further)


def test_kid_matches_direct_unbiased_mmd():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)) + 0.3
    # subset_size is clipped to 5; with one subset the draw is reproducible from the seed.
    pick = np.random.default_rng(7)
    x, y = a[pick.choice(6, 5, replace=False)], b[pick.choice(5, 5, replace=False)]
    k = lambda p, q: (sum(p * q) / 3 + 1) ** 3  # noqa: E731
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    across = sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert fid.kid(a, b, subsets=1, subset_size=100, seed=7) == pytest.approx(within - 2 * across, rel=1e-10)


# ----------------------------------------------------------------------------------------------
# Feature networks


class NoFlagNet(torch.nn.Module):
    def forward(self, x):
        return x.float().mean(dim=(2, 3))


def test_tiny_feature_net_round_trip(tmp_path, pool):
    path = fid.make_tiny_feature_net(tmp_path / "net.pt", dim=32, seed=0)
    net = fid.load_feature_net(path)
    images = pool[:20].transpose(0, 3, 1, 2)
    feats = fid.extract_features(net, images, batch=7)
    assert feats.shape == (20, 32) and feats.dtype == np.float64
    np.testing.assert_allclose(fid.extract_features(net, images, batch=64), feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fid.extract_features(net, torch.from_numpy(images).float()), feats, atol=1e-7)
    # Same seed, same weights.
    again = fid.load_feature_net(fid.make_tiny_feature_net(tmp_path / "again.pt", dim=32, seed=0))
    np.testing.assert_array_equal(fid.extract_features(again, images), fid.extract_features(net, images))


def test_fid_kid_through_tiny_net(tmp_path, pool):
    net = fid.load_feature_net(fid.make_tiny_feature_net(tmp_path / "net.pt"))
    reals = pool[:200].transpose(0, 3, 1, 2)
    same = fid.fid_kid(net, reals, reals, kid_subsets=10, kid_subset_size=100)
    twin = fid.fid_kid(net, reals, pool[200:400].transpose(0, 3, 1, 2), kid_subsets=10, kid_subset_size=100)
    tinted = (reals.astype(np.int16) + np.array([60, 0, -60])[:, None, None]).clip(0, 255).astype(np.uint8)
    shifted = fid.fid_kid(net, reals, tinted, kid_subsets=10, kid_subset_size=100)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and abs(same["kid"]) < 1e-4
    assert shifted["fid"] > 3 * twin["fid"] and shifted["kid"] > 3 * abs(twin["kid"]), (twin, shifted)


def test_net_without_return_features_is_called_plainly(tmp_path):
    path = tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in recent torch
        torch.jit.save(torch.jit.script(NoFlagNet()), str(path))
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    feats = fid.extract_features(fid.load_feature_net(path), images)
    np.testing.assert_allclose(feats, images.reshape(2, 3, 16).mean(axis=2))


@pytest.mark.parametrize("content", [None, b"not a model", "state_dict"])
def test_bad_feature_net_file_is_a_one_line_user_error(tmp_path, content):
    path = tmp_path / "inception-2015-12-05.pt"
    if content == "state_dict":
        torch.save({"weight": torch.zeros(3)}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as info:
        fid.load_feature_net(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert ("is not a TorchScript file" in message) == (content is not None)


# ----------------------------------------------------------------------------------------------
# Tall (1:2) images: padded to square on the background before the feature net


def test_pad_square_puts_a_tall_image_in_the_middle_on_the_background():
    images = torch.arange(2 * 3 * 8 * 4, dtype=torch.uint8).reshape(2, 3, 8, 4)
    out = fid.pad_square(images, (10, 20, 30))
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.uint8
    assert torch.equal(out[:, :, :, 2:6], images)                        # columns 2..5: the image
    for side in (out[:, :, :, :2], out[:, :, :, 6:]):                    # two columns each side: background
        assert torch.equal(side, torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1).expand_as(side))
    # float images stay float, numpy arrays are taken too, square ones come back unchanged
    assert torch.equal(fid.pad_square(images.float(), (10, 20, 30)), out.float())
    assert torch.equal(fid.pad_square(images.numpy(), (10, 20, 30)), out)
    square = torch.zeros(1, 3, 5, 5, dtype=torch.uint8)
    assert fid.pad_square(square, (10, 20, 30)) is square


def test_pad_square_matches_the_training_letterbox():
    """Where the image lands and the colour around it are those of pipeline.train.dataset's letterbox,
    odd margins included (7 x 4: one column left, two right)."""
    from PIL import Image

    from pipeline.train.dataset import square

    rng = np.random.default_rng(0)
    for h, w in ((32, 16), (7, 4), (9, 2)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = np.asarray(square(Image.fromarray(img), "letterbox", (250, 128, 0)))
        got = fid.pad_square(torch.from_numpy(img).permute(2, 0, 1)[None], (250, 128, 0))[0].permute(1, 2, 0)
        assert np.array_equal(got.numpy(), want), (h, w)


def test_fid_of_tall_images_is_that_of_the_padded_squares(tmp_path):
    net = fid.load_feature_net(fid.make_tiny_feature_net(tmp_path / "net.pt"))
    tall = blob_images(120, 32, seed=3, width=16).transpose(0, 3, 1, 2)
    reals, fakes = torch.from_numpy(tall[:60]), torch.from_numpy(tall[60:])
    got = fid.fid_kid(net, reals, fakes, kid_subsets=5, kid_subset_size=50, background=(0, 0, 255))
    padded = [fid.pad_square(x, (0, 0, 255)) for x in (reals, fakes)]
    want = fid.fid_kid(net, *padded, kid_subsets=5, kid_subset_size=50)
    assert got == want and got["fid"] > 0
    # the background is part of the picture the net sees: another colour, other features
    other = fid.extract_features(net, fid.pad_square(reals, (255, 255, 255)))
    assert not np.allclose(other, fid.extract_features(net, padded[0]))
    same = fid.fid_kid(net, reals, reals, kid_subsets=5, kid_subset_size=50)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
