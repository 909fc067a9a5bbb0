"""Throughput of the data stages with 1, 2, ... worker processes (`python -m pipeline.bench data`), and
what unpack's decode cache saves (`python -m pipeline.bench cache`).

The built-in sample is too small to time (21 images), so it is copied `copies` times under different
names into a temporary data/raw/: unpack then decodes every copy's bundles, and faces searches every
flattened image. Both stages run exactly as `dvc repro` runs them (pipeline.extract.unpack.run,
pipeline.extract.faces.run), worker start-up included, but without unpack's decode cache: the copies
share their bytes, so with it every copy after the first would be read from the cache, not decoded.
Flatten runs once in between and is not timed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.core.params import FacesParams, FlattenParams, UnpackParams
from pipeline.extract import faces, flatten, unpack

CASCADE = Path(__file__).resolve().parents[2] / "models" / "lbpcascade_animeface.xml"   # the project root


def replicate(sample: Path, raw: Path, copies: int) -> None:
    """raw/copy000.apk ... : the same bytes under other names (each copy's art gets its own folder)."""
    raw.mkdir(parents=True)
    for i in range(copies):
        dest = raw / f"copy{i:03d}{sample.suffix}"
        try:
            os.link(sample, dest)       # no need to spend disk on identical bytes
        except OSError:
            shutil.copyfile(sample, dest)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_data(copies: int, workers: list[int], stages: list[str], sample: str | Path = "data/raw/sample.apk",
               echo=print) -> dict:
    """Images/s of each stage for each worker count; faces needs unpack's output, so unpack runs
    (untimed, with the most workers) even when only faces is asked for."""
    sample = Path(sample)
    result = {"copies": copies, "cpus": os.cpu_count(), "load_avg_before": round(os.getloadavg()[0], 2),
              "unpack": {}, "faces": {}}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = Path(tmp)
        replicate(sample, root / "raw", copies)
        echo(f"{copies} copies of {sample} in {root / 'raw'}; load average {result['load_avg_before']}")
        extracted = None
        for n in workers if "unpack" in stages else []:
            out = root / f"extracted-{n}"
            counts, seconds = _timed(lambda: unpack.run(UnpackParams(workers=n), root / "raw", out, cache=None))
            result["unpack"][n] = _figures(counts["extracted"], seconds)
            echo(f"unpack, {n} worker(s): {counts['extracted']} images in {seconds:.2f} s = "
                 f"{result['unpack'][n]['img_per_s']} images/s")
            extracted = out
        if "faces" in stages:
            if extracted is None:
                extracted = root / "extracted"
                unpack.run(UnpackParams(workers=max(workers)), root / "raw", extracted, cache=None)
            flat = root / "flat"
            flattened = flatten.run(FlattenParams(), extracted, flat)["flattened"]
            for n in workers:
                p = FacesParams(workers=n, cascade=str(CASCADE))
                counts, seconds = _timed(lambda: faces.run(p, flat, root / f"faces-{n}"))
                result["faces"][n] = {**_figures(flattened, seconds), "faces": counts["faces"]}
                echo(f"faces, {n} worker(s): {flattened} images ({counts['faces']} faces) in {seconds:.2f} s = "
                     f"{result['faces'][n]['img_per_s']} images/s")
    for stage in ("unpack", "faces"):
        runs = result[stage]
        if len(runs) > 1:
            base = runs[min(runs)]["img_per_s"]
            for n, r in runs.items():
                r["speedup"] = round(r["img_per_s"] / base, 2)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    return result


def bench_cache(raw: Path, workers: int = 0, echo=print) -> dict:
    """Seconds of a cold unpack of `raw` (empty cache) and of the warm run after one new image is added.

    The inputs are hard-linked (or copied) into a temporary data/raw/. Each run writes a folder of its own
    and the disk is synced before each, so neither pays for the other's files.
    """
    from PIL import Image

    result = {"cpus": os.cpu_count(), "workers": workers, "load_avg_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        root = Path(tmp)
        files = sorted(p for p in Path(raw).rglob("*") if p.is_file() and not p.name.startswith("."))
        for p in files:
            dest = root / "raw" / p.relative_to(raw)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p, dest)
            except OSError:
                shutil.copyfile(p, dest)
        echo(f"{len(files)} input file(s) from {raw} in {root / 'raw'}; load average {result['load_avg_before']}")
        p = UnpackParams(workers=workers)
        for run in ("cold", "warm"):
            if run == "warm":       # a colour no input has: a new unit, not one the cache holds
                Image.new("RGB", (97, 131), (3, 141, 59)).save(root / "raw" / "bench-new-image.png")
            os.sync()
            counts, seconds = _timed(lambda: unpack.run(p, root / "raw", root / f"extracted-{run}", root / "cache"))
            result[run] = {"seconds": round(seconds, 2), "images": counts["extracted"],
                           "decoded": counts["decoded"], "reused": counts["reused"]}
            echo(f"unpack {run}: decoded {counts['decoded']}, reused {counts['reused']} from the cache, "
                 f"{counts['extracted']} images in {seconds:.2f} s")
        result["cache_mb"] = round(sum(f.stat().st_size for f in (root / "cache").rglob("*") if f.is_file()) / 1e6, 1)
    result["speedup"] = round(result["cold"]["seconds"] / max(result["warm"]["seconds"], 1e-9), 1)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    return result


def _figures(images: int, seconds: float) -> dict:
    return {"images": images, "seconds": round(seconds, 3), "img_per_s": round(images / max(seconds, 1e-9), 1)}
