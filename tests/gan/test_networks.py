"""Tests for pipeline.gan.networks (both archs): shapes, exact fading, determinism, truncation, style
mixing, parameter bookkeeping, double backward and bf16 autocast, on tiny networks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.core.params import ModelParams
from pipeline.gan.layers import conv_down2, conv_up2, downsample, downsample_fir, minibatch_std, upsample, upsample_fir
from pipeline.gan.networks import Discriminator, Generator, build_networks, count_params, mix_ws, num_ws, style_bands

ARCHS = ["stylegan", "stylegan2"]
MAX_RES = 32
RESES = [4, 8, 16, 32]
Z = 32


def make(arch, seed=0):
    torch.manual_seed(seed)
    G = Generator(arch, z_dim=Z, w_dim=Z, mapping_layers=2, max_res=MAX_RES, cbase=256, cmax=32)
    D = Discriminator(arch, max_res=MAX_RES, cbase=256, cmax=32)
    _randomise(G)
    _randomise(D)
    return G, D


def _randomise(module):
    """Untrained zero-initialised parameters (noise strengths, biases) would hide bugs: make them nonzero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not p.any():
                p.normal_(0, 0.3)


@pytest.fixture(scope="module", params=ARCHS)
def nets(request):
    return make(request.param)


def test_fused_resampling_convs_equal_plain_ones():
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv_up2(x, w), F.conv2d(upsample(x, 2), w, padding=1))
    torch.testing.assert_close(conv_down2(x, w), downsample(F.conv2d(x, w, padding=1), 2))


def test_resampling_helpers():
    x = torch.randn(2, 3, 8, 8)
    assert upsample(x, 2).shape == (2, 3, 16, 16) and downsample(x, 4).shape == (2, 3, 2, 2)
    torch.testing.assert_close(downsample(upsample(x, 2), 2), x)
    torch.testing.assert_close(downsample(x, 2)[0, 0, 0, 0], x[0, 0, :2, :2].mean())


def test_minibatch_std_groups():
    x = torch.randn(8, 2, 3, 3)
    y = minibatch_std(x, 4)
    assert y.shape == (8, 3, 3, 3)
    torch.testing.assert_close(y[:, :2], x)
    for n in range(2):                              # group n: samples n, n + 2, n + 4, n + 6 (as NVlabs)
        members = x[[g * 2 + n for g in range(4)]]
        mean = sum(members[g] for g in range(4)) / 4
        std = (sum((members[g] - mean) ** 2 for g in range(4)) / 4 + 1e-8).sqrt()
        for g in range(4):
            torch.testing.assert_close(y[g * 2 + n, 2], torch.full((3, 3), std.mean().item()), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y[0, 2], y[1, 2])
    small = torch.randn(2, 2, 3, 3)                 # a batch smaller than the group: one group of all
    torch.testing.assert_close(minibatch_std(small, 4)[0, 2], minibatch_std(small, 2)[0, 2])
    with pytest.raises(AssertionError, match="groups of 4 do not divide a batch of 6"):
        minibatch_std(torch.randn(6, 2, 3, 3), 4)   # never a silent group of 1


def test_style_bands_and_num_ws():
    assert [num_ws(r) for r in (4, 8, 16, 256)] == [2, 4, 6, 14]
    assert style_bands(256) == {"coarse": slice(0, 4), "middle": slice(4, 8), "fine": slice(8, 14)}
    assert style_bands(32) == {"coarse": slice(0, 4), "middle": slice(4, 8), "fine": slice(8, 8)}
    assert style_bands(8) == {"coarse": slice(0, 4), "middle": slice(4, 4), "fine": slice(4, 4)}


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_shapes_at_every_resolution(nets, alpha):
    G, D = nets
    z = torch.randn(4, Z)
    ws = G.mapping(z)
    assert ws.shape == (4, G.num_ws(MAX_RES), Z)
    for res in RESES:
        img = G.synthesis(ws, res, alpha)
        assert img.shape == (4, 3, res, res) and torch.isfinite(img).all()
        assert 0.2 < img.std().item() < 5  # unit-ish scale, as the [-1, 1] data
        logits = D(img, res, alpha)
        assert logits.shape == (4,) and torch.isfinite(logits).all()
    with pytest.raises(AssertionError):
        D(torch.zeros(4, 3, 16, 16), 32)


@pytest.mark.parametrize("res", [8, 16, 32])
def test_generator_at_alpha_0_is_upsampled_previous(nets, res):
    G, _ = nets
    ws = G.mapping(torch.randn(3, Z))
    prev = G.synthesis(ws, res // 2, 1.0, noise_mode="const")
    grown = G.synthesis(ws, res, 0.0, noise_mode="const")
    up = upsample_fir if G.arch == "stylegan2" else (lambda x: upsample(x, 2))   # each arch's own pair
    torch.testing.assert_close(grown, up(prev))
    half = G.synthesis(ws, res, torch.tensor(0.5), noise_mode="const")  # tensor alpha blends too
    full = G.synthesis(ws, res, 1.0, noise_mode="const")
    assert not torch.allclose(half, grown) and not torch.allclose(half, full)
    if G.arch == "stylegan":  # a plain lerp of the two outputs
        torch.testing.assert_close(half, (grown + full) / 2)


@pytest.mark.parametrize("res", [8, 16, 32])
def test_discriminator_at_alpha_0_sees_downsampled_image(nets, res):
    _, D = nets
    img = torch.randn(4, 3, res, res)
    down = downsample_fir if D.arch == "stylegan2" else (lambda x: downsample(x, 2))
    torch.testing.assert_close(D(img, res, 0.0), D(down(img), res // 2))
    assert not torch.allclose(D(img, res, 1.0), D(down(img), res // 2))


def test_const_noise_and_psi_0_give_one_image(nets):
    G, _ = nets
    with torch.no_grad():
        G.mapping(torch.randn(64, Z), update_w_avg_beta=0.0)  # w_avg = mean w of this batch
    assert G.w_avg.abs().sum() > 0
    z = torch.randn(5, Z)
    img = G(z, 32, psi=0.0, noise_mode="const")
    torch.testing.assert_close(img, img[:1].expand_as(img))
    ws = G.mapping(z, psi=0.0)
    torch.testing.assert_close(ws, G.w_avg.expand_as(ws))
    random = G(z, 32, psi=0.0, noise_mode="random")
    assert not torch.allclose(random[0], random[1])  # noise matters


def test_same_seed_same_image(nets):
    G, _ = nets
    z = torch.randn(2, Z)
    torch.testing.assert_close(G(z, 32, noise_mode="const"), G(z, 32, noise_mode="const"))
    torch.manual_seed(7)
    a = G(z, 32, noise_mode="random")
    torch.manual_seed(7)
    b = G(z, 32, noise_mode="random")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(G(z, 32, noise_mode="none"), G(z, 32, noise_mode="none"))
    assert not torch.allclose(G(z, 32, noise_mode="none"), G(z, 32, noise_mode="const"))
    G2, _ = make(G.arch)  # a rebuild with the same seed draws the same weights and noise
    torch.testing.assert_close(G2(z, 32, noise_mode="const"), G(z, 32, noise_mode="const"))
    G3, _ = make(G.arch, seed=1)  # other weights, but the const noise has its own fixed seed
    noise = {n: b for n, b in G.named_buffers() if n.endswith(".const")}
    assert len(noise) == 2 * len(RESES) - (G.arch == "stylegan2")
    for n, b in G3.named_buffers():
        if n in noise:
            torch.testing.assert_close(b, noise[n])
    assert not torch.allclose(G3(z, 32, noise_mode="const"), G(z, 32, noise_mode="const"))


def test_style_mixing(nets):
    G, _ = nets
    ws_a, ws_b = G.mapping(torch.randn(3, Z)), G.mapping(torch.randn(3, Z))
    base = G.synthesis(ws_a, 32, noise_mode="const")
    same = G.synthesis(mix_ws(ws_a, ws_a.clone(), 4), 32, noise_mode="const")
    torch.testing.assert_close(same, base)
    mixed = mix_ws(ws_a, ws_b, torch.tensor(4))
    torch.testing.assert_close(mixed[:, :4], ws_a[:, :4])
    torch.testing.assert_close(mixed[:, 4:], ws_b[:, 4:])
    coarse = mix_ws(ws_a, ws_b, style_bands(32)["coarse"])
    torch.testing.assert_close(coarse[:, 4:], ws_a[:, 4:])
    for ws in (mixed, coarse):
        assert not torch.allclose(G.synthesis(ws, 32, noise_mode="const"), base)


def test_truncation(nets):
    G, _ = nets
    G.w_avg.normal_()
    z = torch.randn(3, Z)
    ws = G.mapping(z)
    torch.testing.assert_close(G.mapping(z, psi=1.0), ws)
    half = G.mapping(z, psi=0.5, trunc_cutoff=3)
    torch.testing.assert_close(half[:, :3], G.w_avg + (ws[:, :3] - G.w_avg) * 0.5)
    torch.testing.assert_close(half[:, 3:], ws[:, 3:])
    neg = G.mapping(z, psi=-1.0)
    torch.testing.assert_close(neg, 2 * G.w_avg - ws)
    before = G.w_avg.clone()
    G.mapping(z, update_w_avg_beta=0.9)
    torch.testing.assert_close(G.w_avg, before * 0.9 + ws[:, 0].mean(0) * 0.1)


def test_params_at_partitions_parameters(nets):
    G, D = nets
    seen = [id(p) for r in RESES for p in G.params_at(r)] + [id(p) for p in G.mapping_net.parameters()]
    assert len(seen) == len(set(seen)) and set(seen) == {id(p) for p in G.parameters()}
    seen = [id(p) for r in RESES for p in D.params_at(r)]
    assert len(seen) == len(set(seen)) and set(seen) == {id(p) for p in D.parameters()}
    for net in (G, D):
        counts = [count_params(net, r) for r in RESES]
        assert counts == sorted(set(counts)) and counts[-1] == count_params(net)


def test_params_at_are_the_params_used(nets):
    """Training at res touches no params above it; the res/2 fromRGB (and stylegan's res/2 toRGB)
    only while fading."""
    G, D = nets
    z = torch.randn(4, Z)

    def used(params):
        return [p.grad is not None and bool(p.grad.any()) for p in params]

    for alpha in (0.5, 1.0):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        D(G(z, 16, alpha, noise_mode="const"), 16, alpha).sum().backward()
        for net in (G, D):
            assert not any(used(net.params_at(32)))
            assert all(used(net.params_at(16)))
            blocks = net.blocks if net is D else net.synthesis_net.blocks
            assert all(used(blocks["8"].parameters()))
        assert all(used(D.fromrgb["8"].parameters())) == (alpha < 1)
        assert any(used(D.fromrgb["8"].parameters())) == (alpha < 1)
        if G.arch == "stylegan":
            assert any(used(G.synthesis_net.torgb["8"].parameters())) == (alpha < 1)


def test_r1_and_path_length_double_backward(nets):
    G, D = nets
    for res, alpha in ((8, 0.5), (32, 1.0)):
        D.zero_grad(set_to_none=True)
        img = torch.randn(4, 3, res, res, requires_grad=True)
        (grad,) = torch.autograd.grad(D(img, res, alpha).sum(), img, create_graph=True)
        grad.square().sum().backward()
        grads = [p.grad for p in D.params_at(res)]
        assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.any() for g in grads)

        G.zero_grad(set_to_none=True)
        ws = G.mapping(torch.randn(4, Z)).detach().requires_grad_(True)
        out = G.synthesis(ws, res, alpha)
        (wgrad,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), ws, create_graph=True)
        wgrad.square().sum().backward()
        rgb_bias = G.synthesis_net.torgb[str(res)].bias  # a constant offset has no d img / d ws
        grads = [p.grad for p in G.params_at(res) if p is not rgb_bias]
        assert all(g is not None and torch.isfinite(g).all() and g.any() for g in grads)
        assert rgb_bias.grad is None


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_networks_have_tame_gradients(arch):
    """At initialisation (zero noise strengths) no layer may sit on a degenerate instance norm."""
    torch.manual_seed(0)
    G = Generator(arch, z_dim=Z, w_dim=Z, mapping_layers=2, max_res=16, cbase=256, cmax=32)
    D = Discriminator(arch, max_res=16, cbase=256, cmax=32)
    D(G(torch.randn(8, Z), 16, 0.5), 16, 0.5).sum().backward()
    for net in (G, D):
        worst = max(p.grad.abs().max().item() for p in net.parameters() if p.grad is not None)
        assert worst < 100


def test_bf16_autocast_forward(nets):
    G, D = nets
    z = torch.randn(4, Z)
    with torch.no_grad():
        ref = D(G(z, 32, 0.5, noise_mode="const"), 32, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = G(z, 32, 0.5, noise_mode="const")
        logits = D(img, 32, 0.5)
    assert img.shape == (4, 3, 32, 32) and torch.isfinite(img).all()
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert (logits.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.1


def test_compiles_without_graph_breaks(nets):
    G, D = nets
    torch._dynamo.reset()

    def step(z, alpha):
        return D(G(z, 16, alpha, noise_mode="random"), 16, alpha)

    compiled = torch.compile(step, backend="eager", fullgraph=True)  # fullgraph: a break is an error
    torch.manual_seed(1)
    out = compiled(torch.randn(4, Z), torch.tensor(0.3))
    assert out.shape == (4,)
    torch._dynamo.reset()


def test_build_networks_from_params():
    mp = ModelParams(arch="stylegan2", mapping_layers=3, z_dim=16, w_dim=24, cbase=128, cmax=16)
    G, D = build_networks(mp, 16)
    assert G.arch == D.arch == "stylegan2" and G.max_res == D.max_res == 16
    assert len(G.mapping_net.layers) == 3 and G.w_avg.shape == (24,)
    assert G.channels(4) == 16 and G.channels(16) == 8 and D.channels(16) == 8
    assert G(torch.randn(2, 16), 16).shape == (2, 3, 16, 16)
    assert D(torch.randn(2, 3, 16, 16), 16).shape == (2,)
