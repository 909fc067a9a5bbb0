"""A copy of the project in a temporary git repo, for tests that run real `dvc` commands."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.project import ROOT

COPY = ["dvc.yaml", "params.yaml", "pipeline", "stages", "models", "review", "data/raw"]


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """Bytecode, and what training wrote into models/ (res<R>/, snapshots/): exact names only, so a
    module such as pipeline/train/resample.py is still copied."""
    skip = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if Path(folder).resolve() == (ROOT / "models").resolve():
        skip |= {n for n in names if re.fullmatch(r"res\d+|snapshots", n)}
    return skip


def make_repo(dest: Path, params: dict | None = None) -> Path:
    """Copy the project's pipeline into `dest`, `git init` + `dvc init` it, apply param overrides, commit."""
    for item in COPY:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=_not_copied)
        else:
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / item)
    if params:
        data = yaml.safe_load((dest / "params.yaml").read_text())
        for key, value in params.items():
            section, name = key.split(".", 1)
            data.setdefault(section, {})[name] = value
        (dest / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    run(dest, "git", "init", "-q")
    run(dest, "git", "config", "user.email", "test@example.com")
    run(dest, "git", "config", "user.name", "test")
    dvc(dest, "init", "-q")
    shutil.copy(ROOT / ".dvcignore", dest / ".dvcignore")   # after init, which writes its own
    dvc(dest, "config", "core.analytics", "false")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-qm", "baseline")
    return dest


def env() -> dict:
    e = dict(os.environ)
    # `python` in dvc.yaml's commands must be this interpreter (the venv's).
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e["DVC_NO_ANALYTICS"] = "1"
    e.pop("PYTHONPATH", None)
    return e


def run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env())
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def ran_stages(output: str) -> list[str]:
    """Names of the stages a `dvc repro` output says it ran."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
