"""The human-review manifest: which images the training sets keep, and why.

Every full-body image and face crop gets a stable id (from what it is: source, asset and crop box, never
its pixels), an automatic verdict (too small, nearly blank, exact or near duplicate) and, where a person
has decided, their decision from review/decisions.csv, which always wins.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import clean_text, read_csv, write_csv

log = logging.getLogger("review")

DECISION_COLUMNS = ["id", "status", "note"]
MANIFEST_COLUMNS = ["id", "kind", "path", "source", "status", "reason", "auto_reason", "duplicate_of",
                    "asset", "image", "width", "height", "x", "y", "w", "h",
                    "crop_x", "crop_y", "crop_w", "crop_h", "confidence", "distance"]
DATASET_COLUMNS = ["path", "id", "source", "asset", "width", "height"]
STATUSES = ("keep", "reject")
KINDS = ("fullbody", "face")


def image_id(kind: str, source: str, asset: str, extra: str = "") -> str:
    """A stable id from what an image is; exact duplicates from different assets keep their own ids."""
    digest = hashlib.sha1(f"{source}\x00{asset}\x00{extra}".encode()).hexdigest()[:12]
    return f"{'fb' if kind == 'fullbody' else 'face'}-{digest}"


# --- decisions.csv -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    status: str
    note: str = ""
    line: int = field(default=0, compare=False)   # where review/decisions.csv holds it, for errors


def read_decisions(path: str | os.PathLike) -> dict[str, Decision]:
    """Human decisions by id. A missing file means none; a malformed one is a UserError naming the line."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        rows = read_csv(path)
    except (UnicodeDecodeError, ValueError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV ({clean_text(e)})")
    if rows and not {"id", "status"} <= set(rows[0]):
        raise UserError(f"{path}: needs the columns id,status,note")
    decisions = {}
    for line, row in enumerate(rows, start=2):
        rid, status = (row.get("id") or "").strip(), (row.get("status") or "").strip().lower()
        if not rid:
            continue
        if status not in STATUSES:
            raise UserError(f"{path}:{line}: status {clean_text(status)!r} for {clean_text(rid)} "
                            f"is not keep or reject")
        if rid in decisions:       # which one should win is the person's call, not ours
            raise UserError(f"{path}:{line}: {clean_text(rid)} is decided twice (also on line "
                            f"{decisions[rid].line}): keep one of the two lines")
        decisions[rid] = Decision(status, (row.get("note") or "").strip(), line)
    return decisions


def write_decisions(path: str | os.PathLike, decisions: dict[str, Decision]) -> None:
    """Write all decisions, sorted by id so that git diffs stay small (atomic)."""
    rows = ({"id": k, "status": d.status, "note": d.note} for k, d in sorted(decisions.items()))
    write_csv(path, DECISION_COLUMNS, rows)


# --- automatic verdicts ----------------------------------------------------------------------------

@dataclass
class Candidate:
    """One image the manifest lists, before decisions are applied."""
    id: str
    kind: str
    path: str                       # relative to the project root
    source: str
    asset: str
    width: int
    height: int
    extra: dict                     # face box columns and the like, copied into the manifest
    auto_reason: str = ""
    duplicate_of: str = ""
    distance: str = ""              # perceptual-hash bits to duplicate_of (0 for the same pixels)


def _fingerprint(path: str) -> tuple[str, int, float]:
    """(exact pixel digest, 64-bit perceptual hash, grey standard deviation) of one image."""
    import imagehash

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    digest = hashlib.sha1(rgb.tobytes() + f"{rgb.size}".encode()).hexdigest()
    phash = int(str(imagehash.phash(rgb)), 16)
    std = float(np.asarray(rgb.convert("L"), dtype=np.float32).std())
    return digest, phash, std


def _popcount64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    bits = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1)
    return bits.sum(axis=1)


def auto_verdicts(cands: list[Candidate], min_size: int, blank_std: float, near_duplicate: int,
                  root: Path = Path(".")) -> None:
    """Fill `auto_reason` (and `duplicate_of`) per candidate, in place.

    Duplicates are judged within one kind. Of a group of duplicates the largest image (then the first
    id) stays, so a rejection never drops the best copy.
    """
    for kind in KINDS:
        group = [c for c in cands if c.kind == kind]
        group.sort(key=lambda c: (-(c.width * c.height), c.id))
        kept_digest: dict[str, str] = {}
        kept_ids: list[str] = []
        kept_hashes: list[int] = []
        for c in group:
            if min(c.width, c.height) < min_size:
                c.auto_reason = "too_small"
                continue
            digest, phash, std = _fingerprint(str(root / c.path))
            if std < blank_std:
                c.auto_reason = "blank"
                continue
            if digest in kept_digest:
                c.auto_reason, c.duplicate_of, c.distance = "duplicate", kept_digest[digest], "0"
                continue
            if near_duplicate >= 0 and kept_hashes:
                dist = _popcount64(np.array(kept_hashes, dtype=np.uint64) ^ np.uint64(phash))
                j = int(dist.argmin())
                if dist[j] <= near_duplicate:
                    c.auto_reason, c.duplicate_of = "near_duplicate", kept_ids[j]
                    c.distance = str(int(dist[j]))
                    continue
            kept_digest[digest] = c.id
            kept_ids.append(c.id)
            kept_hashes.append(phash)


def apply_decisions(cands: list[Candidate], decisions: dict[str, Decision], default: str) -> list[dict]:
    """Manifest rows: a human decision wins, then an automatic rejection, then `default`."""
    rows = []
    for c in sorted(cands, key=lambda c: (c.kind, c.path)):
        if c.id in decisions:
            status, reason = decisions[c.id].status, "human"
        elif c.auto_reason:
            status, reason = "reject", c.auto_reason
        else:
            status, reason = default, "default"
        rows.append({"id": c.id, "kind": c.kind, "path": c.path, "source": c.source, "status": status,
                     "reason": reason, "auto_reason": c.auto_reason, "duplicate_of": c.duplicate_of,
                     "distance": c.distance, "asset": c.asset, "width": c.width, "height": c.height, **c.extra})
    return rows


def check_decided_ids(cands: list[Candidate], decisions: dict[str, Decision], path) -> None:
    """A decision must name an image of this run: a mistyped id is an error, not a warning that a run
    restored from DVC's run-cache would never print again."""
    ids = {c.id for c in cands}
    for rid, d in sorted(decisions.items(), key=lambda item: item[1].line):
        if rid not in ids:
            raise UserError(f"{path}:{d.line}: {clean_text(rid)} is no image of data/review/manifest.csv "
                            f"(mistyped, or its image is no longer extracted): correct or remove that line")


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    return read_csv(path)


def write_datasets(rows: list[dict], out: Path, root: Path = Path(".")) -> dict[str, int]:
    """Copy kept images into out/fullbody and out/faces (named by id), each with index.csv."""
    counts = {}
    for kind, folder in (("fullbody", "fullbody"), ("face", "faces")):
        dest = out / folder
        dest.mkdir(parents=True, exist_ok=True)
        index = []
        for r in rows:
            if r["kind"] != kind or r["status"] != "keep":
                continue
            name = f"{r['id']}.png"
            shutil.copyfile(root / r["path"], dest / name)
            index.append({"path": name, "id": r["id"], "source": r["source"], "asset": r["asset"],
                          "width": r["width"], "height": r["height"]})
        counts[folder] = write_csv(dest / "index.csv", DATASET_COLUMNS, index)
    return counts
