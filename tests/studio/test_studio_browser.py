"""End to end: the design studio in headless Chromium (Debian's package, driven by Playwright) on a
really trained tiny model. Every wait is on the page's own busy flag (body[data-busy]) or an element,
never on a timer.

What is clicked: picking, psi, mixing, keeping and reloading; re-roll (a random second character, the
candidates untouched) and swap, by button and key; a favourite's two export links (downloads equal to the
large view enlarged, nearest); and a tall (model.aspect 2) model drawing tall in the grid, the large view
and its export.

Nothing here downloads a browser: the test uses the system's /usr/bin/chromium and is skipped, with
the reason, where that is not installed (`apt-get install chromium`).
"""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.helpers import browser
from tests.helpers.tiny import tiny_models

sync_api = browser.require()
BIG_PIXELS = """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
  c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(0, 0, c.width, c.height).data); }"""


@pytest.fixture
def page():
    with browser.open_page() as page:
        yield page


def settled(page, shown: str):
    """Wait until nothing is being drawn and the large image shows `shown` (part of its API address);
    return its pixels."""
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")
    big = page.locator("#big")
    sync_api.expect(big).to_have_attribute("data-shown", re.compile(re.escape(shown)))
    return big.evaluate(BIG_PIXELS)


def test_pick_truncate_mix_keep_and_reload(models, serve, tmp_path, page):
    file = tmp_path / "favourites.json"
    studio = serve(models / "res16", file)
    page.goto(studio.url)
    sync_api.expect(page.locator("#grid .cand")).to_have_count(32)
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")
    sync_api.expect(page.locator("input[name=band][value=fine]")).to_be_disabled()   # a 16 px model has none

    page.locator("#grid .cand[data-seed='3']").click()
    sync_api.expect(page.locator("#grid .cand[data-seed='3']")).to_have_class("cand focus")
    picked = settled(page, "seed=3&psi=1&")
    assert len(picked) == 16 * 16 * 4

    page.locator("#psi").fill("0.3")
    truncated = settled(page, "seed=3&psi=0.3&")
    assert truncated != picked
    sync_api.expect(page.locator("#psiValue")).to_have_text("0.30")

    page.locator("#mixSeed").fill("12")
    page.locator("#mixSeed").press("Enter")
    page.locator("body").press("1")                                     # the key for the coarse band
    mixed = settled(page, "/api/mix?a=3&b=12&band=coarse&psi=0.3")
    assert mixed != truncated
    sync_api.expect(page.locator("#caption")).to_contain_text("coarse styles of 12")

    with page.expect_response(lambda r: r.url.endswith("/api/favourites") and r.request.method == "POST"):
        page.locator("body").press("f")
    sync_api.expect(page.locator("#favs li")).to_have_count(1)
    saved = json.loads(file.read_text())["favourites"]
    assert [(f["seed"], f["psi"], f["mix_seed"], f["band"]) for f in saved] == [(3, 0.3, 12, "coarse")]

    page.reload()
    sync_api.expect(page.locator("#favs li")).to_have_count(1)
    sync_api.expect(page.locator("#favs li")).to_contain_text("seed 3 + coarse of 12, psi 0.3")
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")
    page.locator("#favs li img").click()                              # opening it brings its settings back
    assert settled(page, "/api/mix?a=3&b=12&band=coarse&psi=0.3") == mixed

    page.locator("body").press("ArrowRight")                           # the next candidate, same settings
    sync_api.expect(page.locator("#grid .cand[data-seed='4']")).to_have_class("cand focus")
    page.locator("body").press("]")
    page.locator("body").press("0")
    settled(page, "/api/image?seed=4&psi=0.35&")


def enlarged(pixels, height: int, width: int, scale: int) -> list[int]:
    """RGBA pixels of a height x width image, row by row as a canvas gives them, enlarged `scale` x (nearest)."""
    rgba = np.asarray(pixels, dtype=np.uint8).reshape(height, width, 4)
    return list(rgba.repeat(scale, axis=0).repeat(scale, axis=1).ravel())


def pixels_of(png: bytes, scale: int = 1) -> list[int]:
    """A PNG's pixels as the page reads them off a canvas (RGBA, row by row), enlarged `scale` x (nearest)."""
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    return enlarged(rgba, *rgba.shape[:2], scale)


def shown(page, selector: str) -> str:
    return page.locator(selector).get_attribute("data-shown")


def drawn(studio, address: str) -> bytes:
    """The server's PNG for an API address the page shows."""
    status, data, ctype = studio.get(address)
    assert (status, ctype) == (200, "image/png"), (address, status, data)
    return data


def open_studio(page, studio):
    page.goto(studio.url)
    sync_api.expect(page.locator("#grid .cand")).to_have_count(32)
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")


def grid_state(page) -> list[tuple[str, str]]:
    return page.locator("#grid .cand").evaluate_all(
        "tiles => tiles.map(t => [t.dataset.seed, t.querySelector('img').dataset.shown])")


def test_reroll_draws_a_random_second_character_by_button_and_key(models, serve, page):
    studio = serve(models / "res16")
    open_studio(page, studio)
    candidates = grid_state(page)
    page.locator("#grid .cand[data-seed='3']").click()
    page.locator("body").press("1")
    settled(page, "/api/mix?a=3&b=1&band=coarse&psi=1&")
    sync_api.expect(page.locator("#grid .cand[data-seed='1']")).to_have_class("cand second")

    seconds = [1]
    for reroll in (lambda: page.locator("#reroll").click(), lambda: page.locator("body").press("r")):
        reroll()
        sync_api.expect(page.locator("#mixSeed")).not_to_have_value(str(seconds[-1]))
        b = int(page.locator("#mixSeed").input_value())
        assert 0 <= b <= 2**32 - 1 and b not in seconds
        seconds.append(b)
        # the chosen character keeps its seed, psi and band; only the second is new, wherever it shows
        big = settled(page, f"/api/mix?a=3&b={b}&band=coarse&psi=1&noise=const")
        assert big == pixels_of(drawn(studio, shown(page, "#big")))
        assert shown(page, "#second") == f"/api/image?seed={b}&psi=1&noise=const"
        assert page.locator("#second").evaluate(BIG_PIXELS) == pixels_of(drawn(studio, shown(page, "#second")))
        assert shown(page, "#strip").startswith(f"/api/interpolate?a=3&b={b}&steps=8&")
        sync_api.expect(page.locator("#caption")).to_contain_text(f"seed 3 with the coarse styles of {b}")
        sync_api.expect(page.locator("#grid .cand.second")).to_have_count(1 if b < 32 else 0)
        sync_api.expect(page.locator("#grid .cand.focus")).to_have_attribute("data-seed", "3")
        assert grid_state(page) == candidates            # re-roll is not "new candidates"


def test_swap_exchanges_the_two_characters_by_key_and_button(models, serve, page):
    studio = serve(models / "res16")
    open_studio(page, studio)
    page.locator("#grid .cand[data-seed='3']").click()
    page.locator("#mixSeed").fill("12")
    page.locator("#mixSeed").press("Enter")
    page.locator("body").press("1")
    first = settled(page, "/api/mix?a=3&b=12&band=coarse&psi=1&")

    page.locator("body").press("x")
    swapped = settled(page, "/api/mix?a=12&b=3&band=coarse&psi=1&")
    assert swapped == pixels_of(drawn(studio, shown(page, "#big"))) and swapped != first
    sync_api.expect(page.locator("#mixSeed")).to_have_value("3")
    sync_api.expect(page.locator("#grid .cand[data-seed='12']")).to_have_class("cand focus")
    sync_api.expect(page.locator("#grid .cand[data-seed='3']")).to_have_class("cand second")
    assert shown(page, "#second") == "/api/image?seed=3&psi=1&noise=const"
    assert shown(page, "#strip").startswith("/api/interpolate?a=12&b=3&")
    sync_api.expect(page.locator("#caption")).to_contain_text("seed 12 with the coarse styles of 3")

    page.locator("#swap").click()
    assert settled(page, "/api/mix?a=3&b=12&band=coarse&psi=1&") == first
    sync_api.expect(page.locator("#mixSeed")).to_have_value("12")
    sync_api.expect(page.locator("#grid .cand[data-seed='3']")).to_have_class("cand focus")

    # a re-rolled second swapped in is far off the grid: the arrows go on from it (a new grid there)
    page.locator("body").press("0")
    page.locator("body").press("r")
    sync_api.expect(page.locator("#mixSeed")).not_to_have_value("12")
    b = int(page.locator("#mixSeed").input_value())
    page.locator("body").press("x")
    settled(page, f"/api/image?seed={b}&psi=1&")
    sync_api.expect(page.locator("#mixSeed")).to_have_value("3")
    page.locator("body").press("ArrowRight" if b < 2**32 - 1 else "ArrowLeft")
    nxt = b + 1 if b < 2**32 - 1 else b - 1
    sync_api.expect(page.locator(f"#grid .cand[data-seed='{nxt}']")).to_have_class("cand focus")
    settled(page, f"/api/image?seed={nxt}&psi=1&")
    sync_api.expect(page.locator("#grid .cand").first).to_have_attribute("data-seed", str(nxt))


def test_export_of_a_favourite_is_the_large_view_enlarged(models, serve, tmp_path, page):
    studio = serve(models / "res16", tmp_path / "favourites.json")
    open_studio(page, studio)
    page.locator("#grid .cand[data-seed='5']").click()
    page.locator("#psi").fill("0.7")
    big = settled(page, "/api/image?seed=5&psi=0.7&noise=const")
    with page.expect_response(lambda r: r.url.endswith("/api/favourites") and r.request.method == "POST"):
        page.locator("#keep").click()
    sync_api.expect(page.locator("#favs li")).to_have_count(1)
    sync_api.expect(page.locator("body")).to_have_attribute("data-busy", "0")
    assert page.locator("#favs li img").evaluate(BIG_PIXELS) == big

    for label, scale in (("PNG", 1), ("PNG x4", 4)):
        link = page.locator("#favs li a", has_text=re.compile(f"^{re.escape(label)}$"))
        assert link.get_attribute("href") == f"/api/export?id=1&scale={scale}"
        with page.expect_download() as download:
            link.click()
        name = "favourite-1.png" if scale == 1 else "favourite-1-x4.png"
        assert download.value.suggested_filename == name
        data = open(download.value.path(), "rb").read()
        assert Image.open(io.BytesIO(data)).size == (16 * scale, 16 * scale)
        assert pixels_of(data) == pixels_of(drawn(studio, "/api/image?seed=5&psi=0.7&noise=const"), scale)
        assert pixels_of(data) == enlarged(big, 16, 16, scale)


@pytest.fixture(scope="module")
def tall_models(tmp_path_factory):
    """models/res8 really trained at model.aspect 2 (8 tall x 4 wide): a few seconds, one stage."""
    return tiny_models(tmp_path_factory, "studio-tall", final_res=8, model={"aspect": 2})


def test_a_tall_model_draws_tall_in_the_grid_the_large_view_and_exports(tall_models, serve, tmp_path, page):
    studio = serve(tall_models / "res8", tmp_path / "favourites.json")
    open_studio(page, studio)
    sync_api.expect(page.locator("#model")).to_contain_text("4x8 px")
    for img in (page.locator("#grid .cand[data-seed='0'] img"), page.locator("#grid .cand[data-seed='31'] img")):
        assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [4, 8]
        box = img.bounding_box()
        assert box["height"] == 2 * box["width"] > 0
    page.locator("#grid .cand[data-seed='2']").click()
    big = settled(page, "/api/image?seed=2&psi=1&noise=const")
    assert page.locator("#big").evaluate("i => [i.naturalWidth, i.naturalHeight]") == [4, 8]
    box = page.locator("#big").bounding_box()
    assert box["height"] == 2 * box["width"] > 0
    strip = page.locator("#strip")
    assert strip.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [8 * 4, 8]

    with page.expect_response(lambda r: r.url.endswith("/api/favourites") and r.request.method == "POST"):
        page.locator("body").press("f")
    sync_api.expect(page.locator("#favs li")).to_have_count(1)
    with page.expect_download() as download:
        page.locator("#favs li a", has_text="PNG x4").click()
    data = open(download.value.path(), "rb").read()
    assert Image.open(io.BytesIO(data)).size == (4 * 4, 8 * 4)
    assert pixels_of(data) == enlarged(big, 8, 4, 4)
