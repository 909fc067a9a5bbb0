"""Stage `unpack`: data/raw/ -> data/extracted/ (RGBA PNGs, index.csv, skipped.csv).

The parent walks the inputs (pipeline.extract.archives) and looks each unit up in the decode cache
(pipeline.extract.cache); a unit not found there goes to a worker process (pipeline.extract.decode),
which plans the art (pipeline.extract.unity), decodes it and returns PNG bytes. A unit is first tried
whole, in batches of `BATCH` pieces; when a worker crashes or hangs on a batch, each piece of that batch
is retried alone, so a native decoder crash costs one texture, not the run. Once all of a unit's pieces
are back it is cached, and only then do the filters (`min_size`, `include`, `exclude`) choose among its
art, so that changing them decodes nothing.
"""
from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import UserError
from pipeline.core.files import safe_name, safe_relpath, staging_dir, unique_path, write_csv, write_staged
from pipeline.core.params import UnpackParams
from pipeline.core.wording import counted, skipped, stable_skips
from pipeline.extract.archives import ImageUnit, Skip, UnityUnit, Walker, clean_raw_dir, source_parts
from pipeline.extract.cache import CACHE_DIR, DecodeCache, unit_key
from pipeline.extract.decode import BATCH, Task, process
from pipeline.extract.workers import WorkerPool

log = logging.getLogger("unpack")

INDEX_COLUMNS = ["path", "source", "asset", "container", "width", "height", "alpha", "kind", "format"]
SKIP_COLUMNS = ["source", "asset", "reason"]


def _filtered(name: str, p: UnpackParams) -> str | None:
    low = name.lower()
    if p.include and not any(fnmatch.fnmatch(low, pat.lower()) for pat in p.include):
        return "not matched by unpack.include"
    for pat in p.exclude:
        if fnmatch.fnmatch(low, pat.lower()):
            return f"matched unpack.exclude {pat!r}"
    return None


def _too_small(w: int, h: int, p: UnpackParams) -> str | None:
    if min(w, h) < p.min_size:
        return f"{w}x{h} is smaller than unpack.min_size {p.min_size}"
    return None


@dataclass
class _Pending:
    """A unit out at the workers: what came back so far, and how many of its tasks are still out."""
    unit: UnityUnit | ImageUnit
    key: str | None                                                  # its cache key; None without a cache
    tasks: int = 1                                                   # its tasks not answered yet
    arts: list[dict] = field(default_factory=list)                   # each with "path": its staged PNG
    skips: list[tuple[str, str, str]] = field(default_factory=list)  # (asset, filter name, reason)
    lost: bool = False              # a worker failure cost a piece: not the unit's own result, so never cached


class _Chooser:
    """Applies the filters to a unit's decoded art and collects the rows and skips of the index."""

    def __init__(self, p: UnpackParams, incoming: Path):
        self.p, self.incoming = p, incoming
        self.rows: list[dict] = []
        self.skips: list[Skip] = []
        self.staged = 0                 # PNGs written to .incoming so far: the next one's name

    def stage_png(self, png: bytes) -> Path:
        path = self.incoming / f"{self.staged}.png"
        self.staged += 1
        write_staged(path, png)
        return path

    def take(self, unit: UnityUnit | ImageUnit, arts: list[dict], skips: list[tuple[str, str, str]]) -> None:
        """Keep the art the filters let through. An art carries "path" (already staged) or "png"."""
        source, image = unit.source, isinstance(unit, ImageUnit)
        whole = _filtered(source, self.p) if image else None       # a loose image is matched by its path
        for art in arts:
            if image:
                art["asset"] = Path(source).stem
            reason = (whole or (None if image else _filtered(art["container"] or art["asset"], self.p))
                      or _too_small(art["width"], art["height"], self.p))
            if reason:
                self.skips.append(Skip(source, "" if image else art["asset"], reason))
                if "path" in art:
                    art["path"].unlink()
                continue
            path = art.pop("path") if "path" in art else self.stage_png(art.pop("png"))
            self.rows.append({**art, "path": path, "source": source})
        for asset, match, reason in skips:
            self.skips.append(Skip(source, asset, whole or (match and _filtered(match, self.p)) or reason))


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


def run(p: UnpackParams, raw: Path = Path("data/raw"), out: Path = Path("data/extracted"),
        cache: Path | None = CACHE_DIR) -> dict:
    """Extract everything under `raw` into `out`, decoding only the units `cache` (None: no cache) does
    not hold. Returns counts for the log and the tests."""
    clean_raw_dir(raw)
    start = time.perf_counter()
    store = DecodeCache(cache) if cache is not None else None
    walker = Walker(raw)
    pending: dict[int, _Pending] = {}
    counts = {"decoded": 0, "reused": 0}
    pool = WorkerPool(process, p.workers, memory_mb=p.worker_memory_mb, desc="unpack", unit="file")

    def timeout(task: Task) -> float:
        n = 1 if task.plan_only else len(task.keys) if task.keys is not None else BATCH
        return p.decode_timeout * (n + 1)

    def feed(chooser: _Chooser):
        for uid, unit in enumerate(walker.units()):
            key = unit_key(unit, p.max_pixels) if store else None
            entry = store.load(key, unit.source) if store else None
            if entry is not None:
                counts["reused"] += 1
                chooser.take(unit, entry.arts, entry.skips)
                pool.bar.update(1)
                pool.bar.set_postfix_str(f"{counts['reused']} from the cache", refresh=False)
                continue
            counts["decoded"] += 1
            pending[uid] = _Pending(unit, key)
            yield Task(unit, uid, p.max_pixels)

    def submit(task: Task) -> None:
        pending[task.uid].tasks += 1
        pool.submit(task, timeout=timeout(task))

    with staging_dir(out) as stage:
        chooser = _Chooser(p, stage / ".incoming")
        for task, outcome in pool.run(feed(chooser), timeout):
            unit = pending[task.uid]
            unit.tasks -= 1
            if not outcome.ok:
                if isinstance(task.unit, UnityUnit) and task.keys is None and not task.plan_only:
                    log.warning("%s: %s; retrying its pieces one by one", task.unit.source, outcome.error)
                    submit(Task(task.unit, task.uid, p.max_pixels, plan_only=True))
                elif task.keys is not None and len(task.keys) > 1:
                    for key in task.keys:
                        submit(Task(task.unit, task.uid, p.max_pixels, keys=[key]))
                else:
                    unit.skips.append((",".join(task.keys or []), "", outcome.error))
                    unit.lost = True
            else:
                result = outcome.value
                unit.skips += result.skips
                for i in range(0, len(result.rest), BATCH):
                    submit(Task(task.unit, task.uid, p.max_pixels, keys=result.rest[i:i + BATCH]))
                for art in result.arts:
                    art["path"] = chooser.stage_png(art.pop("png"))
                    unit.arts.append(art)
            if unit.tasks == 0:
                del pending[task.uid]
                if store is not None and not unit.lost:
                    store.save(unit.key, unit.arts, unit.skips)
                chooser.take(unit.unit, unit.arts, unit.skips)
        rows, skips = chooser.rows, chooser.skips + walker.skips
        _name_outputs(rows, stage)
        skips.sort(key=lambda s: (s.source, s.asset, s.reason))
        write_csv(stage / "index.csv", INDEX_COLUMNS, rows)
        write_csv(stage / "skipped.csv", SKIP_COLUMNS, stable_skips(vars(s) for s in skips))
    by_alpha = {}
    for r in rows:
        by_alpha[r["alpha"]] = by_alpha.get(r["alpha"], 0) + 1
    if walker.stats.ignored:
        log.info("%s", walker.stats.summary())
    log.info("extracted %d image(s) (alpha: %s), %s in %.1f s", len(rows), counted(by_alpha),
             skipped(len(skips), f"{out}/skipped.csv"), time.perf_counter() - start)
    counts["pruned"] = store.prune() if store is not None and rows else 0   # only a run that succeeds prunes
    log.info("decoded %d input(s), reused %d from the cache%s", counts["decoded"], counts["reused"],
             _cache_note(store, counts["pruned"]))
    if not rows:               # data/raw is not empty (clean_raw_dir): say what dropped everything
        raise UserError(nothing_extracted(skips, out))
    return {"extracted": len(rows), "skipped": len(skips), "alpha": by_alpha, **counts}


def _cache_note(store: DecodeCache | None, pruned: int) -> str:
    if store is None:
        return " (no cache)"
    entries, size = store.size()
    return f" ({store.folder}/: {entries} entries, {size / 1e6:.1f} MB; {pruned} unused pruned)"


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
