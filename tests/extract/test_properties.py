"""Property-based tests: the image and manifest readers take any input without crashing."""
import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import clean_text, read_csv, write_csv
from pipeline.extract.archives import sniff
from pipeline.extract.images import flatten, open_image, to_rgba
from pipeline.review.manifest import Decision, read_decisions, write_decisions

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "LAB", "RGBX", "La", "RGBa"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=2048))
def test_open_image_accepts_or_refuses_any_bytes(data):
    try:
        im = open_image(data, max_pixels=1_000_000)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert to_rgba(im).mode == "RGBA"


@FAST
@given(st.sampled_from(["PNG", "GIF", "BMP", "TIFF", "WEBP", "JPEG"]), st.integers(1, 40), st.integers(1, 40),
       st.integers(0, 400), st.integers(0, 255))
def test_damaged_images_give_a_reason(fmt, w, h, cut, byte):
    img = Image.new("RGB", (w, h), (byte, 255 - byte, 7))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = bytearray(buf.getvalue())
    data = data[: max(1, len(data) - cut)]
    data[len(data) // 2] = byte
    try:
        im = open_image(bytes(data), max_pixels=10_000)
        assert flatten(im).size == im.size
    except ValueError as e:
        assert str(e)


@FAST
@given(st.sampled_from(MODES), st.integers(1, 12), st.integers(1, 12), st.sampled_from(["composite", "drop_alpha"]),
       st.booleans(), st.binary(min_size=0, max_size=600))
def test_every_mode_flattens_to_rgb_of_the_same_size(mode, w, h, how, trim, noise):
    base = Image.frombytes("L", (w, h), (noise * (w * h // max(1, len(noise)) + 1))[: w * h] if noise else bytes(w * h))
    try:
        im = base.convert(mode)
    except ValueError:
        im = Image.merge("RGB", [base] * 3).convert(mode) if mode != "I;16" else \
            Image.fromarray(np.asarray(base, np.uint16) * 257)
    out = flatten(im, how, (10, 20, 30), trim)
    assert out.mode == "RGB"
    assert out.size == im.size or trim


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@FAST
@given(st.lists(st.tuples(cells, cells, cells), max_size=20), st.booleans())
def test_decisions_reader_takes_any_csv(rows, header):
    buf = io.StringIO()
    w = csv.writer(buf)
    if header:
        w.writerow(["id", "status", "note"])
    w.writerows(rows)
    path = __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "decisions.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    try:
        decisions = read_decisions(path)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert all(d.status in ("keep", "reject") for d in decisions.values())


@FAST
@given(st.binary(max_size=400))
def test_decisions_reader_takes_any_bytes(data):
    path = __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "decisions.csv"
    path.write_bytes(data)
    try:
        read_decisions(path)
    except UserError as e:
        assert "\n" not in str(e)


@FAST
@given(st.dictionaries(st.from_regex(r"(fb|face)-[0-9a-f]{12}", fullmatch=True),
                       st.tuples(st.sampled_from(["keep", "reject"]), cells), max_size=15))
def test_decisions_round_trip(entries):
    path = __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "decisions.csv"
    decisions = {k: Decision(s, n) for k, (s, n) in entries.items()}
    write_decisions(path, decisions)
    back = read_decisions(path)
    assert back == {k: Decision(d.status, clean_text(d.note).strip()) for k, d in decisions.items()}


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(["path", "source", "asset"]), cells, min_size=3), max_size=10))
def test_manifest_csv_round_trip(rows):
    path = __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "m.csv"
    write_csv(path, ["path", "source", "asset"], rows)
    back = read_csv(path)
    assert back == [{k: clean_text(v) for k, v in r.items()} for r in rows]


@FAST
@given(st.binary(max_size=128), st.integers(0, 10**9))
def test_sniff_never_fails(head, size):
    assert sniff(head, size) in (None, "zip", "bundle", "serialized", "image")
