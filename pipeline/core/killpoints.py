"""Named moments at which a test can kill a stage, so that kill tests need no random delays.

Inactive unless the environment sets PIPELINE_KILL_AT: nothing a user runs ever stops here. A test
sets `PIPELINE_KILL_AT=<point>[:<n>]` (and `PIPELINE_KILL_DIR`); the n-th time (default the first) the
process reaches `<point>`, it moves into a process group of its own, writes `<point>.pid` (its pid and
that group) into PIPELINE_KILL_DIR and waits there until the test SIGKILLs that group. The test thus
kills exactly this stage, at exactly this moment, and nothing else on the machine.

Points: `snapshot_written` (a training snapshot is complete on disk), `checkpoint_write` (inside a
checkpoint write: the temporary file written, not yet renamed into place), `mid_step` (between the D
and the G update of a training step), `outputs_written` (a stage wrote all its outputs, before it exits),
`unit_cached` (unpack stored one unit's decoded art in its cache).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "PIPELINE_KILL_AT"
DIR_ENV = "PIPELINE_KILL_DIR"
POINTS = ("snapshot_written", "checkpoint_write", "mid_step", "outputs_written", "unit_cached")

_seen: dict[str, int] = {}


def reached(point: str) -> None:
    """Mark that this process is at `point`; stops here for good if a test asked for it."""
    assert point in POINTS, point
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] != int(nth or 1):
        return
    try:
        os.setpgid(0, 0)                   # a group of its own: the test kills this stage, not dvc
    except OSError:                        # already a session leader: it has a group of its own
        pass
    folder = Path(os.environ.get(DIR_ENV, "."))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{point}.pid.tmp"
    tmp.write_text(f"{os.getpid()} {os.getpgid(0)}\n")
    os.replace(tmp, folder / f"{point}.pid")   # whole or absent: the test never reads half a line
    while True:                                # until the test's SIGKILL
        time.sleep(60)
