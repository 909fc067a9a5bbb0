"""Every PIL mode flattens to RGB; compositing, dropping alpha and trimming do what they say."""
import io

import numpy as np
import pytest
from PIL import Image

from pipeline.extract.images import alpha_bbox, flatten, open_image, to_rgba


def png(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_every_mode_becomes_rgb():
    base = Image.new("RGBA", (8, 6), (200, 100, 50, 128))
    modes = {
        "P": base.convert("RGB").convert("P"),
        "LA": base.convert("LA"),
        "L": base.convert("L"),
        "I;16": Image.fromarray(np.full((6, 8), 40000, np.uint16)),
        "CMYK": base.convert("RGB").convert("CMYK"),
        "RGB": base.convert("RGB"),
        "RGBA": base,
        "1": base.convert("1"),
        "I": base.convert("I"),
        "F": base.convert("F"),
    }
    for mode, im in modes.items():
        out = flatten(im)
        assert out.mode == "RGB" and out.size == (8, 6), mode


def test_i16_is_scaled_not_clipped():
    im = Image.fromarray(np.full((2, 2), 32768, np.uint16))
    assert to_rgba(im).getpixel((0, 0))[0] == 128


def test_palette_transparency_is_kept():
    p = Image.new("P", (4, 4), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.info["transparency"] = 0
    rgba = to_rgba(p)
    assert rgba.getpixel((0, 0))[3] == 0 and rgba.getpixel((1, 1)) == (0, 255, 0, 255)
    assert flatten(p, background=(0, 0, 255)).getpixel((0, 0)) == (0, 0, 255)


def test_composite_blends_on_the_background_and_drop_alpha_ignores_it():
    im = Image.new("RGBA", (2, 1), (200, 100, 0, 0))
    im.putpixel((1, 0), (200, 100, 0, 128))
    out = flatten(im, "composite", (255, 255, 255))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (227, 177, 127)   # 200 * 128/255 + 255 * 127/255 = 227.4
    assert flatten(im, "drop_alpha").getpixel((0, 0)) == (200, 100, 0)


def test_trim_crops_to_opaque_pixels():
    im = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    for x in range(5, 9):
        im.putpixel((x, 3), (255, 0, 0, 255))
    assert alpha_bbox(im) == (5, 3, 9, 4)
    assert flatten(im, trim=True).size == (4, 1)
    assert flatten(Image.new("RGBA", (3, 3), (0, 0, 0, 0)), trim=True).size == (3, 3)  # nothing opaque


def test_open_image_refuses_bombs_and_garbage():
    big = png(Image.new("1", (3000, 3000)))
    with pytest.raises(ValueError, match="decompression-bomb"):
        open_image(big, max_pixels=1_000_000)
    assert open_image(big, max_pixels=10_000_000).size == (3000, 3000)
    with pytest.raises(ValueError, match="not a readable image"):
        open_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, max_pixels=100)
    with pytest.raises(ValueError, match="not a readable image"):
        open_image(png(Image.new("RGB", (50, 50)))[:60], max_pixels=10_000)
