"""Stage `unpack`: data/raw/ -> data/extracted/ (RGBA PNGs, index.csv, skipped.csv).

The parent walks the inputs (pipeline.extract.archives) and hands each Unity file to a worker process, which
plans the art (pipeline.extract.unity), decodes it and returns PNG bytes. A unit is first tried whole, in
batches of `BATCH` pieces; when a worker crashes or hangs on a batch, each piece of that batch is
retried alone, so a native decoder crash costs one texture, not the run.
"""
from __future__ import annotations

import fnmatch
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.files import safe_name, safe_relpath, staging_dir, unique_path, write_bytes, write_csv
from pipeline.core.params import UnpackParams
from pipeline.core.wording import counted, skipped, stable_skips
from pipeline.extract.archives import ImageUnit, Skip, UnityUnit, Walker, clean_raw_dir, source_parts
from pipeline.extract.workers import WorkerPool

log = logging.getLogger("unpack")

INDEX_COLUMNS = ["path", "source", "asset", "container", "width", "height", "alpha", "kind", "format"]
SKIP_COLUMNS = ["source", "asset", "reason"]
BATCH = 16                          # pieces of art decoded per task


@dataclass
class Task:
    unit: UnityUnit | ImageUnit
    options: dict                   # min_size, include, exclude, max_pixels
    keys: list[str] | None = None   # None: plan the unit and build its first batch
    plan_only: bool = False         # after a crash: list the keys, decode nothing
    rest: list[str] = field(default_factory=list)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _filtered(name: str, opts: dict) -> str | None:
    low = name.lower()
    if opts["include"] and not any(fnmatch.fnmatch(low, p.lower()) for p in opts["include"]):
        return "not matched by unpack.include"
    for p in opts["exclude"]:
        if fnmatch.fnmatch(low, p.lower()):
            return f"matched unpack.exclude {p!r}"
    return None


def _too_small(w: int, h: int, opts: dict) -> str | None:
    if min(w, h) < opts["min_size"]:
        return f"{w}x{h} is smaller than unpack.min_size {opts['min_size']}"
    return None


def _image_unit(task: Task) -> dict:
    from pipeline.extract.images import open_image, to_rgba

    opts = task.options
    reason = _filtered(task.unit.source, opts)
    if reason:
        return {"arts": [], "skips": [("", reason)], "rest": []}
    try:
        im = open_image(task.unit.data, opts["max_pixels"])
    except ValueError as e:
        return {"arts": [], "skips": [("", str(e))], "rest": []}
    reason = _too_small(*im.size, opts)
    if reason:
        return {"arts": [], "skips": [("", reason)], "rest": []}
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    rgba = to_rgba(im)
    alpha = "texture" if has_alpha and rgba.getchannel("A").getextrema() != (255, 255) else "none"
    name = Path(task.unit.source).stem
    return {"arts": [dict(key="image", kind="image", asset=name, container="", alpha=alpha,
                          width=rgba.width, height=rgba.height, format=im.format or "", png=_png(rgba))],
            "skips": [], "rest": []}


def _build_one(plan, opts: dict) -> tuple[dict | None, str]:
    """Decode one planned piece of art, checking the cheap filters before any pixel is decoded."""
    from pipeline.extract import unity

    reason = _filtered(plan.container or plan.asset, opts)
    if reason:
        return None, reason
    try:
        w, h = unity.texture_size(plan.texture)
        if w * h > opts["max_pixels"]:
            return None, f"texture {w}x{h} is over unpack.max_pixels"
        if plan.kind in ("sprite", "atlas_sprite"):
            rect = plan.render_data.textureRect
            w, h = round(rect.width), round(rect.height)
        if plan.kind != "mesh" and _too_small(w, h, opts):
            return None, _too_small(w, h, opts)
        img, alpha = unity.build_art(plan)
    except Exception as e:  # one bad texture is a skipped row, never the end of the unit
        msg = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        return None, " ".join(msg.split())[:200]
    reason = _too_small(img.width, img.height, opts)
    if reason:
        return None, reason
    return dict(key=plan.key, kind=plan.kind, asset=plan.asset, container=plan.container, alpha=alpha,
                width=img.width, height=img.height, format=unity.texture_format(plan.texture),
                png=_png(img)), ""


def process(task: Task) -> dict:
    """Worker body: one task -> {"arts": [...], "skips": [(asset, reason)], "rest": [keys]}."""
    if isinstance(task.unit, ImageUnit):
        return _image_unit(task)
    from pipeline.extract import unity

    opts = task.options
    try:
        env = unity.load_environment(task.unit.files)
    except Exception as e:
        return {"arts": [], "skips": [("", f"unreadable Unity file, encrypted or unknown format "
                                           f"({type(e).__name__}: {' '.join(str(e).split())[:150]})")],
                "rest": []}
    plans, skips = unity.plan_art(env)
    if task.plan_only:
        return {"arts": [], "skips": skips, "rest": [p.key for p in plans]}
    if task.keys is None:
        todo, rest = plans[:BATCH], [p.key for p in plans[BATCH:]]
    else:
        wanted = set(task.keys)
        todo, rest, skips = [p for p in plans if p.key in wanted], [], []
    arts = []
    for plan in todo:
        art, reason = _build_one(plan, opts)
        if art:
            arts.append(art)
        else:
            skips.append((plan.asset, reason))
    return {"arts": arts, "skips": skips, "rest": rest}


def _name_outputs(rows: list[dict], stage: Path) -> None:
    """Move each PNG to <source path>/<asset>.png; clashes get -2, -3 ... in a fixed order."""
    taken: set[str] = set()
    rows.sort(key=lambda r: (r["source"], r["key"]))
    for r in rows:
        parts = source_parts(r["source"])
        if r["kind"] == "image":          # a loose image keeps its folder and its own name
            parts = parts[:-1]
        folder = safe_relpath(parts) if parts else Path()
        rel = unique_path(folder / f"{safe_name(r['asset'])}.png", taken)
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        r.pop("path").replace(stage / rel)
        r["path"] = rel.as_posix()
        del r["key"]
    if (stage / ".incoming").exists():
        (stage / ".incoming").rmdir()
    rows.sort(key=lambda r: r["path"])


def run(p: UnpackParams, raw: Path = Path("data/raw"), out: Path = Path("data/extracted")) -> dict:
    """Extract everything under `raw` into `out`. Returns counts for the log and the tests."""
    clean_raw_dir(raw)
    start = time.perf_counter()
    opts = dict(min_size=p.min_size, include=p.include, exclude=p.exclude, max_pixels=p.max_pixels)
    walker = Walker(raw)
    feed = (Task(u, opts) for u in walker.units())
    rows, skips = [], []
    pool = WorkerPool(process, p.workers, memory_mb=p.worker_memory_mb, desc="unpack", unit="file")

    def timeout(task: Task) -> float:
        n = 1 if task.plan_only else len(task.keys) if task.keys is not None else BATCH
        return p.decode_timeout * (n + 1)

    with staging_dir(out) as stage:
        for task, outcome in pool.run(feed, timeout):
            source = task.unit.source
            if not outcome.ok:
                if isinstance(task.unit, UnityUnit) and task.keys is None and not task.plan_only:
                    log.warning("%s: %s; retrying its pieces one by one", source, outcome.error)
                    pool.submit(Task(task.unit, opts, plan_only=True), timeout=p.decode_timeout * 2)
                elif task.keys is not None and len(task.keys) > 1:
                    for key in task.keys:
                        pool.submit(Task(task.unit, opts, keys=[key]), timeout=p.decode_timeout * 2)
                else:
                    skips.append(Skip(source, ",".join(task.keys or []), outcome.error))
                continue
            result = outcome.value
            skips += [Skip(source, asset, reason) for asset, reason in result["skips"]]
            for i in range(0, len(result["rest"]), BATCH):
                keys = result["rest"][i:i + BATCH]
                pool.submit(Task(task.unit, opts, keys=keys), timeout=p.decode_timeout * (len(keys) + 1))
            for art in result["arts"]:
                tmp = stage / ".incoming" / f"{len(rows)}.png"
                write_bytes(tmp, art.pop("png"))
                rows.append({"path": tmp, "source": source, **art})
        skips += walker.skips
        _name_outputs(rows, stage)
        skips.sort(key=lambda s: (s.source, s.asset))
        write_csv(stage / "index.csv", INDEX_COLUMNS, rows)
        write_csv(stage / "skipped.csv", SKIP_COLUMNS, stable_skips(vars(s) for s in skips))
    by_alpha = {}
    for r in rows:
        by_alpha[r["alpha"]] = by_alpha.get(r["alpha"], 0) + 1
    if walker.stats.ignored:
        log.info("%s", walker.stats.summary())
    log.info("extracted %d image(s) (alpha: %s), %s in %.1f s", len(rows), counted(by_alpha),
             skipped(len(skips), f"{out}/skipped.csv"), time.perf_counter() - start)
    if not rows:               # data/raw is not empty (clean_raw_dir): say what dropped everything
        raise UserError(nothing_extracted(skips, out))
    return {"extracted": len(rows), "skipped": len(skips), "alpha": by_alpha}


def nothing_extracted(skips: list[Skip], out: Path) -> str:
    dropped = {"unpack.include": 0, "unpack.exclude": 0, "unpack.min_size": 0}
    for s in skips:
        for key in dropped:
            if key in s.reason:
                dropped[key] += 1
    other = len(skips) - sum(dropped.values())
    return (f"extracted 0 images from data/raw: {', '.join(f'{k} dropped {n}' for k, n in dropped.items())}, "
            f"{other} other skip(s) (see {out}/skipped.csv). Loosen the filters; a list goes to -S as "
            f"-S 'unpack.include=[\"*/paintings/*\"]'")
