"""Where the project and its test material are. Test material lives in the project (data/sample,
models), never outside it."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
TEMPLATES = SAMPLE / "templates"
IMAGES = SAMPLE / "images"
CASCADE = ROOT / "models" / "lbpcascade_animeface.xml"


def env_with_project_on_path() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
