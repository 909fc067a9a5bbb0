"""How fast the design studio answers, over real HTTP as a browser asks:

  python -m pipeline.bench studio --checkpoint models/res32 --threads 2

A page of candidates is `--page` distinct seeds fetched by `--clients` connections at once (a browser
opens about six per host). Timed: the first page after start (torch's first calls included), the next
page (new seeds), the same page again (from the cache), and one large image at a new psi (what moving
the slider costs). Prints the figures and, last, one JSON line.
"""
from __future__ import annotations

import http.client
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pipeline.studio.server import make_server


def _fetch_all(server, paths: list[str], clients: int) -> float:
    """Seconds until every path has been answered, `clients` keep-alive connections at a time."""
    host, port = server.server_address[:2]
    local = threading.local()

    def get(path):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(host, port, timeout=600)
        local.conn.request("GET", path)
        resp = local.conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and body[:4] == b"\x89PNG", (path, resp.status, body[:200])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(get, paths))
    return time.perf_counter() - start


def bench_studio(checkpoint, threads: int = 0, device: str = "cpu", page: int = 32, clients: int = 6,
                 echo=print) -> dict:
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:   # favourites are read, never written here
        server = make_server(checkpoint, "127.0.0.1", 0, device, favourites=Path(tmp) / "favourites.json")
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        engine = server.engine
        try:
            def page_of(first):
                return [f"/api/image?seed={s}" for s in range(first, first + page)]

            calls0 = engine.calls
            first = _fetch_all(server, page_of(0), clients)
            calls_first = engine.calls - calls0
            calls0 = engine.calls
            second = _fetch_all(server, page_of(page), clients)
            calls_second = engine.calls - calls0
            cached = _fetch_all(server, page_of(0), clients)
            slider = [_fetch_all(server, [f"/api/image?seed=0&psi={0.5 + i / 100}"], 1) for i in range(5)]
            strip = _fetch_all(server, ["/api/interpolate?a=0&b=1&steps=8"], 1)
        finally:
            server.shutdown()
            server.server_close()
            engine.close()
    result = {"checkpoint": str(checkpoint), "res": engine.res, "arch": engine.G.arch, "device": str(engine.device),
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "page": page, "clients": clients,
              "first_page_s": round(first, 3), "first_page_calls": calls_first,
              "page_s": round(second, 3), "page_calls": calls_second, "cached_page_s": round(cached, 4),
              "image_s": round(statistics.median(slider), 4), "strip8_s": round(strip, 4)}
    echo(f"{checkpoint}: {engine.res} px {engine.G.arch} on {engine.device}, {result['threads']} thread(s)")
    echo(f"  a page of {page} candidates: {second:.2f} s in {calls_second} generator call(s) "
         f"(the first after start: {first:.2f} s, {calls_first} call(s); again from the cache: {cached:.3f} s)")
    echo(f"  one image at a new psi: {result['image_s']:.3f} s; a strip of 8: {strip:.3f} s")
    return result
