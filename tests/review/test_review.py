"""The manifest: stable ids, automatic rejections, human decisions that win, the kept data sets."""
import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, write_csv
from pipeline.core.params import ReviewParams
from pipeline.review.manifest import Decision, image_id, read_decisions, write_decisions
from pipeline.review.stage import run
from tests.helpers.project import IMAGES


def make_project(root):
    """data/flat with real images (one duplicated, one near duplicate, one blank, one tiny) and faces."""
    flat = root / "data" / "flat"
    flat.mkdir(parents=True)
    rows = []
    names = ["tadne_r0c1.jpg", "tadne_r1c2.jpg", "tadne_r2c4.jpg"]
    for i, n in enumerate(names):
        Image.open(IMAGES / n).convert("RGB").resize((128, 128)).save(flat / f"a{i}.png")
        rows.append({"path": f"a{i}.png", "extracted": f"a{i}.png", "width": 128, "height": 128,
                     "source": "g.apk!b", "asset": f"char{i}"})
    # exact duplicate (another asset), near duplicate (slightly brighter), blank, too small
    Image.open(flat / "a0.png").save(flat / "dup.png")
    arr = np.asarray(Image.open(flat / "a1.png")).astype(int) + 6
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(flat / "near.png")
    Image.new("RGB", (128, 128), (250, 250, 250)).save(flat / "blank.png")
    Image.open(flat / "a2.png").resize((40, 40)).save(flat / "tiny.png")
    for name in ("dup", "near", "blank", "tiny"):
        w = 40 if name == "tiny" else 128
        rows.append({"path": f"{name}.png", "extracted": f"{name}.png", "width": w, "height": w,
                     "source": "g.apk!c", "asset": name})
    write_csv(flat / "index.csv", list(rows[0]), rows)
    faces = root / "data" / "faces"
    faces.mkdir(parents=True)
    Image.open(flat / "a0.png").crop((10, 10, 90, 90)).save(faces / "a0_face0.png")
    write_csv(faces / "index.csv", ["path", "image", "x", "y", "w", "h", "crop_x", "crop_y", "crop_w",
                                    "crop_h", "source", "asset", "confidence"],
              [{"path": "a0_face0.png", "image": "data/flat/a0.png", "x": 30, "y": 30, "w": 40, "h": 40,
                "crop_x": 10, "crop_y": 10, "crop_w": 80, "crop_h": 80, "source": "g.apk!b", "asset": "char0",
                "confidence": "2.5000"}])
    (root / "review").mkdir()


def manifest(root):
    return {r["asset"] + (":face" if r["kind"] == "face" else ""): r
            for r in read_csv(root / "data" / "review" / "manifest.csv")}


def test_automatic_rejections_and_defaults(in_tmp):
    make_project(in_tmp)
    run(ReviewParams())
    m = manifest(in_tmp)
    assert {k: (r["status"], r["reason"]) for k, r in m.items()} == {
        "char0": ("keep", "default"), "char1": ("keep", "default"), "char2": ("keep", "default"),
        "dup": ("reject", "duplicate"), "near": ("reject", "near_duplicate"), "blank": ("reject", "blank"),
        "tiny": ("reject", "too_small"), "char0:face": ("keep", "default")}
    assert m["dup"]["duplicate_of"] in (m["char0"]["id"],)
    assert m["near"]["duplicate_of"] == m["char1"]["id"]
    assert m["char0:face"]["image"] == "data/flat/a0.png" and m["char0:face"]["crop_w"] == "80"
    assert m["char0:face"]["confidence"] == "2.5000" and m["char0"]["confidence"] == ""
    # The hash distance to the copy kept: 0 for the same pixels, the popcount of the XOR otherwise.
    assert m["dup"]["distance"] == "0" and 0 <= int(m["near"]["distance"]) <= 4 and m["char1"]["distance"] == ""
    kept = read_csv(in_tmp / "data" / "dataset" / "fullbody" / "index.csv")
    assert sorted(r["asset"] for r in kept) == ["char0", "char1", "char2"]
    assert all((in_tmp / "data" / "dataset" / "fullbody" / r["path"]).exists() for r in kept)
    assert len(read_csv(in_tmp / "data" / "dataset" / "faces" / "index.csv")) == 1


def test_ids_depend_on_what_an_image_is_not_its_pixels():
    assert image_id("fullbody", "a.apk!x", "c", "p") == image_id("fullbody", "a.apk!x", "c", "p")
    assert image_id("fullbody", "a.apk!x", "c", "p") != image_id("fullbody", "a.apk!y", "c", "p")
    assert image_id("face", "a", "c", "box1").startswith("face-")


def test_human_decisions_win(in_tmp):
    make_project(in_tmp)
    run(ReviewParams())
    m = manifest(in_tmp)
    write_decisions(in_tmp / "review" / "decisions.csv", {
        m["char1"]["id"]: Decision("reject", "wrong character"),
        m["dup"]["id"]: Decision("keep"),
    })
    run(ReviewParams())
    m = manifest(in_tmp)
    assert (m["char1"]["status"], m["char1"]["reason"], m["char1"]["auto_reason"]) == ("reject", "human", "")
    assert (m["dup"]["status"], m["dup"]["reason"], m["dup"]["auto_reason"]) == ("keep", "human", "duplicate")
    kept = {r["asset"] for r in read_csv(in_tmp / "data" / "dataset" / "fullbody" / "index.csv")}
    assert kept == {"char0", "char2", "dup"}


def test_default_reject_and_near_duplicate_off(in_tmp):
    make_project(in_tmp)
    run(ReviewParams(default="reject", near_duplicate=-1))
    m = manifest(in_tmp)
    assert m["char0"]["status"] == "reject" and m["char0"]["reason"] == "default"
    assert m["near"]["reason"] == "default"


def test_bad_decisions_file_is_one_line(in_tmp):
    (in_tmp / "d.csv").write_text("id,status,note\nfb-1,maybe,\n")
    with pytest.raises(UserError, match=r"d.csv:2: status 'maybe'"):
        read_decisions(in_tmp / "d.csv")
    assert read_decisions(in_tmp / "missing.csv") == {}


def test_a_spreadsheets_byte_order_mark_is_accepted(in_tmp):
    (in_tmp / "d.csv").write_bytes("id,status,note\nfb-1,reject,blurry\n".encode("utf-8-sig"))
    assert read_decisions(in_tmp / "d.csv") == {"fb-1": Decision("reject", "blurry")}


def test_a_duplicate_or_unknown_id_is_one_error_naming_file_line_and_id(in_tmp):
    (in_tmp / "d.csv").write_text("id,status,note\nfb-1,reject,\nfb-2,keep,\nfb-1,keep,\n")
    with pytest.raises(UserError, match=r"d.csv:4: fb-1 is decided twice \(also on line 2\)"):
        read_decisions(in_tmp / "d.csv")
    make_project(in_tmp)
    run(ReviewParams())
    real = manifest(in_tmp)["char1"]["id"]
    (in_tmp / "review").mkdir(exist_ok=True)
    (in_tmp / "review" / "decisions.csv").write_text(f"id,status,note\n{real},reject,\nfb-00000000dead,keep,\n")
    with pytest.raises(UserError, match=r"review/decisions.csv:3: fb-00000000dead is no image of "
                                        r"data/review/manifest.csv"):
        run(ReviewParams())
