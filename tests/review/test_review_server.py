"""The review page's server, exercised over real HTTP on a small fake project."""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, write_csv
from pipeline.review.manifest import MANIFEST_COLUMNS, read_decisions
from pipeline.review.server import make_server

FB = [f"fb-{i:012d}" for i in range(6)]          # full-body ids
FACES = [f"face-{i:012d}" for i in range(3)]     # face-crop ids


def png(path: Path, size=(80, 120), colour=(200, 80, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def make_project(root: Path, extra_rows: list[dict] = ()) -> Path:
    """data/flat images, face crops cut from them, a manifest and one human decision."""
    rows = []
    for i, rid in enumerate(FB):
        source = "alpha.apk" if i < 4 else "beta.apk"
        path = f"data/flat/{source}/chars/c{i}.png"
        png(root / path, colour=(40 * i, 100, 200))
        auto = {2: "near_duplicate", 3: "near_duplicate", 5: "too_small"}.get(i, "")
        rows.append({"id": rid, "kind": "fullbody", "path": path, "source": f"{source}!chars/c{i}.bundle",
                     "status": "reject" if auto else "keep",
                     "reason": auto or "default", "auto_reason": auto, "duplicate_of": FB[1] if i in (2, 3) else "",
                     "asset": f"chars/c{i}", "image": path, "width": 80, "height": 120})
    for i, rid in enumerate(FACES):
        path = f"data/faces/alpha.apk/f{i}.png"
        png(root / path, size=(40, 40), colour=(250, 200, 20 * i))
        rows.append({"id": rid, "kind": "face", "path": path, "source": "alpha.apk", "status": "keep",
                     "reason": "default", "asset": f"chars/c{i}", "image": rows[i]["path"],
                     "width": 40, "height": 40, "x": 20, "y": 10, "w": 20, "h": 20,
                     "crop_x": 10, "crop_y": 0, "crop_w": 40, "crop_h": 40})
    rows.extend(extra_rows)
    write_csv(root / "data/review/manifest.csv", MANIFEST_COLUMNS, rows)
    (root / "review").mkdir(exist_ok=True)
    (root / "review/decisions.csv").write_text(f"id,status,note\n{FB[0]},reject,blurry\n")
    return root


class Client:
    """A tiny HTTP client that sends paths exactly as given (no normalising of `..`)."""

    def __init__(self, server):
        self.host, self.port = server.server_address[:2]

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            data = res.read()
        finally:
            conn.close()
        if res.getheader("Content-Type") == "application/json":
            data = json.loads(data)
        return res.status, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, obj, path="/api/decisions"):
        return self.request("POST", path, json.dumps(obj), {"Content-Type": "application/json"})


def start(root: Path):
    server = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


@pytest.fixture
def served(project):
    server = start(project)
    yield project, Client(server)
    server.shutdown()
    server.server_close()


def decisions_file(root: Path) -> str:
    return (root / "review/decisions.csv").read_text()


def test_missing_manifest_is_a_clear_user_error(tmp_path):
    with pytest.raises(UserError, match="run `dvc repro` first"):
        make_server(tmp_path, "127.0.0.1", 0)


def test_page_and_static_files_are_served(served):
    _, client = served
    status, page = client.get("/")
    assert status == 200 and b"/static/review.js" in page
    assert client.get("/static/review.js")[0] == 200
    assert client.get("/static/review.css")[0] == 200
    assert client.get("/static/../server.py")[0] == 404


def test_listing_filters_and_paging(served):
    _, client = served
    status, data = client.get("/api/items")
    assert status == 200
    # FB[0] rejected by hand; FB[2], FB[3] near duplicates and FB[5] too small: rejected automatically.
    assert data["counts"] == {"total": 9, "keep": 5, "reject": 4, "decided": 1}
    assert "sources" not in data  # one entry per loose file was thousands per page: /api/folders has them
    first = data["items"][0]
    assert (first["id"], first["status"], first["reason"], first["note"]) == (FB[0], "reject", "human", "blurry")

    def ids(query):
        status, data = client.get(f"/api/items?{query}")
        assert status == 200, data
        return [item["id"] for item in data["items"]]

    assert ids("status=reject") == [FB[0], FB[2], FB[3], FB[5]]
    assert ids("kind=face") == FACES
    assert ids("source=beta.apk") == FB[4:]  # a game, or one asset bundle in it
    assert ids("source=beta.apk!chars/c4.bundle") == [FB[4]]
    assert ids("source=beta.ap") == []
    assert ids("auto=near_duplicate") == [FB[2], FB[3]]
    assert ids(f"duplicate_of={FB[1]}") == [FB[2], FB[3]]
    assert ids("auto=none&kind=fullbody") == [FB[0], FB[1], FB[4]]
    assert ids("decided=yes") == [FB[0]]
    assert ids(f"id={FB[4]}") == [FB[4]]
    pages = [ids(f"offset={o}&limit=4") for o in (0, 4, 8, 12)]
    assert pages[3] == [] and sum(pages, []) == FB + FACES
    face = client.get("/api/items?kind=face&limit=1")[1]["items"][0]
    assert face["box"] == [20, 10, 20, 20] and face["crop"] == [10, 0, 40, 40]
    assert face["image"] == "data/flat/alpha.apk/chars/c0.png"


@pytest.mark.parametrize("query", ["status=maybe", "kind=head", "decided=perhaps", "limit=-1", "limit=abc",
                                   "limit=100000", "offset=1.5"])
def test_bad_listing_parameters_get_400(served, query):
    _, client = served
    status, data = client.get(f"/api/items?{query}")
    assert status == 400 and data["error"]


def test_decision_is_saved_at_once_and_undo_restores_the_file(served):
    root, client = served
    before = decisions_file(root)
    status, data = client.post({"ids": [FB[1]], "status": "reject"})
    assert status == 200 and data["saved"] == 1
    assert data["previous"] == [{"id": FB[1], "status": None, "note": ""}]
    assert data["items"][FB[1]]["status"] == "reject" and data["items"][FB[1]]["reason"] == "human"
    assert decisions_file(root) == f"id,status,note\n{FB[0]},reject,blurry\n{FB[1]},reject,\n"
    # A reload (a fresh listing) shows the saved state.
    assert client.get(f"/api/items?id={FB[1]}")[1]["items"][0]["status"] == "reject"
    # Keeping an image that had a note keeps the note.
    status, data = client.post({"ids": [FB[0]], "status": "keep"})
    assert data["previous"] == [{"id": FB[0], "status": "reject", "note": "blurry"}]
    assert read_decisions(root / "review/decisions.csv")[FB[0]].note == "blurry"
    # Undo = send the previous decisions back; "no decision" removes the row.
    assert client.post({"changes": data["previous"]})[0] == 200
    assert client.post({"changes": [{"id": FB[1], "status": None}]})[0] == 200
    assert decisions_file(root) == before
    # Without the decision, the automatic verdict is back.
    item = client.get(f"/api/items?id={FB[2]}")[1]["items"][0]
    assert (item["status"], item["reason"]) == ("reject", "near_duplicate")


def test_reject_all_shown(served):
    root, client = served
    status, data = client.get(f"/api/ids?auto=near_duplicate&duplicate_of={FB[1]}")
    assert status == 200 and data["ids"] == [FB[2], FB[3]]
    status, data = client.post({"ids": data["ids"], "status": "reject", "note": "dup"})
    assert status == 200 and data["saved"] == 2
    rows = read_csv(root / "review/decisions.csv")
    assert [(r["id"], r["status"], r["note"]) for r in rows] == [
        (FB[0], "reject", "blurry"), (FB[2], "reject", "dup"), (FB[3], "reject", "dup")]


def test_unknown_ids_are_refused_and_nothing_is_saved(served):
    root, client = served
    before = decisions_file(root)
    status, data = client.post({"ids": [FB[1], "fb-doesnotexist"], "status": "reject"})
    assert status == 404 and "fb-doesnotexist" in data["error"] and "nothing was saved" in data["error"]
    assert decisions_file(root) == before


@pytest.mark.parametrize("body,code", [
    (b"{not json", 400), (b"\xff\xfe", 400), (b"[1, 2]", 400), (b'{"ids": "fb-1", "status": "keep"}', 400),
    (b'{"ids": ["x"]}', 400), (b'{"ids": [], "status": "keep"}', 400),
    (b'{"ids": ["../../etc/passwd"], "status": "reject"}', 400),
    (b'{"ids": [7], "status": "keep"}', 400), (b'{"changes": [{"id": "fb-000000000001", "status": "maybe"}]}', 400),
    (b'{"ids": ["fb-000000000001", "fb-000000000001"], "status": "keep"}', 400),
    (json.dumps({"ids": [FB[1]], "status": "keep", "note": "n" * 5000}).encode(), 400),
])
def test_malformed_decisions_get_4xx_and_the_server_lives_on(served, body, code):
    root, client = served
    before = decisions_file(root)
    status, data = client.request("POST", "/api/decisions", body, {"Content-Type": "application/json"})
    assert status == code and data["error"]
    assert decisions_file(root) == before
    assert client.get("/api/items?limit=1")[0] == 200


def test_wrong_content_type_length_and_route(served):
    _, client = served
    assert client.request("POST", "/api/decisions", b'{"ids": [], "status": "keep"}',
                          {"Content-Type": "text/plain"})[0] == 415
    assert client.post({"ids": [FB[1]], "status": "keep"}, path="/api/nothing")[0] == 404
    assert client.get("/api/nothing")[0] == 404
    # A body larger than the limit is refused before it is read.
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(b"POST /api/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 999999999\r\n\r\n{")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 501")
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(b"GET /api/items HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")  # too many headers
        assert s.recv(100).startswith(b"HTTP/1.1 431")
    assert client.get("/")[0] == 200


def test_requests_from_other_sites_are_refused(served):
    _, client = served
    assert client.get("/api/items", headers={"Host": "evil.example:8765"})[0] == 403
    status, _ = client.request("POST", "/api/decisions", json.dumps({"ids": [FB[1]], "status": "reject"}),
                               {"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert status == 403


def test_images_and_cached_thumbnails(served):
    root, client = served
    face = FACES[0]
    status, data = client.get(f"/image/{face}")
    assert status == 200 and data == (root / "data/faces/alpha.apk/f0.png").read_bytes()
    status, data = client.get(f"/source/{face}")
    assert status == 200 and data == (root / "data/flat/alpha.apk/chars/c0.png").read_bytes()
    status, data = client.get(f"/thumb/{FB[1]}?v=1")
    assert status == 200 and data[:2] == b"\xff\xd8"  # a JPEG
    cache = root / ".cache/review-thumbs"
    assert len(list(cache.rglob("*.jpg"))) == 1
    assert client.get(f"/thumb/{FB[1]}")[1] == data  # from the cache: no second file
    assert len(list(cache.rglob("*.jpg"))) == 1
    big = root / "data/flat/alpha.apk/chars/c1.png"
    png(big, size=(1000, 600))
    os.utime(big, ns=(time.time_ns(), time.time_ns() + 10**9))
    status, data = client.get(f"/thumb/{FB[1]}")
    with Image.open(__import__("io").BytesIO(data)) as im:
        assert im.size == (256, 154)  # a new image: a new thumbnail, at most 256 px a side
    assert client.get("/thumb/fb-unknown")[0] == 404


@pytest.mark.parametrize("path,code", [
    ("/image/../../etc/passwd", 404), ("/image/..%2F..%2Fetc%2Fpasswd", 400), ("/thumb/%2e%2e", 400),
    ("/source/..", 400), ("/image/%00", 400), ("/../../etc/passwd", 404), ("/image/", 404),
])
def test_traversal_through_the_address_is_refused(served, path, code):
    _, client = served
    status, data = client.get(path)
    assert status == code and b"root:" not in json.dumps(data).encode()


def test_manifest_paths_outside_data_are_refused(tmp_path):
    outside = tmp_path / "secret.png"
    png(outside)
    root = tmp_path / "project"
    root.mkdir()
    (root / "data").mkdir()
    (root / "data/link.png").symlink_to(outside)
    (root / "data/notes.txt").write_text("not an image")
    png(root / "review/pic.png")
    bad = {"bad-dotdot": "data/../../secret.png", "bad-absolute": str(outside), "bad-link": "data/link.png",
           "bad-notdata": "review/pic.png", "bad-text": "data/notes.txt", "bad-empty": ""}
    rows = [{"id": rid, "kind": "fullbody", "path": path, "source": "s", "status": "keep", "reason": "default"}
            for rid, path in bad.items()]
    make_project(root, rows)
    server = start(root)
    try:
        client = Client(server)
        for rid in bad:
            for what in ("image", "source", "thumb"):
                status, data = client.get(f"/{what}/{rid}")
                assert status == 403, (rid, what, status)
                assert "refused" in data["error"]
        assert client.get(f"/image/{FB[1]}")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_hand_edits_are_picked_up_and_kept(served):
    root, client = served
    path = root / "review/decisions.csv"
    path.write_text(f"id,status,note\n{FB[0]},reject,blurry\n{FB[4]},reject,by hand\n")
    assert client.get(f"/api/items?id={FB[4]}")[1]["items"][0]["reason"] == "human"
    client.post({"ids": [FB[1]], "status": "reject"})
    assert set(read_decisions(path)) == {FB[0], FB[1], FB[4]}
    path.write_text("id,status,note\nfb-x,perhaps,\n")
    status, data = client.get("/api/items")
    assert status == 409 and "perhaps" in data["error"]


def test_concurrent_writers_never_corrupt_the_file(project):
    """Two servers on one project (two tabs, two terminals), two writer threads each."""
    rows = [{"id": f"fb-c{i:04d}", "kind": "fullbody", "path": f"data/flat/x/{i}.png", "source": "x",
             "status": "keep", "reason": "default"} for i in range(120)]
    make_project(project, rows)
    servers = [start(project), start(project)]
    errors, reads = [], []
    stop = threading.Event()

    def writer(client, ids):
        for rid in ids:
            status, data = client.post({"ids": [rid], "status": "reject", "note": "c"})
            if status != 200:
                errors.append(data)

    def reader():
        while not stop.is_set():
            reads.append(len(read_decisions(project / "review/decisions.csv")))  # raises if half-written

    threads = [threading.Thread(target=writer, args=(Client(servers[i % 2]), [r["id"] for r in rows[i::4]]))
               for i in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    for s in servers:
        s.shutdown()
        s.server_close()
    assert not errors
    saved = read_decisions(project / "review/decisions.csv")
    assert set(saved) == {r["id"] for r in rows} | {FB[0]}  # no decision lost between the two servers
    assert reads and max(reads) <= 121


def test_a_page_of_5000_images_lists_every_page(tmp_path):
    """A large manifest pages and filters correctly (how fast is a benchmark's business, not a test's)."""
    rows = [{"id": f"fb-b{i:011x}", "kind": "fullbody" if i % 3 else "face",
             "path": f"data/flat/s{i % 7}.apk/{i}.png", "source": f"s{i % 7}.apk", "status": "keep",
             "reason": "default", "auto_reason": "near_duplicate" if i % 11 == 0 else ""} for i in range(5000)]
    root = make_project(tmp_path, rows)
    server = start(root)
    client = Client(server)
    try:
        pages = []
        for offset in range(0, 5400, 200):
            status, page = client.get(f"/api/items?offset={offset}&limit=200")
            assert status == 200
            pages.append([it["id"] for it in page["items"]])
        every = [rid for ids in pages for rid in ids]
        assert len(every) == len(set(every)) and set(every) >= {r["id"] for r in rows}   # each row once
        assert all(len(ids) == 200 for ids in pages[:-2]) and not pages[-1]
        status, filtered = client.get("/api/items?kind=face&auto=none&source=s3.apk&limit=200")
        assert status == 200 and filtered["items"]
        assert all(it["kind"] == "face" and it["source"] == "s3.apk" for it in filtered["items"])
        status, _ = client.post({"ids": [rows[10]["id"]], "status": "reject"})
        assert status == 200
    finally:
        server.shutdown()
        server.server_close()
