"""The StyleGAN2 parts of networks.py: modulated synthesis with skip outputs, residual D block.

Same growing scheme as StyleGAN: the image of resolution r is up(image at r/2) + toRGB_r(x), and the
newest block's toRGB is scaled by alpha while it fades in; `up` is StyleGAN2's [1, 3, 3, 1] FIR
upsampling (the Generator passes its pair), and nothing filters the image after the sum. Upsampling of features
is nearest (fused into the conv) followed by a [1, 2, 1] blur, which equals that FIR upsampling; the
residual D block's shortcut downsamples with the FIR filter too.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.gan.layers import (
    Blur,
    EqualConv2d,
    ModulatedConv2d,
    NoiseInput,
    clamp,
    downsample_fir,
    lrelu,
    upsample_fir,
)
from pipeline.gan.mapping import fading, resolutions, shape_at
from pipeline.gan.precision import block_precision


class SynthesisLayerV2(nn.Module):
    """Modulated 3x3 conv (demodulated) -> [blur] -> noise -> bias -> lrelu."""

    def __init__(self,
        in_channels: int,           # Input channels.
        out_channels: int,          # Output channels.
        w_dim: int,                 # Width of the latent w.
        res: int,                   # Output height.
        noise_gen: torch.Generator, # Draws the fixed noise buffer.
        up: bool = False,           # Upsample 2x (nearest, fused into the conv) and blur?
        aspect: int = 1,            # Height / width of the feature maps.
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.blur = Blur() if up else None
        # one learned strength per layer, as in StyleGAN2
        self.noise = NoiseInput(res, 1, noise_gen, width=res // aspect)
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.clamp: float | None = None     # set in fp16 blocks (pipeline.gan.precision)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        x = self.conv(x, w)
        if self.blur is not None:
            x = self.blur(x)
        return clamp(lrelu(self.noise(x, noise_mode) + self.bias.view(1, -1, 1, 1)), self.clamp)


class ToRGBV2(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias; no activation."""

    def __init__(self,
        in_channels: int,           # Feature channels.
        img_channels: int,          # Image channels.
        w_dim: int,                 # Width of the latent w.
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros([img_channels]))
        self.clamp: float | None = None     # set in fp16 blocks (pipeline.gan.precision)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return clamp(self.conv(x, w) + self.bias.view(1, -1, 1, 1), self.clamp)


class SynthesisBlockV2(nn.Module):
    """One resolution: two modulated layers (one at 4x4, on a learned constant)."""

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
        self.const = nn.Parameter(torch.randn([1, out_channels, *shape_at(4, aspect)])) if res == 4 else None
        self.layer0 = SynthesisLayerV2(in_channels, out_channels, w_dim, res, noise_gen, up=True, aspect=aspect) \
            if res > 4 else None
        self.layer1 = SynthesisLayerV2(out_channels, out_channels, w_dim, res, noise_gen, aspect=aspect)
        self.num_conv = 1 if res == 4 else 2

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str) -> torch.Tensor:
        assert ws.ndim == 3 and ws.shape[1] == self.num_conv
        if self.const is not None:
            x = self.const.expand(ws.shape[0], -1, -1, -1)
        if self.layer0 is not None:
            x = self.layer0(x, ws[:, 0], noise_mode)
        x = self.layer1(x, ws[:, -1], noise_mode)
        assert x.shape[1:] == self.shape, f"block output {list(x.shape[1:])}, expected {list(self.shape)}"
        return x


class SynthesisV2(nn.Module):
    """StyleGAN2 synthesis network with skip outputs: the image is a sum of upsampled toRGBs."""

    def __init__(self,
        w_dim: int,                 # Width of the latent w.
        max_res: int,               # Largest output side.
        channels: dict[int, int],   # Feature channels per resolution.
        img_channels: int,          # Output image channels.
        noise_gen: torch.Generator, # Draws the fixed noise buffers.
        upsample_image=upsample_fir,  # 2x upsampling of the skip sum (the Generator's image pair).
        aspect: int = 1,            # Height / width of every feature map.
    ):
        super().__init__()
        self.upsample_image = upsample_image
        self.blocks = nn.ModuleDict()
        self.torgb = nn.ModuleDict()
        self.fp16_res: set[int] = set()     # blocks run in fp16 (pipeline.gan.precision.enable_fp16)
        for r in resolutions(max_res):
            self.blocks[str(r)] = SynthesisBlockV2(channels[max(r // 2, 4)], channels[r], w_dim, r, noise_gen, aspect)
            self.torgb[str(r)] = ToRGBV2(channels[r], img_channels, w_dim)

    def forward(self, ws: torch.Tensor, res: int, alpha, noise_mode: str) -> torch.Tensor:
        fade = fading(res, alpha)
        x, img = None, None
        for k, r in enumerate(resolutions(res)):
            context, x = block_precision(self.fp16_res, r, x, ws.device.type)
            with context:
                # ws 2k-1, 2k drive the convs and 2k+1 the toRGB, which the next block's first conv shares
                x = self.blocks[str(r)](x, ws[:, max(2 * k - 1, 0): 2 * k + 1], noise_mode)
                y = self.torgb[str(r)](x, ws[:, 2 * k + 1]).float()     # the skip sum stays in fp32
            if img is None:
                img = y
            elif r == res and fade:
                img = self.upsample_image(img) + y * alpha
            else:
                img = self.upsample_image(img) + y
        return img

    def params_at(self, res: int) -> list[nn.Parameter]:
        return list(self.blocks[str(res)].parameters()) + list(self.torgb[str(res)].parameters())


class ResidualBlock(nn.Module):
    """StyleGAN2 D block: conv, blur, downsampling conv, plus a 1x1 skip of the FIR-downsampled input."""

    def __init__(self,
        in_channels: int,           # Channels at this resolution.
        out_channels: int,          # Channels at res/2.
        downsample_image=downsample_fir,  # The shortcut's 2x downsampling (the D's image pair).
    ):
        super().__init__()
        self.downsample_image = downsample_image
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, act=True)
        self.blur = Blur()
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, act=True, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(self.downsample_image(x))
        x = self.conv1(self.blur(self.conv0(x)))
        return (x + y) * math.sqrt(0.5)  # keeps the sum at unit variance
