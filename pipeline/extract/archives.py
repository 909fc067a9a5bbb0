"""Walk data/raw/: APKs, OBBs, XAPK/APKS (archives inside archives), loose Unity files, loose images.

Archives are read member by member with zipfile (never handed whole to UnityPy, which reads every
entry into memory). What comes out are work units: a Unity file with the resource files it streams
its pixels from, or a loose image. Everything that cannot be read becomes a `Skip` with its reason.
"""
from __future__ import annotations

import logging
import posixpath
import shutil
import struct
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipeline.core.wording import counted

log = logging.getLogger("unpack")

ARCHIVE_EXTS = (".apk", ".obb", ".xapk", ".apks", ".zip")
RESOURCE_EXTS = (".ress", ".resource")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")
BUNDLE_MAGIC = (b"UnityFS\x00", b"UnityWeb\x00", b"UnityRaw\x00", b"UnityArchive\x00", b"\xfa" * 8)
MAX_DEPTH = 4                      # archives nested deeper than this are skipped
MAX_MEMBER_BYTES = 4 << 30         # one Unity file larger than this is skipped
BOMB_RATIO = 200                   # uncompressed/compressed above this ...
BOMB_MIN_BYTES = 64 << 20          # ... for a member this large is treated as a zip bomb


@dataclass
class Skip:
    source: str
    asset: str
    reason: str


@dataclass
class UnityUnit:
    """One Unity file (bundle or serialized file) and the resource files next to it."""
    source: str                                     # input path; archive members joined with "!"
    files: list[tuple[str, bytes]]                  # (name, bytes): the main file first


@dataclass
class ImageUnit:
    source: str
    data: bytes


@dataclass
class WalkStats:
    ignored: Counter = field(default_factory=Counter)   # non-Unity archive members by extension

    def summary(self) -> str:
        if not self.ignored:
            return "no archive member needed ignoring"
        shown = dict(self.ignored.most_common(8))
        rest = sum(self.ignored.values()) - sum(shown.values())
        top = counted({ext or "(no extension)": n for ext, n in shown.items()}) + (f", {rest} other" if rest else "")
        return f"ignored {sum(self.ignored.values())} archive member(s) that are not Unity files ({top})"


def sniff(head: bytes, size: int) -> str | None:
    """What a file is, from its first bytes: 'zip', 'bundle', 'serialized', 'image' or None."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(BUNDLE_MAGIC) or head.startswith(b"UnityWebData"):
        return "bundle"
    if head.startswith(IMAGE_MAGIC) and not (head.startswith(b"RIFF") and head[8:12] != b"WEBP"):
        return "image"
    if len(head) >= 48 and size >= 64:
        # A serialized file's header: metadata size, file size, version, data offset (big-endian).
        meta, fsize, version, offset = struct.unpack(">IIII", head[:16])
        if version >= 22:
            meta = struct.unpack(">I", head[20:24])[0]
            fsize, offset = struct.unpack(">QQ", head[24:40])
        if 9 <= version <= 100 and 0 < meta <= size and fsize == size and meta < offset <= fsize:
            return "serialized"
    return None


def _is_companion(name: str) -> bool:
    return name.lower().endswith(RESOURCE_EXTS)


def _belongs_to(companion: str, main: str) -> bool:
    """'sharedassets0.assets.resS' streams pixels for 'sharedassets0.assets' in the same folder."""
    return (posixpath.dirname(companion) == posixpath.dirname(main)
            and posixpath.basename(companion).startswith(posixpath.basename(main)))


def _split_base(name: str) -> str | None:
    """'data.unity3d.split3' -> 'data.unity3d' (Unity splits big files this way)."""
    stem, ext = posixpath.splitext(name)
    return stem if ext.startswith(".split") and ext[6:].isdigit() else None


class Walker:
    """Yields the units under one raw folder; collects skips and counts of ignored files."""

    def __init__(self, raw_dir: Path):
        self.raw_dir = Path(raw_dir)
        self.skips: list[Skip] = []
        self.stats = WalkStats()
        self._found = 0                 # Unity files found so far (to flag archives without any)

    def units(self) -> Iterator[UnityUnit | ImageUnit]:
        files = sorted(p for p in self.raw_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        loose: dict[str, Path] = {}
        for p in files:
            loose[p.relative_to(self.raw_dir).as_posix()] = p
        yield from self._folder(loose)

    # -- loose files ---------------------------------------------------------------------------
    def _folder(self, loose: dict[str, Path]) -> Iterator:
        companions = {n for n in loose if _is_companion(n)}
        for rel, path in loose.items():
            if rel in companions:
                continue
            try:
                size = path.stat().st_size
                with open(path, "rb") as f:
                    head = f.read(64)
            except OSError as e:
                self.skips.append(Skip(rel, "", f"unreadable: {e.strerror}"))
                continue
            kind = sniff(head, size)
            if kind == "zip" or (kind is None and rel.lower().endswith(ARCHIVE_EXTS)):
                yield from self._archive(path, rel, depth=1)
            elif kind in ("bundle", "serialized"):
                extra = [(posixpath.basename(c), loose[c].read_bytes()) for c in sorted(companions)
                         if _belongs_to(c, rel)]
                yield UnityUnit(rel, [(posixpath.basename(rel), path.read_bytes())] + extra)
            elif kind == "image":
                yield ImageUnit(rel, path.read_bytes())
            elif size == 0:
                self.skips.append(Skip(rel, "", "empty file"))
            else:
                self.skips.append(Skip(rel, "", "not an APK/OBB/XAPK, Unity file or image"))

    # -- archives ------------------------------------------------------------------------------
    def _archive(self, path: Path, source: str, depth: int) -> Iterator:
        try:
            zf = zipfile.ZipFile(path)
            infos = [i for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            self.skips.append(Skip(source, "", f"corrupt or unreadable archive ({_one_line(e)})"))
            return
        found_before = self._found
        with zf:
            names = {i.filename: i for i in infos}
            splits: dict[str, list[zipfile.ZipInfo]] = {}
            for i in infos:
                base = _split_base(i.filename)
                if base:
                    splits.setdefault(base, []).append(i)
            for info in sorted(infos, key=lambda i: i.filename):
                name = info.filename
                member_source = f"{source}!{name}"
                if _is_companion(name) or _split_base(name):
                    continue
                if info.flag_bits & 0x1:
                    self.skips.append(Skip(member_source, "", "encrypted archive member"))
                    continue
                if (info.compress_size and info.file_size / info.compress_size > BOMB_RATIO
                        and info.file_size > BOMB_MIN_BYTES):
                    self.skips.append(Skip(member_source, "", f"zip bomb? expands {info.file_size // info.compress_size}x"))
                    continue
                try:
                    with zf.open(info) as f:
                        head = f.read(64)
                except Exception as e:  # zipfile raises many types on damaged members
                    self.skips.append(Skip(member_source, "", f"unreadable archive member ({_one_line(e)})"))
                    continue
                kind = sniff(head, info.file_size)
                if kind == "zip" or (kind is None and name.lower().endswith(ARCHIVE_EXTS)):
                    if depth >= MAX_DEPTH:
                        self.skips.append(Skip(member_source, "", f"archive nested deeper than {MAX_DEPTH}"))
                        continue
                    yield from self._nested(zf, info, member_source, depth)
                elif kind in ("bundle", "serialized"):
                    unit = self._unity_member(zf, info, member_source, names)
                    if unit:
                        self._found += 1
                        yield unit
                else:
                    ext = posixpath.splitext(name)[1].lower()
                    self.stats.ignored[ext] += 1
            for base, parts in sorted(splits.items()):
                unit = self._joined_split(zf, base, parts, f"{source}!{base}")
                if unit:
                    self._found += 1
                    yield unit
        if self._found == found_before:
            self.skips.append(Skip(source, "", "no Unity files inside (not the APK/OBB of a Unity game?)"))

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes | None:
        if info.file_size > MAX_MEMBER_BYTES:
            self.skips.append(Skip(source, "", f"larger than {MAX_MEMBER_BYTES >> 30} GiB"))
            return None
        try:
            return zf.read(info)
        except Exception as e:
            self.skips.append(Skip(source, "", f"unreadable archive member ({_one_line(e)})"))
            return None

    def _unity_member(self, zf, info, source, names) -> UnityUnit | None:
        data = self._read(zf, info, source)
        if data is None:
            return None
        files = [(posixpath.basename(info.filename), data)]
        for other, oinfo in sorted(names.items()):
            if _is_companion(other) and _belongs_to(other, info.filename):
                extra = self._read(zf, oinfo, f"{source}!{other}")
                if extra is not None:
                    files.append((posixpath.basename(other), extra))
        return UnityUnit(source, files)

    def _joined_split(self, zf, base, parts, source) -> UnityUnit | None:
        parts = sorted(parts, key=lambda i: int(posixpath.splitext(i.filename)[1][6:]))
        chunks = [self._read(zf, p, source) for p in parts]
        if any(c is None for c in chunks):
            return None
        data = b"".join(chunks)
        if sniff(data[:64], len(data)) not in ("bundle", "serialized"):
            self.stats.ignored[".split"] += len(parts)
            return None
        return UnityUnit(source, [(posixpath.basename(base), data)])

    def _nested(self, zf, info, source, depth) -> Iterator:
        # A nested archive is copied to a temporary file so zipfile can seek in it cheaply.
        with tempfile.TemporaryDirectory(prefix="unpack-") as tmp:
            target = Path(tmp) / "nested.zip"
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except Exception as e:
                self.skips.append(Skip(source, "", f"unreadable nested archive ({_one_line(e)})"))
                return
            yield from self._archive(target, source, depth + 1)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def source_parts(source: str) -> list[str]:
    """'game.xapk!base.apk!assets/x' -> ['game.xapk', 'base.apk', 'assets', 'x'] (for output paths)."""
    parts = []
    for piece in source.split("!"):
        parts.extend(p for p in piece.replace("\\", "/").split("/") if p)
    return parts


def clean_raw_dir(raw_dir: Path) -> None:
    if not raw_dir.is_dir():
        from pipeline.core.errors import UserError
        raise UserError(f"{raw_dir}/ does not exist: create it and put your APKs, OBBs or images there")
    if not any(p.is_file() and not p.name.startswith(".") for p in raw_dir.rglob("*")):
        from pipeline.core.errors import UserError
        raise UserError(f"{raw_dir}/ is empty: put your APKs, OBBs, Unity files or images there "
                        f"(or run `python -m pipeline.sample` for the built-in sample)")

