"""Colours as params.yaml writes them (`#rrggbb` or a name): flatten's background, which training and
evaluation pad with too, so it lives here and not with the image decoders."""
from __future__ import annotations

from PIL import ImageColor


def parse_colour(text: str) -> tuple[int, int, int]:
    return ImageColor.getrgb(text)[:3]
