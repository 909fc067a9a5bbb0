"""How the review page holds up at many images: a generated manifest, real HTTP and, where Chromium is
installed, the real page. `python -m pipeline.bench review --images 10000`; the last line is JSON.

The images are small generated PNGs in a temporary project (nothing of a real data set is touched):
10,000 take a few seconds to write. Every timing is a median over `repeat` tries, in milliseconds.
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.files import write_csv
from pipeline.review.manifest import MANIFEST_COLUMNS
from pipeline.review.server import make_server

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


def make_project(root: Path, n: int, seed: int = 0) -> None:
    """n images in 100 folders of 5 games: full bodies, face crops with confidences, some near duplicates."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        game, folder = f"game{i % 5}.apk", f"chars{(i // 5) % 20}"
        path = f"data/flat/{game}/{folder}/c{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(48, 96)), int(rng.integers(64, 160))
        Image.fromarray(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)).resize((w, h)).save(root / path)
        face = i % 7 == 0
        dup = i % 11 == 5
        rows.append({"id": f"{'face' if face else 'fb'}-{i:012d}", "kind": "face" if face else "fullbody",
                     "path": path, "source": f"{game}!{folder}/c{i}.bundle", "status": "reject" if dup else "keep",
                     "reason": "near_duplicate" if dup else "default", "auto_reason": "near_duplicate" if dup else "",
                     "duplicate_of": f"fb-{i - 1:012d}" if dup else "", "distance": "3" if dup else "",
                     "asset": f"c{i}", "image": path, "width": w, "height": h,
                     "confidence": f"{rng.uniform(0, 7):.4f}" if face else ""})
    write_csv(root / "data/review/manifest.csv", MANIFEST_COLUMNS, rows)


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=120) as res:
        return json.loads(res.read())


def _post(url: str, body) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as res:
        return json.loads(res.read())


def api_timings(base: str, n: int, repeat: int) -> dict:
    out = {"first_page": _ms(lambda: _get(f"{base}api/items?limit=100"), repeat),
           "page_at_the_end": _ms(lambda: _get(f"{base}api/items?offset={max(n - 100, 0)}&limit=100"), repeat),
           "weakest_faces_first": _ms(lambda: _get(f"{base}api/items?sort=confidence&kind=face&limit=100"), repeat),
           "one_folder": _ms(lambda: _get(f"{base}api/items?folder=game3.apk!chars7&limit=100"), repeat),
           "search": _ms(lambda: _get(f"{base}api/items?search=c99&limit=100"), repeat),
           "all_ids": _ms(lambda: _get(f"{base}api/ids"), repeat),
           "folders": _ms(lambda: _get(f"{base}api/folders"), repeat)}
    ids = _get(f"{base}api/ids")["ids"]
    out["one_decision"] = _ms(lambda: _post(f"{base}api/decisions", {"ids": ids[:1], "status": "reject"}), 1)
    out["undo_one"] = _ms(lambda: _post(f"{base}api/undo", {}), 1)
    out["redo_one"] = _ms(lambda: _post(f"{base}api/redo", {}), 1)
    out[f"keep_all_{len(ids)}"] = _ms(lambda: _post(f"{base}api/decisions", {"ids": ids, "status": "keep"}), 1)
    out[f"undo_all_{len(ids)}"] = _ms(lambda: _post(f"{base}api/undo", {}), 1)
    out[f"redo_all_{len(ids)}"] = _ms(lambda: _post(f"{base}api/redo", {}), 1)
    return out


def browser_timings(base: str, size: int, pages: int, echo) -> dict:
    """Page load and next page (n) until the page says it is idle and every thumbnail has arrived."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "the Python package playwright is not installed"}
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return {"skipped": "no Chromium installed (apt-get install chromium)"}
    idle = "document.body.dataset.busy === '0' && [...document.images].every((i) => i.complete)"
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(base)
        page.evaluate(f"localStorage.setItem('review.size', '{size}')")
        for label in ("load_cold_thumbnails", "load_warm"):  # the first load makes the page's thumbnails
            start = time.perf_counter()
            page.reload()
            page.wait_for_function(idle, timeout=600_000)
            out[label] = round((time.perf_counter() - start) * 1000, 1)
        out["thumbnails_per_page"] = page.locator(".tile").count()
        prefetched = "document.body.dataset.prefetched === String(parseInt(new URLSearchParams(" \
                     "location.hash.slice(1)).get('page') || '1', 10) + 1)"
        for label, key in (("next_page_at_once", "n"), ("next_page_after_prefetch", "n"), ("previous_page_warm", "p")):
            times = []
            for _ in range(pages):
                if label == "next_page_after_prefetch":  # as when you look at the page for a second or two
                    page.wait_for_function(prefetched, timeout=600_000)
                start = time.perf_counter()
                page.keyboard.press(key)
                page.wait_for_function(idle, timeout=600_000)
                times.append((time.perf_counter() - start) * 1000)
            out[label] = round(statistics.median(times), 1)
        out["pages"] = page.locator("#pageinfo").text_content()
        browser.close()
    echo(f"browser: {out}")
    return out


def bench_review(images: int, browser: bool, size: int, repeat: int, pages: int, echo=print) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-review-"))
    try:
        start = time.perf_counter()
        make_project(root, images)
        echo(f"generated {images} images and their manifest in {time.perf_counter() - start:.1f} s")
        server = make_server(root, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            result = {"images": images, "api_ms": api_timings(server.url, images, repeat)}
            echo(f"api: {result['api_ms']}")
            if browser:
                result["browser_ms"] = browser_timings(server.url, size, pages, echo)
        finally:
            server.shutdown()
            server.server_close()
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
