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
from pathlib import Path

from PIL import Image

from pipeline.core import params
from pipeline.core.errors import UserError
from pipeline.core.files import write_bytes
from pipeline.core.web import RequestError
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
