"""Kill a stage at a moment its code names (pipeline.core.killpoints), and wait on conditions, not clocks.

A test starts `dvc repro` with PIPELINE_KILL_AT set; the stage stops at that point and announces its
pid and process group. Only that group is signalled, after checking that it descends from the `dvc`
this test started: no other process on the machine (another test's, the user's own training) is touched.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

DEADLINE_S = 900.0          # generous: a loaded CI machine is slow, and only a hang should reach it


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S,
             alive: subprocess.Popen | None = None) -> None:
    """Poll `condition` until it holds; fail (with the process's output) if `alive` ends first."""
    end = time.monotonic() + deadline_s
    while not condition():
        if alive is not None and alive.poll() is not None:
            out = alive.stdout.read() if alive.stdout else ""
            raise AssertionError(f"the process ended ({alive.returncode}) before {what}:\n{out[-4000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"no {what} within {deadline_s:.0f} s")
        time.sleep(0.05)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])     # the name in parentheses may hold spaces


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = parent_of(pid)
        except (OSError, ValueError, IndexError):
            return False
    return False


def repro_killed_at(root: Path, point: str, env: dict, kill_dir: Path) -> str:
    """`dvc repro` in `root`, killed (SIGKILL to the stage's own group) when a stage reaches `point`.

    Returns dvc's output; asserts that dvc reported the run as failed.
    """
    kill_dir.mkdir(parents=True, exist_ok=True)
    announced = kill_dir / f"{point.partition(':')[0]}.pid"
    run_env = {**env, "PIPELINE_KILL_AT": point, "PIPELINE_KILL_DIR": str(kill_dir)}
    p = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=run_env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    stage_group = None
    try:
        wait_for(announced.exists, f"stage at {point}", alive=p)
        pid, pgid = map(int, announced.read_text().split())
        assert descends_from(pid, p.pid), f"{pid} is not a process of this test's dvc repro"
        stage_group = pgid
        os.killpg(stage_group, signal.SIGKILL)
        out, _ = p.communicate(timeout=DEADLINE_S)
    finally:
        stop_group(p, stage_group)
    assert p.returncode != 0, f"dvc repro did not report the killed stage as failed:\n{out[-3000:]}"
    return out


def stop_group(p: subprocess.Popen, *groups: int | None) -> None:
    """Leave nothing of this run behind, whatever happened: the dvc we started (a session of its
    own) and the stage's group, if it moved into one."""
    for group in (p.pid, *groups):
        if group is None:
            continue
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()
