"""The review page: a local web server where a person keeps or rejects images, one click or key each.

It reads data/review/manifest.csv (written by the review stage) and review/decisions.csv (the
git-tracked file of human decisions), and writes every change to decisions.csv at once. The next
`dvc repro` then re-runs only the review stage and what follows it.

What a visitor can reach is deliberately small: the page's own static files, JSON about manifest
rows, and image files named by manifest id. A client never sends a path; even so, every file served
is resolved (symlinks included) and must lie under the project's data/ folder.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import logging
import re
import socket
import sys
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.core.errors import UserError
from pipeline.review.manifest import KINDS, STATUSES
from pipeline.review.store import IMAGE_TYPES, MAX_NOTE, RequestError, ReviewStore

log = logging.getLogger("review-page")

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
                "/static/review.css": ("review.css", "text/css; charset=utf-8")}
PAGE_LIMIT = 1000                      # most rows one /api/items request may ask for
MAX_BODY = 4_000_000                   # bytes; "reject all" of 5,000 ids is about 100 kB
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
FILE_ROUTE = re.compile(r"/(thumb|image|source)/([^/]+)")
FILTERS = ("status", "kind", "source", "auto", "decided", "id", "duplicate_of")


def _one(query: dict, key: str) -> str:
    return (query.get(key) or [""])[-1]


def parse_filters(query: dict) -> dict[str, str]:
    f = {k: _one(query, k) for k in FILTERS}
    if f["status"] not in ("", *STATUSES):
        raise RequestError(400, f"status must be keep or reject, not {f['status']!r}")
    if f["kind"] not in ("", *KINDS):
        raise RequestError(400, f"kind must be fullbody or face, not {f['kind']!r}")
    if f["decided"] not in ("", "yes", "no"):
        raise RequestError(400, f"decided must be yes or no, not {f['decided']!r}")
    return f


def parse_int(query: dict, key: str, default: int, high: int) -> int:
    text = _one(query, key) or str(default)
    if not text.isdigit() or int(text) > high:
        raise RequestError(400, f"{key} must be a whole number from 0 to {high}, not {text!r}")
    return int(text)


def parse_changes(body) -> list[tuple[str, str | None, str | None]]:
    """{"ids": [...], "status": "keep"|"reject"|null, "note"?} or {"changes": [{"id","status","note"?}]}."""
    if isinstance(body, dict) and isinstance(body.get("ids"), list) and "status" in body:
        entries = [{"id": i, "status": body["status"], "note": body.get("note")} for i in body["ids"]]
    elif isinstance(body, dict) and isinstance(body.get("changes"), list):
        entries = body["changes"]
    else:
        raise RequestError(400, 'expected {"ids": [...], "status": "keep"|"reject"|null} or {"changes": [...]}')
    changes, seen = [], set()
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not ID_PATTERN.fullmatch(e["id"]):
            raise RequestError(400, f"not a valid id: {str(e.get('id') if isinstance(e, dict) else e)[:100]!r}")
        if "status" not in e or e["status"] not in (*STATUSES, None):
            raise RequestError(400, f"status must be keep, reject or null, not {str(e.get('status'))[:50]!r}")
        note = e.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE or "\x00" in note):
            raise RequestError(400, f"note must be text of at most {MAX_NOTE} characters")
        if e["id"] in seen:
            raise RequestError(400, f"id {e['id']} is named twice")
        seen.add(e["id"])
        changes.append((e["id"], e.get("status"), note))
    if not changes:
        raise RequestError(400, "no ids given")
    return changes


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a page of 200 thumbnails reuses a few connections
    timeout = 60                   # drop idle keep-alive connections
    server: "ReviewServer"

    def log_message(self, fmt, *args):  # one line per thumbnail would drown the URL line
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._handle(self._get)

    def do_POST(self):
        self._handle(self._post)

    def _handle(self, route) -> None:
        try:
            self._check_origin()
            route(urlsplit(self.path))
        except RequestError as e:
            if self.command == "POST":  # the body may be unread: it must not be taken for a next request
                self.close_connection = True
            self._send_json({"error": e.message}, e.code)
        except UserError as e:  # e.g. decisions.csv broken by a hand edit: say which line
            self._send_json({"error": str(e)}, 409)
        except ConnectionError:
            self.close_connection = True
        except Exception:
            log.exception("request %s failed", self.path)
            self._send_json({"error": "internal error; the server log has the details"}, 500)

    def _check_origin(self) -> None:
        """Refuse requests that a web page from elsewhere could make (DNS rebinding, cross-site POSTs)."""
        if self.server.loopback:
            host = (self.headers.get("Host") or "localhost").rsplit(":", 1)[0].strip("[]").lower()
            if not _is_loopback(host):
                raise RequestError(403, f"this server answers only to local addresses, not {host!r}")
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host"):
            raise RequestError(403, f"requests from {origin} are not allowed")

    def _get(self, url) -> None:
        store, query = self.server.store, parse_qs(url.query, keep_blank_values=True)
        if url.path in STATIC_FILES:
            name, ctype = STATIC_FILES[url.path]
            return self._send((STATIC / name).read_bytes(), ctype, cache="no-cache")
        if url.path in ("/api/items", "/api/ids"):
            filters = parse_filters(query)
            offset = parse_int(query, "offset", 0, 10**9)
            limit = parse_int(query, "limit", 200, PAGE_LIMIT)
            with store.lock:
                rows = store.select(filters)
                if url.path == "/api/ids":
                    return self._send_json({"ids": [r["id"] for r in rows]})
                reply = {"offset": offset, "limit": limit, "counts": store.counts(rows),
                         "all": store.counts(store.rows), "sources": store.sources,
                         "items": [store.item(r) for r in rows[offset:offset + limit]]}
            return self._send_json(reply)
        match = FILE_ROUTE.fullmatch(url.path)
        if not match:
            raise RequestError(404, f"no such page: {url.path[:200]}")
        what, rid = match.group(1), unquote(match.group(2))
        if not ID_PATTERN.fullmatch(rid):
            raise RequestError(400, f"not a valid id: {rid[:100]!r}")
        # The page adds ?v=<modification time> to thumbnail addresses, so a cached one is never stale.
        cache = "private, max-age=86400" if "v" in query else "no-cache"
        if what == "thumb":
            return self._send(store.thumbnail(rid), "image/jpeg", cache=cache)
        path = store.file_of(rid, "path" if what == "image" else "image")
        self._send(path.read_bytes(), IMAGE_TYPES[path.suffix.lower()], cache="no-cache")

    def _post(self, url) -> None:
        if url.path != "/api/decisions":
            raise RequestError(404, f"no such action: {url.path[:200]}")
        # Only JSON: a cross-site form cannot send it without the browser asking us first (and failing).
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise RequestError(415, "send the decisions as application/json")
        length = self.headers.get("Content-Length") or ""
        if not length.isdigit():
            raise RequestError(411, "Content-Length is required")
        if int(length) > MAX_BODY:
            raise RequestError(413, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(int(length)))
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, "the request body is not valid JSON")
        store = self.server.store
        previous = store.decide(parse_changes(body))
        with store.lock:
            items = {p["id"]: store.item(store.by_id[p["id"]]) for p in previous if p["id"] in store.by_id}
            self._send_json({"saved": len(previous), "previous": previous, "items": items,
                             "all": store.counts(store.rows)})

    def _send_json(self, obj, code: int = 200) -> None:
        self._send(json.dumps(obj).encode(), "application/json", code=code, cache="no-store")

    def _send(self, data: bytes, ctype: str, code: int = 200, cache: str = "no-store") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True
    store: ReviewStore
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


class ReviewServer6(ReviewServer):
    address_family = socket.AF_INET6


def make_server(root: str | Path = ".", host: str = "127.0.0.1", port: int = 8765) -> ReviewServer:
    """A ready server (not yet serving); port 0 picks any free port, see `server.url`."""
    store = ReviewStore(root)
    try:
        server = (ReviewServer6 if ":" in host else ReviewServer)((host, port), Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use: pass --port with another number (0 = any free port)")
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}")
    server.store, server.loopback = store, _is_loopback(host)
    return server


def serve(host: str = "127.0.0.1", port: int = 8765, root: str | Path = ".", open_browser: bool = False) -> None:
    server = make_server(root, host, port)
    store = server.store
    log.info("review page: %s  (%d images; decisions are saved to %s; Ctrl-C stops)",
             server.url, len(store.rows), store.decisions_path)
    if not server.loopback:
        log.warning("listening on %s: anyone who can reach this address can change decisions", host)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped; run `dvc repro` to apply the decisions")
    finally:
        server.server_close()
