"""The local web layer both pages stand on (the review page and the design studio).

A page is a `Handler` subclass with two tables: `static` (address -> a file shipped with the package)
and `routes` ((method, address or compiled pattern, method name)). This module does what every page
needs the same way: routing, JSON errors the page can show, the loopback, Host and Origin checks, JSON
request bodies, and a server that says its URL and stops cleanly on Ctrl-C.

What a visitor can reach is only what the two tables name. A client never sends a path: static files
are fixed at import, and everything else is made by the page's own methods from validated values.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import logging
import re
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.core.errors import UserError

log = logging.getLogger("web")

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


class RequestError(Exception):
    """A request the server refuses; the page shows `message` to the user."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def static_files(folder: Path, table: dict[str, str]) -> dict[str, tuple[Path, str]]:
    """{address: file name in folder} -> {address: (path, content type)}, checked once at import."""
    out = {}
    for address, name in table.items():
        path = folder / name
        if path.suffix not in CONTENT_TYPES:
            raise ValueError(f"no content type for {name}")
        out[address] = (path, CONTENT_TYPES[path.suffix])
    return out


# ---- query values: each parser names the key and the allowed range in its message -----------------

def one(query: dict, key: str) -> str:
    """The last value of `key` in a parse_qs dict ("" when absent)."""
    return (query.get(key) or [""])[-1]


def parse_int(query: dict, key: str, default: int | None, low: int, high: int) -> int:
    text = one(query, key)
    if text == "":
        if default is None:
            raise RequestError(400, f"{key} is required (a whole number from {low} to {high})")
        return default
    if not re.fullmatch(r"-?[0-9]{1,20}", text) or not low <= int(text) <= high:
        raise RequestError(400, f"{key} must be a whole number from {low} to {high}, not {text[:40]!r}")
    return int(text)


def parse_float(query: dict, key: str, default: float, low: float, high: float) -> float:
    text = one(query, key)
    if text == "":
        return default
    try:
        value = float(text) if len(text) <= 40 else float("nan")
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also false for nan
        raise RequestError(400, f"{key} must be a number from {low:g} to {high:g}, not {text[:40]!r}")
    return value


def parse_choice(query: dict, key: str, default: str | None, choices: tuple[str, ...]) -> str:
    text = one(query, key)
    if text == "" and default is not None:
        return default
    if text not in choices:
        raise RequestError(400, f"{key} must be one of {', '.join(choices)}, not {text[:40]!r}")
    return text


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- the handler ---------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """Subclasses set `static` and `routes`; a route's method gets (url, query, match) and sends a reply."""
    protocol_version = "HTTP/1.1"  # keep-alive: a page of 200 thumbnails reuses a few connections
    timeout = 60                   # drop idle keep-alive connections
    max_body = 4_000_000           # bytes a JSON request body may have
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
    # (about 40 ms on Linux) on every keep-alive reply: a cached studio page of 32 images took 0.24 s, 0.03 s
    # without it, and a review page of 200 thumbnails pays the same toll per thumbnail.
    disable_nagle_algorithm = True
    static: dict[str, tuple[Path, str]] = {}
    routes: tuple[tuple[str, str | re.Pattern, str], ...] = ()
    server: "Server"

    def log_message(self, fmt, *args):  # one line per image would drown the URL line
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _handle(self) -> None:
        try:
            self._check_origin()
            self._dispatch(urlsplit(self.path))
        except RequestError as e:
            if self.command == "POST":  # the body may be unread: it must not be taken for a next request
                self.close_connection = True
            self.send_json({"error": e.message}, e.code)
        except UserError as e:  # e.g. a file broken by a hand edit: the message says which line
            self.send_json({"error": str(e)}, 409)
        except ConnectionError:
            self.close_connection = True
        except Exception:
            log.exception("request %s failed", self.path[:200])
            self.send_json({"error": "internal error; the server log has the details"}, 500)

    def _check_origin(self) -> None:
        """Refuse requests that a web page from elsewhere could make (DNS rebinding, cross-site POSTs)."""
        if self.server.loopback:
            host = (self.headers.get("Host") or "localhost").rsplit(":", 1)[0].strip("[]").lower()
            if not is_loopback(host):
                raise RequestError(403, f"this server answers only to local addresses, not {host[:100]!r}")
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            raise RequestError(403, f"requests from {origin[:100]} are not allowed")

    def _dispatch(self, url) -> None:
        if self.command == "GET" and url.path in self.static:
            path, ctype = self.static[url.path]
            return self.send(path.read_bytes(), ctype, cache="no-cache")
        query = parse_qs(url.query, keep_blank_values=True)
        allowed = False
        for method, pattern, name in self.routes:
            match = pattern.fullmatch(url.path) if isinstance(pattern, re.Pattern) else url.path == pattern
            if match:
                if method == self.command:
                    return getattr(self, name)(url, query, match)
                allowed = True
        if allowed:
            raise RequestError(405, f"{url.path[:200]} does not take {self.command}")
        raise RequestError(404, f"no such {'page' if self.command == 'GET' else 'action'}: {url.path[:200]}")

    def read_json(self):
        """The request's JSON body; only application/json, so a cross-site form cannot send it without the
        browser asking first (and the Origin check refusing)."""
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise RequestError(415, "send the request body as application/json")
        length = self.headers.get("Content-Length") or ""
        if not length.isdigit():
            raise RequestError(411, "Content-Length is required")
        if int(length) > self.max_body:
            raise RequestError(413, f"request body over {self.max_body} bytes")
        try:
            return json.loads(self.rfile.read(int(length)))
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, "the request body is not valid JSON")

    def send_json(self, obj, code: int = 200) -> None:
        self.send(json.dumps(obj).encode(), "application/json", code=code, cache="no-store")

    def send(self, data: bytes, ctype: str, code: int = 200, cache: str = "no-store") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


# ---- the server ----------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    loopback: bool

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):  # a tab closed mid-reply: nothing to report
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Server6(Server):
    address_family = socket.AF_INET6


def make_server(handler: type[Handler], host: str, port: int, **attrs) -> Server:
    """A ready server (not yet serving) with `attrs` set on it for the handler; port 0 = any free port."""
    try:
        server = (Server6 if ":" in host else Server)((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use: pass --port with another number (0 = any free port)")
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}")
    server.loopback = is_loopback(host)
    for name, value in attrs.items():
        setattr(server, name, value)
    return server


def serve_until_stopped(server: Server, what: str, on_stop: str = "stopped") -> None:
    """Serve until Ctrl-C; warn when anyone on the network can reach the page."""
    if not server.loopback:
        log.warning("%s listens on %s: anyone who can reach this address can use it", what, server.server_address[0])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info(on_stop)
    finally:
        server.server_close()
