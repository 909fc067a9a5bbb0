"""The review page for sweeping many images, in headless Chromium: the thumbnail size, keep all shown,
notes, undo after a reload, the folder filter, the duplicate pair and its swap.

Every wait is on the page's own state: body[data-busy="0"] once its loads and saves are done, or a class
or text it sets; never on a timer.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.files import read_csv, write_csv
from pipeline.review.manifest import MANIFEST_COLUMNS
from pipeline.review.server import make_server
from tests.helpers import browser
from tests.review.test_review_browser import classes, sync_api, tile

N = 120                                       # more than the smallest size shows on one screen
IDS = [f"fb-{i:012d}" for i in range(N)]
DUP, KEPT = IDS[1], IDS[0]                    # IDS[1] is a near duplicate of IDS[0]


def make_project(root: Path) -> Path:
    rows = []
    for i, rid in enumerate(IDS):
        folder = "chars" if i < 100 else "ui"
        path = f"data/flat/game.apk/{folder}/c{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        size = (90, 120) if i == 0 else (60, 80)
        Image.new("RGB", size, ((37 * i) % 256, 120, 200)).save(root / path)
        dup = i == 1
        rows.append({"id": rid, "kind": "fullbody", "path": path, "source": f"game.apk!{folder}/c{i}.bundle",
                     "status": "reject" if dup else "keep", "reason": "near_duplicate" if dup else "default",
                     "auto_reason": "near_duplicate" if dup else "", "duplicate_of": KEPT if dup else "",
                     "distance": "2" if dup else "", "image": path, "width": size[0], "height": size[1]})
    write_csv(root / "data/review/manifest.csv", MANIFEST_COLUMNS, rows)
    return root


@pytest.fixture
def served(tmp_path):
    with browser.serving(make_server(make_project(tmp_path), "127.0.0.1", 0)) as server:
        yield tmp_path, server.url


@pytest.fixture
def page():
    with browser.open_page(viewport={"width": 1280, "height": 720}) as page:
        yield page


def settled(page):
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")


def decisions(root: Path) -> dict[str, tuple[str, str]]:
    path = root / "review/decisions.csv"
    return {r["id"]: (r["status"], r["note"]) for r in read_csv(path)} if path.exists() else {}


def visible_tiles(page) -> int:
    """Tiles wholly inside the grid's visible area."""
    return page.evaluate("""() => {
        const g = document.querySelector('#grid').getBoundingClientRect();
        return [...document.querySelectorAll('.tile')].filter((t) => {
            const r = t.getBoundingClientRect();
            return r.top >= g.top && r.bottom <= g.bottom && r.left >= g.left && r.right <= g.right;
        }).length;
    }""")


def test_the_smallest_size_shows_a_screenful_and_is_remembered(served, page):
    _, url = served
    page.goto(url)
    settled(page)
    medium = page.locator(".tile").count()
    assert medium == visible_tiles(page) and medium < 60  # a page is what fits, nothing below the fold
    page.select_option("#size", "0")
    settled(page)
    tiny = page.locator(".tile").count()
    assert tiny >= 60 and visible_tiles(page) == tiny, (tiny, visible_tiles(page))
    assert page.evaluate("document.querySelector('#grid').scrollHeight <= document.querySelector('#grid').clientHeight")
    page.reload()
    settled(page)
    sync_api.expect(page.locator("#size")).to_have_value("0")
    assert page.locator(".tile").count() == tiny
    page.keyboard.press("+")  # and back up with the keyboard
    settled(page)
    sync_api.expect(page.locator("#size")).to_have_value("1")


def test_one_key_keeps_the_rest_of_the_screen_and_turns_the_page(served, page):
    root, url = served
    page.goto(url)
    page.evaluate("localStorage.setItem('review.size', '0')")
    page.reload()
    settled(page)
    shown = page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.id)")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("x")  # the one bad image of this screen
    page.keyboard.press("K")
    settled(page)
    sync_api.expect(page.locator("#pageinfo")).to_contain_text("page 2 of")
    # The near duplicate (an automatic rejection) stays as it was; the rest is kept by hand.
    assert decisions(root) == {IDS[2]: ("reject", ""), **{rid: ("keep", "") for rid in shown if rid not in (DUP, IDS[2])}}


def test_keep_all_shown_and_its_undo_after_a_reload(served, page):
    root, url = served
    page.goto(url + "#folder=game.apk!ui")  # the folder filter: 20 images in game.apk's ui folder
    settled(page)
    sync_api.expect(page.locator("#counts")).to_contain_text("20 shown")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response("**/api/decisions"):
        page.get_by_role("button", name="keep all 20 shown").click()
    settled(page)
    assert decisions(root) == {rid: ("keep", "") for rid in IDS[100:]}
    sync_api.expect(page.locator(".tile .badge.human").first).to_be_visible()
    page.reload()  # the undo history is on disk, not in the tab
    settled(page)
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    settled(page)
    assert decisions(root) == {}
    sync_api.expect(page.locator("#message")).to_have_text("undid: keep all 20 shown (U redoes)")
    sync_api.expect(page.locator(".tile .badge.human")).to_have_count(0)


def test_the_folder_filter_typed_in(served, page):
    _, url = served
    page.goto(url)
    settled(page)
    page.fill("input[name=folder]", "game.apk!ui")
    page.press("input[name=folder]", "Enter")
    settled(page)
    sync_api.expect(page.locator("#counts")).to_contain_text("20 shown")
    assert "folder=game.apk%21ui" in page.url or "folder=game.apk!ui" in page.url
    assert all(rid in IDS[100:] for rid in page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.id)"))
    # The folders are offered as the field's suggestions.
    assert page.locator("#folder-list option[value='game.apk!chars']").count() == 1


def test_a_note_is_saved_with_the_images_status(served, page):
    root, url = served
    page.goto(url + f"#id={IDS[5]}")
    settled(page)
    page.keyboard.press("c")
    page.keyboard.type("armour, not a face")
    with page.expect_response("**/api/decisions"):
        page.keyboard.press("Enter")
    settled(page)
    assert decisions(root) == {IDS[5]: ("keep", "armour, not a face")}
    page.reload()
    settled(page)
    sync_api.expect(tile(page, IDS[5])).to_have_attribute("title", classes("note: armour, not a face"))


def test_the_duplicate_is_shown_beside_its_copy_and_one_key_swaps_them(served, page):
    root, url = served
    page.goto(url + "#auto=near_duplicate")
    settled(page)
    copies = page.locator("#detail .pair .copy")
    sync_api.expect(copies).to_have_count(2)
    sync_api.expect(copies.nth(0)).to_contain_text("this copy: 60 × 80, reject")
    sync_api.expect(copies.nth(1)).to_contain_text("the copy it duplicates: 90 × 120, keep")
    sync_api.expect(page.locator("#detail .distance")).to_have_text("hash distance 2 bits of 64")
    with page.expect_response("**/api/swap"):
        page.keyboard.press("s")
    settled(page)
    assert decisions(root) == {DUP: ("keep", ""), KEPT: ("reject", "")}
    sync_api.expect(tile(page, DUP)).to_have_class(classes("keep"))
    sync_api.expect(page.locator(f"#detail .pair .copy[data-id='{KEPT}']")).to_have_class(classes("reject"))
    with page.expect_response("**/api/undo"):
        page.keyboard.press("u")
    settled(page)
    assert decisions(root) == {}
