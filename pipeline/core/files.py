"""Safe file writing: every file a stage writes goes through here.

Each writer puts its bytes in a temporary file beside the target and renames it into place, so a
crash or a kill leaves either the old file or the new one, never half of one. A stage that fills a
whole folder builds it under `<folder>.partial` and swaps it in at the end (`staging_dir`).
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[io.IOBase]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    durable=False skips the fsync, for files that carry their own checksum (a power cut may then leave
    a damaged file, which its reader detects and drops; a kill still leaves the old one or the new one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_staged(path: str | os.PathLike, data: bytes) -> None:
    """Write a file inside a `staging_dir` folder in place: the folder is what is atomic (discarded whole
    when a run dies, synced once before it is swapped in), and a temporary name and an fsync for each of
    thousands of small files would cost more than the work that made them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def clean_text(value) -> str:
    """One printable line: hostile inputs put binary junk and newlines in names and error messages."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(ch if ch.isprintable() else " " for ch in text)


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping]) -> int:
    """Write rows (dicts) with a header; keys outside `columns` are an error. Returns the row count."""
    n = 0
    with atomic_write(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: clean_text(v) if isinstance(v, str) else v for k, v in row.items()})
            n += 1
    return n


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark, which would glue onto the first column
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def file_stamp(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(mtime in ns, size, inode) of a file, or None where it is missing: what tells that it changed on
    disk since it was last read, also when an atomic write replaced it within the same clock tick."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def save_image(path: str | os.PathLike, image) -> None:
    """Save a PIL image as PNG atomically (PNG is lossless, so later stages see exact pixels)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Build a stage's output folder under `<out>.partial`, then swap it in.

    An interrupted run leaves `<out>` as it was (DVC has usually removed it already) and a
    `.partial` folder that the next run clears, so every run starts clean. Everything in the folder
    reaches the disk before the swap, so files written into it may go in place (`write_staged`).
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    yield partial
    sync_folder(partial)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)


def sync_folder(folder: Path) -> None:
    """Flush every file under `folder` to disk. One syncfs of its file system where there is one (Linux):
    thousands of small files cost one call, where an fsync each cost milliseconds apiece."""
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        syncfs = None
    if syncfs is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in (p for p in Path(folder).rglob("*") if p.is_file()):
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_name(text: str, max_len: int = 80) -> str:
    """One path component made from any text: no separators, no `..`, no NUL, no reserved names."""
    name = _UNSAFE.sub("_", text.replace("\x00", "")).strip("._") or "unnamed"
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name[:max_len]


def safe_relpath(parts: Sequence[str]) -> Path:
    """A relative path made of sanitised components: it can never point outside its root."""
    return Path(*[safe_name(p) for p in parts if p not in ("", ".", "..")] or ["unnamed"])


def unique_path(path: Path, taken: set[str]) -> Path:
    """`path`, or `path` with a -2, -3 ... suffix when that name is already taken (case-insensitive)."""
    candidate, i = path, 1
    while str(candidate).lower() in taken:
        i += 1
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
    taken.add(str(candidate).lower())
    return candidate
