"""Aspect 2 (full-body shape, res tall and res/2 wide) in both archs: the shape of every block at every
resolution, exact fading, truncation and mixing, and the shape-dependent augmentations (ADA turns
non-square images by 180 degrees only; DiffAugment's translation and cutout follow H and W)."""
from __future__ import annotations

import pytest
import torch

from pipeline.gan import augment
from pipeline.gan.ada import AdaPipe
from pipeline.gan.layers import downsample, downsample_fir, upsample, upsample_fir
from pipeline.gan.networks import Discriminator, Generator, mix_ws, style_bands

ARCHS = ["stylegan", "stylegan2"]
Z = 16


def make(arch, max_res, aspect=2, cbase=2048, cmax=8, seed=0):
    torch.manual_seed(seed)
    G = Generator(arch, z_dim=Z, w_dim=Z, mapping_layers=1, max_res=max_res, cbase=cbase, cmax=cmax, aspect=aspect)
    D = Discriminator(arch, max_res=max_res, cbase=cbase, cmax=cmax, aspect=aspect)
    with torch.no_grad():   # zero-initialised strengths and biases would hide a wrong noise buffer
        for p in list(G.parameters()) + list(D.parameters()):
            if not p.any():
                p.normal_(0, 0.3)
    return G, D


def _outputs(modules: dict, store: dict):
    return [m.register_forward_hook(lambda mod, args, out, key=k: store.__setitem__(key, tuple(out.shape)))
            for k, m in modules.items()]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_block_is_tall_at_every_resolution(arch):
    G, D = make(arch, 256)
    assert G.aspect == D.aspect == 2
    syn = G.synthesis_net
    assert tuple(syn.blocks["4"].const.shape) == (1, G.channels(4), 4, 2)       # the learned constant
    for name, buf in G.named_buffers():
        if name.endswith("noise.const"):
            res = int(name.split(".")[2])
            assert tuple(buf.shape) == (1, 1, res, res // 2), name
    epilogue = D.blocks["4"]
    assert epilogue.fc.weight.shape[1] == D.channels(4) * 4 * 2                 # dense layer over 4 x 2
    ws = G.mapping(torch.randn(2, Z))
    for res in (8, 16, 32, 64, 128, 256):
        seen_g, seen_d = {}, {}
        hooks = _outputs({r: syn.blocks[str(r)] for r in G.resolutions if r <= res}, seen_g)
        hooks += _outputs({r: D.blocks[str(r)] for r in D.resolutions if 4 < r <= res}, seen_d)
        hooks += _outputs({("rgb", r): D.fromrgb[str(r)] for r in (res, res // 2)}, seen_d)
        with torch.no_grad():
            img = G.synthesis(ws, res, torch.tensor(0.5), noise_mode="const")
            logits = D(img, res, torch.tensor(0.5))
        for h in hooks:
            h.remove()
        assert img.shape == (2, 3, res, res // 2) and torch.isfinite(img).all()
        assert logits.shape == (2,) and torch.isfinite(logits).all()
        assert seen_g == {r: (2, G.channels(r), r, r // 2) for r in G.resolutions if r <= res}
        for r in D.resolutions:
            if 4 < r <= res:    # each D block halves both sides
                assert seen_d[r] == (2, D.channels(r // 2), r // 2, r // 4)
        assert seen_d[("rgb", res)] == (2, D.channels(res), res, res // 2)
        assert seen_d[("rgb", res // 2)] == (2, D.channels(res // 2), res // 2, res // 4)   # the fade path
    with pytest.raises(AssertionError, match="img must be"):
        D(torch.zeros(2, 3, 32, 32), 32)            # a square image is not what a tall D reads


def _tall(arch):
    return make(arch, 32, cbase=256, cmax=16)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("res", [8, 16, 32])
def test_tall_generator_at_alpha_0_is_the_previous_stage_upsampled(arch, res):
    G, D = _tall(arch)
    ws = G.mapping(torch.randn(3, Z))
    prev = G.synthesis(ws, res // 2, 1.0, noise_mode="const")
    grown = G.synthesis(ws, res, 0.0, noise_mode="const")
    up = upsample_fir if arch == "stylegan2" else (lambda x: upsample(x, 2))
    assert prev.shape == (3, 3, res // 2, res // 4)
    torch.testing.assert_close(grown, up(prev))
    assert not torch.allclose(G.synthesis(ws, res, 1.0, noise_mode="const"), grown)
    img = torch.randn(4, 3, res, res // 2)
    down = downsample_fir if arch == "stylegan2" else (lambda x: downsample(x, 2))
    torch.testing.assert_close(D(img, res, 0.0), D(down(img), res // 2))


@pytest.mark.parametrize("arch", ARCHS)
def test_tall_truncation_mixing_and_params_at(arch):
    G, D = _tall(arch)
    with torch.no_grad():
        G.mapping(torch.randn(64, Z), update_w_avg_beta=0.0)
    z = torch.randn(4, Z)
    img = G(z, 32, psi=0.0, noise_mode="const")
    torch.testing.assert_close(img, img[:1].expand_as(img))      # psi 0: every image is the average one
    ws_a, ws_b = G.mapping(z), G.mapping(torch.randn(4, Z))
    base = G.synthesis(ws_a, 32, noise_mode="const")
    mixed = G.synthesis(mix_ws(ws_a, ws_b, style_bands(32)["coarse"]), 32, noise_mode="const")
    assert mixed.shape == base.shape == (4, 3, 32, 16) and not torch.allclose(mixed, base)
    for net in (G, D):      # freeze_lower's bookkeeping: every parameter belongs to exactly one resolution
        seen = [id(p) for r in net.resolutions for p in net.params_at(r)]
        if net is G:
            seen += [id(p) for p in G.mapping_net.parameters()]
        assert len(seen) == len(set(seen)) == len(list(net.parameters()))


def test_aspect_1_is_the_square_network_as_before():
    a, _ = make("stylegan2", 16, aspect=1, cbase=256, cmax=16)
    torch.manual_seed(0)
    b = Generator("stylegan2", z_dim=Z, w_dim=Z, mapping_layers=1, max_res=16, cbase=256, cmax=16)
    assert b.aspect == 1 and [tuple(t.shape) for t in a.state_dict().values()] == \
        [tuple(t.shape) for t in b.state_dict().values()]
    assert tuple(b.synthesis_net.blocks["4"].const.shape)[2:] == (4, 4)
    with pytest.raises(AssertionError, match="aspect"):
        Generator("stylegan", max_res=8, cbase=64, cmax=8, aspect=3)


def test_ada_turns_tall_images_by_180_degrees_only_and_keeps_their_shape():
    x = torch.rand(64, 3, 16, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pipe = AdaPipe(("rotate90",))
    d = pipe.draw(64, 16, 8, 1.0, torch.Generator().manual_seed(1))
    assert set(d.params["rotate90"].tolist()) == {0.0, 2.0}
    y = pipe.apply(x, d)
    assert y.shape == x.shape
    for i in range(64):
        torch.testing.assert_close(y[i], torch.rot90(x[i], int(d.params["rotate90"][i]), [1, 2]), atol=1e-6, rtol=0)
    square = pipe.draw(64, 8, 8, 1.0, torch.Generator().manual_seed(1))
    assert set(square.params["rotate90"].tolist()) == {0.0, 1.0, 2.0, 3.0}     # square images keep all four
    full = AdaPipe()
    for seed in range(4):       # every op together, at p 1: still [N, 3, H, W]
        assert full(x, 1.0, torch.Generator().manual_seed(seed)).shape == x.shape


def test_diffaugment_translation_and_cutout_follow_height_and_width():
    n, h, w = 32, 16, 8
    x = torch.ones(n, 3, h, w)
    g = torch.Generator().manual_seed(0)
    cut = augment.cutout(x, g)
    assert cut.shape == x.shape
    holes = (cut[:, 0] == 0)
    full = [i for i in range(n) if holes[i].any(1).sum() == h // 2 and holes[i].any(0).sum() == w // 2]
    assert full and all(holes[i].sum() == (h // 2) * (w // 2) for i in full)   # an 8 x 4 hole where it fits
    ramp = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(n, 3, h, w)
    moved = augment.translation(ramp + 1, torch.Generator().manual_seed(1))
    assert moved.shape == ramp.shape
    shifts = set()
    for i in range(n):      # each image is the ramp shifted by whole pixels, at most 1/8 of each side
        src = moved[i, 0]
        inside = src > 0
        ys, xs = torch.nonzero(inside, as_tuple=True)
        v = (src[ys[0], xs[0]] - 1).long()
        dy, dx = int(v // w) - int(ys[0]), int(v % w) - int(xs[0])
        shifts.add((dy, dx))
        assert abs(dy) <= 2 and abs(dx) <= 1
    assert any(abs(dy) == 2 for dy, _ in shifts) and any(abs(dx) == 1 for _, dx in shifts)


@pytest.mark.parametrize("shape", [(4, 2), (8, 4), (16, 8), (4, 4), (8, 8)])
def test_resampling_convs_equal_the_plain_pair_on_tall_and_square_maps(shape):
    import torch.nn.functional as F

    from pipeline.gan.layers import _fused_kernel, conv_down2, conv_up2

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 6, *shape, generator=g), torch.randn(5, 6, 3, 3, generator=g)
    torch.testing.assert_close(conv_up2(x, w), F.conv2d(upsample(x, 2), w, padding=1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv_down2(x, w), downsample(F.conv2d(x, w, padding=1), 2), atol=1e-4, rtol=1e-4)
    p = F.pad(w, [1, 1, 1, 1])      # the fused kernel, summed the plain way: the same bits
    assert torch.equal(_fused_kernel(w), p[..., 1:, 1:] + p[..., :-1, 1:] + p[..., 1:, :-1] + p[..., :-1, :-1])
