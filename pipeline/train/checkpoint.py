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

from pipeline.core import killpoints
from pipeline.core.files import atomic_write, write_text

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
    with atomic_write(path) as f:
        f.write(data)
        killpoints.reached("checkpoint_write")
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
    others = sorted(p.name for p in folder.glob("snapshot-*.pt") if not p.name.startswith(f"snapshot-{options_hash}-"))
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        log.info("ignoring %d snapshot(s) made with other options (%s%s)", len(others), others[0], more)
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


SHAPES = {1: "square", 2: "tall"}


def aspect_of(state: dict) -> int:
    """The model.aspect a checkpoint (or snapshot) was trained at; states from before it: 1 (square)."""
    return int(state.get("aspect", 1))


def check_aspect(found: int, wanted: int, what: str) -> None:
    """One clear line when a model of one shape is about to be used as the other (resumed, grown,
    evaluated, drawn from): its weights would not even fit, and a silent reshape would be wrong."""
    from pipeline.core.errors import UserError

    if int(found) != int(wanted):
        raise UserError(f"{what} was trained at model.aspect {found} ({SHAPES.get(int(found), '?')}); params.yaml "
                        f"says {wanted}: set model.aspect to {found} or retrain")


def load_generator(path, device="cpu"):
    """(G_ema ready for sampling, resolution it was trained at, resolved options) from a checkpoint.

    `path` is a models/res<R> folder (its checkpoint.pt) or a checkpoint file. G.aspect is the shape it
    was trained at (1 for checkpoints from before model.aspect): callers compare it with params.yaml
    through check_aspect.
    """
    from pipeline.core.errors import UserError
    from pipeline.gan.networks import Generator

    path = Path(path)
    if path.is_dir():
        if (path / "skipped.json").exists():
            import json
            reason = json.loads((path / "skipped.json").read_text()).get("reason", "")
            raise UserError(f"{path} holds no model: that stage did not train ({reason})")
        path = path / "checkpoint.pt"
    if not path.exists():
        raise UserError(f"{path} not found: train first (dvc repro), or give a models/res<R> folder")
    try:
        state = load(path, map_location="cpu")
    except BadCheckpoint as e:
        raise UserError(str(e))
    opts = state.get("options") or {}
    model, train = opts.get("model"), opts.get("train")
    if not model or not train:
        raise UserError(f"{path}: not a checkpoint of this tool (no options inside)")
    # A checkpoint draws with the resampling it was trained with (version 1: before the FIR pair), in the
    # network it was trained in (up to its own resolution; before max_res was recorded: final_res).
    max_res = int(state["max_res"] if "max_res" in state else train["final_res"])
    G = Generator(arch=model["arch"], z_dim=model["z_dim"], w_dim=model["w_dim"],
                  mapping_layers=model["mapping_layers"], max_res=max_res, cbase=model["cbase"],
                  cmax=model["cmax"], mapping_lr_mult=model["mapping_lr_mult"],
                  resample_version=int(state.get("resample_version", 1)), aspect=aspect_of(state))
    G.load_state_dict(state["G_ema"])
    return G.to(device).eval().requires_grad_(False), int(state["res"]), opts
