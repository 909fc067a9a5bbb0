"""The review page's data: the manifest, human decisions on top of it, and the image files it may serve.

`ReviewStore` answers the page's questions (which rows, what status, which file) and applies its
decisions to review/decisions.csv under a lock, so two tabs or two servers never lose each other's work.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import threading
from collections import Counter
from pathlib import Path

from PIL import Image

from pipeline.core import params
from pipeline.core.errors import UserError
from pipeline.core.files import file_stamp, write_bytes
from pipeline.core.web import RequestError
from pipeline.review.history import HISTORY, History, state
from pipeline.review.manifest import STATUSES, Decision, read_decisions, read_manifest, write_decisions

try:
    import fcntl  # lets two servers on one project take turns writing decisions.csv
except ImportError:  # Windows: the in-process lock and atomic writes still keep the file whole
    fcntl = None

log = logging.getLogger("review-page")

MANIFEST = Path("data/review/manifest.csv")
DECISIONS = Path("review/decisions.csv")
THUMBS = Path(".cache/review-thumbs")  # outside every DVC output, so `dvc repro` never sees it
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
THUMB_SIDE = 256
MAX_NOTE = 1000


EXACT = ("status", "kind", "source", "auto", "decided", "id", "duplicate_of")  # filters on one value


def _int(text, default: int) -> int:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return default


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def folders(source: str) -> list[str]:
    """The folders a source lies in: "game.apk!chars/c0.bundle" -> ["game.apk", "game.apk!chars"];
    "units/a/b.png" -> ["units", "units/a"]. A game archive counts as a folder of its bundles."""
    out, start = [], 0
    for i, ch in enumerate(source):
        if ch in "/!" and i > start:
            out.append(source[:i])
        if ch in "/!":
            start = i + 1
    return out


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
        self.folders_of: dict[str, set[str]] = {}
        self.folder_counts: Counter = Counter()
        self.search_text: dict[str, str] = {}
        self.history = History(self.root / HISTORY)
        self.history.read()  # a broken history is one line at start, not a surprise at the first key
        self.default = "keep"
        self._manifest_stamp = self._decisions_stamp = ()
        self.refresh()

    # --- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up a re-run of the stage, or decisions.csv edited by hand or by a second server."""
        with self.lock:
            stamp = file_stamp(self.manifest_path)
            if stamp is None:  # `dvc repro` removes a stage's outputs before it runs
                raise UserError(f"{MANIFEST} is gone; wait for `dvc repro` to finish, then reload the page")
            if stamp != self._manifest_stamp:
                rows = read_manifest(self.manifest_path)
                if rows and not {"id", "kind", "path"} <= set(rows[0]):
                    raise UserError(f"{self.manifest_path}: needs the columns id,kind,path; re-run `dvc repro`")
                self.rows, self.by_id = rows, {r["id"]: r for r in rows}
                self.default = self._default_status()
                # A source reads "game.apk!path/of/bundle" or "folder/file.png": the page filters by folder.
                self.folders_of = {r["id"]: set(folders(r.get("source", ""))) for r in rows}
                self.folder_counts = Counter(f for r in rows for f in self.folders_of[r["id"]])
                self.search_text = {r["id"]: "\n".join((r.get("source", ""), r.get("asset", ""), r.get("path", ""),
                                                        r["id"])).lower() for r in rows}
                self._manifest_stamp = stamp
            stamp = file_stamp(self.decisions_path)
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
        """Manifest rows that match every non-empty filter (see server.FILTERS), in manifest order or
        by filters["sort"]: confidence (weakest face first) or size (smallest side first)."""
        self.refresh()
        wanted = {key: value for key, value in filters.items() if value and key in EXACT}
        search = (filters.get("search") or "").lower()
        folder = filters.get("folder") or ""
        low, high = _int(filters.get("size_min"), 0), _int(filters.get("size_max"), 10**9)

        def matches(row):
            status, _, decision = self.effective(row)
            facts = {"status": status, "kind": row["kind"], "source": row.get("source", ""), "id": row["id"],
                     "auto": row.get("auto_reason") or "none", "decided": "yes" if decision else "no",
                     "duplicate_of": row.get("duplicate_of", "")}
            if not all(facts[key] == value or (key == "source" and facts[key].startswith(value + "!"))
                       for key, value in wanted.items()):
                return False
            if folder and folder not in self.folders_of[row["id"]]:
                return False
            if search and search not in self.search_text[row["id"]]:
                return False
            w, h = _int(row.get("width"), 0), _int(row.get("height"), 0)
            return min(w, h) >= low and max(w, h) <= high

        rows = [row for row in self.rows if matches(row)]
        if filters.get("sort") == "confidence":  # rows without one (full-body images) go last
            rows.sort(key=lambda r: (_float(r.get("confidence")) is None, _float(r.get("confidence")) or 0.0))
        elif filters.get("sort") == "size":
            rows.sort(key=lambda r: min(_int(r.get("width"), 0), _int(r.get("height"), 0)))
        return rows

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

        stamp = file_stamp(self.root / row["path"]) if row.get("path") else None
        return {"id": row["id"], "kind": row["kind"], "source": row.get("source", ""),
                "asset": row.get("asset", ""), "path": row.get("path", ""), "image": row.get("image", ""),
                "status": status, "reason": reason, "decided": decision is not None,
                "note": decision.note if decision else "", "auto_reason": row.get("auto_reason", ""),
                "duplicate_of": row.get("duplicate_of", ""), "size": ints("width", "height"),
                "confidence": _float(row.get("confidence")), "distance": ints("distance")[0] if ints("distance") else None,
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

    def decide(self, changes: list[tuple[str, str | None, str | None]], what: str = "") -> list[dict]:
        """Apply (id, status or None = no decision, note or None = keep the old note); save at once.

        The action goes to the undo history first, then to decisions.csv (see history.py for why).
        Returns each id's previous decision, which is what an undo restores.
        """
        self.refresh()
        unknown = [rid for rid, _, _ in changes if rid not in self.by_id]
        if unknown:
            raise RequestError(404, f"not in {MANIFEST}: {', '.join(unknown[:5])}"
                                    f"{' and more' if len(unknown) > 5 else ''}; nothing was saved")
        with self.lock, self._file_lock():
            # Read the file again: it may have been edited by hand or by another server since.
            current = read_decisions(self.decisions_path)
            entries = self.history.read()
            previous, steps = [], []
            for rid, status, note in changes:
                old = current.get(rid)
                before = state(old.status if old else None, old.note if old else "")
                after = state(status, "" if status is None else (before["note"] if note is None else note))
                previous.append({"id": rid, "status": before["status"], "note": before["note"]})
                if after != before:
                    steps.append({"id": rid, "before": before, "after": after})
            if steps:
                self.history.append(what or f"{len(steps)} change(s)", steps, entries)
                self._write(current, steps, "after")
        return previous

    def _write(self, current: dict[str, Decision], steps: list[dict], side: str) -> None:
        for step in steps:
            value = step[side]
            if value["status"] is None:
                current.pop(step["id"], None)
            else:
                current[step["id"]] = Decision(value["status"], value["note"])
        write_decisions(self.decisions_path, current)
        self.decisions, self._decisions_stamp = current, file_stamp(self.decisions_path)

    def undo(self) -> dict:
        """Revert the newest action not yet undone (from any tab or any earlier session)."""
        done = self._revert("undo")
        return {"undone": done["what"], "seq": done["seq"], "ids": done["ids"], "left": done["left"]}

    def redo(self) -> dict:
        """Revert the newest undo that no action since has overtaken."""
        done = self._revert("redo")
        return {"redone": done["what"], "seq": done["seq"], "ids": done["ids"], "left": done["left"]}

    def _revert(self, kind: str) -> dict:
        """Undo the top of the undo stack, or redo (undo the undo on top of) the redo stack."""
        self.refresh()
        with self.lock, self._file_lock():
            entries = self.history.read()
            stack = self.history.stacks(entries)[0 if kind == "undo" else 1]
            if not stack:
                raise RequestError(409, f"nothing to {kind}")
            last = stack[-1]
            what = self.history.label(last, {e["seq"]: e for e in entries})
            current = read_decisions(self.decisions_path)
            # Restore what each image had before; its state now becomes what a later look at the file shows.
            steps = []
            for step in last["changes"]:
                old = current.get(step["id"])
                steps.append({"id": step["id"], "before": state(old.status if old else None, old.note if old else ""),
                              "after": step["before"]})
            self.history.append(f"{kind}: {what}", steps, entries, **{f"{kind}es": last["seq"]})
            self._write(current, steps, "after")
        return {"what": what, "seq": last["seq"], "ids": [s["id"] for s in steps], "left": len(stack) - 1}

    def last_actions(self, limit: int) -> dict:
        """The newest `limit` actions an undo would revert and the newest a redo would, newest first."""
        self.refresh()
        entries = self.history.read()
        undo, redo = self.history.stacks(entries)
        by_seq = {e["seq"]: e for e in entries}

        def listed(stack):
            return [{"seq": e["seq"], "what": self.history.label(e, by_seq), "time": e.get("time", ""),
                     "count": len(e["changes"])} for e in reversed(stack[-limit:])]

        return {"undoable": len(undo), "last": listed(undo), "redoable": len(redo), "next_redo": listed(redo)}

    def swap(self, rid: str) -> dict:
        """Of a duplicate and the image it duplicates, keep the other one (both decided by hand)."""
        self.refresh()
        row = self.by_id.get(rid)
        if row is None:
            raise RequestError(404, f"unknown id {rid!r}")
        other = row.get("duplicate_of") or ""
        if other not in self.by_id:
            raise RequestError(409, f"{rid} duplicates no image of the manifest: nothing to swap")
        this_kept = self.effective(row)[0] == "keep" and self.effective(self.by_id[other])[0] == "reject"
        keep, reject = (other, rid) if this_kept else (rid, other)
        self.decide([(keep, "keep", None), (reject, "reject", None)], f"swap: keep {keep}, reject {reject}")
        return {"kept": keep, "rejected": reject}

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
