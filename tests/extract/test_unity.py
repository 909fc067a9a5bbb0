"""Unity conventions, checked pixel by pixel against what the template bundles are known to hold."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.extract import unity
from tests.helpers.corpus import unknown_format
from tests.helpers.project import IMAGES, TEMPLATES


def extract(name):
    env = unity.load_environment([(name, (TEMPLATES / name).read_bytes())])
    plans, skips = unity.plan_art(env)
    return [(p, *unity.build_art(p)) for p in plans], skips


def ellipse_mask(size, box):
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).ellipse(box, fill=255)
    return np.asarray(m)


def iou(alpha, expected):
    a, b = np.asarray(alpha) > 127, np.asarray(expected) > 127
    return (a & b).sum() / (a | b).sum()


def lanczos(name, size):
    return np.asarray(Image.open(IMAGES / name).convert("RGB").resize(size, Image.Resampling.LANCZOS), np.float32)


def test_split_alpha_sprite_is_one_image_with_its_alpha():
    arts, skips = extract("synthetic_rgb_alpha_sprite.bundle")
    assert skips == []
    assert len(arts) == 1, "the alpha texture must not be exported on its own"
    plan, img, alpha = arts[0]
    assert (plan.kind, plan.asset, alpha, img.size) == ("sprite", "synth_char", "sprite_alpha", (128, 96))
    a = np.asarray(img)
    assert iou(a[..., 3], ellipse_mask((128, 96), (24, 8, 104, 88))) > 0.97
    assert tuple(a[2, 2, :3]) == (40, 120, 200)                        # background colour
    assert tuple(a[48, 64, :3]) == (250, 220, 180)                     # the ellipse


def test_sprite_alpha_texture_with_anime_face():
    (plan, img, alpha), = extract("synthetic_sprite_alphatex_face.bundle")[0]
    assert alpha == "sprite_alpha" and img.size == (256, 256)
    a = np.asarray(img).astype(np.float32)
    assert np.abs(a[..., :3] - lanczos("tadne_r1c0.jpg", (256, 256))).mean() < 2.0
    assert iou(a[..., 3], ellipse_mask((256, 256), (16, 8, 240, 254))) > 0.97


def test_name_paired_half_size_alpha8():
    arts, _ = extract("synthetic_gfl_style_face.bundle")
    assert len(arts) == 1
    plan, img, alpha = arts[0]
    assert (plan.asset, alpha, img.size) == ("pic_Synth", "paired", (256, 256))
    a = np.asarray(img).astype(np.float32)
    assert np.abs(a[..., :3] - lanczos("tadne_r0c3.jpg", (256, 256))).mean() < 2.0
    # The 128x128 Alpha8 mask (ellipse at (8,4,120,127)) scaled to 256: inside opaque, corners clear.
    assert a[128, 128, 3] == 255 and a[2, 2, 3] == 0 and a[250, 5, 3] == 0
    assert iou(a[..., 3], ellipse_mask((256, 256), (16, 8, 240, 254))) > 0.97


def test_azur_lane_painting_rebuilt_from_mesh():
    arts, _ = extract("synthetic_azurlane_painting_tex")
    assert len(arts) == 1, "neither the jumbled atlas nor its Sprite is exported"
    plan, img, alpha = arts[0]
    assert (plan.kind, alpha, img.size) == ("mesh", "mesh", (1937, 2047))
    a = np.asarray(img).astype(np.float32)
    covered = a[..., 3] > 0
    assert 0.40 < covered.mean() < 0.48                                # fixture: 44% covered
    ref = np.asarray(Image.open(IMAGES / "tadne_r2c3.jpg").convert("RGB").resize((1937, 2047), Image.Resampling.BICUBIC),
                     np.float32)
    err = np.abs(a[..., :3] - ref)[covered]
    assert err.mean() < 2.5 and np.percentile(err, 99) < 15            # ETC2 error


def test_atlas_sprites_cut_out_through_the_atlas():
    arts, _ = extract("synthetic_sprite_atlas.bundle")
    assert sorted(p.asset for p, _, _ in arts) == [f"synth_sprite_{i}" for i in range(7)]
    sources = sorted(IMAGES.glob("tadne_*.jpg"))[:7]
    for plan, img, _ in arts:
        assert plan.kind == "atlas_sprite"
        assert 111 <= img.width <= 141 and 221 <= img.height <= 328
        errs = [np.abs(np.asarray(img.convert("RGB"), np.float32) - lanczos(s.name, img.size)).mean()
                for s in sources]
        assert min(errs) < 3.0, (plan.asset, errs)


def test_alpha_mask_takes_a_when_real_else_r():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 0, 200))
    assert unity.alpha_mask(rgba, (4, 4)).getpixel((1, 1)) == 200
    grey = Image.new("RGB", (2, 2), (77, 77, 77))
    mask = unity.alpha_mask(grey, (4, 4))
    assert mask.size == (4, 4) and mask.getpixel((3, 3)) == 77


def test_unknown_texture_format_is_a_clear_error():
    env = unity.load_environment([("x", unknown_format("synthetic_gfl_style_face.bundle", 200))])
    plans, _ = unity.plan_art(env)
    with pytest.raises(ValueError, match="unknown texture format 200"):
        unity.build_art(plans[0])
