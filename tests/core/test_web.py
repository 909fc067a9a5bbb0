"""The shared web layer on its own, over real HTTP: routing, JSON errors, value parsers, and the
loopback, Host and Origin checks. Each page's own tests check them again through that page."""
from __future__ import annotations

import http.client
import json
import re
import threading

import pytest

from pipeline.core import web
from pipeline.core.errors import UserError


class EchoHandler(web.Handler):
    routes = (("GET", "/api/n", "number"),
              ("GET", re.compile(r"/item/([a-z]{1,8})"), "item"),
              ("POST", "/api/echo", "echo"),
              ("GET", "/api/broken", "broken"),
              ("GET", "/api/user", "user"))

    def number(self, _url, query, _match):
        self.send_json({"n": web.parse_int(query, "n", 7, -3, 100), "x": web.parse_float(query, "x", 1.0, -2, 2),
                        "c": web.parse_choice(query, "c", "a", ("a", "b"))})

    def item(self, _url, _query, match):
        self.send_json({"item": match.group(1)})

    def echo(self, _url, _query, _match):
        self.send_json({"body": self.read_json()})

    def broken(self, _url, _query, _match):
        raise RuntimeError("a bug")

    def user(self, _url, _query, _match):
        raise UserError("decisions.csv line 3: bad status")


@pytest.fixture
def served(tmp_path):
    (tmp_path / "page.html").write_text("<p>hello</p>")

    class Page(EchoHandler):
        static = web.static_files(tmp_path, {"/": "page.html"})

    server = web.make_server(Page, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if resp.getheader("Content-Type") == "application/json" else data)


def test_routes_defaults_and_parsed_values(served):
    assert call(served, "GET", "/api/n") == (200, {"n": 7, "x": 1.0, "c": "a"})
    assert call(served, "GET", "/api/n?n=-3&x=1.5&c=b") == (200, {"n": -3, "x": 1.5, "c": "b"})
    assert call(served, "GET", "/item/abc") == (200, {"item": "abc"})
    assert call(served, "GET", "/") == (200, b"<p>hello</p>")
    assert call(served, "GET", "/page.html")[0] == 404       # only the table's addresses
    assert served.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("query, key", [("n=101", "n"), ("n=1.5", "n"), ("n=x", "n"), ("n=" + "9" * 30, "n"),
                                        ("x=nan", "x"), ("x=inf", "x"), ("x=3", "x"), ("x=", None),
                                        ("c=z", "c")])
def test_bad_values_are_400_naming_the_key(served, query, key):
    status, body = call(served, "GET", "/api/n?" + query)
    if key is None:  # blank means the default
        assert status == 200
        return
    assert status == 400 and body["error"].startswith(key + " must be")


def test_unknown_addresses_wrong_methods_and_failures_are_json_errors(served):
    assert call(served, "GET", "/nothing")[0] == 404
    assert call(served, "GET", "/item/ABC")[0] == 404          # the pattern decides what reaches a method
    assert call(served, "POST", "/api/n", b"{}", {"Content-Type": "application/json"})[0] == 405
    status, body = call(served, "GET", "/api/broken")
    assert status == 500 and "server log" in body["error"]
    assert call(served, "GET", "/api/user") == (409, {"error": "decisions.csv line 3: bad status"})
    assert call(served, "GET", "/api/n")[0] == 200             # still serving


def test_json_bodies(served):
    ok = call(served, "POST", "/api/echo", b'{"a": [1]}', {"Content-Type": "application/json"})
    assert ok == (200, {"body": {"a": [1]}})
    assert call(served, "POST", "/api/echo", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert call(served, "POST", "/api/echo", b"{", {"Content-Type": "application/json"})[0] == 400


def test_other_hosts_and_origins_are_refused(served):
    assert call(served, "GET", "/api/n", headers={"Host": "evil.example"})[0] == 403
    assert call(served, "GET", "/api/n", headers={"Host": "localhost"})[0] == 200
    host = f"127.0.0.1:{served.server_address[1]}"
    assert call(served, "GET", "/api/n", headers={"Host": host, "Origin": "http://evil.example"})[0] == 403
    assert call(served, "GET", "/api/n", headers={"Host": host, "Origin": f"http://{host}"})[0] == 200


def test_a_busy_port_is_one_line(served):
    with pytest.raises(UserError, match="port .* is in use"):
        web.make_server(EchoHandler, "127.0.0.1", served.server_address[1])


def test_static_files_need_a_known_type(tmp_path):
    (tmp_path / "a.exe").write_bytes(b"")
    with pytest.raises(ValueError):
        web.static_files(tmp_path, {"/a": "a.exe"})
