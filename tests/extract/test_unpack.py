"""Stage unpack on real bundles and archives, good and bad: nothing crashes, nothing good is lost."""
import re

import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv
from pipeline.core.params import UnpackParams
from pipeline.extract.unpack import run
from tests.helpers.corpus import image_bytes as png
from tests.helpers.corpus import unknown_compression, unknown_format, zip_bytes
from tests.helpers.project import TEMPLATES

PARAMS = UnpackParams(workers=2, max_pixels=4_000_000)


def write_good(raw):
    gfl = (TEMPLATES / "synthetic_gfl_style_face.bundle").read_bytes()
    apk = zip_bytes({"AndroidManifest.xml": b"<manifest/>", "classes.dex": b"dex\n035\x00" + b"\x00" * 64,
                     "assets/AssetBundles/char/gfl": gfl,
                     "assets/AssetBundles/char/atlas": (TEMPLATES / "synthetic_sprite_atlas.bundle").read_bytes()})
    (raw / "game.apk").write_bytes(apk)
    (raw / "bundle.xapk").write_bytes(zip_bytes({"base.apk": apk, "manifest.json": b"{}"}))
    (raw / "loose").mkdir()
    (raw / "loose" / "synth").write_bytes((TEMPLATES / "synthetic_rgb_alpha_sprite.bundle").read_bytes())
    rgba = Image.new("RGBA", (100, 80), (10, 200, 30, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    (raw / "art.png").write_bytes(png(rgba))


BAD = {
    "corrupt.apk": "corrupt or unreadable archive",
    "notapk.apk": "no Unity files inside",
    "truncated.bundle": "unreadable Unity file",
    "unknown.bundle": "unreadable Unity file",
    "unknown_format.bundle": "unknown texture format 200",
    "tiny.png": "smaller than unpack.min_size",
    "bomb.png": "decompression-bomb",
    "garbage.png": "not an APK/OBB/XAPK, Unity file or image",
    "empty.bin": "empty file",
    "broken.jpg": "not a readable image (no image format recognises it)",
}


def write_bad(raw):
    bundle = (TEMPLATES / "synthetic_gfl_style_face.bundle").read_bytes()
    (raw / "corrupt.apk").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 20)
    (raw / "notapk.apk").write_bytes(zip_bytes({"readme.txt": b"hello", "photo.jpg": b"\xff\xd8\xff" + b"0" * 99}))
    (raw / "truncated.bundle").write_bytes(bundle[: len(bundle) // 2])
    (raw / "unknown.bundle").write_bytes(unknown_compression(bundle))
    (raw / "unknown_format.bundle").write_bytes(unknown_format("synthetic_rgb_alpha_sprite.bundle", 200))
    (raw / "tiny.png").write_bytes(png(Image.new("RGB", (1, 1))))
    (raw / "bomb.png").write_bytes(png(Image.new("1", (3000, 3000))))
    (raw / "garbage.png").write_bytes(b"this is not a picture\n" * 10)
    (raw / "empty.bin").write_bytes(b"")
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * 99)      # PIL's error names its buffer's address


def extracted(root):
    return {(r["source"], r["asset"]): r for r in read_csv(root / "data" / "extracted" / "index.csv")}


@pytest.fixture(scope="module")
def good_and_mixed(tmp_path_factory):
    import os

    results = {}
    for name, with_bad in (("good", False), ("mixed", True)):
        root = tmp_path_factory.mktemp(name)
        raw = root / "data" / "raw"
        raw.mkdir(parents=True)
        write_good(raw)
        if with_bad:
            write_bad(raw)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            counts = run(PARAMS)
        finally:
            os.chdir(cwd)
        results[name] = (root, counts)
    return results


def test_every_convention_and_nesting_level(good_and_mixed):
    root, counts = good_and_mixed["good"]
    rows = extracted(root)
    assert rows[("game.apk!assets/AssetBundles/char/gfl", "pic_Synth")]["alpha"] == "paired"
    assert rows[("bundle.xapk!base.apk!assets/AssetBundles/char/gfl", "pic_Synth")]["alpha"] == "paired"
    assert rows[("loose/synth", "synth_char")]["alpha"] == "sprite_alpha"
    assert rows[("art.png", "art")]["alpha"] == "texture"
    atlas = [k for k in rows if k[0] == "game.apk!assets/AssetBundles/char/atlas"]
    assert len(atlas) == 7
    # Same asset names from different files stay apart: the source is in the path.
    paths = [r["path"] for r in rows.values()]
    assert len(set(paths)) == len(paths) == counts["extracted"] == 2 * (1 + 7) + 2
    assert "game.apk/assets/AssetBundles/char/gfl/pic_Synth.png" in paths
    for r in rows.values():
        with Image.open(root / "data" / "extracted" / r["path"]) as im:
            assert im.mode == "RGBA" and im.size == (int(r["width"]), int(r["height"]))
    assert read_csv(root / "data" / "extracted" / "skipped.csv") == []


def test_bad_inputs_are_skipped_with_reasons_and_good_output_is_kept(good_and_mixed):
    good_root, _ = good_and_mixed["good"]
    root, _ = good_and_mixed["mixed"]
    assert extracted(root).keys() == extracted(good_root).keys()
    for key, row in extracted(good_root).items():
        mixed = (root / "data" / "extracted" / extracted(root)[key]["path"]).read_bytes()
        assert mixed == (good_root / "data" / "extracted" / row["path"]).read_bytes()
    skipped = read_csv(root / "data" / "extracted" / "skipped.csv")
    for name, reason in BAD.items():
        rows = [s for s in skipped if s["source"] == name]
        assert rows, f"{name} not in skipped.csv"
        assert any(reason in s["reason"] for s in rows), (name, rows)
        assert all("\n" not in s["reason"] for s in rows)


def test_skip_reasons_name_no_memory_address(good_and_mixed):
    """skipped.csv is diffed between runs: an object repr's address would change it every time."""
    root, _ = good_and_mixed["mixed"]
    reasons = [s["reason"] for s in read_csv(root / "data" / "extracted" / "skipped.csv")]
    assert reasons and not [r for r in reasons if re.search(r"0x[0-9a-fA-F]{6,}| object at ", r)]


def test_filters_by_container(in_tmp):
    raw = in_tmp / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "atlas").write_bytes((TEMPLATES / "synthetic_sprite_atlas.bundle").read_bytes())
    run(UnpackParams(workers=1, exclude=["*/synth_sprite_[0-2].png"]))
    assert len(extracted(in_tmp)) == 4
    skipped = read_csv(in_tmp / "data" / "extracted" / "skipped.csv")
    assert len(skipped) == 3 and all("unpack.exclude" in s["reason"] for s in skipped)
    run(UnpackParams(workers=1, include=["assets/ui/*_6.png"], min_size=64))
    assert [k[1] for k in extracted(in_tmp)] == ["synth_sprite_6"]
    run(UnpackParams(workers=1, min_size=125))          # the narrower side decides: 131 and 141 px wide
    assert {k[1] for k in extracted(in_tmp)} == {"synth_sprite_2", "synth_sprite_6"}


def test_filters_that_drop_everything_are_one_clear_error(in_tmp):
    raw = in_tmp / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "atlas").write_bytes((TEMPLATES / "synthetic_sprite_atlas.bundle").read_bytes())
    with pytest.raises(UserError) as e:
        run(UnpackParams(workers=1, include=["*/painting/*"], exclude=[], min_size=64))
    assert str(e.value).startswith("extracted 0 images from data/raw: unpack.include dropped 7, "
                                   "unpack.exclude dropped 0, unpack.min_size dropped 0, 0 other skip(s)")
    assert "-S 'unpack.include=[\"*/paintings/*\"]'" in str(e.value)
    assert len(read_csv(in_tmp / "data" / "extracted" / "skipped.csv")) == 7     # there to look at


def test_empty_raw_folder_is_a_clear_error(in_tmp):
    (in_tmp / "data" / "raw").mkdir(parents=True)
    with pytest.raises(UserError, match="data/raw/ is empty"):
        run(PARAMS)
