"""The decode cache of `unpack`: what a unit of data/raw decoded to, kept under a hash of what decides it.

A unit (pipeline.extract.decode) is decoded once per key: the hash of its bytes and its companions',
`max_pixels`, EXTRACTOR_VERSION and the versions of the libraries that decode. Its place under data/raw
is no part of the key, so a renamed or moved input is found again; the filters that choose among the
art are applied after the cache, so changing them decodes nothing.

One file per unit, `<folder>/<key[:2]>/<key>`: a magic line, the length of a JSON header, the header
(the art's rows and the unit's skips), the PNGs one after another, and a SHA-256 of all that before it.
Files are renamed into place whole; a damaged one (a power cut, a full disk, a stray edit) fails its
checksum, is dropped with a log line and decoded again. The folder lives outside DVC's outputs, so
`dvc repro` leaves it alone; `prune` removes, at the end of a successful run, whatever that run did
not use.
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import mmap
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pipeline.core import killpoints
from pipeline.core.files import atomic_write
from pipeline.extract.archives import ImageUnit, UnityUnit

log = logging.getLogger("unpack")

CACHE_DIR = Path(".cache/unpack")
# Bump whenever decoding changes its output. DECODE_CODE is the hash of the decode code (decode_code_hash)
# when the version was last bumped; tests/extract/test_cache.py fails while the two disagree.
EXTRACTOR_VERSION = 2
DECODE_CODE = "bb5f41b2420b1cfb2ebc380e6827ec16fdd681c3178a0ceeb6d33ca3532fe84d"
DECODE_MODULES = ("decode.py", "unity.py", "images.py")             # what decides a unit's output
LIBRARIES = ("UnityPy", "texture2ddecoder", "etcpak", "astc-encoder-py", "Pillow", "numpy")
MAGIC = b"fullbody-anime-gan unpack cache 1\n"
DIGEST = 32                                                         # bytes of the trailing SHA-256
ENTRY_NAME = re.compile(r"[0-9a-f]{64}")


def decode_code_hash(folder: Path = Path(__file__).parent) -> str:
    """SHA-256 of the decode modules' syntax trees: comments and layout do not count, code does."""
    h = hashlib.sha256()
    for name in DECODE_MODULES:
        h.update(ast.dump(ast.parse((folder / name).read_text(encoding="utf-8"))).encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def _feed(h, data: bytes) -> None:
    h.update(len(data).to_bytes(8, "big"))     # length-prefixed: no two lists of files hash alike
    h.update(data)


def unit_key(unit: UnityUnit | ImageUnit, max_pixels: int) -> str:
    h = hashlib.sha256()
    what = {"extractor": EXTRACTOR_VERSION, "libraries": library_versions(), "max_pixels": max_pixels,
            "kind": "image" if isinstance(unit, ImageUnit) else "unity"}
    _feed(h, json.dumps(what, sort_keys=True).encode())
    files = [("", unit.data)] if isinstance(unit, ImageUnit) else unit.files
    # UnityPy finds a companion (.resS) by its name, so names decide the output once there are several
    # files; a lone file's name changes nothing, and renaming it must not decode it again.
    named = len(files) > 1
    for name, data in files:
        _feed(h, name.encode() if named else b"")
        _feed(h, data)
    return h.hexdigest()


@dataclass
class Entry:
    arts: list[dict]                       # index rows of the art, each with "png": its bytes
    skips: list[tuple[str, str, str]]      # (asset, name the filters match, reason)


class DecodeCache:
    """The entries under one folder, and which of them this run used."""

    def __init__(self, folder: Path = CACHE_DIR):
        self.folder = Path(folder)
        self.used: set[str] = set()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def load(self, key: str, source: str) -> Entry | None:
        """The entry of `key`, or None when there is none or it was damaged (then it is dropped)."""
        path = self.path(key)
        try:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                entry = _parse(m, key)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:    # mmap of an empty file is a ValueError too
            entry = f"unreadable ({e})"
        if isinstance(entry, str):
            log.warning("cache entry %s of %s is damaged (%s): dropped, decoding it again", path, source, entry)
            path.unlink(missing_ok=True)
            return None
        self.used.add(key)
        return entry

    def save(self, key: str, arts: list[dict], skips: list[tuple[str, str, str]]) -> None:
        """Store a unit's result; each art's PNG is read from the file its "path" names."""
        rows = [{k: v for k, v in art.items() if k != "path"} | {"size": art["path"].stat().st_size}
                for art in arts]
        header = json.dumps({"key": key, "arts": rows, "skips": skips}).encode()
        h = hashlib.sha256()
        # No fsync: the checksum, not the disk's write order, is what makes a torn entry harmless.
        with atomic_write(self.path(key), "wb", durable=False) as f:
            for chunk in (MAGIC, len(header).to_bytes(8, "big"), header):
                h.update(chunk)
                f.write(chunk)
            for art in arts:
                png = art["path"].read_bytes()
                h.update(png)
                f.write(png)
            f.write(h.digest())
        self.used.add(key)
        killpoints.reached("unit_cached")

    def prune(self) -> int:
        """Remove the entries (and leftover temporary files) this run did not use; returns how many."""
        removed = 0
        for shard in sorted(self.folder.glob("??")) if self.folder.is_dir() else []:
            for p in shard.iterdir():
                ours = ENTRY_NAME.fullmatch(p.name) or (p.name.startswith(".") and p.name.endswith(".tmp"))
                if ours and p.name not in self.used and p.is_file():
                    p.unlink(missing_ok=True)
                    removed += 1
            if not any(shard.iterdir()):
                shard.rmdir()
        return removed

    def size(self) -> tuple[int, int]:
        """(entries, bytes) in the folder."""
        files = [p for p in self.folder.glob("??/*") if ENTRY_NAME.fullmatch(p.name)]
        return len(files), sum(p.stat().st_size for p in files)


def _parse(m, key: str) -> Entry | str:
    """The entry in `m`, or a one-line reason why it cannot be trusted."""
    end = len(m) - DIGEST
    if end < len(MAGIC) + 8 or m[:len(MAGIC)] != MAGIC:
        return "not a cache entry, or cut short"
    with memoryview(m) as whole, whole[:end] as body:    # hashed in place: the file is not copied
        ok = hashlib.sha256(body).digest() == m[end:]
    if not ok:
        return "checksum mismatch"
    start = len(MAGIC) + 8
    n = int.from_bytes(m[len(MAGIC):start], "big")
    try:
        header = json.loads(m[start:start + n])
        if header["key"] != key:
            return "written for another key"
        pos, arts = start + n, []
        for row in header["arts"]:
            size = row.pop("size")
            arts.append({**row, "png": m[pos:pos + size]})
            pos += size
        skips = [tuple(s) for s in header["skips"]]
    except (ValueError, KeyError, TypeError) as e:
        return f"unreadable header ({type(e).__name__})"
    if pos != end:
        return "its PNGs do not add up to its length"
    return Entry(arts, skips)
