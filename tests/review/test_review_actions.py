"""The review page's newer calls over real HTTP: undo kept in review/history.jsonl, notes, folders and
search, size and confidence, the duplicate pair and its swap."""
from __future__ import annotations

import json

import pytest

from pipeline.core.files import read_csv, write_csv
from pipeline.review.manifest import MANIFEST_COLUMNS
from tests.review.test_review_server import FACES, FB, Client, make_project, start


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path)
    rows = read_csv(root / "data/review/manifest.csv")
    for row in rows:  # confidences for the faces, a hash distance for the near duplicates, one small image
        row["confidence"] = {FACES[0]: "3.5", FACES[1]: "0.25", FACES[2]: "1.0"}.get(row["id"], "")
        row["distance"] = "3" if row["id"] in FB[2:4] else ""
        if row["id"] == FB[4]:
            row["width"], row["height"] = "30", "50"
    write_csv(root / "data/review/manifest.csv", MANIFEST_COLUMNS, rows)
    return root


@pytest.fixture
def served(project):
    servers = []

    def serve():  # a second call is a restart: a new server on the same project
        if servers:
            servers[-1].shutdown()
            servers[-1].server_close()
        servers.append(start(project))
        return Client(servers[-1])

    yield project, serve
    servers[-1].shutdown()
    servers[-1].server_close()


def decided(root) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["status"], r["note"]) for r in read_csv(root / "review/decisions.csv")}


def history_lines(root) -> list[dict]:
    return [json.loads(line) for line in (root / "review/history.jsonl").read_text().splitlines()]


def ids(client, query):
    status, data = client.get(f"/api/items?{query}")
    assert status == 200, data
    return [item["id"] for item in data["items"]]


def test_undo_survives_a_restart_and_reverts_in_order(served):
    root, serve = served
    client = serve()
    assert client.post({"ids": FB[1:4], "status": "keep", "what": "keep all 3 shown"})[0] == 200
    assert client.post({"changes": [{"id": FB[0], "status": "keep", "note": "fine after all"}]})[0] == 200
    assert decided(root)[FB[0]] == ("keep", "fine after all")
    lines = history_lines(root)
    assert [e["what"] for e in lines] == ["keep all 3 shown", "1 change(s)"]
    assert lines[1]["changes"] == [{"id": FB[0], "before": {"status": "reject", "note": "blurry"},
                                    "after": {"status": "keep", "note": "fine after all"}}]
    assert client.get("/api/history")[1]["undoable"] == 2

    client = serve()  # a restart (or a reload): the history is on disk
    status, data = client.post({}, "/api/undo")
    assert status == 200 and data["undone"] == "1 change(s)" and data["ids"] == [FB[0]]
    assert data["items"][FB[0]]["status"] == "reject" and data["items"][FB[0]]["note"] == "blurry"
    assert decided(root) == {FB[0]: ("reject", "blurry"), **{rid: ("keep", "") for rid in FB[1:4]}}
    status, data = client.post({}, "/api/undo")
    assert data["undone"] == "keep all 3 shown" and sorted(data["ids"]) == FB[1:4] and data["left"] == 0
    assert decided(root) == {FB[0]: ("reject", "blurry")}
    status, data = client.post({}, "/api/undo")
    assert status == 409 and data["error"] == "nothing to undo"
    assert [e.get("undoes") for e in history_lines(root)] == [None, None, 2, 1]


def test_redo_reapplies_what_undo_reverted_until_a_new_action(served):
    root, serve = served
    client = serve()
    assert client.post({"ids": FB[1:4], "status": "keep", "what": "keep all 3 shown"})[0] == 200
    assert client.post({"changes": [{"id": FB[0], "status": "keep", "note": "fine after all"}]})[0] == 200
    both = decided(root)
    status, data = client.post({}, "/api/redo")
    assert status == 409 and data["error"] == "nothing to redo"
    assert client.post({}, "/api/undo")[1]["undone"] == "1 change(s)"
    history = client.get("/api/history")[1]
    assert (history["undoable"], history["redoable"]) == (1, 1)
    assert [e["what"] for e in history["next_redo"]] == ["1 change(s)"]

    client = serve()  # a restart: the redo stack is replayed from the file too
    status, data = client.post({}, "/api/redo")
    assert status == 200 and data["redone"] == "1 change(s)" and data["ids"] == [FB[0]] and data["left"] == 0
    assert data["items"][FB[0]]["note"] == "fine after all" and data["history"]["redoable"] == 0
    assert decided(root) == both
    # A redo can be undone again, under the first action's name, and both undos can be redone in turn.
    assert client.post({}, "/api/undo")[1]["undone"] == "1 change(s)"
    assert client.post({}, "/api/undo")[1]["undone"] == "keep all 3 shown"
    assert decided(root) == {FB[0]: ("reject", "blurry")}
    history = client.get("/api/history")[1]
    assert [e["what"] for e in history["next_redo"]] == ["keep all 3 shown", "1 change(s)"]  # newest first
    assert client.post({}, "/api/redo")[1]["redone"] == "keep all 3 shown"
    assert decided(root) == {FB[0]: ("reject", "blurry"), **{rid: ("keep", "") for rid in FB[1:4]}}
    # A new action ends what could be redone, as in an editor.
    assert client.post({"ids": [FB[4]], "status": "reject"})[0] == 200
    assert client.get("/api/history")[1]["redoable"] == 0
    assert client.post({}, "/api/redo")[0] == 409
    lines = history_lines(root)
    assert [(e.get("undoes"), e.get("redoes")) for e in lines] == [
        (None, None), (None, None), (2, None), (None, 3), (4, None), (1, None), (None, 6), (None, None)]
    assert [e["what"] for e in lines[2:7]] == ["undo: 1 change(s)", "redo: 1 change(s)", "undo: 1 change(s)",
                                              "undo: keep all 3 shown", "redo: keep all 3 shown"]


def test_a_history_line_that_undoes_and_redoes_is_one_line(served):
    root, serve = served
    client = serve()
    assert client.post({"ids": [FB[1]], "status": "reject"})[0] == 200
    with open(root / "review/history.jsonl", "a") as f:
        f.write(json.dumps({"seq": 2, "undoes": 1, "redoes": 1, "changes": [
            {"id": FB[1], "before": {"status": None, "note": ""}, "after": {"status": None, "note": ""}}]}) + "\n")
    status, data = client.post({}, "/api/redo")
    assert status == 409 and data["error"].endswith(":2: an action either undoes or redoes, not both; correct or "
                                                    "delete that line (undo then reaches back only to the lines "
                                                    "after it)")


def test_an_unchanged_decision_is_no_action(served):
    root, serve = served
    client = serve()
    assert client.post({"ids": [FB[0]], "status": "reject"})[0] == 200  # it is rejected already
    assert not (root / "review/history.jsonl").exists()
    assert client.post({}, "/api/undo")[0] == 409


def test_a_note_keeps_the_status_and_a_hand_edited_history_is_one_line(served):
    root, serve = served
    client = serve()
    assert client.post({"changes": [{"id": FB[0], "status": "reject", "note": "armour, not a face"}]})[0] == 200
    assert decided(root)[FB[0]] == ("reject", "armour, not a face")
    with open(root / "review/history.jsonl", "a") as f:
        f.write('{"seq": 7, "changes": "oops"}\n')
    status, data = client.post({}, "/api/undo")
    assert status == 409 and data["error"].startswith(f"{root / 'review/history.jsonl'}:2: needs a list of changes")
    assert "\n" not in data["error"]
    status, data = client.post({"ids": [FB[1]], "status": "reject"})
    assert status == 409 and ":2:" in data["error"]  # nothing is saved past a broken history
    assert FB[1] not in decided(root)


def test_an_append_cut_short_by_a_crash_is_dropped(served):
    root, serve = served
    client = serve()
    assert client.post({"ids": [FB[1]], "status": "reject"})[0] == 200
    with open(root / "review/history.jsonl", "a") as f:
        f.write('{"seq": 2, "what": "half a li')  # no newline: the append died here
    assert client.get("/api/history")[1]["undoable"] == 1
    assert client.post({"ids": [FB[4]], "status": "reject"})[0] == 200
    assert [e["seq"] for e in history_lines(root)] == [1, 2]  # the torn tail was cut off first
    assert client.post({}, "/api/undo")[1]["ids"] == [FB[4]]


def test_folders_search_and_size(served):
    _, serve = served
    client = serve()
    status, data = client.get("/api/folders")
    assert status == 200
    # The faces' source is the game itself ("alpha.apk"): a file at the top, in no folder.
    assert data["folders"] == [["alpha.apk", 4], ["alpha.apk!chars", 4], ["beta.apk", 2], ["beta.apk!chars", 2]]
    assert ids(client, "folder=alpha.apk!chars") == FB[:4]
    assert ids(client, "folder=beta.apk") == FB[4:]
    assert ids(client, "folder=alpha") == []  # a folder is matched whole, not as a prefix of a name
    assert ids(client, "search=C4.BUNDLE") == [FB[4]]  # any part of the source, asset or path
    assert ids(client, "search=f1.png") == [FACES[1]]
    assert ids(client, "size_max=50") == [FB[4]] + FACES
    assert ids(client, "size_min=31&kind=fullbody") == FB[:4] + FB[5:]
    assert ids(client, "sort=confidence&kind=face") == [FACES[1], FACES[2], FACES[0]]
    assert ids(client, "sort=confidence")[:3] == [FACES[1], FACES[2], FACES[0]]  # faces first, weakest first
    face = client.get(f"/api/items?id={FACES[1]}")[1]["items"][0]
    assert face["confidence"] == 0.25
    for bad in ("sort=random", "size_min=abc", "size_max=-1"):
        status, data = client.get(f"/api/items?{bad}")
        assert status == 400 and data["error"], bad


def test_the_pair_and_the_swap(served):
    root, serve = served
    client = serve()
    status, data = client.get(f"/api/pair?id={FB[2]}")
    assert status == 200 and data["other"]["id"] == FB[1] and data["item"]["distance"] == 3
    assert data["item"]["status"] == "reject" and data["other"]["status"] == "keep"
    assert client.get(f"/api/pair?id={FB[1]}")[1]["duplicates"] == [FB[2], FB[3]]
    status, data = client.post({"id": FB[2]}, "/api/swap")
    assert status == 200 and (data["kept"], data["rejected"]) == (FB[2], FB[1])
    assert data["items"][FB[1]]["status"] == "reject" and data["items"][FB[2]]["status"] == "keep"
    assert decided(root) == {FB[0]: ("reject", "blurry"), FB[1]: ("reject", ""), FB[2]: ("keep", "")}
    assert client.post({"id": FB[2]}, "/api/swap")[1]["kept"] == FB[1]  # the same key swaps back
    assert decided(root)[FB[1]] == ("keep", "") and decided(root)[FB[2]] == ("reject", "")
    client.post({}, "/api/undo")
    client.post({}, "/api/undo")  # one undo per swap
    assert decided(root) == {FB[0]: ("reject", "blurry")}
    assert client.post({"id": FB[0]}, "/api/swap")[0] == 409  # no duplicate
    assert client.post({"id": "../x"}, "/api/swap")[0] == 400
    assert client.get("/api/pair?id=nope")[0] == 404


def test_a_broken_history_stops_the_server_at_start_with_one_line(project):
    from pipeline.core.errors import UserError
    from pipeline.review.server import make_server

    (project / "review/history.jsonl").write_text('{"seq": 1, "what": "x", "changes": []}\n')
    with pytest.raises(UserError, match=r"history.jsonl:1: needs a list of changes; correct or delete that line"):
        make_server(project, "127.0.0.1", 0)


def test_an_overlong_action_label_is_refused(served):
    _, serve = served
    client = serve()
    status, data = client.post({"ids": [FB[1]], "status": "reject", "what": "x" * 201})
    assert status == 400 and "what" in data["error"]


def test_undo_after_a_crash_between_the_history_and_the_decisions(served):
    """The history line is written first: a crash before decisions.csv leaves an action that never
    reached the file. Undoing it restores what the file already holds, and the next undo goes on."""
    root, serve = served
    client = serve()
    assert client.post({"ids": [FB[1]], "status": "reject", "what": "first"})[0] == 200
    with open(root / "review/history.jsonl", "a") as f:  # what the crash leaves: the line, not the file
        f.write(json.dumps({"seq": 2, "what": "lost", "changes": [
            {"id": FB[4], "before": {"status": None, "note": ""}, "after": {"status": "reject", "note": ""}}]}) + "\n")
    text = (root / "review/decisions.csv").read_text()
    client = serve()
    assert client.post({}, "/api/undo")[1]["undone"] == "lost"
    assert (root / "review/decisions.csv").read_text() == text
    assert client.post({}, "/api/undo")[1]["undone"] == "first"
    assert decided(root) == {FB[0]: ("reject", "blurry")}
