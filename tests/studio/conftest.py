"""A tiny model really trained (8 -> 16 px) once per test run, and a studio served on it over real HTTP."""
from __future__ import annotations

import http.client
import json
import threading

import pytest

from pipeline.studio.server import make_server
from tests.helpers.tiny import tiny_models


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory, "studio-project")


class Served:
    """A running studio and a plain HTTP client for it."""

    def __init__(self, checkpoint, favourites, host="127.0.0.1"):
        self.server = make_server(checkpoint, host, 0, "cpu", favourites=favourites)
        self.engine = self.server.engine
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = self.server.url

    def call(self, method, path, body=None, headers=None):
        """(status, JSON or bytes, content type)."""
        host, port = self.server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=120)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data, ctype = resp.read(), resp.getheader("Content-Type")
        conn.close()
        return resp.status, (json.loads(data) if ctype == "application/json" else data), ctype

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.engine.close()


@pytest.fixture
def serve(tmp_path):
    """serve(checkpoint, favourites=None) -> Served; every one started is stopped after the test."""
    started = []

    def start(checkpoint, favourites=None):
        started.append(Served(checkpoint, favourites or tmp_path / "studio" / "favourites.json"))
        return started[-1]

    yield start
    for s in started:
        s.close()
