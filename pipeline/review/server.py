"""The review page: a local web server where a person keeps or rejects images, one click or key each.

It reads data/review/manifest.csv (written by the review stage) and review/decisions.csv (the
git-tracked file of human decisions), and writes every change to decisions.csv at once. The next
`dvc repro` then re-runs only the review stage and what follows it.

What a visitor can reach is deliberately small: the page's own static files, JSON about manifest
rows, and image files named by manifest id. A client never sends a path; even so, every file served
is resolved (symlinks included) and must lie under the project's data/ folder. Routing, errors and the
loopback, Host and Origin checks are the shared web layer's (pipeline/core/web.py).
"""
from __future__ import annotations

import logging
import re
import webbrowser
from pathlib import Path
from urllib.parse import unquote

from pipeline.core import web
from pipeline.core.web import RequestError, one
from pipeline.review.manifest import KINDS, STATUSES
from pipeline.review.store import IMAGE_TYPES, MAX_NOTE, ReviewStore

log = logging.getLogger("review-page")

STATIC = Path(__file__).parent / "static"
PAGE_LIMIT = 1000                      # most rows one /api/items request may ask for
MAX_BODY = 4_000_000                   # bytes; "reject all" of 5,000 ids is about 100 kB
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
FILE_ROUTE = re.compile(r"/(thumb|image|source)/([^/]+)")
FILTERS = ("status", "kind", "source", "auto", "decided", "id", "duplicate_of", "folder", "search",
           "size_min", "size_max", "sort")
SORTS = ("", "confidence", "size")
MAX_WHAT = 200                         # characters of an action's label in the undo history


def parse_filters(query: dict) -> dict[str, str]:
    f = {k: one(query, k) for k in FILTERS}
    for key in ("size_min", "size_max"):
        f[key] = str(web.parse_int(query, key, 0, 0, 10**6)) if f[key] else ""
    if f["sort"] not in SORTS:
        raise RequestError(400, f"sort must be confidence or size, not {f['sort'][:40]!r}")
    if len(f["search"]) > 200 or len(f["folder"]) > 1000:
        raise RequestError(400, "search or folder is too long")
    if f["status"] not in ("", *STATUSES):
        raise RequestError(400, f"status must be keep or reject, not {f['status']!r}")
    if f["kind"] not in ("", *KINDS):
        raise RequestError(400, f"kind must be fullbody or face, not {f['kind']!r}")
    if f["decided"] not in ("", "yes", "no"):
        raise RequestError(400, f"decided must be yes or no, not {f['decided']!r}")
    return f


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


class Handler(web.Handler):
    max_body = MAX_BODY
    static = web.static_files(STATIC, {"/": "index.html", "/static/review.js": "review.js",
                                       "/static/review.css": "review.css", "/static/detail.js": "detail.js",
                                       "/static/actions.js": "actions.js"})
    routes = (("GET", "/api/items", "items"),
              ("GET", "/api/ids", "items"),
              ("GET", FILE_ROUTE, "file"),
              ("GET", "/api/folders", "folders"),
              ("GET", "/api/history", "history"),
              ("GET", "/api/pair", "pair"),
              ("POST", "/api/decisions", "decisions"),
              ("POST", "/api/undo", "undo"),
              ("POST", "/api/redo", "redo"),
              ("POST", "/api/swap", "swap"))
    server: "ReviewServer"

    def items(self, url, query, _match) -> None:
        store = self.server.store
        filters = parse_filters(query)
        offset = web.parse_int(query, "offset", 0, 0, 10**9)
        limit = web.parse_int(query, "limit", 200, 0, PAGE_LIMIT)
        with store.lock:
            rows = store.select(filters)
            if url.path == "/api/ids":
                return self.send_json({"ids": [r["id"] for r in rows]})
            reply = {"offset": offset, "limit": limit, "counts": store.counts(rows),
                     "all": store.counts(store.rows),
                     "items": [store.item(r) for r in rows[offset:offset + limit]]}
        self.send_json(reply)

    def file(self, _url, query, match) -> None:
        store = self.server.store
        what, rid = match.group(1), unquote(match.group(2))
        if not ID_PATTERN.fullmatch(rid):
            raise RequestError(400, f"not a valid id: {rid[:100]!r}")
        # The page adds ?v=<modification time> to thumbnail addresses, so a cached one is never stale.
        cache = "private, max-age=86400" if "v" in query else "no-cache"
        if what == "thumb":
            return self.send(store.thumbnail(rid), "image/jpeg", cache=cache)
        path = store.file_of(rid, "path" if what == "image" else "image")
        self.send(path.read_bytes(), IMAGE_TYPES[path.suffix.lower()], cache="no-cache")

    def decisions(self, _url, _query, _match) -> None:
        store = self.server.store
        body = self.read_json()
        what = body.get("what", "") if isinstance(body, dict) else ""
        if not isinstance(what, str) or len(what) > MAX_WHAT:
            raise RequestError(400, f"what must be a label of at most {MAX_WHAT} characters")
        previous = store.decide(parse_changes(body), what)
        self._reply([p["id"] for p in previous], {"saved": len(previous), "previous": previous})

    def _reply(self, ids: list[str], reply: dict) -> None:
        """`reply` plus the changed images as the page shows them, the totals and what undo and redo would do
        next."""
        store = self.server.store
        with store.lock:
            reply["items"] = {rid: store.item(store.by_id[rid]) for rid in ids if rid in store.by_id}
            reply["all"] = store.counts(store.rows)
        reply["history"] = store.last_actions(1)
        self.send_json(reply)

    def undo(self, _url, _query, _match) -> None:
        self.read_json()  # {} (read, so that a kept-alive connection's next request starts clean)
        done = self.server.store.undo()
        self._reply(done["ids"], done)

    def redo(self, _url, _query, _match) -> None:
        self.read_json()  # {}, as for undo
        done = self.server.store.redo()
        self._reply(done["ids"], done)

    def swap(self, _url, _query, _match) -> None:
        body = self.read_json()
        rid = body.get("id") if isinstance(body, dict) else None
        if not isinstance(rid, str) or not ID_PATTERN.fullmatch(rid):
            raise RequestError(400, 'expected {"id": "<a duplicate\'s id>"}')
        done = self.server.store.swap(rid)
        self._reply([done["kept"], done["rejected"]], done)

    def history(self, _url, query, _match) -> None:
        self.send_json(self.server.store.last_actions(web.parse_int(query, "limit", 10, 1, 1000)))

    def folders(self, _url, _query, _match) -> None:
        store = self.server.store
        store.refresh()
        with store.lock:
            self.send_json({"folders": sorted(store.folder_counts.items())})

    def pair(self, _url, query, _match) -> None:
        """A duplicate and the image it duplicates, side by side on the page."""
        store = self.server.store
        rid = one(query, "id")
        store.refresh()
        with store.lock:
            row = store.by_id.get(rid)
            if row is None:
                raise RequestError(404, f"unknown id {rid[:100]!r}")
            other = store.by_id.get(row.get("duplicate_of") or "")
            self.send_json({"item": store.item(row), "other": store.item(other) if other else None,
                            "duplicates": [r["id"] for r in store.rows if r.get("duplicate_of") == rid][:100]})


class ReviewServer(web.Server):
    store: ReviewStore


def make_server(root: str | Path = ".", host: str = "127.0.0.1", port: int = 8765) -> web.Server:
    """A ready server (not yet serving); port 0 picks any free port, see `server.url`."""
    store = ReviewStore(root)
    return web.make_server(Handler, host, port, store=store)


def serve(host: str = "127.0.0.1", port: int = 8765, root: str | Path = ".", open_browser: bool = False) -> None:
    server = make_server(root, host, port)
    store = server.store
    log.info("review page: %s  (%d images; decisions are saved to %s; Ctrl-C stops)",
             server.url, len(store.rows), store.decisions_path)
    if open_browser:
        webbrowser.open(server.url)
    web.serve_until_stopped(server, "the review page", "stopped; run `dvc repro` to apply the decisions")
