"""Image modes and flattening: any PIL image -> RGBA -> RGB on a background.

Game art arrives in every mode PIL knows (P with a transparent index, LA, I;16, CMYK, ...). Everything
is first brought to RGBA with its transparency kept, then composited.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode image bytes fully; refuse images over `max_pixels` before decoding them.

    Raises ValueError with a one-line reason for anything unreadable.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(f"{w}x{h} is over the decompression-bomb limit of {max_pixels} pixels")
            if w < 1 or h < 1:
                raise ValueError(f"empty image ({w}x{h})")
            im.load()
            return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"over the decompression-bomb limit ({e})".split(". ")[0])
    except ValueError:
        raise
    except UnidentifiedImageError:  # its message names the BytesIO object's address, new every run
        raise ValueError("not a readable image (no image format recognises it)")
    except Exception as e:  # PIL raises many types for damaged files
        raise ValueError(f"not a readable image ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    finally:
        Image.MAX_IMAGE_PIXELS = old


def to_rgba(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGBA, keeping transparency (P/L/RGB with a transparent colour, LA, PA, La, RGBa)."""
    if im.mode == "RGBA":
        return im
    if im.mode == "La":
        # Premultiplied grey+alpha, which PIL cannot convert: undo the premultiplication by hand.
        arr = np.asarray(im, dtype=np.float32)
        grey, alpha = arr[..., 0], arr[..., 1]
        grey = np.where(alpha > 0, grey * 255.0 / np.maximum(alpha, 1), 0)
        g8, a8 = np.clip(grey + 0.5, 0, 255).astype(np.uint8), alpha.astype(np.uint8)
        return Image.fromarray(np.stack([g8, g8, g8, a8], axis=-1), "RGBA")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits by the format's range, not by clipping.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
        return grey.convert("RGBA")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGBA")
    if "transparency" in im.info or im.mode in ("PA", "LA", "RGBa"):
        return im.convert("RGBA")
    try:
        return im.convert("RGB").convert("RGBA")
    except ValueError:
        raise ValueError(f"image mode {im.mode} cannot be converted to RGB")


def alpha_bbox(im: Image.Image, threshold: int = 8) -> tuple[int, int, int, int] | None:
    """Bounding box of the pixels whose alpha is above `threshold`; None when none is."""
    a = np.asarray(im.getchannel("A"))
    ys, xs = np.nonzero(a > threshold)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def flatten(im: Image.Image, mode: str = "composite", background=(255, 255, 255),
            trim: bool = False, alpha_threshold: int = 8) -> Image.Image:
    """RGBA (or any mode) -> RGB.

    composite: alpha-blend over `background` (transparent areas become background, not the arbitrary
    colour games leave under alpha 0). drop_alpha: discard alpha as the paper did.
    """
    rgba = to_rgba(im)
    if trim:
        box = alpha_bbox(rgba, alpha_threshold)
        if box is not None:
            rgba = rgba.crop(box)
    if mode == "drop_alpha":
        return rgba.convert("RGB")
    if mode != "composite":
        raise ValueError(f"unknown flatten mode {mode!r}")
    rgb = np.asarray(rgba, dtype=np.float32)
    a = rgb[..., 3:4] / 255.0
    out = rgb[..., :3] * a + np.asarray(background, dtype=np.float32) * (1.0 - a)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
