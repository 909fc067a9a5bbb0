"""Differentiable augmentation for small data sets (a game ships ~1000 characters, not 70,000 faces).

Reals and fakes go through the same random colour, translation and cutout before D sees them, so D
cannot memorise the few reals and G is not taught the augmentations (Zhao et al. 2020, DiffAugment).
`ada` applies each op to a sample with probability p and tunes p so that D's sign on reals stays near
a target (Karras et al. 2020, ADA), starting from no augmentation.
"""
from __future__ import annotations

import torch

ADA_INTERVAL = 4          # D steps between adjustments of p
ADA_KIMG = 100            # thousands of images for p to go from 0 to 1 at the fastest


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
    """Shift each image by up to ratio x size in x and y, filling with zeros."""
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
    """Zero a square of ratio x size at a random place in each image."""
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
    """The augmentation of one training run, with its state (ADA's p) for checkpoints."""

    def __init__(self,
        mode: str,                  # "none" | "diffaugment" | "ada"
        policy: str = "color,translation,cutout",  # ops, comma separated
        target: float = 0.6,        # ADA: wanted mean of sign(D(real))
    ):
        self.mode, self.policy, self.target = mode, parse_policy(policy), target
        self.p = 0.0 if mode == "ada" else 1.0
        self.signs, self.count = None, 0          # ADA: running sum of sign(D(real)) since the last adjustment

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.mode == "none" or (self.mode == "ada" and self.p <= 0):
            return x
        for name in self.policy:
            for op in OPS[name]:
                y = op(x, g)
                if self.mode == "ada":
                    keep = _rand(x.shape[0], g).to(x.device) >= self.p
                    y = torch.where(keep, x, y)
                x = y
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """ADA: record D's verdict on reals (on the device: no host sync)."""
        if self.mode != "ada":
            return
        s = real_logits.detach().sign().sum()
        self.signs = s if self.signs is None else self.signs + s
        self.count += real_logits.numel()

    def adjust(self, batch: int) -> None:
        """ADA: move p towards the target (reads the sums: call it at a step that syncs anyway)."""
        if self.mode != "ada" or self.signs is None or self.count == 0:
            return
        rt = float(self.signs) / self.count
        step = self.count / (ADA_KIMG * 1000)
        self.p = float(min(1.0, max(0.0, self.p + (step if rt > self.target else -step))))
        self.signs, self.count = None, 0

    def state_dict(self) -> dict:
        signs = None if self.signs is None else float(self.signs)
        return {"mode": self.mode, "p": self.p, "signs": signs, "count": self.count}

    def load_state_dict(self, state: dict, device=None) -> None:
        if state.get("mode") != self.mode:
            return
        self.p, self.count = float(state["p"]), int(state.get("count", 0))
        signs = state.get("signs")
        self.signs = None if signs is None else torch.tensor(signs, device=device)
