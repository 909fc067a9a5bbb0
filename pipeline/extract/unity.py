"""Unity files -> character art, with UnityPy.

Games store one picture in several objects; this module puts them back together:
- a Sprite and the Texture2D it covers are one image (sheets: one image per Sprite);
- split alpha: the Sprite's own alpha texture (m_RD.alphaTexture), or a Texture2D named
  `<name>_Alpha` / `<name>_alpha` / `<name>#alpha` next to `<name>`; alpha textures are never art;
- Sprites packed in a SpriteAtlas are cut out of the atlas texture;
- Azur Lane paintings (bundle `painting/<name>_tex`, or a Mesh `<texture>-mesh`) are a jumbled atlas
  that a Mesh of quads puts back in place.
`plan_art` decides what to export without decoding any pixels; `build_art` decodes one planned piece.
"""
from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

ALPHA_SUFFIX = re.compile(r"^(?P<base>.+?)(?:_alpha|#alpha)$", re.IGNORECASE)
PAINTING_BUNDLE = re.compile(r"(?:^|/)painting/.+_tex$", re.IGNORECASE)


@dataclass
class ArtPlan:
    """One piece of art to export, before its pixels are decoded."""
    key: str                        # unique within its unit, stable between runs
    kind: str                       # texture | sprite | atlas_sprite | mesh
    asset: str                      # the object's name
    container: str                  # container path in the bundle, "" when it has none
    texture: object                 # ObjectReader of the Texture2D holding the pixels
    alpha_texture: object = None    # ObjectReader of a separate alpha texture, or None
    alpha: str = "none"             # sprite_alpha | paired | mesh (texture/none decided on decode)
    sprite: object = None           # ObjectReader of the Sprite to cut out
    render_data: object = None      # the sprite's render data (its own m_RD or the atlas entry)
    mesh: object = None             # ObjectReader of the painting Mesh


def load_environment(files: list[tuple[str, bytes]]):
    """A UnityPy Environment holding the unit's files; UnityPy's own prints are swallowed."""
    import UnityPy

    env = UnityPy.Environment()
    with contextlib.redirect_stdout(io.StringIO()):
        for name, data in files:
            env.load_file(data, name=name)
    return env


def _key(obj) -> tuple[str, int]:
    return (getattr(obj.assets_file, "name", ""), obj.path_id)


def _deref(pptr):
    """The ObjectReader a PPtr points at, or None when it is null or in a file we do not have."""
    if pptr is None or not getattr(pptr, "path_id", 0):
        return None
    try:
        return pptr.deref()
    except Exception:
        return None


def _containers(env) -> dict[tuple[str, int], str]:
    out = {}
    for path, pptr in env.container.items():
        af = getattr(pptr, "assetsfile", None) or getattr(pptr, "assets_file", None)
        out.setdefault((getattr(af, "name", ""), pptr.path_id), path)
    return out


def _bundle_names(env) -> list[str]:
    names = []
    for obj in env.objects:
        if obj.type.name == "AssetBundle":
            ab = obj.read()
            names += [n for n in (getattr(ab, "m_Name", ""), getattr(ab, "m_AssetBundleName", "")) if n]
    return names


def _atlas_render_data(sprite, atlases) -> tuple[object, object] | None:
    """(atlas texture reader, render data) for a Sprite whose pixels live in a SpriteAtlas."""
    candidates = []
    direct = _deref(getattr(sprite, "m_SpriteAtlas", None))
    if direct is not None:
        candidates.append(direct.read())
    tags = list(getattr(sprite, "m_AtlasTags", None) or [])
    candidates += [a for a in atlases if getattr(a, "m_Tag", None) in tags or a.m_Name in tags]
    key = sprite.m_RenderDataKey
    for atlas in candidates:
        for k, data in atlas.m_RenderDataMap:
            if k == key:
                tex = _deref(data.texture)
                return (tex, data) if tex is not None else None
    return None


def plan_art(env) -> tuple[list[ArtPlan], list[tuple[str, str]]]:
    """Decide what to export from a loaded unit. Returns (plans, skips as (asset, reason))."""
    textures, sprites, atlases, meshes = {}, [], [], {}
    names: dict[tuple[str, int], str] = {}
    for obj in env.objects:
        t = obj.type.name
        if t not in ("Texture2D", "Sprite", "SpriteAtlas", "Mesh"):
            continue
        try:
            data = obj.read()
        except Exception as e:
            return [], [(f"path_id {obj.path_id}", f"unreadable {t} ({type(e).__name__}: {e})")]
        if t == "Texture2D":
            textures[_key(obj)] = obj
            names[_key(obj)] = data.m_Name
        elif t == "Sprite":
            sprites.append((obj, data))
        elif t == "SpriteAtlas":
            atlases.append(data)
        else:
            meshes[data.m_Name] = obj
    containers = _containers(env)
    painting_bundle = any(PAINTING_BUNDLE.search(n) for n in _bundle_names(env))

    # Alpha textures: by a Sprite's pointer, by an atlas entry's pointer, or by name.
    alpha_of: dict[tuple[str, int], tuple[object, str]] = {}
    alpha_keys: set[tuple[str, int]] = set()
    for obj, sprite in sprites:
        tex, alpha = _deref(sprite.m_RD.texture), _deref(sprite.m_RD.alphaTexture)
        if alpha is not None:
            alpha_keys.add(_key(alpha))
            if tex is not None:
                alpha_of[_key(tex)] = (alpha, "sprite_alpha")
    for atlas in atlases:
        for _, data in atlas.m_RenderDataMap:
            tex, alpha = _deref(data.texture), _deref(data.alphaTexture)
            if alpha is not None:
                alpha_keys.add(_key(alpha))
                if tex is not None:
                    alpha_of.setdefault(_key(tex), (alpha, "sprite_alpha"))
    by_name: dict[tuple[str, str], tuple[str, int]] = {}
    for k, name in names.items():
        by_name.setdefault((k[0], name), k)
        by_name.setdefault((k[0], name.lower()), k)
    for k, name in names.items():
        m = ALPHA_SUFFIX.match(name)
        base = m and (by_name.get((k[0], m["base"])) or by_name.get((k[0], m["base"].lower())))
        if base and base != k:
            alpha_keys.add(k)
            alpha_of.setdefault(base, (textures[k], "paired"))

    plans: list[ArtPlan] = []
    covered: set[tuple[str, int]] = set()
    for k, name in names.items():                                  # Azur Lane paintings
        mesh = meshes.get(f"{name}-mesh")
        if mesh is not None and k not in alpha_keys:
            covered.add(k)
            plans.append(ArtPlan(f"mesh:{k[1]}", "mesh", name, containers.get(k, ""), textures[k],
                                 alpha="mesh", mesh=mesh))
    painting_atlases = set(covered)
    skips = []
    if painting_bundle and not any(p.kind == "mesh" for p in plans) and textures:
        skips.append(("", "painting bundle without a <texture>-mesh Mesh: textures exported as they are"))
    for obj, sprite in sprites:                                    # Sprites, own texture or atlas
        tex, kind, data = _deref(sprite.m_RD.texture), "sprite", sprite.m_RD
        if tex is None:
            found = _atlas_render_data(sprite, atlases)
            if found is None:
                skips.append((sprite.m_Name, "sprite whose texture is in another file or atlas not loaded"))
                continue
            (tex, data), kind = found, "atlas_sprite"
        tk = _key(tex)
        if tk in alpha_keys or tk in painting_atlases:
            continue                                               # e.g. the painting's own sprite
        covered.add(tk)
        alpha_tex = _deref(data.alphaTexture)
        pair = (alpha_tex, "sprite_alpha") if alpha_tex is not None else alpha_of.get(tk, (None, "none"))
        plans.append(ArtPlan(f"{kind}:{obj.path_id}", kind, sprite.m_Name, containers.get(_key(obj), ""),
                             tex, pair[0], pair[1], sprite=obj, render_data=data))
    for k, name in names.items():                                  # textures nobody covers
        if k in covered or k in alpha_keys:
            continue
        alpha_tex, how = alpha_of.get(k, (None, "none"))
        plans.append(ArtPlan(f"texture:{k[1]}", "texture", name, containers.get(k, ""), textures[k],
                             alpha_tex, how))
    if not plans and not skips:
        kinds = Counter(obj.type.name for obj in env.objects)
        what = ", ".join(f"{n} {t}" for t, n in kinds.most_common(4)) or "no objects"
        skips.append(("", f"no textures or sprites inside ({what})"))
    return plans, skips


# --- decoding ------------------------------------------------------------------------------------

def texture_size(tex_obj) -> tuple[int, int]:
    tex = tex_obj.read()
    return int(tex.m_Width), int(tex.m_Height)


def texture_format(tex_obj) -> str:
    from UnityPy.enums import TextureFormat

    fmt = tex_obj.read().m_TextureFormat
    try:
        return TextureFormat(fmt).name
    except ValueError:
        return str(fmt)


def decode_texture(tex_obj) -> Image.Image:
    """A Texture2D as a top-down PIL image (RGB or RGBA). Raises ValueError with a clear reason."""
    from UnityPy.enums import TextureFormat

    tex = tex_obj.read()
    try:
        fmt = TextureFormat(tex.m_TextureFormat).name
    except ValueError:
        raise ValueError(f"unknown texture format {tex.m_TextureFormat}")
    if tex.m_Width <= 0 or tex.m_Height <= 0:
        raise ValueError(f"empty texture ({tex.m_Width}x{tex.m_Height})")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            img = tex.image
    except NotImplementedError:
        raise ValueError(f"texture format {fmt} cannot be decoded")
    except Exception as e:
        raise ValueError(f"texture {fmt} failed to decode ({type(e).__name__}: {e})")
    if img is None or img.size != (tex.m_Width, tex.m_Height):
        raise ValueError(f"texture {fmt} decoded to the wrong size (stream data missing?)")
    return img


def alpha_mask(alpha_img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The mask of a separate alpha texture, at `size`.

    Alpha8 decodes with the mask in A (RGB zero); a grey RGB texture carries it in R.
    """
    if alpha_img.mode in ("RGBA", "LA") and alpha_img.getchannel("A").getextrema() != (255, 255):
        mask = alpha_img.getchannel("A")
    else:
        mask = alpha_img.convert("RGB").getchannel("R")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    return mask


def _cut_sprite(texture: Image.Image, plan: ArtPlan) -> Image.Image:
    """Cut a sprite out of its (top-down) texture, undoing the packer's rotation."""
    from UnityPy.export import SpriteHelper

    rect, h = plan.render_data.textureRect, texture.height
    box = (round(rect.x), round(h - rect.y - rect.height), round(rect.x + rect.width), round(h - rect.y))
    settings = SpriteHelper.SpriteSettings(plan.render_data.settingsRaw)
    sprite = plan.sprite.read()
    if settings.packed and settings.packingMode.name == "kSPMTight":
        with contextlib.suppress(Exception):  # fall back to the rectangle when the mesh is unusable
            from UnityPy.helpers.MeshHelper import MeshHandler
            mesh = MeshHandler(sprite.m_RD, plan.sprite.version)
            mesh.process()
            if mesh.m_UV0 and any(u or v for u, v in mesh.m_UV0):
                flipped = texture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
                return SpriteHelper.render_sprite_mesh(sprite, mesh, flipped).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    img = texture.crop(box)
    if settings.packed:
        rotation = settings.packingRotation.name
        ops = {"kSPRFlipHorizontal": Image.Transpose.FLIP_LEFT_RIGHT, "kSPRFlipVertical": Image.Transpose.FLIP_TOP_BOTTOM,
               "kSPRRotate180": Image.Transpose.ROTATE_180, "kSPRRotate90": Image.Transpose.ROTATE_90}
        if rotation in ops:
            img = img.transpose(ops[rotation])
    return img


def rebuild_painting(atlas: Image.Image, mesh_obj) -> Image.Image:
    """Draw every quad of an Azur Lane painting mesh: texture rectangle -> its place in the painting."""
    from UnityPy.helpers.MeshHelper import MeshHandler

    handler = MeshHandler(mesh_obj.read())
    handler.process()
    pos = np.asarray(handler.m_Vertices, dtype=np.float64)[:, :2]
    uv = np.asarray(handler.m_UV0, dtype=np.float64)
    if len(pos) < 4 or len(pos) % 4 or len(uv) != len(pos):
        raise ValueError(f"painting mesh has {len(pos)} vertices / {len(uv)} uvs, expected quads of 4")
    pos -= pos.min(axis=0)
    width, height = (int(round(v)) for v in pos.max(axis=0))
    tw, th = atlas.size
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    src = atlas.convert("RGBA")
    for q in range(0, len(pos), 4):
        u0, v0 = uv[q:q + 4].min(axis=0)
        u1, v1 = uv[q:q + 4].max(axis=0)
        left, top = round(u0 * tw), round((1 - v1) * th)         # v grows upwards in the texture
        piece = src.crop((left, top, round(u1 * tw), round((1 - v0) * th)))
        x0 = pos[q:q + 4, 0].min()
        y1 = pos[q:q + 4, 1].max()
        canvas.paste(piece, (int(round(x0)), int(round(height - y1))))  # y grows upwards too
    return canvas


def build_art(plan: ArtPlan) -> tuple[Image.Image, str]:
    """Decode one planned piece: (RGBA image, alpha kind)."""
    base = decode_texture(plan.texture)
    alpha = plan.alpha
    if plan.alpha_texture is not None:
        mask = alpha_mask(decode_texture(plan.alpha_texture), base.size)
        base = base.convert("RGB")
        base.putalpha(mask)
    if plan.kind == "mesh":
        img = rebuild_painting(base, plan.mesh)
    elif plan.kind in ("sprite", "atlas_sprite"):
        img = _cut_sprite(base, plan)
    else:
        img = base
    if alpha == "none" and img.mode == "RGBA" and img.getchannel("A").getextrema() != (255, 255):
        alpha = "texture"
    return img.convert("RGBA"), alpha
