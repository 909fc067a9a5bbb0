"""Checkpoints that can be trusted: written atomically, verified on load, with a fallback.

A checkpoint is a torch.save'd dict (tensors, numbers, strings: loadable with weights_only=True) next to
a `.sha256` file of its bytes. A file whose bytes do not match, that is cut short, or that torch cannot
read is reported and skipped; `latest_snapshot` then falls back to the snapshot before it.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from pathlib import Path

import torch

from pipeline.files import write_bytes, write_text

log = logging.getLogger("train")

KEEP_SNAPSHOTS = 2                # per options hash: the newest and one to fall back to


class BadCheckpoint(Exception):
    pass


def save(path: Path, state: dict) -> str:
    """Write `state` to `path` (atomically) and its digest beside it; return the digest."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    write_bytes(path, data)
    write_text(path.with_name(path.name + ".sha256"), digest + "\n")
    return digest


def digest_of(path: Path) -> str:
    side = path.with_name(path.name + ".sha256")
    if side.exists():
        return side.read_text().strip()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path: Path, map_location="cpu") -> dict:
    """Load and verify a checkpoint; raise BadCheckpoint with a one-line reason when it is damaged."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadCheckpoint(f"{path}: unreadable ({e.strerror})")
    side = path.with_name(path.name + ".sha256")
    if side.exists():
        want = side.read_text().strip()
        if hashlib.sha256(data).hexdigest() != want:
            raise BadCheckpoint(f"{path}: damaged (its bytes do not match {side.name})")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:
        raise BadCheckpoint(f"{path}: not a readable checkpoint ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:120]})")


def all_finite(module_states: list[dict]) -> bool:
    """No NaN or inf in any floating tensor of the given state dicts."""
    for sd in module_states:
        for t in sd.values():
            if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
                return False
    return True


_SNAP = re.compile(r"^snapshot-(?P<hash>[0-9a-f]+)-(?P<images>\d+)\.pt$")


def snapshot_path(folder: Path, options_hash: str, images: int) -> Path:
    return folder / f"snapshot-{options_hash}-{images:012d}.pt"


def snapshots(folder: Path, options_hash: str) -> list[Path]:
    """This run's snapshots, newest first."""
    found = []
    for p in folder.glob("snapshot-*.pt"):
        m = _SNAP.match(p.name)
        if m and m["hash"] == options_hash:
            found.append((int(m["images"]), p))
    return [p for _, p in sorted(found, reverse=True)]


def latest_snapshot(folder: Path, options_hash: str, map_location="cpu") -> dict | None:
    """The newest snapshot of these options that verifies; damaged ones are reported and skipped."""
    others = [p.name for p in folder.glob("snapshot-*.pt") if not p.name.startswith(f"snapshot-{options_hash}-")]
    if others:
        log.info("ignoring %d snapshot(s) made with other options (%s ...)", len(others), others[0])
    for path in snapshots(folder, options_hash):
        try:
            state = load(path, map_location)
        except BadCheckpoint as e:
            log.warning("%s; falling back to the previous snapshot", e)
            continue
        log.info("resuming from %s", path)
        return state
    return None


def prune_snapshots(folder: Path, options_hash: str, keep: int = KEEP_SNAPSHOTS) -> None:
    for path in snapshots(folder, options_hash)[keep:]:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)


def is_finite_number(x: float) -> bool:
    return math.isfinite(x)
