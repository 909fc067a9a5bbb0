"""Stage `review`: data/flat + data/faces + review/decisions.csv -> manifest and reviewed data sets."""
from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, staging_dir, write_csv
from pipeline.core.params import ReviewParams
from pipeline.core.wording import counted
from pipeline.review.manifest import (
    MANIFEST_COLUMNS,
    Candidate,
    apply_decisions,
    auto_verdicts,
    check_decided_ids,
    image_id,
    read_decisions,
    write_datasets,
)

log = logging.getLogger("review")


def candidates(flat_dir: Path, faces_dir: Path) -> list[Candidate]:
    """Every full-body image and face crop, with its stable id."""
    for d, stage in ((flat_dir, "flatten"), (faces_dir, "faces")):
        if not (d / "index.csv").exists():
            raise UserError(f"{d}/index.csv not found: run the {stage} stage first (dvc repro)")
    out = []
    for r in read_csv(flat_dir / "index.csv"):
        path = f"{flat_dir.as_posix()}/{r['path']}"
        out.append(Candidate(image_id("fullbody", r["source"], r["asset"], r["path"]), "fullbody", path,
                             r["source"], r["asset"], int(r["width"]), int(r["height"]), {"image": path}))
    for r in read_csv(faces_dir / "index.csv"):
        box = ",".join(r[k] for k in ("crop_x", "crop_y", "crop_w", "crop_h"))
        extra = {k: r[k] for k in ("image", "x", "y", "w", "h", "crop_x", "crop_y", "crop_w", "crop_h")}
        extra["confidence"] = r.get("confidence", "")  # an index.csv from before the column: unknown
        out.append(Candidate(image_id("face", r["source"], r["asset"], f"{r['image']}@{box}"), "face",
                             f"{faces_dir.as_posix()}/{r['path']}", r["source"], r["asset"],
                             int(r["crop_w"]), int(r["crop_h"]), extra))
    return out


def run(p: ReviewParams, flat_dir: Path = Path("data/flat"), faces_dir: Path = Path("data/faces"),
        decisions_path: Path = Path("review/decisions.csv"), manifest_dir: Path = Path("data/review"),
        dataset_dir: Path = Path("data/dataset")) -> dict:
    start = time.perf_counter()
    cands = candidates(flat_dir, faces_dir)
    decisions = read_decisions(decisions_path)
    check_decided_ids(cands, decisions, decisions_path)
    auto_verdicts(cands, p.min_size, p.blank_std, p.near_duplicate)
    rows = apply_decisions(cands, decisions, p.default)
    with staging_dir(manifest_dir) as stage:
        write_csv(stage / "manifest.csv", MANIFEST_COLUMNS, rows)
    with staging_dir(dataset_dir) as stage:
        counts = write_datasets(rows, stage)
    reasons = Counter(r["reason"] for r in rows if r["status"] == "reject")
    humans = sum(r["reason"] == "human" for r in rows)
    log.info("manifest: %d image(s); kept %d full-body, %d faces; rejected %s; %s; %.1f s",
             len(rows), counts["fullbody"], counts["faces"],
             f"{sum(reasons.values())} ({counted(reasons)})" if reasons else "none",
             f"{humans} human decision(s)" if humans else "no human decisions", time.perf_counter() - start)
    return {"rows": len(rows), **counts, "rejected": dict(reasons)}
