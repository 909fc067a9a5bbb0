"""StyleGAN generator and discriminator that grow progressively, for arch "stylegan" and "stylegan2".

All blocks up to `max_res` exist from the start; `forward` takes the resolution trained now
(`res`, a power of two from 4 to max_res) and the fade-in weight `alpha` of its newest block:
  G: img = lerp(up(rgb at res/2), rgb at res, alpha)           (stylegan)
     img = up(img at res/2) + alpha * toRGB_res(x)             (stylegan2, skip outputs)
  D: x = lerp(fromRGB_res/2(down(img)), block_res(fromRGB_res(img)), alpha)
so at alpha 0 G draws exactly up(G at res/2) and D sees exactly down(img) at res/2. Reals are blended
the same way by the trainer: lerp(up(down(x)), x, alpha). (up, down) = image_resampling(arch): nearest
and average pool for stylegan (as StyleGAN), the [1, 3, 3, 1] FIR pair for stylegan2 (as StyleGAN2;
nearest there paints 4-pixel tiles). RESAMPLE_VERSION is recorded in every checkpoint: version 1
(before the FIR pair) stylegan2 checkpoints still draw as they were drawn.

Shape: `aspect` 1 draws res x res images; aspect 2 draws res tall and res/2 wide (full-body
characters), from a learned constant 4 tall x 2 wide, every feature map and noise buffer at that shape
(asserted). The ladder of ws and the mapping network are in pipeline.gan.mapping.
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.gan.layers import (
    Blur,
    EqualConv2d,
    EqualLinear,
    NoiseInput,
    clamp,
    downsample,
    downsample_fir,
    instance_norm,
    lrelu,
    minibatch_std,
    upsample,
    upsample_fir,
)
from pipeline.gan.mapping import MappingNetwork, fading, mix_ws, num_ws, resolutions, shape_at, style_bands
from pipeline.gan.networks_v2 import ResidualBlock, SynthesisV2
from pipeline.gan.precision import block_precision

__all__ = ["Generator", "Discriminator", "build_networks", "style_bands", "num_ws", "mix_ws",
           "image_resampling", "count_params", "resolutions", "shape_at", "RESAMPLE_VERSION", "MBSTD_GROUP"]

ARCHS = ("stylegan", "stylegan2")
RESAMPLE_VERSION = 2            # 1: stylegan2 resampled its images with nearest / average pool
MBSTD_GROUP = 4                 # samples per minibatch-stddev group (NVlabs): min(4, batch) in use


def _nearest(img: torch.Tensor) -> torch.Tensor:
    return upsample(img, 2)


def _box(img: torch.Tensor) -> torch.Tensor:
    return downsample(img, 2)


def image_resampling(arch: str, version: int = RESAMPLE_VERSION):
    """(up, down): the 2x image resampling pair of an arch (see the module docstring)."""
    if arch == "stylegan2" and version >= 2:
        return upsample_fir, downsample_fir
    return _nearest, _box


# ----------------------------------------------------------------------------------------------
# Generator


class StyleLayer(nn.Module):
    """StyleGAN layer: [conv] -> [blur] -> noise -> bias -> lrelu -> instance norm -> style (AdaIN)."""

    def __init__(self,
        in_channels: int,           # Input channels.
        out_channels: int,          # Output channels.
        w_dim: int,                 # Width of the latent w.
        res: int,                   # Output height.
        noise_gen: torch.Generator, # Draws the fixed noise buffer.
        conv: bool = True,          # False for the first 4x4 layer, which styles the constant directly.
        up: bool = False,           # Upsample 2x (nearest, fused into the conv) and blur?
        aspect: int = 1,            # Height / width of the feature maps.
    ):
        super().__init__()
        self.conv = EqualConv2d(in_channels, out_channels, 3, bias=False, up=up) if conv else None
        self.blur = Blur() if up else None
        self.noise = NoiseInput(res, out_channels, noise_gen, width=res // aspect)
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.style = EqualLinear(w_dim, 2 * out_channels)  # scale (as 1 + s) and shift per channel
        self.clamp: float | None = None     # set in fp16 blocks (pipeline.gan.precision)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if self.blur is not None:
            x = self.blur(x)
        x = lrelu(self.noise(x, noise_mode) + self.bias.view(1, -1, 1, 1))
        x = instance_norm(x)
        scale, shift = self.style(w).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return clamp(x * (1 + scale) + shift, self.clamp)


class SynthesisBlock(nn.Module):
    """Two style layers at one resolution; at 4x4 the first one styles a learned constant."""

    def __init__(self,
        in_channels: int,           # Channels coming from res/2 (ignored at 4x4).
        out_channels: int,          # Channels at this resolution.
        w_dim: int,                 # Width of the latent w.
        res: int,                   # Height of this block's output.
        noise_gen: torch.Generator, # Draws the fixed noise buffers.
        aspect: int = 1,            # Height / width of the feature maps (the constant is 4 x 4/aspect).
    ):
        super().__init__()
        self.shape = (out_channels, *shape_at(res, aspect))
        # random, not StyleGAN's ones: a flat constant makes the first instance norm divide 0 by 0
        self.const = nn.Parameter(torch.randn([1, out_channels, *shape_at(4, aspect)])) if res == 4 else None
        first_in = out_channels if res == 4 else in_channels
        self.layer0 = StyleLayer(first_in, out_channels, w_dim, res, noise_gen, conv=res > 4, up=res > 4,
                                 aspect=aspect)
        self.layer1 = StyleLayer(out_channels, out_channels, w_dim, res, noise_gen, aspect=aspect)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        assert ws.ndim == 3 and ws.shape[1] == 2
        if self.const is not None:
            x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.layer0(x, ws[:, 0], noise_mode)
        x = self.layer1(x, ws[:, 1], noise_mode)
        assert x.shape[1:] == self.shape, f"block output {list(x.shape[1:])}, expected {list(self.shape)}"
        return x


class Synthesis(nn.Module):
    """StyleGAN synthesis network: ws -> image, with a 1x1 toRGB per resolution for fading."""

    def __init__(self,
        w_dim: int,                 # Width of the latent w.
        max_res: int,               # Largest output side.
        channels: dict[int, int],   # Feature channels per resolution.
        img_channels: int,          # Output image channels.
        noise_gen: torch.Generator, # Draws the fixed noise buffers.
        aspect: int = 1,            # Height / width of every feature map.
    ):
        super().__init__()
        self.blocks = nn.ModuleDict()
        self.torgb = nn.ModuleDict()
        self.fp16_res: set[int] = set()     # blocks run in fp16 (pipeline.gan.precision.enable_fp16)
        for r in resolutions(max_res):
            self.blocks[str(r)] = SynthesisBlock(channels[max(r // 2, 4)], channels[r], w_dim, r, noise_gen, aspect)
            self.torgb[str(r)] = EqualConv2d(channels[r], img_channels, 1)

    def forward(self, ws: torch.Tensor, res: int, alpha, noise_mode: str) -> torch.Tensor:
        x, prev = None, None
        for k, r in enumerate(resolutions(res)):
            context, x = block_precision(self.fp16_res, r, x, ws.device.type)
            with context:
                x = self.blocks[str(r)](x, ws[:, 2 * k: 2 * k + 2], noise_mode)
                if r == res // 2 and fading(res, alpha):
                    prev = upsample(self.torgb[str(r)](x), 2).float()
                if r == res:
                    img = self.torgb[str(res)](x).float()
        if prev is not None:
            img = prev + (img - prev) * alpha  # not torch.lerp: operands may differ in dtype under autocast
        return img

    def params_at(self, res: int) -> list[nn.Parameter]:
        return list(self.blocks[str(res)].parameters()) + list(self.torgb[str(res)].parameters())


class Generator(nn.Module):
    def __init__(self,
        arch: str = "stylegan",     # "stylegan" (AdaIN, the paper's) or "stylegan2" (demodulation, skips).
        z_dim: int = 512,           # Input latent width.
        w_dim: int = 512,           # Intermediate latent width.
        mapping_layers: int = 8,    # Layers of the mapping network.
        max_res: int = 256,         # Largest output height; all blocks up to it are built now.
        cbase: int = 16384,         # Channels at resolution r: min(cbase // r, cmax).
        cmax: int = 512,            # Most channels of any layer.
        mapping_lr_mult: float = 0.01,  # Learning-rate multiplier of the mapping network.
        img_channels: int = 3,      # Output image channels.
        noise_seed: int = 0,        # Seed of the fixed ("const") noise buffers.
        resample_version: int = RESAMPLE_VERSION,  # Image resampling (1: as checkpoints before the FIR pair).
        aspect: int = 1,            # Height / width of the images: 1 square, 2 tall (res x res/2).
    ):
        super().__init__()
        assert arch in ARCHS, f"arch must be one of {ARCHS}, got {arch!r}"
        shape_at(4, aspect)         # asserts the aspect
        self.arch, self.z_dim, self.w_dim, self.max_res, self.aspect = arch, z_dim, w_dim, max_res, aspect
        self.resample_version = resample_version
        self.upsample_image, _ = image_resampling(arch, resample_version)
        self.cbase, self.cmax, self.img_channels = cbase, cmax, img_channels
        self.resolutions = resolutions(max_res)
        self.mapping_net = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_mult)
        channels = {r: self.channels(r) for r in self.resolutions}
        noise_gen = torch.Generator().manual_seed(noise_seed)
        self.synthesis_net = (Synthesis(w_dim, max_res, channels, img_channels, noise_gen, aspect)
                              if arch == "stylegan" else
                              SynthesisV2(w_dim, max_res, channels, img_channels, noise_gen, self.upsample_image, aspect))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def channels(self, res: int) -> int:
        return min(self.cbase // res, self.cmax)

    def num_ws(self, res: int) -> int:
        assert res <= self.max_res, f"res {res} is above max_res {self.max_res}"
        return num_ws(res)

    def mapping(self, z: torch.Tensor, psi: float = 1.0, trunc_cutoff: int | None = None,
                update_w_avg_beta: float | None = None) -> torch.Tensor:
        """z [N, z_dim] -> ws [N, num_ws(max_res), w_dim], truncated towards w_avg for ws[:, :trunc_cutoff]."""
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"z must be [N, {self.z_dim}], got {list(z.shape)}"
        w = self.mapping_net(z)
        if update_w_avg_beta is not None:  # running mean of w over training, for truncation
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(dim=0).lerp(self.w_avg, update_w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws(self.max_res), 1)
        if psi != 1:
            cut = ws.shape[1] if trunc_cutoff is None else trunc_cutoff
            head = self.w_avg + (ws[:, :cut] - self.w_avg) * psi
            ws = torch.cat([head.to(ws.dtype), ws[:, cut:]], dim=1)
        return ws

    def synthesis(self, ws: torch.Tensor, res: int, alpha=1.0, noise_mode: str = "random") -> torch.Tensor:
        """ws [N, >= num_ws(res), w_dim] -> images [N, img_channels, res, res // aspect] in about [-1, 1].

        alpha: float or 0-d tensor in [0, 1]; a float 1 skips the fade path, a tensor always blends
        (under torch.compile pass a tensor while fading, or each new float value may recompile).
        """
        assert res in self.resolutions, f"res {res} is not one of {self.resolutions}"
        assert ws.ndim == 3 and ws.shape[1] >= num_ws(res) and ws.shape[2] == self.w_dim, \
            f"ws must be [N, >={num_ws(res)}, {self.w_dim}], got {list(ws.shape)}"
        img = self.synthesis_net(ws, res, alpha, noise_mode)
        assert img.shape == (ws.shape[0], self.img_channels, *shape_at(res, self.aspect)), list(img.shape)
        return img

    def forward(self, z: torch.Tensor, res: int, alpha=1.0, psi: float = 1.0,
                noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, psi=psi), res, alpha, noise_mode)

    def params_at(self, res: int) -> list[nn.Parameter]:
        """Parameters of the synthesis block and toRGB of exactly `res` (the mapping network is apart)."""
        assert res in self.resolutions, f"res {res} is not one of {self.resolutions}"
        return self.synthesis_net.params_at(res)


# ----------------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(nn.Module):
    """StyleGAN D block: 3x3 conv, lrelu, blur, 3x3 conv with 2x2 average-pool downsampling, lrelu."""

    def __init__(self,
        in_channels: int,           # Channels at this resolution.
        out_channels: int,          # Channels at res/2.
    ):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, act=True)
        self.blur = Blur()
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, act=True, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.blur(self.conv0(x)))


class DiscriminatorEpilogue(nn.Module):
    """4x4 head (4 x 2 at aspect 2): minibatch std, 3x3 conv, dense, dense to one logit."""

    def __init__(self,
        channels: int,              # Channels at 4x4.
        mbstd_group: int,           # Samples per minibatch-std group (fewer if the batch needs it).
        aspect: int = 1,            # Height / width of the 4 x 4/aspect map it reads.
    ):
        super().__init__()
        self.mbstd_group = mbstd_group
        self.shape = (channels, *shape_at(4, aspect))
        self.conv = EqualConv2d(channels + 1, channels, 3, act=True)
        self.fc = EqualLinear(channels * self.shape[1] * self.shape[2], channels, act=True)
        self.out = EqualLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == self.shape, f"D epilogue got {list(x.shape[1:])}, expected {list(self.shape)}"
        x = self.conv(minibatch_std(x, self.mbstd_group))
        return self.out(self.fc(x.flatten(1)))[:, 0]


class Discriminator(nn.Module):
    def __init__(self,
        arch: str = "stylegan",     # "stylegan" (plain blocks) or "stylegan2" (residual blocks).
        max_res: int = 256,         # Largest input height; all blocks up to it are built now.
        cbase: int = 16384,         # Channels at resolution r: min(cbase // r, cmax).
        cmax: int = 512,            # Most channels of any layer.
        mbstd_group: int = MBSTD_GROUP,  # Samples per minibatch-std group (at most: min(it, batch)).
        img_channels: int = 3,      # Input image channels.
        resample_version: int = RESAMPLE_VERSION,  # Image resampling (1: as checkpoints before the FIR pair).
        aspect: int = 1,            # Height / width of the images: 1 square, 2 tall (res x res/2).
    ):
        super().__init__()
        assert arch in ARCHS, f"arch must be one of {ARCHS}, got {arch!r}"
        shape_at(4, aspect)         # asserts the aspect
        self.arch, self.max_res, self.cbase, self.cmax, self.aspect = arch, max_res, cbase, cmax, aspect
        self.resample_version = resample_version
        _, self.downsample_image = image_resampling(arch, resample_version)
        self.img_channels = img_channels
        self.resolutions = resolutions(max_res)
        block = DiscriminatorBlock if arch == "stylegan" else \
            (lambda cin, cout: ResidualBlock(cin, cout, self.downsample_image))
        self.fromrgb = nn.ModuleDict()
        self.blocks = nn.ModuleDict()
        self.fp16_res: set[int] = set()     # blocks run in fp16 (pipeline.gan.precision.enable_fp16)
        for r in self.resolutions:
            self.fromrgb[str(r)] = EqualConv2d(img_channels, self.channels(r), 1, act=True)
            self.blocks[str(r)] = (DiscriminatorEpilogue(self.channels(4), mbstd_group, aspect) if r == 4
                                   else block(self.channels(r), self.channels(r // 2)))

    def channels(self, res: int) -> int:
        return min(self.cbase // res, self.cmax)

    def forward(self, img: torch.Tensor, res: int, alpha=1.0) -> torch.Tensor:
        """img [N, img_channels, res, res // aspect] -> logits [N]; alpha as in Generator.synthesis."""
        assert res in self.resolutions, f"res {res} is not one of {self.resolutions}"
        h, w = shape_at(res, self.aspect)
        assert img.ndim == 4 and img.shape[1:] == (self.img_channels, h, w), \
            f"img must be [N, {self.img_channels}, {h}, {w}], got {list(img.shape)}"
        context, x = block_precision(self.fp16_res, res, img, img.device.type)
        with context:
            x = self.fromrgb[str(res)](x)
            if res > 4:
                x = self.blocks[str(res)](x)
        if res > 4 and fading(res, alpha):
            context, small = block_precision(self.fp16_res, res // 2, self.downsample_image(img), img.device.type)
            with context:
                old = self.fromrgb[str(res // 2)](small)
            x = old + (x - old) * alpha
        for r in reversed(resolutions(res // 2) if res > 4 else [4]):
            context, x = block_precision(self.fp16_res, r, x, img.device.type)
            with context:
                x = self.blocks[str(r)](x)
        x = x.float()
        assert x.shape == (img.shape[0],)
        return x

    def params_at(self, res: int) -> list[nn.Parameter]:
        """Parameters of the fromRGB and block of exactly `res` (at 4: the minibatch-std head)."""
        assert res in self.resolutions, f"res {res} is not one of {self.resolutions}"
        return list(self.fromrgb[str(res)].parameters()) + list(self.blocks[str(res)].parameters())


# ----------------------------------------------------------------------------------------------


def build_networks(model_params, max_res: int,
                   resample_version: int = RESAMPLE_VERSION) -> tuple[Generator, Discriminator]:
    """G and D from pipeline.core.params.ModelParams, built up to max_res."""
    mp = model_params
    aspect = getattr(mp, "aspect", 1)
    G = Generator(arch=mp.arch, z_dim=mp.z_dim, w_dim=mp.w_dim, mapping_layers=mp.mapping_layers,
                  max_res=max_res, cbase=mp.cbase, cmax=mp.cmax, mapping_lr_mult=mp.mapping_lr_mult,
                  resample_version=resample_version, aspect=aspect)
    D = Discriminator(arch=mp.arch, max_res=max_res, cbase=mp.cbase, cmax=mp.cmax,
                      resample_version=resample_version, aspect=aspect)
    return G, D


def count_params(module: nn.Module, res: int | None = None) -> int:
    """Parameters of G or D used up to `res` (blocks <= res, plus G's mapping); res None = all."""
    if res is None:
        return sum(p.numel() for p in module.parameters())
    params = [p for r in resolutions(res) for p in module.params_at(r)]
    if isinstance(module, Generator):
        params += list(module.mapping_net.parameters())
    return sum(p.numel() for p in params)
