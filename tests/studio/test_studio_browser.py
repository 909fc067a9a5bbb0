"""End to end: the design studio in headless Chromium (Debian's package, driven by Playwright) on a
really trained tiny model. Every wait is on the page's own busy flag (body[data-busy]) or an element,
never on a timer.

Nothing here downloads a browser: the test uses the system's /usr/bin/chromium and is skipped, with
the reason, where that is not installed (`apt-get install chromium`).
"""
from __future__ import annotations

import json
import re

import pytest

from tests.helpers import browser

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
