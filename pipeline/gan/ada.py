"""Adaptive discriminator augmentation, the 'bgc' pipeline of Karras et al. 2020 (StyleGAN2-ADA).

Every image D sees, real or fake, goes through twelve ops, each applied to it with probability p:
pixel blitting (x-flip, 90-degree rotation (180 on non-square images), integer translation), general geometry (isotropic scaling,
rotation, anisotropic scaling, fractional translation) and colour (brightness, contrast, luma flip, hue,
saturation). With p below about 0.8 the augmentations do not leak into G's images (the paper's
section 2.3), and p is tuned so that D stays just short of overfitting (pipeline.gan.augment.Augment).

The geometric ops are composed into one 3x3 matrix per image (in pixel units about the image centre)
that maps each output pixel to where it samples the input, and are applied once; the colour ops are
composed into one 4x4 matrix applied to the RGB values. Strengths are the paper's (Appendix B).

Where this deviates from NVlabs' implementation: the matrix is applied with bilinear sampling at the
image's own resolution (reflection at the borders), where NVlabs pads, upsamples 2x with a wavelet
filter, samples and downsamples again. At its own resolution, a matrix of whole numbers (flips, 90-degree
turns, integer shifts) samples pixel centres exactly, so blits stay lossless as the paper defines
them; the price is a little blur where a rotation or a fractional shift is applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

XINT_MAX = 0.125          # integer translation: uniform in +-0.125 x the image size, in whole pixels
SCALE_STD = 0.2           # isotropic scaling: 2^N(0, 0.2)
ROTATE_MAX = 1.0          # rotation: uniform in +-1 x pi
ANISO_STD = 0.2           # anisotropic scaling: 2^N(0, 0.2) in x and its inverse in y
XFRAC_STD = 0.125         # fractional translation: N(0, 0.125) x the image size
BRIGHTNESS_STD = 0.2      # brightness: + N(0, 0.2) on images in [-1, 1]
CONTRAST_STD = 0.5        # contrast: x 2^N(0, 0.5)
HUE_MAX = 1.0             # hue: a turn about the luma axis, uniform in +-1 x pi
SATURATION_STD = 1.0      # saturation: x 2^N(0, 1) away from the luma axis

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = GEOMETRIC + COLOUR
# The value of each op's parameter that leaves an image as it is ("rotate_post": the second rotation).
IDENTITY = {"xflip": 0.0, "rotate90": 0.0, "xint": 0.0, "scale": 1.0, "rotate": 0.0, "aniso": 1.0,
            "rotate_post": 0.0, "xfrac": 0.0, "brightness": 0.0, "contrast": 1.0, "lumaflip": 0.0, "hue": 0.0,
            "saturation": 1.0}
LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)   # the grey axis in homogeneous RGB


@dataclass
class Draw:
    """The random choices for one batch: per op, the parameter of each image (identity where the op
    was not applied), and the two matrices they compose to."""
    params: dict[str, torch.Tensor]       # op -> [N] or [N, 2] (translations: x, y in pixels)
    geometry: torch.Tensor                # [N, 3, 3] output pixel -> input pixel, about the centre
    colour: torch.Tensor                  # [N, 4, 4] homogeneous RGB -> RGB
    moved: torch.Tensor                   # [N] bool: an image a geometric op changed
    recoloured: torch.Tensor              # [N] bool: an image a colour op changed


def _translate(tx, ty):
    m = torch.eye(3, device=tx.device, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale(sx, sy):
    m = torch.eye(3, device=sx.device, dtype=sx.dtype).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta, quarter_turns: bool = False):
    """Turns content by theta, counter-clockwise as seen on screen (y points down); quarter turns get
    exact 0 and +-1 entries (cos(pi) in float32 leaves 1e-7 that would blur a blit)."""
    c, s = torch.cos(theta), torch.sin(theta)
    if quarter_turns:
        c, s = torch.round(c), torch.round(s)
    m = torch.eye(3, device=theta.device, dtype=theta.dtype).repeat(theta.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, s, -s, c
    return m


def _colour_about_luma(theta=None, scale=None, n=None, device=None):
    """4x4 matrices: a turn by theta about the luma axis (Rodrigues), or a scaling away from it."""
    v = LUMA.to(device)
    vv = torch.outer(v, v)
    eye = torch.eye(4, device=device)
    if scale is not None:
        return vv + (eye - vv) * scale.view(-1, 1, 1)
    cross = torch.tensor([[0, -v[2], v[1], 0], [v[2], 0, -v[0], 0], [-v[1], v[0], 0, 0], [0, 0, 0, 0]],
                         device=device)
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    rot = c * eye + s * cross + (1 - c) * vv
    rot[:, 3, :] = eye[3]
    return rot


class AdaPipe:
    """Draws and applies the bgc augmentations; `p` is passed per call (a float or a device tensor)."""

    def __init__(self,
        ops: tuple[str, ...] = OPS,       # which of the twelve ops run (tests take one at a time)
    ):
        unknown = set(ops) - set(OPS)
        assert not unknown, f"unknown ADA ops {sorted(unknown)}"
        self.ops = tuple(ops)

    def draw(self, n: int, height: int, width: int, p, g: torch.Generator) -> Draw:
        dev = g.device

        def rand(*shape):
            return torch.rand(n, *shape, generator=g, device=dev)

        def randn(*shape):
            return torch.randn(n, *shape, generator=g, device=dev)

        def gate(name, value, prob):
            """value where this image's coin (probability prob) says apply, else the op's identity; every
            op draws its coins whether or not it runs, so enabling one op does not change another's draws."""
            on = rand() < prob
            if value.ndim > 1:
                on = on.view(-1, 1)
            if name.removesuffix("_post") not in self.ops:
                on = torch.zeros_like(on)
            params[name] = torch.where(on, value, IDENTITY[name])

        p = p if torch.is_tensor(p) else torch.tensor(float(p), device=dev)
        # the two rotations together must turn an image with probability p: 1 - (1 - p_rot)^2 = p
        p_rot = 1 - torch.sqrt((1 - p).clamp(min=0))
        one = torch.ones(n, device=dev)
        size = torch.tensor([width, height], device=dev, dtype=torch.float32)
        params = {}
        gate("xflip", torch.floor(rand() * 2), p)
        # quarter turns of a tall image would make it wide: a non-square image turns by 0 or 2 quarters
        # (180 degrees) only, drawn from the same coin, so it still keeps its H x W (not in the paper,
        # whose images are square)
        quarters = torch.floor(rand() * 4) if height == width else 2 * torch.floor(rand() * 2)
        gate("rotate90", quarters, p)
        gate("xint", torch.round((rand(2) * 2 - 1) * XINT_MAX * size), p)
        gate("scale", torch.exp2(randn() * SCALE_STD), p)
        gate("rotate", (rand() * 2 - 1) * math.pi * ROTATE_MAX, p_rot)
        gate("aniso", torch.exp2(randn() * ANISO_STD), p)
        gate("rotate_post", (rand() * 2 - 1) * math.pi * ROTATE_MAX, p_rot)
        gate("xfrac", randn(2) * XFRAC_STD * size, p)
        gate("brightness", randn() * BRIGHTNESS_STD, p)
        gate("contrast", torch.exp2(randn() * CONTRAST_STD), p)
        gate("lumaflip", torch.floor(rand() * 2), p)
        gate("hue", (rand() * 2 - 1) * math.pi * HUE_MAX, p)
        gate("saturation", torch.exp2(randn() * SATURATION_STD), p)

        def changed(names):
            return torch.stack([(params[k] != IDENTITY[k]).reshape(n, -1).any(1) for k in names]).any(0)

        # Inverse geometry, op by op: content moved by T1 then T2 samples the input at T1^-1 T2^-1 (pixel).
        inv = torch.eye(3, device=dev).repeat(n, 1, 1)
        inv = inv @ _scale(1 - 2 * params["xflip"], one)
        inv = inv @ _rotate(-params["rotate90"] * (math.pi / 2), quarter_turns=True)
        inv = inv @ _translate(-params["xint"][:, 0], -params["xint"][:, 1])
        inv = inv @ _scale(1 / params["scale"], 1 / params["scale"])
        inv = inv @ _rotate(-params["rotate"])
        inv = inv @ _scale(1 / params["aniso"], params["aniso"])
        inv = inv @ _rotate(-params["rotate_post"])
        inv = inv @ _translate(-params["xfrac"][:, 0], -params["xfrac"][:, 1])
        moved = changed(GEOMETRIC + ("rotate_post",))

        colour = torch.eye(4, device=dev).repeat(n, 1, 1)
        shift = torch.eye(4, device=dev).repeat(n, 1, 1)
        shift[:, :3, 3] = params["brightness"].view(-1, 1)
        colour = shift @ colour
        colour = torch.diag_embed(torch.stack([params["contrast"]] * 3 + [one], 1)) @ colour
        v = LUMA.to(dev)
        colour = (torch.eye(4, device=dev) - 2 * torch.outer(v, v) * params["lumaflip"].view(-1, 1, 1)) @ colour
        colour = _colour_about_luma(theta=params["hue"], device=dev) @ colour
        colour = _colour_about_luma(scale=params["saturation"], device=dev) @ colour
        recoloured = changed(COLOUR)
        return Draw(params, inv, colour, moved, recoloured)

    def apply(self, x: torch.Tensor, d: Draw) -> torch.Tensor:
        """x [N, C, H, W] -> augmented x; images no op touched are passed through bit for bit."""
        n, c, h, w = x.shape
        assert d.geometry.shape == (n, 3, 3) and d.colour.shape == (n, 4, 4)
        out = x
        if any(op in self.ops for op in GEOMETRIC):
            out = torch.where(d.moved.view(-1, 1, 1, 1), sample(x, d.geometry), x)
        if any(op in self.ops for op in COLOUR):
            assert c == 3, f"colour augmentation needs RGB images, got {c} channel(s)"
            m = d.colour.to(torch.float64 if out.dtype == torch.float64 else torch.float32)
            flat = out.reshape(n, 3, h * w)
            recoloured = (m[:, :3, :3] @ flat.to(m.dtype) + m[:, :3, 3:]).reshape(n, 3, h, w).to(out.dtype)
            out = torch.where(d.recoloured.view(-1, 1, 1, 1), recoloured, out)
        return out

    def __call__(self, x: torch.Tensor, p, g: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape[0], x.shape[2], x.shape[3], p, g))


def sample(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of x at inv @ (output pixel), pixel coordinates about the centre, reflected at the
    borders about the edge pixels' centres (as a 'reflect' pad); differentiable in x."""
    n, _, h, w = x.shape
    work = torch.float64 if x.dtype == torch.float64 else torch.float32     # fp16/bf16 sample in fp32
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=work) - (h - 1) / 2,
                            torch.arange(w, device=x.device, dtype=work) - (w - 1) / 2, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], 0).view(1, 3, h * w)
    src = (inv.to(work) @ points)[:, :2]                                 # [N, 2, H*W] in centred pixels
    # align_corners=True: -1 and 1 are the centres of the edge pixels, so reflection is about them
    grid = torch.stack([src[:, 0] / max((w - 1) / 2, 1e-8), src[:, 1] / max((h - 1) / 2, 1e-8)], -1)
    out = F.grid_sample(x.to(work), grid.view(n, h, w, 2), mode="bilinear", padding_mode="reflection",
                        align_corners=True)
    return out.to(x.dtype)
