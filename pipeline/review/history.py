"""The review page's undo history: review/history.jsonl, one JSON line per action, appended and synced.

An action is what one key or button did: {"seq", "time", "what", "changes": [{"id", "before", "after"}]},
where before and after are {"status": "keep"|"reject"|null, "note": "..."} (null = not decided by hand).
An undo is an action too, with "undoes": the seq it reverted, and a redo is one with "redoes": the seq
of the undo it reverted. Replaying the file gives two stacks, as in an editor: an action goes on the undo
stack and empties the redo stack; an undo takes its action off the undo stack and goes on the redo stack;
a redo takes its undo off the redo stack and goes on the undo stack (so a redo can be undone again). So
undo and redo survive a reload, a restart and a second tab.

Crash safety: a line is appended and fsynced *before* review/decisions.csv is rewritten. A crash in
between leaves an action whose "after" never reached the decisions; undoing it restores "before",
which is what the file already holds, so nothing is lost either way. A crash during the append leaves
a last line without its newline: that line is ignored (its decisions were never written) and cut off
before the next append. Any other line that is not an action is an error naming the line.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.files import clean_text, file_stamp

log = logging.getLogger("review-page")

HISTORY = Path("review/history.jsonl")
STATUS_VALUES = ("keep", "reject", None)


def state(status: str | None, note: str = "") -> dict:
    return {"status": status, "note": note}


def _check_state(value) -> bool:
    return (isinstance(value, dict) and value.get("status", "missing") in STATUS_VALUES
            and isinstance(value.get("note"), str))


def _check_entry(entry) -> str:
    """Why `entry` is not an action ("" when it is one)."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if not isinstance(entry.get("seq"), int) or not isinstance(entry.get("what", ""), str):
        return "needs a whole-number seq"
    for key in ("undoes", "redoes"):
        if key in entry and not isinstance(entry[key], int):
            return f"{key} must be a seq number"
    if "undoes" in entry and "redoes" in entry:
        return "an action either undoes or redoes, not both"
    changes = entry.get("changes")
    if not isinstance(changes, list) or not changes:
        return "needs a list of changes"
    for c in changes:
        if not (isinstance(c, dict) and isinstance(c.get("id"), str) and _check_state(c.get("before"))
                and _check_state(c.get("after"))):
            return 'each change needs an id and before/after states {"status": keep|reject|null, "note": ...}'
    return ""


class History:
    def __init__(self, path: Path):
        self.path = path
        # The file as last read or appended by us: a bulk action of 10,000 images is a line of about a
        # megabyte, and parsing the whole file again at every key would grow slower as the history grows.
        self._cache: tuple[tuple, list[dict]] | None = None

    def read(self) -> list[dict]:
        """Every action in the file, oldest first; a broken line is a UserError naming it."""
        try:
            stamp = file_stamp(self.path)
            if stamp is None:
                return []
            if self._cache and self._cache[0] == stamp:
                return list(self._cache[1])
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if lines[-1]:  # no newline at the end: an append that a crash cut short
            log.warning("%s: ignoring an unfinished last line (an action cut short by a crash)", self.path)
        entries, seqs = [], set()
        for number, raw in enumerate(lines[:-1], start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                why = f"not JSON ({clean_text(str(e))[:80]})"
            else:
                why = _check_entry(entry)
                if not why and entry["seq"] in seqs:
                    why = f"seq {entry['seq']} is used twice"
            if why:
                raise UserError(f"{self.path}:{number}: {why}; correct or delete that line "
                                f"(undo then reaches back only to the lines after it)")
            seqs.add(entry["seq"])
            entries.append(entry)
        self._cache = (stamp, list(entries))
        return entries

    @staticmethod
    def stacks(entries: list[dict]) -> tuple[list[dict], list[dict]]:
        """What an undo can still revert and what a redo can still revert, each oldest first (the last one
        goes next). The redo stack holds undo entries: redoing one restores what it found."""
        undo: list[dict] = []
        redo: list[dict] = []
        for entry in entries:
            if "undoes" in entry:
                undo = [e for e in undo if e["seq"] != entry["undoes"]]
                redo.append(entry)
            elif "redoes" in entry:
                redo = [e for e in redo if e["seq"] != entry["redoes"]]
                undo.append(entry)
            else:  # a new action: what was undone before it can no longer be redone
                undo.append(entry)
                redo = []
        return undo, redo

    @staticmethod
    def label(entry: dict, by_seq: dict[int, dict]) -> str:
        """What the user did, for an undo or redo of `entry`: the first action's label, however many undos
        and redos lie between (so a redo of "keep x" reads "keep x", not "undo: keep x"). `by_seq`: every
        entry by its seq, built once by the caller (a listing labels many entries of one history)."""
        seen = set()
        while entry["seq"] not in seen:
            seen.add(entry["seq"])
            target = by_seq.get(entry.get("undoes", entry.get("redoes")))
            if target is None:
                break
            entry = target
        return entry.get("what", "")

    def append(self, what: str, changes: list[dict], entries: list[dict], undoes: int | None = None,
               redoes: int | None = None) -> dict:
        """Append one action (after `entries`, the file as just read) and sync it to disk."""
        entry = {"seq": max((e["seq"] for e in entries), default=0) + 1,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "what": what, "changes": changes}
        if undoes is not None:
            entry["undoes"] = undoes
        if redoes is not None:
            entry["redoes"] = redoes
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "ab") as f:
            end = f.seek(0, os.SEEK_END)
            if end:  # cut off an unfinished line left by a crash, so that this one starts on its own
                with open(self.path, "rb") as r:
                    r.seek(end - 1)
                    if r.read(1) != b"\n":
                        r.seek(0)
                        keep = r.read().rfind(b"\n") + 1
                        f.truncate(keep)
                        f.seek(keep)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._cache = (file_stamp(self.path), [*entries, entry])
        if created and hasattr(os, "O_DIRECTORY"):  # the new file's name must survive a power cut too
            fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry
