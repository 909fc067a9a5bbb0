"""What the StyleGAN and StyleGAN2 networks share: the resolution ladder, the shape of each resolution's
images, the mapping network z -> w and the bookkeeping of the ws each resolution reads.

Latents: z -> pixel norm -> mapping MLP -> w, broadcast to ws [N, num_ws(max_res), w_dim]; the
layers of resolution r read ws[:, 2*log2(r)-4 : 2*log2(r)-2] (stylegan2 shares each toRGB's w with
the next block's first conv, as the original does), so num_ws(res) = 2*log2(res) - 2 for both.

Shape: resolution r means r pixels tall and r / aspect wide (aspect 1: square; 2: the full-body
shape, 4 x 2 at the bottom of the ladder). Everything that counts resolutions counts heights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.gan.layers import EqualLinear, normalize_2nd_moment

ASPECTS = (1, 2)                # height / width of every image and feature map


def resolutions(max_res: int) -> list[int]:
    """[4, 8, ..., max_res]; max_res must be a power of two >= 4."""
    assert max_res >= 4 and max_res & (max_res - 1) == 0, f"resolution {max_res} is not a power of two >= 4"
    return [2 ** i for i in range(2, int(math.log2(max_res)) + 1)]


def shape_at(res: int, aspect: int = 1) -> tuple[int, int]:
    """(height, width) of the images and feature maps of resolution `res`."""
    assert aspect in ASPECTS, f"aspect must be one of {ASPECTS}, got {aspect!r}"
    return res, res // aspect


def num_ws(res: int) -> int:
    """Number of w vectors the synthesis network reads up to resolution res (2 per resolution)."""
    return 2 * len(resolutions(res))


def style_bands(res: int) -> dict[str, slice]:
    """ws indices of the StyleGAN paper's bands: coarse 4-8, middle 16-32, fine 64 and up (clipped to res)."""
    n = num_ws(res)
    a, b = min(4, n), min(8, n)
    return {"coarse": slice(0, a), "middle": slice(a, b), "fine": slice(b, n)}


def mix_ws(ws: torch.Tensor, ws_other: torch.Tensor, band: slice | int | torch.Tensor) -> torch.Tensor:
    """ws with the entries in `band` taken from ws_other; an int or 0-d tensor means slice(band, None).

    Tensor bounds are fine (no host sync), so a trainer can draw the cutoff on the device.
    """
    assert ws.shape == ws_other.shape and ws.ndim == 3
    if not isinstance(band, slice):
        band = slice(band, None)
    i = torch.arange(ws.shape[1], device=ws.device)
    take = torch.ones_like(i, dtype=torch.bool)
    if band.start is not None:
        take = take & (i >= band.start)
    if band.stop is not None:
        take = take & (i < band.stop)
    return torch.where(take.view(1, -1, 1), ws_other, ws)


def fading(res: int, alpha) -> bool:
    """Whether the res/2 path is needed: a tensor alpha always blends (no data-dependent branch)."""
    return res > 4 and (torch.is_tensor(alpha) or alpha < 1)


class MappingNetwork(nn.Module):
    def __init__(self,
        z_dim: int,                 # Input latent width.
        w_dim: int,                 # Output latent width.
        num_layers: int,            # Fully connected layers (8 in StyleGAN).
        lr_mult: float,             # Learning-rate multiplier of every layer (0.01 in StyleGAN).
    ):
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(dims[i], dims[i + 1], lr_mult=lr_mult, act=True)
                                      for i in range(num_layers)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(normalize_2nd_moment(z))
