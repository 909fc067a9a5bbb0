"""The built-in sample APK through `unpack`: every convention's pixels against its source image."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from pipeline.core.files import read_csv
from pipeline.core.params import UnpackParams
from pipeline.extract.unpack import run
from pipeline.sample.builder import draw_mask
from tests.helpers.project import ROOT, SAMPLE

APK = ROOT / "data" / "raw" / "sample.apk"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy(APK, root / "data" / "raw" / "sample.apk")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        counts = run(UnpackParams(workers=2))
    finally:
        os.chdir(cwd)
    rows = {r["source"].split("!", 1)[1]: r for r in read_csv(root / "data" / "extracted" / "index.csv")}
    return root / "data" / "extracted", rows, counts


def bundles():
    return json.loads((SAMPLE / "manifest.json").read_text())["bundles"]


def test_one_image_per_bundle_and_nothing_skipped(unpacked):
    out, rows, counts = unpacked
    assert counts["extracted"] == len(bundles()) == 22
    assert read_csv(out / "skipped.csv") == []
    assert counts["alpha"] == {"none": 7, "sprite_alpha": 6, "paired": 6, "mesh": 2, "texture": 1}
    # the two split-alpha bundles that both name their asset "portrait" stay apart
    portraits = [r["path"] for r in rows.values() if r["asset"] == "portrait"]
    assert len(portraits) == 2 and len(set(portraits)) == 2


@pytest.mark.parametrize("entry", bundles(), ids=lambda b: b["member"].rsplit("/", 1)[-1])
def test_pixels_match_the_source_image(unpacked, entry):
    out, rows, _ = unpacked
    row = rows[entry["member"]]
    img = np.asarray(Image.open(out / row["path"]), dtype=np.float32)
    src = Image.open(SAMPLE / entry["source_image"]).convert("RGB")
    h, w = img.shape[:2]
    conv = entry["convention"]
    if conv == "azurlane_mesh":
        assert (w, h) == tuple(entry["painting_size"]) and row["alpha"] == "mesh"
        ref = np.asarray(src.resize((w, h), Image.Resampling.BICUBIC), np.float32)
        covered = img[..., 3] > 0
        assert abs(covered.mean() - entry["painting_coverage"]) < 0.01
        err = np.abs(img[..., :3] - ref)[covered]
        assert err.mean() < 2.5 and np.percentile(err, 99) < 15            # ETC2 error
        return
    ref = np.asarray(src.resize((w, h), Image.Resampling.LANCZOS), np.float32)
    if conv != "rgba":
        assert np.abs(img[..., :3] - ref).mean() < 0.5                     # lossless formats
    if "alpha" in entry:
        mask = draw_mask(entry["alpha"]["shapes"], tuple(entry["alpha"]["size"]))
        if mask.size != (w, h):                                            # half-size Alpha8
            mask = mask.resize((w, h), Image.Resampling.BILINEAR)
        assert np.abs(img[..., 3] - np.asarray(mask, np.float32)).mean() < 0.5
        assert row["alpha"] == {"split_alpha": "sprite_alpha", "alpha_pair": "paired", "rgba": "texture"}[conv]
    if conv == "sprite_atlas":
        assert img[..., 3].min() == 255 and row["alpha"] == "none"
