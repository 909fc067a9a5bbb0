"""Headless Chromium for the pages' end-to-end tests: Debian's /usr/bin/chromium driven by Playwright.

Nothing downloads a browser. `require()` skips the calling test module, with the reason, where the
system browser or the playwright package is missing; `open_page` gives a page whose default deadline
only has to outlast a loaded machine (every wait is on a condition the page sets, never a timer) and
fails the test on any script error the page raised.
"""
from __future__ import annotations

import contextlib
import shutil
import threading

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
WAIT_MS = 120_000


def require():
    """playwright.sync_api, or a module-level skip saying what is missing."""
    if not CHROMIUM:
        pytest.skip("no Chromium installed (apt-get install chromium); the browser test needs the system browser",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed")


@contextlib.contextmanager
def open_page(viewport: dict | None = None):
    sync_api = require()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(**({"viewport": viewport} if viewport else {}))
        page.set_default_timeout(WAIT_MS)
        sync_api.expect.set_options(timeout=WAIT_MS)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
    assert not errors, errors


@contextlib.contextmanager
def serving(server):
    """Serve `server` (a pipeline.core.web server) on a thread for the duration of the block."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
