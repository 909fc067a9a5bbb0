"""lbpcascade_animeface on the sample images: faces found where the fixture notes say they are."""
import numpy as np
import pytest
from PIL import Image

from pipeline.extract import faces
from tests.helpers.project import CASCADE, IMAGES

ONE = "r0c1 r0c3 r1c0 r1c2 r1c4 r2c3 r3c0 r3c3 r4c0 r4c3 r4c4 r5c0 r5c3 r5c4 r2c1".split()
TWO = "r0c5 r2c4".split()
NONE = "r0c0 r3c1 r4c1".split()


@pytest.fixture(scope="module")
def cascade():
    return faces.load_cascade(str(CASCADE))


def count(name, cascade, **kw):
    rgb = np.asarray(Image.open(IMAGES / name).convert("RGB"))
    return len(faces.detect(rgb, cascade, **kw))


@pytest.mark.parametrize("cell", ONE + TWO + NONE)
def test_face_counts_match_the_notes(cascade, cell):
    expected = 1 if cell in ONE else 2 if cell in TWO else 0
    assert count(f"tadne_{cell}.jpg", cascade) == expected


def test_no_face_in_screen_tone(cascade):
    assert count("waifu2x_tone_negative.png", cascade) == 0


def test_borderline_face_found_with_fewer_neighbours(cascade):
    assert count("tadne_r0c4.jpg", cascade, min_neighbors=3) == 1


def test_crop_is_square_enlarged_and_inside_the_image():
    x, y, s, s2 = faces.crop_box((100, 50, 40, 40), (400, 300), expand=2.0, shift=0.25)
    assert s == s2 == 80
    assert (x, y) == (80, 40)                      # centre (120, 70 + 10) minus half the side
    # A face at the corner: the crop slides inside instead of leaving the image.
    x, y, s, _ = faces.crop_box((0, 0, 50, 50), (400, 300), expand=3.0)
    assert (x, y, s) == (0, 0, 150)
    # A crop larger than the image shrinks to the shorter side.
    x, y, s, _ = faces.crop_box((10, 10, 90, 90), (120, 100), expand=3.0)
    assert s == 100 and 0 <= x <= 20 and y == 0


def test_missing_cascade_is_one_clear_error(tmp_path):
    from pipeline.core.errors import UserError

    with pytest.raises(UserError, match="cascade"):
        faces.load_cascade(str(tmp_path / "nope.xml"))


def grey_of(name):
    import cv2

    rgb = np.asarray(Image.open(IMAGES / name).convert("RGB"))
    return rgb, cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("cell", ["r0c5", "r2c1", "r3c0"])
def test_confidence_is_the_final_stage_sum_above_its_threshold(cascade, cell):
    rgb, grey = grey_of(f"tadne_{cell}.jpg")
    scored = faces.detect_scored(rgb, cascade)
    # The same boxes as the plain call (what the stage wrote before the column existed).
    plain = cascade.classifier.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    assert [box for box, _ in scored] == sorted(tuple(int(v) for v in b) for b in plain)
    # The last <stageThreshold> of the XML, read directly.
    text = CASCADE.read_text()
    last = float(text[text.rindex("<stageThreshold>") + 16:text.rindex("</stageThreshold>")])
    assert cascade.last_threshold == last
    _, _, weights = cascade.classifier.detectMultiScale3(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24),
                                                         outputRejectLevels=True)
    assert sorted(round(w - last, 4) for w in np.ravel(weights)) == sorted(c for _, c in scored)
    assert all(c >= 0 for _, c in scored)  # every accepted box passed the last stage


def test_min_confidence_drops_weak_boxes_and_the_index_has_the_column(in_tmp):
    from pipeline.core.files import read_csv, write_csv
    from pipeline.core.params import FacesParams

    flat = in_tmp / "data/flat"
    flat.mkdir(parents=True)
    rows = []
    for cell in ("r0c5", "r2c1"):  # two clear faces and a weak one (r2c1: about 1.99 above the threshold)
        Image.open(IMAGES / f"tadne_{cell}.jpg").convert("RGB").save(flat / f"{cell}.png")
        rows.append({"path": f"{cell}.png", "extracted": "x", "width": 1, "height": 1, "source": "s", "asset": cell})
    write_csv(flat / "index.csv", list(rows[0]), rows)
    out = faces.run(FacesParams(cascade=str(CASCADE), workers=1), flat, in_tmp / "data/faces")
    index = read_csv(in_tmp / "data/faces/index.csv")
    assert out["faces"] == len(index) == 3
    conf = {r["path"]: float(r["confidence"]) for r in index}
    weak = conf["r2c1_face0.png"]
    assert weak == min(conf.values()) and all(c > weak + 1 for p, c in conf.items() if p != "r2c1_face0.png")
    out = faces.run(FacesParams(cascade=str(CASCADE), workers=1, min_confidence=weak + 0.5), flat, in_tmp / "data/faces")
    assert (out["faces"], out["dropped"], out["images_with_faces"]) == (2, 1, 1)
    assert [r["path"] for r in read_csv(in_tmp / "data/faces/index.csv")] == ["r0c5_face0.png", "r0c5_face1.png"]
