"""The GAN losses: non-saturating logistic, lazy R1 on reals, path-length regularisation (StyleGAN2).

Each function returns a scalar to backpropagate and a detached value to log; none reads a tensor back
to the host, so a step never waits for the GPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D wants high logits on reals, low on fakes: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G wants D fooled: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(D, reals: torch.Tensor, res: int, alpha, augment=None, generator=None) -> torch.Tensor:
    """Mean squared gradient norm of D on reals (Mescheder et al. 2018): keeps D smooth where data is."""
    reals = reals.detach().requires_grad_(True)
    x = augment(reals, generator) if augment is not None else reals
    logits = D(x, res, alpha)
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    assert grad.shape == reals.shape
    return grad.square().sum(dim=[1, 2, 3]).mean()


def path_length_penalty(G, z: torch.Tensor, res: int, alpha, pl_mean: torch.Tensor,
                        make_ws, decay: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length regulariser: a fixed-size step in w moves the image by a fixed amount.

    Returns (penalty, new pl_mean). `make_ws(z)` gives the ws (style mixing included) to perturb; the
    length is averaged over the ws that resolution `res` uses (NVlabs: all ws of its fixed network).
    """
    ws = make_ws(z)
    img = G.synthesis(ws, res, alpha, noise_mode="random")
    # randn of the shape (not randn_like): the same draw whatever the memory format (channels_last)
    noise = torch.randn(img.shape, device=img.device, dtype=img.dtype) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    # only the ws this resolution's layers read: the rest have zero gradient and would shrink the mean
    used = G.num_ws(res)
    assert grad.shape[1] >= used
    lengths = grad[:, :used].square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean().detach().float(), decay)
    return (lengths - new_mean).square().mean(), new_mean
