"""Building blocks shared by the StyleGAN and StyleGAN2 networks (networks.py, networks_v2.py).

Image resampling, one pair per arch, used alike for skip outputs, fade-in and blending the reals, so
that fading between resolutions is exact:
  stylegan:   upsample(img, 2) nearest neighbour; downsample(img, 2) 2x2 average pool (as StyleGAN)
  stylegan2:  upsample_fir / downsample_fir, the [1, 3, 3, 1] filter pair of StyleGAN2 (NVlabs upfirdn2d)
Equalised learning rate: every weight is stored as N(0, 1) / lr_mult and scaled by
lr_mult / sqrt(fan_in) at run time, so Adam moves all layers at the same relative speed.
Leaky ReLU carries a gain of sqrt(2) so activations keep unit variance through the stack.
Nothing here works in place, so the graphs support double backward (R1, path length).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def clamp(x: torch.Tensor, limit: float | None) -> torch.Tensor:
    """Activations kept within +-limit (fp16 layers, NVlabs conv_clamp); None: unchanged."""
    return x if limit is None else x.clamp(-limit, limit)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def upsample(img: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling; the one used for fade-in, skip outputs and real-image blending."""
    return F.interpolate(img, scale_factor=factor, mode="nearest")


def downsample(img: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box (average-pool) downsampling; the one used for fade-in in D and real-image blending."""
    return F.avg_pool2d(img, factor)


# StyleGAN2's resampling filter (NVlabs upfirdn2d, f = [1, 3, 3, 1]): separable, normalised to sum 1.
FIR_TAPS = (1, 3, 3, 1)


def _fir(x: torch.Tensor, gain: float) -> torch.Tensor:
    """[C, 1, 4, 4] depthwise kernel of FIR_TAPS x FIR_TAPS / 64 * gain, in x's dtype and device."""
    f = torch.tensor(FIR_TAPS, dtype=torch.float32, device=x.device)
    k = f[:, None] * f[None, :]
    k = (k / k.sum() * gain).to(x.dtype)
    return k[None, None].expand(x.shape[1], 1, 4, 4)


def upsample_fir(img: torch.Tensor) -> torch.Tensor:
    """2x up as NVlabs upsample2d: zero insertion, then the [1,3,3,1] filter (2-D, gain 4), zero padded
    2 before and 1 after. As one depthwise transposed conv (the filter is symmetric, so padding 1 there
    is that alignment); equal to nearest then the [1, 2, 1] blur. [N, C, H, W] -> [N, C, 2H, 2W]."""
    return F.conv_transpose2d(img, _fir(img, 4.0), stride=2, padding=1, groups=img.shape[1])


def downsample_fir(img: torch.Tensor) -> torch.Tensor:
    """2x down as NVlabs downsample2d: the [1,3,3,1] filter (2-D, gain 1), zero padded 1 on each side,
    then every second pixel. [N, C, H, W] -> [N, C, H/2, W/2]."""
    return F.conv2d(img, _fir(img, 1.0), stride=2, padding=1, groups=img.shape[1])


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm of a latent: each row scaled to unit root mean square."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample, per-channel zero mean and unit variance; statistics in float32 even under autocast."""
    x = x.float()
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * torch.rsqrt(x.square().mean(dim=[2, 3], keepdim=True) + eps)


def minibatch_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append one feature map: the mean standard deviation of the features across a group of samples."""
    N, C, H, W = x.shape
    G = min(group_size, N)          # as NVlabs: a batch the group does not divide is an error, not a
    assert N % G == 0, f"minibatch-stddev groups of {G} do not divide a batch of {N}"   # group of 1
    y = x.float().reshape(G, N // G, C, H, W)  # sample g * (N // G) + n is member g of group n
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [N // G, C, H, W]
    y = y.mean(dim=[1, 2, 3]).reshape(1, N // G, 1, 1, 1)
    y = y.expand(G, -1, 1, H, W).reshape(N, 1, H, W)
    return torch.cat([x, y.to(x.dtype)], dim=1)


def _fused_kernel(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] -> [O, I, 4, 4]: the 3x3 kernel summed over the four shifts of a 2x2 block.

    Summed with the kernel taps as the leading dims (a strided view): the same sums in the same order,
    but over long contiguous rows, about 3x faster on a CPU than over the rows of 4 of [O, I, 4, 4]."""
    w = F.pad(weight.permute(2, 3, 0, 1), [0, 0, 0, 0, 1, 1, 1, 1])   # [5, 5, O, I]
    return (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]).permute(2, 3, 0, 1)


# The fused strided convs below pay on maps of some size; on the smallest tall maps (a side of 2 going
# up, of 4 going down) the plain pair is measured 2x faster on a CPU, and the maths is the same. Square
# networks never meet those sides, so they keep the fused path everywhere and their numbers as before.
PLAIN_UP_BELOW, PLAIN_DOWN_BELOW = 4, 8       # short side of the input


def conv_up2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Exactly upsample(x, 2) then a 3x3 conv (padding 1), as one strided transposed conv (2.25x fewer MACs)."""
    assert weight.shape[2:] == (3, 3)
    if min(x.shape[2:]) < PLAIN_UP_BELOW:
        return F.conv2d(upsample(x, 2), weight, padding=1)
    w = _fused_kernel(weight).flip([2, 3]).transpose(0, 1)  # conv_transpose2d wants [I, O, k, k], flipped
    return F.conv_transpose2d(x, w, stride=2, padding=1)


def conv_down2(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Exactly a 3x3 conv (padding 1) then downsample(x, 2), as one strided 4x4 conv (2.25x fewer MACs)."""
    assert weight.shape[2:] == (3, 3)
    if min(x.shape[2:]) < PLAIN_DOWN_BELOW:
        return downsample(F.conv2d(x, weight, padding=1), 2)
    return F.conv2d(x, _fused_kernel(weight) / 4, stride=2, padding=1)


class Blur(nn.Module):
    """Binomial low-pass filter as a depthwise conv2d, size preserving; taps [1, 2, 1] as in StyleGAN."""

    def __init__(self, taps=(1, 2, 1)):
        super().__init__()
        assert len(taps) % 2 == 1, "an odd number of taps keeps the image centred"
        k = torch.tensor(taps, dtype=torch.float32)
        k = k[:, None] * k[None, :]
        self.register_buffer("kernel", (k / k.sum())[None, None], persistent=False)  # [1, 1, k, k]
        self.pad = len(taps) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        k = self.kernel.expand(C, 1, -1, -1).to(x.dtype)
        return F.conv2d(x, k, padding=self.pad, groups=C)


class EqualLinear(nn.Module):
    def __init__(self,
        in_features: int,           # Input width.
        out_features: int,          # Output width.
        bias: bool = True,          # Add a learned bias?
        bias_init: float = 0.0,     # Initial value of the bias (as seen at run time).
        lr_mult: float = 1.0,       # Learning-rate multiplier (0.01 in the mapping network).
        act: bool = False,          # Leaky ReLU after the bias?
    ):
        super().__init__()
        if lr_mult <= 0:
            raise ValueError(f"lr_mult must be positive, got {lr_mult}")
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_mult)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mult)) if bias else None
        self.weight_gain = lr_mult / math.sqrt(in_features)
        self.lr_mult = lr_mult
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = None if self.bias is None else self.bias * self.lr_mult
        x = F.linear(x, self.weight * self.weight_gain, b)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self,
        in_channels: int,           # Input channels.
        out_channels: int,          # Output channels.
        kernel_size: int,           # Square kernel side (odd).
        bias: bool = True,          # Add a learned bias?
        act: bool = False,          # Leaky ReLU after the bias?
        up: bool = False,           # Nearest-upsample 2x before the conv (fused; 3x3 only).
        down: bool = False,         # 2x2 average pool after the conv (fused; 3x3 only).
    ):
        super().__init__()
        assert not (up and down) and (kernel_size == 3 or not (up or down))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act, self.up, self.down = act, up, down
        self.clamp: float | None = None     # set in fp16 blocks (pipeline.gan.precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.up:
            x = conv_up2(x, w)
        elif self.down:
            x = conv_down2(x, w)
        else:
            x = F.conv2d(x, w, padding=w.shape[-1] // 2)
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        return clamp(lrelu(x) if self.act else x, self.clamp)


class NoiseInput(nn.Module):
    """Adds one-channel noise scaled per channel (StyleGAN) or by one scalar (StyleGAN2)."""

    def __init__(self,
        res: int,                   # Height of the feature maps it is added to.
        channels: int,              # Learned scales: feature channels, or 1 for a single scalar.
        generator: torch.Generator, # Draws the fixed "const" noise, so it is the same for every build.
        width: int | None = None,   # Width of those maps (None: res, square).
    ):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros([channels]))
        self.register_buffer("const", torch.randn([1, 1, res, width or res], generator=generator))

    def forward(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor:
        assert noise_mode in ("random", "const", "none"), noise_mode
        if noise_mode == "none":
            return x
        if noise_mode == "const":
            noise = self.const
            assert noise.shape[2:] == x.shape[2:], f"noise buffer {list(noise.shape[2:])}, maps {list(x.shape[2:])}"
        else:
            N, _, H, W = x.shape
            noise = torch.randn([N, 1, H, W], device=x.device, dtype=x.dtype)
        return x + noise * self.strength.view(1, -1, 1, 1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 conv: weights scaled per input channel by a style from w, then (optionally) demodulated.

    The styles are applied to the activations rather than to per-sample weight copies: the same
    maths (conv is linear per input channel), but one ordinary batched conv instead of a grouped
    one, which is what the StyleGAN2 authors train with too.
    """

    def __init__(self,
        in_channels: int,           # Input channels.
        out_channels: int,          # Output channels.
        kernel_size: int,           # Square kernel side (odd).
        w_dim: int,                 # Width of the latent w the style comes from.
        demodulate: bool = True,    # Rescale each output feature to unit expected variance?
        up: bool = False,           # Nearest-upsample 2x before the conv (fused; 3x3 only).
    ):
        super().__init__()
        assert kernel_size == 3 or not up
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate, self.up = demodulate, up
        self.fp16 = False           # set in fp16 blocks: normalise weights and styles first

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        styles = self.affine(w)  # [N, C]
        assert styles.shape == (N, C)
        weight = self.weight * self.weight_gain
        if self.fp16 and self.demodulate:
            # NVlabs: bring both to a largest magnitude of 1 (times the gain) so the fp16 product cannot
            # overflow; demodulation divides each output by its own norm, so the result is unchanged
            weight = weight * (self.weight_gain / weight.abs().amax(dim=[1, 2, 3], keepdim=True))
            styles = styles / styles.abs().amax(dim=1, keepdim=True)
        x = x * styles.view(N, C, 1, 1)
        x = conv_up2(x, weight) if self.up else F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if self.demodulate:  # 1 / |modulated weight| per sample and output channel
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8)  # [N, O]
            x = x * dcoefs.view(N, -1, 1, 1)
        return x
