"""How stages put things in words: skip reasons that read the same on every run, and counts as phrases.

A skipped.csv is diffed between runs (it is a stage output, often kept in git), so a reason must not
carry what changes from run to run: Python's object reprs name memory addresses
(`<_io.BytesIO object at 0x7f66...>`), and the same damaged file would otherwise differ every time.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

_OBJECT_REPR = re.compile(r"<([A-Za-z_][\w.]*) object at 0x[0-9A-Fa-f]+>")
_ADDRESS = re.compile(r"\s+at 0x[0-9A-Fa-f]{6,}\b")
_ID = re.compile(r"\b(?:id|address)[=:]\s*0x[0-9A-Fa-f]{6,}\b")


def stable_reason(text: str, limit: int = 240) -> str:
    """One line of `text` without object addresses: `<_io.BytesIO object at 0x7f..>` -> `<_io.BytesIO>`."""
    text = _OBJECT_REPR.sub(r"<\1>", str(text))
    text = _ID.sub("", _ADDRESS.sub("", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def stable_skips(rows: Iterable[Mapping]) -> list[dict]:
    """Skip rows (source, asset, reason) with their reasons made stable, for skipped.csv."""
    return [{**r, "reason": stable_reason(r.get("reason", ""))} for r in rows]


def counted(counts: Mapping[str, int], none: str = "none") -> str:
    """{"near_duplicate": 3, "blank": 1} -> "3 near_duplicate, 1 blank" (largest first); {} -> `none`."""
    items = sorted(((n, k) for k, n in counts.items() if n), key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{n} {k}" for n, k in items) or none


def skipped(n: int, report: str) -> str:
    """ "skipped none" or "skipped 3 (see data/x/skipped.csv)". """
    return "skipped none" if n == 0 else f"skipped {n} (see {report})"
