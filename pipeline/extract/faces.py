"""Stage `faces`: anime faces found with lbpcascade_animeface, cropped larger (head to half body).

The cascade's box holds the face only; the paper enlarged it towards half body. A crop is the box
scaled by `expand`, its centre moved down by `shift` box sides, then squared and kept inside the image.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError
from pipeline.core.files import read_csv, staging_dir, write_bytes, write_csv
from pipeline.core.params import FacesParams
from pipeline.core.wording import skipped, stable_skips
from pipeline.extract.workers import WorkerPool

log = logging.getLogger("faces")

INDEX_COLUMNS = ["path", "image", "x", "y", "w", "h", "crop_x", "crop_y", "crop_w", "crop_h",
                 "source", "asset", "confidence"]
SKIP_COLUMNS = ["source", "asset", "reason"]
_cascades: dict = {}


@dataclass(frozen=True)
class Cascade:
    classifier: object              # cv2.CascadeClassifier
    last_threshold: float           # the final stage's threshold: a confidence is measured from it


def _last_stage_threshold(path: str) -> float:
    """The last <stageThreshold> of an OpenCV cascade XML (a stage passes when its sum reaches it)."""
    import xml.etree.ElementTree as ET

    try:
        found = [float(e.text) for e in ET.parse(path).iter("stageThreshold")]
    except (ET.ParseError, OSError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read the cascade's stage thresholds ({e})")
    if not found:
        raise UserError(f"{path}: no <stageThreshold> in the cascade (faces.cascade)")
    return found[-1]


def load_cascade(path: str) -> Cascade:
    import cv2

    if path not in _cascades:
        if not hasattr(cv2, "CascadeClassifier"):
            raise UserError("this OpenCV has no CascadeClassifier: install opencv-python-headless>=4.9,<5")
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise UserError(f"{path}: not a readable OpenCV cascade (faces.cascade)")
        _cascades[path] = Cascade(cascade, _last_stage_threshold(path))
    return _cascades[path]


def detect_scored(rgb: np.ndarray, cascade: Cascade, scale_factor=1.1, min_neighbors=5,
                  min_size=24) -> list[tuple[tuple[int, int, int, int], float]]:
    """(box (x, y, w, h), confidence) per face in an RGB uint8 array, sorted by box.

    The image is grey + equalised, as the cascade's author recommends. The confidence is how far the
    box's final-stage sum (OpenCV's "level weight", the best of the windows grouped into the box) lies
    above that stage's threshold: 0 = only just accepted. Unlike the neighbour count it does not grow
    with the face's size (a big face is found at more pyramid levels, so it gathers more neighbours).
    detectMultiScale3 groups the windows exactly as detectMultiScale does: the boxes are the same.
    """
    import cv2

    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, rgb.shape
    grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    boxes, _levels, weights = cascade.classifier.detectMultiScale3(
        grey, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size),
        outputRejectLevels=True)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    assert len(weights) == len(boxes), (len(weights), len(boxes))
    found = [(tuple(int(v) for v in b), round(float(w) - cascade.last_threshold, 4))
             for b, w in zip(boxes if len(boxes) else [], weights)]
    return sorted(found)


def detect(rgb: np.ndarray, cascade: Cascade, scale_factor=1.1, min_neighbors=5, min_size=24) -> list[tuple[int, ...]]:
    """Face boxes (x, y, w, h) in an RGB uint8 array (see detect_scored)."""
    return [box for box, _ in detect_scored(rgb, cascade, scale_factor, min_neighbors, min_size)]


def crop_box(box, image_size, expand=2.0, shift=0.25) -> tuple[int, int, int, int]:
    """The square crop (x, y, side, side) around a face box, clamped to the image."""
    x, y, w, h = box
    width, height = image_size
    side = int(round(max(w, h) * expand))
    side = max(1, min(side, width, height))
    cx, cy = x + w / 2, y + h / 2 + shift * h
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, side, side


@dataclass
class FaceTask:
    row: dict                       # one row of data/flat/index.csv
    folder: str                     # data/flat
    opts: dict


def find_faces(task: FaceTask) -> list[dict]:
    """Worker body: detect faces in one flat image; return crops as PNG bytes with their boxes."""
    import io

    from PIL import Image

    o = task.opts
    with Image.open(Path(task.folder) / task.row["path"]) as im:
        rgb = np.asarray(im.convert("RGB"))
    scored = detect_scored(rgb, load_cascade(o["cascade"]), o["scale_factor"], o["min_neighbors"], o["min_size"])
    found = []
    for box, confidence in scored:
        if confidence < o["min_confidence"]:  # counted, so that the log says what the threshold cost
            found.append({"dropped": True, "confidence": confidence})
            continue
        cx, cy, cw, ch = crop_box(box, (rgb.shape[1], rgb.shape[0]), o["expand"], o["shift"])
        buf = io.BytesIO()
        Image.fromarray(rgb[cy:cy + ch, cx:cx + cw]).save(buf, format="PNG", compress_level=1)
        found.append({"box": box, "crop": (cx, cy, cw, ch), "png": buf.getvalue(), "confidence": confidence})
    return found


def run(p: FacesParams, src: Path = Path("data/flat"), out: Path = Path("data/faces")) -> dict:
    if not (src / "index.csv").exists():
        raise UserError(f"{src}/index.csv not found: run the flatten stage first (dvc repro)")
    load_cascade(p.cascade)  # a missing cascade is one clear error, before any worker starts
    start = time.perf_counter()
    opts = dict(cascade=p.cascade, scale_factor=p.scale_factor, min_neighbors=p.min_neighbors,
                min_size=p.min_size, expand=p.expand, shift=p.shift, min_confidence=p.min_confidence)
    flat = read_csv(src / "index.csv")
    rows, skips, with_face, dropped = [], [], 0, 0
    pool = WorkerPool(find_faces, p.workers, desc="faces", unit="img")
    with staging_dir(out) as stage:
        tasks = (FaceTask(r, str(src), opts) for r in flat)
        for task, outcome in pool.run(tasks, timeout=lambda t: 300):
            r = task.row
            if not outcome.ok:
                skips.append({"source": r["source"], "asset": r["asset"], "reason": outcome.error})
                continue
            kept = [face for face in outcome.value if not face.get("dropped")]
            dropped += len(outcome.value) - len(kept)
            with_face += bool(kept)
            for i, face in enumerate(kept):
                rel = Path(r["path"]).with_name(f"{Path(r['path']).stem}_face{i}.png").as_posix()
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                write_bytes(stage / rel, face["png"])
                x, y, w, h = face["box"]
                cx, cy, cw, ch = face["crop"]
                rows.append({"path": rel, "image": f"{src.as_posix()}/{r['path']}", "x": x, "y": y, "w": w,
                             "h": h, "crop_x": cx, "crop_y": cy, "crop_w": cw, "crop_h": ch,
                             "source": r["source"], "asset": r["asset"],
                             "confidence": f"{face['confidence']:.4f}"})
        rows.sort(key=lambda r: r["path"])
        write_csv(stage / "index.csv", INDEX_COLUMNS, rows)
        write_csv(stage / "skipped.csv", SKIP_COLUMNS, stable_skips(skips))
    below = f" ({dropped} more below faces.min_confidence {p.min_confidence:g}, dropped)" if dropped else ""
    log.info("found %d face(s)%s in %d of %d image(s), %s, in %.1f s", len(rows), below, with_face, len(flat),
             skipped(len(skips), f"{out}/skipped.csv"), time.perf_counter() - start)
    return {"faces": len(rows), "images_with_faces": with_face, "skipped": len(skips), "dropped": dropped}
