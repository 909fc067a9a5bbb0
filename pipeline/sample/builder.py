"""The built-in sample APK: `python -m pipeline.sample [--out data/raw/sample.apk]`.

It packs the 21 anime images of `data/sample/images/` into Unity asset bundles, one image per bundle,
each bundle a copy of a template from `data/sample/templates/` with its textures and names replaced.
Together they cover the ways games store character art that the extractor must undo:

  sprite_atlas  (7)  one sprite inside a SpriteAtlas texture, found through the atlas' render data
  split_alpha   (6)  RGB24 texture + grey RGB24 alpha texture linked by the Sprite's m_RD.alphaTexture
  alpha_pair    (6)  Girls' Frontline: RGB24 + half-size Alpha8 texture paired only by name
                     (suffixes `_Alpha`, `_alpha`, `#alpha`)
  azurlane_mesh (2)  Azur Lane painting: a jumbled ETC2 atlas plus a Mesh of quads that reassemble it
  rgba          (1)  a plain RGBA32 texture with real alpha and no face (the screen-tone swatch)

Around them sit files the extractor must ignore (manifest, dex, native library, audio, JSON and text,
an icon). Everything is deterministic: same inputs, same APK bytes. What went where is written to
`data/sample/manifest.json` so that tests can compare extracted pixels with the source images.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import struct
import wave
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from UnityPy.enums import TextureFormat

from pipeline.core.errors import UserError
from pipeline.core.files import write_bytes, write_json
from pipeline.core.runner import run_stage
from pipeline.sample.bundle_edit import EditableBundle, painting_quads

SAMPLE_DIR = Path("data/sample")
BUNDLE_ROOT = "assets/AssetBundles/"
# Android's reproducible builds stamp every zip entry with this date; so do we.
ZIP_DATE = (2008, 1, 1, 0, 0, 0)
# How many of the sorted tadne images each convention takes, in this order.
PLAN = [("sprite_atlas", 7), ("split_alpha", 6), ("alpha_pair", 6), ("azurlane_mesh", 2)]
ALPHA_SUFFIXES = ["_Alpha", "_Alpha", "_alpha", "_alpha", "#alpha", "#alpha"]
MANIFEST_NOTES = [
    "Written by `python -m pipeline.sample`; do not edit by hand.",
    "Pixel coordinates are top-down (row 0 at the top, as PIL shows images); boxes are "
    "[left, top, right, bottom) with right and bottom exclusive.",
    "source_image is relative to data/sample/. Textures hold the source resized with Lanczos to the "
    "texture (or sprite) size; Azur Lane paintings hold it resized bicubic to painting_size.",
    "alpha.shapes, drawn filled (255) on a black (0) mask of alpha.size with PIL ImageDraw, give the "
    "exact alpha mask (pipeline.sample.draw_mask); alpha_pair masks are half the RGB size.",
    "sprite_box is where the sprite sits in its atlas texture; the rest of the atlas is transparent.",
]
SHARED_NAME = "portrait"        # split_alpha bundles 4 and 5 both use this asset name on purpose


# --- alpha masks -------------------------------------------------------------------------------

def draw_mask(shapes: list[dict], size: tuple[int, int]) -> Image.Image:
    """A binary (0/255) L-mode mask: the union of the shapes, in the mask's own pixel coordinates."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for s in shapes:
        if "ellipse" in s:
            draw.ellipse(s["ellipse"], fill=255)
        elif "polygon" in s:
            draw.polygon([tuple(p) for p in s["polygon"]], fill=255)
        elif "rounded_rectangle" in s:
            draw.rounded_rectangle(s["rounded_rectangle"], radius=s["radius"], fill=255)
        else:
            raise ValueError(f"unknown mask shape {s}")
    return mask


def character_shapes(index: int, size: int) -> list[dict]:
    """A character-like alpha mask for a square texture, varied a little by `index`.

    Even indexes get an ellipse, odd ones a bust (head ellipse over a shoulder trapezoid). All
    are drawn on a 256 grid and scaled, so the half-size Alpha8 masks have the same shape.
    """
    def px(*values: float) -> list[int]:
        return [round(v * size / 256) for v in values]

    i = index
    if i % 2 == 0:
        return [{"ellipse": px(12 + 4 * i, 6 + 2 * i, 244 - 4 * i, 255)}]
    return [{"ellipse": px(40 + 4 * i, 6 + 2 * i, 216 - 4 * i, 176)},
            {"polygon": [px(6 + 2 * i, 255), px(36 + 2 * i, 136),
                         px(220 - 2 * i, 136), px(250 - 2 * i, 255)]}]


def alpha_record(shapes: list[dict], size: tuple[int, int]) -> dict:
    box = draw_mask(shapes, size).getbbox()
    return {"size": list(size), "shapes": shapes, "box": list(box)}


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def texture_record(name: str, container: str, image: Image.Image, fmt: TextureFormat) -> dict:
    return {"type": "Texture2D", "name": name, "container": container,
            "width": image.width, "height": image.height, "format": fmt.name}


# --- one builder per convention: each returns (bundle bytes, manifest entry) ---------------------

def build_sprite_atlas(templates: Path, image_path: Path, slot: int) -> tuple[bytes, dict]:
    """Keep template sprite `slot` (0-6), drop the other six, paint the image into its rectangle."""
    key = image_path.stem.removeprefix("tadne_")            # e.g. r0c1
    sprite_name, atlas_name = f"chara_{key}", f"Atlas_{key.upper()}"
    bundle_name = f"ui/atlas/atlas_{key}.unity3d"
    b = EditableBundle((templates / "synthetic_sprite_atlas.bundle").read_bytes())
    sprites = {b.read(o)["m_Name"]: o for o in b.objects("Sprite")}
    keep = sprites[f"synth_sprite_{slot}"]
    b.set_bundle_name(bundle_name)
    b.remove_objects(o.path_id for o in sprites.values() if o is not keep)

    sprite = b.read(keep)
    sprite["m_Name"] = sprite_name
    sprite["m_AtlasTags"] = [atlas_name]     # UnityPy finds the atlas through this tag
    b.write(keep, sprite)

    atlas_obj = b.one("SpriteAtlas")
    atlas = b.read(atlas_obj)
    render = [(k, rd) for k, rd in atlas["m_RenderDataMap"] if k == sprite["m_RenderDataKey"]]
    atlas["m_RenderDataMap"] = render
    atlas["m_PackedSprites"] = [{"m_FileID": 0, "m_PathID": keep.path_id}]
    atlas["m_PackedSpriteNamesToIndex"] = [sprite_name]
    atlas["m_Name"] = atlas["m_Tag"] = atlas_name
    b.write(atlas_obj, atlas)

    # The render data rectangle is in Unity's bottom-up pixels; readers crop it with rounded
    # corners (as UnityPy's Sprite.image does), so the image fills exactly that rounded box.
    tex_obj = b.one("Texture2D")
    tex_tree = b.read(tex_obj)
    width, height = tex_tree["m_Width"], tex_tree["m_Height"]
    r = render[0][1]["textureRect"]
    x0, y0 = round(r["x"]), round(r["y"])
    x1, y1 = round(r["x"] + r["width"]), round(r["y"] + r["height"])
    box = (x0, height - y1, x1, height - y0)                 # top-down, as PIL holds images
    art = load_rgb(image_path).resize((x1 - x0, y1 - y0), Image.LANCZOS).convert("RGBA")
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(art, box[:2])
    tex_name = f"sactx-{width}x{height}-{atlas_name}"
    b.set_texture(tex_obj, canvas, TextureFormat.RGBA32, tex_name)

    atlas_path = f"assets/ui/atlases/{atlas_name.lower()}.spriteatlas"
    sprite_path = f"assets/ui/chara/{sprite_name}.png"
    b.set_container_paths({atlas_obj.path_id: atlas_path, keep.path_id: sprite_path})
    entry = {
        "assets": [texture_record(tex_name, atlas_path, canvas, TextureFormat.RGBA32),
                   {"type": "SpriteAtlas", "name": atlas_name, "container": atlas_path},
                   {"type": "Sprite", "name": sprite_name, "container": sprite_path,
                    "width": art.width, "height": art.height}],
        "sprite_box": list(box),
    }
    return b.save(), _entry(bundle_name, "sprite_atlas", image_path, entry)


def build_split_alpha(templates: Path, image_path: Path, index: int) -> tuple[bytes, dict]:
    """RGB24 texture + grey RGB24 alpha texture, linked by the sprite's m_RD.alphaTexture."""
    key = image_path.stem.removeprefix("tadne_")
    name = SHARED_NAME if index >= 4 else f"char_{key}"
    bundle_name = f"characters/{key}/{name}.bundle" if index >= 4 else f"characters/{name}.bundle"
    b = EditableBundle((templates / "synthetic_sprite_alphatex_face.bundle").read_bytes())
    sprite_obj = b.one("Sprite")
    rd = b.read(sprite_obj)["m_RD"]
    rgb_obj = b.assets.objects[rd["texture"]["m_PathID"]]
    alpha_obj = b.assets.objects[rd["alphaTexture"]["m_PathID"]]
    b.set_bundle_name(bundle_name)

    rgb = load_rgb(image_path).resize((256, 256), Image.LANCZOS)
    shapes = character_shapes(index, 256)
    alpha = draw_mask(shapes, (256, 256)).convert("RGB")     # grey mask: R = G = B
    b.set_texture(rgb_obj, rgb, TextureFormat.RGB24, name)
    b.set_texture(alpha_obj, alpha, TextureFormat.RGB24, f"{name}_alpha")
    b.rename(sprite_obj, name)

    folder = f"assets/characters/{key}"
    paths = {rgb_obj.path_id: f"{folder}/{name}.png", sprite_obj.path_id: f"{folder}/{name}.png",
             alpha_obj.path_id: f"{folder}/{name}_alpha.png"}
    b.set_container_paths(paths)
    entry = {
        "assets": [texture_record(name, paths[rgb_obj.path_id], rgb, TextureFormat.RGB24),
                   texture_record(f"{name}_alpha", paths[alpha_obj.path_id], alpha, TextureFormat.RGB24),
                   {"type": "Sprite", "name": name, "container": paths[sprite_obj.path_id]}],
        "alpha": alpha_record(shapes, (256, 256)),
    }
    return b.save(), _entry(bundle_name, "split_alpha", image_path, entry)


def build_alpha_pair(templates: Path, image_path: Path, index: int) -> tuple[bytes, dict]:
    """Girls' Frontline style: RGB24 256x256 and Alpha8 128x128, paired only by their names."""
    key = image_path.stem.removeprefix("tadne_")
    name = f"pic_{key.upper()}"
    alpha_name = name + ALPHA_SUFFIXES[index]
    bundle_name = f"characters/pic_{key}.ab"
    b = EditableBundle((templates / "synthetic_gfl_style_face.bundle").read_bytes())
    sprite_obj = b.one("Sprite")
    rgb_obj, alpha_obj = b.one("Texture2D", "pic_Synth"), b.one("Texture2D", "pic_Synth_Alpha")
    b.set_bundle_name(bundle_name)

    rgb = load_rgb(image_path).resize((256, 256), Image.LANCZOS)
    shapes = character_shapes(index, 128)
    alpha = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    alpha.putalpha(draw_mask(shapes, (128, 128)))            # UnityPy's Alpha8 encoder reads band A
    b.set_texture(rgb_obj, rgb, TextureFormat.RGB24, name)
    b.set_texture(alpha_obj, alpha, TextureFormat.Alpha8, alpha_name)
    b.rename(sprite_obj, name)

    folder = f"assets/characters/{key}/pic"
    rgb_path = f"{folder}/{name.lower()}.png"
    paths = {rgb_obj.path_id: rgb_path, sprite_obj.path_id: rgb_path,
             alpha_obj.path_id: f"{folder}/{alpha_name.lower()}.png"}
    b.set_container_paths(paths)
    entry = {
        "assets": [texture_record(name, paths[rgb_obj.path_id], rgb, TextureFormat.RGB24),
                   texture_record(alpha_name, paths[alpha_obj.path_id], alpha, TextureFormat.Alpha8),
                   {"type": "Sprite", "name": name, "container": paths[sprite_obj.path_id]}],
        "alpha": alpha_record(shapes, (128, 128)),
    }
    return b.save(), _entry(bundle_name, "alpha_pair", image_path, entry)


def build_azurlane(templates: Path, image_path: Path, index: int = 0) -> tuple[bytes, dict]:
    """Cut the painting into the template's quads: the inverse of the Azur Lane rebuild.

    Every painting keeps the template's quad layout (`index` is unused). That layout has a hole
    where the original painting's face was: Azur Lane ships faces in separate bundles.
    """
    key = image_path.stem.removeprefix("tadne_")
    bundle_name = f"painting/{key}_tex"
    b = EditableBundle((templates / "synthetic_azurlane_painting_tex").read_bytes())
    tex_obj, mesh_obj, sprite_obj = b.one("Texture2D"), b.one("Mesh"), b.one("Sprite")
    tex_tree = b.read(tex_obj)
    tex_size = (tex_tree["m_Width"], tex_tree["m_Height"])
    painting_size, quads = painting_quads(mesh_obj, tex_size)
    b.set_bundle_name(bundle_name)

    painting = load_rgb(image_path).resize(painting_size, Image.BICUBIC).convert("RGBA")
    atlas = Image.new("RGBA", tex_size, (0, 0, 0, 0))
    covered = np.zeros(painting_size[::-1], dtype=bool)
    for (x0, y0, x1, y1), (px, py) in quads:
        atlas.paste(painting.crop((px, py, px + x1 - x0, py + y1 - y0)), (x0, y0))
        covered[py:py + y1 - y0, px:px + x1 - x0] = True
    b.set_texture(tex_obj, atlas, TextureFormat.ETC2_RGBA8, key)
    b.stream_texture(tex_obj)
    b.rename(sprite_obj, key)
    b.rename(mesh_obj, f"{key}-mesh")

    folder = "assets/artresource/atlas/paintings"
    paths = {tex_obj.path_id: f"{folder}/{key}.png", sprite_obj.path_id: f"{folder}/{key}.png",
             mesh_obj.path_id: f"{folder}/{key}-mesh.asset"}
    b.set_container_paths(paths)
    entry = {
        "assets": [texture_record(key, paths[tex_obj.path_id], atlas, TextureFormat.ETC2_RGBA8),
                   {"type": "Sprite", "name": key, "container": paths[sprite_obj.path_id]},
                   {"type": "Mesh", "name": f"{key}-mesh", "container": paths[mesh_obj.path_id],
                    "quads": len(quads)}],
        "painting_size": list(painting_size),
        "painting_coverage": round(float(covered.mean()), 4),
        "streamed": True,   # the texture's pixels live in the bundle's .resS, not in the object
    }
    return b.save(), _entry(bundle_name, "azurlane_mesh", image_path, entry)


def build_rgba(templates: Path, image_path: Path) -> tuple[bytes, dict]:
    """A lone RGBA32 texture that already carries alpha: the GFL template minus sprite and alpha."""
    name = "tone_swatch"
    bundle_name = f"ui/{name}.unity3d"
    b = EditableBundle((templates / "synthetic_gfl_style_face.bundle").read_bytes())
    rgb_obj = b.one("Texture2D", "pic_Synth")
    b.set_bundle_name(bundle_name)
    b.remove_objects([b.one("Sprite").path_id, b.one("Texture2D", "pic_Synth_Alpha").path_id])

    image = load_rgb(image_path).convert("RGBA")
    shapes = [{"rounded_rectangle": [4, 4, image.width - 5, image.height - 5], "radius": 12}]
    image.putalpha(draw_mask(shapes, image.size))
    b.set_texture(rgb_obj, image, TextureFormat.RGBA32, name)
    path = f"assets/ui/textures/{name}.png"
    b.set_container_paths({rgb_obj.path_id: path})
    entry = {"assets": [texture_record(name, path, image, TextureFormat.RGBA32)],
             "alpha": alpha_record(shapes, image.size)}
    return b.save(), _entry(bundle_name, "rgba", image_path, entry)


def _entry(bundle_name: str, convention: str, image_path: Path, extra: dict) -> dict:
    return {"member": BUNDLE_ROOT + bundle_name, "bundle_name": bundle_name, "convention": convention,
            "source_image": f"images/{image_path.name}", **extra}


# --- the APK -----------------------------------------------------------------------------------

def build_bundles(sample_dir: Path) -> list[tuple[bytes, dict]]:
    images = sorted((sample_dir / "images").glob("tadne_*.jpg"))
    templates = sample_dir / "templates"
    needed = sum(n for _, n in PLAN)
    if len(images) != needed or not templates.is_dir():
        raise UserError(f"{sample_dir}: expected {needed} images/tadne_*.jpg and templates/; "
                        f"found {len(images)} images")
    builders = {"sprite_atlas": build_sprite_atlas, "split_alpha": build_split_alpha,
                "alpha_pair": build_alpha_pair, "azurlane_mesh": build_azurlane}
    out, start = [], 0
    for convention, count in PLAN:
        for i, path in enumerate(images[start:start + count]):
            out.append(builders[convention](templates, path, i))
        start += count
    out.append(build_rgba(templates, sample_dir / "images" / "waifu2x_tone_negative.png"))
    return out


def ignored_files(bundles: list[dict]) -> dict[str, bytes]:
    """Files a real APK has beside its bundles, which the extractor must skip."""
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:                 # a quarter second of a 440 Hz tone
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * t / 8000)))
                               for t in range(2000)))
    icon = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    ImageDraw.Draw(icon).ellipse((4, 4, 43, 43), fill=(230, 90, 120, 255))
    png = io.BytesIO()
    icon.save(png, format="PNG")
    roster = {"characters": [{"id": i, "bundle": b["bundle_name"]} for i, b in enumerate(bundles)]}
    listing = "ManifestFileVersion: 0\nAssetBundleManifest:\n  AssetBundleInfos:\n" + "".join(
        f"    Info_{i}:\n      Name: {b['bundle_name']}\n      Dependencies: {{}}\n"
        for i, b in enumerate(bundles))
    return {
        "AndroidManifest.xml": b"\x03\x00\x08\x00" + b"\0" * 60,    # binary XML chunk header, no content
        "classes.dex": b"dex\n035\0" + b"\0" * 104,
        "lib/arm64-v8a/libmain.so": b"\x7fELF\x02\x01\x01\0" + b"\0" * 56,
        "res/mipmap-mdpi/ic_launcher.png": png.getvalue(),
        "assets/audio/bgm_title.wav": wav.getvalue(),
        "assets/config/characters.json": json.dumps(roster, indent=1).encode(),
        "assets/config/settings.json": json.dumps({"language": "en", "volume": 0.8}).encode(),
        "assets/config/notice.txt": b"Welcome, commander! Maintenance ends at 15:00.\n",
        "assets/AssetBundles/AssetBundles.manifest": listing.encode(),
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nCreated-By: pipeline.sample\r\n\r\n",
    }


def is_stored(member: str) -> bool:
    """Bundles (already LZ4), audio, images and native code go in uncompressed, as in real APKs."""
    bundle = member.startswith(BUNDLE_ROOT) and not member.endswith(".manifest")
    return bundle or member.endswith((".wav", ".png", ".so"))


def apk_bytes(members: dict[str, bytes]) -> bytes:
    """A zip with sorted entries and fixed stamps and attributes, so equal members give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 0
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if is_stored(name) else zipfile.ZIP_DEFLATED
            z.writestr(info, members[name])
    return buf.getvalue()


def build_sample(sample_dir: Path = SAMPLE_DIR) -> tuple[bytes, dict]:
    """Build the sample APK in memory: (APK bytes, manifest)."""
    built = build_bundles(sample_dir)
    entries = [e for _, e in built]
    members = {e["member"]: data for data, e in built}
    extras = ignored_files(entries)
    members.update(extras)
    for data, e in built:
        e["bundle_bytes"] = len(data)
    manifest = {"notes": MANIFEST_NOTES, "bundles": entries, "ignored": sorted(extras)}
    return apk_bytes(members), manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sample", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/raw/sample.apk"), help="APK to write")
    parser.add_argument("--sample-dir", type=Path, default=SAMPLE_DIR, help="images/ and templates/")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="where to record what went where (default: <sample-dir>/manifest.json)")
    args = parser.parse_args(argv)

    def run() -> None:
        apk, manifest = build_sample(args.sample_dir)
        manifest["apk_bytes"] = len(apk)
        write_bytes(args.out, apk)
        write_json(args.manifest or args.sample_dir / "manifest.json", manifest)
        print(f"wrote {args.out} ({len(apk) / 1e6:.2f} MB, {len(manifest['bundles'])} bundles)")

    run_stage("sample", run, params_file=None)

