"""Augmentation of what D sees, for small data sets (a game ships ~1000 characters, not 70,000 faces).

Reals and fakes go through the same random, differentiable ops before D sees them, so D cannot memorise
the few reals and G is not taught the augmentations.
- `diffaugment` (Zhao et al. 2020): colour, translation and cutout on every image (the ops below).
- `ada` (Karras et al. 2020): the bgc pipeline of pipeline.gan.ada, each op applied with probability p;
  p starts at 0 and every ADA_INTERVAL steps moves by batch x ADA_INTERVAL / (ada_kimg x 1000) up or
  down, as D's mean sign on reals is above or below `ada_target` (the overfitting heuristic r_t).
"""
from __future__ import annotations

import torch

from pipeline.gan.ada import AdaPipe

ADA_INTERVAL = 4          # D steps between adjustments of p (StyleGAN2-ADA)


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g, device=g.device)


def brightness(x, g):
    return x + (_rand(x.shape[0], g).to(x.dtype) - 0.5)


def saturation(x, g):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x.shape[0], g).to(x.dtype) * 2) + mean


def contrast(x, g):
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x.shape[0], g).to(x.dtype) + 0.5) + mean


def translation(x, g, ratio: float = 0.125):
    """Shift each image by up to ratio x width in x and ratio x height in y, filling with zeros."""
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    ys = (torch.arange(h, device=x.device).view(1, h, 1) + dy).clamp(-1, h) + 1
    xs = (torch.arange(w, device=x.device).view(1, 1, w) + dx).clamp(-1, w) + 1
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, ys, xs]              # [n, h, w, c]
    return out.permute(0, 3, 1, 2)


def cutout(x, g, ratio: float = 0.5):
    """Zero a rectangle of ratio x height by ratio x width at a random place in each image (a square on
    square images, as DiffAugment's; tall on tall ones)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=g.device).to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": [brightness, saturation, contrast], "translation": [translation], "cutout": [cutout]}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in OPS]
    if unknown:
        from pipeline.core.errors import ParamError
        raise ParamError("train.augment_policy", f"unknown ops {unknown}; known: {', '.join(OPS)}")
    return names


class Augment:
    """The augmentation of one training run, with its state (ADA's p) for checkpoints.

    ADA's p and its statistics live on the device as float64 (exact steps, no host sync in a step);
    `adjust` sums the statistics over all processes first, so every rank moves p the same way."""

    def __init__(self,
        mode: str,                  # "none" | "diffaugment" | "ada"
        policy: str = "color,translation,cutout",  # diffaugment: ops, comma separated
        target: float = 0.6,        # ada: wanted mean of sign(D(real))
        ada_kimg: float = 500,      # ada: thousands of images for p to go from 0 to 1 at the fastest
        device=None,                # where p and its statistics live
    ):
        self.mode, self.policy, self.target, self.ada_kimg = mode, parse_policy(policy), target, ada_kimg
        self.pipe = AdaPipe() if mode == "ada" else None
        self.p = torch.zeros([], dtype=torch.float64, device=device)
        self.stats = torch.zeros(2, dtype=torch.float64, device=device)    # sum of sign(D(real)), count

    @property
    def probability(self) -> float:
        """The p to log (reads the device: call it where the loop syncs anyway)."""
        return float(self.p) if self.mode == "ada" else float(self.mode == "diffaugment")

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.mode == "none":
            return x
        if self.mode == "ada":
            return self.pipe(x, self.p, g)
        for name in self.policy:
            for op in OPS[name]:
                x = op(x, g)
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """ADA: record D's verdict on reals (on the device: no host sync)."""
        if self.mode == "ada":
            self.stats[0] += real_logits.detach().sign().sum()
            self.stats[1] += real_logits.numel()

    def adjust(self, batch: int, world: int = 1) -> None:
        """ADA: move p one step towards the target; `batch` is the images per step of all processes."""
        if self.mode != "ada":
            return
        stats = self.stats
        if world > 1:
            import torch.distributed as dist
            stats = stats.clone()
            dist.all_reduce(stats)
        rt = stats[0] / stats[1].clamp(min=1)
        step = batch * ADA_INTERVAL / (self.ada_kimg * 1000)
        moved = (self.p + torch.sign(rt - self.target) * step).clamp(0, 1)
        self.p = torch.where(stats[1] > 0, moved, self.p)
        self.stats.zero_()

    def state_dict(self) -> dict:
        return {"mode": self.mode, "p": float(self.p), "stats": self.stats.tolist()}

    def load_state_dict(self, state: dict, device=None) -> None:
        if state.get("mode") != self.mode:
            return
        self.p = torch.tensor(float(state["p"]), dtype=torch.float64, device=device)
        # states before the bgc pipeline kept the statistics as "signs" and "count"
        stats = state.get("stats") or [state.get("signs") or 0.0, state.get("count", 0)]
        self.stats = torch.tensor(stats, dtype=torch.float64, device=device)
