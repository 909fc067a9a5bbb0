"""unpack's decode cache on real bundles, archives and images: a warm run decodes only what is new, and
writes data/extracted/ byte for byte as a cold run (no cache at all) writes it."""
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv
from pipeline.core.params import UnpackParams
from pipeline.extract import cache as cache_module
from pipeline.extract.cache import DECODE_CODE, DecodeCache, decode_code_hash
from pipeline.extract.unpack import run
from tests.helpers.corpus import image_bytes, zip_bytes
from tests.helpers.project import TEMPLATES

PARAMS = UnpackParams(workers=2, max_pixels=4_000_000)
IMAGES = 14                                  # loose images in the raw folder ...
UNITS = IMAGES + 1 + 3                       # ... a loose bundle, and an APK of three bundles


def sprite(seed: int, size: int = 72) -> bytes:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (size, size + seed % 5, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rgba[..., 3] > 40, 255, 0)
    return image_bytes(Image.fromarray(rgba, "RGBA"))


def write_raw(raw) -> None:
    raw.mkdir(parents=True)
    for i in range(IMAGES):
        folder = raw / ("units" if i % 2 else "more/units")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"sprite{i:02d}.png").write_bytes(sprite(i))
    (raw / "atlas").write_bytes((TEMPLATES / "synthetic_sprite_atlas.bundle").read_bytes())
    (raw / "game.apk").write_bytes(zip_bytes({
        "AndroidManifest.xml": b"<manifest/>",
        "assets/char/gfl": (TEMPLATES / "synthetic_gfl_style_face.bundle").read_bytes(),
        "assets/char/face": (TEMPLATES / "synthetic_sprite_alphatex_face.bundle").read_bytes(),
        "assets/painting/r5c3_tex": (TEMPLATES / "synthetic_azurlane_painting_tex").read_bytes()}))


def unpack(root, p: UnpackParams = PARAMS, cache=True) -> dict:
    return run(p, root / "data/raw", root / "data/extracted", cache=root / ".cache/unpack" if cache else None)


def tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cold(root, tmp_path, p: UnpackParams = PARAMS) -> dict:
    """data/extracted/ as a run without any cache writes it, from a copy of root's data/raw."""
    other = tmp_path / "cold"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(root / "data/raw", other / "data/raw")
    assert unpack(other, p, cache=False)["reused"] == 0
    return tree(other / "data/extracted")


def entries(root) -> list:
    return sorted((root / ".cache/unpack").glob("??/*"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A raw folder of many inputs unpacked once with a cache, and what a run without a cache writes."""
    root = tmp_path_factory.mktemp("base") / "project"
    write_raw(root / "data/raw")
    counts = unpack(root)
    assert (counts["decoded"], counts["reused"]) == (UNITS, 0)
    assert len(entries(root)) == UNITS
    return root, cold(root, tmp_path_factory.mktemp("cold"))


@pytest.fixture
def warm(base, tmp_path):
    shutil.copytree(base[0], tmp_path / "project")
    return tmp_path / "project"


@pytest.fixture
def cold_tree(base):
    return base[1]


def test_one_new_image_is_the_only_thing_decoded(warm, tmp_path, caplog):
    before = read_csv(warm / "data/extracted/index.csv")
    (warm / "data/raw/new").mkdir()
    (warm / "data/raw/new/fresh.png").write_bytes(sprite(99, 80))
    with caplog.at_level(logging.INFO, "unpack"):
        counts = unpack(warm)
    assert (counts["decoded"], counts["reused"]) == (1, UNITS)
    assert f"decoded 1 input(s), reused {UNITS} from the cache" in caplog.text
    after = read_csv(warm / "data/extracted/index.csv")
    new = [r for r in after if r["source"] == "new/fresh.png"]
    assert len(new) == 1 and [r for r in after if r is not new[0]] == before
    assert tree(warm / "data/extracted") == cold(warm, tmp_path)


def test_renamed_and_moved_inputs_decode_nothing(warm, tmp_path):
    raw = warm / "data/raw"
    (raw / "units/sprite01.png").rename(raw / "units/renamed.png")
    (raw / "elsewhere").mkdir()
    (raw / "more/units/sprite00.png").rename(raw / "elsewhere/sprite00.png")
    (raw / "game.apk").rename(raw / "elsewhere/other_name.apk")
    (raw / "atlas").rename(raw / "atlas.unity3d")
    counts = unpack(warm)
    assert (counts["decoded"], counts["reused"]) == (0, UNITS)
    sources = {r["source"] for r in read_csv(warm / "data/extracted/index.csv")}
    assert {"units/renamed.png", "elsewhere/other_name.apk!assets/char/gfl", "atlas.unity3d"} <= sources
    assert tree(warm / "data/extracted") == cold(warm, tmp_path)
    assert len(entries(warm)) == UNITS                  # all of them still used: nothing pruned


def test_changing_the_filters_decodes_nothing(warm, tmp_path):
    everything = len(read_csv(warm / "data/extracted/index.csv"))
    for p in (UnpackParams(workers=2, max_pixels=4_000_000, min_size=130, exclude=["*_[0-2].png", "more/*"]),
              UnpackParams(workers=2, max_pixels=4_000_000, include=["*/ui/*", "units/*"])):
        counts = unpack(warm, p)
        assert (counts["decoded"], counts["reused"]) == (0, UNITS), p
        assert 0 < counts["extracted"] < everything, p
        assert tree(warm / "data/extracted") == cold(warm, tmp_path, p), p


def test_max_pixels_changes_what_is_decoded(warm):
    counts = unpack(warm, UnpackParams(workers=2, max_pixels=3_000_000))
    assert (counts["decoded"], counts["reused"]) == (UNITS, 0)
    assert counts["pruned"] == UNITS                     # the entries of the old limit: no input used them


def test_the_first_run_equals_a_run_without_a_cache(warm, cold_tree):
    assert tree(warm / "data/extracted") == cold_tree


def test_a_damaged_entry_is_dropped_and_decoded_again(warm, cold_tree, caplog):
    flipped, cut, emptied = entries(warm)[:3]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10                         # inside the PNGs: only the checksum can tell
    flipped.write_bytes(bytes(data))
    cut.write_bytes(cut.read_bytes()[:-100])             # what a power cut before the data reached disk leaves
    emptied.write_bytes(b"")
    with caplog.at_level(logging.WARNING, "unpack"):
        counts = unpack(warm)
    assert (counts["decoded"], counts["reused"]) == (3, UNITS - 3)
    damaged = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged) == 3 and any(str(flipped) in m and "checksum mismatch" in m for m in damaged)
    assert tree(warm / "data/extracted") == cold_tree
    assert unpack(warm)["reused"] == UNITS               # and written anew, whole


def test_a_new_extractor_version_decodes_everything_again(warm, cold_tree, monkeypatch):
    monkeypatch.setattr(cache_module, "EXTRACTOR_VERSION", cache_module.EXTRACTOR_VERSION + 1)
    counts = unpack(warm)
    assert (counts["decoded"], counts["reused"], counts["pruned"]) == (UNITS, 0, UNITS)
    assert len(entries(warm)) == UNITS
    assert tree(warm / "data/extracted") == cold_tree


def test_entries_no_input_used_are_pruned_only_by_a_run_that_succeeds(warm):
    (warm / "data/raw/units/sprite03.png").unlink()
    shutil.rmtree(warm / "data/raw/more")
    stray = warm / ".cache/unpack/ab/.abcdef.x1y2.tmp"     # what a kill inside a write would leave
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"half")
    with pytest.raises(UserError):
        unpack(warm, UnpackParams(workers=2, max_pixels=4_000_000, include=["*/nothing/*"]))
    assert len(entries(warm)) == UNITS + 1               # a failed run leaves the cache as it was
    counts = unpack(warm)
    gone = 1 + IMAGES // 2
    assert (counts["decoded"], counts["reused"], counts["pruned"]) == (0, UNITS - gone, gone + 1)
    assert len(entries(warm)) == UNITS - gone and not stray.exists()


def test_without_a_cache_everything_is_decoded_and_nothing_written(warm):
    counts = unpack(warm, cache=False)
    assert (counts["decoded"], counts["reused"]) == (UNITS, 0)
    assert DecodeCache(warm / ".cache/unpack").size()[0] == UNITS


def test_the_extractor_version_follows_the_decode_code(tmp_path):
    assert decode_code_hash() == DECODE_CODE, (
        "the decode code (pipeline/extract/" + ", ".join(cache_module.DECODE_MODULES) + ") changed: if its "
        "output can change, bump EXTRACTOR_VERSION in pipeline/extract/cache.py; then set DECODE_CODE to "
        f"{decode_code_hash()}")
    folder = tmp_path / "extract"
    shutil.copytree(cache_module.Path(cache_module.__file__).parent, folder)
    unity = folder / "unity.py"
    unity.write_text(unity.read_text() + "\n# a comment changes nothing\n")
    assert decode_code_hash(folder) == DECODE_CODE
    unity.write_text(unity.read_text().replace("Image.Resampling.BILINEAR", "Image.Resampling.BICUBIC"))
    assert decode_code_hash(folder) != DECODE_CODE
