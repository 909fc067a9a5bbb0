"""Stage `flatten`: data/extracted/ (RGBA) -> data/flat/ (RGB on the configured background)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from pipeline.core.colours import parse_colour
from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, save_image, staging_dir, write_csv
from pipeline.core.params import FlattenParams
from pipeline.core.wording import skipped, stable_skips
from pipeline.extract.images import flatten

log = logging.getLogger("flatten")

INDEX_COLUMNS = ["path", "extracted", "width", "height", "source", "asset"]
SKIP_COLUMNS = ["source", "asset", "reason"]


def run(p: FlattenParams, src: Path = Path("data/extracted"), out: Path = Path("data/flat")) -> dict:
    if not (src / "index.csv").exists():
        raise UserError(f"{src}/index.csv not found: run the unpack stage first (dvc repro)")
    start = time.perf_counter()
    background = parse_colour(p.background)
    rows, skips = [], []
    with staging_dir(out) as stage:
        for r in tqdm(read_csv(src / "index.csv"), desc="flatten", unit="img", mininterval=0.5):
            try:
                with Image.open(src / r["path"]) as im:
                    im.load()
                    flat = flatten(im, p.mode, background, p.trim, p.alpha_threshold)
            except (OSError, ValueError) as e:
                skips.append({"source": r["source"], "asset": r["asset"], "reason": f"unreadable: {e}"})
                continue
            save_image(stage / r["path"], flat)
            rows.append({"path": r["path"], "extracted": r["path"], "width": flat.width,
                         "height": flat.height, "source": r["source"], "asset": r["asset"]})
        write_csv(stage / "index.csv", INDEX_COLUMNS, rows)
        write_csv(stage / "skipped.csv", SKIP_COLUMNS, stable_skips(skips))
    log.info("flattened %d image(s) (%s on %s%s), %s in %.1f s", len(rows), p.mode, p.background,
             ", trimmed" if p.trim else "", skipped(len(skips), f"{out}/skipped.csv"), time.perf_counter() - start)
    return {"flattened": len(rows), "skipped": len(skips)}
