"""Favourites: the characters a person kept in the studio, in studio/favourites.json (git-tracked).

The file is `{"favourites": [entry, ...]}`; an entry is
    {"id": 3, "sha256": "<the checkpoint file's sha256>", "checkpoint": "models/res32", "res": 32,
     "seed": 12, "psi": 0.7, "mix_seed": 40, "band": "middle", "noise": "const", "name": "", "added": "..."}
with mix_seed and band both null for a plain seed. The sha256 says which model drew it: the same
settings on another checkpoint are another character, so such entries are listed as another model's
and skipped (with one line) when redrawing. It never lives in models/, which DVC owns and replaces.
"""
from __future__ import annotations

import datetime
import json
import logging
import re
import threading
from pathlib import Path

from PIL import Image

from pipeline.core.errors import UserError
from pipeline.core.files import save_image, write_json
from pipeline.evaluate.sampling import BANDS, NOISE_MODES
from pipeline.studio.engine import Spec, checkpoint_file, draw
from pipeline.train.checkpoint import digest_of, load_generator

log = logging.getLogger("studio")

DEFAULT_FILE = Path("studio/favourites.json")
SEED_MAX = 2**32 - 1
PSI_RANGE = (-2.0, 2.0)
MAX_NAME = 200
EXPORT_SCALE = 4              # the enlarged export: nearest, x4
_SHA = re.compile(r"[0-9a-f]{64}")


def check_settings(d: dict, where: str) -> dict:
    """The drawing settings of an entry (or of a request to add one), validated; raises ValueError."""
    def seed(v, name):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= SEED_MAX:
            raise ValueError(f"{where}: {name} must be a whole number from 0 to {SEED_MAX}, not {str(v)[:40]!r}")
        return v
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object, not {type(d).__name__}")
    psi = d.get("psi", 1.0)
    if not isinstance(psi, (int, float)) or isinstance(psi, bool) or not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise ValueError(f"{where}: psi must be a number from -2 to 2, not {str(psi)[:40]!r}")
    mix_seed, band = d.get("mix_seed"), d.get("band")
    if (mix_seed is None) != (band is None):
        raise ValueError(f"{where}: mix_seed and band go together (both null for a plain seed)")
    if band is not None and band not in BANDS:
        raise ValueError(f"{where}: band must be one of {', '.join(BANDS)}, not {str(band)[:40]!r}")
    noise = d.get("noise", "const")
    if noise not in NOISE_MODES:
        raise ValueError(f"{where}: noise must be const or random, not {str(noise)[:40]!r}")
    name = d.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME or "\x00" in name:
        raise ValueError(f"{where}: name must be text of at most {MAX_NAME} characters")
    return {"seed": seed(d.get("seed"), "seed"), "psi": float(psi),
            "mix_seed": None if mix_seed is None else seed(mix_seed, "mix_seed"), "band": band,
            "noise": noise, "name": name}


def spec_of(fav: dict) -> Spec:
    if fav["band"] is None:
        return Spec("image", fav["seed"], fav["psi"], fav["noise"])
    return Spec("mix", fav["seed"], fav["psi"], fav["noise"], b=fav["mix_seed"], band=fav["band"])


def file_names(fav: dict) -> tuple[str, str]:
    """The export's names: at the model's resolution, and enlarged."""
    return f"favourite-{fav['id']}.png", f"favourite-{fav['id']}-x{EXPORT_SCALE}.png"


def load(path: Path) -> list[dict]:
    """The entries of a favourites file ([] when it does not exist); a broken file is a UserError."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); fix it or move it away")
    if not isinstance(data, dict) or not isinstance(data.get("favourites"), list):
        raise UserError(f'{path}: expected {{"favourites": [...]}}')
    out, ids = [], set()
    for i, entry in enumerate(data["favourites"]):
        where = f"{path}: favourite {i + 1}"
        try:
            fav = check_settings(entry, where)
        except ValueError as e:
            raise UserError(str(e))
        fid, sha = entry.get("id"), entry.get("sha256")
        if not isinstance(fid, int) or isinstance(fid, bool) or fid < 1 or fid in ids:
            raise UserError(f"{where}: id must be a whole number from 1, different from the others")
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise UserError(f"{where}: sha256 must be the checkpoint's 64 hex digits")
        ids.add(fid)
        out.append({"id": fid, "sha256": sha, "checkpoint": str(entry.get("checkpoint", "")),
                    "res": entry.get("res"), **fav, "added": str(entry.get("added", ""))})
    return out


class Favourites:
    """The file, read once and rewritten (atomically) on every change; one lock for the server's threads."""

    def __init__(self, path: Path = DEFAULT_FILE):
        self.path = Path(path)
        if self.path.resolve().is_relative_to(Path.cwd().resolve() / "models"):
            raise UserError(f"{self.path}: favourites must not live under models/ (DVC owns and replaces it)")
        self.lock = threading.Lock()
        self.entries = load(self.path)

    def add(self, settings: dict, sha256: str, checkpoint: str, res: int) -> dict:
        with self.lock:
            fav = {"id": max((f["id"] for f in self.entries), default=0) + 1, "sha256": sha256,
                   "checkpoint": checkpoint, "res": res, **settings,
                   "added": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self._save(self.entries + [fav])
            return fav

    def remove(self, fid: int) -> bool:
        with self.lock:
            rest = [f for f in self.entries if f["id"] != fid]
            if len(rest) == len(self.entries):
                return False
            self._save(rest)
            return True

    def get(self, fid: int) -> dict | None:
        with self.lock:
            return next((f for f in self.entries if f["id"] == fid), None)

    def _save(self, entries: list[dict]) -> None:
        write_json(self.path, {"favourites": entries})
        self.entries = entries


def export(checkpoint, favourites_file, out, device: str = "auto") -> list[Path]:
    """`python -m stages.generate --favourites FILE`: each favourite of this checkpoint as two PNGs (the
    model's resolution and x4, nearest), as the studio exports them; another checkpoint's: one line each."""
    from pipeline.evaluate.sampling import pick_device

    if not Path(favourites_file).exists():
        raise UserError(f"{favourites_file} not found (the studio writes it when you keep a favourite)")
    favs = load(Path(favourites_file))
    G, res, _ = load_generator(checkpoint, pick_device(device))
    sha = digest_of(checkpoint_file(checkpoint))
    out, written = Path(out), []
    for fav in favs:
        if fav["sha256"] != sha:
            log.info("favourite %d: skipped, drawn by another checkpoint (%s, sha256 %s...)", fav["id"],
                     fav["checkpoint"] or "unnamed", fav["sha256"][:12])
            continue
        image = Image.fromarray(draw(G, res, [spec_of(fav)])[0][0])
        small, big = file_names(fav)
        save_image(out / small, image)
        save_image(out / big, image.resize((image.width * EXPORT_SCALE, image.height * EXPORT_SCALE),
                                           Image.NEAREST))
        written += [out / small, out / big]
    log.info("wrote %d favourite(s) of %s to %s", len(written) // 2, checkpoint, out)
    return written
