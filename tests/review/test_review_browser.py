"""End to end: the review page in headless Chromium (Debian's package, driven by Playwright).

Nothing here downloads a browser: the test uses the system's /usr/bin/chromium and is skipped, with
the reason, where that is not installed (`apt-get install chromium`).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.files import read_csv, write_csv
from pipeline.review.manifest import MANIFEST_COLUMNS
from pipeline.review.server import make_server
from tests.helpers import browser

sync_api = browser.require()

FB = [f"fb-{i:012d}" for i in range(4)]
FACE = "face-000000000000"


def make_project(root: Path) -> Path:
    rows = []
    for i, rid in enumerate(FB):
        path = f"data/flat/game.apk/c{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (80, 120), (60 * i, 120, 200)).save(root / path)
        rows.append({"id": rid, "kind": "fullbody", "path": path, "source": "game.apk", "status": "keep",
                     "reason": "default", "image": path, "width": 80, "height": 120})
    crop = "data/faces/game.apk/f0.png"
    (root / crop).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (250, 200, 0)).save(root / crop)
    rows.append({"id": FACE, "kind": "face", "path": crop, "source": "game.apk", "status": "keep",
                 "reason": "default", "image": rows[0]["path"], "width": 40, "height": 40,
                 "x": 20, "y": 10, "w": 20, "h": 20, "crop_x": 10, "crop_y": 0, "crop_w": 40, "crop_h": 40})
    write_csv(root / "data/review/manifest.csv", MANIFEST_COLUMNS, rows)
    return root


@pytest.fixture
def page_url(tmp_path):
    with browser.serving(make_server(make_project(tmp_path), "127.0.0.1", 0)) as server:
        yield tmp_path, server.url


@pytest.fixture
def page():
    with browser.open_page() as page:
        yield page


def decisions(root: Path) -> dict[str, str]:
    path = root / "review/decisions.csv"
    return {r["id"]: r["status"] for r in read_csv(path)} if path.exists() else {}


def tile(page, rid):
    return page.locator(f".tile[data-id='{rid}']")


def classes(*names):
    """Matches a class attribute that holds all `names`, in any order."""
    return re.compile("".join(rf"(?=.*\b{n}\b)" for n in names))


def test_reject_with_the_keyboard_survives_a_reload(page_url, page):
    root, url = page_url
    page.goto(url)
    sync_api.expect(page.locator(".tile")).to_have_count(5)
    sync_api.expect(tile(page, FB[0])).to_have_class(classes("keep", "focus"))
    page.keyboard.press("ArrowRight")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("keep", "focus"))
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("x")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("reject"))
    assert decisions(root) == {FB[1]: "reject"}  # saved at once
    sync_api.expect(tile(page, FB[2])).to_have_class(classes("keep", "focus"))  # moved on to the next one

    # Reject and undo: the row goes away again.
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("x")
    assert decisions(root) == {FB[1]: "reject", FB[2]: "reject"}
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    sync_api.expect(tile(page, FB[2])).to_have_class(classes("keep", "focus"))
    assert decisions(root) == {FB[1]: "reject"}

    page.reload()
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("reject"))
    sync_api.expect(tile(page, FB[1]).locator(".badge")).to_have_text("by hand")
    sync_api.expect(page.locator("#counts")).to_contain_text("5 shown: 4 keep, 1 reject, 1 decided by hand")


def test_redo_by_key_button_and_ctrl_z_until_a_new_action(page_url, page):
    root, url = page_url
    page.goto(url)
    sync_api.expect(page.locator(".tile")).to_have_count(5)
    redo = page.locator("#redo")
    sync_api.expect(redo).to_be_disabled()
    page.keyboard.press("ArrowRight")
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("x")
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("keep", "focus"))  # undo shows what it changed
    sync_api.expect(redo).to_be_enabled()
    sync_api.expect(redo).to_have_attribute("title", f"redo: reject {FB[1]} (U)")
    sync_api.expect(page.locator("#message")).to_have_text(f"undid: reject {FB[1]} (U redoes)")
    with page.expect_response("**/api/redo"):
        page.keyboard.press("U")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("reject", "focus"))
    assert decisions(root) == {FB[1]: "reject"}
    sync_api.expect(redo).to_be_disabled()
    sync_api.expect(page.locator("#undo")).to_have_attribute("title", f"undo: reject {FB[1]} (u)")

    # As in an editor: Ctrl+Z undoes, the button and Ctrl+Shift+Z redo.
    with page.expect_response("**/api/undo"):
        page.keyboard.press("Control+z")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("keep"))
    assert decisions(root) == {}
    with page.expect_response("**/api/redo"):
        redo.click()
    assert decisions(root) == {FB[1]: "reject"}
    with page.expect_response("**/api/undo"):
        page.keyboard.press("Control+z")
    with page.expect_response("**/api/redo"):
        page.keyboard.press("Control+Shift+Z")
    sync_api.expect(tile(page, FB[1])).to_have_class(classes("reject"))
    # A new decision ends what could be redone; a reload asks the server again and agrees.
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    sync_api.expect(redo).to_be_enabled()
    tile(page, FB[2]).locator(".pic").click()
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("x")
    sync_api.expect(redo).to_be_disabled()
    page.reload()
    sync_api.expect(tile(page, FB[2])).to_have_class(classes("reject"))
    sync_api.expect(page.locator("#undo")).to_be_enabled()
    sync_api.expect(redo).to_be_disabled()
    assert decisions(root) == {FB[2]: "reject"}


def test_filter_click_and_face_box(page_url, page):
    root, url = page_url
    page.goto(url + "#status=keep")
    sync_api.expect(page.locator(".tile")).to_have_count(5)
    # Clicking a tile's reject button saves too.
    with page.expect_response("**/api/decisions"):
        tile(page, FB[3]).get_by_role("button", name="reject (x)").click()
    assert decisions(root) == {FB[3]: "reject"}
    page.select_option("select[name=kind]", "face")
    sync_api.expect(page.locator(".tile")).to_have_count(1)
    assert "kind=face" in page.url
    # The face crop is shown on the image it was cut from (80 x 120), box at x=20, y=10, 20 x 20.
    box = page.locator("#detail .figure .box")
    sync_api.expect(box).to_have_count(1)
    style = box.get_attribute("style")
    assert "left: 25%" in style and "width: 25%" in style, style
    assert page.locator("#detail .figure img").evaluate("img => img.naturalWidth") == 80


def test_reject_all_shown_and_undo_it(page_url, page):
    root, url = page_url
    page.goto(url + "#kind=fullbody")
    sync_api.expect(page.locator(".tile")).to_have_count(4)
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response("**/api/decisions"):
        page.get_by_role("button", name="reject all 4 shown").click()
    sync_api.expect(page.locator(".tile.reject")).to_have_count(4)
    assert decisions(root) == {rid: "reject" for rid in FB}  # the face crop is not in this view
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    sync_api.expect(page.locator(".tile.keep")).to_have_count(4)
    assert decisions(root) == {}
