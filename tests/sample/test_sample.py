"""The built-in sample APK, read back with zipfile + UnityPy only (not with our extractor).

One build per module (about a second); every check decodes the real bundle bytes from the APK and
compares pixels with the source images in data/sample/images.
"""
import hashlib
import io
import json
import wave
import zipfile

import numpy as np
import pytest
import UnityPy
from PIL import Image
from UnityPy.enums import TextureFormat
from UnityPy.helpers.MeshHelper import MeshHandler

from pipeline.sample import builder as sample
from tests.helpers.project import SAMPLE, TEMPLATES


def template_hashes():
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(TEMPLATES.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    before = template_hashes()
    out = tmp_path_factory.mktemp("sample")
    sample.main(["--out", str(out / "sample.apk"), "--manifest", str(out / "manifest.json")])
    assert template_hashes() == before, "the build must not modify the template bundles"
    apk = (out / "sample.apk").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    return apk, manifest


@pytest.fixture(scope="module")
def bundles(built):
    """manifest entry, UnityPy environment and objects by class, for every bundle in the APK."""
    apk, manifest = built
    out = []
    with zipfile.ZipFile(io.BytesIO(apk)) as z:
        for entry in manifest["bundles"]:
            data = z.read(entry["member"])
            assert data.startswith(b"UnityFS\0")
            env = UnityPy.load(data)
            by_type = {}
            for obj in env.objects:
                by_type.setdefault(obj.type.name, []).append(obj.parse_as_object())
            out.append((entry, env, by_type))
    return out


def of(bundles, convention):
    found = [b for b in bundles if b[0]["convention"] == convention]
    assert found
    return found


def source(entry, size, resample=Image.LANCZOS):
    with Image.open(SAMPLE / entry["source_image"]) as im:
        return np.asarray(im.convert("RGB").resize(size, resample), dtype=np.int16)


def texture(by_type, name):
    tex, = [t for t in by_type["Texture2D"] if t.m_Name == name]
    return tex


def expected_mask(entry):
    return np.asarray(sample.draw_mask(entry["alpha"]["shapes"], tuple(entry["alpha"]["size"])))


def test_apk_layout(built):
    apk, manifest = built
    assert len(apk) < 8_000_000
    with zipfile.ZipFile(io.BytesIO(apk)) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert set(names) == {b["member"] for b in manifest["bundles"]} | set(manifest["ignored"])
        assert all(i.date_time == sample.ZIP_DATE for i in infos)
        for b in manifest["bundles"]:
            assert z.getinfo(b["member"]).compress_type == zipfile.ZIP_STORED
        assert z.getinfo("assets/config/characters.json").compress_type == zipfile.ZIP_DEFLATED
        assert z.read("classes.dex").startswith(b"dex\n035\0")
        assert z.read("lib/arm64-v8a/libmain.so").startswith(b"\x7fELF")
        with wave.open(io.BytesIO(z.read("assets/audio/bgm_title.wav"))) as w:
            assert w.getnframes() > 0
        assert Image.open(io.BytesIO(z.read("res/mipmap-mdpi/ic_launcher.png"))).size == (48, 48)
        assert json.loads(z.read("assets/config/characters.json"))["characters"]
        assert any(n.endswith(".txt") for n in names)
        for n in manifest["ignored"]:
            assert not z.read(n).startswith(b"UnityFS"), f"{n} is meant to be a non-Unity file"


def test_plan_covers_every_image_once(built):
    _, manifest = built
    counts = {}
    for b in manifest["bundles"]:
        counts[b["convention"]] = counts.get(b["convention"], 0) + 1
    assert counts == {"sprite_atlas": 7, "split_alpha": 6, "alpha_pair": 6, "azurlane_mesh": 2, "rgba": 1}
    images = [b["source_image"] for b in manifest["bundles"]]
    assert sorted(images) == sorted(f"images/{p.name}" for p in (SAMPLE / "images").iterdir())


def test_names_and_containers_match_manifest(bundles):
    cabs = set()
    for entry, env, by_type in bundles:
        ab, = by_type["AssetBundle"]
        assert ab.m_Name == ab.m_AssetBundleName == entry["bundle_name"]
        assert entry["member"] == sample.BUNDLE_ROOT + entry["bundle_name"]
        cabs |= {k for k in env.file.files if not k.endswith(".resS")}
        # the container path UnityPy gives each object (the atlas texture has no entry of its own:
        # it is reached through the atlas' preload span, so it reports the atlas' path)
        containers = {(o.container, o.peek_name()) for o in env.objects if o.type.name != "AssetBundle"}
        for asset in entry["assets"]:
            assert (asset["container"], asset["name"]) in containers, asset
            names = [o.m_Name for o in by_type[asset["type"]]]
            assert asset["name"] in names
            if asset["type"] == "Texture2D":
                tex = texture(by_type, asset["name"])
                assert (tex.m_Width, tex.m_Height) == (asset["width"], asset["height"])
                assert TextureFormat(tex.m_TextureFormat).name == asset["format"]
        # every container entry's preload span lies inside the table and names live objects
        table = ab.m_PreloadTable
        alive = {o.path_id for o in env.objects}
        for _, info in ab.m_Container:
            assert info.preloadIndex + info.preloadSize <= len(table)
            assert info.asset.m_PathID in alive
        assert {p.m_PathID for p in table} <= alive
    assert len(cabs) == len(bundles), "every bundle needs its own CAB name"


def test_same_asset_name_in_two_bundles(bundles):
    owners = {}
    for entry, _, by_type in bundles:
        for tex in by_type["Texture2D"]:
            owners.setdefault(tex.m_Name, set()).add(entry["bundle_name"])
    assert len(owners[sample.SHARED_NAME]) == 2


def test_sprite_atlas_sprite_is_the_image(bundles):
    for entry, _, by_type in of(bundles, "sprite_atlas"):
        sprite, = by_type["Sprite"]
        atlas, = by_type["SpriteAtlas"]
        assert len(atlas.m_PackedSprites) == len(atlas.m_RenderDataMap) == 1
        assert sprite.m_RD.texture.m_PathID == 0, "the sprite must be found through its atlas"
        img = np.asarray(sprite.image.convert("RGBA"), dtype=np.int16)
        assert img.shape[1::-1] == (entry["assets"][2]["width"], entry["assets"][2]["height"])
        assert np.abs(img[..., :3] - source(entry, img.shape[1::-1])).max() <= 1
        assert (img[..., 3] == 255).all()
        # the atlas is transparent outside the sprite's box
        sheet = np.asarray(by_type["Texture2D"][0].image)
        x0, y0, x1, y1 = entry["sprite_box"]
        assert (sheet[y0:y1, x0:x1, 3] == 255).all()
        sheet = sheet.copy()
        sheet[y0:y1, x0:x1] = 0
        assert sheet.max() == 0
    sizes = {e["assets"][2]["width"] for e, _, _ in of(bundles, "sprite_atlas")}
    assert len(sizes) > 3, "each bundle keeps a different sprite slot"


def test_split_alpha_textures(bundles):
    for entry, _, by_type in of(bundles, "split_alpha"):
        rgb_rec, alpha_rec, _ = entry["assets"]
        rgb, alpha = texture(by_type, rgb_rec["name"]), texture(by_type, alpha_rec["name"])
        sprite, = by_type["Sprite"]
        assert sprite.m_RD.texture.m_PathID == rgb.object_reader.path_id
        assert sprite.m_RD.alphaTexture.m_PathID == alpha.object_reader.path_id
        pixels = np.asarray(rgb.image.convert("RGB"), dtype=np.int16)
        assert np.abs(pixels - source(entry, (256, 256))).max() <= 1
        mask = np.asarray(alpha.image.convert("RGB"))
        assert (mask[..., 0] == mask[..., 2]).all()          # grey: the mask sits in R = G = B
        assert (mask[..., 0] == expected_mask(entry)).all()
    shapes = {json.dumps(e["alpha"]["shapes"]) for e, _, _ in of(bundles, "split_alpha")}
    assert len(shapes) == 6, "masks vary per image"


def test_alpha_pair_textures(bundles):
    suffixes = []
    for entry, _, by_type in of(bundles, "alpha_pair"):
        rgb_rec, alpha_rec, _ = entry["assets"]
        rgb, alpha = texture(by_type, rgb_rec["name"]), texture(by_type, alpha_rec["name"])
        suffixes.append(alpha.m_Name[len(rgb.m_Name):])
        assert TextureFormat(alpha.m_TextureFormat) == TextureFormat.Alpha8
        assert (alpha.m_Width, alpha.m_Height) == (128, 128) and (rgb.m_Width, rgb.m_Height) == (256, 256)
        sprite, = by_type["Sprite"]
        assert sprite.m_RD.alphaTexture.m_PathID == 0, "paired only by name, not through the sprite"
        pixels = np.asarray(rgb.image.convert("RGB"), dtype=np.int16)
        assert np.abs(pixels - source(entry, (256, 256))).max() <= 1
        mask = np.asarray(alpha.image)[..., 3]                # UnityPy puts Alpha8 into band A
        assert (mask == expected_mask(entry)).all()
    assert sorted(suffixes) == sorted(sample.ALPHA_SUFFIXES)


def rebuild_painting(by_type):
    """The Azur Lane rebuild, written here independently of the builder's inverse."""
    tex = by_type["Texture2D"][0]
    atlas = tex.image
    mesh = MeshHandler(by_type["Mesh"][0])
    mesh.process()
    pos, uv = np.array(mesh.m_Vertices), np.array(mesh.m_UV0)
    w, h = atlas.size
    pw, ph = int(round(pos[:, 0].max())), int(round(pos[:, 1].max()))
    painting = Image.new("RGBA", (pw, ph))
    covered = np.zeros((ph, pw), bool)
    for q in range(0, len(pos), 4):
        p, t = pos[q:q + 4], uv[q:q + 4]
        left, right = round(t[:, 0].min() * w), round(t[:, 0].max() * w)
        top, bottom = round(h - t[:, 1].max() * h), round(h - t[:, 1].min() * h)
        x, y = round(p[:, 0].min()), round(ph - p[:, 1].max())
        painting.paste(atlas.crop((left, top, right, bottom)), (x, y))
        covered[y:y + bottom - top, x:x + right - left] = True
    return np.asarray(painting, dtype=np.int16), covered[:ph, :pw]


def test_azurlane_mesh_rebuilds_the_image(bundles):
    for entry, env, by_type in of(bundles, "azurlane_mesh"):
        tex = by_type["Texture2D"][0]
        assert TextureFormat(tex.m_TextureFormat) == TextureFormat.ETC2_RGBA8
        assert tex.m_StreamData.size > 0 and len(tex.image_data or b"") == 0, "pixels live in the .resS"
        assert any(k.endswith(".resS") for k in env.file.files)
        assert by_type["Mesh"][0].m_Name == entry["assets"][0]["name"] + "-mesh"
        painting, covered = rebuild_painting(by_type)
        assert painting.shape[1::-1] == tuple(entry["painting_size"])
        assert abs(covered.mean() - entry["painting_coverage"]) < 1e-3 and covered.mean() > 0.3
        ref = source(entry, tuple(entry["painting_size"]), Image.BICUBIC)
        error = np.abs(painting[..., :3] - ref)[covered]
        assert error.mean() < 3, error.mean()
        assert (painting[..., 3][covered] > 240).all() and (painting[..., 3][~covered] == 0).all()


def test_rgba_texture_carries_its_own_alpha(bundles):
    (entry, _, by_type), = of(bundles, "rgba")
    assert set(by_type) == {"AssetBundle", "Texture2D"}
    tex, = by_type["Texture2D"]
    assert TextureFormat(tex.m_TextureFormat) == TextureFormat.RGBA32
    pixels = np.asarray(tex.image, dtype=np.int16)
    assert (pixels[..., 3] == expected_mask(entry)).all()
    assert 0 < (pixels[..., 3] == 0).mean() < 0.2
    assert (pixels[..., :3] == source(entry, (tex.m_Width, tex.m_Height))).all()


def test_build_is_deterministic(built):
    apk, manifest = built
    again, manifest_again = sample.build_sample(SAMPLE)
    manifest_again["apk_bytes"] = len(again)
    assert manifest_again == manifest
    with zipfile.ZipFile(io.BytesIO(apk)) as a, zipfile.ZipFile(io.BytesIO(again)) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
    assert again == apk


def test_missing_sample_material_is_a_user_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    with pytest.raises(SystemExit) as stop:
        sample.main(["--sample-dir", str(tmp_path), "--out", str(tmp_path / "x.apk")])
    assert stop.value.code == 1
    assert "expected 21 images" in capsys.readouterr().err
    assert not (tmp_path / "x.apk").exists()
