"""The review page: a local web server where a person keeps or rejects images, one click or key each.

It reads data/review/manifest.csv (written by the review stage) and review/decisions.csv (the
git-tracked file of human decisions), and writes every change to decisions.csv at once. The next
`dvc repro` then re-runs only the review stage and what follows it.

What a visitor can reach is deliberately small: the page's own static files, JSON about manifest
rows, and image files named by manifest id. A client never sends a path; even so, every file served
is resolved (symlinks included) and must lie under the project's data/ folder.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image

from pipeline import params
from pipeline.errors import UserError
from pipeline.files import write_bytes
from pipeline.review import KINDS, STATUSES, Decision, read_decisions, read_manifest, write_decisions

try:
    import fcntl  # lets two servers on one project take turns writing decisions.csv
except ImportError:  # Windows: the in-process lock and atomic writes still keep the file whole
    fcntl = None

log = logging.getLogger("review-page")

MANIFEST = Path("data/review/manifest.csv")
DECISIONS = Path("review/decisions.csv")
THUMBS = Path(".cache/review-thumbs")  # outside every DVC output, so `dvc repro` never sees it
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
                "/static/review.css": ("review.css", "text/css; charset=utf-8")}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
THUMB_SIDE = 256
PAGE_LIMIT = 1000                      # most rows one /api/items request may ask for
MAX_BODY = 4_000_000                   # bytes; "reject all" of 5,000 ids is about 100 kB
MAX_NOTE = 1000
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
FILE_ROUTE = re.compile(r"/(thumb|image|source)/([^/]+)")
FILTERS = ("status", "kind", "source", "auto", "decided", "id", "duplicate_of")


class RequestError(Exception):
    """A request the server refuses; the page shows `message` to the user."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _stamp(path: Path):
    """What tells us a file changed on disk (or None if it is missing)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


class ReviewStore:
    """The manifest and the decisions, kept in memory and re-read whenever their files change."""

    def __init__(self, root: str | Path = "."):
        self.root = Path(root).resolve()
        self.manifest_path = self.root / MANIFEST
        self.decisions_path = self.root / DECISIONS
        self.thumbs = self.root / THUMBS
        if not self.manifest_path.is_file():
            raise UserError(f"{self.manifest_path} not found: run `dvc repro` first (the review stage writes it)")
        # Resolved once: data/ may itself be a symlink to a bigger disk. DVC's symlink cache type points
        # files in data/ into .dvc/cache, so that folder is allowed too.
        self.allowed = [(self.root / "data").resolve(), (self.root / ".dvc" / "cache").resolve()]
        self.lock = threading.RLock()
        self.rows: list[dict] = []
        self.by_id: dict[str, dict] = {}
        self.decisions: dict[str, Decision] = {}
        self.sources: list[str] = []
        self.default = "keep"
        self._manifest_stamp = self._decisions_stamp = ()
        self.refresh()

    # --- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up a re-run of the stage, or decisions.csv edited by hand or by a second server."""
        with self.lock:
            stamp = _stamp(self.manifest_path)
            if stamp is None:  # `dvc repro` removes a stage's outputs before it runs
                raise UserError(f"{MANIFEST} is gone; wait for `dvc repro` to finish, then reload the page")
            if stamp != self._manifest_stamp:
                rows = read_manifest(self.manifest_path)
                if rows and not {"id", "kind", "path"} <= set(rows[0]):
                    raise UserError(f"{self.manifest_path}: needs the columns id,kind,path; re-run `dvc repro`")
                self.rows, self.by_id = rows, {r["id"]: r for r in rows}
                self.default = self._default_status()
                # A source reads "game.apk!path/of/bundle"; the page offers the games to filter by.
                self.sources = sorted({r.get("source", "").split("!")[0] for r in rows})
                self._manifest_stamp = stamp
            stamp = _stamp(self.decisions_path)
            if stamp != self._decisions_stamp:
                self.decisions = read_decisions(self.decisions_path)
                self._decisions_stamp = stamp

    def _default_status(self) -> str:
        """The status of an undecided image without an automatic rejection, as the next run will set it."""
        try:
            return params.load("review", self.root / "params.yaml").default
        except UserError:
            pass
        for r in self.rows:  # no readable params.yaml: the manifest shows what the last run used
            if r.get("reason") == "default" and r.get("status") in STATUSES:
                return r["status"]
        return "keep"

    def effective(self, row: dict) -> tuple[str, str, Decision | None]:
        """(status, reason, decision) as the review stage would set them now: a human decision wins."""
        decision = self.decisions.get(row["id"])
        if decision:
            return decision.status, "human", decision
        if row.get("auto_reason"):
            return "reject", row["auto_reason"], None
        return self.default, "default", None

    def select(self, filters: dict[str, str]) -> list[dict]:
        """Manifest rows (in manifest order) that match every non-empty filter (see FILTERS)."""
        self.refresh()
        wanted = {key: value for key, value in filters.items() if value}

        def matches(row):
            status, _, decision = self.effective(row)
            facts = {"status": status, "kind": row["kind"], "source": row.get("source", ""), "id": row["id"],
                     "auto": row.get("auto_reason") or "none", "decided": "yes" if decision else "no",
                     "duplicate_of": row.get("duplicate_of", "")}
            return all(facts[key] == value or (key == "source" and facts[key].startswith(value + "!"))
                       for key, value in wanted.items())

        return [row for row in self.rows if matches(row)]

    def counts(self, rows: list[dict]) -> dict[str, int]:
        counts = {"total": len(rows), "keep": 0, "reject": 0, "decided": 0}
        for row in rows:
            status, _, decision = self.effective(row)
            counts[status] += 1
            counts["decided"] += decision is not None
        return counts

    def item(self, row: dict) -> dict:
        """One row as the page needs it."""
        status, reason, decision = self.effective(row)

        def ints(*cols):
            try:
                return [int(float(row[c])) for c in cols]
            except (KeyError, TypeError, ValueError):
                return None

        stamp = _stamp(self.root / row["path"]) if row.get("path") else None
        return {"id": row["id"], "kind": row["kind"], "source": row.get("source", ""),
                "asset": row.get("asset", ""), "path": row.get("path", ""), "image": row.get("image", ""),
                "status": status, "reason": reason, "decided": decision is not None,
                "note": decision.note if decision else "", "auto_reason": row.get("auto_reason", ""),
                "duplicate_of": row.get("duplicate_of", ""), "size": ints("width", "height"),
                "box": ints("x", "y", "w", "h"), "crop": ints("crop_x", "crop_y", "crop_w", "crop_h"),
                "v": stamp[0] if stamp else 0}

    # --- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self):
        if fcntl is None:
            yield
            return
        lock_path = self.root / ".cache" / "review-decisions.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def decide(self, changes: list[tuple[str, str | None, str | None]]) -> list[dict]:
        """Apply (id, status or None = no decision, note or None = keep the old note); save at once.

        Returns each id's previous decision, which is what an undo sends back.
        """
        self.refresh()
        unknown = [rid for rid, _, _ in changes if rid not in self.by_id]
        if unknown:
            raise RequestError(404, f"not in {MANIFEST}: {', '.join(unknown[:5])}"
                                    f"{' and more' if len(unknown) > 5 else ''}; nothing was saved")
        with self.lock, self._file_lock():
            # Read the file again: it may have been edited by hand or by another server since.
            current = read_decisions(self.decisions_path)
            previous = []
            for rid, status, note in changes:
                old = current.get(rid)
                previous.append({"id": rid, "status": old.status if old else None, "note": old.note if old else ""})
                if status is None:
                    current.pop(rid, None)
                else:
                    current[rid] = Decision(status, (old.note if old else "") if note is None else note)
            write_decisions(self.decisions_path, current)
            self.decisions, self._decisions_stamp = current, _stamp(self.decisions_path)
        return previous

    # --- files -----------------------------------------------------------------------------------

    def file_of(self, rid: str, column: str) -> Path:
        """The image a row names in `column`, refused unless it really lies under data/."""
        self.refresh()
        row = self.by_id.get(rid)
        if row is None:
            raise RequestError(404, f"unknown id {rid!r}")
        rel = row.get(column) or row.get("path") or ""
        parts = Path(rel).parts
        if not rel or "\x00" in rel or Path(rel).is_absolute() or ".." in parts or parts[0] != "data":
            raise RequestError(403, f"{rid}: {rel!r} is not a file under data/; refused")
        path = (self.root / rel).resolve()
        if not any(path.is_relative_to(a) for a in self.allowed):
            raise RequestError(403, f"{rid}: {rel} leads outside data/ (a symlink?); refused")
        if path.suffix.lower() not in IMAGE_TYPES:
            raise RequestError(403, f"{rid}: {rel} is not an image; refused")
        if not path.is_file():
            raise RequestError(404, f"{rid}: {rel} is missing; re-run `dvc repro` or `dvc pull`")
        return path

    def thumbnail(self, rid: str) -> bytes:
        """A small JPEG of the row's image, cached by path and modification time."""
        src = self.file_of(rid, "path")
        st = src.stat()
        key = hashlib.sha1(f"{src}\x00{st.st_mtime_ns}\x00{st.st_size}\x00{THUMB_SIDE}".encode()).hexdigest()
        cached = self.thumbs / key[:2] / f"{key}.jpg"
        if cached.is_file():
            return cached.read_bytes()
        try:
            with Image.open(src) as im:
                im.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEGs decode at reduced size: much faster
                im.thumbnail((THUMB_SIDE, THUMB_SIDE))
                rgba = im.convert("RGBA")
        except (OSError, Image.DecompressionBombError) as e:
            raise RequestError(422, f"{rid}: cannot read {src.name} ({e})")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        buf = io.BytesIO()
        flat.save(buf, format="JPEG", quality=85)
        write_bytes(cached, buf.getvalue())  # atomic: two tabs asking at once never leave half a file
        return buf.getvalue()


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
