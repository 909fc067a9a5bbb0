"""Image grids: batches of generated images laid out as one PNG, with optional row/column headers."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output [N, 3, H, W] in about [-1, 1] -> uint8 [N, H, W, 3]."""
    assert images.ndim == 4 and images.shape[1] == 3, images.shape
    x = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid(images: np.ndarray, rows: int, cols: int, pad: int = 0, fill=(255, 255, 255)) -> Image.Image:
    """uint8 [rows*cols, H, W, 3] -> one image of cells H x W (square or tall), row-major; missing cells
    stay `fill`."""
    assert images.ndim == 4 and images.shape[3] == 3 and len(images) <= rows * cols, images.shape
    h, w = images.shape[1:3]
    canvas = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), fill)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas.paste(Image.fromarray(img), (c * (w + pad), r * (h + pad)))
    return canvas


def enlarge(img: Image.Image, factor: int) -> Image.Image:
    """Nearest-neighbour enlargement by a whole factor: every pixel becomes factor x factor (shape kept)."""
    assert factor >= 1, factor
    return img if factor == 1 else img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def upscale(img: Image.Image, min_side: int = 256) -> Image.Image:
    """Enlarge tiny grids with nearest neighbour so 8x8 samples can be seen (pixels stay pixels): by the
    whole factor that brings the grid's short side to at least min_side."""
    return enlarge(img, max(1, -(-min_side // min(img.size))))
