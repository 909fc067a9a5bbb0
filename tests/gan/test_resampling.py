"""StyleGAN2's image resampling (NVlabs upfirdn2d, [1, 3, 3, 1]) against loops written here, the
identities that progressive growing needs, and the checkpoints made before it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import UserError
from pipeline.evaluate.artefacts import artefacts
from pipeline.gan.grids import to_uint8
from pipeline.gan.layers import Blur, downsample_fir, upsample, upsample_fir
from pipeline.gan.networks import RESAMPLE_VERSION, Discriminator, Generator, image_resampling

F1 = np.array([1.0, 3.0, 3.0, 1.0])
F2 = np.outer(F1, F1) / 64.0                      # the 2-D filter, sum 1


def _upfirdn_loops(x: np.ndarray, up: int, down: int, pad: tuple[int, int], gain: float) -> np.ndarray:
    """upfirdn2d of one [H, W] plane, as NVlabs defines it: insert up-1 zeros after each pixel, pad with
    zeros (pad[0] before, pad[1] after, in both axes), correlate with F2 * gain, keep every down-th pixel."""
    h, w = x.shape
    z = np.zeros((h * up, w * up))
    for i in range(h):
        for j in range(w):
            z[i * up, j * up] = x[i, j]
    p = np.zeros((h * up + pad[0] + pad[1], w * up + pad[0] + pad[1]))
    p[pad[0]:pad[0] + h * up, pad[0]:pad[0] + w * up] = z
    k = F2 * gain
    out_h, out_w = p.shape[0] - 3, p.shape[1] - 3
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            for a in range(4):
                for b in range(4):
                    out[i, j] += k[a, b] * p[i + a, j + b]
    return out[::down, ::down]


@pytest.mark.parametrize("op, up, down, pad, gain, size, want_size", [
    (upsample_fir, 2, 1, (2, 1), 4.0, (5, 6), (10, 12)),    # zero insertion, then the filter with gain 4
    (downsample_fir, 1, 2, (1, 1), 1.0, (8, 6), (4, 3)),    # the filter, then every second pixel
])
def test_each_op_is_upfirdn_as_nvlabs_defines_it(op, up, down, pad, gain, size, want_size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    got = op(x)
    assert got.shape == (2, 3, *want_size)
    for n in range(2):
        for c in range(3):
            want = _upfirdn_loops(x[n, c].numpy(), up=up, down=down, pad=pad, gain=gain)
            np.testing.assert_allclose(got[n, c].numpy(), want, atol=1e-12)


def test_upsample_fir_equals_nearest_then_the_feature_paths_blur():
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    blur = Blur().double()
    torch.testing.assert_close(upsample_fir(x), blur(upsample(x, 2)))


def test_the_pair_keeps_a_constant_image_inside_and_gradients_flow():
    x = torch.full((1, 1, 8, 8), 5.0, dtype=torch.float64)
    torch.testing.assert_close(upsample_fir(x)[..., 1:-1, 1:-1], torch.full((1, 1, 14, 14), 5.0, dtype=torch.float64))
    torch.testing.assert_close(downsample_fir(x)[..., 1:-1, 1:-1], torch.full((1, 1, 2, 2), 5.0, dtype=torch.float64))
    y = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: downsample_fir(upsample_fir(t)), (y,))
    assert torch.autograd.gradgradcheck(lambda t: downsample_fir(upsample_fir(t)), (y,))


def test_each_arch_has_its_own_pair():
    assert image_resampling("stylegan2") == (upsample_fir, downsample_fir)
    up, down = image_resampling("stylegan")
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(up(x), x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    torch.testing.assert_close(down(x)[0, 0, 0, 0], x[0, 0, :2, :2].mean())
    assert image_resampling("stylegan2", version=1) == image_resampling("stylegan")


def _block4(resample_version: int) -> float:
    torch.manual_seed(0)
    G = Generator("stylegan2", z_dim=512, w_dim=512, mapping_layers=2, max_res=32, cbase=2048, cmax=256,
                  resample_version=resample_version).eval()
    with torch.no_grad():
        images = to_uint8(G(torch.randn(200, 512, generator=torch.Generator().manual_seed(1)), 32))
    return artefacts(images)["block4"]


def test_a_random_stylegan2_generator_paints_no_4_pixel_tiles():
    assert _block4(1) > 3          # the nearest-neighbour skip sum of version 1: tiles
    assert _block4(2) < 1.5        # the [1, 3, 3, 1] pair


def test_old_checkpoints_draw_as_they_were_drawn_and_cannot_go_on_training(tmp_path):
    from pipeline.core.params import parse
    from pipeline.train.checkpoint import load_generator, save
    from pipeline.train.schedule import StagePlan
    from pipeline.train.stage import runtime
    from pipeline.train.trainer import Trainer

    tp = parse("train", {"start_res": 8, "final_res": 8, "device": "cpu", "augment": "none"})
    mp = parse("model", {"arch": "stylegan2", "mapping_layers": 2, "z_dim": 16, "w_dim": 16, "cbase": 64,
                         "cmax": 16})
    trainer = Trainer(StagePlan(8, True, "test", None, 0.0, 0.1, 4, 0.002), tp, mp, runtime(tp))
    state = trainer.state_dict()
    assert state["resample_version"] == RESAMPLE_VERSION == 2
    old = {k: v for k, v in state.items() if k != "resample_version"}          # as saved before
    old["options"] = {"model": {**mp.__dict__}, "train": {"final_res": 8}}
    save(tmp_path / "old.pt", old)
    G, _, _ = load_generator(tmp_path / "old.pt")
    assert G.resample_version == 1 and G.upsample_image is not upsample_fir
    with pytest.raises(UserError, match="resamples its images with version 1"):
        Trainer(StagePlan(8, True, "test", None, 0.0, 0.1, 4, 0.002), tp, mp, runtime(tp)).load_state_dict(old)


def test_reals_fade_in_through_the_same_pair():
    from pipeline.core.params import parse
    from pipeline.train.dataset import ImageSource
    from pipeline.train.schedule import StagePlan
    from pipeline.train.stage import runtime
    from pipeline.train.trainer import Trainer

    tp = parse("train", {"start_res": 8, "final_res": 16, "device": "cpu", "augment": "none"})
    mp = parse("model", {"arch": "stylegan2", "mapping_layers": 2, "z_dim": 16, "w_dim": 16, "cbase": 64,
                         "cmax": 16})
    trainer = Trainer(StagePlan(16, True, "test", 8, 1.0, 1.0, 4, 0.002), tp, mp, runtime(tp))
    assert trainer.alpha() == 0.0
    data = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    source = ImageSource(data, torch.device("cpu"), mirror=False)
    gen_state = trainer.gen.get_state()
    got = trainer.reals(source)
    trainer.gen.set_state(gen_state)
    x = source.batch(4, trainer.gen)
    torch.testing.assert_close(got, upsample_fir(downsample_fir(x)))
    D = Discriminator("stylegan2", max_res=16, cbase=64, cmax=16)
    assert D.downsample_image is downsample_fir
