"""ADA's bgc pipeline against closed forms written out here, and its p against the paper's rule."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.gan.ada import GEOMETRIC, OPS, AdaPipe
from pipeline.gan.augment import ADA_INTERVAL, Augment
from tests.helpers.project import env_with_project_on_path

N, H, W = 16, 12, 12


def images(seed=0, n=N, dtype=torch.float32):
    return torch.rand(n, 3, H, W, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def one_op(op, x, seed=1):
    pipe = AdaPipe((op,))
    d = pipe.draw(x.shape[0], H, W, 1.0, torch.Generator().manual_seed(seed))
    return pipe.apply(x, d), d.params


def reflect(c, size):
    """A coordinate folded into [0, size-1] by reflection about the edge pixels' centres."""
    period = 2 * (size - 1)
    c = np.abs(c) % period
    return np.where(c > size - 1, period - c, c)


def bilinear(img, sx, sy):
    """img [C, H, W] looked up at pixel positions (sx, sy), each [H, W], reflected at the borders."""
    sx, sy = reflect(sx, W), reflect(sy, H)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = sx - x0, sy - y0
    return (img[:, y0, x0] * (1 - fx) * (1 - fy) + img[:, y0, x1] * fx * (1 - fy)
            + img[:, y1, x0] * (1 - fx) * fy + img[:, y1, x1] * fx * fy)


def direct_geometry(img, forward):
    """Each output pixel q shows the input at forward^-1(q), in pixels about the centre (y down)."""
    qy, qx = np.meshgrid(np.arange(H) - (H - 1) / 2, np.arange(W) - (W - 1) / 2, indexing="ij")
    inv = np.linalg.inv(forward)
    sx = inv[0, 0] * qx + inv[0, 1] * qy + inv[0, 2] + (W - 1) / 2
    sy = inv[1, 0] * qx + inv[1, 1] * qy + inv[1, 2] + (H - 1) / 2
    return bilinear(img, sx, sy)


def turn(theta):
    """Content turned by theta; theta = pi/2 is torch.rot90(k=1) (checked below)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])


def test_the_direct_turn_is_torch_rot90():
    x = images()[0].numpy()
    assert np.allclose(direct_geometry(x, turn(math.pi / 2)), torch.rot90(torch.from_numpy(x), 1, [1, 2]).numpy(),
                       atol=1e-6)


def test_xflip_alone_flips_half_the_images():
    x = images()
    y, params = one_op("xflip", x)
    flipped = params["xflip"].bool()
    assert 0 < flipped.sum() < N
    assert torch.equal(y[flipped], x[flipped].flip(3)) or torch.allclose(y[flipped], x[flipped].flip(3), atol=1e-6)
    assert torch.equal(y[~flipped], x[~flipped])


def test_rotate90_alone_is_torch_rot90():
    x = images()
    y, params = one_op("rotate90", x)
    assert set(params["rotate90"].tolist()) == {0.0, 1.0, 2.0, 3.0}
    for i in range(N):
        assert torch.allclose(y[i], torch.rot90(x[i], int(params["rotate90"][i]), [1, 2]), atol=1e-6)


def test_integer_translation_is_reflect_pad_and_crop():
    x = images()
    y, params = one_op("xint", x)
    shifts = params["xint"].long()
    m = round(0.125 * W)
    assert shifts.abs().max() <= m and shifts.abs().sum() > 0
    padded = F.pad(x, [m, m, m, m], mode="reflect")
    for i, (dx, dy) in enumerate(shifts.tolist()):
        expected = padded[i, :, m - dy:m - dy + H, m - dx:m - dx + W]      # content moved right by dx, down by dy
        assert torch.allclose(y[i], expected, atol=1e-6), (i, dx, dy)


@pytest.mark.parametrize("op", ["scale", "rotate", "aniso", "xfrac"])
def test_general_geometry_equals_a_direct_bilinear_lookup(op):
    x = images()
    y, params = one_op(op, x)
    for i in range(N):
        if op == "scale":
            s = float(params["scale"][i])
            forward = np.diag([s, s, 1.0])
        elif op == "rotate":                      # two turns (before and after aniso), together p
            forward = turn(float(params["rotate_post"][i])) @ turn(float(params["rotate"][i]))
        elif op == "aniso":
            s = float(params["aniso"][i])
            forward = np.diag([s, 1 / s, 1.0])
        else:
            tx, ty = params["xfrac"][i].tolist()
            forward = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])
        assert not np.allclose(forward, np.eye(3))
        assert np.allclose(y[i].numpy(), direct_geometry(x[i].numpy(), forward), atol=1e-5), (op, i)


def test_colour_ops_equal_their_closed_forms():
    x = images()
    mean = x.mean(dim=1, keepdim=True)                  # the pixel's projection on the grey axis
    y, p = one_op("brightness", x)
    assert torch.allclose(y, x + p["brightness"].view(-1, 1, 1, 1), atol=1e-6)
    y, p = one_op("contrast", x)
    assert torch.allclose(y, x * p["contrast"].view(-1, 1, 1, 1), atol=1e-6)
    y, p = one_op("lumaflip", x)
    assert torch.allclose(y, x - 2 * mean * p["lumaflip"].view(-1, 1, 1, 1), atol=1e-6)
    y, p = one_op("saturation", x)
    assert torch.allclose(y, mean + (x - mean) * p["saturation"].view(-1, 1, 1, 1), atol=1e-5)
    y, p = one_op("hue", x)
    v = np.ones(3) / math.sqrt(3)
    for i in range(N):
        t = float(p["hue"][i])
        pix = x[i].numpy().reshape(3, -1)
        rodrigues = (pix * math.cos(t) + np.cross(v, pix.T).T * math.sin(t)
                     + np.outer(v, v @ pix) * (1 - math.cos(t)))
        assert np.allclose(y[i].numpy().reshape(3, -1), rodrigues, atol=1e-5)


def test_p_zero_returns_the_input_bit_for_bit():
    x = images()
    assert torch.equal(AdaPipe()(x, 0.0, torch.Generator().manual_seed(0)), x)
    aug = Augment("ada")                                 # p starts at 0
    assert torch.equal(aug(x, torch.Generator().manual_seed(0)), x)


def test_each_op_applies_with_probability_p():
    x = images(n=4000)
    pipe = AdaPipe()
    d = pipe.draw(4000, H, W, 0.3, torch.Generator().manual_seed(0))
    identity = {"scale": 1, "aniso": 1, "contrast": 1, "saturation": 1}
    for op in sorted(set(OPS) - {"xflip", "rotate90", "lumaflip", "rotate", "xint"}):
        v = d.params[op]
        applied = (v != identity.get(op, 0)).reshape(len(x), -1).any(1).float().mean().item()
        assert abs(applied - 0.3) < 0.03, (op, applied)
    # a shift rounds to 0 in x and y in a ninth of the draws at 12 px (+-1.5 px)
    assert abs((d.params["xint"] != 0).any(1).float().mean().item() - 0.3 * 8 / 9) < 0.03
    # a coin flip inside: flipped in p/2, turned by k != 0 in 3p/4; two turns: together p
    assert abs((d.params["xflip"] != 0).float().mean().item() - 0.15) < 0.03
    assert abs((d.params["rotate90"] != 0).float().mean().item() - 0.225) < 0.03
    turned = ((d.params["rotate"] != 0) | (d.params["rotate_post"] != 0)).float().mean().item()
    assert abs(turned - 0.3) < 0.03


def test_gradients_flow_through_the_geometric_ops():
    x = images(n=2, dtype=torch.float64).requires_grad_(True)
    pipe = AdaPipe(GEOMETRIC)
    d = pipe.draw(2, H, W, 1.0, torch.Generator().manual_seed(3))
    assert d.moved.all()
    assert torch.autograd.gradcheck(lambda t: pipe.apply(t, d), (x,), eps=1e-6, atol=1e-5)


def test_one_adjustment_moves_p_by_batch_x_interval_over_ada_kimg():
    aug = Augment("ada", target=0.6, ada_kimg=500)
    batch = 16
    for _ in range(ADA_INTERVAL):
        aug.observe(torch.ones(batch, 1))               # D is sure of every real: r_t = 1 > 0.6
    aug.adjust(batch)
    assert aug.probability == batch * 4 / (500 * 1000)
    for _ in range(ADA_INTERVAL):
        aug.observe(-torch.ones(batch, 1))              # r_t = -1: p goes down, and stops at 0
    aug.adjust(batch)
    aug.observe(-torch.ones(batch, 1))
    aug.adjust(batch)
    assert aug.probability == 0.0


def test_two_gloo_processes_with_different_data_end_with_the_same_p(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tests.helpers.ada_ranks", str(tmp_path)], capture_output=True,
                       text=True, env=env_with_project_on_path(), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    p0, p1 = (float((tmp_path / f"p{rank}").read_text()) for rank in (0, 1))
    assert p0 == p1
    # the direct computation: the statistics of both ranks together decide each step
    # the direct computation: both ranks' signs together decide each step (rank 0 alone: always up)
    expected = 0.0
    for step in range(6):
        rt = (1.0 + (1.0 if step % 3 != 2 else -1.0)) / 2
        expected = min(1.0, max(0.0, expected + np.sign(rt - 0.6) * 16 * ADA_INTERVAL / (0.1 * 1000)))
    assert p0 == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 6 * 16 * ADA_INTERVAL / 100
