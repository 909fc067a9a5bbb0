"""The worker side of `unpack`: one unit of data/raw (a Unity file with its companions, or a loose image)
-> every piece of art in it as PNG bytes, and the pieces that could not be decoded, with the reason.

What comes out depends only on the unit's bytes (and its companions' names), `max_pixels` and the
libraries: never on the unit's place under data/raw or on the filters that choose among the art
(`min_size`, `include`, `exclude`), which pipeline.extract.unpack applies afterwards. That is what lets
pipeline.extract.cache keep the result under a hash of the bytes. Whoever changes what this module,
pipeline.extract.unity or pipeline.extract.images produce bumps `cache.EXTRACTOR_VERSION`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from pipeline.extract.archives import ImageUnit, UnityUnit

BATCH = 16                          # pieces of art decoded per task


@dataclass
class Task:
    unit: UnityUnit | ImageUnit
    uid: int                        # which unit of this run: the parent gathers the unit's tasks by it
    max_pixels: int                 # the one param that changes what decoding produces
    keys: list[str] | None = None   # None: plan the unit and build its first batch
    plan_only: bool = False         # after a crash: list the keys, decode nothing


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class Result:
    """What one task found. A skip is (asset, name the filters match, reason); the name is "" where
    the reason concerns the whole file, which no filter can choose away."""
    arts: list[dict] = field(default_factory=list)
    skips: list[tuple[str, str, str]] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)   # keys still to decode, in further tasks


def _image_unit(task: Task) -> Result:
    from pipeline.extract.images import open_image, to_rgba

    try:
        im = open_image(task.unit.data, task.max_pixels)
    except ValueError as e:
        return Result(skips=[("", "", str(e))])
    has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    rgba = to_rgba(im)
    alpha = "texture" if has_alpha and rgba.getchannel("A").getextrema() != (255, 255) else "none"
    # The asset name comes from the file's name, which the parent adds: a renamed image is the same unit.
    return Result(arts=[dict(key="image", kind="image", asset="", container="", alpha=alpha,
                             width=rgba.width, height=rgba.height, format=im.format or "", png=_png(rgba))])


def _build_one(plan, max_pixels: int) -> tuple[dict | None, str]:
    """Decode one planned piece of art; a texture over `max_pixels` is refused before it is decoded."""
    from pipeline.extract import unity

    try:
        w, h = unity.texture_size(plan.texture)
        if w * h > max_pixels:
            return None, f"texture {w}x{h} is over unpack.max_pixels"
        img, alpha = unity.build_art(plan)
    except Exception as e:  # one bad texture is a skipped row, never the end of the unit
        msg = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        return None, " ".join(msg.split())[:200]
    return dict(key=plan.key, kind=plan.kind, asset=plan.asset, container=plan.container, alpha=alpha,
                width=img.width, height=img.height, format=unity.texture_format(plan.texture),
                png=_png(img)), ""


def process(task: Task) -> Result:
    """Worker body: one task -> its Result."""
    if isinstance(task.unit, ImageUnit):
        return _image_unit(task)
    from pipeline.extract import unity

    try:
        env = unity.load_environment(task.unit.files)
    except Exception as e:
        return Result(skips=[("", "", f"unreadable Unity file, encrypted or unknown format "
                                      f"({type(e).__name__}: {' '.join(str(e).split())[:150]})")])
    plans, plan_skips = unity.plan_art(env)
    skips = [(asset, "", reason) for asset, reason in plan_skips]
    if task.plan_only:
        return Result(skips=skips, rest=[p.key for p in plans])
    if task.keys is None:
        todo, rest = plans[:BATCH], [p.key for p in plans[BATCH:]]
    else:
        wanted = set(task.keys)
        todo, rest, skips = [p for p in plans if p.key in wanted], [], []
    out = Result(skips=skips, rest=rest)
    for plan in todo:
        art, reason = _build_one(plan, task.max_pixels)
        if art:
            out.arts.append(art)
        else:
            out.skips.append((plan.asset, plan.container or plan.asset, reason))
    return out
